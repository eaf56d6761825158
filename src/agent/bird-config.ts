/**
 * The `bgp` backend's settings (the network config's `Backend` object, Calico's names where they
 * fit) and the BIRD 2 configuration rendered from them and from the leases. Rendering is a pure
 * function of its input: the same leases and settings always give the same text, which the unit
 * tests keep as snapshots (as Calico keeps its rendered templates).
 *
 * What the rendered configuration does:
 * - a static protocol `cnikit_own4` holds this node's subnet as a blackhole, which is what every
 *   BGP session exports (and nothing else: no route is re-advertised by a node);
 * - every BGP session imports only subnets inside the cluster network, never our own;
 * - the kernel protocol writes only BGP routes into the main table, with BIRD's protocol number
 *   (`ip route show proto bird`), `persist` (routes stay when BIRD stops) and `graceful restart`
 *   (after a restart with `-R`, old routes stay until the sessions have converged); it learns the
 *   kernel's other routes (outside the cluster network) so that next hops behind a router resolve;
 * - one session per other node (full mesh; the node with the higher address is passive), one per
 *   route reflector and external peer, all with graceful restart;
 * - with IPIP, routes to other nodes' subnets go `via <node> dev tunl0 onlink`.
 */

import { CniError, ErrorCode } from "../spec/error.ts";
import { containsIP, formatCIDR, formatIP, ipToBigInt, networkOf, parseCIDR, parseIP, type IPNet } from "../spec/ip.ts";

/** A BGP neighbour that is not a cnikit node: a route reflector or an external router. */
export interface BgpPeerConfig {
  /** Its address. */
  peerIP: string;
  /** Its AS (default: the cluster's, an iBGP peer). */
  asNumber: number;
  /** Only nodes whose public IP is in this subnet peer with it (default: every node). */
  nodeSubnet?: string;
  /** eBGP over more than one hop (TTL); set on its own for an eBGP peer outside the node's underlay subnet. */
  multihop?: number;
}

/** The `bgp` backend's settings. */
export interface BgpConfig {
  /** The cluster's AS (`ASNumber`, default 64512). */
  asNumber: number;
  /** `Encapsulation`: "none" (plain routes, default) or "ipip". */
  encapsulation: "none" | "ipip";
  /** `NodeMesh` (Calico's nodeToNodeMeshEnabled): a session with every other node (default true). */
  nodeMesh: boolean;
  /** `RouteReflectors`: iBGP neighbours (addresses, or objects as in `Peers`). */
  routeReflectors: BgpPeerConfig[];
  /** `Peers`: other neighbours, `{"PeerIP", "ASNumber", "NodeSubnet", "Multihop"}`. */
  peers: BgpPeerConfig[];
  /** `HoldTime` in seconds (default 90; BIRD's own default is 240). */
  holdTime: number;
  /** `KeepaliveTime` in seconds (default a third of the hold time). */
  keepaliveTime: number;
  /** `ConnectDelayTime`: seconds before a new session's first connect (default 2, as Calico). */
  connectDelayTime: number;
  /** `ConnectRetryTime`: seconds between connects (default 5); error wait is this to 6 times this. */
  connectRetryTime: number;
  /** `GracefulRestartTime`: how long peers keep our routes while we restart (default the hold time). */
  gracefulRestartTime: number;
  /** `ListenPort` (Calico's listenPort, default 179). */
  port: number;
}

const bad = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, `network config: ${msg}`);

function num(b: Record<string, unknown>, key: string, def: number, min: number, max: number): number {
  const v = b[key] ?? def;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw bad(`Backend.${key} ${JSON.stringify(v)} must be an integer from ${min} to ${max}`);
  return v;
}

function peer(raw: unknown, where: string, defAS: number): BgpPeerConfig {
  const o = (typeof raw === "string" ? { PeerIP: raw } : raw) as Record<string, unknown>;
  if (typeof o !== "object" || o === null) throw bad(`${where} must be an address or an object with PeerIP`);
  const ip = typeof o.PeerIP === "string" ? parseIP(o.PeerIP) : undefined;
  if (!ip || ip.length !== 4) throw bad(`${where}.PeerIP ${JSON.stringify(o.PeerIP)} is not an IPv4 address`);
  const out: BgpPeerConfig = { peerIP: formatIP(ip), asNumber: num(o, "ASNumber", defAS, 1, 0xffffffff) };
  if (o.NodeSubnet !== undefined) {
    const n = typeof o.NodeSubnet === "string" ? parseCIDR(o.NodeSubnet) : undefined;
    if (!n) throw bad(`${where}.NodeSubnet ${JSON.stringify(o.NodeSubnet)} is not an address/prefix`);
    out.nodeSubnet = formatCIDR(networkOf(n));
  }
  if (o.Multihop !== undefined) out.multihop = num(o, "Multihop", 0, 1, 255);
  return out;
}

