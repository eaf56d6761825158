/**
 * rtnetlink links: struct ifinfomsg (u8 family, u8 pad, u16 type, i32 index, u32 flags,
 * u32 change) and its IFLA_* attributes, including IFLA_LINKINFO and veth's nested peer.
 */

import { type AttrLike, Attrs, nla, writeAttrs } from "./attr.ts";
import { ByteWriter, HOST_LE, viewOf } from "./bytes.ts";
import {
  type BridgeData,
  bridgeAttrs,
  decodeBridge,
  decodeIpvlan,
  decodeMacvlan,
  decodeVlan,
  decodeVxlan,
  type IpvlanData,
  ipvlanAttrs,
  type MacvlanData,
  macvlanAttrs,
  type VlanData,
  vlanAttrs,
  type VxlanData,
  vxlanAttrs,
} from "./link_kind.ts";
import { MalformedMessageError } from "./malformed.ts";
import { prune } from "./prune.ts";

/** Size of struct ifinfomsg. */
export const IFINFOMSG_LEN = 16;

/** Hardware address, bytes. */
export const IFLA_ADDRESS = 1;
/** Broadcast hardware address, bytes. */
export const IFLA_BROADCAST = 2;
/** Interface name, string. */
export const IFLA_IFNAME = 3;
/** MTU, u32. */
export const IFLA_MTU = 4;
/** Parent link ifindex (vlan, macvlan, ipvlan; veth's peer in dumps), u32. */
export const IFLA_LINK = 5;
/** Master device ifindex (0: none), u32. */
export const IFLA_MASTER = 10;
/** Transmit queue length, u32. */
export const IFLA_TXQLEN = 13;
/** RFC 2863 operational state, u8 (IF_OPER_*). */
export const IFLA_OPERSTATE = 16;
/** Kind and kind-specific data, nested (IFLA_INFO_*). */
export const IFLA_LINKINFO = 18;
/** Move to (or create in) the network namespace of a process, u32 pid. */
export const IFLA_NET_NS_PID = 19;
/** Interface alias, string. */
export const IFLA_IFALIAS = 20;
/** Interface group, u32. */
export const IFLA_GROUP = 27;
/** Move to (or create in) the network namespace of an open file, u32 fd. */
export const IFLA_NET_NS_FD = 28;
/** Which extended information a GETLINK wants (RTEXT_FILTER_*), u32. */
export const IFLA_EXT_MASK = 29;
/** Promiscuity count, u32. */
export const IFLA_PROMISCUITY = 30;
/** Carrier state, u8. */
export const IFLA_CARRIER = 33;
/** The namespace id (in ours) of the namespace IFLA_LINK lives in, s32. */
export const IFLA_LINK_NETNSID = 37;
/** Smallest MTU the device accepts, u32. */
export const IFLA_MIN_MTU = 50;
/** Largest MTU the device accepts, u32. */
export const IFLA_MAX_MTU = 51;
/** Largest TSO frame the device can take (Linux 5.19+, read only). */
export const IFLA_TSO_MAX_SIZE = 59;
/** Largest IPv4 GSO / GRO packet the stack builds for the device (Linux 6.3+: IPv4 BIG TCP). */
export const IFLA_GSO_IPV4_MAX_SIZE = 63;
export const IFLA_GRO_IPV4_MAX_SIZE = 64;

/** Inside IFLA_LINKINFO: the kind ("veth", "bridge", ...), string. */
export const IFLA_INFO_KIND = 1;
/** Inside IFLA_LINKINFO: kind-specific attributes, nested. */
export const IFLA_INFO_DATA = 2;
/** Inside IFLA_LINKINFO: the kind of the device's master ("bridge" for a bridge port), string. */
export const IFLA_INFO_SLAVE_KIND = 4;
/** Inside veth's IFLA_INFO_DATA: the peer, a struct ifinfomsg followed by its attributes. */
export const VETH_INFO_PEER = 1;

/** RTEXT_FILTER_SKIP_STATS: leave statistics out of GETLINK replies. */
export const RTEXT_FILTER_SKIP_STATS = 1 << 3;

/** Interface is administratively up. */
export const IFF_UP = 0x1;
/** Broadcast capable. */
export const IFF_BROADCAST = 0x2;
/** Loopback device. */
export const IFF_LOOPBACK = 0x8;
/** Point-to-point link. */
export const IFF_POINTOPOINT = 0x10;
/** Resources allocated (operationally running). */
export const IFF_RUNNING = 0x40;
/** No ARP. */
export const IFF_NOARP = 0x80;
/** Promiscuous mode. */
export const IFF_PROMISC = 0x100;
/** Receive all multicast packets. */
export const IFF_ALLMULTI = 0x200;
/** Multicast capable. */
export const IFF_MULTICAST = 0x1000;
/** Driver signals L1 up. */
export const IFF_LOWER_UP = 0x10000;

