/**
 * The nfnetlink attribute shapes nftables uses beyond the generic builders: big-endian 32- and
 * 64-bit integers (nftables keeps its numbers in network order), always-flagged nests, struct
 * nft_data values, and struct nfgenmsg.
 */

import { type Attr, type AttrLike, nla, writeAttrs } from "../netlink/attr.ts";
import { ByteWriter } from "../netlink/bytes.ts";
import { NFNETLINK_V0, NFTA_DATA } from "./uapi.ts";

/** A 32-bit attribute in network order (NLA_BE32 in the kernel's policies). */
export function be32(type: number, v: number): Attr {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, false);
  return nla.bytes(type, b);
}

/** A 64-bit attribute in network order. */
export function be64(type: number, v: bigint): Attr {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, false);
  return nla.bytes(type, b);
}

/** A nested attribute with NLA_F_NESTED set, as nfnetlink requires. */
export function nest(type: number, attrs: readonly AttrLike[]): Attr {
  return nla.nested(type, attrs, { flag: true });
}

/** An NFTA_*_DATA-style attribute holding a plain value (struct nft_data, NFTA_DATA_VALUE). */
export function dataValue(type: number, value: Uint8Array): Attr {
  return nest(type, [nla.bytes(NFTA_DATA.VALUE, value)]);
}

/** struct nfgenmsg: family, version NFNETLINK_V0, res_id (big-endian). */
export function nfgenmsg(family: number, resId = 0): Uint8Array {
  return Uint8Array.of(family & 0xff, NFNETLINK_V0, (resId >> 8) & 0xff, resId & 0xff);
}

/** Read a big-endian u32 attribute payload. */
export function readBe32(b: Uint8Array | undefined): number | undefined {
  if (!b || b.length < 4) return undefined;
  return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, false);
}

function sizeOf(attrs: readonly AttrLike[]): number {
  let n = 0;
  for (const a of attrs) {
    if (!a) continue;
    const inner = a.value instanceof Uint8Array ? a.value.length : sizeOf(a.value as readonly AttrLike[]);
    n += (4 + inner + 3) & ~3;
  }
  return n;
}

/**
 * Encode attributes into a writer sized exactly beforehand. (`ByteWriter` currently loses data
 * when it grows mid-write, so nothing here relies on growth.)
 */
export function encodeNftAttrs(attrs: readonly AttrLike[]): Uint8Array {
  const w = new ByteWriter(Math.max(4, sizeOf(attrs)));
  writeAttrs(w, attrs);
  return w.finish();
}
