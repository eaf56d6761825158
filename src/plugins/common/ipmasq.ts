/**
 * ipMasq for bridge and ptp over nftables, with per-pod state as set elements (DESIGN.md): one
 * long-lived table `inet cnikit_masq` with a postrouting chain of three rules per family, created
 * once; a pod adds two elements (its address to `masqN`, its address . its subnet to `keepN`) and
 * DEL removes them. Traffic from a pod leaving its own subnet (multicast excluded) is masqueraded,
 * as the reference's ipMasq does.
 */

import { ensureTable, removeElements } from "../../nft/ensure.ts";
import { cleanupWithNft, withNft } from "../../nft/handle.ts";
import { addrInNet, ipFamily, type IpFamily, IP_FAMILIES, loadAddr, nfprotoIs } from "../../nft/match.ts";
import type { Element } from "../../nft/objects.ts";
import { concatRegs, reg32 } from "../../nft/registers.ts";
import { Transaction } from "../../nft/transaction.ts";
import { verdict } from "../../nft/verdict.ts";
import { bigIntToIP, ipToBigInt, lastIP, networkOf, parseCIDR } from "../../spec/ip.ts";
import { listAddresses } from "../../net/addr.ts";
import { findLink } from "../../net/link.ts";
import { withRtnetlink } from "../../net/rtnetlink.ts";
import type { CmdArgs } from "../../skel/plugin.ts";
import { bool, list, refine, str } from "../../spec/decode.ts";

/** The table cnikit's masquerading lives in. */
export const MASQ_TABLE = "cnikit_masq";
const WHERE = { family: "inet", table: MASQ_TABLE } as const;

/** The shared objects: table, postrouting chain, sets and the three rules per family. */
function setupTransaction(): Transaction {
  const tx = new Transaction(WHERE);
  tx.create({ kind: "table" });
  tx.add({ kind: "chain", name: "postrouting", type: "nat", hook: "postrouting", priority: 100 });
  for (const f of IP_FAMILIES) {
    tx.add({ kind: "set", name: `masq${f.v}`, key: f.addrType });
    tx.add({ kind: "set", name: `keep${f.v}`, key: [f.addrType, f.addrType], flags: ["interval"] });
  }
  for (const f of IP_FAMILIES) {
    const [a, b] = concatRegs(reg32(0), [f.len, f.len]);
    // pod -> its own subnet: not masqueraded
    tx.add({
      kind: "rule", chain: "postrouting",
      exprs: [...nfprotoIs(f), loadAddr(f, "saddr", a!), loadAddr(f, "daddr", b!), { kind: "lookup", set: `keep${f.v}`, sreg: a! }, { kind: "immediate", verdict: verdict.return }],
    });
    // multicast: not masqueraded
    tx.add({ kind: "rule", chain: "postrouting", exprs: [...nfprotoIs(f), ...addrInNet(f.multicast, "daddr"), { kind: "immediate", verdict: verdict.return }] });
    // any other traffic from a pod: masqueraded
    tx.add({ kind: "rule", chain: "postrouting", exprs: [...nfprotoIs(f), loadAddr(f, "saddr", 1), { kind: "lookup", set: `masq${f.v}`, sreg: 1 }, { kind: "masq" }] });
  }
  return tx;
}

/** A network's first and last address. */
function bounds(net: { ip: Uint8Array; prefix: number }): { first: bigint; last: bigint } {
  return { first: ipToBigInt(networkOf(net).ip), last: ipToBigInt(lastIP(net)) };
}

/**
 * The pod address and its `keep` elements: its own subnet and each excluded CIDR of its family
 * (`ipMasqExclude`, kubenet's non-masquerade CIDR), leaving out a range inside another (an
 * interval set refuses overlapping elements; CIDRs either nest or are disjoint).
 */
