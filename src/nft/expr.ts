/**
 * Rule expressions as typed objects, and their encoding (NFTA_EXPR_NAME + NFTA_EXPR_DATA, every
 * number a big-endian u32 as the kernel's policies say).
 */

import { type Attr, type AttrLike, nla } from "../netlink/attr.ts";
import { NFT_REG_VERDICT } from "./registers.ts";
import { NFPROTO, NFTA_DATA, NFTA_EXPR, NFTA_LIST_ELEM } from "./uapi.ts";
import { type Verdict, verdictAttrs } from "./verdict.ts";
import { be32, dataValue, nest } from "./wire.ts";

/** Payload bases: where `offset` counts from. */
export const PAYLOAD_BASE = { link: 0, network: 1, transport: 2, inner: 3 } as const;
/** Meta keys cnikit uses (enum nft_meta_keys). */
export const META_KEY = { len: 0, protocol: 1, mark: 3, iif: 4, oif: 5, iifname: 6, oifname: 7, nfproto: 15, l4proto: 16 } as const;
/** Conntrack keys cnikit uses (enum nft_ct_keys). */
export const CT_KEY = { state: 0, direction: 1, status: 2, mark: 3 } as const;
/** Comparison operators (enum nft_cmp_ops). */
export const CMP_OP = { eq: 0, neq: 1, lt: 2, lte: 3, gt: 4, gte: 5 } as const;
/** FIB results (enum nft_fib_result). */
export const FIB_RESULT = { oif: 1, oifname: 2, type: 3 } as const;
/** FIB lookup flags (enum nft_fib_flags). */
export const FIB_F = { saddr: 1, daddr: 2, mark: 4, iif: 8, oif: 16 } as const;
/** Conntrack state bits as `ct state` compares them (NF_CT_STATE_BIT: invalid 1, established 2, related 4, new 8). */
export const CT_STATE = { invalid: 1, established: 2, related: 4, new: 8, untracked: 64 } as const;
/** Route types a `fib ... type` yields (RTN_*). */
export const RTN = { unicast: 1, local: 2, broadcast: 3, anycast: 4, multicast: 5, blackhole: 6, unreachable: 7, prohibit: 8 } as const;
/** NAT range flags (NF_NAT_RANGE_*). */
export const NAT_F = { mapIps: 1, protoSpecified: 2, random: 4, persistent: 8, fullyRandom: 16 } as const;

/** Load `len` bytes at `offset` of a header into `dreg`. */
export interface PayloadExpr {
  readonly kind: "payload";
  readonly base: keyof typeof PAYLOAD_BASE;
  readonly offset: number;
  readonly len: number;
  readonly dreg: number;
}
/** Load packet metadata into `dreg`. */
export interface MetaExpr {
  readonly kind: "meta";
  readonly key: keyof typeof META_KEY;
  readonly dreg: number;
}
/** Set packet metadata (`meta mark set ...`) from the register `sreg`. */
export interface MetaSetExpr {
  readonly kind: "metaSet";
  readonly key: keyof typeof META_KEY;
  readonly sreg: number;
}
/** Compare the register `sreg` with `data`. */
export interface CmpExpr {
  readonly kind: "cmp";
  readonly op: keyof typeof CMP_OP;
  readonly sreg: number;
  readonly data: Uint8Array;
}
/** Look the key in `sreg` up in a set (breaks the rule on a miss, or a hit with `invert`); maps load the value into `dreg`. */
export interface LookupExpr {
  readonly kind: "lookup";
  readonly set: string;
  readonly sreg: number;
  readonly dreg?: number;
  readonly invert?: boolean;
}
/** Put a verdict in the verdict register, or data in `dreg`. */
export type ImmediateExpr =
  | { readonly kind: "immediate"; readonly verdict: Verdict }
  | { readonly kind: "immediate"; readonly dreg: number; readonly data: Uint8Array };
