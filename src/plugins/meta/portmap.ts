/**
 * portmap: host ports forwarded to pods (the `portMappings` capability), over nftables with
 * per-pod state as map and set elements (DESIGN.md). One long-lived table `inet cnikit_portmap`,
 * created once by a `create table` transaction:
 *
 * - maps `dnat4` (`inet_proto . inet_service : ipv4_addr . inet_service`) for mappings without a
 *   hostIP and `dnat4ip` (`ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service`) for
 *   mappings bound to one host address; `dnat6` / `dnat6ip` likewise;
 * - sets `masq4` / `masq6` (`saddr . pod addr . inet_proto . container port`, intervals on the
 *   source): the DNATed connections to masquerade;
 * - chain `dnat` with one lookup-and-DNAT rule per map, jumped to from base chains `prerouting`
 *   (nat, dstnat) and `output` (nat, -100, the host's own traffic) for `fib daddr type local`;
 * - base chain `postrouting` (nat, srcnat): a connection DNATed here whose source, pod address,
 *   protocol and port are in `masqN` is masqueraded.
 *
 * With `snat` (default true) a mapping puts two source ranges in `masqN`: 127.0.0.0/8 (the host
 * through 127.0.0.1, which needs route_localnet on the interface towards the pod, set as the
 * reference does) and the pod's own subnet (pods on the same bridge and the pod itself, hairpin).
 * `masqAll` puts the whole address space instead. `backend`, `markMasqBit` and
 * `externalSetMarkChain` are accepted and checked as the reference does, but cnikit marks nothing:
 * conntrack's DNAT status and the `masqN` set decide what is masqueraded.
 *
 * ADD adds the elements in one transaction (a hostPort mapped to another pod fails it whole);
 * DEL finds the pod's elements by listing the maps for its addresses, so it needs no
 * runtimeConfig; both flush stale UDP conntrack entries of the mapped ports over ctnetlink.
 */

import { deleteConntrack, type CtEntry } from "../../net/conntrack.ts";
import { getLink } from "../../net/link.ts";
import { routeTo } from "../../net/route.ts";
import { withRtnetlink } from "../../net/rtnetlink.ts";
import { getSysctl, setSysctl } from "../../net/sysctl.ts";
import { isNotFound } from "../../netlink/error.ts";
import type { NftClient } from "../../nft/client.ts";
import { ensureTable, removeElements } from "../../nft/ensure.ts";
import type { Expr } from "../../nft/expr.ts";
import { cleanupWithNft, withNft } from "../../nft/handle.ts";
import type { ElementInfo } from "../../nft/list.ts";
import { ctHasAny, IP_FAMILIES, IPS_DST_NAT, loadAddr, nfprotoIs } from "../../nft/match.ts";
import type { Element } from "../../nft/objects.ts";
import { concatRegs, reg32 } from "../../nft/registers.ts";
import { Transaction } from "../../nft/transaction.ts";
import { concat, inetProto, inetService, mark } from "../../nft/value.ts";
import { verdict } from "../../nft/verdict.ts";
import { Errno } from "../../sys/errno.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import { bool, decode, i64, list, object, str } from "../../spec/decode.ts";
import { formatIP, lastIP, networkOf, parseCIDR, parseIP } from "../../spec/ip.ts";
import { netConfShape, type NetConf } from "../../spec/netconf.ts";
import type { Result } from "../../spec/result.ts";
import { masqAddressesOf } from "../common/ipmasq.ts";

/** The table cnikit's port mappings live in. */
export const PORTMAP_TABLE = "cnikit_portmap";
const WHERE = { family: "inet", table: PORTMAP_TABLE } as const;

/** One port mapping, normalised. */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp" | "sctp";
  /** The host address it is bound to; absent for every local address. */
  hostIP?: string;
  /** The family a hostIP (or an unspecified 0.0.0.0 / ::) limits the mapping to. */
  family?: 4 | 6;
}

/** portmap's settings after parsing. */
export interface PortmapConf {
  snat: boolean;
  masqAll: boolean;
  /** Accepted for compatibility; cnikit does not mark packets. */
  markMasqBit?: number;
  /** Accepted for compatibility; cnikit does not mark packets. */
  externalSetMarkChain?: string;
  mappings: PortMapping[];
}

