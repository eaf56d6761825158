/**
 * Netlink message framing (struct nlmsghdr: u32 length, u16 type, u16 flags, u32 seq, u32 pid):
 * encode one message, split a received datagram into messages.
 */

import { align4, ByteWriter, HOST_LE, viewOf } from "./bytes.ts";
import { MalformedMessageError } from "./malformed.ts";

/** Size of struct nlmsghdr. */
export const NLMSG_HDRLEN = 16;

/** Control message type: nothing, skip it. */
export const NLMSG_NOOP = 1;
/** Control message type: an error or (errno 0) an acknowledgement. */
export const NLMSG_ERROR = 2;
/** Control message type: end of a multi-part dump. */
export const NLMSG_DONE = 3;
/** Control message type: data lost. */
export const NLMSG_OVERRUN = 4;

/** Flag: this is a request. */
export const NLM_F_REQUEST = 0x01;
/** Flag: part of a multi-part message, ended by NLMSG_DONE. */
export const NLM_F_MULTI = 0x02;
/** Flag: acknowledge the request (success too). */
export const NLM_F_ACK = 0x04;
/** Flag: echo the request. */
export const NLM_F_ECHO = 0x08;
/** Flag (in a dump reply): the dump was interrupted by a change; its data is inconsistent. */
export const NLM_F_DUMP_INTR = 0x10;
/** Flag (GET): return the whole table. */
export const NLM_F_ROOT = 0x100;
/** Flag (GET): return all matching entries. */
export const NLM_F_MATCH = 0x200;
/** Flag (GET): a dump (ROOT | MATCH). */
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
/** Flag (NEW): replace an existing object. */
export const NLM_F_REPLACE = 0x100;
/** Flag (NEW): fail with EEXIST when the object exists. */
export const NLM_F_EXCL = 0x200;
/** Flag (NEW): create the object when it does not exist. */
export const NLM_F_CREATE = 0x400;
/** Flag (NEW): add to the end of the list. */
export const NLM_F_APPEND = 0x800;
/** Flag (in an ack): the request was not echoed back (NETLINK_CAP_ACK). */
export const NLM_F_CAPPED = 0x100;
/** Flag (in an ack): extended-ack attributes follow. */
export const NLM_F_ACK_TLVS = 0x200;

/** The fields of a netlink message header. */
export interface NetlinkHeader {
  /** Message type (NLMSG_* or a protocol's own, such as RTM_NEWLINK). */
  type: number;
  /** NLM_F_* flags. */
  flags: number;
  /** Sequence number, echoed by the kernel in its replies. */
  seq: number;
  /** Sender port id (0 for the kernel). */
  pid: number;
}

/** One message: its header and its payload (a view into the received datagram). */
export interface NetlinkMessage extends NetlinkHeader {
  body: Uint8Array;
}

/** Encode one message: the header, then `body` padded to 4 bytes. */
export function encodeMessage(hdr: Partial<NetlinkHeader> & { type: number }, body: Uint8Array): Uint8Array {
  const w = new ByteWriter(NLMSG_HDRLEN + align4(body.length));
  w.u32(NLMSG_HDRLEN + body.length).u16(hdr.type).u16(hdr.flags ?? 0).u32(hdr.seq ?? 0).u32(hdr.pid ?? 0);
  w.bytes(body).pad4();
  return w.finish();
}

/** Decode a header at `off` of `buf`. */
export function decodeHeader(buf: Uint8Array, off = 0): NetlinkHeader & { length: number } {
  if (off + NLMSG_HDRLEN > buf.length) throw new MalformedMessageError(`truncated header at offset ${off}`);
  const v = viewOf(buf);
  return {
    length: v.getUint32(off, HOST_LE),
    type: v.getUint16(off + 4, HOST_LE),
    flags: v.getUint16(off + 6, HOST_LE),
    seq: v.getUint32(off + 8, HOST_LE),
    pid: v.getUint32(off + 12, HOST_LE),
  };
}

/** Split a datagram into its messages. */
export function parseMessages(buf: Uint8Array): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const { length, ...hdr } = decodeHeader(buf, off);
    if (length < NLMSG_HDRLEN || off + length > buf.length) {
      throw new MalformedMessageError(`message at offset ${off} has length ${length} (datagram is ${buf.length})`);
    }
    out.push({ ...hdr, body: buf.subarray(off + NLMSG_HDRLEN, off + length) });
    off += align4(length);
  }
  return out;
}