/** Source or destination NAT to the address (and port) held in registers. */
export interface NatExpr {
  readonly kind: "nat";
  readonly type: "snat" | "dnat";
  readonly family: "ip" | "ip6";
  readonly addrMin?: number;
  readonly addrMax?: number;
  readonly protoMin?: number;
  readonly protoMax?: number;
  readonly flags?: number;
}
/** Masquerade (source NAT to the outgoing interface's address). */
export interface MasqExpr {
  readonly kind: "masq";
  readonly flags?: number;
  readonly protoMin?: number;
  readonly protoMax?: number;
}
/** Count packets and bytes. */
export interface CounterExpr {
  readonly kind: "counter";
}
/** Load conntrack data into `dreg`. */
export interface CtExpr {
  readonly kind: "ct";
  readonly key: keyof typeof CT_KEY;
  readonly dreg: number;
  readonly direction?: "original" | "reply";
}
/** Look the packet up in the FIB and load a result into `dreg`. */
export interface FibExpr {
  readonly kind: "fib";
  readonly result: keyof typeof FIB_RESULT;
  readonly flags: readonly (keyof typeof FIB_F)[];
  readonly dreg: number;
}
/** `reg = (reg & mask) ^ xor` over `len` bytes (for testing bits such as ct state). */
export interface BitwiseExpr {
  readonly kind: "bitwise";
  readonly sreg: number;
  readonly dreg: number;
  readonly len: number;
  readonly mask: Uint8Array;
  readonly xor: Uint8Array;
}

/** One expression of a rule. */
export type Expr =
  | PayloadExpr
  | MetaExpr
  | MetaSetExpr
  | CmpExpr
  | LookupExpr
  | ImmediateExpr
  | NatExpr
  | MasqExpr
  | CounterExpr
  | CtExpr
  | FibExpr
  | BitwiseExpr;

/** The expression's kernel name and the attributes of its NFTA_EXPR_DATA. */
function body(e: Expr): [string, AttrLike[]] {
  switch (e.kind) {
    case "payload":
      return ["payload", [be32(1, e.dreg), be32(2, PAYLOAD_BASE[e.base]), be32(3, e.offset), be32(4, e.len)]];
    case "meta":
      return ["meta", [be32(1, e.dreg), be32(2, META_KEY[e.key])]];
    case "metaSet":
      return ["meta", [be32(2, META_KEY[e.key]), be32(3, e.sreg)]];
    case "cmp":
      return ["cmp", [be32(1, e.sreg), be32(2, CMP_OP[e.op]), dataValue(3, e.data)]];
    case "lookup":
      return ["lookup", [
        nla.str(1, e.set),
        be32(2, e.sreg),
        e.dreg !== undefined && be32(3, e.dreg),
        e.invert === true && be32(5, 1),
      ]];
    case "immediate":
      return "verdict" in e
        ? ["immediate", [be32(1, NFT_REG_VERDICT), nest(2, [nest(NFTA_DATA.VERDICT, verdictAttrs(e.verdict))])]]
        : ["immediate", [be32(1, e.dreg), dataValue(2, e.data)]];
    case "nat":
      return ["nat", [
        be32(1, e.type === "snat" ? 0 : 1),
        be32(2, NFPROTO[e.family]),
        e.addrMin !== undefined && be32(3, e.addrMin),
        e.addrMax !== undefined && be32(4, e.addrMax),
        e.protoMin !== undefined && be32(5, e.protoMin),
        e.protoMax !== undefined && be32(6, e.protoMax),
        e.flags !== undefined && be32(7, e.flags),
      ]];
    case "masq":
      return ["masq", [
        e.flags !== undefined && be32(1, e.flags),
        e.protoMin !== undefined && be32(2, e.protoMin),
        e.protoMax !== undefined && be32(3, e.protoMax),
      ]];
    case "counter":
      return ["counter", []];
    case "ct":
      return ["ct", [
        be32(1, e.dreg),
        be32(2, CT_KEY[e.key]),
        e.direction !== undefined && nla.u8(3, e.direction === "original" ? 0 : 1),
      ]];
    case "fib":
      return ["fib", [
        be32(1, e.dreg),
        be32(2, FIB_RESULT[e.result]),
        be32(3, e.flags.reduce((f, k) => f | FIB_F[k], 0)),
      ]];
    case "bitwise":
      return ["bitwise", [be32(1, e.sreg), be32(2, e.dreg), be32(3, e.len), dataValue(4, e.mask), dataValue(5, e.xor)]];
  }
}

/** One expression as an NFTA_LIST_ELEM of NFTA_RULE_EXPRESSIONS. */
export function encodeExpr(e: Expr): Attr {
  const [name, attrs] = body(e);
  return nest(NFTA_LIST_ELEM, [nla.str(NFTA_EXPR.NAME, name), attrs.some(Boolean) && nest(NFTA_EXPR.DATA, attrs)]);
}
