/**
 * What `cnikit status`, `cnikit nodes`, `cnikit graph` and the agent's status page (`/ui`, polling
 * `/api/status`) show: the cluster's nodes read from the subnet leases in etcd (with each etcd
 * lease's time left), this node's attachments from the result cache, and the CNI request latency
 * read back from the agent's own /metrics text.
 */

import { networkInterfaces, hostname } from "node:os";
import type { Etcd3 } from "etcd3";
import pkg from "../../package.json" with { type: "json" };
import { listAttachments, type Attachment } from "../libcni/attachments.ts";
import { formatCIDR } from "../spec/ip.ts";
import type { BgpSessionState } from "./bird.ts";
import { decodeLease, subnetsOfKey } from "./lease.ts";
import { connectEtcd, type EtcdOptions } from "./store.ts";

/** One node of the cluster, as its lease describes it. */
export interface NodeInfo {
  /** The lease value's `NodeName` / `Hostname` when a writer adds one, else the public IP. */
  name: string;
  /** The lease key. */
  key: string;
  subnet?: string;
  subnet6?: string;
  publicIP: string;
  publicIPv6?: string;
  backend: string;
  vni?: number;
  vtepMAC?: string;
  vtepMAC6?: string;
  /** BackendData.Datapath ("ebpf") when the backend says so. */
  datapath?: string;
  /** Seconds left on the etcd lease the key is attached to; undefined for a key without one. */
  leaseTtlSec?: number;
  /**
   * bgp backend: the state of this node's BGP session with that node, as BIRD names it
   * ("Established", "Active", "Connect", ...); "no session" when there is none (route
   * reflectors, no mesh); "unknown" when this node's BIRD could not be asked. Unset for this node.
   */
  bgp?: string;
  /** Whether this is the node the command runs on. */
  self: boolean;
  /** Where the node's agent serves its status (the lease's `CnikitStatusURL`), when it says. */
  statusURL?: string;
  /** Another node's attachments, asked of its agent (`fetchPeerAttachments`). */
  attachments?: Attachment[];
  /** Why its attachments could not be had. */
  attachmentsError?: string;
}

/**
 * Fill in the BGP column of bgp nodes from this node's sessions (`birdc show protocols`, read by
 * the agent or by `cnikit nodes`; undefined when BIRD could not be asked). Returns the sessions
 * with peers that are not nodes (route reflectors, external peers).
 */
export function withBgpStates(nodes: NodeInfo[], sessions: readonly BgpSessionState[] | undefined): BgpSessionState[] {
  const byPeer = new Map((sessions ?? []).map((s) => [s.peerIP, s]));
  for (const n of nodes) {
    if (n.backend !== "bgp") continue;
    if (n.self) delete n.bgp;
    else n.bgp = sessions ? (byPeer.get(n.publicIP)?.state ?? "no session") : "unknown";
  }
  const addrs = new Set(nodes.map((n) => n.publicIP));
  return (sessions ?? []).filter((s) => !addrs.has(s.peerIP));
}

/** This machine's (this network namespace's) addresses, without prefix lengths. */
export function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

/**
 * Every node under `<prefix>/subnets/`, sorted by subnet; `self` marks the lease whose public
 * address is `selfIP` (or, without it, one of this machine's addresses).
 */
export async function readNodes(client: Etcd3, prefix: string, opts: { selfIP?: string } = {}): Promise<NodeInfo[]> {
  const res = await client.getAll().prefix(`${prefix}/subnets/`).exec();
  const local = opts.selfIP ? new Set([opts.selfIP]) : localAddresses();
  const ttls = new Map<string, number>();
  const nodes: NodeInfo[] = [];
  for (const kv of res.kvs) {
    const key = kv.key.toString();
    const subnets = subnetsOfKey(prefix, key);
    if (!subnets) continue;
    let attrs: ReturnType<typeof decodeLease>;
    let raw: Record<string, unknown>;
    try {
      attrs = decodeLease(kv.value.toString());
      raw = JSON.parse(kv.value.toString());
    } catch {
      continue; // a foreign or broken value
    }
    const named = [raw.NodeName, raw.Hostname].find((v): v is string => typeof v === "string" && v !== "");
    const n: NodeInfo = {
      name: named ?? (attrs.publicIP !== "0.0.0.0" ? attrs.publicIP : attrs.publicIPv6 ?? attrs.publicIP),
      key,
      ...(subnets.v4 ? { subnet: formatCIDR(subnets.v4) } : {}),
      ...(subnets.v6 ? { subnet6: formatCIDR(subnets.v6) } : {}),
      publicIP: attrs.publicIP,
      ...(attrs.publicIPv6 ? { publicIPv6: attrs.publicIPv6 } : {}),
      backend: attrs.backendType,
      self: local.has(attrs.publicIP) || (attrs.publicIPv6 !== undefined && local.has(attrs.publicIPv6)),
    };
    const bd = attrs.backendData ?? attrs.backendV6Data;
    if (typeof bd?.VNI === "number") n.vni = bd.VNI;
    if (typeof attrs.backendData?.VtepMAC === "string") n.vtepMAC = attrs.backendData.VtepMAC;
    if (typeof attrs.backendV6Data?.VtepMAC === "string") n.vtepMAC6 = attrs.backendV6Data.VtepMAC;
    if (typeof bd?.Datapath === "string") n.datapath = bd.Datapath;
    if (attrs.statusURL) n.statusURL = attrs.statusURL;
    const lease = String(kv.lease ?? "0");
    if (lease !== "0") {
      if (!ttls.has(lease)) {
        try {
          ttls.set(lease, Number((await client.leaseClient.leaseTimeToLive({ ID: lease })).TTL));
        } catch {
          ttls.set(lease, -1);
        }
      }
      n.leaseTtlSec = ttls.get(lease)!;
    }
    if (n.backend === "bgp" && !n.self) n.bgp = "unknown"; // until withBgpStates knows better
    nodes.push(n);
  }
  return nodes.sort((a, b) => (a.subnet ?? a.subnet6 ?? "").localeCompare(b.subnet ?? b.subnet6 ?? "", "en", { numeric: true }));
}

