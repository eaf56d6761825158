/**
 * Rule matches shared by every table cnikit writes: an IP family's constants as rules see them
 * (`meta nfproto`, header offsets, the address set type, the nat family, multicast), an address in
 * a prefix, and conntrack bits. One place, so that portmap, ipmasq, firewall and the agent's
 * masquerading say the same thing the same way.
 */

import { type IPNet, networkOf } from "../spec/ip.ts";
import type { Expr } from "./expr.ts";
import { mark } from "./value.ts";

/** An IP family as nftables rules see it. */
export interface IpFamily {
  readonly v: 4 | 6;
  /** NFPROTO_IPV4 (2) / NFPROTO_IPV6 (10), what `meta nfproto` loads. */
  readonly nfproto: number;
  /** The set data type of its addresses. */
  readonly addrType: "ipv4_addr" | "ipv6_addr";
  /** Address length in bytes. */
  readonly len: 4 | 16;
  /** Offset of the source address in the network header. */
  readonly saddr: number;
  /** Offset of the destination address in the network header. */
  readonly daddr: number;
  /** The `nat` expression's family. */
  readonly nat: "ip" | "ip6";
  /** Its multicast range: 224.0.0.0/4, ff00::/8. */
  readonly multicast: IPNet;
}

/** IPv4. */
export const IPV4: IpFamily = {
  v: 4, nfproto: 2, addrType: "ipv4_addr", len: 4, saddr: 12, daddr: 16, nat: "ip",
  multicast: { ip: Uint8Array.of(224, 0, 0, 0), prefix: 4 },
};
/** IPv6. */
export const IPV6: IpFamily = {
  v: 6, nfproto: 10, addrType: "ipv6_addr", len: 16, saddr: 8, daddr: 24, nat: "ip6",
  multicast: { ip: Uint8Array.of(0xff, ...new Array<number>(15).fill(0)), prefix: 8 },
};
/** Both families, IPv4 first (the order rules are written in). */
export const IP_FAMILIES: readonly IpFamily[] = [IPV4, IPV6];

/** The family of version `v`, or of an address (4 or 16 bytes). */
export function ipFamily(v: 4 | 6 | Uint8Array): IpFamily {
  const n = v instanceof Uint8Array ? (v.length === 4 ? 4 : 6) : v;
  return n === 4 ? IPV4 : IPV6;
}

/** `CT_STATE` bits of a connection that is under way (established 2, related 4). */
export const CT_ESTABLISHED_RELATED = 2 | 4;
/** `ct status` bit of a connection destination-NATed on this host (IPS_DST_NAT). */
export const IPS_DST_NAT = 0x20;

/** `meta nfproto ipv4` / `ipv6`, through register 1. */
export function nfprotoIs(v: 4 | 6 | IpFamily): Expr[] {
  const f = typeof v === "number" ? ipFamily(v) : v;
  return [
    { kind: "meta", key: "nfproto", dreg: 1 },
    { kind: "cmp", op: "eq", sreg: 1, data: Uint8Array.of(f.nfproto) },
  ];
}

/** Load the packet's source or destination address of family `f` into `dreg`. */
export function loadAddr(f: IpFamily, which: "saddr" | "daddr", dreg: number): Expr {
  return { kind: "payload", base: "network", offset: f[which], len: f.len, dreg };
}

/** A mask of `prefix` leading one bits over `len` bytes. */
export function prefixMask(len: number, prefix: number): Uint8Array {
  const m = new Uint8Array(len);
  for (let bit = 0; bit < prefix; bit++) m[bit >> 3]! |= 0x80 >> (bit & 7);
  return m;
}

/** The packet's source or destination address is (`eq`) or is not (`neq`) in `net`, through register 1. */
export function addrInNet(net: IPNet, which: "saddr" | "daddr", op: "eq" | "neq" = "eq"): Expr[] {
  const f = ipFamily(net.ip);
  return [
    loadAddr(f, which, 1),
    { kind: "bitwise", sreg: 1, dreg: 1, len: f.len, mask: prefixMask(f.len, net.prefix), xor: new Uint8Array(f.len) },
    { kind: "cmp", op, sreg: 1, data: networkOf(net).ip },
  ];
}

/** The connection's `ct state` or `ct status` has one of `bits`, through register 1. */
export function ctHasAny(key: "state" | "status", bits: number): Expr[] {
  return [
    { kind: "ct", key, dreg: 1 },
    { kind: "bitwise", sreg: 1, dreg: 1, len: 4, mask: mark(bits), xor: mark(0) },
    { kind: "cmp", op: "neq", sreg: 1, data: mark(0) },
  ];
}
