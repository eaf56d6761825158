/**
 * host-local's allocation over a Store: one address per range set, round-robin from the address
 * after the last one reserved, skipping each range's gateway; requested addresses honoured when
 * free and inside the set.
 */

import { CniError, ErrorCode } from "../spec/error.ts";
import { addIP, formatIP, ipToBigInt, parseIP, type IPBytes } from "../spec/ip.ts";
import { rangeContains, rangeFor, type Range, type RangeSet } from "./range.ts";
import type { Store } from "./store.ts";

/** An address handed out, with the range it came from. */
export interface Allocation {
  ip: IPBytes;
  range: Range;
}

function ipKey(ip: IPBytes): string {
  return formatIP(ip);
}

function* iterate(set: RangeSet, after: IPBytes | undefined): Generator<{ ip: IPBytes; range: Range }> {
  // Start at the address after `after` when it lies in the set, else at the first range's start;
  // walk every range once, wrapping around.
  let ri = 0;
  let cur: IPBytes | undefined;
  if (after) {
    const idx = set.findIndex((r) => rangeContains(r, after));
    if (idx >= 0) {
      ri = idx;
      cur = after;
    }
  }
  const total = set.length;
  let first: string | undefined;
  for (let visited = 0; visited <= total; ) {
    const r = set[ri]!;
    let next: IPBytes;
    if (cur === undefined || ipToBigInt(cur) >= ipToBigInt(r.end)) {
      if (cur !== undefined) {
        ri = (ri + 1) % total;
        visited++;
      }
      next = set[ri]!.start;
    } else {
      next = addIP(cur, 1n);
    }
    cur = next;
    const key = ipKey(next);
    if (first === undefined) first = key;
    else if (key === first) return;
    yield { ip: next, range: set[ri]! };
  }
}

/**
 * Allocate one address from `set` for an attachment, reserving it in `store` (the caller holds the
 * store's lock). `requested` must lie in the set and be free.
 */
export function allocate(
  store: Store,
  opts: { set: RangeSet; index: number; containerId: string; ifName: string; requested?: IPBytes },
): Allocation {
  const { set, index, containerId, ifName } = opts;
  const res = { containerId, ifName };
  if (opts.requested) {
    const ip = opts.requested;
    const range = rangeFor(set, ip);
    if (!range) throw new CniError(ErrorCode.InvalidNetworkConfig, `requested IP address ${formatIP(ip)} is not in range set ${describeSet(set)}`);
    if (ipToBigInt(ip) === ipToBigInt(range.gateway)) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `requested IP must differ from gateway IP ${formatIP(ip)}`);
    }
    if (!store.reserve({ ...res, ip: ipKey(ip) }, index)) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `requested IP address ${formatIP(ip)} is not available in range set ${describeSet(set)}`);
    }
    return { ip, range };
  }
  const held = store.getByID(containerId, ifName).map((s) => parseIP(s)!).find((ip) => ip && rangeFor(set, ip));
  if (held) {
    // the spec forbids a second ADD without DEL; the reference refuses it the same way
    throw new CniError(ErrorCode.Internal, `${formatIP(held)} has been allocated to ${containerId}, duplicate allocation is not allowed`);
  }
  const lastStr = store.lastReserved(index);
  const last = lastStr ? parseIP(lastStr) ?? undefined : undefined;
  for (const { ip, range } of iterate(set, last)) {
    if (ipToBigInt(ip) === ipToBigInt(range.gateway)) continue;
    if (store.reserve({ ...res, ip: ipKey(ip) }, index)) return { ip, range };
  }
  throw new CniError(ErrorCode.TryAgainLater, `no IP addresses available in range set: ${describeSet(set)}`);
}

/** A range set in host-local's wording, e.g. "10.1.0.1-10.1.0.254". */
export function describeSet(set: RangeSet): string {
  return set.map((r) => `${formatIP(r.start)}-${formatIP(r.end)}`).join(",");
}