function elementsOf(cidr: string, exclude: readonly string[] = []): { f: IpFamily; ip: Uint8Array; keep: { key: Uint8Array[]; keyEnd: Uint8Array[] }[] } {
  const net = parseCIDR(cidr)!;
  const f = ipFamily(net.ip);
  const ip = net.ip.slice();
  const ranges = [net, ...exclude.map((c) => parseCIDR(c)).filter((n) => !!n && n.ip.length === net.ip.length)].map((n) => bounds(n!));
  const kept = ranges.filter((r, i) => !ranges.some((o, j) => j !== i && o.first <= r.first && r.last <= o.last && (o.first !== r.first || o.last !== r.last || j < i)));
  const enc = (v: bigint) => bigIntToIP(v, net.ip.length);
  return { f, ip, keep: kept.map((r) => ({ key: [ip, enc(r.first)], keyEnd: [ip, enc(r.last)] })) };
}

/** The elements of these pod addresses: each address in `masqN`, its kept ranges in `keepN`. */
function podElements(cidrs: readonly string[], exclude: readonly string[]): Element[] {
  return cidrs.flatMap((c) => {
    const { f, ip, keep } = elementsOf(c, exclude);
    return [
      { kind: "element" as const, set: `masq${f.v}`, key: ip },
      ...keep.map((k) => ({ kind: "element" as const, set: `keep${f.v}`, key: k.key, keyEnd: k.keyEnd })),
    ];
  });
}

/**
 * Masquerade traffic of these pod addresses ("10.1.2.3/24") leaving their subnets, except traffic
 * to the `exclude` CIDRs; creates the shared rules once.
 */
export function addMasq(cidrs: readonly string[], exclude: readonly string[] = []): void {
  withNft((nft) => {
    ensureTable(nft, setupTransaction());
    const tx = new Transaction(WHERE);
    for (const el of podElements(cidrs, exclude)) tx.add(el);
    nft.apply(tx);
  });
}

/** Stop masquerading these pod addresses (missing elements or table are fine); `exclude` as given to addMasq. */
export function delMasq(cidrs: readonly string[], exclude: readonly string[] = []): void {
  if (cidrs.length === 0) return;
  cleanupWithNft((nft) => {
    if (nft.getTable("inet", MASQ_TABLE)) removeElements(nft, WHERE, podElements(cidrs, exclude));
  });
}

/** Whether a pod address is masqueraded (for CHECK). */
export function hasMasq(cidr: string): boolean {
  return withNft((nft) => {
    if (!nft.getTable("inet", MASQ_TABLE)) return false;
    const { f, ip } = elementsOf(cidr);
    return nft.listElements("inet", MASQ_TABLE, `masq${f.v}`).some((e) => Buffer.from(e.key).equals(Buffer.from(ip)));
  });
}

/**
 * The pod addresses a DEL must stop masquerading: those of the cached result for this interface,
 * else those still on the pod's interface.
 */
export function masqAddressesOf(args: CmdArgs): string[] {
  const prev = args.prevResult;
  if (prev?.ips && prev.ips.length > 0) {
    const ci = (prev.interfaces ?? []).findIndex((i) => i.name === args.ifName && i.sandbox);
    return prev.ips.filter((ip) => ip.interface === undefined || ci < 0 || ip.interface === ci).map((ip) => ip.address);
  }
  if (!args.netns) return [];
  try {
    return withRtnetlink((pod) => {
      const link = findLink(pod, args.ifName);
      return link ? listAddresses(pod, { link: link.index }).filter((a) => a.scope === 0).map((a) => a.cidr) : [];
    }, { netns: args.netns });
  } catch {
    return []; // the namespace is gone
  }
}

/**
 * The `ipMasq` / `ipMasqBackend` keys (the reference's `IPMasq bool`, `IPMasqBackend *string`), for
 * a plugin's codec. cnikit always masquerades with nftables; "iptables" (and "") are accepted so
 * that reference configs run unchanged, any other backend is code 7.
 */
export const ipMasqShape = {
  ipMasq: bool,
  /** cnikit's: CIDRs traffic to which is not masqueraded (kubenet's non-masquerade CIDR). */
  ipMasqExclude: list(str),
  ipMasqBackend: refine(str, (b) => (b === "" || b === "nftables" || b === "iptables" ? undefined : `invalid ipMasqBackend ${JSON.stringify(b)} (nftables or iptables)`)),
};
