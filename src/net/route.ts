/** Routes: add (or replace), delete, list. */

import { RT_SCOPE_LINK, RT_SCOPE_NOWHERE, RT_SCOPE_UNIVERSE } from "../netlink/addr.ts";
import { type NetlinkConn } from "../netlink/conn.ts";
import { isExists, isNotFound } from "../netlink/error.ts";
import { NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE } from "../netlink/message.ts";
import {
  decodeRoute,
  encodeRoute,
  type RouteMessage,
  RT_TABLE_MAIN,
  RT_TABLE_UNSPEC,
  RTN_UNICAST,
  RTNH_F_ONLINK,
  RTPROT_BOOT,
} from "../netlink/route.ts";
import { AF_INET, AF_INET6, familyOf, RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE } from "../netlink/rtnl.ts";
import { Errno } from "../sys/errno.ts";
import { formatCIDR, formatIP, parseIP, type IPNet } from "../spec/ip.ts";
import { type CIDRInput, type IPInput, toIP, toIPNet } from "./ipinput.ts";
import { getLink, type LinkRef } from "./link.ts";

/** A route to add or delete. */
export interface RouteSpec {
  /** Destination prefix, "10.2.0.0/16"; "default" (with a gateway) for 0.0.0.0/0 or ::/0. */
  dst: CIDRInput | "default";
  /** Next hop. */
  gateway?: IPInput;
  /** Output link, by name or index. */
  link?: LinkRef;
  /** Metric (RTA_PRIORITY). */
  priority?: number;
  /** Routing table (default main). */
  table?: number;
  /** RT_SCOPE_*; default link scope for a route without a gateway, global otherwise. */
  scope?: number;
  /** The gateway is reachable on the link even without a matching prefix (RTNH_F_ONLINK). */
  onlink?: boolean;
  /** Path MTU metric. */
  mtu?: number;
  /** Advertised MSS metric. */
  advmss?: number;
  /** Preferred source address. */
  src?: IPInput;
  /** RTPROT_* (default RTPROT_BOOT, as iproute2 and the reference use); on delete, only a route of this protocol (default any). */
  protocol?: number;
  /** RTN_* (default unicast). */
  type?: number;
  /** `encap ip`: the tunnel key for a collect-metadata (`external`) vxlan device: VNI, remote, TTL. */
  encap?: { id: number; dst: IPInput; ttl?: number };
}

/** A route as listed. */
export interface Route {
  family: 4 | 6;
  /** Destination, "10.2.0.0/16" ("0.0.0.0/0" for the default route). */
  dst: string;
  gateway?: string;
  /** Output ifindex. */
  oif?: number;
  priority?: number;
  table: number;
  scope: number;
  protocol: number;
  type: number;
  flags: number;
  onlink: boolean;
  mtu?: number;
  advmss?: number;
  prefsrc?: string;
  /** The decoded message. */
  raw: RouteMessage;
}

/** Options for `addRoute`. */
export interface AddRouteOptions {
  /** Succeed when an identical route key exists (default: throw EEXIST). */
  existOk?: boolean;
  /** Replace a route with the same key instead of failing. */
  replace?: boolean;
}

function toMessage(conn: NetlinkConn, spec: RouteSpec, forDelete: boolean): RouteMessage {
  const gw = spec.gateway === undefined ? undefined : toIP(spec.gateway, "gateway");
  let dst: IPNet;
  if (spec.dst === "default") {
    if (!gw) throw new TypeError("route: a default route needs a gateway to know its family");
    dst = { ip: new Uint8Array(gw.length), prefix: 0 };
  } else {
    dst = toIPNet(spec.dst, "route destination");
  }
  const family = familyOf(dst.ip);
  if (gw && gw.length !== dst.ip.length) throw new TypeError("route: gateway and destination families differ");
  const m: RouteMessage = {
    family,
    dstLen: dst.prefix,
    table: spec.table ?? RT_TABLE_MAIN,
    // On delete, protocol 0, type 0 and scope NOWHERE mean "any", as iproute2 sends them; a given
    // protocol makes the kernel delete only a route of that protocol.
    protocol: forDelete ? spec.protocol ?? 0 : spec.protocol ?? RTPROT_BOOT,
    scope: spec.scope ?? (forDelete ? RT_SCOPE_NOWHERE : gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK),
    type: spec.type ?? (forDelete ? 0 : RTN_UNICAST),
    flags: spec.onlink ? RTNH_F_ONLINK : 0,
  };
  if (dst.prefix > 0) m.dst = dst.ip;
  if (gw) m.gateway = gw;
  if (spec.link !== undefined) m.oif = typeof spec.link === "number" ? spec.link : getLink(conn, spec.link).index;
  if (spec.priority !== undefined) m.priority = spec.priority;
  if (spec.src !== undefined) m.prefsrc = toIP(spec.src, "route source");
  if (spec.encap) m.encap = { id: spec.encap.id, dst: toIP(spec.encap.dst, "tunnel remote"), ...(spec.encap.ttl !== undefined ? { ttl: spec.encap.ttl } : {}) };
  if (spec.mtu !== undefined || spec.advmss !== undefined) {
    m.metrics = {};
    if (spec.mtu !== undefined) m.metrics.mtu = spec.mtu;
    if (spec.advmss !== undefined) m.metrics.advmss = spec.advmss;
  }
  return m;
}

