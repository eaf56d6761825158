/**
 * rtnetlink traffic control: struct tcmsg (u8 family, u8 pad, u16 pad, i32 ifindex, u32 handle,
 * u32 parent, u32 info) and the TCA_* attributes of the qdiscs and filters cnikit uses: TBF
 * (token bucket), ingress, u32 and matchall filters carrying mirred (redirect) actions. Also the
 * psched clock arithmetic (microseconds to ticks) that TBF's buffer field is expressed in.
 */

import { type AttrLike, Attrs, nla, writeAttrs } from "./attr.ts";
import { ByteWriter, HOST_LE, viewOf } from "./bytes.ts";
import { MalformedMessageError } from "./malformed.ts";

/** Add a traffic control filter (struct tcmsg). */
export const RTM_NEWTFILTER = 44;
/** Delete a filter. */
export const RTM_DELTFILTER = 45;
/** Dump filters (of one device and parent). */
export const RTM_GETTFILTER = 46;

/** Size of struct tcmsg. */
export const TCMSG_LEN = 20;

/** Parent of a root qdisc. */
export const TC_H_ROOT = 0xffffffff;
/** Parent of the ingress (and clsact) qdisc. */
export const TC_H_INGRESS = 0xfffffff1;
/** No handle: let the kernel choose, or "any". */
export const TC_H_UNSPEC = 0;

/** A tc handle "major:minor" as one u32. */
export function tcHandle(major: number, minor: number): number {
  return (((major & 0xffff) << 16) | (minor & 0xffff)) >>> 0;
}

/** A handle in tc's notation ("1:", "ffff:", "1:1", "root"). */
export function formatHandle(h: number): string {
  if (h === TC_H_ROOT) return "root";
  const maj = (h >>> 16).toString(16);
  const min = h & 0xffff;
  return min === 0 ? `${maj}:` : `${maj}:${min.toString(16)}`;
}

/** Qdisc / filter attribute: the kind ("tbf", "ingress", "u32", ...), string. */
export const TCA_KIND = 1;
/** Qdisc / filter attribute: kind-specific options, nested. */
export const TCA_OPTIONS = 2;
/** Filter attribute: the chain index, u32. */
export const TCA_CHAIN = 11;

/** TBF option: struct tc_tbf_qopt. */
export const TCA_TBF_PARMS = 1;
/** TBF option: rate table (legacy, not needed by current kernels). */
export const TCA_TBF_RTAB = 2;
/** TBF option: peak rate table (legacy). */
export const TCA_TBF_PTAB = 3;
/** TBF option: the rate in bytes per second when it does not fit tc_ratespec's u32, u64. */
export const TCA_TBF_RATE64 = 4;
/** TBF option: the peak rate when it does not fit u32, u64. */
export const TCA_TBF_PRATE64 = 5;
/** TBF option: the burst in bytes (the kernel derives the buffer from it), u32. */
export const TCA_TBF_BURST = 6;
/** TBF option: the peak burst in bytes, u32. */
export const TCA_TBF_PBURST = 7;

/** u32 option: flow id (class), u32. */
export const TCA_U32_CLASSID = 1;
/** u32 option: hash table id, u32. */
export const TCA_U32_HASH = 2;
/** u32 option: link to a hash table, u32. */
export const TCA_U32_LINK = 3;
/** u32 option: hash table divisor, u32. */
export const TCA_U32_DIVISOR = 4;
/** u32 option: struct tc_u32_sel and its keys. */
export const TCA_U32_SEL = 5;
/** u32 option: actions, nested (one nest per action, numbered from 1). */
export const TCA_U32_ACT = 7;
/** u32 selector flag: a match ends the lookup. */
export const TC_U32_TERMINAL = 1;

/** matchall option: flow id (class), u32. */
export const TCA_MATCHALL_CLASSID = 1;
/** matchall option: actions, nested. */
export const TCA_MATCHALL_ACT = 2;
/** matchall option: TCA_CLS_FLAGS_*, u32. */
export const TCA_MATCHALL_FLAGS = 3;

/** Action attribute: the kind ("mirred"), string. */
export const TCA_ACT_KIND = 1;
/** Action attribute: kind-specific options, nested. */
export const TCA_ACT_OPTIONS = 2;
/** mirred option: struct tc_mirred. */
export const TCA_MIRRED_PARMS = 2;

