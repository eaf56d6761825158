/**
 * Decoders for what nftables lists: a table (NFT_MSG_NEWTABLE reply to GETTABLE) and set elements
 * (NFT_MSG_NEWSETELEM parts of a GETSETELEM dump), and the request bodies that ask for them.
 */

import { Attrs, nla } from "../netlink/attr.ts";
import { NFPROTO, NFTA_DATA, NFTA_LIST_ELEM, NFTA_SET_ELEM, NFTA_SET_ELEM_LIST, NFTA_TABLE } from "./uapi.ts";
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

/** A set or map element as listed. */
export interface ElementInfo {
  /** Key bytes (concatenations with each component padded to 4 bytes). */
  readonly key: Uint8Array;
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
    out.push({
      key,
      ...(d.value ? { data: d.value } : {}),
      ...(d.verdict ? { verdict: d.verdict } : {}),
      flags: readBe32(e.get(NFTA_SET_ELEM.FLAGS)) ?? 0,
    });
  }
  return out;
}
