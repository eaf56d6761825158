/**
 * The node agent (`cnikit agent`): leases this node's subnet in etcd (its own lease again after a
 * restart, matched by public IP, else the subnet of its subnet.env, else a free one), sets up the
 * backend, writes subnet.env, programs every other node's subnet and follows the leases through a
 * watch, resyncing from a full read after the watch was lost. While etcd is unreachable it keeps
 * what is programmed and retries with backoff. Tells its health and metrics (served by
 * `cnikit agent` with the CNI server's, see http.ts); logs JSON lines.
 */

import { NetlinkConn } from "../netlink/conn.ts";
import { listAddresses } from "../net/addr.ts";
import { getLink } from "../net/link.ts";
import { listRoutes } from "../net/route.ts";
import { readSubnetEnv, writeSubnetEnv } from "../ipam/subnet-env.ts";
import { CniError, ErrorCode } from "../spec/error.ts";
import { addIP, containsIP, formatCIDR, formatIP, networkOf, parseCIDR, parseIP, type IPNet } from "../spec/ip.ts";
import { RTPROT_BIRD } from "./backend-bgp.ts";
import { createBackend, type Backend, type Peer } from "./backend.ts";
import { DEFAULT_AGENT_PIN_DIR } from "./backend-ebpf.ts";
import type { BgpSessionState } from "./bird.ts";
import { encodeLease, leaseId, leaseKey, pickFreeSubnet, type LeaseAttrs, type LeaseSubnets } from "./lease.ts";
import { waitingFor } from "./log.ts";
import { installMasquerade } from "./masq.ts";
import { RTPROT_CNIKIT } from "./peer-routes.ts";
import type { FamilyPlan, NetworkConfig } from "./netconfig.ts";
import { connectEtcd, LeaseStore, type EtcdOptions, type SubnetLease } from "./store.ts";

/** What `cnikit agent` is told. */
export interface AgentOptions {
  etcd: EtcdOptions;
  prefix: string;
  /** Underlay interface (default: the default route's). */
  iface?: string;
  /** Address other nodes reach this one at (default: the underlay interface's first IPv4). */
  publicIP?: string;
  /** Its IPv6 address, for an IPv6 network (default: the interface's first global IPv6). */
  publicIPv6?: string;
  subnetFile: string;
  ipMasq: boolean;
  /** etcd lease TTL in seconds (default 24 h). */
  ttlSec: number;
  /** vxlan device name prefix: the device is `<prefix>.<VNI>` (default "cnikit"). */
  devicePrefix?: string;
  /** bgp backend: BIRD's config, control socket and log go here (default /run/cnikit/bird). */
  birdDir?: string;
  /** vxlan backend with `"Datapath": "ebpf"`: the datapath's pin directory (default /sys/fs/bpf/cnikit/overlay). */
  bpfPinDir?: string;
  /**
   * A network config (flannel's net-conf.json) to write at `<prefix>/config` when etcd has none
   * (create-only: an existing config is never overwritten).
   */
  netConf?: string;
  /**
   * Where `--healthz` serves the status endpoints: named in our lease (`CnikitStatusURL`) unless
   * it is a loopback address (an unspecified one, 0.0.0.0 or ::, is named by the public IP).
   */
  statusAt?: { host: string; port: number };
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


/** The running agent. */
export class Agent {
  readonly metrics: AgentMetrics = { leases: 0, peers: 0, etcdErrors: 0, lastSyncMs: 0 };
  private store!: LeaseStore;
  /** The IPv4 side (none on an IPv6-only network). */
  private backend: Backend | undefined;
  /** The IPv6 side of a dual-stack or IPv6-only network. */
  private backend6: Backend | undefined;
  private config!: NetworkConfig;
  private subnet: IPNet | undefined;
  private subnet6: IPNet | undefined;
  private attrs!: LeaseAttrs;
  private conn!: NetlinkConn;
  private stopWatch: (() => Promise<void>) | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private stopped = false;
  /** Aborted by stop(): ends a retry's wait. */
  private readonly stopping = new AbortController();
  private etcdDown = false;
  /** Whether start() wrote our lease (until then a resync leaves it alone). */
  private leaseWritten = false;
  /** What each programmed peer was programmed from (to skip lease rewrites that change nothing). */
  private readonly known = new Map<string, string>();
  private readonly log: (e: Record<string, unknown>) => void;

