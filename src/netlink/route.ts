/**
 * rtnetlink routes: struct rtmsg (u8 family, dst_len, src_len, tos, table, protocol, scope, type;
 * u32 flags) and its RTA_* attributes, metrics (RTAX_*) included.
 */

import { type AttrLike, Attrs, nla, writeAttrs } from "./attr.ts";
import { ByteWriter, HOST_LE, viewOf } from "./bytes.ts";
import { prune } from "./prune.ts";
import { MalformedMessageError } from "./malformed.ts";

/** Size of struct rtmsg. */
export const RTMSG_LEN = 12;

/** Destination prefix. */
export const RTA_DST = 1;
/** Source prefix (policy routing). */
export const RTA_SRC = 2;
/** Input interface, u32. */
export const RTA_IIF = 3;
/** Output interface, u32. */
export const RTA_OIF = 4;
/** Gateway address. */
export const RTA_GATEWAY = 5;
/** Priority (metric), u32. */
export const RTA_PRIORITY = 6;
/** Preferred source address. */
export const RTA_PREFSRC = 7;
/** Metrics, nested RTAX_* u32 values. */
export const RTA_METRICS = 8;
/** Multipath next hops. */
export const RTA_MULTIPATH = 9;
/** Routing table id (any u32; rtm_table holds only the low 8 bits), u32. */
export const RTA_TABLE = 15;
/** IPv6 router preference, u8. */
export const RTA_PREF = 20;
/** Lightweight tunnel encapsulation type (u16, LWTUNNEL_ENCAP_*). */
export const RTA_ENCAP_TYPE = 21;
/** Lightweight tunnel encapsulation (nested, per type). */
export const RTA_ENCAP = 22;
/** LWTUNNEL_ENCAP_IP: the tunnel key (id, remote, TTL) for a collect-metadata device. */
export const LWTUNNEL_ENCAP_IP = 2;
const LWTUNNEL_IP_ID = 1;
const LWTUNNEL_IP_DST = 2;
const LWTUNNEL_IP_TTL = 4;

/** An `encap ip` route's tunnel key (`ip route add ... encap ip id VNI dst REMOTE ttl T dev VXLAN`). */
export interface IpEncap {
  /** Tunnel id (the VNI). */
  id: number;
  /** The remote's IPv4 address. */
  dst: Uint8Array;
  ttl?: number;
}

/** Metric: lock bits. */
export const RTAX_LOCK = 1;
/** Metric: path MTU. */
export const RTAX_MTU = 2;
/** Metric: window. */
export const RTAX_WINDOW = 3;
/** Metric: advertised MSS. */
export const RTAX_ADVMSS = 8;
/** Metric: hop limit. */
export const RTAX_HOPLIMIT = 10;
/** Metric: initial congestion window. */
export const RTAX_INITCWND = 11;
/** Metric: initial receive window. */
export const RTAX_INITRWND = 14;

/** Table: unspecified. */
export const RT_TABLE_UNSPEC = 0;
/** Table: main. */
export const RT_TABLE_MAIN = 254;
/** Table: local. */
export const RT_TABLE_LOCAL = 255;

/** Route origin: unknown. */
export const RTPROT_UNSPEC = 0;
/** Route origin: the kernel (prefix routes). */
export const RTPROT_KERNEL = 2;
/** Route origin: boot-time / administrative (iproute2's default). */
export const RTPROT_BOOT = 3;
/** Route origin: added by an administrator deliberately. */
export const RTPROT_STATIC = 4;

/** Route type: unspecified. */
export const RTN_UNSPEC = 0;
/** Route type: a gateway or direct route. */
export const RTN_UNICAST = 1;
/** Route type: a local interface address. */
export const RTN_LOCAL = 2;
/** Route type: broadcast. */
export const RTN_BROADCAST = 3;
/** Route type: multicast. */
export const RTN_MULTICAST = 5;
/** Route type: drop. */
export const RTN_BLACKHOLE = 6;
/** Route type: unreachable destination. */
export const RTN_UNREACHABLE = 7;
/** Route type: administratively prohibited. */
export const RTN_PROHIBIT = 8;

/** Next-hop flag: the gateway is on link even if no prefix says so. */
export const RTNH_F_ONLINK = 4;
/** Next-hop flag: the next hop's link is down. */
export const RTNH_F_LINKDOWN = 16;

/** Route metrics cnikit sets. */
export interface RouteMetrics {
  mtu?: number;
  advmss?: number;
  window?: number;
  hoplimit?: number;
  initcwnd?: number;
  initrwnd?: number;
  lock?: number;
}

const METRICS: [keyof RouteMetrics, number][] = [
  ["lock", RTAX_LOCK],
  ["mtu", RTAX_MTU],
  ["window", RTAX_WINDOW],
  ["advmss", RTAX_ADVMSS],
  ["hoplimit", RTAX_HOPLIMIT],
  ["initcwnd", RTAX_INITCWND],
  ["initrwnd", RTAX_INITRWND],
];

