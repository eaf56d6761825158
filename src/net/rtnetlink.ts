/**
 * Scoped rtnetlink connections: open one (in a namespace), use it, always close it; or, for the
 * host's namespace in the daemon, the one connection it keeps.
 */

import { NetlinkConn } from "../netlink/conn.ts";
import { type NetnsHandle } from "../sys/netns.ts";

/** The daemon's connection to its own namespace (`useHostRtnetlink`). */
let kept: NetlinkConn | undefined;

/** Options for `withRtnetlink`. */
export interface RtnetlinkOptions {
  /** Open the connection inside this network namespace (a path or an open handle). */
  netns?: string | NetnsHandle;
}

/**
 * Run `fn` with an rtnetlink connection (opened inside `opts.netns` when given, so every
 * request acts on that namespace), closing it afterwards. `fn` may be async: the socket stays in
 * its namespace whichever thread continues. Without `opts.netns`, the kept host connection is used
 * where there is one.
 */
export function withRtnetlink<T>(fn: (conn: NetlinkConn) => T, opts: RtnetlinkOptions = {}): T {
  if (opts.netns === undefined && kept) return fn(kept);
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

/**
 * Serve every `hostRtnetlink` with `conn` until the returned function is called (DESIGN.md: kernel
 * handles come from a context). The daemon keeps one connection to its own namespace open and warm;
 * a standalone run keeps none, and each call opens and closes its own. A shared connection is safe
 * under concurrent calls: each request waits for its answer synchronously.
 */
export function useHostRtnetlink(conn: NetlinkConn): () => void {
  const before = kept;
  kept = conn;
  return () => {
    if (kept === conn) kept = before;
  };
}

/**
 * An rtnetlink connection to the host's namespace (where the plugin runs; never call it inside
 * `withNetns`): the kept one, else a new one. Give it back with `releaseRtnetlink`.
 */
export function hostRtnetlink(): NetlinkConn {
  return kept ?? NetlinkConn.open();
}

/**
 * Run `fn` with one host connection for everything it runs in-process (a plugin and the delegates
 * it runs in the same process): the daemon's kept one, else one opened for the call and closed
 * after, instead of one per plugin.
 */
export async function withHostRtnetlink<T>(fn: () => Promise<T>): Promise<T> {
  if (kept) return fn();
  const conn = NetlinkConn.open();
  const restore = useHostRtnetlink(conn);
  try {
    return await fn();
  } finally {
    restore();
    conn.close();
  }
}

/** Give back a connection from `hostRtnetlink`: closed unless it is the kept one. */
export function releaseRtnetlink(conn: NetlinkConn | null | undefined): void {
  if (conn && conn !== kept) conn.close();
}
