/** Links: look up by name or index, list, change (up/down, MTU, master, MAC, name), delete. */

import { isNotFound } from "../netlink/error.ts";
import { type NetlinkConn } from "../netlink/conn.ts";
import {
  decodeLink,
  encodeLink,
  IFF_ALLMULTI,
  IFF_NOARP,
  IFF_PROMISC,
  IFF_UP,
  type LinkMessage,
  RTEXT_FILTER_SKIP_STATS,
} from "../netlink/link.ts";
import { NLM_F_CREATE, NLM_F_EXCL } from "../netlink/message.ts";
import { RTM_DELLINK, RTM_GETLINK, RTM_NEWLINK } from "../netlink/rtnl.ts";
import { formatMAC, parseMAC } from "./mac.ts";

/** A link named by its interface name or its ifindex. */
export type LinkRef = string | number;

/** A link as the layers above see it. */
export interface Link {
  index: number;
  name: string;
  mtu: number;
  /** IFF_* flags. */
  flags: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** Promiscuous (IFF_PROMISC). */
  promisc: boolean;
  /** Receives all multicast (IFF_ALLMULTI). */
  allmulti: boolean;
  /** Hardware address, "aa:bb:..." ("" when the link has none). */
  mac: string;
  /** Master ifindex (a bridge), when enslaved. */
  master?: number;
  /** Device kind ("veth", "bridge", "vxlan", ...), when the kernel reports one. */
  kind?: string;
  /** The master's kind ("bridge"), when enslaved. */
  slaveKind?: string;
  /** IFLA_LINK: the parent device, or a veth's peer (an ifindex in `linkNetnsId`'s namespace). */
  parent?: number;
  /** Namespace id (as seen from this namespace) that `parent` lives in, when elsewhere. */
  linkNetnsId?: number;
  /** IF_OPER_* operational state. */
  operState?: number;
  /** The decoded message, with every attribute cnikit understands. */
  raw: LinkMessage;
}

/** Turn a decoded link message into a Link. */
export function toLink(m: LinkMessage): Link {
  const link: Link = {
    index: m.index ?? 0,
    name: m.name ?? "",
    mtu: m.mtu ?? 0,
    flags: m.flags ?? 0,
    up: ((m.flags ?? 0) & IFF_UP) !== 0,
    promisc: ((m.flags ?? 0) & IFF_PROMISC) !== 0,
    allmulti: ((m.flags ?? 0) & IFF_ALLMULTI) !== 0,
    mac: m.address ? formatMAC(m.address) : "",
    raw: m,
  };
  if (m.master) link.master = m.master;
  if (m.info?.kind) link.kind = m.info.kind;
  if (m.info?.slaveKind) link.slaveKind = m.info.slaveKind;
  if (m.link) link.parent = m.link;
  if (m.linkNetnsId !== undefined) link.linkNetnsId = m.linkNetnsId;
  if (m.operState !== undefined) link.operState = m.operState;
  return link;
}

/** The link message fields that select `ref`. */
export function selectLink(ref: LinkRef): LinkMessage {
  return typeof ref === "number" ? { index: ref } : { name: ref };
}

/** Look a link up by name or index; throws a NetlinkError (ENODEV) when there is none. */
export function getLink(conn: NetlinkConn, ref: LinkRef): Link {
  const [m] = conn.request(RTM_GETLINK, encodeLink({ ...selectLink(ref), extMask: RTEXT_FILTER_SKIP_STATS }));
  if (!m) throw new Error(`RTM_GETLINK ${ref}: the kernel sent no link`);
  return toLink(decodeLink(m.body));
}

