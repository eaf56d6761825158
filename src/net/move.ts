/** Moving a link into another network namespace, optionally renaming it on the way. */

import { type NetlinkConn } from "../netlink/conn.ts";
import { encodeLink, type LinkMessage } from "../netlink/link.ts";
import { RTM_NEWLINK } from "../netlink/rtnl.ts";
import { type NetnsHandle, openNetns } from "../sys/netns.ts";
import { getLink, type LinkRef } from "./link.ts";

/** Options for `moveLink`. */
export interface MoveLinkOptions {
  /** The name the link gets in the target namespace (default: it keeps its name). */
  name?: string;
}

/**
 * Move a link from the connection's namespace into `netns` (a path or an open handle). The kernel
 * takes the link down and drops its addresses and routes on the way. With `opts.name` the link is
 * renamed in the same request, so it never exists under its old name in the target namespace;
 * a name taken there fails with EEXIST and leaves the link where it was.
 */
export function moveLink(conn: NetlinkConn, ref: LinkRef, netns: string | NetnsHandle, opts: MoveLinkOptions = {}): void {
  const index = typeof ref === "number" ? ref : getLink(conn, ref).index;
  const target = typeof netns === "string" ? openNetns(netns) : netns;
  try {
    const m: LinkMessage = { index, netnsFd: target.fd };
    if (opts.name !== undefined) m.name = opts.name;
    conn.request(RTM_NEWLINK, encodeLink(m));
  } finally {
    if (typeof netns === "string") target.close();
  }
}

/** Set (or, with "", clear) a link's alias (IFLA_IFALIAS). */
export function setLinkAlias(conn: NetlinkConn, ref: LinkRef, alias: string): void {
  const index = typeof ref === "number" ? ref : getLink(conn, ref).index;
  conn.request(RTM_NEWLINK, encodeLink({ index, alias }));
}