/** A pod address a mapping forwards to. */
export interface PodIP {
  v: 4 | 6;
  /** The address, canonical text. */
  ip: string;
  /** Its prefix length (the pod's subnet). */
  prefix: number;
}

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, `portmap: ${msg}`);
const PROTO_NUM = { tcp: 6, udp: 17, sctp: 132 } as const;

/** One entry of the `portMappings` capability (the reference's `PortMapEntry`; go-cni sends `HostPort`, ...). */
const portMapEntryCodec = object({ hostPort: i64, containerPort: i64, protocol: str, hostIP: str });

/** portmap's config as the reference decodes it (`PortMapConf`). */
export const portmapCodec = object({
  ...netConfShape,
  backend: str,
  snat: bool,
  conditionsV4: list(str),
  conditionsV6: list(str),
  masqAll: bool,
  markMasqBit: i64,
  externalSetMarkChain: str,
  runtimeConfig: object({ portMappings: list(portMapEntryCodec) }),
});

function portOf(v: number | undefined, what: string): number {
  const p = v ?? 0; // Go's zero value, as the reference reports it
  if (p <= 0 || p > 65535) throw invalid(`Invalid ${what} port number: ${p}`);
  return p;
}

/**
 * Decode portmap's keys and `runtimeConfig.portMappings` with Go's rules (a wrong type is code 2),
 * then check them as the reference does (code 7).
 */
export function parsePortmapConf(conf: NetConf): PortmapConf {
  const d = decode(portmapCodec, conf, { where: "portmap" });
  for (const key of ["conditionsV4", "conditionsV6"] as const) {
    // iptables match arguments cannot be expressed in nftables: refused rather than ignored
    if ((d[key]?.length ?? 0) > 0) {
      throw new CniError(ErrorCode.UnsupportedField, `portmap: '${key}' (iptables match arguments) is not supported by cnikit's nftables portmap`);
    }
  }
  if (d.backend && d.backend !== "iptables" && d.backend !== "nftables") throw invalid(`unrecognized backend ${JSON.stringify(d.backend)}`);
  if (d.markMasqBit !== undefined && d.externalSetMarkChain !== undefined) throw invalid("Cannot specify externalSetMarkChain and markMasqBit");
  if (d.markMasqBit !== undefined && (d.markMasqBit < 0 || d.markMasqBit > 31)) throw invalid("MasqMarkBit must be between 0 and 31");
  const out: PortmapConf = { snat: d.snat ?? true, masqAll: d.masqAll ?? false, mappings: [] };
  if (d.markMasqBit !== undefined) out.markMasqBit = d.markMasqBit;
  if (d.externalSetMarkChain !== undefined) out.externalSetMarkChain = d.externalSetMarkChain;
  const keys = new Map<string, string>();
  for (const r of d.runtimeConfig?.portMappings ?? []) {
    const containerPort = portOf(r.containerPort, "container");
    const hostPort = portOf(r.hostPort, "host");
    const p = r.protocol || "tcp";
    const protocol = p.toLowerCase();
    if (protocol !== "tcp" && protocol !== "udp" && protocol !== "sctp") throw invalid(`unsupported protocol ${JSON.stringify(p)} (tcp, udp or sctp)`);
    const pm: PortMapping = { hostPort, containerPort, protocol };
    if (r.hostIP) {
      const ip = parseIP(r.hostIP);
      if (!ip) throw invalid(`invalid hostIP ${JSON.stringify(r.hostIP)}`);
      pm.family = ip.length === 4 ? 4 : 6;
      if (ip.some((b) => b !== 0)) pm.hostIP = formatIP(ip); // 0.0.0.0 and :: bind no address, only a family
    }
    // the same host port twice to different places cannot both hold
    for (const v of [4, 6] as const) {
      if (pm.family !== undefined && pm.family !== v) continue;
      const k = `${v} ${pm.hostIP ?? "*"} ${protocol} ${hostPort}`;
      const to = String(containerPort);
      if (keys.has(k) && keys.get(k) !== to) throw invalid(`host port ${protocol}/${hostPort} is mapped twice`);
      keys.set(k, to);
    }
    out.mappings.push(pm);
  }
  return out;
}

/**
 * The pod addresses mappings forward to: the first IPv4 and the first IPv6 address of the
 * result's sandbox interfaces (as the reference picks them).
 */
