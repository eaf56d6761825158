/** Scoped rtnetlink connections: open one (in a namespace), use it, always close it. */

import { NetlinkConn } from "../netlink/conn.ts";
import { type NetnsHandle } from "../sys/netns.ts";

/** Options for `withRtnetlink`. */
export interface RtnetlinkOptions {
  /** Open the connection inside this network namespace (a path or an open handle). */
  netns?: string | NetnsHandle;
}

/**
 * Run `fn` with an rtnetlink connection (opened inside `opts.netns` when given, so every
 * request acts on that namespace), closing it afterwards. `fn` may be async: the socket stays in
 * its namespace whichever thread continues.
 */
export function withRtnetlink<T>(fn: (conn: NetlinkConn) => T, opts: RtnetlinkOptions = {}): T {
  const conn = NetlinkConn.open(opts.netns === undefined ? {} : { netns: opts.netns });
  let result: T;
  try {
    result = fn(conn);
  } catch (err) {
    conn.close();
    throw err;
  }
  if (result instanceof Promise) return result.finally(() => conn.close()) as T;
  conn.close();
  return result;
}
