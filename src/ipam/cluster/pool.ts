/**
 * Pure arithmetic of cluster-ipam: a pool (one subnet, IPv4 or IPv6) cut into blocks of a fixed
 * prefix length; block keys in etcd ("10.100.0.64-26"); the addresses of a block a pod may get
 * (never the pool's network address, its IPv4 broadcast address or the gateway); picking a free
 * one round-robin after the last one handed out.
 */

import { CniError, ErrorCode } from "../../spec/error.ts";
import { addIP, containsIP, formatCIDR, formatIP, ipToBigInt, networkOf, parseCIDR, parseIP, type IPBytes, type IPNet } from "../../spec/ip.ts";

/** A pool and how it is cut. */
export interface Pool {
  net: IPNet;
  blockLen: number;
  /** Addresses never handed out ("10.100.0.0", the broadcast, the gateway). */
  exclude: Set<string>;
}

const MAX_BLOCK_BITS = 16;
const bad = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, `cluster-ipam: ${msg}`);

/** Check and build a pool from the config's `subnet`, `blockSize` and `gateway`. */
export function parsePool(subnet: unknown, blockLen: unknown, gateway?: unknown): Pool {
  const n = typeof subnet === "string" ? parseCIDR(subnet) : null;
  if (!n) throw bad(`'subnet' ${JSON.stringify(subnet)} is not an address/prefix`);
  const net = networkOf(n);
  const bits = net.ip.length * 8;
  const len = blockLen === undefined ? (bits === 32 ? 26 : 122) : blockLen;
  // a block is scanned address by address when it looks full: at most 2^16 addresses
  const min = Math.max(net.prefix, bits - MAX_BLOCK_BITS);
  if (typeof len !== "number" || !Number.isInteger(len) || len < min || len > bits - 2) {
    throw bad(`'blockSize' ${JSON.stringify(blockLen)} must be a prefix length from ${min} to ${bits - 2} (the pool is /${net.prefix}, a block holds at most 2^${MAX_BLOCK_BITS} addresses)`);
  }
  const exclude = new Set([formatIP(net.ip)]);
  if (bits === 32) exclude.add(formatIP(addIP(net.ip, (1n << BigInt(32 - net.prefix)) - 1n)));
  if (gateway !== undefined) {
    const gw = typeof gateway === "string" ? parseIP(gateway) : null;
    if (!gw || !containsIP(net, gw)) throw bad(`'gateway' ${JSON.stringify(gateway)} is not an address in ${formatCIDR(net)}`);
    exclude.add(formatIP(gw));
  }
  return { net, blockLen: len, exclude };
}

/** How many blocks the pool has. */
export function blockCount(p: Pool): bigint {
  return 1n << BigInt(p.blockLen - p.net.prefix);
}

/** The i-th block. */
export function blockAt(p: Pool, i: bigint): IPNet {
  const size = 1n << BigInt(p.net.ip.length * 8 - p.blockLen);
  return { ip: addIP(p.net.ip, i * size), prefix: p.blockLen };
}

/** The block an address of the pool lies in. */
export function blockOf(p: Pool, ip: IPBytes): IPNet {
  return networkOf({ ip, prefix: p.blockLen });
}

/** A block's key part: "10.100.0.64-26". */
export function blockKey(b: IPNet): string {
  return `${formatIP(b.ip)}-${b.prefix}`;
}

/** The block a key part names, if it is one of the pool's. */
export function parseBlockKey(p: Pool, key: string): IPNet | undefined {
  const dash = key.lastIndexOf("-");
  const n = dash > 0 ? parseCIDR(`${key.slice(0, dash)}/${key.slice(dash + 1)}`) : null;
  if (!n || n.prefix !== p.blockLen || !containsIP(p.net, n.ip) || formatIP(networkOf(n).ip) !== formatIP(n.ip)) return undefined;
  return n;
}

/** The pool's name in etcd keys: "10.100.0.0-16". */
export function poolKey(p: Pool): string {
  return blockKey(p.net);
}

/**
 * A free address of `block` (not excluded, not in `used`), starting after `after` when it lies in
 * the block and wrapping around; undefined when the block is full.
 */
export function pickFree(p: Pool, block: IPNet, used: ReadonlySet<string>, after?: string): IPBytes | undefined {
  const size = 1n << BigInt(block.ip.length * 8 - block.prefix);
  const base = ipToBigInt(block.ip);
  const a = after ? parseIP(after) : null;
  const start = a && containsIP(block, a) ? (ipToBigInt(a) - base + 1n) % size : 0n;
  for (let k = 0n; k < size; k++) {
    const ip = addIP(block.ip, (start + k) % size);
    const s = formatIP(ip);
    if (!p.exclude.has(s) && !used.has(s)) return ip;
  }
  return undefined;
}

/** How many addresses of the pool can be handed out. */
export function poolCapacity(p: Pool): bigint {
  const all = 1n << BigInt(p.net.ip.length * 8 - p.net.prefix);
  return all - BigInt(p.exclude.size);
}