  constructor(private readonly opts: AgentOptions) {
    this.log = opts.log ?? ((e) => process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), ...e })}\n`));
  }

  /**
   * Retry `fn` with exponential backoff (0.5 s .. 5 s, cockatiel's policy) until it succeeds or
   * the agent stops (which also cuts a wait short). Each failure is counted and logged with what
   * the agent waits for.
   */
  private async retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const { ExponentialBackoff, handleWhen, noJitterGenerator, retry } = await import("cockatiel");
    const policy = retry(handleWhen(() => !this.stopped), {
      maxAttempts: Number.POSITIVE_INFINITY,
      backoff: new ExponentialBackoff({ initialDelay: 500, maxDelay: 5000, generator: noJitterGenerator }),
    });
    const listener = policy.onRetry((r) => {
      this.metrics.etcdErrors++;
      const e = "error" in r ? r.error : new Error(String(r.value));
      this.log({ level: "warn", msg: waitingFor(what, e), error: e.message, retryInMs: Math.round(r.delay) });
    });
    try {
      return await policy.execute(() => fn(), this.stopping.signal);
    } finally {
      listener.dispose();
    }
  }

  /**
   * The underlay interface, its MTU and this node's public addresses. An IPv6-only network's lease
   * still carries a PublicIP, as flannel's does: the interface's IPv4 address if it has one, else
   * 0.0.0.0.
   */
  private underlay(): { iface: string; publicIP: string; publicIPv6?: string; mtu: number } {
    let iface = this.opts.iface;
    if (!iface) {
      const r = listRoutes(this.conn, { family: 4 }).find((x) => x.dst === "0.0.0.0/0" && x.oif);
      if (!r) throw new CniError(ErrorCode.InvalidNetworkConfig, "agent: no --iface given and no default route to find one");
      iface = getLink(this.conn, r.oif!).name;
    }
    const asIP = parseIP(iface);
    if (asIP) {
      // --iface may name the interface by one of its addresses, as flannel allows
      const want = formatIP(asIP);
      const hit = listAddresses(this.conn, {}).find((a) => a.cidr.split("/")[0] === want);
      if (!hit) throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: no interface has the address ${want} (--iface)`);
      iface = getLink(this.conn, hit.index).name;
    }
    const link = getLink(this.conn, iface);
    const first = (family: 4 | 6) => listAddresses(this.conn, { link: link.index, family }).find((a) => a.scope === 0)?.cidr.split("/")[0];
    const publicIP = this.opts.publicIP ?? first(4) ?? (this.config.v4 ? undefined : "0.0.0.0");
    if (!publicIP) throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: ${iface} has no IPv4 address; give --public-ip`);
    if (!this.config.v6) return { iface, publicIP, mtu: link.mtu };
    const publicIPv6 = this.opts.publicIPv6 ?? first(6);
    if (!publicIPv6) throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: the network has an IPv6Network but ${iface} has no global IPv6 address; give --public-ipv6`);
    return { iface, publicIP, publicIPv6, mtu: link.mtu };
  }

  /**
   * Our subnets: the lease we already hold (same public IP; on an IPv6-only network, same public
   * IPv6), else those in subnet.env if free, else free ones. A lease of ours whose families or
   * subnet sizes no longer fit the network is replaced.
   */
  private async lease(publicIP: string, publicIPv6: string | undefined): Promise<LeaseSubnets> {
    const plan = this.config.v4;
    const plan6 = this.config.v6;
    const fits = (l: SubnetLease) => (plan ? l.subnet?.prefix === plan.subnetLen : !l.subnet) && (plan6 ? l.subnet6?.prefix === plan6.subnetLen : !l.subnet6);
    for (let attempt = 0; attempt < 60; attempt++) {
      const { leases, revision } = await this.store.listLeasesAt();
      const own = leases.find((l) => (plan ? l.attrs.publicIP === publicIP && l.subnet : l.attrs.publicIPv6 === publicIPv6 && l.subnet6));
      if (own && fits(own)) {
        // not rewritten yet: that happens once the backend is set up, with its VTEP MAC; a value
        // without one now would make the other nodes drop their routes to us meanwhile
        const s = subnetsOf(own);
        this.log({ level: "info", msg: "reusing our lease", ...subnetFields(s) });
        return s;
      }
      if (own) {
        await this.store.remove(own.key); // the network's families or sizes changed: lease again
        continue;
      }
      const previous = readSubnetEnvSafe(this.opts.subnetFile);
      const pick = (p: FamilyPlan, taken: Set<string>, prev: IPNet | undefined) =>
        prev && prev.prefix === p.subnetLen && containsIP(p.network, prev.ip) && !taken.has(formatCIDR(prev)) ? prev : pickFreeSubnet(p, taken);
      let v4: IPNet | undefined;
      if (plan) {
        v4 = pick(plan, new Set(leases.flatMap((l) => (l.subnet ? [formatCIDR(l.subnet)] : []))), previous?.v4);
        if (!v4) throw new CniError(ErrorCode.TryAgainLater, `agent: no free subnet left in ${formatCIDR(plan.network)}`);
      }
      let v6: IPNet | undefined;
      if (plan6) {
        v6 = pick(plan6, new Set(leases.flatMap((l) => (l.subnet6 ? [formatCIDR(l.subnet6)] : []))), previous?.v6);
        if (!v6) throw new CniError(ErrorCode.TryAgainLater, `agent: no free IPv6 subnet left in ${formatCIDR(plan6.network)}`);
      }
      const want: LeaseSubnets = { ...(v4 ? { v4 } : {}), ...(v6 ? { v6 } : {}) };
      // a key naming one subnet is exact on its own; a dual-stack one needs the listing unchanged
      if (await this.store.acquire(want, this.attrs, this.opts.ttlSec, v4 && v6 ? revision : undefined)) {
        this.log({ level: "info", msg: "leased a subnet", ...subnetFields(want) });
        return want;
      }
      // another node leased meanwhile: read again, after a short random pause so that nodes
      // starting together do not keep colliding
      await Bun.sleep(20 + Math.random() * 80);
    }
    throw new CniError(ErrorCode.TryAgainLater, "agent: could not lease a subnet (too many conflicts)");
  }

  private ours(): LeaseSubnets {
    return { ...(this.subnet ? { v4: this.subnet } : {}), ...(this.subnet6 ? { v6: this.subnet6 } : {}) };
  }

  /** Start: lease, backend, subnet.env, programmed peers, watch. */
  async start(): Promise<void> {
    this.conn = NetlinkConn.open();
    this.store = new LeaseStore(await connectEtcd(this.opts.etcd), this.opts.prefix);
    const netConf = this.opts.netConf;
    if (netConf !== undefined) {
      const created = await this.retry("writing the network config", () => this.store.createConfig(netConf));
      this.log({ level: "info", msg: created ? "wrote the network config into etcd (--net-conf)" : "etcd already holds a network config: --net-conf left unused", key: `${this.opts.prefix}/config` });
    }
    this.config = await this.retry("reading the network config", () => this.store.getConfig());
    const { iface, publicIP, publicIPv6, mtu } = this.underlay();
    const b = this.config.backend;
    const v4 = this.config.v4 !== undefined;
    this.attrs = {
      publicIP,
      ...(publicIPv6 ? { publicIPv6 } : {}),
      backendType: b.type,
      // as flannel: each family's VTEP in its own field, only for the families the network has
      ...(b.type === "vxlan" ? { ...(v4 ? { backendData: { VNI: b.vni } } : {}), ...(publicIPv6 ? { backendV6Data: { VNI: b.vni } } : {}) } : {}),
    };
    const statusURL = statusURLOf(this.opts.statusAt, publicIP !== "0.0.0.0" ? publicIP : (publicIPv6 ?? publicIP));
    if (statusURL) this.attrs.statusURL = statusURL;
    const leased = await this.retry("leasing a subnet", () => this.lease(publicIP, publicIPv6));
    this.subnet = leased.v4;
    this.subnet6 = leased.v6;
    const prefix = this.opts.devicePrefix ?? "cnikit";
    const common = { conn: this.conn, underlay: iface, vni: b.vni, port: b.port, directRouting: b.directRouting, ...(b.mtu ? { mtu: b.mtu } : {}) };
    if (b.bgp && this.config.v4) {
      Object.assign(common, { bgp: { config: b.bgp, network: formatCIDR(this.config.v4.network), log: this.log, ...(this.opts.birdDir ? { dir: this.opts.birdDir } : {}) } });
    }
    let podMtu = Infinity;
    let bigTcp: number | undefined;
    const ebpf = b.datapath === "ebpf" ? { datapath: "ebpf" as const, bpfPinDir: this.opts.bpfPinDir ?? DEFAULT_AGENT_PIN_DIR, bigTcp: b.bigTcp } : undefined;
    if (this.subnet) {
      this.backend = createBackend(b.type, { ...common, ...ebpf, localSubnet: formatCIDR(this.subnet), publicIP, deviceName: `${prefix}.${b.vni}` });
      const set = this.backend.setup();
      for (const w of set.warnings ?? []) this.log({ level: "warn", msg: w });
      bigTcp = set.bigTcp;
      this.attrs.backendData = { ...(this.attrs.backendData ?? {}), ...set.backendData };
      podMtu = Math.min(podMtu, set.mtu || mtu);
    }
    if (this.subnet6 && publicIPv6) {
      this.backend6 = createBackend(b.type, { ...common, family: 6, localSubnet: formatCIDR(this.subnet6), publicIP: publicIPv6, deviceName: `${prefix}-v6.${b.vni}` });
      const set6 = this.backend6.setup();
      if (b.type === "vxlan") this.attrs.backendV6Data = { ...(this.attrs.backendV6Data ?? {}), ...set6.backendData };
      podMtu = Math.min(podMtu, set6.mtu || mtu);
    }
    // watch first, then read: a change between the two is seen twice (harmless), never missed.
    // The first sync programs the peers and starts what runs beside the agent (BIRD) before our
    // lease is written: a peer that sees the lease finds this node ready for it (a BGP session
    // is then up at the peer's first connect, not at its retry)
    await this.startWatch();
    await this.retry("the first sync", () => this.resync());
    await this.retry("writing our lease", () => this.store.renew(this.ours(), this.attrs, this.opts.ttlSec));
    this.leaseWritten = true;
    const gateway = (n: IPNet) => formatCIDR({ ip: addIP(networkOf(n).ip, 1n), prefix: n.prefix });
    const network = this.config.v4?.network;
    const network6 = this.config.v6?.network;
    writeSubnetEnv(this.opts.subnetFile, {
      ...(network && this.subnet ? { network: formatCIDR(network), subnet: gateway(this.subnet) } : {}),
      ...(network6 && this.subnet6 ? { ipv6Network: formatCIDR(network6), ipv6Subnet: gateway(this.subnet6) } : {}),
      mtu: podMtu,
      ipMasq: this.opts.ipMasq,
      // the overlay plugin's "datapath": "ebpf" attaches pods to the maps pinned here
      ...(ebpf && this.subnet ? { bpfPinDir: ebpf.bpfPinDir } : {}),
      ...(bigTcp ? { bigTcp } : {}),
    });
    if (this.opts.ipMasq) installMasquerade([network, network6].filter((n): n is IPNet => n !== undefined));
    // a periodic full read catches whatever a watch could miss; failures keep what is programmed
    this.timer = setInterval(() => {
      this.resync().catch((e) => {
        this.metrics.etcdErrors++;
        this.log({ level: "warn", msg: "periodic resync failed", error: (e as Error).message });
      });
    }, 30_000);
    this.log({ level: "info", msg: "agent ready", ...subnetFields(this.ours()), publicIP, ...(publicIPv6 ? { publicIPv6 } : {}), backend: b.type });
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
          this.retry("resync after reconnect", () => this.resync()).catch(() => {}); // rejects only when the agent stops
        },
        canceled: (e) => {
          if (this.stopped) return;
          this.log({ level: "warn", msg: "etcd canceled the watch, resyncing and watching again", error: e.message });
          void (async () => {
            // the dead watcher is dropped, not canceled: there is nothing on the server to cancel
            // and a cancel would wait for an answer that never comes. Watch first, then read, as
            // at start: a change between the two is seen twice (harmless), never missed (read
            // first, a lease deleted between the read and the new watch stayed programmed)
            await this.startWatch();
            await this.retry("resync after a canceled watch", () => this.resync());
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

  private isOurs(s: LeaseSubnets): boolean {
    return leaseId(s) === leaseId(this.ours());
  }

  private backends(): Backend[] {
    return [this.backend, this.backend6].filter((b): b is Backend => b !== undefined);
  }

  /**
   * What to program for another node's lease: its IPv4 side, and its IPv6 side when both have one.
   * A vxlan side is left alone until its VTEP MAC is in the lease (written once the node has set
   * up its device), a bgp node until its AS is (written once its BIRD runs).
   */
  private peersOf(l: SubnetLease): [Backend, Peer][] {
    if (this.isOurs(subnetsOf(l)) || l.attrs.backendType !== this.config.backend.type) return [];
    const vxlan = this.config.backend.type === "vxlan";
    const out: [Backend, Peer][] = [];
    const mac = l.attrs.backendData?.VtepMAC;
    // a bgp node is a peer once its lease names its AS: written when its BIRD runs (the lease's
    // first write, when the subnet is taken, comes before), so a peer's first connect finds it
    const bgpReady = this.config.backend.type !== "bgp" || typeof l.attrs.backendData?.ASNumber === "number";
    if (this.backend && l.subnet && bgpReady && (!vxlan || typeof mac === "string")) {
      out.push([this.backend, { subnet: formatCIDR(l.subnet), publicIP: l.attrs.publicIP, ...(vxlan ? { vtepMAC: mac as string } : {}) }]);
    }
    const mac6 = l.attrs.backendV6Data?.VtepMAC;
    if (this.backend6 && l.subnet6 && l.attrs.publicIPv6 && (!vxlan || typeof mac6 === "string")) {
      out.push([this.backend6, { subnet: formatCIDR(l.subnet6), publicIP: l.attrs.publicIPv6, ...(vxlan ? { vtepMAC: mac6 as string } : {}) }]);
    }
    return out;
  }

  private countPeers(): number {
    return this.backends().reduce((n, b) => n + b.programmedSubnets().length, 0);
  }

  private onPut(l: SubnetLease): void {
    for (const [backend, peer] of this.peersOf(l)) {
      if (this.known.get(peer.subnet) === JSON.stringify(peer)) continue; // a rewrite that changes nothing
      try {
        const warning = backend.addPeer(peer);
        this.known.set(peer.subnet, JSON.stringify(peer));
        this.log({ level: "info", msg: "peer added", subnet: peer.subnet, publicIP: peer.publicIP });
        if (warning) this.log({ level: "warn", msg: warning, subnet: peer.subnet });
      } catch (e) {
        this.log({ level: "error", msg: "adding a peer failed", subnet: peer.subnet, error: (e as Error).message });
      }
    }
    this.metrics.peers = this.countPeers();
  }

  private onDelete(s: LeaseSubnets): void {
    if (this.isOurs(s)) {
      // somebody removed our lease while we run: take it back, or pods here would lose their routes
      if (!this.stopped) {
        this.log({ level: "warn", msg: "our lease was removed, writing it again", ...subnetFields(s) });
        this.retry("writing our lease again", () => this.store.renew(this.ours(), this.attrs, this.opts.ttlSec)).catch(() => {}); // rejects only when the agent stops
      }
      return;
    }
    const sides: [Backend | undefined, IPNet | undefined][] = [[this.backend, s.v4], [this.backend6, s.v6]];
    for (const [backend, subnet] of sides) {
      if (!backend || !subnet) continue;
      const key = formatCIDR(subnet);
      try {
        backend.removePeer({ subnet: key });
        this.known.delete(key);
        this.log({ level: "info", msg: "peer removed", subnet: key });
      } catch (e) {
        this.log({ level: "error", msg: "removing a peer failed", subnet: key, error: (e as Error).message });
      }
    }
    this.metrics.peers = this.countPeers();
  }

  /** Full read: program every other lease, remove what is programmed but has no lease, rewrite ours if needed. */
  async resync(): Promise<void> {
    const leases = await this.store.listLeases();
    // our key lives as long as our etcd lease (kept alive by the client); write it only when it is
    // gone or says something else, so that peers are not woken up for nothing
    const own = leases.find((l) => this.isOurs(subnetsOf(l)));
    const ownKey = leaseKey(this.opts.prefix, this.subnet, this.subnet6);
    if (this.leaseWritten && (!own || own.key !== ownKey || encodeLease(own.attrs) !== encodeLease(this.attrs))) await this.store.renew(this.ours(), this.attrs, this.opts.ttlSec);
    const want = new Map<Backend, Map<string, Peer>>(this.backends().map((b) => [b, new Map()]));
    for (const l of leases) for (const [b, p] of this.peersOf(l)) want.get(b)!.set(p.subnet, p);
    let added = 0;
    let removed = 0;
    for (const [backend, peers] of want) {
      const before = new Set(backend.programmedSubnets());
      for (const peer of peers.values()) {
        try {
          const warning = backend.addPeer(peer);
          this.known.set(peer.subnet, JSON.stringify(peer));
          if (!before.has(peer.subnet)) added++;
          if (warning) this.log({ level: "warn", msg: warning, subnet: peer.subnet });
        } catch (e) {
          // one bad peer must not keep the others from being programmed
          this.log({ level: "error", msg: "adding a peer failed", subnet: peer.subnet, error: (e as Error).message });
        }
      }
      for (const s of before) {
        if (peers.has(s)) continue;
        backend.removePeer({ subnet: s });
        this.known.delete(s);
        removed++;
      }
    }
    this.metrics.leases = leases.length;
    this.metrics.peers = this.countPeers();
    this.metrics.lastSyncMs = Date.now();
    await Promise.all(this.backends().map((be) => be.afterSync?.()));
    if (added || removed) this.log({ level: "info", msg: "resynced", peers: this.metrics.peers, added, removed });
  }

  /** bgp backend: this node's BGP sessions as last read from BIRD (undefined: no bgp backend, or BIRD does not answer). */
  bgpSessions(): BgpSessionState[] | undefined {
    return this.backend?.sessions?.();
  }

  /** Whether the last full sync is under 2 minutes old (/healthz). */
  healthy(): boolean {
    return Date.now() - this.metrics.lastSyncMs < 120_000;
  }

  /** The agent's metrics in Prometheus' text format. */
  metricsText(): string {
    const m = this.metrics;
    return [
      "# HELP cnikit_agent_leases Subnet leases in etcd at the last full sync, this node's included.",
      "# TYPE cnikit_agent_leases gauge", `cnikit_agent_leases ${m.leases}`,
      "# HELP cnikit_agent_peers Other nodes' subnets programmed on this node.",
      "# TYPE cnikit_agent_peers gauge", `cnikit_agent_peers ${m.peers}`,
      "# HELP cnikit_agent_etcd_errors_total etcd calls that failed (each retry counts).",
      "# TYPE cnikit_agent_etcd_errors_total counter", `cnikit_agent_etcd_errors_total ${m.etcdErrors}`,
      "# HELP cnikit_agent_last_sync_timestamp_seconds When the last full sync with etcd finished (Unix time).",
      "# TYPE cnikit_agent_last_sync_timestamp_seconds gauge", `cnikit_agent_last_sync_timestamp_seconds ${Math.floor(m.lastSyncMs / 1000)}`,
      ...this.routesMetric(),
      "",
    ].join("\n") + this.backends().map((be) => be.metricsText?.() ?? "").join("");
  }

  /**
   * `cnikit_agent_routes`: routes to other nodes' subnets in the kernel's main table, by who wrote
   * them (the agent's own, protocol 210, for vxlan and host-gw; BIRD's, protocol 12, for bgp).
   */
  private routesMetric(): string[] {
    if (!this.conn) return [];
    let agent = 0;
    let bird = 0;
    try {
      for (const r of listRoutes(this.conn, {})) {
        if (r.protocol === RTPROT_CNIKIT) agent++;
        else if (r.protocol === RTPROT_BIRD) bird++;
      }
    } catch {
      return []; // not readable now: no sample rather than a wrong one
    }
    return [
      "# HELP cnikit_agent_routes Routes to other nodes' subnets in the kernel, by who wrote them (agent: vxlan and host-gw; bird: the bgp backend's BIRD).",
      "# TYPE cnikit_agent_routes gauge",
      `cnikit_agent_routes{protocol="agent"} ${agent}`,
      `cnikit_agent_routes{protocol="bird"} ${bird}`,
    ];
  }

  /** Stop watching; programmed routes and the lease stay (a restart takes them back). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    if (this.timer) clearInterval(this.timer);
    await this.stopWatch?.().catch(() => {});
    for (const be of this.backends()) await be.stop?.().catch((e) => this.log({ level: "warn", msg: "stopping the backend failed", error: (e as Error).message }));
    this.store?.close();
    this.conn?.close();
  }
}

/** The URL other nodes reach our status endpoints at; undefined for a loopback address. */
export function statusURLOf(at: { host: string; port: number } | undefined, publicIP: string): string | undefined {
  if (!at) return undefined;
  const h = at.host.toLowerCase();
  if (h === "localhost" || h === "::1" || /^127\./.test(h)) return undefined;
  const host = h === "" || h === "0.0.0.0" || h === "::" ? publicIP : at.host;
  return `http://${host.includes(":") ? `[${host}]` : host}:${at.port}`;
}

/** The subnets a listed lease names. */
function subnetsOf(l: SubnetLease): LeaseSubnets {
  return { ...(l.subnet ? { v4: l.subnet } : {}), ...(l.subnet6 ? { v6: l.subnet6 } : {}) };
}

/** Log fields naming a lease's subnets. */
function subnetFields(s: LeaseSubnets): Record<string, string> {
  return { ...(s.v4 ? { subnet: formatCIDR(s.v4) } : {}), ...(s.v6 ? { subnet6: formatCIDR(s.v6) } : {}) };
}

function readSubnetEnvSafe(path: string): { v4?: IPNet; v6?: IPNet } | undefined {
  try {
    const env = readSubnetEnv(path);
    const net = (c: string | undefined) => {
      const n = c ? parseCIDR(c) : undefined;
      return n ? networkOf(n) : undefined;
    };
    const v4 = net(env?.subnet);
    const v6 = net(env?.ipv6Subnet);
    return { ...(v4 ? { v4 } : {}), ...(v6 ? { v6 } : {}) };
  } catch {
    return undefined;
  }
}

/** The subnet's gateway address text ("10.244.3.1"), for logs and tests. */
export function gatewayOf(subnet: IPNet): string {
  return formatIP(addIP(networkOf(subnet).ip, 1n));
}
