/**
 * The node agent (`cnikit agent`): leases this node's subnet in etcd (its own lease again after a
 * restart, matched by public IP, else the subnet of its subnet.env, else a free one), sets up the
 * backend, writes subnet.env, programs every other node's subnet and follows the leases through a
 * watch, resyncing from a full read after the watch was lost. While etcd is unreachable it keeps
 * what is programmed and retries with backoff. Serves /healthz and /metrics; logs JSON lines.
 */

import { NetlinkConn } from "../netlink/conn.ts";
import { listAddresses } from "../net/addr.ts";
import { getLink } from "../net/link.ts";
import { listRoutes } from "../net/route.ts";
import { readSubnetEnv, writeSubnetEnv } from "../ipam/subnet-env.ts";
import { addIP } from "../ipam/range.ts";
import { CniError, ErrorCode } from "../spec/error.ts";
import { formatCIDR, formatIP, networkOf, parseCIDR, type IPNet } from "../spec/ip.ts";
import { createBackend, type Backend } from "./backend.ts";
import { encodeLease, pickFreeSubnet, type LeaseAttrs } from "./lease.ts";
import { installMasquerade } from "./masq.ts";
import type { NetworkConfig } from "./netconfig.ts";
import { connectEtcd, LeaseStore, type EtcdOptions, type SubnetLease } from "./store.ts";

/** What `cnikit agent` is told. */
export interface AgentOptions {
  etcd: EtcdOptions;
  prefix: string;
  /** Underlay interface (default: the default route's). */
  iface?: string;
  /** Address other nodes reach this one at (default: the underlay interface's first IPv4). */
  publicIP?: string;
  subnetFile: string;
  ipMasq: boolean;
  /** etcd lease TTL in seconds (default 24 h). */
  ttlSec: number;
  /** Serve /healthz and /metrics here (host:port); none when absent. */
  healthz?: { host: string; port: number };
  /** vxlan device name prefix: the device is `<prefix>.<VNI>` (default "cnikit"). */
  devicePrefix?: string;
  /** Structured log sink (default: JSON lines on stderr). */
  log?: (entry: Record<string, unknown>) => void;
}

/** Counters the agent exposes on /metrics. */
export interface AgentMetrics {
  leases: number;
  peers: number;
  etcdErrors: number;
  lastSyncMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The running agent. */
export class Agent {
  readonly metrics: AgentMetrics = { leases: 0, peers: 0, etcdErrors: 0, lastSyncMs: 0 };
  private store!: LeaseStore;
  private backend!: Backend;
  private config!: NetworkConfig;
  private subnet!: IPNet;
  private attrs!: LeaseAttrs;
  private conn!: NetlinkConn;
  private stopWatch: (() => Promise<void>) | undefined;
  private server: ReturnType<typeof Bun.serve> | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private stopped = false;
  private etcdDown = false;
  /** What each programmed peer was programmed from (to skip lease rewrites that change nothing). */
  private readonly known = new Map<string, string>();
  private readonly log: (e: Record<string, unknown>) => void;

