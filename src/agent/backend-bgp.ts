/**
 * bgp: other nodes' subnets are learned over BGP by a BIRD 2 the agent runs (bird.ts), not
 * programmed by the agent. The leases (flannel's keys, as for the other backends) say which nodes
 * exist: each one is a session of the full mesh; the network config adds route reflectors and
 * external peers. On every change the configuration is rendered again (bird-config.ts), checked and
 * loaded. BIRD writes the routes it learns with its own protocol number (`ip route show proto
 * bird`); with IPIP they go through a tunl0-style device.
 */

import { listAddresses } from "../net/addr.ts";
import { ensureIpipDevice, FALLBACK_TUNNEL } from "../net/ipip.ts";
import { getLink } from "../net/link.ts";
import { listRoutes } from "../net/route.ts";
import { CniError, ErrorCode } from "../spec/error.ts";
import type { Backend, BackendOptions, BackendSetup, BgpBackendOptions, Peer } from "./backend-types.ts";
import { bgpSessions, BirdSupervisor, DEFAULT_BIRD_DIR, type BgpSessionState } from "./bird.ts";
import { renderBirdConfig, subnetOfAddress, type BirdInput } from "./bird-config.ts";

/** BIRD's route protocol number (RTPROT_BIRD). */
export const RTPROT_BIRD = 12;

/** What the bgp backend needs beyond the common options. */

export class BgpBackend implements Backend {
  readonly type = "bgp" as const;
  readonly bird: BirdSupervisor;
  /** Other nodes: subnet -> public IP. */
  private readonly peers = new Map<string, string>();
  private input: Omit<BirdInput, "nodes"> | undefined;
  private synced = false;
  /** The load scheduled for the current burst of changes (resolves once it is done). */
  private loading: Promise<void> | undefined;
  private poller: ReturnType<typeof setInterval> | undefined;
  /** The sessions as last read from BIRD; undefined while it is not running or does not answer. */
  private last: BgpSessionState[] | undefined;
  private readonly b: BgpBackendOptions;
  private readonly log: (e: Record<string, unknown>) => void;

  constructor(private readonly o: BackendOptions) {
    if (!o.bgp) throw new CniError(ErrorCode.InvalidNetworkConfig, "agent: the bgp backend needs its settings");
    if ((o.family ?? 4) !== 4) throw new CniError(ErrorCode.InvalidNetworkConfig, "agent: the bgp backend routes IPv4 only (set no IPv6Network)");
    this.b = o.bgp;
    this.log = o.bgp.log ?? (() => {});
    const { conn } = o;
    this.bird = new BirdSupervisor({
      dir: this.b.dir ?? DEFAULT_BIRD_DIR,
      log: this.log,
      // routes of an earlier BIRD in the kernel: keep them until the sessions are back
      recover: () => listRoutes(conn, { family: 4 }).some((r) => r.protocol === RTPROT_BIRD),
    });
  }

