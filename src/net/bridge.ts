/** Bridges: created once, then found cheaply. */

import { type NetlinkConn } from "../netlink/conn.ts";
import { isExists } from "../netlink/error.ts";
import { type LinkMessage } from "../netlink/link.ts";
import { type BridgeData } from "../netlink/link_kind.ts";
import { createLink, getLink, type Link, setLink } from "./link.ts";
import { parseMAC } from "./mac.ts";

/** Settings for `ensureBridge`; used only when the bridge is created. */
export interface BridgeOptions {
  mtu?: number;
  mac?: string;
  /** Kernel bridge settings (STP, VLAN filtering, ageing, ...). */
  bridge?: BridgeData;
  /** Bring the bridge up (default true), also when it already existed. */
  up?: boolean;
}

/**
 * Make sure a bridge called `name` exists (and is up, unless `up: false`); returns it. An
 * existing bridge is kept as it is; an existing link of another kind is an error.
 */
export function ensureBridge(conn: NetlinkConn, name: string, opts: BridgeOptions = {}): Link {
  let link: Link;
  const m: LinkMessage = { name, info: { kind: "bridge", ...(opts.bridge ? { bridge: opts.bridge } : {}) } };
  if (opts.mtu !== undefined) m.mtu = opts.mtu;
  if (opts.mac !== undefined) m.address = parseMAC(opts.mac);
  try {
    link = createLink(conn, m);
  } catch (err) {
    if (!isExists(err)) throw err;
    link = getLink(conn, name);
    if (link.kind !== "bridge") {
      throw new Error(`${name} already exists but is a ${link.kind ?? "device of unknown kind"}, not a bridge`);
    }
  }
  if ((opts.up ?? true) && !link.up) {
    setLink(conn, link.index, { up: true });
    link = getLink(conn, link.index);
  }
  return link;
}
