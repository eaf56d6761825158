/**
 * The datapath's maps, as the programs and user space both see them: names, sizes, and the byte
 * layout of keys and values, with encoders and decoders for user space.
 *
 * - `endpoints` (hash): pod IPv4 (network order) -> { u32 host-veth ifindex, u8 pod MAC[6],
 *   u8 host-veth MAC[6] }: local pods, for delivery straight into them.
 * - `remotes` (LPM trie): { u32 prefix length, IPv4 network (network order) } -> { u32 remote node
 *   IPv4 (host order, as struct bpf_tunnel_key wants it), u32 VNI | flags }: other nodes' pod
 *   subnets. VNIs have 24 bits; bit 31 (`REMOTE_DIRECT`) says "no tunnel: route natively to the
 *   node's address on the underlay device" (flannel's DirectRouting).
 * - `config` (array of u32): index 0 = ifindex of the collect-metadata vxlan device (0: none),
 *   index 1 = ifindex of the underlay device for direct routes (0: none).
 * - `stats` (array of { u64 packets, u64 bytes }): one counter per decision, see `Stat`.
 */

import { formatCIDR, formatIP, networkOf, parseCIDR, parseIP } from "../../spec/ip.ts";
import { type MapSpec, MapType } from "../map.ts";
import { endpointKey as endpointKeyOfIP, endpointValue } from "../endpoint-del.ts";

/** Map names as the programs refer to them (and as their pins are named). */
export const MapName = { endpoints: "endpoints", remotes: "remotes", config: "config", stats: "stats" } as const;

/** Sizes of the endpoint value and its fields' offsets. */
export const EP = { size: 16, ifindex: 0, podMac: 4, hostMac: 10 } as const;
/** Remote subnet value: remote node IPv4 (host order) and VNI. */
export const REMOTE = { size: 8, ip: 0, vni: 4 } as const;
/** Flag in the VNI word of a remote subnet: routed natively (no tunnel) to the node's address. */
export const REMOTE_DIRECT = 0x8000_0000;
/** The VNI's bits in that word. */
export const VNI_MASK = 0x00ff_ffff;
/** Config array indices. */
export const Config = { vxlanIfindex: 0, underlayIfindex: 1 } as const;
/** Counters of the stats map: what the programs decided. */
export const Stat = {
  /** pod program: redirected into a local pod. */
  podToLocal: 0,
  /** pod program: sent to another node through the vxlan device. */
  podToRemote: 1,
  /** pod program: left to the host's stack (node, outside world, unknown). */
  podToHost: 2,
  /** vxlan program: delivered to a local pod. */
  tunnelToLocal: 3,
  /** vxlan program: no local pod, left to the host's stack. */
  tunnelToHost: 4,
  /** dropped: the tunnel key could not be set. */
  errors: 5,
  /** pod program: sent to another node on the underlay, no tunnel (`bpf_redirect_neigh`). */
  podToRemoteDirect: 6,
  /** underlay program: a frame another node routed to a local pod, delivered into it. */
  directToLocal: 7,
} as const;
/** Counter names by index, for listings. */
export const STAT_NAMES: readonly string[] = Object.keys(Stat);
const STAT_COUNT = 8;

/** The maps' specs (sizes and names; the names are their kernel names too). */
export function mapSpecs(opts: { maxEndpoints?: number; maxRemotes?: number } = {}): Record<keyof typeof MapName, MapSpec> {
  return {
    endpoints: { type: MapType.HASH, keySize: 4, valueSize: EP.size, maxEntries: opts.maxEndpoints ?? 4096, name: "ck_endpoints" },
    remotes: { type: MapType.LPM_TRIE, keySize: 8, valueSize: REMOTE.size, maxEntries: opts.maxRemotes ?? 4096, name: "ck_remotes" },
    config: { type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 4, name: "ck_config" },
    stats: { type: MapType.ARRAY, keySize: 4, valueSize: 16, maxEntries: STAT_COUNT, name: "ck_stats" },
  };
}

/** A local pod as the endpoint map holds it. */
export interface Endpoint {
  /** The pod's IPv4 address. */
  ip: string;
  /** ifindex of the host side of the pod's veth. */
  ifindex: number;
  /** The pod interface's MAC ("aa:bb:cc:dd:ee:ff"). */
  podMac: string;
  /** The host-side veth's MAC (the pod's gateway MAC). */
  hostMac: string;
}

