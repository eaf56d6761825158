/**
 * Test helpers for eBPF programs: crafted frames for test runs of the datapath programs (Ethernet +
 * IPv4, checksummed, + payload), and a counter snippet for test programs.
 */

import { type Asm, R0, R1, R10, R2 } from "../../../src/bpf/asm.ts";

/** Append: add 1 to the u64 at index 0 of array map `map`; jumps to `skip` when the lookup fails. */
export function countHit(a: Asm, map: string, skip: string): Asm {
  return a
    .st("w", R10, -4, 0)
    .ldMap(R1, map)
    .mov64(R2, R10)
    .add64(R2, -4)
    .call("map_lookup_elem")
    .jmp("eq", R0, 0, skip)
    .mov64(R1, 1)
    .atomicAdd("dw", R0, 0, R1);
}

/** "aa:bb:..." to bytes. */
export function macBytes(s: string): Uint8Array {
  return Uint8Array.from(s.split(":").map((x) => parseInt(x, 16)));
}

/** A u32 in host (little-endian) order, as map keys and array values. */
export function u32(n: number): Uint8Array {
  return new Uint8Array(new Uint32Array([n]).buffer);
}

function ipBytes(s: string): number[] {
  return s.split(".").map(Number);
}

/** An Ethernet frame carrying an IPv4 header (protocol UDP) and `payload` bytes. */
export function frame(o: { dst: string; src: string; saddr: string; daddr: string; ethertype?: number; payload?: number }): Uint8Array {
  const payload = o.payload ?? 16;
  const f = new Uint8Array(14 + 20 + payload);
  const v = new DataView(f.buffer);
  f.set(macBytes(o.dst), 0);
  f.set(macBytes(o.src), 6);
  v.setUint16(12, o.ethertype ?? 0x0800, false);
  v.setUint8(14, 0x45);
  v.setUint16(16, 20 + payload, false);
  v.setUint8(22, 64);
  v.setUint8(23, 17);
  f.set(ipBytes(o.saddr), 26);
  f.set(ipBytes(o.daddr), 30);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += v.getUint16(i, false);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  v.setUint16(24, ~sum & 0xffff, false);
  for (let i = 0; i < payload; i++) f[34 + i] = i & 0xff;
  return f;
}