export function podIPsOf(prev: Result | undefined): PodIP[] {
  const out: PodIP[] = [];
  for (const ip of prev?.ips ?? []) {
    if (ip.interface !== undefined && ip.interface !== null) {
      const itf = prev?.interfaces?.[ip.interface];
      if (itf && !itf.sandbox) continue;
    }
    const net = parseCIDR(ip.address);
    if (!net) continue;
    const v = net.ip.length === 4 ? 4 : 6;
    if (out.some((p) => p.v === v)) continue;
    out.push({ v, ip: formatIP(net.ip), prefix: net.prefix });
  }
  return out;
}

const enc = (ip: string): Uint8Array => parseIP(ip)!;
const setOf = (v: 4 | 6, kind: "dnat" | "dnatip" | "masq"): string => (kind === "dnatip" ? `dnat${v}ip` : `${kind}${v}`);

/** The masquerade source ranges of a pod address: everything (masqAll), or loopback and its subnet. */
function masqSources(conf: PortmapConf, pod: PodIP): Array<[Uint8Array, Uint8Array]> {
  const len = pod.v === 4 ? 4 : 16;
  if (conf.masqAll) return [[new Uint8Array(len), new Uint8Array(len).fill(0xff)]];
  const sub = networkOf({ ip: enc(pod.ip), prefix: pod.prefix });
  const out: Array<[Uint8Array, Uint8Array]> = [];
  if (pod.v === 4) out.push([Uint8Array.of(127, 0, 0, 0), Uint8Array.of(127, 255, 255, 255)]);
  out.push([sub.ip, lastIP(sub)]);
  return out;
}

/** The elements of the mappings for these pod addresses (each mapping only to its family). */
export function mappingElements(conf: PortmapConf, pods: readonly PodIP[]): Element[] {
  const out: Element[] = [];
  const seen = new Set<string>();
  const push = (e: Element) => {
    const id = `${e.set} ${Buffer.from(concat(e.key as Uint8Array[])).toString("hex")}`;
    if (!seen.has(id)) out.push(e), seen.add(id);
  };
  for (const pm of conf.mappings) {
    for (const pod of pods) {
      if (pm.family !== undefined && pm.family !== pod.v) continue;
      const proto = inetProto(PROTO_NUM[pm.protocol]);
      const data = [enc(pod.ip), inetService(pm.containerPort)];
      push(pm.hostIP !== undefined
        ? { kind: "element", set: setOf(pod.v, "dnatip"), key: [enc(pm.hostIP), proto, inetService(pm.hostPort)], data }
        : { kind: "element", set: setOf(pod.v, "dnat"), key: [proto, inetService(pm.hostPort)], data });
      if (!conf.snat) continue;
      for (const [from, to] of masqSources(conf, pod)) {
        const tail = [enc(pod.ip), proto, inetService(pm.containerPort)];
        push({ kind: "element", set: setOf(pod.v, "masq"), key: [from, ...tail], keyEnd: [to, ...tail] });
      }
    }
  }
  return out;
}

const l4 = (protoReg: number, portReg: number): Expr[] => [
  { kind: "meta", key: "l4proto", dreg: protoReg },
  { kind: "payload", base: "transport", offset: 2, len: 2, dreg: portReg },
];

