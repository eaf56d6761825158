/**
 * An IPIP tunnel device in the style of `tunl0`: any-to-any (no remote), so that one device carries
 * traffic to every peer through `via PEER dev tunl0 onlink` routes (as Calico's IPIP mode). Where
 * the ipip module is loaded the kernel makes `tunl0` in every namespace by itself; it is then taken
 * as it is (set up, MTU set). Without the module, creating one fails with an error naming it.
 */

import { ByteWriter } from "../netlink/bytes.ts";
import { writeAttrs } from "../netlink/attr.ts";
import type { LinkMessage } from "../netlink/link.ts";
import { ipipAttrs, type IpipData } from "../netlink/link_kind.ts";
import { CniError, ErrorCode } from "../spec/error.ts";
import type { NetlinkConn } from "../netlink/conn.ts";
import { createLink, findLink, getLink, setLink, setLinkUp, type Link } from "./link.ts";

/** The device the ipip module makes in every namespace. */
export const FALLBACK_TUNNEL = "tunl0";

/** What to create. */
export interface IpipOptions {
  name: string;
  mtu?: number;
  /** Settings; a tunl0-style device has no local or remote address. */
  data?: IpipData;
}

/** The RTM_NEWLINK message that creates an ipip device (pure; the unit test checks its bytes). */
export function ipipLinkMessage(o: IpipOptions): LinkMessage {
  const w = new ByteWriter();
  writeAttrs(w, ipipAttrs(o.data ?? { ttl: 0, tos: 1, pmtudisc: true }));
  return { name: o.name, ...(o.mtu ? { mtu: o.mtu } : {}), info: { kind: "ipip", data: w.finish() } };
}

/**
 * The tunnel device, up, with MTU `mtu`: `name` when it exists (the kernel's own tunl0 too), else
 * created. Throws naming the ipip module when the kernel does not know the device kind.
 */
export function ensureIpipDevice(conn: NetlinkConn, o: IpipOptions): Link {
  let dev = findLink(conn, o.name);
  if (dev && dev.kind !== undefined && dev.kind !== "ipip") {
    throw new CniError(ErrorCode.InvalidEnvironment, `ipip: ${o.name} exists and is a ${dev.kind} device, not ipip`);
  }
  if (!dev) {
    try {
      dev = createLink(conn, ipipLinkMessage(o));
    } catch (e) {
      const msg = (e as Error).message;
      if (/EOPNOTSUPP|Unknown device type|not supported/i.test(msg)) {
        throw new CniError(ErrorCode.Internal, `ipip: the kernel cannot make ${o.name} without the ipip module (modprobe ipip): ${msg}`);
      }
      throw e;
    }
  } else if (o.mtu && dev.mtu !== o.mtu) {
    setLink(conn, dev.index, { mtu: o.mtu });
  }
  setLinkUp(conn, dev.index);
  return getLink(conn, dev.index);
}