/** Parse the keys of `{"Type": "bgp", ...}` (the caller checked the type). */
export function parseBgpBackend(b: Record<string, unknown>): BgpConfig {
  const asNumber = num(b, "ASNumber", 64512, 1, 0xffffffff);
  const enc = b.Encapsulation ?? "none";
  if (enc !== "none" && enc !== "ipip") throw bad(`Backend.Encapsulation ${JSON.stringify(enc)} is not supported ("none" or "ipip")`);
  if (b.NodeMesh !== undefined && typeof b.NodeMesh !== "boolean") throw bad("Backend.NodeMesh must be true or false");
  const list = (key: string): unknown[] => {
    const v = b[key] ?? [];
    if (!Array.isArray(v)) throw bad(`Backend.${key} must be an array`);
    return v;
  };
  const holdTime = num(b, "HoldTime", 90, 3, 65535);
  return {
    asNumber,
    encapsulation: enc,
    nodeMesh: b.NodeMesh !== false,
    routeReflectors: list("RouteReflectors").map((r, i) => peer(r, `Backend.RouteReflectors[${i}]`, asNumber)),
    peers: list("Peers").map((r, i) => peer(r, `Backend.Peers[${i}]`, asNumber)),
    holdTime,
    keepaliveTime: num(b, "KeepaliveTime", Math.max(1, Math.floor(holdTime / 3)), 1, holdTime),
    connectDelayTime: num(b, "ConnectDelayTime", 2, 0, 3600),
    connectRetryTime: num(b, "ConnectRetryTime", 5, 1, 3600),
    gracefulRestartTime: num(b, "GracefulRestartTime", holdTime, 1, 4095),
    port: num(b, "ListenPort", 179, 1, 65535),
  };
}

/** What the configuration is rendered from. */
export interface BirdInput {
  /** This node's public (underlay) IPv4 address: router id and source of every session. */
  localIP: string;
  /** This node's subnet, "10.244.3.0/24". */
  subnet: string;
  /** The cluster network, "10.244.0.0/16". */
  network: string;
  /** The underlay interface and its subnet ("192.168.1.0/24"). */
  underlay: { iface: string; subnet: string };
  /** The other nodes' public IPs (from their leases). */
  nodes: readonly string[];
  bgp: BgpConfig;
  /** The IPIP device (with Encapsulation "ipip"; default "tunl0"). */
  tunnel?: string;
}

/** One BGP session of the rendered configuration. */
export interface BirdSession {
  /** The protocol's name in BIRD, `mesh_192_168_1_2`. */
  name: string;
  kind: "mesh" | "rr" | "peer";
  peerIP: string;
  asNumber: number;
  passive: boolean;
  multihop?: number;
}

const ipNum = (ip: string) => ipToBigInt(parseIP(ip)!);
/** The BIRD protocol name of a session. */
export const sessionName = (kind: BirdSession["kind"], ip: string): string => `${kind}_${ip.replaceAll(".", "_")}`;

/** The sessions a node has, in a stable order (mesh by address, then reflectors, then peers). */
export function birdSessions(input: BirdInput): BirdSession[] {
  const { bgp, localIP } = input;
  const under = parseCIDR(input.underlay.subnet);
  const local = parseIP(localIP)!;
  const seen = new Set<string>([localIP]);
  const out: BirdSession[] = [];
  const add = (s: Omit<BirdSession, "name">) => {
    if (seen.has(s.peerIP)) return; // one session per neighbour: a reflector that is also a node is a reflector
    seen.add(s.peerIP);
    out.push({ name: sessionName(s.kind, s.peerIP), ...s });
  };
  const forUs = (p: BgpPeerConfig) => !p.nodeSubnet || containsIP(parseCIDR(p.nodeSubnet)!, local);
  const external = (kind: "rr" | "peer", p: BgpPeerConfig) => {
    if (!forUs(p)) return;
    const offLink = !under || !containsIP(under, parseIP(p.peerIP)!);
    // eBGP is single-hop unless told; iBGP is multihop in BIRD already
    const multihop = p.multihop ?? (p.asNumber !== bgp.asNumber && offLink ? 8 : undefined);
    add({ kind, peerIP: p.peerIP, asNumber: p.asNumber, passive: false, ...(multihop ? { multihop } : {}) });
  };
  // reflectors and peers first, so that a node listed as one of them gets that session only
  const mesh: BirdSession[] = [];
  for (const p of bgp.routeReflectors) external("rr", p);
  for (const p of bgp.peers) external("peer", p);
  if (bgp.nodeMesh) {
    const nodes = [...new Set(input.nodes)].filter((n) => parseIP(n)?.length === 4).sort((a, b) => (ipNum(a) < ipNum(b) ? -1 : ipNum(a) > ipNum(b) ? 1 : 0));
    for (const n of nodes) {
      if (seen.has(n)) continue;
      seen.add(n);
      // one session per pair: the higher address waits for the lower one to connect
      mesh.push({ name: sessionName("mesh", n), kind: "mesh", peerIP: n, asNumber: bgp.asNumber, passive: ipNum(localIP) > ipNum(n) });
    }
  }
  return [...mesh, ...out];
}