/** The shared table: maps, sets, chains and rules, created once. */
export function setupTransaction(): Transaction {
  const tx = new Transaction(WHERE);
  tx.create({ kind: "table" });
  for (const f of IP_FAMILIES) {
    tx.add({ kind: "map", name: setOf(f.v, "dnat"), key: ["inet_proto", "inet_service"], data: [f.addrType, "inet_service"] });
    tx.add({ kind: "map", name: setOf(f.v, "dnatip"), key: [f.addrType, "inet_proto", "inet_service"], data: [f.addrType, "inet_service"] });
    tx.add({ kind: "set", name: setOf(f.v, "masq"), key: [f.addrType, f.addrType, "inet_proto", "inet_service"], flags: ["interval"] });
  }
  tx.add({ kind: "chain", name: "dnat" });
  tx.add({ kind: "chain", name: "prerouting", type: "nat", hook: "prerouting", priority: -100 });
  tx.add({ kind: "chain", name: "output", type: "nat", hook: "output", priority: -100 });
  tx.add({ kind: "chain", name: "postrouting", type: "nat", hook: "postrouting", priority: 100 });
  const toDnat: Expr[] = [
    { kind: "fib", result: "type", flags: ["daddr"], dreg: 1 },
    { kind: "cmp", op: "eq", sreg: 1, data: mark(2) }, // RTN_LOCAL, a host-order u32
    { kind: "immediate", verdict: verdict.jump("dnat") },
  ];
  tx.add({ kind: "rule", chain: "prerouting", exprs: toDnat });
  tx.add({ kind: "rule", chain: "output", exprs: toDnat });
  for (const f of IP_FAMILIES) {
    const out = reg32(0); // the map's value: address, then port
    const port = out + Math.ceil(f.len / 4);
    const nat: Expr = { kind: "nat", type: "dnat", family: f.nat, addrMin: out, protoMin: port };
    // bound to a host address first, then any local address
    const [a, p, s] = concatRegs(reg32(0), [f.len, 1, 2]);
    tx.add({
      kind: "rule", chain: "dnat",
      exprs: [...nfprotoIs(f), loadAddr(f, "daddr", a!), ...l4(p!, s!), { kind: "lookup", set: setOf(f.v, "dnatip"), sreg: a!, dreg: out }, nat],
    });
    const [p2, s2] = concatRegs(reg32(0), [1, 2]);
    tx.add({
      kind: "rule", chain: "dnat",
      exprs: [...nfprotoIs(f), ...l4(p2!, s2!), { kind: "lookup", set: setOf(f.v, "dnat"), sreg: p2!, dreg: out }, nat],
    });
    const [sa, da, pr, po] = concatRegs(reg32(0), [f.len, f.len, 1, 2]);
    tx.add({
      kind: "rule", chain: "postrouting",
      exprs: [
        ...nfprotoIs(f),
        ...ctHasAny("status", IPS_DST_NAT),
        loadAddr(f, "saddr", sa!),
        loadAddr(f, "daddr", da!),
        ...l4(pr!, po!),
        { kind: "lookup", set: setOf(f.v, "masq"), sreg: sa! },
        { kind: "masq" },
      ],
    });
  }
  return tx;
}

