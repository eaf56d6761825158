/** Rule expressions the firewall's chains share: the packet's family, and conntrack bits. */

import type { Expr } from "../../nft/expr.ts";
import { mark } from "../../nft/value.ts";

/** `ct state` bits of a connection that is under way (established 2, related 4). */
export const CT_ESTABLISHED_RELATED = 2 | 4;
/** `ct status` bit of a connection destination-NATed on this host (IPS_DST_NAT). */
export const IPS_DST_NAT = 0x20;

/** `meta nfproto ipv4` / `ipv6`, through register 1. */
export function nfprotoIs(v: 4 | 6): Expr[] {
  return [
    { kind: "meta", key: "nfproto", dreg: 1 },
    { kind: "cmp", op: "eq", sreg: 1, data: Uint8Array.of(v === 4 ? 2 : 10) },
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
