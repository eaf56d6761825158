/**
 * Subnet leases in flannel's key layout: `<prefix>/subnets/<a.b.c.d>-<len>` holding
 * `{"PublicIP", "BackendType", "BackendData": {"VNI", "VtepMAC"}}`; and picking a free subnet.
 */

import { CniError, ErrorCode } from "../spec/error.ts";
import { formatCIDR, formatIP, parseCIDR, parseIP, type IPNet } from "../spec/ip.ts";
import { addIP, ipToBigInt } from "../ipam/range.ts";
import type { FamilyPlan } from "./netconfig.ts";

/** What a lease's value says about its node. */
export interface LeaseAttrs {
  publicIP: string;
  publicIPv6?: string;
  backendType: string;
  backendData?: { VNI?: number; VtepMAC?: string; [k: string]: unknown };
}

/** The default key prefix. */
export const DEFAULT_PREFIX = "/coreos.com/network";

/** The key of a subnet's lease. */
export function leaseKey(prefix: string, subnet: IPNet): string {
  return `${prefix}/subnets/${formatIP(subnet.ip)}-${subnet.prefix}`;
}

/** The subnet a lease key names, or undefined for a key of another shape. */
export function subnetOfKey(prefix: string, key: string): IPNet | undefined {
  const base = `${prefix}/subnets/`;
  if (!key.startsWith(base)) return undefined;
  const name = key.slice(base.length);
  const dash = name.lastIndexOf("-");
  if (dash < 0) return undefined;
  return parseCIDR(`${name.slice(0, dash)}/${name.slice(dash + 1)}`) ?? undefined;
}

/** A lease value as JSON, in flannel's field names. */
export function encodeLease(a: LeaseAttrs): string {
  const o: Record<string, unknown> = { PublicIP: a.publicIP, BackendType: a.backendType };
  if (a.publicIPv6) o.PublicIPv6 = a.publicIPv6;
  if (a.backendData) o.BackendData = a.backendData;
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
  if (o.BackendData && typeof o.BackendData === "object") out.backendData = o.BackendData as LeaseAttrs["backendData"];
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
