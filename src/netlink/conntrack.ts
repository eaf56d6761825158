/**
 * The ctnetlink codec (NETLINK_NETFILTER, subsystem NFNL_SUBSYS_CTNETLINK): a dump request for
 * the conntrack table of one family, the decoding of its entries (original and reply tuples,
 * zone), and the IPCTNL_MSG_CT_DELETE request that removes one entry by its original tuple.
 */

import { type AttrLike, Attrs, nla, writeAttrs } from "./attr.ts";
import { ByteWriter } from "./bytes.ts";

/** The conntrack subsystem of nfnetlink. */
export const NFNL_SUBSYS_CTNETLINK = 1;
/** ctnetlink message types (enum cntl_msg_types). */
export const IPCTNL_MSG = { NEW: 0, GET: 1, DELETE: 2 } as const;
/** Top-level conntrack attributes cnikit reads or sends (enum ctattr_type). */
export const CTA = { TUPLE_ORIG: 1, TUPLE_REPLY: 2, STATUS: 3, MARK: 8, ID: 12, ZONE: 18 } as const;
/** Tuple attributes (enum ctattr_tuple). */
export const CTA_TUPLE = { IP: 1, PROTO: 2, ZONE: 3 } as const;
/** Address attributes (enum ctattr_ip). */
export const CTA_IP = { V4_SRC: 1, V4_DST: 2, V6_SRC: 3, V6_DST: 4 } as const;
/** Protocol attributes (enum ctattr_l4proto). */
export const CTA_PROTO = { NUM: 1, SRC_PORT: 2, DST_PORT: 3 } as const;
/** Address families as nfgenmsg carries them. */
export const CT_FAMILY = { 4: 2, 6: 10 } as const;

/** One direction of a connection. */
export interface CtTuple {
  /** Source address bytes (4 or 16). */
  readonly src: Uint8Array;
  /** Destination address bytes. */
  readonly dst: Uint8Array;
  /** IP protocol number. */
  readonly proto: number;
  /** Ports (0 for protocols without ports). */
  readonly srcPort: number;
  readonly dstPort: number;
}

/** A conntrack entry as dumped. */
export interface CtEntry {
  readonly family: 4 | 6;
  readonly orig: CtTuple;
  readonly reply?: CtTuple;
  /** Conntrack zone (0 when the kernel does not say). */
  readonly zone: number;
}

/** The nfnetlink message type of a ctnetlink message. */
export function ctMsgType(msg: number): number {
  return (NFNL_SUBSYS_CTNETLINK << 8) | msg;
}

function genmsg(family: 4 | 6): Uint8Array {
  return Uint8Array.of(CT_FAMILY[family], 0, 0, 0);
}

function withAttrs(head: Uint8Array, attrs: readonly AttrLike[]): Uint8Array {
  const w = new ByteWriter(512);
  w.bytes(head);
  writeAttrs(w, attrs);
  return w.finish();
}

/** Body of an IPCTNL_MSG_CT_GET dump of the whole table of one family. */
export function encodeCtDump(family: 4 | 6): Uint8Array {
  return genmsg(family);
}

function tupleAttrs(family: 4 | 6, t: CtTuple): AttrLike[] {
  const v4 = family === 4;
  return [
    nla.nested(CTA_TUPLE.IP, [
      nla.bytes(v4 ? CTA_IP.V4_SRC : CTA_IP.V6_SRC, t.src),
      nla.bytes(v4 ? CTA_IP.V4_DST : CTA_IP.V6_DST, t.dst),
    ], { flag: true }),
    nla.nested(CTA_TUPLE.PROTO, [
      nla.u8(CTA_PROTO.NUM, t.proto),
      t.srcPort !== 0 && nla.u16be(CTA_PROTO.SRC_PORT, t.srcPort),
      t.dstPort !== 0 && nla.u16be(CTA_PROTO.DST_PORT, t.dstPort),
    ], { flag: true }),
  ];
}

/** Body of an IPCTNL_MSG_CT_DELETE of the entry with this original tuple (in `zone`). */
export function encodeCtDelete(family: 4 | 6, orig: CtTuple, zone = 0): Uint8Array {
  return withAttrs(genmsg(family), [
    nla.nested(CTA.TUPLE_ORIG, tupleAttrs(family, orig), { flag: true }),
    zone !== 0 && nla.u16be(CTA.ZONE, zone),
  ]);
}

function decodeTuple(a: Attrs | undefined): CtTuple | undefined {
  if (!a) return undefined;
  const ip = a.nested(CTA_TUPLE.IP);
  const pr = a.nested(CTA_TUPLE.PROTO);
  if (!ip || !pr) return undefined;
  const src = ip.bytes(CTA_IP.V4_SRC) ?? ip.bytes(CTA_IP.V6_SRC);
  const dst = ip.bytes(CTA_IP.V4_DST) ?? ip.bytes(CTA_IP.V6_DST);
  if (!src || !dst) return undefined;
  return {
    src,
    dst,
    proto: pr.u8(CTA_PROTO.NUM) ?? 0,
    srcPort: pr.u16be(CTA_PROTO.SRC_PORT) ?? 0,
    dstPort: pr.u16be(CTA_PROTO.DST_PORT) ?? 0,
  };
}

/** Decode one IPCTNL_MSG_CT_NEW message of a dump; undefined when it has no usable tuple. */
export function decodeCtEntry(body: Uint8Array): CtEntry | undefined {
  if (body.length < 4) return undefined;
  const family = body[0] === CT_FAMILY[6] ? 6 : 4;
  const a = Attrs.parse(body.subarray(4));
  const orig = decodeTuple(a.nested(CTA.TUPLE_ORIG));
  if (!orig) return undefined;
  const reply = decodeTuple(a.nested(CTA.TUPLE_REPLY));
  return { family, orig, ...(reply ? { reply } : {}), zone: a.u16be(CTA.ZONE) ?? 0 };
}
