/**
 * rtnetlink neighbours and bridge FDB entries: struct ndmsg (u8 family, 3 pad bytes, i32 ifindex,
 * u16 state, u8 flags, u8 type) and its NDA_* attributes.
 */

import { Attrs, nla, writeAttrs } from "./attr.ts";
import { ByteWriter, HOST_LE, viewOf } from "./bytes.ts";
import { prune } from "./prune.ts";
import { MalformedMessageError } from "./malformed.ts";

/** Size of struct ndmsg. */
export const NDMSG_LEN = 12;

/** Destination: the neighbour's IP, or an FDB entry's remote (vxlan). */
export const NDA_DST = 1;
/** Link-layer address. */
export const NDA_LLADDR = 2;
/** VLAN id (FDB), u16. */
export const NDA_VLAN = 5;
/** UDP port (vxlan FDB), network-order u16. */
export const NDA_PORT = 6;
/** VNI (vxlan FDB), u32. */
export const NDA_VNI = 7;
/** Outgoing ifindex (vxlan FDB), u32. */
export const NDA_IFINDEX = 8;
/** Master ifindex (FDB), u32. */
export const NDA_MASTER = 9;

/** NUD state: incomplete. */
export const NUD_INCOMPLETE = 0x01;
/** NUD state: reachable. */
export const NUD_REACHABLE = 0x02;
/** NUD state: stale. */
export const NUD_STALE = 0x04;
/** NUD state: failed. */
export const NUD_FAILED = 0x20;
/** NUD state: no ARP needed. */
export const NUD_NOARP = 0x40;
/** NUD state: permanent (static). */
export const NUD_PERMANENT = 0x80;

/** Neighbour flag: the entry is in the device's own table (FDB of the device itself). */
export const NTF_SELF = 0x02;
/** Neighbour flag: the entry is in the master's (bridge's) FDB. */
export const NTF_MASTER = 0x04;
/** Neighbour flag: proxy entry. */
export const NTF_PROXY = 0x08;
/** Neighbour flag: learned externally. */
export const NTF_EXT_LEARNED = 0x10;
/** Neighbour flag: router (IPv6). */
export const NTF_ROUTER = 0x80;

/** A neighbour (ARP/NDP) or FDB entry message. */
export interface NeighMessage {
  /** AF_INET / AF_INET6 for neighbours, AF_BRIDGE for FDB entries. */
  family: number;
  index: number;
  /** NUD_* state. */
  state?: number;
  /** NTF_* flags. */
  flags?: number;
  type?: number;
  /** IP (4 or 16 bytes). */
  dst?: Uint8Array;
  /** MAC. */
  lladdr?: Uint8Array;
  vlan?: number;
  port?: number;
  vni?: number;
  ifindex?: number;
  master?: number;
}

/** Encode a neighbour message body: struct ndmsg, then the attributes. */
export function encodeNeigh(m: NeighMessage): Uint8Array {
  const w = new ByteWriter();
  w.u8(m.family).u8(0).u16(0).i32(m.index).u16(m.state ?? 0).u8(m.flags ?? 0).u8(m.type ?? 0);
  writeAttrs(w, [
    m.dst && nla.bytes(NDA_DST, m.dst),
    m.lladdr && nla.bytes(NDA_LLADDR, m.lladdr),
    m.vlan !== undefined && nla.u16(NDA_VLAN, m.vlan),
    m.port !== undefined && nla.u16be(NDA_PORT, m.port),
    m.vni !== undefined && nla.u32(NDA_VNI, m.vni),
    m.ifindex !== undefined && nla.u32(NDA_IFINDEX, m.ifindex),
    m.master !== undefined && nla.u32(NDA_MASTER, m.master),
  ]);
  return w.finish();
}

/** Decode a neighbour message body (RTM_NEWNEIGH dumps). */
export function decodeNeigh(body: Uint8Array): NeighMessage {
  if (body.length < NDMSG_LEN) throw new MalformedMessageError(`ndmsg of ${body.length} bytes`);
  const v = viewOf(body);
  const a = Attrs.parse(body.subarray(NDMSG_LEN));
  return prune<NeighMessage>({
    family: v.getUint8(0),
    index: v.getInt32(4, HOST_LE),
    state: v.getUint16(8, HOST_LE),
    flags: v.getUint8(10),
    type: v.getUint8(11),
    dst: a.bytes(NDA_DST),
    lladdr: a.bytes(NDA_LLADDR),
    vlan: a.u16(NDA_VLAN),
    port: a.u16be(NDA_PORT),
    vni: a.u32(NDA_VNI),
    ifindex: a.u32(NDA_IFINDEX),
    master: a.u32(NDA_MASTER),
  });
}