/** ARPHRD_ETHER: Ethernet link type. */
export const ARPHRD_ETHER = 1;
/** ARPHRD_LOOPBACK: loopback link type. */
export const ARPHRD_LOOPBACK = 772;

/** Operational states (IFLA_OPERSTATE). */
export const IF_OPER = { unknown: 0, notpresent: 1, down: 2, lowerlayerdown: 3, testing: 4, dormant: 5, up: 6 } as const;

/** IFLA_LINKINFO: the device kind and its settings; only the field of `kind` is used. */
export interface LinkInfo {
  /** "veth", "bridge", "vxlan", "macvlan", "ipvlan", "vlan", "dummy", ... */
  kind: string;
  /** The master's kind ("bridge" for a bridge port); decode only. */
  slaveKind?: string;
  /** veth: the peer to create with it. */
  peer?: LinkMessage;
  /** bridge settings. */
  bridge?: BridgeData;
  /** vxlan settings. */
  vxlan?: VxlanData;
  /** macvlan settings. */
  macvlan?: MacvlanData;
  /** ipvlan settings. */
  ipvlan?: IpvlanData;
  /** vlan settings. */
  vlan?: VlanData;
  /** The raw IFLA_INFO_DATA payload, for kinds without a typed field (encode and decode). */
  data?: Uint8Array;
}

/** A link message: the ifinfomsg fields and the attributes cnikit uses. */
export interface LinkMessage {
  family?: number;
  /** Link type (ARPHRD_*). */
  type?: number;
  /** ifindex; 0 or absent to name the link by IFLA_IFNAME or to create one. */
  index?: number;
  /** IFF_* flags. */
  flags?: number;
  /** Which IFF_* flags to change (requests); absent means the bits set in `flags`. */
  change?: number;
  name?: string;
  mtu?: number;
  /** Hardware address. */
  address?: Uint8Array;
  broadcast?: Uint8Array;
  /** Master ifindex; 0 detaches from the master. */
  master?: number;
  /** Parent ifindex (IFLA_LINK). */
  link?: number;
  txQueueLen?: number;
  /** IF_OPER_* (decode). */
  operState?: number;
  /** Create in / move to the namespace of this open namespace file descriptor. */
  netnsFd?: number;
  /** Create in / move to the namespace of this process. */
  netnsPid?: number;
  /** The namespace id the parent (IFLA_LINK) lives in (decode). */
  linkNetnsId?: number;
  alias?: string;
  group?: number;
  promiscuity?: number;
  carrier?: boolean;
  minMtu?: number;
  maxMtu?: number;
  /** IFLA_TSO_MAX_SIZE (decode; absent before Linux 5.19). */
  tsoMaxSize?: number;
  /** IFLA_GSO_IPV4_MAX_SIZE / IFLA_GRO_IPV4_MAX_SIZE (absent before Linux 6.3). */
  gsoIPv4MaxSize?: number;
  groIPv4MaxSize?: number;
  /** RTEXT_FILTER_* for GETLINK requests. */
  extMask?: number;
  info?: LinkInfo;
}

function kindData(info: LinkInfo): AttrLike {
  switch (info.kind) {
    case "veth":
      // The peer is a whole ifinfomsg plus attributes inside VETH_INFO_PEER.
      return info.peer
        ? nla.nested(IFLA_INFO_DATA, [nla.bytes(VETH_INFO_PEER, encodeLink(info.peer))])
        : false;
    case "bridge":
      return info.bridge && nla.nested(IFLA_INFO_DATA, bridgeAttrs(info.bridge));
    case "vxlan":
      return info.vxlan && nla.nested(IFLA_INFO_DATA, vxlanAttrs(info.vxlan));
    case "macvlan":
    case "macvtap":
      return info.macvlan && nla.nested(IFLA_INFO_DATA, macvlanAttrs(info.macvlan));
    case "ipvlan":
    case "ipvtap":
      return info.ipvlan && nla.nested(IFLA_INFO_DATA, ipvlanAttrs(info.ipvlan));
    case "vlan":
      return info.vlan && nla.nested(IFLA_INFO_DATA, vlanAttrs(info.vlan));
  }
  return false;
}