/** A route message. Addresses are 4 or 16 bytes. */
export interface RouteMessage {
  family: number;
  /** Destination prefix length (0: default route). */
  dstLen?: number;
  srcLen?: number;
  tos?: number;
  /** Table id; above 255 it goes in RTA_TABLE only. Default main. */
  table?: number;
  /** RTPROT_*. */
  protocol?: number;
  /** RT_SCOPE_*. */
  scope?: number;
  /** RTN_*. */
  type?: number;
  /** RTM_F_* and RTNH_F_* flags (RTNH_F_ONLINK). */
  flags?: number;
  dst?: Uint8Array;
  src?: Uint8Array;
  gateway?: Uint8Array;
  /** Output ifindex. */
  oif?: number;
  iif?: number;
  priority?: number;
  prefsrc?: Uint8Array;
  metrics?: RouteMetrics;
  pref?: number;
  /** An `encap ip` tunnel key (routes into a collect-metadata vxlan device). */
  encap?: IpEncap;
}

/** Encode a route message body: struct rtmsg, then the attributes. */
export function encodeRoute(m: RouteMessage): Uint8Array {
  const w = new ByteWriter();
  const table = m.table ?? RT_TABLE_MAIN;
  w.u8(m.family).u8(m.dstLen ?? 0).u8(m.srcLen ?? 0).u8(m.tos ?? 0);
  w.u8(table > 255 ? RT_TABLE_UNSPEC : table).u8(m.protocol ?? 0).u8(m.scope ?? 0).u8(m.type ?? 0);
  w.u32(m.flags ?? 0);
  const metrics = m.metrics;
  const mattrs: AttrLike[] = metrics
    ? METRICS.map(([k, t]) => metrics[k] !== undefined && nla.u32(t, metrics[k]!))
    : [];
  writeAttrs(w, [
    m.dst && nla.bytes(RTA_DST, m.dst),
    m.src && nla.bytes(RTA_SRC, m.src),
    m.gateway && nla.bytes(RTA_GATEWAY, m.gateway),
    m.oif !== undefined && nla.u32(RTA_OIF, m.oif),
    m.iif !== undefined && nla.u32(RTA_IIF, m.iif),
    m.priority !== undefined && nla.u32(RTA_PRIORITY, m.priority),
    m.prefsrc && nla.bytes(RTA_PREFSRC, m.prefsrc),
    table > 255 && nla.u32(RTA_TABLE, table),
    mattrs.some(Boolean) && nla.nested(RTA_METRICS, mattrs),
    m.pref !== undefined && nla.u8(RTA_PREF, m.pref),
    m.encap && nla.u16(RTA_ENCAP_TYPE, LWTUNNEL_ENCAP_IP),
    m.encap && nla.nested(RTA_ENCAP, encodeIpEncap(m.encap)),
  ]);
  return w.finish();
}

function encodeIpEncap(e: IpEncap): AttrLike[] {
  const id = new Uint8Array(8);
  new DataView(id.buffer).setBigUint64(0, BigInt(e.id), false); // __be64
  return [nla.bytes(LWTUNNEL_IP_ID, id), nla.bytes(LWTUNNEL_IP_DST, e.dst), e.ttl !== undefined && nla.u8(LWTUNNEL_IP_TTL, e.ttl)];
}

/** Decode a route message body (RTM_NEWROUTE dumps and lookups). */
export function decodeRoute(body: Uint8Array): RouteMessage {
  if (body.length < RTMSG_LEN) throw new MalformedMessageError(`rtmsg of ${body.length} bytes`);
  const v = viewOf(body);
  const a = Attrs.parse(body.subarray(RTMSG_LEN));
  const ma = a.nested(RTA_METRICS);
  let metrics: RouteMetrics | undefined;
  if (ma) {
    metrics = {};
    for (const [k, t] of METRICS) {
      const x = ma.u32(t);
      if (x !== undefined) metrics[k] = x;
    }
  }
  return prune<RouteMessage>({
    family: v.getUint8(0),
    dstLen: v.getUint8(1),
    srcLen: v.getUint8(2),
    tos: v.getUint8(3),
    table: a.u32(RTA_TABLE) ?? v.getUint8(4),
    protocol: v.getUint8(5),
    scope: v.getUint8(6),
    type: v.getUint8(7),
    flags: v.getUint32(8, HOST_LE),
    dst: a.bytes(RTA_DST),
    src: a.bytes(RTA_SRC),
    gateway: a.bytes(RTA_GATEWAY),
    oif: a.u32(RTA_OIF),
    iif: a.u32(RTA_IIF),
    priority: a.u32(RTA_PRIORITY),
    prefsrc: a.bytes(RTA_PREFSRC),
    metrics,
    pref: a.u8(RTA_PREF),
  });
}
