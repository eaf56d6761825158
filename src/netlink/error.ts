/**
 * Errors the kernel answers with (NLMSG_ERROR, or an error in NLMSG_DONE), their extended-ack
 * details, and predicates to test them without matching messages.
 */

import { Errno, errnoMessage, errnoName, NOT_FOUND_ERRNOS } from "../sys/errno.ts";
import { Attrs } from "./attr.ts";
import { align4, i32At } from "./bytes.ts";
import { MalformedMessageError } from "./malformed.ts";
import { decodeHeader, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_HDRLEN } from "./message.ts";

/** Extended ack attribute: the kernel's message, a string. */
export const NLMSGERR_ATTR_MSG = 1;
/** Extended ack attribute: offset of the offending attribute in the request, u32. */
export const NLMSGERR_ATTR_OFFS = 2;
/** Extended ack attribute: an opaque cookie. */
export const NLMSGERR_ATTR_COOKIE = 3;
/** Extended ack attribute: the policy of the offending attribute. */
export const NLMSGERR_ATTR_POLICY = 4;
/** Extended ack attribute: type of a missing required attribute, u32. */
export const NLMSGERR_ATTR_MISS_TYPE = 5;
/** Extended ack attribute: offset of the nest the missing attribute belongs in, u32. */
export const NLMSGERR_ATTR_MISS_NEST = 6;

/** A decoded NLMSG_ERROR payload (or an NLMSG_DONE error). */
export interface Ack {
  /** The errno, positive; 0 for a plain acknowledgement. */
  errno: number;
  /** The type of the request this answers (undefined for NLMSG_DONE). */
  requestType?: number;
  /** The sequence number of the request this answers. */
  requestSeq?: number;
  /** The kernel's own message (extended ack). */
  message?: string;
  /** Offset in the request of the attribute the kernel rejected. */
  offset?: number;
  /** Type of a required attribute that was missing. */
  missingType?: number;
}

function extAck(ack: Ack, tlvs: Uint8Array): Ack {
  if (tlvs.length === 0) return ack;
  const a = Attrs.parse(tlvs);
  const msg = a.str(NLMSGERR_ATTR_MSG);
  if (msg) ack.message = msg;
  const offs = a.u32(NLMSGERR_ATTR_OFFS);
  if (offs !== undefined) ack.offset = offs;
  const miss = a.u32(NLMSGERR_ATTR_MISS_TYPE);
  if (miss !== undefined) ack.missingType = miss;
  return ack;
}

/**
 * Decode an NLMSG_ERROR payload (struct nlmsgerr: int error, the request's header, the request's
 * payload unless capped, then extended-ack attributes when NLM_F_ACK_TLVS is set).
 */
export function parseAck(body: Uint8Array, flags: number): Ack {
  if (body.length < 4 + NLMSG_HDRLEN) throw new MalformedMessageError(`NLMSG_ERROR of ${body.length} bytes`);
  const req = decodeHeader(body, 4);
  const ack: Ack = { errno: -i32At(body, 0) || 0, requestType: req.type, requestSeq: req.seq };
  if (!(flags & NLM_F_ACK_TLVS)) return ack;
  const start = flags & NLM_F_CAPPED ? 4 + NLMSG_HDRLEN : align4(4 + req.length);
  return extAck(ack, body.subarray(Math.min(start, body.length)));
}

/** Decode an NLMSG_DONE payload: the dump's final status (int error, then extended-ack attributes). */
export function parseDone(body: Uint8Array, flags: number): Ack {
  if (body.length < 4) return { errno: 0 };
  const ack: Ack = { errno: -i32At(body, 0) || 0 };
  return flags & NLM_F_ACK_TLVS ? extAck(ack, body.subarray(4)) : ack;
}

/** The kernel refused a netlink request: its errno, and its own message when it gave one. */
export class NetlinkError extends Error {
  /** The errno, positive. */
  readonly errno: number;
  /** The errno's name, such as "EEXIST". */
  readonly code: string;
  /** What was asked, such as "RTM_NEWLINK". */
  readonly op: string;
  /** The kernel's extended-ack message, if any. */
  readonly kernelMessage?: string;
  /** Offset of the rejected attribute in the request, if the kernel said. */
  readonly offset?: number;

  constructor(op: string, ack: Ack) {
    const errno = ack.errno;
    const base = `${op}: ${errnoMessage(errno)} (${errnoName(errno)})`;
    super(ack.message ? `${base}: ${ack.message}` : base);
    this.name = "NetlinkError";
    this.errno = errno;
    this.code = errnoName(errno);
    this.op = op;
    if (ack.message) this.kernelMessage = ack.message;
    if (ack.offset !== undefined) this.offset = ack.offset;
  }
}

function errnoOf(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = (err as { errno?: unknown }).errno;
  // node:fs errors carry negative errnos; ours carry positive ones.
  return typeof e === "number" ? Math.abs(e) : undefined;
}

/**
 * Whether `err` says the object is not there: ENOENT, ESRCH (routes), ENODEV (links) or
 * EADDRNOTAVAIL (addresses). Works for NetlinkError, SysError and node:fs errors.
 */
export function isNotFound(err: unknown): boolean {
  const e = errnoOf(err);
  return e !== undefined && NOT_FOUND_ERRNOS.has(e);
}

/** Whether `err` says the object already exists (EEXIST). */
export function isExists(err: unknown): boolean {
  return errnoOf(err) === Errno.EEXIST;
}
