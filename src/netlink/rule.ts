/** Policy routing rules (RTM_NEWRULE / RTM_DELRULE / RTM_GETRULE): struct fib_rule_hdr and FRA_* attributes. */

import { Attrs, nla, writeAttrs } from "./attr.ts";
import { ByteWriter } from "./bytes.ts";

/** Size of struct fib_rule_hdr. */
export const FIB_RULE_HDR_LEN = 12;
/** FRA_* attribute types. */
export const FRA_DST = 1;
export const FRA_SRC = 2;
export const FRA_IIFNAME = 3;
export const FRA_PRIORITY = 6;
export const FRA_TABLE = 15;
export const FRA_OIFNAME = 17;
/** FR_ACT_TO_TBL: look the packet up in a routing table. */
export const FR_ACT_TO_TBL = 1;

/** A rule message: the header fields and the attributes cnikit uses. */
export interface RuleMessage {
  family: number;
  /** Source prefix (address bytes) and its length. */
  src?: Uint8Array;
  srcLen?: number;
  dst?: Uint8Array;
  dstLen?: number;
  table?: number;
  priority?: number;
  action?: number;
  iifname?: string;
  oifname?: string;
}

/** Encode a rule message body (tables above 255 go only in FRA_TABLE, as iproute2 does). */
export function encodeRule(m: RuleMessage): Uint8Array {
  const w = new ByteWriter();
  const table = m.table ?? 0;
  w.u8(m.family).u8(m.dstLen ?? 0).u8(m.srcLen ?? 0).u8(0);
  w.u8(table > 0 && table < 256 ? table : 0).u8(0).u8(0).u8(m.action ?? FR_ACT_TO_TBL).u32(0);
  writeAttrs(w, [
    m.dst && nla.bytes(FRA_DST, m.dst),
    m.src && nla.bytes(FRA_SRC, m.src),
    m.iifname !== undefined && nla.str(FRA_IIFNAME, m.iifname),
    m.oifname !== undefined && nla.str(FRA_OIFNAME, m.oifname),
    m.priority !== undefined && nla.u32(FRA_PRIORITY, m.priority),
    table > 0 && nla.u32(FRA_TABLE, table),
  ]);
  return w.finish();
}

/** Decode a rule message body (RTM_NEWRULE replies and dumps). */
export function decodeRule(body: Uint8Array): RuleMessage {
  const m: RuleMessage = { family: body[0]!, dstLen: body[1]!, srcLen: body[2]!, action: body[7]! };
  const a = Attrs.parse(body.subarray(FIB_RULE_HDR_LEN));
  const table = a.u32(FRA_TABLE) ?? body[4]!;
  if (table) m.table = table;
  const src = a.get(FRA_SRC);
  if (src) m.src = src.slice();
  const dst = a.get(FRA_DST);
  if (dst) m.dst = dst.slice();
  const prio = a.u32(FRA_PRIORITY);
  if (prio !== undefined) m.priority = prio;
  const iif = a.get(FRA_IIFNAME);
  if (iif) m.iifname = new TextDecoder().decode(iif).replace(/\0.*$/, "");
  const oif = a.get(FRA_OIFNAME);
  if (oif) m.oifname = new TextDecoder().decode(oif).replace(/\0.*$/, "");
  return m;
}
