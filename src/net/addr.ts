/** IP addresses on links: add (optionally without DAD), delete, list. */

import {
  type AddrMessage,
  decodeAddr,
  encodeAddr,
  IFA_F_NODAD,
  IFA_F_NOPREFIXROUTE,
} from "../netlink/addr.ts";
import { type NetlinkConn } from "../netlink/conn.ts";
import { isExists, isNotFound } from "../netlink/error.ts";
import { NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE } from "../netlink/message.ts";
import { AF_INET, AF_INET6, AF_UNSPEC, familyOf, RTM_DELADDR, RTM_GETADDR, RTM_NEWADDR } from "../netlink/rtnl.ts";
import { formatCIDR, type IPNet } from "../spec/ip.ts";
import { type CIDRInput, toIPNet } from "./ipinput.ts";
import { getLink, type LinkRef } from "./link.ts";

/** An address on a link. */
export interface Address {
  /** ifindex of the link. */
  index: number;
  /** 4 or 6. */
  family: 4 | 6;
  /** The address and prefix length. */
  net: IPNet;
  /** "10.1.2.3/24". */
  cidr: string;
  /** RT_SCOPE_*. */
  scope: number;
  /** IFA_F_* flags. */
  flags: number;
  /** IPv4 label. */
  label?: string;
}

/** An address to add or delete. */
export interface AddressSpec {
  /** The link, by name or index. */
  link: LinkRef;
  /** The address with its prefix length, "10.1.2.3/24" or "fd00::2/64". */
  address: CIDRInput;
  /** IPv6: skip duplicate address detection, so the address is usable at once. */
  nodad?: boolean;
  /** Do not add the prefix route for the address. */
  noPrefixRoute?: boolean;
  /** RT_SCOPE_* (default global). */
  scope?: number;
  /** IPv4 label. */
  label?: string;
}

/** Options for `addAddress`. */
export interface AddAddressOptions {
  /** Succeed when the address is already there (default: throw EEXIST). */
  existOk?: boolean;
  /** Replace an existing address's settings instead of failing. */
  replace?: boolean;
}

function indexOf(conn: NetlinkConn, ref: LinkRef): number {
  return typeof ref === "number" ? ref : getLink(conn, ref).index;
}

function broadcastOf(net: IPNet): Uint8Array | undefined {
  // As the Go reference's netlink library does: IPv4 prefixes up to /30 get a broadcast address.
  if (net.ip.length !== 4 || net.prefix >= 31) return undefined;
  const b = new Uint8Array(net.ip);
  for (let bit = net.prefix; bit < 32; bit++) b[bit >> 3]! |= 0x80 >> (bit & 7);
  return b;
}

function toMessage(index: number, spec: AddressSpec): AddrMessage {
  const net = toIPNet(spec.address, "address");
  const m: AddrMessage = {
    family: familyOf(net.ip),
    prefixLen: net.prefix,
    index,
    local: net.ip,
    address: net.ip,
    scope: spec.scope ?? 0,
    flags: (spec.nodad ? IFA_F_NODAD : 0) | (spec.noPrefixRoute ? IFA_F_NOPREFIXROUTE : 0),
  };
  const brd = broadcastOf(net);
  if (brd) m.broadcast = brd;
  if (spec.label !== undefined) m.label = spec.label;
  return m;
}

/** Add an address to a link. Throws a NetlinkError (EEXIST) when it is there, unless `existOk`. */
export function addAddress(conn: NetlinkConn, spec: AddressSpec, opts: AddAddressOptions = {}): void {
  const m = toMessage(indexOf(conn, spec.link), spec);
  const flags = NLM_F_CREATE | (opts.replace ? NLM_F_REPLACE : NLM_F_EXCL);
  try {
    conn.request(RTM_NEWADDR, encodeAddr(m), { flags });
  } catch (err) {
    if (opts.existOk && isExists(err)) return;
    throw err;
  }
}

/** Remove an address from a link; false when it was not there (or the link is gone). */
export function deleteAddress(conn: NetlinkConn, spec: Pick<AddressSpec, "link" | "address">): boolean {
  try {
    const m = toMessage(indexOf(conn, spec.link), spec);
    delete m.broadcast;
    conn.request(RTM_DELADDR, encodeAddr(m));
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Which addresses `listAddresses` returns. */
export interface ListAddressOptions {
  /** Only this link's. */
  link?: LinkRef;
  /** Only this family's (4 or 6). */
  family?: 4 | 6;
}

/** Addresses in the connection's namespace, optionally of one link and/or one family. */
export function listAddresses(conn: NetlinkConn, opts: ListAddressOptions = {}): Address[] {
  const index = opts.link === undefined ? undefined : indexOf(conn, opts.link);
  const af = opts.family === 4 ? AF_INET : opts.family === 6 ? AF_INET6 : AF_UNSPEC;
  const out: Address[] = [];
  for (const msg of conn.dump(RTM_GETADDR, encodeAddr({ family: af, prefixLen: 0, index: 0 }))) {
    const m = decodeAddr(msg.body);
    if (index !== undefined && m.index !== index) continue;
    if (af !== AF_UNSPEC && m.family !== af) continue;
    const ip = m.local ?? m.address;
    if (!ip) continue;
    const net = { ip, prefix: m.prefixLen };
    const a: Address = {
      index: m.index,
      family: m.family === AF_INET6 ? 6 : 4,
      net,
      cidr: formatCIDR(net),
      scope: m.scope ?? 0,
      flags: m.flags ?? 0,
    };
    if (m.label !== undefined) a.label = m.label;
    out.push(a);
  }
  return out;
}