/** Another node's pod subnet as the remotes map holds it. */
export interface RemoteSubnet {
  /** The subnet, "10.244.3.0/24". */
  subnet: string;
  /** The node's underlay IPv4 (the vxlan remote, or the next hop of a direct route). */
  remote: string;
  vni: number;
  /** Routed natively to `remote` on the underlay device, without the tunnel (present only when true). */
  direct?: boolean;
}

function ipv4(s: string, what: string): Uint8Array {
  const ip = parseIP(s);
  if (!ip || ip.length !== 4) throw new TypeError(`${what}: not an IPv4 address: ${JSON.stringify(s)}`);
  return ip;
}

/** 6 bytes to "aa:bb:cc:dd:ee:ff". */
export function formatMac(b: Uint8Array): string {
  return Array.from(b.subarray(0, 6), (x) => x.toString(16).padStart(2, "0")).join(":");
}

/** The endpoint map key of a pod IPv4 (endpoint-del.ts's, beside `encodeEndpoint`). */
export const endpointKey: (ip: string) => Uint8Array = endpointKeyOfIP;

/** The endpoint map value (written by endpoint-del.ts, whose numbers a unit test ties to `EP`, so that a plugin's ADD loads nothing else). */
export const encodeEndpoint: (e: Omit<Endpoint, "ip">) => Uint8Array = endpointValue;

/** An endpoint map entry back in words. */
export function decodeEndpoint(key: Uint8Array, value: Uint8Array): Endpoint {
  return {
    ip: formatIP(key),
    ifindex: new DataView(value.buffer, value.byteOffset).getUint32(EP.ifindex, true),
    podMac: formatMac(value.subarray(EP.podMac)),
    hostMac: formatMac(value.subarray(EP.hostMac)),
  };
}

/** The remotes map key of an IPv4 subnet ("10.244.3.0/24"; host bits are cleared). */
export function remoteKey(subnet: string): Uint8Array {
  const net = parseCIDR(subnet);
  if (!net || net.ip.length !== 4) throw new TypeError(`not an IPv4 subnet: ${JSON.stringify(subnet)}`);
  const k = new Uint8Array(8);
  new DataView(k.buffer).setUint32(0, net.prefix, true);
  k.set(networkOf(net).ip, 4);
  return k;
}

/** The remotes map value. */
export function encodeRemote(r: Omit<RemoteSubnet, "subnet">): Uint8Array {
  const b = new Uint8Array(REMOTE.size);
  const v = new DataView(b.buffer);
  v.setUint32(REMOTE.ip, new DataView(ipv4(r.remote, "remote").buffer).getUint32(0, false), true);
  if (!Number.isInteger(r.vni) || r.vni < 0 || r.vni > VNI_MASK) throw new TypeError(`not a VNI: ${r.vni}`);
  v.setUint32(REMOTE.vni, (r.vni | (r.direct ? REMOTE_DIRECT : 0)) >>> 0, true);
  return b;
}

/** A remotes map entry back in words. */
export function decodeRemote(key: Uint8Array, value: Uint8Array): RemoteSubnet {
  const kv = new DataView(key.buffer, key.byteOffset);
  const vv = new DataView(value.buffer, value.byteOffset);
  const remote = new Uint8Array(4);
  new DataView(remote.buffer).setUint32(0, vv.getUint32(REMOTE.ip, true), false);
  const word = vv.getUint32(REMOTE.vni, true);
  return {
    subnet: formatCIDR({ ip: key.slice(4, 8), prefix: kv.getUint32(0, true) }),
    remote: formatIP(remote),
    vni: word & VNI_MASK,
    ...(word & REMOTE_DIRECT ? { direct: true } : {}),
  };
}

/** One stats counter. */
export interface Counter {
  packets: bigint;
  bytes: bigint;
}

/** A stats map value. */
export function decodeCounter(value: Uint8Array): Counter {
  const v = new DataView(value.buffer, value.byteOffset);
  return { packets: v.getBigUint64(0, true), bytes: v.getBigUint64(8, true) };
}