/** What an agent serves at `/api/attachments`: its node's attachments only. */
export interface AttachmentsDoc {
  host: string;
  attachments: Attachment[];
}

const str = (v: unknown): v is string => typeof v === "string";
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter(str) : []);

/** An attachment as another node's agent sent it, keeping only fields of the right types; undefined when it is not one. */
function peerAttachment(v: unknown): Attachment | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (!str(o.network) || !str(o.containerId) || !str(o.ifName)) return undefined;
  return {
    network: o.network,
    containerId: o.containerId,
    ifName: o.ifName,
    netns: str(o.netns) ? o.netns : "",
    addresses: strs(o.addresses),
    gateways: strs(o.gateways),
    hostInterfaces: strs(o.hostInterfaces),
    plugins: strs(o.plugins),
    createdMs: typeof o.createdMs === "number" ? o.createdMs : 0,
    ...(str(o.podName) ? { podName: o.podName } : {}),
    ...(str(o.podNamespace) ? { podNamespace: o.podNamespace } : {}),
    ...(str(o.mac) ? { mac: o.mac } : {}),
    ...(str(o.bridge) ? { bridge: o.bridge } : {}),
  };
}

/**
 * Ask every other node whose lease names its status URL for its attachments (`/api/attachments`),
 * all at once, each within `timeoutMs`; fills `attachments`, or `attachmentsError` when its agent
 * does not answer.
 */
export async function fetchPeerAttachments(nodes: NodeInfo[], timeoutMs = 1500): Promise<void> {
  await Promise.all(
    nodes
      .filter((n) => !n.self && n.statusURL)
      .map(async (n) => {
        try {
          const r = await fetch(`${n.statusURL}/api/attachments`, { signal: AbortSignal.timeout(timeoutMs) });
          if (!r.ok) throw new Error(`HTTP ${r.status}`);
          const doc = (await r.json()) as { attachments?: unknown };
          if (!Array.isArray(doc.attachments)) throw new Error("the answer lists no attachments");
          n.attachments = doc.attachments.map(peerAttachment).filter((a): a is Attachment => a !== undefined);
          delete n.attachmentsError;
        } catch (e) {
          n.attachmentsError = `${n.statusURL}: ${(e as Error).message}`;
        }
      }),
  );
}

/** One sample of the Prometheus text format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse the Prometheus text exposition format (comments skipped). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  const re = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = re.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(labelRe)) labels[l[1]!] = l[2]!.replace(/\\n/g, "\n").replace(/\\(["\\])/g, "$1");
    out.push({ name: m[1]!, labels, value: m[3] === "+Inf" ? Infinity : Number(m[3]) });
  }
  return out;
}

/** The latency histogram of one (plugin, verb). */
export interface LatencySeries {
  plugin: string;
  verb: string;
  /** Cumulative [upper bound in seconds, count] pairs, +Inf last. */
  buckets: [number, number][];
  sum: number;
  count: number;
}

/** The histogram `name` (default `cnikit_cni_request_duration_seconds`) by plugin and verb. */
export function latencySeries(samples: Sample[], name = "cnikit_cni_request_duration_seconds"): LatencySeries[] {
  const by = new Map<string, LatencySeries>();
  const get = (l: Record<string, string>) => {
    const k = `${l.plugin ?? ""}\u0000${l.verb ?? ""}`;
    let s = by.get(k);
    if (!s) by.set(k, (s = { plugin: l.plugin ?? "", verb: l.verb ?? "", buckets: [], sum: 0, count: 0 }));
    return s;
  };
  for (const s of samples) {
    if (s.name === `${name}_bucket`) get(s.labels).buckets.push([s.labels.le === "+Inf" ? Infinity : Number(s.labels.le), s.value]);
    else if (s.name === `${name}_sum`) get(s.labels).sum = s.value;
    else if (s.name === `${name}_count`) get(s.labels).count = s.value;
  }
  for (const s of by.values()) s.buckets.sort((a, b) => a[0] - b[0]);
  return [...by.values()].sort((a, b) => a.plugin.localeCompare(b.plugin) || a.verb.localeCompare(b.verb));
}

