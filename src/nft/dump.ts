/**
 * Readable text of nftables objects, for tests that compare what a plugin left behind (as
 * knftables' users compare `Fake.Dump()`): rules as their expressions with registers, set and map
 * elements as typed values (addresses, ports, protocol and interface names), never hex blobs
 * where a type is known. `FakeNft.dump()` prints its whole state with these.
 */

import { HOST_LE } from "../netlink/bytes.ts";
import { formatIP } from "../spec/ip.ts";
import { components, DATA_TYPES, type DataTypeName, fieldLens, type KeyType } from "./datatype.ts";
import type { Expr } from "./expr.ts";
import type { ElementInfo } from "./list.ts";
import type { Chain, NftMap, NftSet, Rule } from "./objects.ts";
import type { Verdict } from "./verdict.ts";

const hex = (b: Uint8Array): string => `0x${Buffer.from(b).toString("hex")}`;
const CMP = { eq: "==", neq: "!=", lt: "<", lte: "<=", gt: ">", gte: ">=" } as const;
const PROTOS: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp" };

/** A verdict as nft writes it: `accept`, `jump dnat`. */
export function formatVerdict(v: Verdict): string {
  return "chain" in v ? `${v.kind} ${v.chain}` : v.kind;
}

/**
 * One expression: `meta nfproto > r1`, `r1 == 0x02`, `network[12:4] > r8` (header, offset, length),
 * `r1 & 0xf0000000 > r1` (a zero xor left out), `r8 in @pods4`, `masq`.
 */
export function formatExpr(e: Expr): string {
  switch (e.kind) {
    case "payload":
      return `${e.base}[${e.offset}:${e.len}] > r${e.dreg}`;
    case "meta":
      return `meta ${e.key} > r${e.dreg}`;
    case "metaSet":
      return `meta ${e.key} set r${e.sreg}`;
    case "cmp":
      return `r${e.sreg} ${CMP[e.op]} ${hex(e.data)}`;
    case "lookup":
      return `r${e.sreg} ${e.invert ? "not in" : "in"} @${e.set}${e.dreg !== undefined ? ` > r${e.dreg}` : ""}`;
    case "immediate":
      return "verdict" in e ? formatVerdict(e.verdict) : `${hex(e.data)} > r${e.dreg}`;
    case "nat": {
      const regs = [
        e.addrMin !== undefined && `addr r${e.addrMin}${e.addrMax !== undefined ? `-r${e.addrMax}` : ""}`,
        e.protoMin !== undefined && `port r${e.protoMin}${e.protoMax !== undefined ? `-r${e.protoMax}` : ""}`,
        e.flags !== undefined && `flags ${e.flags}`,
      ].filter(Boolean);
      return [`${e.type} ${e.family}`, ...regs].join(" ");
    }
    case "masq":
      return ["masq", e.flags !== undefined && `flags ${e.flags}`, e.protoMin !== undefined && `port r${e.protoMin}${e.protoMax !== undefined ? `-r${e.protoMax}` : ""}`]
        .filter(Boolean).join(" ");
    case "counter":
      return "counter";
    case "ct":
      return `ct ${e.direction ? `${e.direction} ` : ""}${e.key} > r${e.dreg}`;
    case "fib":
      return `fib ${e.flags.join(" . ")} ${e.result} > r${e.dreg}`;
    case "bitwise":
      return `r${e.sreg} & ${hex(e.mask)}${e.xor.some((b) => b !== 0) ? ` ^ ${hex(e.xor)}` : ""} > r${e.dreg}`;
  }
}

/** A rule: its expressions separated by "; ", then its comment (printable user data) if any. */
export function formatRule(r: Rule): string {
  const text = r.exprs.map(formatExpr).join("; ");
  if (!r.userdata) return text;
  const comment = new TextDecoder().decode(r.userdata).replace(/[^\x20-\x7e]+/g, " ").trim();
  return `${text} # ${JSON.stringify(comment)}`;
}

/** A chain's head: `chain forward { filter hook forward priority 0 policy accept }`, or `chain dnat`. */
export function formatChain(c: Chain): string {
  if (c.hook === undefined) return `chain ${c.name}`;
  return `chain ${c.name} { ${c.type ?? "filter"} hook ${c.hook} priority ${c.priority ?? 0} policy ${c.policy ?? "accept"} }`;
}

const typeText = (t: KeyType): string => components(t).join(" . ");

/** A set's or map's head: `set keep4 { ipv4_addr . ipv4_addr; interval }`, `map dnat4 { ... : ... }`. */
export function formatSet(s: NftSet | NftMap): string {
  const type = s.kind === "map" ? `${typeText(s.key)} : ${s.data === "verdict" ? "verdict" : typeText(s.data)}` : typeText(s.key);
  const extra = [s.flags?.length ? s.flags.join(",") : "", s.timeoutMs !== undefined ? `timeout ${s.timeoutMs}ms` : ""].filter(Boolean);
  return `${s.kind} ${s.name} { ${[type, ...extra].join("; ")} }`;
}

function formatComponent(t: DataTypeName, b: Uint8Array): string {
  switch (t) {
    case "ipv4_addr":
    case "ipv6_addr":
      return formatIP(b);
    case "ether_addr":
      return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
    case "inet_proto":
      return PROTOS[b[0]!] ?? String(b[0]);
    case "inet_service":
      return String((b[0]! << 8) | b[1]!);
    case "mark":
      return `0x${new DataView(b.buffer, b.byteOffset, 4).getUint32(0, HOST_LE).toString(16)}`;
    case "ifname":
      return JSON.stringify(new TextDecoder().decode(b).replace(/\0.*$/s, ""));
  }
}

/** A key or value of type `t`: its components as typed text joined by " . " (hex if the length is off). */
export function formatValue(t: KeyType, b: Uint8Array): string {
  const lens = fieldLens(t);
  if (lens.reduce((a, n) => a + n, 0) !== b.length) return hex(b);
  let off = 0;
  return components(t).map((c, i) => {
    const part = b.subarray(off, off + lens[i]!);
    off += lens[i]!;
    return formatComponent(c, part.subarray(0, DATA_TYPES[c].len)); // a concatenation pads each to 4 bytes
  }).join(" . ");
}

/** An element of `s`: `10.1.2.3`, `a - b` for an interval, `key : value` in a map. */
export function formatElement(s: NftSet | NftMap, e: ElementInfo): string {
  let text = formatValue(s.key, e.key);
  if (e.keyEnd) text += ` - ${formatValue(s.key, e.keyEnd)}`;
  if (e.verdict) text += ` : ${formatVerdict(e.verdict)}`;
  else if (e.data && s.kind === "map" && s.data !== "verdict") text += ` : ${formatValue(s.data, e.data)}`;
  return text;
}
