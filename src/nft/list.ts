/**
 * Decoders for what nftables lists: a table (NFT_MSG_NEWTABLE reply to GETTABLE), a chain
 * (NEWCHAIN reply to GETCHAIN), rules (NEWRULE parts of a GETRULE dump) and set elements
 * (NFT_MSG_NEWSETELEM parts of a GETSETELEM dump), and the request bodies that ask for them.
 */

import { Attrs, nla } from "../netlink/attr.ts";
import {
  NFPROTO,
  NFTA_CHAIN,
  NFTA_DATA,
  NFTA_EXPR,
  NFTA_HOOK,
  NFTA_LIST_ELEM,
  NFTA_RULE,
  NFTA_SET_ELEM,
  NFTA_SET_ELEM_LIST,
  NFTA_TABLE,
  VerdictCode,
} from "./uapi.ts";
import type { Family } from "./objects.ts";
import { decodeVerdict, type Verdict } from "./verdict.ts";
import { encodeNftAttrs, nfgenmsg, readBe32 } from "./wire.ts";

/** A table as the kernel reports it. */
export interface TableInfo {
  readonly family: Family;
  readonly name: string;
  /** NFT_TABLE_F_* flags. */
  readonly flags: number;
  /** Number of chains (and other objects) in it. */
  readonly use: number;
}

/** A chain as the kernel reports it. */
export interface ChainInfo {
  readonly family: Family;
  readonly table: string;
  readonly name: string;
  /** Base chains only: the hook number, its priority, the policy and the chain type. */
  readonly hook?: number;
  readonly priority?: number;
  readonly policy?: "accept" | "drop";
  readonly type?: string;
}

/** One expression of a listed rule: its kernel name and the attributes of NFTA_EXPR_DATA. */
export interface RuleExprInfo {
  readonly name: string;
  readonly data: Attrs;
}

/** A rule as listed. */
export interface RuleInfo {
  /** Kernel handle (what a delete needs). */
  readonly handle: bigint;
  readonly exprs: readonly RuleExprInfo[];
  /** NFTA_RULE_USERDATA (nft and iptables-nft keep comments here). */
  readonly userdata?: Uint8Array;
}

/** A set or map element as listed. */
export interface ElementInfo {
  /** Key bytes (concatenations with each component padded to 4 bytes). */
  readonly key: Uint8Array;
  /** End of the range (interval sets of concatenations, NFTA_SET_ELEM_KEY_END). */
  readonly keyEnd?: Uint8Array;
  /** Map value bytes. */
  readonly data?: Uint8Array;
  /** Verdict-map value. */
  readonly verdict?: Verdict;
  /** NFT_SET_ELEM_* flags. */
  readonly flags: number;
}

/** The family name of an NFPROTO_* number. */
export function familyName(n: number): Family {
  const f = (Object.keys(NFPROTO) as Family[]).find((k) => NFPROTO[k] === n);
  if (!f) throw new RangeError(`unknown nftables family ${n}`);
  return f;
}

/** Body of a GETTABLE request for one table. */
export function getTableBody(family: Family, name: string): Uint8Array {
  return withGen(family, encodeNftAttrs([nla.str(NFTA_TABLE.NAME, name)]));
}

/** Body of a GETCHAIN request for one chain. */
export function getChainBody(family: Family, table: string, name: string): Uint8Array {
  return withGen(family, encodeNftAttrs([nla.str(NFTA_CHAIN.TABLE, table), nla.str(NFTA_CHAIN.NAME, name)]));
}

/** Body of a GETRULE dump of one chain. */
export function getRulesBody(family: Family, table: string, chain: string): Uint8Array {
  return withGen(family, encodeNftAttrs([nla.str(NFTA_RULE.TABLE, table), nla.str(NFTA_RULE.CHAIN, chain)]));
}

/** Body of a GETSETELEM dump of one set or map. */
export function getElementsBody(family: Family, table: string, set: string): Uint8Array {
  return withGen(family, encodeNftAttrs([nla.str(NFTA_SET_ELEM_LIST.TABLE, table), nla.str(NFTA_SET_ELEM_LIST.SET, set)]));
}