/** Look a link up by name or index; null when there is none. */
export function findLink(conn: NetlinkConn, ref: LinkRef): Link | null {
  try {
    return getLink(conn, ref);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** Every link in the connection's namespace. */
export function listLinks(conn: NetlinkConn): Link[] {
  return conn
    .dump(RTM_GETLINK, encodeLink({ extMask: RTEXT_FILTER_SKIP_STATS }))
    .map((m) => toLink(decodeLink(m.body)));
}

/** Changes `setLink` can make; absent fields are left alone. */
export interface LinkChanges {
  /** Bring the link up (true) or down (false). */
  up?: boolean;
  mtu?: number;
  /** Enslave to this master (a bridge), or detach with null. */
  master?: LinkRef | null;
  /** Hardware address, "aa:bb:cc:dd:ee:ff". */
  mac?: string;
  /** New interface name. */
  name?: string;
  /** Promiscuous mode on or off (IFF_PROMISC). */
  promisc?: boolean;
  /** Receive all multicast on or off (IFF_ALLMULTI). */
  allmulti?: boolean;
  /** No ARP on the link (IFF_NOARP): neighbours get the link's own MAC, nothing is asked. */
  noarp?: boolean;
  /** Transmit queue length (IFLA_TXQLEN). */
  txQueueLen?: number;
  /** Link group (IFLA_GROUP). */
  group?: number;
  /** Largest IPv4 GSO and GRO packets (IFLA_GSO_IPV4_MAX_SIZE, IFLA_GRO_IPV4_MAX_SIZE): above 65536 is IPv4 BIG TCP. */
  gsoIPv4MaxSize?: number;
  groIPv4MaxSize?: number;
}

/** Change a link in one request: state, promisc/allmulti, MTU, queue length, master, MAC address and/or name. */
export function setLink(conn: NetlinkConn, ref: LinkRef, changes: LinkChanges): void {
  const index = typeof ref === "number" ? ref : getLink(conn, ref).index;
  const m: LinkMessage = { index };
  // ifinfomsg flags: `change` says which bits of `flags` are meant
  let flags = 0;
  let change = 0;
  const flag = (bit: number, on: boolean | undefined) => {
    if (on === undefined) return;
    change |= bit;
    if (on) flags |= bit;
  };
  flag(IFF_UP, changes.up);
  flag(IFF_PROMISC, changes.promisc);
  flag(IFF_ALLMULTI, changes.allmulti);
  flag(IFF_NOARP, changes.noarp);
  if (change) {
    m.flags = flags;
    m.change = change;
  }
  if (changes.txQueueLen !== undefined) m.txQueueLen = changes.txQueueLen;
  if (changes.group !== undefined) m.group = changes.group;
  if (changes.gsoIPv4MaxSize !== undefined) m.gsoIPv4MaxSize = changes.gsoIPv4MaxSize;
  if (changes.groIPv4MaxSize !== undefined) m.groIPv4MaxSize = changes.groIPv4MaxSize;
  if (changes.mtu !== undefined) m.mtu = changes.mtu;
  if (changes.mac !== undefined) m.address = parseMAC(changes.mac);
  if (changes.name !== undefined) m.name = changes.name;
  if (changes.master !== undefined) {
    m.master = changes.master === null ? 0
      : typeof changes.master === "number" ? changes.master
      : getLink(conn, changes.master).index;
  }
  conn.request(RTM_NEWLINK, encodeLink(m));
}

/** Bring a link up. */
export function setLinkUp(conn: NetlinkConn, ref: LinkRef): void {
  setLink(conn, ref, { up: true });
}

/** Bring a link down. */
export function setLinkDown(conn: NetlinkConn, ref: LinkRef): void {
  setLink(conn, ref, { up: false });
}

/**
 * Delete a link (a veth takes its peer with it). Returns false when there was no such link, so
 * DEL stays idempotent.
 */
export function deleteLink(conn: NetlinkConn, ref: LinkRef): boolean {
  try {
    conn.request(RTM_DELLINK, encodeLink(selectLink(ref)));
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/**
 * Create a link from a full link message (kind and settings in `m.info`); throws a NetlinkError
 * (EEXIST) when the name is taken. Returns the new link as the kernel reports it.
 */
export function createLink(conn: NetlinkConn, m: LinkMessage): Link {
  if (!m.name) throw new TypeError("createLink: a name is required");
  conn.request(RTM_NEWLINK, encodeLink(m), { flags: NLM_F_CREATE | NLM_F_EXCL });
  return getLink(conn, m.name);
}
