/**
 * Kind-specific link data (the payload of IFLA_INFO_DATA) for bridge, vxlan, macvlan, ipvlan and
 * vlan devices: encoders for requests and decoders for dumps. (veth's peer is in link.ts.)
 */

import { type AttrLike, Attrs, nla } from "./attr.ts";
import { prune } from "./prune.ts";

/** IFLA_BR_*: bridge attributes. */
export const IFLA_BR_FORWARD_DELAY = 1;
/** Bridge hello time (centiseconds), u32. */
export const IFLA_BR_HELLO_TIME = 2;
/** Bridge max age (centiseconds), u32. */
export const IFLA_BR_MAX_AGE = 3;
/** Bridge FDB ageing time (centiseconds), u32. */
export const IFLA_BR_AGEING_TIME = 4;
/** Bridge STP state (0 off, 1 kernel STP), u32. */
export const IFLA_BR_STP_STATE = 5;
/** Bridge priority, u16. */
export const IFLA_BR_PRIORITY = 6;
/** Bridge VLAN filtering, u8. */
export const IFLA_BR_VLAN_FILTERING = 7;
/** Bridge VLAN protocol, network-order u16. */
export const IFLA_BR_VLAN_PROTOCOL = 8;
/** Bridge multicast snooping, u8. */
export const IFLA_BR_MCAST_SNOOPING = 23;
/** Bridge default port VLAN id, u16. */
export const IFLA_BR_VLAN_DEFAULT_PVID = 39;

/** IFLA_VXLAN_*: VXLAN network identifier, u32. */
export const IFLA_VXLAN_ID = 1;
/** VXLAN IPv4 remote or multicast group, 4 bytes. */
export const IFLA_VXLAN_GROUP = 2;
/** VXLAN underlay device ifindex, u32. */
export const IFLA_VXLAN_LINK = 3;
/** VXLAN IPv4 local address, 4 bytes. */
export const IFLA_VXLAN_LOCAL = 4;
/** VXLAN TTL, u8. */
export const IFLA_VXLAN_TTL = 5;
/** VXLAN TOS, u8. */
export const IFLA_VXLAN_TOS = 6;
/** VXLAN source-address learning, u8. */
export const IFLA_VXLAN_LEARNING = 7;
/** VXLAN FDB ageing (seconds), u32. */
export const IFLA_VXLAN_AGEING = 8;
/** VXLAN ARP proxy, u8. */
export const IFLA_VXLAN_PROXY = 11;
/** VXLAN L2 miss notifications, u8. */
export const IFLA_VXLAN_L2MISS = 13;
/** VXLAN L3 miss notifications, u8. */
export const IFLA_VXLAN_L3MISS = 14;
/** VXLAN UDP destination port, network-order u16. */
export const IFLA_VXLAN_PORT = 15;
/** VXLAN IPv6 remote or multicast group, 16 bytes. */
export const IFLA_VXLAN_GROUP6 = 16;
/** VXLAN IPv6 local address, 16 bytes. */
export const IFLA_VXLAN_LOCAL6 = 17;
/** VXLAN UDP checksums (IPv4), u8. */
export const IFLA_VXLAN_UDP_CSUM = 18;
/** VXLAN group based policy extension, flag. */
export const IFLA_VXLAN_GBP = 23;
/** VXLAN collect metadata (`external`: the tunnel key comes with each packet, e.g. from eBPF), u8. */
export const IFLA_VXLAN_COLLECT_METADATA = 25;

/** IFLA_MACVLAN_MODE: u32, one of MACVLAN_MODE_*. */
export const IFLA_MACVLAN_MODE = 1;
/** IFLA_MACVLAN_FLAGS: u16. */
export const IFLA_MACVLAN_FLAGS = 2;
/** macvlan modes. */
export const MACVLAN_MODE = { private: 1, vepa: 2, bridge: 4, passthru: 8, source: 16 } as const;