  constructor(private readonly opts: AgentOptions) {
    this.log = opts.log ?? ((e) => process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), ...e })}\n`));
  }

  /** Retry `fn` with exponential backoff (0.5 s .. 5 s) until it succeeds or the agent stops. */
  private async retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
      try {
        return await fn();
      } catch (e) {
        if (this.stopped) throw e;
        this.metrics.etcdErrors++;
        this.log({ level: "warn", msg: `${what} failed, retrying`, error: (e as Error).message, retryInMs: delay });
        await sleep(delay);
      }
    }
  }

  private underlay(): { iface: string; publicIP: string; mtu: number } {
    let iface = this.opts.iface;
    if (!iface) {
      const r = listRoutes(this.conn, { family: 4 }).find((x) => x.dst === "0.0.0.0/0" && x.oif);
      if (!r) throw new CniError(ErrorCode.InvalidNetworkConfig, "agent: no --iface given and no default route to find one");
      iface = getLink(this.conn, r.oif!).name;
    }
    const link = getLink(this.conn, iface);
    const publicIP = this.opts.publicIP ?? listAddresses(this.conn, { link: link.index, family: 4 }).find((a) => a.scope === 0)?.cidr.split("/")[0];
    if (!publicIP) throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: ${iface} has no IPv4 address; give --public-ip`);
    return { iface, publicIP, mtu: link.mtu };
  }

  /** Our subnet: the lease we already hold, else the one in subnet.env if free, else a free one. */
  private async lease(publicIP: string): Promise<IPNet> {
    const plan = this.config.v4;
    if (!plan) throw new CniError(ErrorCode.InvalidNetworkConfig, "agent: only IPv4 networks are supported by the agent so far");
    for (let attempt = 0; attempt < 20; attempt++) {
      const leases = await this.store.listLeases();
      const own = leases.find((l) => l.attrs.publicIP === publicIP && l.subnet.prefix === plan.subnetLen);
      if (own) {
        await this.store.renew(own.subnet, this.attrs, this.opts.ttlSec);
        this.log({ level: "info", msg: "reusing our lease", subnet: formatCIDR(own.subnet) });
        return own.subnet;
      }
      const taken = new Set(leases.map((l) => formatCIDR(l.subnet)));
      const previous = readSubnetEnvSafe(this.opts.subnetFile);
      const want = previous && !taken.has(formatCIDR(previous)) ? previous : pickFreeSubnet(plan, taken);
      if (!want) throw new CniError(ErrorCode.TryAgainLater, `agent: no free subnet left in ${formatCIDR(plan.network)}`);
      if (await this.store.acquire(want, this.attrs, this.opts.ttlSec)) {
        this.log({ level: "info", msg: "leased a subnet", subnet: formatCIDR(want) });
        return want;
      }
    }
    throw new CniError(ErrorCode.TryAgainLater, "agent: could not lease a subnet (too many conflicts)");
  }

  /** Start: lease, backend, subnet.env, programmed peers, watch. */
  async start(): Promise<void> {
    this.conn = NetlinkConn.open();
    this.store = new LeaseStore(await connectEtcd(this.opts.etcd), this.opts.prefix);
    this.config = await this.retry("reading the network config", () => this.store.getConfig());
    if (!this.config.v4) throw new CniError(ErrorCode.InvalidNetworkConfig, "agent: the network config has no IPv4 Network; IPv6-only networks are not supported yet");
    if (this.config.v6) this.log({ level: "warn", msg: "IPv6Network is not leased yet: pods get IPv4 addresses only" });
    const { iface, publicIP, mtu } = this.underlay();
    const b = this.config.backend;
    this.attrs = { publicIP, backendType: b.type, ...(b.type === "vxlan" ? { backendData: { VNI: b.vni } } : {}) };
    this.subnet = await this.retry("leasing a subnet", () => this.lease(publicIP));
    this.backend = createBackend(b.type, {
      conn: this.conn,
      localSubnet: formatCIDR(this.subnet),
      publicIP,
      underlay: iface,
      vni: b.vni,
      port: b.port,
      ...(b.mtu ? { mtu: b.mtu } : {}),
      directRouting: b.directRouting,
      deviceName: `${this.opts.devicePrefix ?? "cnikit"}.${b.vni}`,
    });
    const set = this.backend.setup();
    this.attrs = { ...this.attrs, backendData: { ...(this.attrs.backendData ?? {}), ...set.backendData } };
    await this.retry("writing our lease", () => this.store.renew(this.subnet, this.attrs, this.opts.ttlSec));
    const network = this.config.v4!.network;
    const gw = { ip: addIP(networkOf(this.subnet).ip, 1n), prefix: this.subnet.prefix };
    writeSubnetEnv(this.opts.subnetFile, { network: formatCIDR(network), subnet: formatCIDR(gw), mtu: set.mtu || mtu, ipMasq: this.opts.ipMasq });
    if (this.opts.ipMasq) installMasquerade([network]);
    // watch first, then read: a change between the two is seen twice (harmless), never missed
    await this.startWatch();
    await this.retry("the first sync", () => this.resync());
    // a periodic full read catches whatever a watch could miss; failures keep what is programmed
    this.timer = setInterval(() => {
      this.resync().catch((e) => {
        this.metrics.etcdErrors++;
        this.log({ level: "warn", msg: "periodic resync failed", error: (e as Error).message });
      });
    }, 30_000);
    if (this.opts.healthz) this.serve(this.opts.healthz);
    this.log({ level: "info", msg: "agent ready", subnet: formatCIDR(this.subnet), publicIP, backend: b.type });
  }

  /** Watch the leases; a watch the server cancels (compacted revision) is replaced after a full read. */
  private async startWatch(): Promise<void> {
    this.stopWatch = await this.retry("watching the leases", () =>
      this.store.watch({
        put: (l) => this.onPut(l),
        del: (s) => this.onDelete(s),
        reconnected: () => {
          this.log({ level: "info", msg: "watch reconnected, resyncing" });
          this.etcdDown = false;
          void this.retry("resync after reconnect", () => this.resync());
        },
        canceled: (e) => {
          if (this.stopped) return;
          this.log({ level: "warn", msg: "etcd canceled the watch, resyncing and watching again", error: e.message });
          void (async () => {
            // the dead watcher is dropped, not canceled: there is nothing on the server to cancel
            // and a cancel would wait for an answer that never comes
            await this.retry("resync after a canceled watch", () => this.resync());
            await this.startWatch();
          })();
        },
        error: (e) => {
          this.metrics.etcdErrors++;
          // the client retries on its own; say so once per outage, not at every attempt
          if (!this.etcdDown) this.log({ level: "warn", msg: "lost the watch on etcd; keeping what is programmed", error: e.message });
          this.etcdDown = true;
        },
      }),
    );
  }

  private isOurs(subnet: IPNet): boolean {
    return formatCIDR(subnet) === formatCIDR(this.subnet);
  }

  private peerOf(l: SubnetLease) {
    const mac = l.attrs.backendData?.VtepMAC;
    return { subnet: formatCIDR(l.subnet), publicIP: l.attrs.publicIP, ...(typeof mac === "string" ? { vtepMAC: mac } : {}) };
  }

  /** A lease we program: another node's, of our backend, complete (a vxlan lease gets its VTEP MAC
   * only once its node has set up its device; until then it is left alone). */
  private wanted(l: SubnetLease): boolean {
    if (this.isOurs(l.subnet) || l.attrs.backendType !== this.backend.type) return false;
    return this.backend.type !== "vxlan" || typeof l.attrs.backendData?.VtepMAC === "string";
  }

  private onPut(l: SubnetLease): void {
    if (!this.wanted(l)) return;
    const peer = this.peerOf(l);
    if (this.known.get(peer.subnet) === JSON.stringify(peer)) return; // a rewrite that changes nothing
    try {
      this.backend.addPeer(peer);
      this.known.set(peer.subnet, JSON.stringify(peer));
      this.metrics.peers = this.backend.programmedSubnets().length;
      this.log({ level: "info", msg: "peer added", subnet: formatCIDR(l.subnet), publicIP: l.attrs.publicIP });
    } catch (e) {
      this.log({ level: "error", msg: "adding a peer failed", subnet: formatCIDR(l.subnet), error: (e as Error).message });
    }
  }

  private onDelete(subnet: IPNet): void {
    if (this.isOurs(subnet)) {
      // somebody removed our lease while we run: take it back, or pods here would lose their routes
      if (!this.stopped) {
        this.log({ level: "warn", msg: "our lease was removed, writing it again", subnet: formatCIDR(subnet) });
        void this.retry("writing our lease again", () => this.store.renew(this.subnet, this.attrs, this.opts.ttlSec));
      }
      return;
    }
    try {
      this.backend.removePeer({ subnet: formatCIDR(subnet) });
      this.known.delete(formatCIDR(subnet));
      this.metrics.peers = this.backend.programmedSubnets().length;
      this.log({ level: "info", msg: "peer removed", subnet: formatCIDR(subnet) });
    } catch (e) {
      this.log({ level: "error", msg: "removing a peer failed", subnet: formatCIDR(subnet), error: (e as Error).message });
    }
  }

  /** Full read: program every other lease, remove what is programmed but has no lease, rewrite ours if needed. */
  async resync(): Promise<void> {
    const leases = await this.store.listLeases();
    // our key lives as long as our etcd lease (kept alive by the client); write it only when it is
    // gone or says something else, so that peers are not woken up for nothing
    const own = leases.find((l) => this.isOurs(l.subnet));
    if (!own || encodeLease(own.attrs) !== encodeLease(this.attrs)) await this.store.renew(this.subnet, this.attrs, this.opts.ttlSec);
    const want = new Map<string, SubnetLease>();
    for (const l of leases) if (this.wanted(l)) want.set(formatCIDR(l.subnet), l);
    const before = new Set(this.backend.programmedSubnets());
    let added = 0;
    let removed = 0;
    for (const l of want.values()) {
      try {
        const peer = this.peerOf(l);
        this.backend.addPeer(peer);
        this.known.set(peer.subnet, JSON.stringify(peer));
        if (!before.has(formatCIDR(l.subnet))) added++;
      } catch (e) {
        // one bad peer must not keep the others from being programmed
        this.log({ level: "error", msg: "adding a peer failed", subnet: formatCIDR(l.subnet), error: (e as Error).message });
      }
    }
    for (const s of before) {
      if (want.has(s)) continue;
      this.backend.removePeer({ subnet: s });
      this.known.delete(s);
      removed++;
    }
    this.metrics.leases = leases.length;
    this.metrics.peers = this.backend.programmedSubnets().length;
    this.metrics.lastSyncMs = Date.now();
    if (added || removed) this.log({ level: "info", msg: "resynced", peers: this.metrics.peers, added, removed });
  }

  private serve(at: { host: string; port: number }): void {
    this.server = Bun.serve({
      hostname: at.host,
      port: at.port,
      fetch: (req) => {
        const path = new URL(req.url).pathname;
        if (path === "/healthz") {
          const fresh = Date.now() - this.metrics.lastSyncMs < 120_000;
          return new Response(fresh ? "ok\n" : "stale\n", { status: fresh ? 200 : 503 });
        }
        if (path === "/metrics") {
          const m = this.metrics;
          return new Response(
            [
              "# TYPE cnikit_agent_leases gauge", `cnikit_agent_leases ${m.leases}`,
              "# TYPE cnikit_agent_peers gauge", `cnikit_agent_peers ${m.peers}`,
              "# TYPE cnikit_agent_etcd_errors_total counter", `cnikit_agent_etcd_errors_total ${m.etcdErrors}`,
              "# TYPE cnikit_agent_last_sync_timestamp_seconds gauge", `cnikit_agent_last_sync_timestamp_seconds ${Math.floor(m.lastSyncMs / 1000)}`,
              "",
            ].join("\n"),
            { headers: { "content-type": "text/plain; version=0.0.4" } },
          );
        }
        return new Response("not found\n", { status: 404 });
      },
    });
  }

  /** Stop watching and serving; programmed routes and the lease stay (a restart takes them back). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.stopWatch?.().catch(() => {});
    this.server?.stop(true);
    this.store?.close();
    this.conn?.close();
  }
}

function readSubnetEnvSafe(path: string): IPNet | undefined {
  try {
    const env = readSubnetEnv(path);
    const n = env?.subnet ? parseCIDR(env.subnet) : undefined;
    return n ? networkOf(n) : undefined;
  } catch {
    return undefined;
  }
}

/** The subnet's gateway address text ("10.244.3.1"), for logs and tests. */
export function gatewayOf(subnet: IPNet): string {
  return formatIP(addIP(networkOf(subnet).ip, 1n));
}
