/**
 * Address ranges as host-local defines them: a subnet with an optional first and last address and
 * a gateway (defaults: network + 1 .. last address, IPv4 broadcast excluded; gateway network + 1),
 * grouped in range sets (one address is taken from each set).
 */

import { list, object, str } from "../spec/decode.ts";
import { CniError, ErrorCode } from "../spec/error.ts";
import { addIP, containsIP, formatCIDR, formatIP, ipEqual, ipToBigInt, lastIP, networkOf, parseCIDR, parseIP, type IPBytes, type IPNet } from "../spec/ip.ts";

/** A range as written in a config. */
export interface RangeConf {
  subnet?: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

/**
 * A range as the reference decodes it (host-local's `Range`; go-cni sends `Subnet`, `RangeStart`,
 * ...): strings, checked by `parseRange`.
 */
export const rangeCodec = object({ rangeStart: str, rangeEnd: str, subnet: str, gateway: str });

/** A range set (`[]Range`): what `ranges` and the `ipRanges` capability list. */
export const rangeSetCodec = list(rangeCodec);

/** A checked range with every default filled in. */
export interface Range {
  subnet: IPNet;
  start: IPBytes;
  end: IPBytes;
  gateway: IPBytes;
}

/** A set of ranges; an allocation takes one address from the set. */
export type RangeSet = Range[];

const bad = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);

/** A subnet's last usable address (IPv4: the one before broadcast). */
function lastOf(subnet: IPNet): IPBytes {
  const ip = lastIP(subnet);
  return subnet.ip.length === 4 ? addIP(ip, -1n) : ip;
}

/** Check a range and fill in its defaults, with host-local's errors. */
export function parseRange(conf: RangeConf): Range {
  if (typeof conf !== "object" || conf === null) throw bad("invalid range: not an object");
  if (conf.subnet === undefined || conf.subnet === "") throw bad("invalid range: no subnet");
  const net = parseCIDR(conf.subnet);
  if (!net) throw bad(`invalid range: subnet ${JSON.stringify(conf.subnet)} is not an address/prefix`);
  const bits = net.ip.length * 8;
  if (net.prefix > bits - 2) throw bad(`Network ${conf.subnet} too small to allocate from`);
  const subnet = networkOf(net);
  if (!ipEqual(subnet.ip, net.ip)) {
    throw bad(`network has host bits set. For a subnet mask of length ${net.prefix} the network address is ${formatIP(subnet.ip)}`);
  }
  const addr = (v: string | undefined, what: string): IPBytes | undefined => {
    if (v === undefined || v === "") return undefined;
    const ip = parseIP(v);
    if (!ip) throw bad(`invalid range: ${what} ${JSON.stringify(v)} is not an IP address`);
    if (ip.length !== subnet.ip.length || !containsIP(subnet, ip)) throw bad(`${what} ${v} not in network ${formatCIDR(subnet)}`);
    return ip;
  };
  const gateway = addr(conf.gateway, "gateway") ?? addIP(subnet.ip, 1n);
  const start = addr(conf.rangeStart, "RangeStart") ?? addIP(subnet.ip, 1n);
  const end = addr(conf.rangeEnd, "RangeEnd") ?? lastOf(subnet);
  if (ipToBigInt(start) > ipToBigInt(end)) throw bad(`RangeStart ${formatIP(start)} is after RangeEnd ${formatIP(end)}`);
  return { subnet, start, end, gateway };
}

/** Whether `ip` lies in the range (between start and end, same family). */
export function rangeContains(r: Range, ip: IPBytes): boolean {
  if (ip.length !== r.start.length) return false;
  const n = ipToBigInt(ip);
  return n >= ipToBigInt(r.start) && n <= ipToBigInt(r.end);
}

/** Check a range set: at least one range, one family, no overlaps. */
export function parseRangeSet(confs: RangeConf[]): RangeSet {
  if (!Array.isArray(confs) || confs.length === 0) throw bad("empty range set");
  const set = confs.map(parseRange);
  const fam = set[0]!.start.length;
  if (set.some((r) => r.start.length !== fam)) throw bad("mixed address families in one range set");
  for (let i = 0; i < set.length; i++) {
    for (let j = i + 1; j < set.length; j++) {
      const a = set[i]!;
      const b = set[j]!;
      if (ipToBigInt(a.start) <= ipToBigInt(b.end) && ipToBigInt(b.start) <= ipToBigInt(a.end)) {
        throw bad(`range ${formatCIDR(a.subnet)} overlaps with ${formatCIDR(b.subnet)}`);
      }
    }
  }
  return set;
}

/** The range of a set that holds `ip`, if any. */
export function rangeFor(set: RangeSet, ip: IPBytes): Range | undefined {
  return set.find((r) => rangeContains(r, ip));
}

/** Number of addresses a set can hand out (gateways inside their range excluded). */
export function rangeSetSize(set: RangeSet): bigint {
  let n = 0n;
  for (const r of set) {
    n += ipToBigInt(r.end) - ipToBigInt(r.start) + 1n;
    if (rangeContains(r, r.gateway)) n -= 1n;
  }
  return n;
}