/** IFLA_IPVLAN_MODE: u16, one of IPVLAN_MODE. */
export const IFLA_IPVLAN_MODE = 1;
/** IFLA_IPVLAN_FLAGS: u16, IPVLAN_F_*. */
export const IFLA_IPVLAN_FLAGS = 2;
/** ipvlan modes. */
export const IPVLAN_MODE = { l2: 0, l3: 1, l3s: 2 } as const;
/** ipvlan flags: bridge is 0, private and vepa are bits. */
export const IPVLAN_F = { bridge: 0, private: 1, vepa: 2 } as const;

/** IFLA_VLAN_ID: u16. */
export const IFLA_VLAN_ID = 1;
/** IFLA_VLAN_PROTOCOL: network-order u16 (0x8100 802.1Q, 0x88a8 802.1ad). */
export const IFLA_VLAN_PROTOCOL = 5;

/** Bridge settings (IFLA_BR_*). Times are in centiseconds as the kernel takes them. */
export interface BridgeData {
  forwardDelay?: number;
  helloTime?: number;
  maxAge?: number;
  ageingTime?: number;
  stpState?: number;
  priority?: number;
  vlanFiltering?: boolean;
  vlanProtocol?: number;
  mcastSnooping?: boolean;
  vlanDefaultPvid?: number;
}

/** VXLAN settings (IFLA_VXLAN_*). Addresses are 4 or 16 bytes; the family picks the attribute. */
export interface VxlanData {
  id?: number;
  group?: Uint8Array;
  local?: Uint8Array;
  link?: number;
  ttl?: number;
  tos?: number;
  learning?: boolean;
  ageing?: number;
  proxy?: boolean;
  l2miss?: boolean;
  l3miss?: boolean;
  port?: number;
  udpCsum?: boolean;
  gbp?: boolean;
  /** Collect metadata (`ip link add ... type vxlan external`): no fixed VNI or remote. */
  external?: boolean;
}

/** macvlan settings. */
export interface MacvlanData {
  mode?: number;
  flags?: number;
}

/** ipvlan settings. */
export interface IpvlanData {
  mode?: number;
  flags?: number;
}

/** VLAN settings. */
export interface VlanData {
  id?: number;
  protocol?: number;
}

const u8b = (t: number, v: boolean | undefined) => v !== undefined && nla.u8(t, v ? 1 : 0);
const u32o = (t: number, v: number | undefined) => v !== undefined && nla.u32(t, v);
const u16o = (t: number, v: number | undefined) => v !== undefined && nla.u16(t, v);
const u8o = (t: number, v: number | undefined) => v !== undefined && nla.u8(t, v);
const bool = (v: number | undefined) => (v === undefined ? undefined : v !== 0);

/** Attributes of a bridge's IFLA_INFO_DATA. */
export function bridgeAttrs(d: BridgeData): AttrLike[] {
  return [
    u32o(IFLA_BR_FORWARD_DELAY, d.forwardDelay),
    u32o(IFLA_BR_HELLO_TIME, d.helloTime),
    u32o(IFLA_BR_MAX_AGE, d.maxAge),
    u32o(IFLA_BR_AGEING_TIME, d.ageingTime),
    u32o(IFLA_BR_STP_STATE, d.stpState),
    u16o(IFLA_BR_PRIORITY, d.priority),
    u8b(IFLA_BR_VLAN_FILTERING, d.vlanFiltering),
    d.vlanProtocol !== undefined && nla.u16be(IFLA_BR_VLAN_PROTOCOL, d.vlanProtocol),
    u8b(IFLA_BR_MCAST_SNOOPING, d.mcastSnooping),
    u16o(IFLA_BR_VLAN_DEFAULT_PVID, d.vlanDefaultPvid),
  ];
}