function withGen(family: Family, attrs: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + attrs.length);
  out.set(nfgenmsg(NFPROTO[family]));
  out.set(attrs, 4);
  return out;
}

/** Decode a NEWTABLE message body (nfgenmsg, then table attributes). */
export function decodeTable(body: Uint8Array): TableInfo {
  const a = Attrs.parse(body.subarray(4));
  return {
    family: familyName(body[0] ?? 0),
    name: a.str(NFTA_TABLE.NAME) ?? "",
    flags: readBe32(a.get(NFTA_TABLE.FLAGS)) ?? 0,
    use: readBe32(a.get(NFTA_TABLE.USE)) ?? 0,
  };
}

/** Decode a NEWCHAIN message body (nfgenmsg, then chain attributes). */
export function decodeChain(body: Uint8Array): ChainInfo {
  const a = Attrs.parse(body.subarray(4));
  const hook = a.nested(NFTA_CHAIN.HOOK);
  const prio = hook?.get(NFTA_HOOK.PRIORITY);
  const policy = readBe32(a.get(NFTA_CHAIN.POLICY));
  const type = a.str(NFTA_CHAIN.TYPE);
  return {
    family: familyName(body[0] ?? 0),
    table: a.str(NFTA_CHAIN.TABLE) ?? "",
    name: a.str(NFTA_CHAIN.NAME) ?? "",
    ...(hook ? { hook: readBe32(hook.get(NFTA_HOOK.HOOKNUM)) ?? 0 } : {}),
    ...(prio && prio.length >= 4 ? { priority: new DataView(prio.buffer, prio.byteOffset, 4).getInt32(0, false) } : {}),
    ...(policy !== undefined ? { policy: policy === VerdictCode.drop ? "drop" as const : "accept" as const } : {}),
    ...(type !== undefined ? { type } : {}),
  };
}

/** Decode a NEWRULE message body (nfgenmsg, then rule attributes). */
export function decodeRule(body: Uint8Array): RuleInfo {
  const a = Attrs.parse(body.subarray(4));
  const h = a.get(NFTA_RULE.HANDLE);
  const exprs: RuleExprInfo[] = [];
  for (const raw of a.nested(NFTA_RULE.EXPRESSIONS)?.all(NFTA_LIST_ELEM) ?? []) {
    const e = Attrs.parse(raw);
    exprs.push({ name: e.str(NFTA_EXPR.NAME) ?? "", data: e.nested(NFTA_EXPR.DATA) ?? new Attrs([]) });
  }
  const userdata = a.bytes(NFTA_RULE.USERDATA);
  return {
    handle: h && h.length >= 8 ? new DataView(h.buffer, h.byteOffset, 8).getBigUint64(0, false) : 0n,
    exprs,
    ...(userdata ? { userdata } : {}),
  };
}

function dataOf(a: Attrs | undefined): { value?: Uint8Array; verdict?: Verdict } {
  if (!a) return {};
  const v = a.bytes(NFTA_DATA.VALUE);
  if (v) return { value: v };
  const vd = a.nested(NFTA_DATA.VERDICT);
  return vd ? { verdict: decodeVerdict(vd) } : {};
}

/** Decode the elements of a NEWSETELEM message body (nfgenmsg, then element-list attributes). */
export function decodeElements(body: Uint8Array): ElementInfo[] {
  const list = Attrs.parse(body.subarray(4)).nested(NFTA_SET_ELEM_LIST.ELEMENTS);
  if (!list) return [];
  const out: ElementInfo[] = [];
  for (const raw of list.all(NFTA_LIST_ELEM)) {
    const e = Attrs.parse(raw);
    const key = dataOf(e.nested(NFTA_SET_ELEM.KEY)).value ?? new Uint8Array(0);
    const d = dataOf(e.nested(NFTA_SET_ELEM.DATA));
    const keyEnd = dataOf(e.nested(NFTA_SET_ELEM.KEY_END)).value;
    out.push({
      key,
      ...(keyEnd ? { keyEnd } : {}),
      ...(d.value ? { data: d.value } : {}),
      ...(d.verdict ? { verdict: d.verdict } : {}),
      flags: readBe32(e.get(NFTA_SET_ELEM.FLAGS)) ?? 0,
    });
  }
  return out;
}
