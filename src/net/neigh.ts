/** Neighbours (static ARP/NDP entries) and bridge FDB entries (vxlan remotes, bridge ports). */

import { type NetlinkConn } from "../netlink/conn.ts";
import { isNotFound } from "../netlink/error.ts";
import { NLM_F_CREATE, NLM_F_REPLACE } from "../netlink/message.ts";
import {
  decodeNeigh,
  encodeNeigh,
  type NeighMessage,
  NTF_MASTER,
  NTF_SELF,
  NUD_PERMANENT,
} from "../netlink/neigh.ts";
import { AF_BRIDGE, AF_INET, AF_INET6, familyOf, RTM_DELNEIGH, RTM_GETNEIGH, RTM_NEWNEIGH } from "../netlink/rtnl.ts";
import { formatIP } from "../spec/ip.ts";
import { type IPInput, toIP } from "./ipinput.ts";
import { getLink, type LinkRef } from "./link.ts";
import { formatMAC, parseMAC } from "./mac.ts";

/** A neighbour or FDB entry to set or delete. */
export interface NeighborSpec {
  /** The device the entry belongs to (for FDB: the vxlan device or bridge port). */
  link: LinkRef;
  /** Neighbour: its IP. FDB: the remote VTEP address (NDA_DST), if any. */
  ip?: IPInput;
  /** The MAC address. */
  mac: string;
  /** An FDB entry (AF_BRIDGE) instead of an ARP/NDP neighbour. */
  fdb?: boolean;
  /** FDB: put the entry in the master bridge's table (NTF_MASTER) instead of the device's own (NTF_SELF). */
  master?: boolean;
  /** FDB: VLAN id. */
  vlan?: number;
  /** FDB (vxlan): VNI of the remote. */
  vni?: number;
  /** FDB (vxlan): UDP port of the remote. */
  port?: number;
}

/** A listed neighbour or FDB entry. */
export interface Neighbor {
  index: number;
  /** "aa:bb:..." ("" when the entry has none, as for an incomplete neighbour). */
  mac: string;
  ip?: string;
  /** NUD_* state. */
  state: number;
  /** NTF_* flags. */
  flags: number;
  vlan?: number;
  master?: number;
  /** The decoded message. */
  raw: NeighMessage;
}

function toMessage(conn: NetlinkConn, spec: NeighborSpec): NeighMessage {
  const index = typeof spec.link === "number" ? spec.link : getLink(conn, spec.link).index;
  const ip = spec.ip === undefined ? undefined : toIP(spec.ip, "neighbour address");
  let m: NeighMessage;
  if (spec.fdb) {
    m = { family: AF_BRIDGE, index, state: NUD_PERMANENT, flags: spec.master ? NTF_MASTER : NTF_SELF };
  } else {
    if (!ip) throw new TypeError("neighbour: an IP address is required");
    m = { family: familyOf(ip), index, state: NUD_PERMANENT, flags: 0 };
  }
  m.lladdr = parseMAC(spec.mac);
  if (ip) m.dst = ip;
  if (spec.vlan !== undefined) m.vlan = spec.vlan;
  if (spec.vni !== undefined) m.vni = spec.vni;
  if (spec.port !== undefined) m.port = spec.port;
  return m;
}

/** Create or replace a permanent neighbour or FDB entry (idempotent). */
export function setNeighbor(conn: NetlinkConn, spec: NeighborSpec): void {
  conn.request(RTM_NEWNEIGH, encodeNeigh(toMessage(conn, spec)), { flags: NLM_F_CREATE | NLM_F_REPLACE });
}

/** Delete a neighbour or FDB entry; false when it (or its device) was not there. */
export function deleteNeighbor(conn: NetlinkConn, spec: NeighborSpec): boolean {
  try {
    conn.request(RTM_DELNEIGH, encodeNeigh(toMessage(conn, spec)));
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Which entries `listNeighbors` returns. */
export interface ListNeighborOptions {
  /** Only this device's entries. */
  link?: LinkRef;
  /** FDB entries instead of IPv4/IPv6 neighbours. */
  fdb?: boolean;
}

/** Neighbours (IPv4 and IPv6) or FDB entries in the connection's namespace. */
export function listNeighbors(conn: NetlinkConn, opts: ListNeighborOptions = {}): Neighbor[] {
  const index = opts.link === undefined ? undefined : typeof opts.link === "number" ? opts.link : getLink(conn, opts.link).index;
  const families = opts.fdb ? [AF_BRIDGE] : [AF_INET, AF_INET6];
  const out: Neighbor[] = [];
  for (const family of families) {
    for (const msg of conn.dump(RTM_GETNEIGH, encodeNeigh({ family, index: 0 }))) {
      const m = decodeNeigh(msg.body);
      if (index !== undefined && m.index !== index) continue;
      const n: Neighbor = { index: m.index, mac: m.lladdr ? formatMAC(m.lladdr) : "", state: m.state ?? 0, flags: m.flags ?? 0, raw: m };
      if (m.dst) n.ip = formatIP(m.dst);
      if (m.vlan !== undefined) n.vlan = m.vlan;
      if (m.master !== undefined) n.master = m.master;
      out.push(n);
    }
  }
  return out;
}