/** Action verdict: continue with the next filter. */
export const TC_ACT_OK = 0;
/** Action verdict: the packet is consumed (redirected). */
export const TC_ACT_STOLEN = 4;
/** Action verdict: go on with the next action ("pipe" in tc). */
export const TC_ACT_PIPE = 3;
/** mirred: redirect the packet to the egress of a device. */
export const TCA_EGRESS_REDIR = 1;
/** mirred: copy the packet to the egress of a device. */
export const TCA_EGRESS_MIRROR = 2;
/** mirred: redirect to the ingress of a device. */
export const TCA_INGRESS_REDIR = 3;
/** mirred: copy to the ingress of a device. */
export const TCA_INGRESS_MIRROR = 4;

/** Every protocol (ETH_P_ALL), for a filter's protocol. */
export const ETH_P_ALL = 0x0003;
/** IPv4 (ETH_P_IP). */
export const ETH_P_IP = 0x0800;

/** tc_ratespec.linklayer: Ethernet (what iproute2 sends). */
export const TC_LINKLAYER_ETHERNET = 1;

/** The tcmsg header fields. */
export interface TcHeader {
  family?: number;
  /** The device. */
  ifindex: number;
  /** The object's handle ("1:" is tcHandle(1, 0)); for a filter, its handle (0: the kernel picks). */
  handle?: number;
  /** The parent: TC_H_ROOT, TC_H_INGRESS or a class / qdisc handle. */
  parent?: number;
  /** Filters: priority << 16 | protocol (network order); qdiscs: 0. */
  info?: number;
}

/** Encode struct tcmsg followed by attributes. */
export function encodeTc(h: TcHeader, attrs: readonly AttrLike[] = []): Uint8Array {
  const w = new ByteWriter();
  w.u8(h.family ?? 0).u8(0).u16(0).i32(h.ifindex).u32(h.handle ?? 0).u32(h.parent ?? 0).u32(h.info ?? 0);
  writeAttrs(w, attrs);
  return w.finish();
}

/** tcm_info of a filter: its priority and protocol (the protocol in network byte order). */
export function filterInfo(prio: number, protocol: number): number {
  const proto = HOST_LE ? ((protocol & 0xff) << 8) | ((protocol >> 8) & 0xff) : protocol & 0xffff;
  return (((prio & 0xffff) << 16) | proto) >>> 0;
}

/** struct tc_ratespec. */
export interface RateSpec {
  cellLog?: number;
  linklayer?: number;
  overhead?: number;
  cellAlign?: number;
  mpu?: number;
  /** Bytes per second (u32; larger rates go in TCA_TBF_RATE64). */
  rate: number;
}

function writeRateSpec(w: ByteWriter, r: RateSpec): void {
  w.u8(r.cellLog ?? 0).u8(r.linklayer ?? 0).u16(r.overhead ?? 0);
  w.u16((r.cellAlign ?? 0) & 0xffff).u16(r.mpu ?? 0).u32(r.rate);
}

function readRateSpec(b: Uint8Array, off: number): RateSpec {
  const v = viewOf(b);
  return {
    cellLog: v.getUint8(off),
    linklayer: v.getUint8(off + 1),
    overhead: v.getUint16(off + 2, HOST_LE),
    cellAlign: v.getInt16(off + 4, HOST_LE),
    mpu: v.getUint16(off + 6, HOST_LE),
    rate: v.getUint32(off + 8, HOST_LE),
  };
}

/** Size of struct tc_tbf_qopt. */
export const TC_TBF_QOPT_LEN = 36;

/** A TBF qdisc's settings (struct tc_tbf_qopt plus the 64-bit rate and the burst). */
export interface TbfOptions {
  /** Rate in bytes per second (may exceed u32: sent in TCA_TBF_RATE64 then). */
  rate: number;
  /** Bytes that may wait in the queue. */
  limit: number;
  /** Bucket size in psched ticks. */
  buffer: number;
  /** Peak-rate bucket size in ticks (0 without a peak rate). */
  mtu?: number;
  /** Peak rate in bytes per second (0: none). */
  peakrate?: number;
  /** Burst in bytes; when given the kernel computes the bucket from it instead of `buffer`. */
  burst?: number;
  /** tc_ratespec.linklayer (default Ethernet). */
  linklayer?: number;
}

