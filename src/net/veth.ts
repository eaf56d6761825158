/** veth pairs, with the peer created directly inside the target network namespace. */

import { type NetlinkConn } from "../netlink/conn.ts";
import { type LinkMessage } from "../netlink/link.ts";
import { type NetnsHandle, openNetns } from "../sys/netns.ts";
import { createLink, type Link } from "./link.ts";
import { parseMAC } from "./mac.ts";

/** What `createVeth` creates. */
export interface VethOptions {
  /** Name of the end in the connection's namespace. */
  name: string;
  /** Name of the other end. */
  peerName: string;
  /** Create the peer inside this namespace (a path such as /run/netns/x, or an open handle). */
  peerNetns?: string | NetnsHandle;
  /** MTU of both ends. */
  mtu?: number;
  /** MAC of the end in the connection's namespace. */
  mac?: string;
  /** MAC of the peer. */
  peerMac?: string;
  /** Transmit queue length of both ends (the reference creates veths with 0). */
  txQueueLen?: number;
}

/** The created pair, seen from the connection's namespace. */
export interface VethPair {
  /** The end in the connection's namespace. */
  link: Link;
  /** The peer's ifindex (in its own namespace). */
  peerIndex: number;
}

/**
 * Create a veth pair in one request. With `peerNetns`, the peer is born inside that namespace
 * (IFLA_NET_NS_FD on the peer), which is much cheaper than moving it afterwards. Throws a
 * NetlinkError (EEXIST) when either name is taken in its namespace.
 */
export function createVeth(conn: NetlinkConn, opts: VethOptions): VethPair {
  const ns = typeof opts.peerNetns === "string" ? openNetns(opts.peerNetns) : opts.peerNetns;
  try {
    const peer: LinkMessage = { name: opts.peerName };
    if (opts.mtu !== undefined) peer.mtu = opts.mtu;
    if (opts.txQueueLen !== undefined) peer.txQueueLen = opts.txQueueLen;
    if (opts.peerMac !== undefined) peer.address = parseMAC(opts.peerMac);
    if (ns) peer.netnsFd = ns.fd;
    const m: LinkMessage = { name: opts.name, info: { kind: "veth", peer } };
    if (opts.mtu !== undefined) m.mtu = opts.mtu;
    if (opts.txQueueLen !== undefined) m.txQueueLen = opts.txQueueLen;
    if (opts.mac !== undefined) m.address = parseMAC(opts.mac);
    const link = createLink(conn, m);
    return { link, peerIndex: link.parent ?? 0 };
  } finally {
    if (typeof opts.peerNetns === "string") ns?.close();
  }
}
