/**
 * rtnetlink addresses: struct ifaddrmsg (u8 family, u8 prefixlen, u8 flags, u8 scope, u32 index)
 * and its IFA_* attributes.
 */

import { Attrs, nla, writeAttrs } from "./attr.ts";
import { ByteWriter, HOST_LE, viewOf } from "./bytes.ts";
import { prune } from "./prune.ts";
import { MalformedMessageError } from "./malformed.ts";

/** Size of struct ifaddrmsg. */
export const IFADDRMSG_LEN = 8;

/** Peer address (point-to-point) or, usually, the address itself. */
export const IFA_ADDRESS = 1;
/** The local address. */
export const IFA_LOCAL = 2;
/** Label (IPv4), string. */
export const IFA_LABEL = 3;
/** Broadcast address (IPv4). */
export const IFA_BROADCAST = 4;
/** Lifetimes, struct ifa_cacheinfo. */
export const IFA_CACHEINFO = 6;
/** All IFA_F_* flags as u32 (ifa_flags holds only the low 8). */
export const IFA_FLAGS = 8;

/** Secondary (IPv4) / temporary (IPv6) address. */
export const IFA_F_SECONDARY = 0x01;
/** Skip duplicate address detection (IPv6). */
export const IFA_F_NODAD = 0x02;
/** Optimistic DAD (IPv6). */
export const IFA_F_OPTIMISTIC = 0x04;
/** DAD failed (IPv6). */
export const IFA_F_DADFAILED = 0x08;
/** Deprecated (IPv6). */
export const IFA_F_DEPRECATED = 0x20;
/** Tentative: DAD still running (IPv6). */
export const IFA_F_TENTATIVE = 0x40;
/** Permanent: added by hand, not autoconfigured. */
export const IFA_F_PERMANENT = 0x80;
/** Do not add the prefix route for this address. */
export const IFA_F_NOPREFIXROUTE = 0x200;

/** Route scope: global. */
export const RT_SCOPE_UNIVERSE = 0;
/** Route scope: site. */
export const RT_SCOPE_SITE = 200;
/** Route scope: on this link. */
export const RT_SCOPE_LINK = 253;
/** Route scope: this host. */
export const RT_SCOPE_HOST = 254;
/** Route scope: nowhere. */
export const RT_SCOPE_NOWHERE = 255;

/** Infinite lifetime in IFA_CACHEINFO. */
export const INFINITY_LIFE_TIME = 0xffffffff;

/** An address message. Addresses are 4 or 16 bytes. */
export interface AddrMessage {
  family: number;
  prefixLen: number;
  /** IFA_F_* flags (all 32 bits; the low 8 also go in ifa_flags). */
  flags?: number;
  scope?: number;
  index: number;
  local?: Uint8Array;
  address?: Uint8Array;
  broadcast?: Uint8Array;
  label?: string;
  /** Preferred lifetime in seconds (IFA_CACHEINFO). */
  preferredLifetime?: number;
  /** Valid lifetime in seconds (IFA_CACHEINFO). */
  validLifetime?: number;
}

/** Encode an address message body: struct ifaddrmsg, then the attributes. */
export function encodeAddr(m: AddrMessage): Uint8Array {
  const w = new ByteWriter();
  const flags = m.flags ?? 0;
  w.u8(m.family).u8(m.prefixLen).u8(flags & 0xff).u8(m.scope ?? 0).u32(m.index);
  const life = m.preferredLifetime !== undefined || m.validLifetime !== undefined;
  let cache: Uint8Array | undefined;
  if (life) {
    cache = new Uint8Array(16);
    const v = viewOf(cache);
    v.setUint32(0, m.preferredLifetime ?? INFINITY_LIFE_TIME, HOST_LE);
    v.setUint32(4, m.validLifetime ?? INFINITY_LIFE_TIME, HOST_LE);
  }
  writeAttrs(w, [
    m.local && nla.bytes(IFA_LOCAL, m.local),
    m.address && nla.bytes(IFA_ADDRESS, m.address),
    m.broadcast && nla.bytes(IFA_BROADCAST, m.broadcast),
    m.label !== undefined && nla.str(IFA_LABEL, m.label),
    cache && nla.bytes(IFA_CACHEINFO, cache),
    // Flags beyond the low 8 bits fit only in IFA_FLAGS; iproute2 sends it whenever flags are set.
    flags !== 0 && nla.u32(IFA_FLAGS, flags),
  ]);
  return w.finish();
}

/** Decode an address message body (RTM_NEWADDR dumps). */
export function decodeAddr(body: Uint8Array): AddrMessage {
  if (body.length < IFADDRMSG_LEN) throw new MalformedMessageError(`ifaddrmsg of ${body.length} bytes`);
  const v = viewOf(body);
  const a = Attrs.parse(body.subarray(IFADDRMSG_LEN));
  const cache = a.get(IFA_CACHEINFO);
  const cv = cache && cache.length >= 8 ? viewOf(cache) : undefined;
  return prune<AddrMessage>({
    family: v.getUint8(0),
    prefixLen: v.getUint8(1),
    flags: a.u32(IFA_FLAGS) ?? v.getUint8(2),
    scope: v.getUint8(3),
    index: v.getUint32(4, HOST_LE),
    local: a.bytes(IFA_LOCAL),
    address: a.bytes(IFA_ADDRESS),
    broadcast: a.bytes(IFA_BROADCAST),
    label: a.str(IFA_LABEL),
    preferredLifetime: cv?.getUint32(0, HOST_LE),
    validLifetime: cv?.getUint32(4, HOST_LE),
  });
}
