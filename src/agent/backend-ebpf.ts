/**
 * vxlan with the eBPF datapath (`"Backend": {"Type": "vxlan", "Datapath": "ebpf"}`): one
 * collect-metadata vxlan device `cnikit.<VNI>` (`external`: no fixed VNI or remote, learning off,
 * MTU = underlay MTU - 50) carrying our subnet's network address as a /32, the eBPF vxlan program
 * on its ingress, and per peer one entry in the network's remotes LPM map (its subnet -> its
 * underlay address, VNI) that the pod programs read to set the tunnel key, and one `encap ip`
 * route into the device with the same key, for what the node itself sends to other nodes' pods
 * (its source is our subnet's network address, which other nodes' pods answer through the
 * tunnel). No neighbour or FDB entry. With DirectRouting (flannel's key), a peer whose address is
 * on our underlay subnet gets no tunnel: its map entry is marked direct (the pod programs
 * `bpf_redirect_neigh` out of the underlay device to its address, as Cilium's native routing), the
 * node's own traffic takes a plain route through its address, and the underlay program on our
 * underlay device's ingress delivers what such peers route to our pods. The maps are pinned (`pinDir`), so a restarted agent finds what it programmed
 * and pods keep talking meanwhile; the overlay plugin's `"datapath": "ebpf"` attaches pods to the
 * same maps (subnet.env tells it where they are).
 */

import { Datapath } from "../bpf/datapath.ts";
import { BIG_TCP_SIZE, bigTcpRefusal, setIPv4GsoSize } from "../net/big-tcp.ts";
import { addAddress, deleteAddress, listAddresses } from "../net/addr.ts";
import type { Link } from "../net/link.ts";
import { createLink, deleteLink, findLink, getLink, setLink } from "../net/link.ts";
import { CniError, ErrorCode } from "../spec/error.ts";
import { containsIP, formatIP, type IPNet, networkOf, parseCIDR, parseIP } from "../spec/ip.ts";
import type { Backend, BackendOptions, BackendSetup, Peer } from "./backend-types.ts";
import { agentRoutes, deleteAgentRoute, setAgentRoute } from "./peer-routes.ts";

/** Where the agent pins a network's maps and programs unless told otherwise. */
export const DEFAULT_AGENT_PIN_DIR = "/sys/fs/bpf/cnikit/overlay";

export class EbpfVxlanBackend implements Backend {
  readonly type = "vxlan" as const;
  readonly vni: number;
  readonly port: number;
  readonly name: string;
  readonly pinDir: string;
  private dp: Datapath | undefined;
  private dev!: Link;
  private underlayIndex = 0;
  private underlayNets: IPNet[] = [];
  /** Whether BIG TCP took on the underlay (pods get its size), and the tunnelled peers warned of since. */
  private bigTcpOn = false;
  private readonly bigTcpWarned = new Set<string>();