const U32_MAX = 0xffffffff;

/** TCA_OPTIONS content of a TBF qdisc. */
export function tbfAttrs(o: TbfOptions): AttrLike[] {
  const w = new ByteWriter(TC_TBF_QOPT_LEN);
  const linklayer = o.linklayer ?? TC_LINKLAYER_ETHERNET;
  writeRateSpec(w, { linklayer, rate: Math.min(o.rate, U32_MAX) });
  const peak = o.peakrate ?? 0;
  writeRateSpec(w, { linklayer: peak ? linklayer : 0, rate: Math.min(peak, U32_MAX) });
  w.u32(Math.min(o.limit, U32_MAX)).u32(Math.min(o.buffer, U32_MAX)).u32(o.mtu ?? 0);
  return [
    nla.bytes(TCA_TBF_PARMS, w.finish()),
    o.rate > U32_MAX && nla.u64(TCA_TBF_RATE64, BigInt(o.rate)),
    peak > U32_MAX && nla.u64(TCA_TBF_PRATE64, BigInt(peak)),
    o.burst !== undefined && nla.u32(TCA_TBF_BURST, o.burst),
  ];
}

/** A TBF qdisc's settings as the kernel reports them. */
export interface TbfInfo {
  rate: RateSpec;
  peakrate: RateSpec;
  limit: number;
  buffer: number;
  mtu: number;
  /** The rate in bytes per second, TCA_TBF_RATE64 applied. */
  rateBytes: number;
}

/** Decode a TBF qdisc's TCA_OPTIONS. */
export function decodeTbf(opts: Attrs): TbfInfo | undefined {
  const p = opts.get(TCA_TBF_PARMS);
  if (!p) return undefined;
  if (p.length < TC_TBF_QOPT_LEN) throw new MalformedMessageError(`tc_tbf_qopt of ${p.length} bytes`);
  const v = viewOf(p);
  const rate = readRateSpec(p, 0);
  const r64 = opts.u64(TCA_TBF_RATE64);
  return {
    rate,
    peakrate: readRateSpec(p, 12),
    limit: v.getUint32(24, HOST_LE),
    buffer: v.getUint32(28, HOST_LE),
    mtu: v.getUint32(32, HOST_LE),
    rateBytes: r64 !== undefined ? Number(r64) : rate.rate,
  };
}

/** A mirred action (struct tc_mirred: tc_gen, eaction, ifindex). */
export interface MirredAction {
  kind: "mirred";
  /** TCA_EGRESS_REDIR and friends. */
  eaction: number;
  /** Target device. */
  ifindex: number;
  /** Verdict after the action (TC_ACT_STOLEN for a redirect). */
  action: number;
  /** Action index (0: the kernel picks; decode). */
  index?: number;
}

/** Size of struct tc_mirred. */
export const TC_MIRRED_LEN = 28;

/** The actions nest: one nested attribute per action, numbered from 1. */
export function actionAttrs(actions: readonly MirredAction[]): AttrLike[] {
  return actions.map((a, i) => {
    const w = new ByteWriter(TC_MIRRED_LEN);
    // tc_gen: index, capab, action, refcnt, bindcnt
    w.u32(a.index ?? 0).u32(0).i32(a.action).i32(0).i32(0);
    w.i32(a.eaction).u32(a.ifindex);
    return nla.nested(i + 1, [
      nla.str(TCA_ACT_KIND, a.kind),
      nla.nested(TCA_ACT_OPTIONS, [nla.bytes(TCA_MIRRED_PARMS, w.finish())]),
    ]);
  });
}

/** Decode an actions nest (mirred actions are decoded; others keep only their kind). */
export function decodeActions(nest: Attrs): Array<MirredAction | { kind: string }> {
  const out: Array<MirredAction | { kind: string }> = [];
  for (const a of [...nest.list].sort((x, y) => x.type - y.type)) {
    const act = Attrs.parse(a.data);
    const kind = act.str(TCA_ACT_KIND) ?? "";
    const parms = kind === "mirred" ? act.nested(TCA_ACT_OPTIONS)?.get(TCA_MIRRED_PARMS) : undefined;
    if (parms && parms.length >= TC_MIRRED_LEN) {
      const v = viewOf(parms);
      out.push({
        kind: "mirred",
        index: v.getUint32(0, HOST_LE),
        action: v.getInt32(8, HOST_LE),
        eaction: v.getInt32(20, HOST_LE),
        ifindex: v.getUint32(24, HOST_LE),
      });
    } else {
      out.push({ kind });
    }
  }
  return out;
}

