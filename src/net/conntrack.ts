/**
 * Conntrack entries over ctnetlink: list the table of a family and delete the entries a filter
 * picks (what `conntrack -D` does, without the program).
 */

import { NetlinkConn } from "../netlink/conn.ts";
import { type CtEntry, ctMsgType, decodeCtEntry, encodeCtDelete, encodeCtDump, IPCTNL_MSG } from "../netlink/conntrack.ts";
import { isNotFound } from "../netlink/error.ts";
import { NetlinkProtocol } from "../sys/socket.ts";
import type { NetnsHandle } from "../sys/netns.ts";

export type { CtEntry, CtTuple } from "../netlink/conntrack.ts";

/** Options for the conntrack functions. */
export interface ConntrackOptions {
  /** Work in this network namespace (default: the caller's). */
  netns?: string | NetnsHandle;
}

function open(opts: ConntrackOptions): NetlinkConn {
  return NetlinkConn.open({
    protocol: NetlinkProtocol.NETFILTER,
    ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
    typeName: (t) => (t === ctMsgType(IPCTNL_MSG.DELETE) ? "IPCTNL_MSG_CT_DELETE" : "IPCTNL_MSG_CT_GET"),
  });
}

function dumpWith(conn: NetlinkConn, family: 4 | 6): CtEntry[] {
  const out: CtEntry[] = [];
  for (const m of conn.dump(ctMsgType(IPCTNL_MSG.GET), encodeCtDump(family))) {
    const e = decodeCtEntry(m.body);
    if (e) out.push(e);
  }
  return out;
}

/** The conntrack entries of one family. */
export function listConntrack(family: 4 | 6, opts: ConntrackOptions = {}): CtEntry[] {
  const conn = open(opts);
  try {
    return dumpWith(conn, family);
  } finally {
    conn.close();
  }
}

/**
 * Delete every entry of `family` that `match` picks; returns how many were deleted (entries that
 * vanished meanwhile are not counted and not an error).
 */
export function deleteConntrack(family: 4 | 6, match: (e: CtEntry) => boolean, opts: ConntrackOptions = {}): number {
  const conn = open(opts);
  let n = 0;
  try {
    for (const e of dumpWith(conn, family).filter(match)) {
      try {
        conn.request(ctMsgType(IPCTNL_MSG.DELETE), encodeCtDelete(family, e.orig, e.zone));
        n++;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  } finally {
    conn.close();
  }
  return n;
}