  constructor(private readonly o: BackendOptions) {
    this.vni = o.vni ?? 1;
    this.port = o.port ?? 8472;
    this.name = o.deviceName ?? `cnikit.${this.vni}`;
    this.pinDir = o.bpfPinDir ?? DEFAULT_AGENT_PIN_DIR;
    if ((o.family ?? 4) !== 4) throw new CniError(ErrorCode.InvalidNetworkConfig, "agent: the eBPF datapath carries IPv4 only");
    if (this.name.length > 15) throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: device name ${this.name} is longer than 15 characters`);
  }

  /** The open datapath (after setup). */
  datapath(): Datapath {
    if (!this.dp) throw new Error("EbpfVxlanBackend: setup() first");
    return this.dp;
  }

  setup(): BackendSetup {
    const { conn } = this.o;
    const underlay = getLink(conn, this.o.underlay);
    this.underlayIndex = underlay.index;
    this.underlayNets = listAddresses(conn, { link: underlay.index, family: 4 }).filter((a) => a.scope === 0).map((a) => parseCIDR(a.cidr)!).filter(Boolean);
    const mtu = this.o.mtu ?? underlay.mtu - 50;
    if (!parseIP(this.o.publicIP) || parseIP(this.o.publicIP)!.length !== 4) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: public IP ${this.o.publicIP} is not an IPv4 address`);
    }
    let dev = findLink(conn, this.name);
    const v = dev?.raw.info?.vxlan;
    if (dev && !(dev.kind === "vxlan" && v?.external && (v.port ?? 8472) === this.port)) {
      // the kernel datapath's device (or another configuration's): this one takes its place
      deleteLink(conn, dev.index);
      dev = null;
    }
    if (!dev) {
      dev = createLink(conn, { name: this.name, mtu, info: { kind: "vxlan", vxlan: { external: true, port: this.port, learning: false, udpCsum: false } } });
    } else if (dev.mtu !== mtu) {
      setLink(conn, dev.index, { mtu });
    }
    // our subnet's network address: the source of what this node sends to other nodes' pods
    const n = parseCIDR(this.o.localSubnet);
    if (!n) throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: bad subnet ${this.o.localSubnet}`);
    const want = `${formatIP(networkOf(n).ip)}/32`;
    for (const a of listAddresses(conn, { link: dev.index, family: 4 })) {
      if (a.scope === 0 && a.cidr !== want) deleteAddress(conn, { link: dev.index, address: a.cidr });
    }
    addAddress(conn, { link: dev.index, address: want }, { existOk: true });
    // no ARP across the tunnel for what the node sends (routes through the device reach any
    // address of another node's subnet): the inner frame gets our own MAC, which the other side's
    // vxlan program rewrites (for its pods) or makes PACKET_HOST (for the node itself)
    setLink(conn, dev.index, { noarp: true, up: true });
    this.dev = getLink(conn, dev.index);
    this.dp ??= Datapath.open({ pinDir: this.pinDir });
    this.dp.attachVxlan(conn, this.dev.index);
    const had = this.dp.underlayIfindex();
    if (had && (had !== underlay.index || !this.o.directRouting)) this.dp.detachUnderlay(conn, had);
    if (this.o.directRouting) this.dp.attachUnderlay(conn, underlay.index);
    // routes of an earlier run whose subnet left the map meanwhile
    const mapped = new Set(this.programmedSubnets());
    for (const [dst, r] of agentRoutes(conn, 4)) {
      const ours = r.oif === this.dev.index || (r.oif === underlay.index && !!r.gateway);
      if (ours && !mapped.has(dst)) deleteAgentRoute(conn, dst);
    }
    return { backendData: { VNI: this.vni, VtepMAC: this.dev.mac }, mtu, ...this.bigTcp(underlay.index) };
  }

  /**
   * BigTCP: IPv4 BIG TCP on the underlay device, which is where pods' packets to direct peers and
   * to the outside leave (see net/big-tcp.ts); offered to pods only when it took. Turned off, the
   * underlay keeps what it has (harmless) and new pods get 64 KiB packets.
   */
  private bigTcp(underlay: number): Pick<BackendSetup, "bigTcp" | "warnings"> {
    if (!this.o.bigTcp) return {};
    const why = bigTcpRefusal(this.o.conn, underlay);
    if (why) return { warnings: [`BigTCP left off: ${why}`] };
    try {
      setIPv4GsoSize(this.o.conn, underlay, BIG_TCP_SIZE);
    } catch (e) {
      return { warnings: [`BigTCP left off: ${(e as Error).message}`] };
    }
    this.bigTcpOn = true;
    return { bigTcp: BIG_TCP_SIZE };
  }

  addPeer(p: Peer): string | void {
    const ip = parseIP(p.publicIP);
    if (!ip || ip.length !== 4) throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: the lease of ${p.subnet} has no IPv4 public address`);
    if (this.direct(ip)) {
      this.datapath().setRemoteSubnet(p.subnet, p.publicIP, this.vni, { direct: true });
      setAgentRoute(this.o.conn, { dst: p.subnet, gateway: p.publicIP, link: this.underlayIndex });
      this.bigTcpWarned.delete(p.subnet);
      return;
    }
    this.datapath().setRemoteSubnet(p.subnet, p.publicIP, this.vni);
    setAgentRoute(this.o.conn, { dst: p.subnet, link: this.dev.index, encap: { id: this.vni, dst: p.publicIP, ttl: 64 } });
    // the vxlan device takes no packet over 64 KiB (net/big-tcp.ts), so pods' BIG TCP packets to
    // this peer are cut into MSS-sized segments in software: worth an operator's knowing
    if (this.bigTcpOn && !this.bigTcpWarned.has(p.subnet)) {
      this.bigTcpWarned.add(p.subnet);
      return `BigTCP: ${p.subnet} is tunnelled (${p.publicIP} is not on the underlay's subnet) and the vxlan device takes no packet over 64 KiB, so pods' BIG TCP packets to it are cut into MSS-sized segments in software, slower than without BigTCP`;
    }
  }

  /** DirectRouting and the peer's address on our underlay subnet: no tunnel to it. */
  private direct(ip: Uint8Array): boolean {
    return !!this.o.directRouting && this.underlayNets.some((n) => containsIP(n, ip));
  }

  removePeer(p: Pick<Peer, "subnet">): void {
    this.bigTcpWarned.delete(p.subnet);
    deleteAgentRoute(this.o.conn, p.subnet);
    this.datapath().removeRemoteSubnet(p.subnet);
  }

  programmedSubnets(): string[] {
    return this.datapath().remoteSubnets().map((r) => r.subnet);
  }

  metricsText(): string {
    const stats = this.dp?.stats() ?? {};
    const lines = [
      "# HELP cnikit_ebpf_packets_total Packets by the eBPF datapath's decision.",
      "# TYPE cnikit_ebpf_packets_total counter",
      ...Object.entries(stats).map(([k, c]) => `cnikit_ebpf_packets_total{decision="${k}"} ${c.packets}`),
      "",
    ];
    return lines.join("\n");
  }

  async stop(): Promise<void> {
    // the pins, the device and its program stay: pods keep talking, a restart takes them back
    this.dp?.close();
    this.dp = undefined;
  }
}
