/**
 * Byte encodings of values as nftables compares them: addresses and ports in network order, marks
 * in host order, interface names NUL-padded to 16 bytes; and concatenation of components.
 */

import { HOST_LE } from "../netlink/bytes.ts";

/** An IPv4 address in dotted form as 4 bytes. */
export function ipv4(addr: string): Uint8Array {
  const parts = addr.split(".");
  const out = new Uint8Array(4);
  if (parts.length !== 4) throw new TypeError(`not an IPv4 address: ${addr}`);
  parts.forEach((p, i) => {
    const n = Number(p);
    if (!/^\d{1,3}$/.test(p) || n > 255) throw new TypeError(`not an IPv4 address: ${addr}`);
    out[i] = n;
  });
  return out;
}

/** An IPv6 address in hex-group form (`::` compression accepted) as 16 bytes. */
export function ipv6(addr: string): Uint8Array {
  const bad = (): never => {
    throw new TypeError(`not an IPv6 address: ${addr}`);
  };
  const halves = addr.split("::");
  if (halves.length > 2) bad();
  const parse = (h: string): number[] =>
    h === "" ? [] : h.split(":").map((g) => (/^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : bad()));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const zeros = 8 - head.length - tail.length;
  if (halves.length === 2 ? zeros < 1 : zeros !== 0) bad();
  const groups = [...head, ...new Array<number>(zeros).fill(0), ...tail];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

/** A port (inet_service) as 2 bytes, network order. */
export function inetService(port: number): Uint8Array {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError(`not a port: ${port}`);
  return Uint8Array.of(port >> 8, port & 0xff);
}

const PROTOCOLS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, sctp: 132 };

/** An IP protocol number or name (tcp, udp, icmp, icmpv6, sctp) as 1 byte. */
export function inetProto(p: number | string): Uint8Array {
  const n = typeof p === "number" ? p : PROTOCOLS[p];
  if (n === undefined || !Number.isInteger(n) || n < 0 || n > 255) throw new RangeError(`not an IP protocol: ${p}`);
  return Uint8Array.of(n);
}

/** An interface name, NUL-padded to IFNAMSIZ (16 bytes). */
export function ifname(name: string): Uint8Array {
  const b = new TextEncoder().encode(name);
  if (b.length > 15) throw new RangeError(`interface name too long: ${name}`);
  const out = new Uint8Array(16);
  out.set(b);
  return out;
}

/** A packet mark (or any u32 kept in host order by the kernel) as 4 bytes. */
export function mark(v: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, v >>> 0, HOST_LE);
  return out;
}

/** Components of a concatenated key or value, each zero-padded to a 4-byte register word. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const len = parts.reduce((n, p) => n + ((p.length + 3) & ~3), 0);
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += (p.length + 3) & ~3;
  }
  return out;
}