/** Render BIRD 2's configuration for this node. */
export function renderBirdConfig(input: BirdInput): string {
  const { bgp } = input;
  const network = formatCIDR(networkOf(parseCIDR(input.network)!));
  const own = formatCIDR(networkOf(parseCIDR(input.subnet)!));
  const tunnel = input.tunnel ?? "tunl0";
  const ipip = bgp.encapsulation === "ipip";
  const L: string[] = [];
  const p = (...lines: string[]) => L.push(...lines);
  p(
    "# Rendered by cnikit agent (bgp backend); every change is made there, not here.",
    `router id ${input.localIP};`,
    "log stderr all;",
    "timeformat protocol iso long;",
    `graceful restart wait ${bgp.gracefulRestartTime};`,
    "",
    "protocol device { scan time 10; }",
    "",
    "# the underlay's own subnet, so that next hops on it resolve",
    "protocol direct cnikit_underlay {",
    "  ipv4;",
    `  interface "${input.underlay.iface}";`,
    "}",
    "",
    "# what this node announces: its subnet (a blackhole here; never written to the kernel)",
    "protocol static cnikit_own4 {",
    "  ipv4;",
    `  route ${own} blackhole;`,
    "}",
    "",
    "filter cnikit_import {",
    `  if net ~ [ ${own}+ ] then reject;`,
    `  if net ~ [ ${network}{${parseCIDR(network)!.prefix + 1},32} ] then accept;`,
    "  reject;",
    "}",
    "",
    "filter cnikit_export {",
    '  if proto = "cnikit_own4" then accept;',
    "  reject;",
    "}",
    "",
    "filter cnikit_kernel {",
    "  if source != RTS_BGP then reject;",
  );
  if (ipip) {
    p(
      "  # IPIP: to the node that announced the subnet, through the tunnel",
      `  ifname = "${tunnel}";`,
      "  onlink = true;",
      "  gw = bgp_next_hop;",
    );
  }
  p(
    "  accept;",
    "}",
    "",
    "protocol kernel cnikit_kernel4 {",
    "  ipv4 {",
    "    # the kernel's routes outside the cluster network (a default route, a route to another",
    "    # segment): next hops behind them resolve",
    `    import filter { if net ~ [ ${network}+ ] then reject; accept; };`,
    "    export filter cnikit_kernel;",
    "  };",
    "  learn;",
    "  persist;",
    "  graceful restart;",
    "  scan time 10;",
    "}",
    "",
    "template bgp cnikit_session {",
    `  local ${input.localIP} as ${bgp.asNumber};`,
    ...(bgp.port !== 179 ? [`  local port ${bgp.port};`] : []),
    `  hold time ${bgp.holdTime};`,
    `  startup hold time ${bgp.holdTime};`,
    `  keepalive time ${bgp.keepaliveTime};`,
    `  connect delay time ${bgp.connectDelayTime};`,
    `  connect retry time ${bgp.connectRetryTime};`,
    `  error wait time ${bgp.connectRetryTime}, ${bgp.connectRetryTime * 6};`,
    "  graceful restart on;",
    `  graceful restart time ${bgp.gracefulRestartTime};`,
    "  ipv4 {",
    "    import filter cnikit_import;",
    "    export filter cnikit_export;",
    "  };",
    "}",
  );
  for (const s of birdSessions(input)) {
    const what = s.kind === "mesh" ? "node" : s.kind === "rr" ? "route reflector" : s.asNumber === bgp.asNumber ? "iBGP peer" : "external peer";
    p(
      "",
      `protocol bgp ${s.name} from cnikit_session {`,
      `  description "${what} ${s.peerIP}";`,
      `  neighbor ${s.peerIP}${bgp.port !== 179 ? ` port ${bgp.port}` : ""} as ${s.asNumber};`,
    );
    if (s.passive) p("  passive on; # the peer's address is lower: it connects");
    if (s.multihop) p(`  multihop ${s.multihop};`);
    // an external AS hands our own routes back with our AS in the path: accept the path, the
    // import filter drops our own subnet
    if (s.asNumber !== bgp.asNumber) p("  allow local as;");
    p("}");
  }
  return `${L.join("\n")}\n`;
}

/** Whether `ip` is an IPv4 address inside `cidr`. */
export function inSubnet(cidr: string, ip: string): boolean {
  const n = parseCIDR(cidr);
  const a = parseIP(ip);
  return !!n && !!a && a.length === n.ip.length && containsIP(n, a);
}

/** The subnet (network address / prefix) of an interface address "192.168.1.5/24". */
export function subnetOfAddress(cidr: string): string {
  const n: IPNet | null = parseCIDR(cidr);
  if (!n) throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: bad address ${cidr}`);
  return formatCIDR(networkOf(n));
}
