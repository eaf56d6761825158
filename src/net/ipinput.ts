/** Addresses and prefixes as the net functions accept them: text or parsed. */

import { type IPBytes, type IPNet, parseCIDR, parseIP } from "../spec/ip.ts";

/** An address: "10.1.2.3", "fd00::1", or its bytes. */
export type IPInput = string | IPBytes;

/** A prefix: "10.1.2.0/24", or a parsed IPNet. */
export type CIDRInput = string | IPNet;

/** Parse an address; throws a TypeError naming `what` when it is not one. */
export function toIP(v: IPInput, what: string): IPBytes {
  if (typeof v !== "string") {
    if (v.length === 4 || v.length === 16) return v;
    throw new TypeError(`${what}: not an IP address (${v.length} bytes)`);
  }
  const ip = parseIP(v);
  if (!ip) throw new TypeError(`${what}: invalid IP address ${JSON.stringify(v)}`);
  return ip;
}

/** Parse a prefix; throws a TypeError naming `what` when it is not one. */
export function toIPNet(v: CIDRInput, what: string): IPNet {
  if (typeof v !== "string") {
    toIP(v.ip, what);
    if (v.prefix < 0 || v.prefix > v.ip.length * 8) throw new TypeError(`${what}: prefix /${v.prefix} out of range`);
    return v;
  }
  const net = parseCIDR(v);
  if (!net) throw new TypeError(`${what}: invalid CIDR ${JSON.stringify(v)}`);
  return net;
}
