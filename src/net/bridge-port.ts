/** Bridge port settings (hairpin, isolation) over RTM_SETLINK with AF_BRIDGE and IFLA_PROTINFO. */

import { nla, writeAttrs } from "../netlink/attr.ts";
import { ByteWriter } from "../netlink/bytes.ts";
import { type NetlinkConn } from "../netlink/conn.ts";
import { AF_BRIDGE, RTM_SETLINK } from "../netlink/rtnl.ts";
import { getLink, type LinkRef } from "./link.ts";

const IFLA_PROTINFO = 12;
const IFLA_BRPORT_MODE = 4;
const IFLA_BRPORT_ISOLATED = 33;

/** Port flags to change; absent ones are left as they are. */
export interface BridgePortSettings {
  /** Send frames back out of the port they came in on (hairpin / reflective relay). */
  hairpin?: boolean;
  /** Isolated ports cannot talk to each other, only to non-isolated ones. */
  isolated?: boolean;
}

/** Encode the RTM_SETLINK body for a bridge port (exported for unit tests). */
export function encodeBridgePort(index: number, s: BridgePortSettings): Uint8Array {
  const w = new ByteWriter();
  w.u8(AF_BRIDGE).u8(0).u16(0).i32(index).u32(0).u32(0);
  writeAttrs(w, [
    nla.nested(IFLA_PROTINFO, [
      s.hairpin !== undefined && nla.u8(IFLA_BRPORT_MODE, s.hairpin ? 1 : 0),
      s.isolated !== undefined && nla.u8(IFLA_BRPORT_ISOLATED, s.isolated ? 1 : 0),
    ], { flag: true }),
  ]);
  return w.finish();
}

/** Change bridge port flags of an enslaved link. */
export function setBridgePort(conn: NetlinkConn, ref: LinkRef, s: BridgePortSettings): void {
  if (s.hairpin === undefined && s.isolated === undefined) return;
  const index = typeof ref === "number" ? ref : getLink(conn, ref).index;
  conn.request(RTM_SETLINK, encodeBridgePort(index, s));
}