/** The IFLA_* attributes of a link message. */
export function linkAttrs(m: LinkMessage): AttrLike[] {
  const info = m.info;
  return [
    m.name !== undefined && nla.str(IFLA_IFNAME, m.name),
    m.mtu !== undefined && nla.u32(IFLA_MTU, m.mtu),
    m.address && nla.bytes(IFLA_ADDRESS, m.address),
    m.broadcast && nla.bytes(IFLA_BROADCAST, m.broadcast),
    m.master !== undefined && nla.u32(IFLA_MASTER, m.master),
    m.link !== undefined && nla.u32(IFLA_LINK, m.link),
    m.txQueueLen !== undefined && nla.u32(IFLA_TXQLEN, m.txQueueLen),
    m.alias !== undefined && nla.str(IFLA_IFALIAS, m.alias),
    m.group !== undefined && nla.u32(IFLA_GROUP, m.group),
    m.gsoIPv4MaxSize !== undefined && nla.u32(IFLA_GSO_IPV4_MAX_SIZE, m.gsoIPv4MaxSize),
    m.groIPv4MaxSize !== undefined && nla.u32(IFLA_GRO_IPV4_MAX_SIZE, m.groIPv4MaxSize),
    m.netnsFd !== undefined && nla.u32(IFLA_NET_NS_FD, m.netnsFd),
    m.netnsPid !== undefined && nla.u32(IFLA_NET_NS_PID, m.netnsPid),
    m.extMask !== undefined && nla.u32(IFLA_EXT_MASK, m.extMask),
    info &&
      nla.nested(IFLA_LINKINFO, [
        nla.str(IFLA_INFO_KIND, info.kind),
        info.data ? nla.bytes(IFLA_INFO_DATA, info.data) : kindData(info),
      ]),
  ];
}

/** Encode a link message body: struct ifinfomsg, then the attributes. */
export function encodeLink(m: LinkMessage): Uint8Array {
  const w = new ByteWriter();
  const flags = m.flags ?? 0;
  w.u8(m.family ?? 0).u8(0).u16(m.type ?? 0).i32(m.index ?? 0).u32(flags);
  // The kernel reads ifi_change 0 as "all flags": default to changing only the flags given.
  w.u32(m.change ?? flags);
  writeAttrs(w, linkAttrs(m));
  return w.finish();
}

function decodeInfo(a: Attrs): LinkInfo {
  const info: LinkInfo = { kind: a.str(IFLA_INFO_KIND) ?? "" };
  const slave = a.str(IFLA_INFO_SLAVE_KIND);
  if (slave) info.slaveKind = slave;
  const raw = a.get(IFLA_INFO_DATA);
  if (!raw) return info;
  info.data = raw.slice();
  const d = Attrs.parse(raw);
  switch (info.kind) {
    case "veth": {
      const peer = d.get(VETH_INFO_PEER);
      if (peer) info.peer = decodeLink(peer);
      break;
    }
    case "bridge":
      info.bridge = decodeBridge(d);
      break;
    case "vxlan":
      info.vxlan = decodeVxlan(d);
      break;
    case "macvlan":
    case "macvtap":
      info.macvlan = decodeMacvlan(d);
      break;
    case "ipvlan":
    case "ipvtap":
      info.ipvlan = decodeIpvlan(d);
      break;
    case "vlan":
      info.vlan = decodeVlan(d);
      break;
  }
  return info;
}

/** Decode a link message body (RTM_NEWLINK replies and dumps). */
export function decodeLink(body: Uint8Array): LinkMessage {
  if (body.length < IFINFOMSG_LEN) throw new MalformedMessageError(`ifinfomsg of ${body.length} bytes`);
  const v = viewOf(body);
  const a = Attrs.parse(body.subarray(IFINFOMSG_LEN));
  const li = a.nested(IFLA_LINKINFO);
  const carrier = a.u8(IFLA_CARRIER);
  return prune<LinkMessage>({
    family: v.getUint8(0),
    type: v.getUint16(2, HOST_LE),
    index: v.getInt32(4, HOST_LE),
    flags: v.getUint32(8, HOST_LE),
    name: a.str(IFLA_IFNAME),
    mtu: a.u32(IFLA_MTU),
    address: a.bytes(IFLA_ADDRESS),
    broadcast: a.bytes(IFLA_BROADCAST),
    master: a.u32(IFLA_MASTER),
    link: a.u32(IFLA_LINK),
    txQueueLen: a.u32(IFLA_TXQLEN),
    operState: a.u8(IFLA_OPERSTATE),
    linkNetnsId: a.i32(IFLA_LINK_NETNSID),
    alias: a.str(IFLA_IFALIAS),
    group: a.u32(IFLA_GROUP),
    promiscuity: a.u32(IFLA_PROMISCUITY),
    carrier: carrier === undefined ? undefined : carrier !== 0,
    minMtu: a.u32(IFLA_MIN_MTU),
    maxMtu: a.u32(IFLA_MAX_MTU),
    tsoMaxSize: a.u32(IFLA_TSO_MAX_SIZE),
    gsoIPv4MaxSize: a.u32(IFLA_GSO_IPV4_MAX_SIZE),
    groIPv4MaxSize: a.u32(IFLA_GRO_IPV4_MAX_SIZE),
    info: li ? decodeInfo(li) : undefined,
  });
}