/** Every element of one of portmap's maps or sets (none when the table or set is missing). */
function listSet(nft: NftClient, set: string): ElementInfo[] {
  try {
    return nft.listElements("inet", PORTMAP_TABLE, set);
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}

const hex = (b: Uint8Array | readonly Uint8Array[]): string => Buffer.from(b instanceof Uint8Array ? b : concat(b)).toString("hex");

/** Describe a mapping element for messages. */
function describeKey(set: string, key: Uint8Array): string {
  const v6 = set.startsWith("dnat6");
  const bound = set.endsWith("ip");
  const alen = v6 ? 16 : 4;
  const host = bound ? `${formatIP(key.subarray(0, alen))}:` : "";
  const off = bound ? alen : 0;
  const proto = Object.entries(PROTO_NUM).find(([, n]) => n === key[off])?.[0] ?? String(key[off]);
  return `${proto}/${host}${(key[off + 4]! << 8) | key[off + 5]!}`;
}

function describeData(v: 4 | 6, data: Uint8Array): string {
  const alen = v === 4 ? 4 : 16;
  const port = (data[alen]! << 8) | data[alen + 1]!;
  return v === 4 ? `${formatIP(data.subarray(0, alen))}:${port}` : `[${formatIP(data.subarray(0, alen))}]:${port}`;
}

/** Fail when a host port of `els` is mapped elsewhere already. */
function checkConflicts(nft: NftClient, els: readonly Element[]): void {
  const bySet = new Map<string, Element[]>();
  for (const e of els) if (e.data !== undefined) bySet.set(e.set, [...(bySet.get(e.set) ?? []), e]);
  for (const [set, list] of bySet) {
    const have = new Map(listSet(nft, set).map((x) => [hex(x.key), x.data]));
    for (const e of list) {
      const cur = have.get(hex(e.key));
      if (cur && hex(cur) !== hex(e.data!)) {
        const v = set.includes("6") ? 6 : 4;
        throw invalid(`host port ${describeKey(set, concat(e.key as Uint8Array[]))} is already mapped to ${describeData(v, cur)}`);
      }
    }
  }
}

/** Name of the host interface the route to `ip` leaves by (the reference's getRoutableHostIF). */
function routableHostIf(ip: string): string | undefined {
  return withRtnetlink((conn) => {
    const oif = routeTo(conn, ip)?.oif;
    return oif === undefined ? undefined : getLink(conn, oif).name;
  });
}

/** Let 127.0.0.1 be routed out of the interface towards the pod (net.ipv4.conf.IF.route_localnet). */
function enableLocalnet(ip: string): void {
  const ifName = routableHostIf(ip);
  if (!ifName) return;
  const key = `net/ipv4/conf/${ifName}/route_localnet`;
  if (getSysctl(key) !== "1") setSysctl(key, "1");
}

const UDP = 17;
const eqBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** Flush UDP conntrack entries matching `match` (best effort: failures are logged). */
function flushUdp(args: CmdArgs, families: ReadonlySet<4 | 6>, match: (e: CtEntry) => boolean): void {
  for (const v of families) {
    try {
      deleteConntrack(v, (e) => e.orig.proto === UDP && match(e));
    } catch (e) {
      args.log(`portmap: flushing UDP conntrack entries: ${(e as Error).message}`);
    }
  }
}

/** Whether `e` is a mapping element (map of dnat) whose target address is `pod`. */
function targets(e: ElementInfo, pod: PodIP): boolean {
  const len = pod.v === 4 ? 4 : 16;
  return e.data !== undefined && eqBytes(e.data.subarray(0, len), enc(pod.ip));
}

/**
 * ADD's nftables step: the shared table (made once), then `els` in one transaction; a host port
 * mapped to another pod already fails it whole (code 7, naming the port and where it goes).
 */
export function addMappings(nft: NftClient, els: readonly Element[]): void {
  ensureTable(nft, setupTransaction());
  checkConflicts(nft, els);
  const tx = new Transaction(WHERE);
  for (const e of els) tx.add(e);
  try {
    nft.apply(tx);
  } catch (e) {
    // a concurrent ADD took one of the ports between the check and the transaction
    const errno = (e as { errno?: number }).errno;
    if (errno === Errno.EBUSY || errno === Errno.EEXIST) {
      checkConflicts(nft, els);
      throw invalid(`a host port of this pod is already mapped: ${(e as Error).message}`);
    }
    throw e;
  }
}

/** A UDP mapping DEL removed (its stale conntrack entries are flushed after). */
export interface RemovedUdp {
  v: 4 | 6;
  pod: PodIP;
  hostPort: number;
  containerPort: number;
}

/**
 * DEL's nftables step: remove the elements that forward to or masquerade for `pods`, found by
 * listing the maps and sets (no config needed); returns the UDP mappings among them.
 */
export function removeMappings(nft: NftClient, pods: readonly PodIP[]): RemovedUdp[] {
  if (!nft.getTable("inet", PORTMAP_TABLE)) return [];
  const gone: Element[] = [];
  const udp: RemovedUdp[] = [];
  for (const pod of pods) {
    const len = pod.v === 4 ? 4 : 16;
    for (const kind of ["dnat", "dnatip"] as const) {
      const set = setOf(pod.v, kind);
      for (const e of listSet(nft, set).filter((x) => targets(x, pod))) {
        gone.push({ kind: "element", set, key: e.key });
        const off = kind === "dnatip" ? len : 0;
        if (e.key[off] === UDP) udp.push({ v: pod.v, pod, hostPort: (e.key[off + 4]! << 8) | e.key[off + 5]!, containerPort: (e.data![len]! << 8) | e.data![len + 1]! });
      }
    }
    const set = setOf(pod.v, "masq");
    for (const e of listSet(nft, set)) {
      if (!eqBytes(e.key.subarray(len, 2 * len), enc(pod.ip))) continue;
      gone.push({ kind: "element", set, key: e.key, ...(e.keyEnd ? { keyEnd: e.keyEnd } : {}) });
    }
  }
  removeElements(nft, WHERE, gone);
  return udp;
}

/** CHECK's nftables step: every element of `els` is there, each mapping with its own target. */
export function checkMappings(nft: NftClient, els: readonly Element[]): void {
  const fail = (msg: string) => new CniError(ErrorCode.Internal, `portmap: ${msg}`);
  if (!nft.getTable("inet", PORTMAP_TABLE)) throw fail(`table inet ${PORTMAP_TABLE} is missing`);
  const lists = new Map<string, ElementInfo[]>();
  for (const e of els) {
    if (!lists.has(e.set)) lists.set(e.set, listSet(nft, e.set));
    const found = lists.get(e.set)!.find((x) => hex(x.key) === hex(e.key));
    const v = e.set.includes("6") ? 6 : 4;
    if (e.data !== undefined) {
      if (!found) throw fail(`host port ${describeKey(e.set, concat(e.key as Uint8Array[]))} is not mapped`);
      if (hex(found.data ?? new Uint8Array(0)) !== hex(e.data)) {
        throw fail(`host port ${describeKey(e.set, concat(e.key as Uint8Array[]))} is mapped to ${describeData(v, found.data ?? new Uint8Array(18))}, not ${describeData(v, concat(e.data as Uint8Array[]))}`);
      }
    } else if (!found) {
      throw fail(`masquerading of ${e.set} element ${hex(e.key)} is missing`);
    }
  }
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parsePortmapConf(args.config);
  if (!args.prevResult) throw invalid("must be called as chained plugin (no prevResult)");
  const result = structuredClone(args.prevResult);
  if (conf.mappings.length === 0) return result;
  const pods = podIPsOf(args.prevResult);
  const els = mappingElements(conf, pods);
  if (els.length === 0) return result;
  withNft((nft) => {
    addMappings(nft, els);
    const v4 = pods.find((p) => p.v === 4);
    if (conf.snat && v4 && els.some((e) => e.set.startsWith("dnat4"))) {
      try {
        enableLocalnet(v4.ip);
      } catch (e) {
        // no half-done pod: take the elements back
        const undo = new Transaction(WHERE);
        for (const el of els) undo.delete(el);
        try {
          nft.apply(undo);
        } catch {
          // nothing more to do
        }
        throw new CniError(ErrorCode.Internal, `portmap: failed to enable route_localnet: ${(e as Error).message}`);
      }
    }
  });
  // stale UDP flows to these host ports would keep bypassing the new DNAT
  const udp = conf.mappings.filter((m) => m.protocol === "udp");
  if (udp.length > 0) {
    const fams = new Set(pods.map((p) => p.v).filter((v) => udp.some((m) => m.family === undefined || m.family === v)));
    flushUdp(args, fams, (e) => udp.some((m) => m.hostPort === e.orig.dstPort && (m.hostIP === undefined || formatIP(e.orig.dst) === m.hostIP)));
  }
  return result;
}

/** The pod's addresses for DEL: the cached result's, else those on its interface. */
function delPods(args: CmdArgs): PodIP[] {
  const fromPrev = podIPsOf(args.prevResult);
  if (fromPrev.length > 0) return fromPrev;
  const out: PodIP[] = [];
  for (const cidr of masqAddressesOf(args)) {
    const net = parseCIDR(cidr);
    if (!net) continue;
    const v = net.ip.length === 4 ? 4 : 6;
    if (!out.some((p) => p.v === v)) out.push({ v, ip: formatIP(net.ip), prefix: net.prefix });
  }
  return out;
}

/**
 * Remove the pod's elements, found by its addresses in the maps: the config is not needed (and
 * not checked), so a config ADD accepted, or one that no longer decodes, still cleans up.
 */
async function del(args: CmdArgs): Promise<void> {
  const pods = delPods(args);
  if (pods.length === 0) return;
  const udp = cleanupWithNft((nft) => removeMappings(nft, pods)) ?? [];
  if (udp.length > 0) {
    flushUdp(args, new Set(udp.map((u) => u.v)), (e) =>
      udp.some((u) => e.orig.dstPort === u.hostPort && e.reply !== undefined && formatIP(e.reply.src) === u.pod.ip && e.reply.srcPort === u.containerPort));
  }
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parsePortmapConf(args.config);
  if (!args.prevResult) throw invalid("must be called as chained plugin (no prevResult)");
  if (conf.mappings.length === 0) return;
  const els = mappingElements(conf, podIPsOf(args.prevResult));
  if (els.length === 0) return;
  withNft((nft) => checkMappings(nft, els));
}

/** The portmap plugin. */
export const portmap: Plugin = { add, del, check };
export default portmap;