/** Decode a bridge's IFLA_INFO_DATA. */
export function decodeBridge(a: Attrs): BridgeData {
  return prune({
    forwardDelay: a.u32(IFLA_BR_FORWARD_DELAY),
    helloTime: a.u32(IFLA_BR_HELLO_TIME),
    maxAge: a.u32(IFLA_BR_MAX_AGE),
    ageingTime: a.u32(IFLA_BR_AGEING_TIME),
    stpState: a.u32(IFLA_BR_STP_STATE),
    priority: a.u16(IFLA_BR_PRIORITY),
    vlanFiltering: bool(a.u8(IFLA_BR_VLAN_FILTERING)),
    vlanProtocol: a.u16be(IFLA_BR_VLAN_PROTOCOL),
    mcastSnooping: bool(a.u8(IFLA_BR_MCAST_SNOOPING)),
    vlanDefaultPvid: a.u16(IFLA_BR_VLAN_DEFAULT_PVID),
  });
}

function addrAttr(v4: number, v6: number, ip: Uint8Array | undefined): AttrLike {
  if (!ip) return false;
  if (ip.length !== 4 && ip.length !== 16) throw new RangeError(`vxlan: not an IP address (${ip.length} bytes)`);
  return nla.bytes(ip.length === 4 ? v4 : v6, ip);
}

/** Attributes of a vxlan device's IFLA_INFO_DATA. */
export function vxlanAttrs(d: VxlanData): AttrLike[] {
  return [
    u32o(IFLA_VXLAN_ID, d.id),
    addrAttr(IFLA_VXLAN_GROUP, IFLA_VXLAN_GROUP6, d.group),
    addrAttr(IFLA_VXLAN_LOCAL, IFLA_VXLAN_LOCAL6, d.local),
    u32o(IFLA_VXLAN_LINK, d.link),
    u8o(IFLA_VXLAN_TTL, d.ttl),
    u8o(IFLA_VXLAN_TOS, d.tos),
    u8b(IFLA_VXLAN_LEARNING, d.learning),
    u32o(IFLA_VXLAN_AGEING, d.ageing),
    u8b(IFLA_VXLAN_PROXY, d.proxy),
    u8b(IFLA_VXLAN_L2MISS, d.l2miss),
    u8b(IFLA_VXLAN_L3MISS, d.l3miss),
    d.port !== undefined && nla.u16be(IFLA_VXLAN_PORT, d.port),
    u8b(IFLA_VXLAN_UDP_CSUM, d.udpCsum),
    d.gbp && nla.flag(IFLA_VXLAN_GBP),
    u8b(IFLA_VXLAN_COLLECT_METADATA, d.external),
  ];
}

/** Decode a vxlan device's IFLA_INFO_DATA. */
export function decodeVxlan(a: Attrs): VxlanData {
  return prune({
    id: a.u32(IFLA_VXLAN_ID),
    group: a.bytes(IFLA_VXLAN_GROUP) ?? a.bytes(IFLA_VXLAN_GROUP6),
    local: a.bytes(IFLA_VXLAN_LOCAL) ?? a.bytes(IFLA_VXLAN_LOCAL6),
    link: a.u32(IFLA_VXLAN_LINK),
    ttl: a.u8(IFLA_VXLAN_TTL),
    tos: a.u8(IFLA_VXLAN_TOS),
    learning: bool(a.u8(IFLA_VXLAN_LEARNING)),
    ageing: a.u32(IFLA_VXLAN_AGEING),
    proxy: bool(a.u8(IFLA_VXLAN_PROXY)),
    l2miss: bool(a.u8(IFLA_VXLAN_L2MISS)),
    l3miss: bool(a.u8(IFLA_VXLAN_L3MISS)),
    port: a.u16be(IFLA_VXLAN_PORT),
    udpCsum: bool(a.u8(IFLA_VXLAN_UDP_CSUM)),
    gbp: a.has(IFLA_VXLAN_GBP) || undefined,
    external: bool(a.u8(IFLA_VXLAN_COLLECT_METADATA)),
  });
}

/** Attributes of a macvlan device's IFLA_INFO_DATA. */
export function macvlanAttrs(d: MacvlanData): AttrLike[] {
  return [u32o(IFLA_MACVLAN_MODE, d.mode), u16o(IFLA_MACVLAN_FLAGS, d.flags)];
}