/** One key of a u32 selector (struct tc_u32_key); mask and value in network order. */
export interface U32Key {
  mask: number;
  value: number;
  off: number;
  offmask?: number;
}

/** A u32 filter's options. */
export interface U32Options {
  /** Keys to match; none means "match everything" (one all-zero key, as tc and netlink libraries do). */
  keys?: readonly U32Key[];
  /** Flow id (a class handle such as 1:1), 0: none. */
  classid?: number;
  actions?: readonly MirredAction[];
}

/** Size of struct tc_u32_sel without its keys. */
export const TC_U32_SEL_LEN = 16;

/** TCA_OPTIONS content of a u32 filter. */
export function u32Attrs(o: U32Options): AttrLike[] {
  const keys = o.keys && o.keys.length > 0 ? o.keys : [{ mask: 0, value: 0, off: 0 }];
  const w = new ByteWriter(TC_U32_SEL_LEN + 16 * keys.length);
  // flags, offshift, nkeys, pad; offmask (be16), off, offoff, hoff; hmask (be32)
  w.u8(TC_U32_TERMINAL).u8(0).u8(keys.length).u8(0);
  w.u16be(0).u16(0).u16(0).u16(0).u32(0);
  for (const k of keys) {
    const kb = new Uint8Array(8);
    const kv = viewOf(kb);
    kv.setUint32(0, k.mask >>> 0, false);
    kv.setUint32(4, k.value >>> 0, false);
    w.bytes(kb).i32(k.off).i32(k.offmask ?? 0);
  }
  return [
    o.classid ? nla.u32(TCA_U32_CLASSID, o.classid) : false,
    nla.bytes(TCA_U32_SEL, w.finish()),
    o.actions && o.actions.length > 0 && nla.nested(TCA_U32_ACT, actionAttrs(o.actions)),
  ];
}

/** A matchall filter's options. */
export interface MatchallOptions {
  classid?: number;
  /** TCA_CLS_FLAGS_* (skip_hw, skip_sw). */
  flags?: number;
  actions?: readonly MirredAction[];
}

/** TCA_OPTIONS content of a matchall filter. */
export function matchallAttrs(o: MatchallOptions): AttrLike[] {
  return [
    o.classid ? nla.u32(TCA_MATCHALL_CLASSID, o.classid) : false,
    o.flags !== undefined && nla.u32(TCA_MATCHALL_FLAGS, o.flags),
    o.actions && o.actions.length > 0 && nla.nested(TCA_MATCHALL_ACT, actionAttrs(o.actions)),
  ];
}

/** A qdisc to create: its header and kind with options. */
export type QdiscSpec =
  | { kind: "tbf"; tbf: TbfOptions }
  | { kind: "ingress" }
  | { kind: string; options?: readonly AttrLike[] };

/** Body of RTM_NEWQDISC / RTM_DELQDISC: tcmsg, TCA_KIND, TCA_OPTIONS. */
export function encodeQdisc(h: TcHeader, q: QdiscSpec): Uint8Array {
  let options: readonly AttrLike[] | undefined;
  if (q.kind === "tbf" && "tbf" in q) options = tbfAttrs(q.tbf);
  else if ("options" in q) options = q.options;
  return encodeTc(h, [nla.str(TCA_KIND, q.kind), options && nla.nested(TCA_OPTIONS, options)]);
}

/** A filter to create. */
export type FilterSpec =
  | { kind: "u32"; u32: U32Options }
  | { kind: "matchall"; matchall: MatchallOptions };

/** Body of RTM_NEWTFILTER: tcmsg (info = prio, protocol), TCA_KIND, TCA_OPTIONS. */
export function encodeFilter(h: TcHeader & { prio: number; protocol: number }, f: FilterSpec): Uint8Array {
  const options = f.kind === "u32" ? u32Attrs(f.u32) : matchallAttrs(f.matchall);
  return encodeTc(
    { ifindex: h.ifindex, handle: h.handle ?? 0, parent: h.parent ?? 0, info: filterInfo(h.prio, h.protocol), family: h.family ?? 0 },
    [nla.str(TCA_KIND, f.kind), nla.nested(TCA_OPTIONS, options)],
  );
}

