/** IP addresses and prefixes as plain bytes: parsing, formatting, family checks and arithmetic (pure). */

/** An IP address: 4 bytes (IPv4) or 16 bytes (IPv6). */
export type IPBytes = Uint8Array;

/** An address with its prefix length, as in "10.1.2.3/24". */
export interface IPNet {
  ip: IPBytes;
  prefix: number;
}

function parseV4(s: string): IPBytes | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === "0")) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

function parseV6(s: string): IPBytes | null {
  if (s.includes("%")) return null;
  let tail4: IPBytes | null = null;
  let str = s;
  const lastColon = str.lastIndexOf(":");
  if (str.includes(".")) {
    tail4 = parseV4(str.slice(lastColon + 1));
    if (!tail4) return null;
    str = str.slice(0, lastColon + 1) + "0:0";
  }
  const dbl = str.split("::");
  if (dbl.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    for (const g of part.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(dbl[0]!);
  const rest = dbl.length === 2 ? groups(dbl[1]!) : [];
  if (!head || !rest) return null;
  let all: number[];
  if (dbl.length === 2) {
    const fill = 8 - head.length - rest.length;
    if (fill < 1) return null;
    all = [...head, ...new Array<number>(fill).fill(0), ...rest];
  } else {
    all = head;
  }
  if (all.length !== 8) return null;
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (tail4) out.set(tail4, 12);
  return out;
}

/** Parse an IPv4 or IPv6 address; null when it is not one. */
export function parseIP(s: string): IPBytes | null {
  if (typeof s !== "string" || s === "") return null;
  return s.includes(":") ? parseV6(s) : parseV4(s);
}

/** Parse "addr/prefix"; null when malformed or the prefix is out of range for the family. */
export function parseCIDR(s: string): IPNet | null {
  if (typeof s !== "string") return null;
  const slash = s.indexOf("/");
  if (slash < 0) return null;
  const ip = parseIP(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(p)) return null;
  const prefix = Number(p);
  if (prefix > ip.length * 8) return null;
  return { ip, prefix };
}

/** Whether the bytes are an IPv4 address. */
export function isIPv4(ip: IPBytes): boolean {
  return ip.length === 4;
}

/** Format an address in its canonical text form (RFC 5952 for IPv6). */
export function formatIP(ip: IPBytes): string {
  if (ip.length === 4) return Array.from(ip).join(".");
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((ip[i]! << 8) | ip[i + 1]!);
  // IPv4-mapped addresses keep the dotted tail, as Go prints them.
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `::ffff:${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** Format an address with its prefix length. */
export function formatCIDR(net: IPNet): string {
  return `${formatIP(net.ip)}/${net.prefix}`;
}

/** The network address of a prefix (host bits cleared). */
export function networkOf(net: IPNet): IPNet {
  const ip = new Uint8Array(net.ip);
  for (let bit = net.prefix; bit < ip.length * 8; bit++) ip[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { ip, prefix: net.prefix };
}

/** Whether `ip` lies inside the prefix `net` (same family only). */
export function containsIP(net: IPNet, ip: IPBytes): boolean {
  if (ip.length !== net.ip.length) return false;
  for (let bit = 0; bit < net.prefix; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((ip[bit >> 3]! & mask) !== (net.ip[bit >> 3]! & mask)) return false;
  }
  return true;
}

/** Whether two addresses are equal (same family and bytes). */
export function ipEqual(a: IPBytes, b: IPBytes): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The address as an unsigned integer. */
export function ipToBigInt(ip: IPBytes): bigint {
  let n = 0n;
  for (const b of ip) n = (n << 8n) | BigInt(b);
  return n;
}

/** The integer as an address of `len` bytes (4 or 16). */
export function bigIntToIP(n: bigint, len: number): IPBytes {
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

/** The address `delta` after `ip` (before it when negative), wrapping around the family's space. */
export function addIP(ip: IPBytes, delta: bigint): IPBytes {
  const max = (1n << BigInt(ip.length * 8)) - 1n;
  let n = ipToBigInt(ip) + delta;
  if (n < 0n) n += max + 1n;
  if (n > max) n -= max + 1n;
  return bigIntToIP(n, ip.length);
}

/** The last address of a prefix (host bits set: IPv4's broadcast address). */
export function lastIP(net: IPNet): IPBytes {
  const ip = new Uint8Array(net.ip);
  for (let bit = net.prefix; bit < ip.length * 8; bit++) ip[bit >> 3]! |= 0x80 >> (bit & 7);
  return ip;
}

/** The first address after the network address (the usual gateway, "10.1.2.1" of 10.1.2.0/24). */
export function firstHost(net: IPNet): IPBytes {
  return addIP(networkOf(net).ip, 1n);
}