/** Decode a macvlan device's IFLA_INFO_DATA. */
export function decodeMacvlan(a: Attrs): MacvlanData {
  return prune({ mode: a.u32(IFLA_MACVLAN_MODE), flags: a.u16(IFLA_MACVLAN_FLAGS) });
}

/** Attributes of an ipvlan device's IFLA_INFO_DATA. */
export function ipvlanAttrs(d: IpvlanData): AttrLike[] {
  return [u16o(IFLA_IPVLAN_MODE, d.mode), u16o(IFLA_IPVLAN_FLAGS, d.flags)];
}

/** Decode an ipvlan device's IFLA_INFO_DATA. */
export function decodeIpvlan(a: Attrs): IpvlanData {
  return prune({ mode: a.u16(IFLA_IPVLAN_MODE), flags: a.u16(IFLA_IPVLAN_FLAGS) });
}

/** Attributes of a VLAN device's IFLA_INFO_DATA. */
export function vlanAttrs(d: VlanData): AttrLike[] {
  return [
    u16o(IFLA_VLAN_ID, d.id),
    d.protocol !== undefined && nla.u16be(IFLA_VLAN_PROTOCOL, d.protocol),
  ];
}

/** Decode a VLAN device's IFLA_INFO_DATA. */
export function decodeVlan(a: Attrs): VlanData {
  return prune({ id: a.u16(IFLA_VLAN_ID), protocol: a.u16be(IFLA_VLAN_PROTOCOL) });
}

/** IFLA_IPTUN_* (include/uapi/linux/if_tunnel.h): an ipip device's underlay ifindex, u32. */
export const IFLA_IPTUN_LINK = 1;
/** ipip local address, 4 bytes (network order). */
export const IFLA_IPTUN_LOCAL = 2;
/** ipip remote address, 4 bytes (network order); none for a tunl0-style any-to-any device. */
export const IFLA_IPTUN_REMOTE = 3;
/** ipip TTL, u8 (0: inherit). */
export const IFLA_IPTUN_TTL = 4;
/** ipip TOS, u8 (1: inherit). */
export const IFLA_IPTUN_TOS = 5;
/** ipip path MTU discovery, u8. */
export const IFLA_IPTUN_PMTUDISC = 10;

/** ipip settings (IFLA_IPTUN_*). Addresses are 4 bytes. */
export interface IpipData {
  link?: number;
  local?: Uint8Array;
  remote?: Uint8Array;
  ttl?: number;
  tos?: number;
  pmtudisc?: boolean;
}

function ip4Attr(t: number, ip: Uint8Array | undefined): AttrLike {
  if (!ip) return false;
  if (ip.length !== 4) throw new RangeError(`ipip: not an IPv4 address (${ip.length} bytes)`);
  return nla.bytes(t, ip);
}

/** Attributes of an ipip device's IFLA_INFO_DATA. */
export function ipipAttrs(d: IpipData): AttrLike[] {
  return [
    u32o(IFLA_IPTUN_LINK, d.link),
    ip4Attr(IFLA_IPTUN_LOCAL, d.local),
    ip4Attr(IFLA_IPTUN_REMOTE, d.remote),
    u8o(IFLA_IPTUN_TTL, d.ttl),
    u8o(IFLA_IPTUN_TOS, d.tos),
    u8b(IFLA_IPTUN_PMTUDISC, d.pmtudisc),
  ];
}

/** Decode an ipip device's IFLA_INFO_DATA. */
export function decodeIpip(a: Attrs): IpipData {
  return prune({
    link: a.u32(IFLA_IPTUN_LINK),
    local: a.bytes(IFLA_IPTUN_LOCAL),
    remote: a.bytes(IFLA_IPTUN_REMOTE),
    ttl: a.u8(IFLA_IPTUN_TTL),
    tos: a.u8(IFLA_IPTUN_TOS),
    pmtudisc: bool(a.u8(IFLA_IPTUN_PMTUDISC)),
  });
}