/** A decoded qdisc or filter message. */
export interface TcObject {
  family: number;
  ifindex: number;
  handle: number;
  parent: number;
  info: number;
  kind: string;
  /** TBF settings, for a tbf qdisc. */
  tbf?: TbfInfo;
  /** Filters: priority (from info). */
  prio?: number;
  /** Filters: protocol, host order (from info). */
  protocol?: number;
  /** Filters: flow id. */
  classid?: number;
  /** Filters: actions. */
  actions?: Array<MirredAction | { kind: string }>;
  /** u32 filters: whether a selector is present (hash-table entries have none). */
  hasSelector?: boolean;
  /** The raw TCA_OPTIONS payload. */
  options?: Uint8Array;
}

/** Decode a qdisc or filter message body (dumps and replies). */
export function decodeTc(body: Uint8Array): TcObject {
  if (body.length < TCMSG_LEN) throw new MalformedMessageError(`tcmsg of ${body.length} bytes`);
  const v = viewOf(body);
  const a = Attrs.parse(body.subarray(TCMSG_LEN));
  const out: TcObject = {
    family: v.getUint8(0),
    ifindex: v.getInt32(4, HOST_LE),
    handle: v.getUint32(8, HOST_LE),
    parent: v.getUint32(12, HOST_LE),
    info: v.getUint32(16, HOST_LE),
    kind: a.str(TCA_KIND) ?? "",
  };
  const raw = a.get(TCA_OPTIONS);
  if (!raw) return out;
  out.options = raw.slice();
  const o = Attrs.parse(raw);
  switch (out.kind) {
    case "tbf": {
      const t = decodeTbf(o);
      if (t) out.tbf = t;
      break;
    }
    case "u32": {
      const cls = o.u32(TCA_U32_CLASSID);
      if (cls !== undefined) out.classid = cls;
      out.hasSelector = o.has(TCA_U32_SEL);
      const acts = o.nested(TCA_U32_ACT);
      if (acts) out.actions = decodeActions(acts);
      break;
    }
    case "matchall": {
      const cls = o.u32(TCA_MATCHALL_CLASSID);
      if (cls !== undefined) out.classid = cls;
      const acts = o.nested(TCA_MATCHALL_ACT);
      if (acts) out.actions = decodeActions(acts);
      break;
    }
  }
  return out;
}

/** Split a filter's tcm_info into priority and (host-order) protocol. */
export function splitFilterInfo(info: number): { prio: number; protocol: number } {
  const p = info & 0xffff;
  return { prio: info >>> 16, protocol: HOST_LE ? ((p & 0xff) << 8) | (p >> 8) : p };
}

/** Microseconds per second, tc's TIME_UNITS_PER_SEC. */
export const TIME_UNITS_PER_SEC = 1_000_000;

/** The psched clock, from /proc/net/psched: how many ticks make a microsecond. */
export interface PschedClock {
  /** Ticks per microsecond (15.625 on current kernels: a tick is 64 ns). */
  tickInUsec: number;
}

/** Parse /proc/net/psched the way iproute2's tc_core_init does. */
export function parsePsched(text: string): PschedClock {
  const f = text.trim().split(/\s+/).map((x) => parseInt(x, 16));
  if (f.length < 3 || f.slice(0, 3).some((x) => !Number.isFinite(x) || x <= 0)) {
    throw new MalformedMessageError(`unexpected /proc/net/psched: ${JSON.stringify(text)}`);
  }
  let [t2us, us2t, clockRes] = f as [number, number, number];
  // iproute2's compatibility rule: nanosecond resolution advertises a multiplier of 1000 meaning 1
  if (clockRes === 1_000_000_000) t2us = us2t;
  const clockFactor = clockRes / TIME_UNITS_PER_SEC;
  return { tickInUsec: (t2us / us2t) * clockFactor };
}

/** Microseconds to psched ticks (tc_core_time2tick), truncated to u32 like the reference. */
export function time2tick(usec: number, clock: PschedClock): number {
  return Math.floor(usec * clock.tickInUsec);
}

/** Psched ticks to microseconds (tc_core_tick2time). */
export function tick2time(ticks: number, clock: PschedClock): number {
  return ticks / clock.tickInUsec;
}