/** The daemon's own state, as `cnikit status` shows it. */
export interface DaemonInfo {
  version: string;
  pid: number;
  ready: boolean;
  inFlight: number;
  /** DEL work still finishing in the background; undefined when the daemon does not tell. */
  pendingRemovals?: number;
  uptimeSec: number;
}

/** The document `/api/status` serves. */
export interface StatusDoc {
  host: string;
  generatedMs: number;
  daemon: DaemonInfo;
  attachments: Attachment[];
  /** The cluster's nodes; null without etcd; an error text when etcd did not answer. */
  nodes: NodeInfo[] | null;
  /** bgp backend: this node's BGP sessions with peers that are not nodes (route reflectors, external peers). */
  bgpPeers?: BgpSessionState[];
  nodesError?: string;
  latency: LatencySeries[];
  /** Every other sample of /metrics without labels (gauges and counters), by name. */
  counters: Record<string, number>;
}

/** What the agent hands the status page. */
export interface StatusSourceOptions {
  /** The libcni result cache the node's runtime writes (default `$CNI_CACHE_DIR` or /var/lib/cni). */
  cacheDir: string;
  /** The CNI server's state. */
  daemon: () => { ready: boolean; inFlight: number; pendingRemovals?: number };
  /** The agent's whole /metrics text. */
  metrics: () => string;
  /** etcd, when the agent runs the overlay. */
  etcd?: { options: EtcdOptions; prefix: string; publicIP?: string };
  /** bgp backend: this node's BGP sessions as last read from BIRD (undefined: not known). */
  bgpSessions?: () => BgpSessionState[] | undefined;
}

/** Builds `/api/status` documents; etcd is read at most every 2 s and through one client. */
export class StatusSource {
  private client: Promise<Etcd3> | undefined;
  private nodesCache: { at: number; nodes: NodeInfo[] | null; error?: string } | undefined;
  private readonly started = Date.now();

  constructor(private readonly opts: StatusSourceOptions) {}

  private async nodes(): Promise<{ nodes: NodeInfo[] | null; error?: string }> {
    const e = this.opts.etcd;
    if (!e) return { nodes: null };
    if (this.nodesCache && Date.now() - this.nodesCache.at < 2000) return this.nodesCache;
    try {
      this.client ??= connectEtcd({ timeoutMs: 2000, ...e.options });
      const nodes = await readNodes(await this.client, e.prefix, e.publicIP ? { selfIP: e.publicIP } : {});
      await fetchPeerAttachments(nodes, 1000); // other nodes' pods, for the picture
      this.nodesCache = { at: Date.now(), nodes };
    } catch (err) {
      this.nodesCache = { at: Date.now(), nodes: this.nodesCache?.nodes ?? [], error: (err as Error).message };
    }
    return this.nodesCache;
  }

  /** The current document. */
  async snapshot(): Promise<StatusDoc> {
    const samples = parseMetrics(this.opts.metrics());
    const counters: Record<string, number> = {};
    for (const s of samples) if (Object.keys(s.labels).length === 0) counters[s.name] = s.value;
    const { nodes, error } = await this.nodes();
    const sessions = this.opts.bgpSessions?.();
    const bgpPeers = nodes && (sessions || nodes.some((n) => n.backend === "bgp")) ? withBgpStates(nodes, sessions) : undefined;
    const d = this.opts.daemon();
    return {
      host: hostname(),
      generatedMs: Date.now(),
      daemon: {
        version: pkg.version,
        pid: process.pid,
        ready: d.ready,
        inFlight: d.inFlight,
        ...(d.pendingRemovals !== undefined ? { pendingRemovals: d.pendingRemovals } : {}),
        uptimeSec: Math.floor((Date.now() - this.started) / 1000),
      },
      attachments: listAttachments(this.opts.cacheDir),
      nodes,
      ...(bgpPeers ? { bgpPeers } : {}),
      ...(error ? { nodesError: error } : {}),
      latency: latencySeries(samples),
      counters,
    };
  }

  /** What `/api/attachments` serves: this node's attachments only (other nodes ask for them). */
  attachments(): AttachmentsDoc {
    return { host: hostname(), attachments: listAttachments(this.opts.cacheDir) };
  }

  /** Close the etcd client, if one was opened. */
  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) (await c.catch(() => undefined))?.close();
  }
}
