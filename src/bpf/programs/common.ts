/**
 * Pieces the datapath programs share: packet parsing (Ethernet + IPv4 bounds), counting a
 * decision in the stats map, and delivering to a local pod (rewrite the Ethernet addresses from
 * the endpoint entry, then `bpf_redirect_peer` into the pod).
 *
 * Register use in every program: r6 = the skb (struct __sk_buff *), r7 = packet start,
 * r8 = packet end, r9 = the current map value; r0-r5 are scratch (helpers clobber them).
 */

import { Asm, R0, R1, R10, R2, R6, R7, R8, R9 } from "../asm.ts";
import { EP, MapName } from "./layout.ts";

/** struct __sk_buff field offsets. */
export const SKB = { len: 0, pktType: 4, ifindex: 40, data: 76, dataEnd: 80 } as const;
/** tc verdicts. */
export const TC_ACT = { OK: 0, SHOT: 2, REDIRECT: 7 } as const;
/** Ethernet header length and the IPv4 header's offset of the destination address. */
export const ETH_HLEN = 14;
const IPV4_DADDR = ETH_HLEN + 16;
/** ETH_P_IP as a little-endian load of the (big-endian) EtherType reads it. */
const ETH_P_IP_LE = 0x0008;

let unique = 0;
function label(base: string): string {
  return `${base}_${++unique}`;
}

/**
 * r6 = skb, r7/r8 = packet bounds; jump to `notIPv4` unless the frame holds an Ethernet header
 * and a minimal IPv4 header; then r9 = the destination IPv4 (raw, network order) and the stack
 * slot fp-4 holds it too.
 */
export function parseIPv4(a: Asm, notIPv4: string): void {
  a.mov64(R6, R1);
  a.ldx("w", R7, R6, SKB.data);
  a.ldx("w", R8, R6, SKB.dataEnd);
  a.mov64(R1, R7).add64(R1, IPV4_DADDR + 4);
  a.jmp("gt", R1, R8, notIPv4);
  a.ldx("h", R1, R7, 12);
  a.jmp("ne", R1, ETH_P_IP_LE, notIPv4);
  a.ldx("w", R9, R7, IPV4_DADDR);
  a.stx("w", R10, -4, R9);
}

/** r0 = lookup of the key at fp+`keyOff` in map `map` (clobbers r1-r5). */
export function lookup(a: Asm, map: string, keyOff: number): void {
  a.ldMap(R1, map).mov64(R2, R10).add64(R2, keyOff).call("map_lookup_elem");
}

/** Add one packet of skb->len bytes to counter `index` of the stats map (clobbers r0-r5, fp-4). */
export function count(a: Asm, index: number): void {
  const skip = label("nostat");
  a.st("w", R10, -4, index);
  lookup(a, MapName.stats, -4);
  a.jmp("eq", R0, 0, skip);
  a.mov64(R1, 1).atomicAdd("dw", R0, 0, R1);
  a.ldx("w", R1, R6, SKB.len).atomicAdd("dw", R0, 8, R1);
  a.label(skip);
}

/**
 * With r0 = an endpoint entry (non-null) and the Ethernet header in bounds: set the destination
 * MAC to the pod's and the source to the host veth's, count under `stat`, and return
 * `bpf_redirect_peer(ifindex, 0)` (into the pod's interface, without a pass through the host).
 */
export function deliver(a: Asm, stat: number): void {
  a.mov64(R9, R0);
  a.ldx("w", R1, R9, EP.podMac).stx("w", R7, 0, R1);
  a.ldx("h", R1, R9, EP.podMac + 4).stx("h", R7, 4, R1);
  a.ldx("h", R1, R9, EP.hostMac).stx("h", R7, 6, R1);
  a.ldx("w", R1, R9, EP.hostMac + 2).stx("w", R7, 8, R1);
  count(a, stat);
  a.ldx("w", R1, R9, EP.ifindex).mov64(R2, 0).call("redirect_peer").exit();
}

/** Count under `stat` and return `verdict`. */
export function finish(a: Asm, stat: number, verdict: number): void {
  count(a, stat);
  a.mov64(R0, verdict).exit();
}

/**
 * The start of both programs: parse the frame (not IPv4: jump to `host`), look the destination up
 * in the endpoint map, and deliver to the local pod on a hit (counted under `stat`); on a miss go
 * on at `miss` with r9 and fp-4 holding the destination.
 */
export function deliverLocal(a: Asm, stat: number, miss: string): void {
  parseIPv4(a, "host");
  lookup(a, MapName.endpoints, -4);
  a.jmp("eq", R0, 0, miss);
  deliver(a, stat);
}
