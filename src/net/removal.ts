/**
 * Deferred link removal (the daemon's DEL): a plugin that runs in the daemon cuts its pod off at
 * once and leaves the kernel's unregister wait to a remover that deletes many links in one
 * request (bridge's and ptp's veths, bandwidth's ifb devices). Links to be removed are marked with `REMOVAL_GROUP` (IFLA_GROUP) in the namespace the
 * remover serves; one RTM_DELLINK of that group deletes them all and pays the wait once. As
 * src/nft/handle.ts's `useNft`, the daemon installs its remover with `useLinkRemover`; a standalone
 * run has none, and its DEL deletes the link within the call.
 */

import type { NetlinkConn } from "../netlink/conn.ts";
import { isNotFound } from "../netlink/error.ts";
import { encodeLink } from "../netlink/link.ts";
import { RTM_DELLINK } from "../netlink/rtnl.ts";

/** The link group (IFLA_GROUP) of links waiting for removal ("cnkd"); no other group is touched. */
export const REMOVAL_GROUP = 0x636e6b64;

/** What a plugin tells the remover. */
export interface LinkRemover {
  /** A link was put in `REMOVAL_GROUP` in the remover's namespace: remove it soon (~100 ms). */
  queued(): void;
}

let installed: LinkRemover | undefined;

/** Install `r` for every plugin call until the returned function is called. */
export function useLinkRemover(r: LinkRemover): () => void {
  const before = installed;
  installed = r;
  return () => {
    if (installed === r) installed = before;
  };
}

/** The installed remover; undefined in a standalone run (remove links within the call). */
export function linkRemover(): LinkRemover | undefined {
  return installed;
}

/** Delete every link of `REMOVAL_GROUP` in `conn`'s namespace in one request; false when there was none. */
export function deleteRemovalGroup(conn: NetlinkConn): boolean {
  try {
    conn.request(RTM_DELLINK, encodeLink({ group: REMOVAL_GROUP }));
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}