  setup(): BackendSetup {
    const { conn } = this.o;
    const link = getLink(conn, this.o.underlay);
    const addrs = listAddresses(conn, { link: link.index, family: 4 }).filter((a) => a.scope === 0);
    const mine = addrs.find((a) => a.cidr.split("/")[0] === this.o.publicIP) ?? addrs[0];
    if (!mine) throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: ${this.o.underlay} has no IPv4 address for BGP`);
    let mtu = link.mtu;
    const ipip = this.b.config.encapsulation === "ipip";
    const tunnel = this.b.tunnel ?? FALLBACK_TUNNEL;
    if (ipip) mtu = ensureIpipDevice(conn, { name: tunnel, mtu: link.mtu - 20 }).mtu;
    this.input = {
      localIP: this.o.publicIP,
      subnet: this.o.localSubnet,
      network: this.b.network,
      underlay: { iface: link.name, subnet: subnetOfAddress(mine.cidr) },
      bgp: this.b.config,
      ...(ipip ? { tunnel } : {}),
    };
    this.poller = setInterval(() => void this.poll(), this.b.pollMs ?? 2000);
    return { backendData: { ASNumber: this.b.config.asNumber }, mtu };
  }

  /** The configuration for the peers known now. */
  render(): string {
    if (!this.input) throw new Error("bgp backend: setup() first");
    return renderBirdConfig({ ...this.input, nodes: [...new Set(this.peers.values())] });
  }

  /**
   * Render and load the configuration once the current burst of changes is over. Nothing is loaded
   * before the first full sync: a BIRD started with part of the mesh would end its graceful
   * restart early and drop routes it should keep. Resolves once the load is done (never rejects:
   * failures are logged).
   */
  private schedule(): Promise<void> {
    if (!this.synced) return Promise.resolve();
    this.loading ??= new Promise<void>((resolve) => {
      setTimeout(() => {
        this.loading = undefined; // changes from here on make another load
        let text: string;
        try {
          text = this.render();
        } catch (e) {
          this.log({ level: "error", msg: "rendering BIRD's configuration failed", error: (e as Error).message });
          resolve();
          return;
        }
        this.bird
          .apply(text)
          .then(
            (r) => void (r !== "unchanged" && this.log({ level: "info", msg: `BIRD ${r}`, sessions: this.peers.size })),
            (e) => this.log({ level: "error", msg: "loading BIRD's configuration failed", error: (e as Error).message }),
          )
          .finally(resolve);
      }, 0);
    });
    return this.loading;
  }

  addPeer(p: Peer): void {
    if (this.peers.get(p.subnet) === p.publicIP) return;
    this.peers.set(p.subnet, p.publicIP);
    void this.schedule();
  }

  removePeer(p: Pick<Peer, "subnet">): void {
    if (this.peers.delete(p.subnet)) void this.schedule();
  }

  programmedSubnets(): string[] {
    return [...this.peers.keys()];
  }

  /** After a full sync: the peer set is complete, (re)load BIRD; resolves once it is loaded. */
  afterSync(): Promise<void> {
    this.synced = true;
    return this.schedule();
  }

  /** The BGP sessions as last read from BIRD (every `pollMs`); undefined while BIRD is not running or does not answer. */
  sessions(): BgpSessionState[] | undefined {
    return this.last;
  }

  private async poll(): Promise<void> {
    if (!this.bird.running()) {
      this.last = undefined;
      return;
    }
    try {
      this.last = await bgpSessions(this.bird.sockPath);
    } catch {
      this.last = undefined;
    }
  }

  /** Prometheus lines: one `cnikit_bgp_session_up` per session, BIRD's state and restarts. */
  metricsText(): string {
    const lines = [
      "# HELP cnikit_bgp_session_up Whether BIRD's BGP session with a peer is Established (1) or not (0); state is BIRD's word for it.",
      "# TYPE cnikit_bgp_session_up gauge",
    ];
    for (const s of this.last ?? []) lines.push(`cnikit_bgp_session_up{peer="${s.peerIP}",kind="${s.kind}",state="${s.state}"} ${s.up ? 1 : 0}`);
    lines.push("# HELP cnikit_bgp_bird_up Whether the BIRD the agent runs is running.", "# TYPE cnikit_bgp_bird_up gauge", `cnikit_bgp_bird_up ${this.bird.running() ? 1 : 0}`);
    lines.push("# HELP cnikit_bgp_bird_restarts_total Times BIRD was started again after it died.", "# TYPE cnikit_bgp_bird_restarts_total counter", `cnikit_bgp_bird_restarts_total ${this.bird.restarts}`);
    return `${lines.join("\n")}\n`;
  }

  /** Stop BIRD for a graceful restart (routes stay here and on the peers for the restart time). */
  async stop(): Promise<void> {
    clearInterval(this.poller);
    await this.bird.stop();
  }
}
