/**
 * The cluster network configuration the node agent reads from etcd at `<prefix>/config`, in
 * flannel's format and with flannel's defaults: SubnetLen 24 (or the network's prefix + 2 when the
 * network is smaller than a /22), SubnetMin the second subnet, SubnetMax the last; the IPv6
 * equivalents; Backend vxlan (VNI 1, port 8472) or host-gw.
 */

import { CniError, ErrorCode } from "../spec/error.ts";
import { addIP, containsIP, formatCIDR, formatIP, ipToBigInt, networkOf, parseCIDR, parseIP, type IPNet } from "../spec/ip.ts";
import { parseBgpBackend, type BgpConfig } from "./bird-config.ts";

/** The backend's settings. */
export interface BackendConfig {
  type: "vxlan" | "host-gw" | "bgp";
  /** bgp: its keys (bird-config.ts). */
  bgp?: BgpConfig;
  vni: number;
  port: number;
  /** MTU of the vxlan device; default underlay MTU - 50. */
  mtu?: number;
  directRouting: boolean;
  /** vxlan: `"Datapath": "ebpf"` (cnikit's) for the eBPF datapath; default the kernel's. */
  datapath: "kernel" | "ebpf";
  /** vxlan, ebpf with DirectRouting: `"BigTCP": true` (cnikit's), IPv4 BIG TCP on the underlay and pods. */
  bigTcp: boolean;
}

/** One family's address plan. */
export interface FamilyPlan {
  network: IPNet;
  subnetLen: number;
  subnetMin: Uint8Array;
  subnetMax: Uint8Array;
}

/** The parsed network configuration. */
export interface NetworkConfig {
  v4?: FamilyPlan;
  v6?: FamilyPlan;
  backend: BackendConfig;
}

const bad = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, `network config: ${msg}`);

function plan(raw: Record<string, unknown>, keys: { net: string; len: string; min: string; max: string }, defLen: number): FamilyPlan {
  const n = parseCIDR(String(raw[keys.net]));
  if (!n) throw bad(`${keys.net} ${JSON.stringify(raw[keys.net])} is not an address/prefix`);
  const network = networkOf(n);
  const bits = network.ip.length * 8;
  let subnetLen = raw[keys.len] === undefined || raw[keys.len] === 0 ? defLen : Number(raw[keys.len]);
  if (raw[keys.len] === undefined && network.prefix > defLen - 2) subnetLen = network.prefix + 2;
  if (!Number.isInteger(subnetLen) || subnetLen <= network.prefix || subnetLen > bits - 2) {
    throw bad(`${keys.len} ${subnetLen} must be longer than the network's /${network.prefix} and at most /${bits - 2}`);
  }
  const size = 1n << BigInt(bits - subnetLen);
  const last = networkOf({ ip: addIP(network.ip, (1n << BigInt(bits - network.prefix)) - 1n), prefix: subnetLen }).ip;
  const pick = (key: string, def: Uint8Array): Uint8Array => {
    const v = raw[key];
    if (v === undefined || v === "") return def;
    const ip = parseIP(String(v));
    if (!ip || ip.length !== network.ip.length || !containsIP(network, ip)) throw bad(`${key} ${JSON.stringify(v)} is not in ${formatCIDR(network)}`);
    if ((ipToBigInt(ip) - ipToBigInt(network.ip)) % size !== 0n) throw bad(`${key} ${v} is not the start of a /${subnetLen}`);
    return ip;
  };
  const subnetMin = pick(keys.min, addIP(network.ip, size));
  const subnetMax = pick(keys.max, last);
  if (ipToBigInt(subnetMin) > ipToBigInt(subnetMax)) throw bad(`${keys.min} ${formatIP(subnetMin)} is after ${keys.max} ${formatIP(subnetMax)}`);
  return { network, subnetLen, subnetMin, subnetMax };
}

/** Parse the JSON stored at `<prefix>/config`. */
export function parseNetworkConfig(text: string): NetworkConfig {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `network config: ${(e as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null) throw bad("not a JSON object");
  const v4on = raw.EnableIPv4 !== false;
  const v6on = raw.EnableIPv6 === true || (raw.IPv6Network !== undefined && raw.EnableIPv6 !== false);
  const out: NetworkConfig = { backend: parseBackend(raw.Backend) };
  if (v4on) {
    if (raw.Network === undefined) throw bad("Network is required (or set EnableIPv4 to false)");
    out.v4 = plan(raw, { net: "Network", len: "SubnetLen", min: "SubnetMin", max: "SubnetMax" }, 24);
  }
  if (v6on) {
    if (raw.IPv6Network === undefined) throw bad("IPv6Network is required with EnableIPv6");
    out.v6 = plan(raw, { net: "IPv6Network", len: "IPv6SubnetLen", min: "IPv6SubnetMin", max: "IPv6SubnetMax" }, 64);
  }
  if (!out.v4 && !out.v6) throw bad("neither IPv4 nor IPv6 is enabled");
  return out;
}

function parseBackend(raw: unknown): BackendConfig {
  const b = (raw ?? {}) as Record<string, unknown>;
  if (typeof b !== "object" || b === null) throw bad("Backend must be an object");
  const type = b.Type ?? "vxlan";
  if (type !== "vxlan" && type !== "host-gw" && type !== "bgp") throw bad(`Backend.Type ${JSON.stringify(type)} is not supported (vxlan, host-gw or bgp)`);
  const int = (k: string, def: number, max: number) => {
    const v = b[k] ?? def;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) throw bad(`Backend.${k} ${JSON.stringify(v)} is out of range`);
    return v;
  };
  const dp = b.Datapath ?? "kernel";
  if (dp !== "kernel" && dp !== "ebpf") throw bad(`Backend.Datapath ${JSON.stringify(dp)} is not supported ("kernel" or "ebpf")`);
  if (dp === "ebpf" && type !== "vxlan") throw bad(`Backend.Datapath "ebpf" goes with Type vxlan, not ${type}`);
  if (b.BigTCP !== undefined && typeof b.BigTCP !== "boolean") throw bad(`Backend.BigTCP must be true or false`);
  if (b.BigTCP === true && !(dp === "ebpf" && b.DirectRouting === true)) {
    throw bad(`Backend.BigTCP goes with "Datapath": "ebpf" and "DirectRouting": true (a vxlan device takes no packet over 64 KiB)`);
  }
  const out: BackendConfig = { type, vni: int("VNI", 1, 0xffffff), port: int("Port", 8472, 65535), directRouting: b.DirectRouting === true, datapath: dp, bigTcp: b.BigTCP === true };
  if (b.MTU !== undefined) out.mtu = int("MTU", 0, 65535);
  if (type === "bgp") out.bgp = parseBgpBackend(b);
  return out;
}
