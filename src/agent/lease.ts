/**
 * Subnet leases in flannel's key layout: `<prefix>/subnets/<a.b.c.d>-<len>` (dual-stack:
 * `<a.b.c.d>-<len>&<ipv6>-<len>`, IPv6-only: `0.0.0.0-0&<ipv6>-<len>`) holding `{"PublicIP", "PublicIPv6", "BackendType",
 * "BackendData": {"VNI", "VtepMAC"}, "BackendV6Data": {...}}`; and picking a free subnet.
 */

import { CniError, ErrorCode } from "../spec/error.ts";
import { addIP, formatCIDR, formatIP, ipToBigInt, parseCIDR, parseIP, type IPNet } from "../spec/ip.ts";
import type { FamilyPlan } from "./netconfig.ts";

/** What a lease's value says about its node. */
export interface LeaseAttrs {
  publicIP: string;
  publicIPv6?: string;
  backendType: string;
  backendData?: BackendData;
  /** The IPv6 side's backend data (its own VTEP). */
  backendV6Data?: BackendData;
  /**
   * cnikit's own key `CnikitStatusURL`: where the node's agent serves its status (`--healthz`, when
   * other nodes can reach it), so that pictures of the cluster can show every node's pods.
   */
  statusURL?: string;
}

/** A backend's data in a lease. */
export type BackendData = { VNI?: number; VtepMAC?: string; [k: string]: unknown };

/** The subnets a lease key names: at least one of them. */
export interface LeaseSubnets {
  v4?: IPNet;
  v6?: IPNet;
}

/** A lease's identity: its IPv4 subnet, or the IPv6 one on an IPv6-only network ("10.244.3.0/24"). */
export function leaseId(s: LeaseSubnets): string {
  return formatCIDR((s.v4 ?? s.v6)!);
}

/** The default key prefix. */
export const DEFAULT_PREFIX = "/coreos.com/network";

/**
 * The key of a lease: its IPv4 subnet, with its IPv6 subnet for a dual-stack node; an IPv6-only
 * node's IPv4 half is flannel's empty 0.0.0.0-0.
 */
export function leaseKey(prefix: string, subnet: IPNet | undefined, subnet6?: IPNet): string {
  if (!subnet && !subnet6) throw new TypeError("leaseKey: no subnet");
  const v4 = subnet ? `${formatIP(subnet.ip)}-${subnet.prefix}` : "0.0.0.0-0";
  const v6 = subnet6 ? `&${formatIP(subnet6.ip)}-${subnet6.prefix}` : "";
  return `${prefix}/subnets/${v4}${v6}`;
}

function parsePart(part: string, len: 4 | 16): IPNet | undefined {
  const dash = part.lastIndexOf("-");
  if (dash < 0) return undefined;
  const n = parseCIDR(`${part.slice(0, dash)}/${part.slice(dash + 1)}`);
  return n && n.ip.length === len ? n : undefined;
}

/** The subnets a lease key names, or undefined for a key of another shape. */
export function subnetsOfKey(prefix: string, key: string): LeaseSubnets | undefined {
  const base = `${prefix}/subnets/`;
  if (!key.startsWith(base)) return undefined;
  const [a, b, extra] = key.slice(base.length).split("&");
  const v4 = parsePart(a!, 4);
  if (!v4 || extra !== undefined) return undefined;
  const none = v4.prefix === 0 && formatIP(v4.ip) === "0.0.0.0"; // an IPv6-only node's
  if (b === undefined) return none ? undefined : { v4 };
  const v6 = parsePart(b, 16);
  if (!v6) return undefined;
  return none ? { v6 } : { v4, v6 };
}

/** The IPv4 subnet a lease key names (a node's identity), or undefined. */
export function subnetOfKey(prefix: string, key: string): IPNet | undefined {
  return subnetsOfKey(prefix, key)?.v4;
}

/** A lease value as JSON, in flannel's field names. */
export function encodeLease(a: LeaseAttrs): string {
  const o: Record<string, unknown> = { PublicIP: a.publicIP, BackendType: a.backendType };
  if (a.publicIPv6) o.PublicIPv6 = a.publicIPv6;
  if (a.backendData) o.BackendData = a.backendData;
  if (a.backendV6Data) o.BackendV6Data = a.backendV6Data;
  if (a.statusURL) o.CnikitStatusURL = a.statusURL;
  return JSON.stringify(o);
}

/** Parse a lease value. */
export function decodeLease(text: string): LeaseAttrs {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `lease: ${(e as Error).message}`);
  }
  if (typeof o?.PublicIP !== "string" || !parseIP(o.PublicIP)) throw new CniError(ErrorCode.DecodingFailure, "lease: PublicIP missing or invalid");
  const out: LeaseAttrs = { publicIP: o.PublicIP, backendType: String(o.BackendType ?? "") };
  if (typeof o.PublicIPv6 === "string") out.publicIPv6 = o.PublicIPv6;
  if (o.BackendData && typeof o.BackendData === "object") out.backendData = o.BackendData as BackendData;
  if (o.BackendV6Data && typeof o.BackendV6Data === "object") out.backendV6Data = o.BackendV6Data as BackendData;
  if (typeof o.CnikitStatusURL === "string" && /^https?:\/\/[^/\s]+$/.test(o.CnikitStatusURL)) out.statusURL = o.CnikitStatusURL;
  return out;
}

/**
 * A free subnet of `plan` not in `taken` (subnet keys "a.b.c.d/len"), chosen at random among the
 * first free ones as flannel does, so that nodes starting together rarely collide; undefined
 * when the range is full.
 */
export function pickFreeSubnet(plan: FamilyPlan, taken: ReadonlySet<string>, rand: () => number = Math.random): IPNet | undefined {
  const bits = plan.network.ip.length * 8;
  const size = 1n << BigInt(bits - plan.subnetLen);
  const free: IPNet[] = [];
  for (let ip = plan.subnetMin; ipToBigInt(ip) <= ipToBigInt(plan.subnetMax) && free.length < 100; ip = addIP(ip, size)) {
    const net = { ip, prefix: plan.subnetLen };
    if (!taken.has(formatCIDR(net))) free.push(net);
    if (ipToBigInt(ip) + size > ipToBigInt(plan.subnetMax)) break;
  }
  if (free.length === 0) return undefined;
  return free[Math.floor(rand() * free.length)]!;
}