/** Add a route. Throws a NetlinkError (EEXIST) when it exists, unless `existOk` or `replace`. */
export function addRoute(conn: NetlinkConn, spec: RouteSpec, opts: AddRouteOptions = {}): void {
  const flags = NLM_F_CREATE | (opts.replace ? NLM_F_REPLACE : NLM_F_EXCL);
  try {
    conn.request(RTM_NEWROUTE, encodeRoute(toMessage(conn, spec, false)), { flags });
  } catch (err) {
    if (opts.existOk && isExists(err)) return;
    throw err;
  }
}

/** Delete a route; false when there was no matching route (or its link is gone). */
export function deleteRoute(conn: NetlinkConn, spec: RouteSpec): boolean {
  try {
    conn.request(RTM_DELROUTE, encodeRoute(toMessage(conn, spec, true)));
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Which routes `listRoutes` returns. */
export interface ListRouteOptions {
  /** Only routes out of this link. */
  link?: LinkRef;
  /** Only this family (default both). */
  family?: 4 | 6;
  /** Only this table (default main; 0 for every table). */
  table?: number;
}

function toRoute(m: RouteMessage): Route {
  const ipLen = m.family === AF_INET6 ? 16 : 4;
  const r: Route = {
    family: m.family === AF_INET6 ? 6 : 4,
    dst: formatCIDR({ ip: m.dst ?? new Uint8Array(ipLen), prefix: m.dstLen ?? 0 }),
    table: m.table ?? RT_TABLE_UNSPEC,
    scope: m.scope ?? 0,
    protocol: m.protocol ?? 0,
    type: m.type ?? 0,
    flags: m.flags ?? 0,
    onlink: ((m.flags ?? 0) & RTNH_F_ONLINK) !== 0,
    raw: m,
  };
  if (m.gateway) r.gateway = formatIP(m.gateway);
  if (m.oif !== undefined) r.oif = m.oif;
  if (m.priority !== undefined) r.priority = m.priority;
  if (m.metrics?.mtu !== undefined) r.mtu = m.metrics.mtu;
  if (m.metrics?.advmss !== undefined) r.advmss = m.metrics.advmss;
  if (m.prefsrc) r.prefsrc = formatIP(m.prefsrc);
  return r;
}

/** Routes in the connection's namespace (main table unless told otherwise). */
export function listRoutes(conn: NetlinkConn, opts: ListRouteOptions = {}): Route[] {
  const oif = opts.link === undefined ? undefined : typeof opts.link === "number" ? opts.link : getLink(conn, opts.link).index;
  const table = opts.table ?? RT_TABLE_MAIN;
  const families = opts.family === 4 ? [AF_INET] : opts.family === 6 ? [AF_INET6] : [AF_INET, AF_INET6];
  const out: Route[] = [];
  for (const family of families) {
    for (const msg of conn.dump(RTM_GETROUTE, encodeRoute({ family, table: 0 }))) {
      const m = decodeRoute(msg.body);
      if (table !== 0 && m.table !== table) continue;
      if (oif !== undefined && m.oif !== oif) continue;
      out.push(toRoute(m));
    }
  }
  return out;
}

/**
 * The route the kernel would use to reach `ip` (as `ip route get`): one lookup, not a dump of
 * every route; undefined when it is unreachable.
 */
export function routeTo(conn: NetlinkConn, ip: string): Route | undefined {
  const addr = parseIP(ip);
  if (!addr) throw new TypeError(`routeTo: invalid address ${JSON.stringify(ip)}`);
  const family = addr.length === 16 ? AF_INET6 : AF_INET;
  try {
    const [m] = conn.request(RTM_GETROUTE, encodeRoute({ family, dstLen: addr.length * 8, dst: addr, table: RT_TABLE_UNSPEC }));
    return m ? toRoute(decodeRoute(m.body)) : undefined;
  } catch (e) {
    const errno = (e as { errno?: number }).errno;
    if (errno === Errno.ENETUNREACH || errno === Errno.EHOSTUNREACH) return undefined;
    throw e;
  }
}
