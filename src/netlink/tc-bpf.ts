/**
 * rtnetlink encoding of eBPF traffic control: the clsact qdisc (a device's ingress and egress
 * hooks for classifiers) and `cls_bpf` filters that run a loaded program in direct-action mode
 * (the program's return value is the verdict), with their TCA_BPF_* attributes decoded from dumps.
 */

import { type AttrLike, Attrs, nla } from "./attr.ts";
import { toHex } from "./bytes.ts";
import { encodeQdisc, encodeTc, ETH_P_ALL, filterInfo, TC_H_INGRESS, type TcObject, TCA_KIND, TCA_OPTIONS, tcHandle } from "./tc.ts";

/** The clsact qdisc's parent (the same value as the ingress qdisc's). */
export const TC_H_CLSACT = TC_H_INGRESS;
/** The clsact qdisc's handle, "ffff:". */
export const CLSACT_HANDLE = tcHandle(0xffff, 0);
/** Parent of filters on clsact's ingress hook ("ffff:fff2"). */
export const CLSACT_INGRESS = tcHandle(0xffff, 0xfff2);
/** Parent of filters on clsact's egress hook ("ffff:fff3"). */
export const CLSACT_EGRESS = tcHandle(0xffff, 0xfff3);

/** cls_bpf option: actions, nested. */
export const TCA_BPF_ACT = 1;
/** cls_bpf option: flow id, u32. */
export const TCA_BPF_CLASSID = 3;
/** cls_bpf option: the program's descriptor, u32. */
export const TCA_BPF_FD = 6;
/** cls_bpf option: a name for the program (free text; cnikit marks its own with it), string. */
export const TCA_BPF_NAME = 7;
/** cls_bpf option: TCA_BPF_FLAG_*, u32. */
export const TCA_BPF_FLAGS = 8;
/** cls_bpf option: TCA_CLS_FLAGS_* (skip_hw, skip_sw), u32. */
export const TCA_BPF_FLAGS_GEN = 9;
/** cls_bpf option (dumps): the program's tag, 8 bytes. */
export const TCA_BPF_TAG = 10;
/** cls_bpf option (dumps): the program's id, u32. */
export const TCA_BPF_ID = 11;
/** cls_bpf flag: direct action, the program's return value is the verdict. */
export const TCA_BPF_FLAG_ACT_DIRECT = 1;

/** Which clsact hook: traffic a device receives or sends. */
export type TcDirection = "ingress" | "egress";

/** The filter parent of a clsact hook. */
export function clsactParent(direction: TcDirection): number {
  return direction === "ingress" ? CLSACT_INGRESS : CLSACT_EGRESS;
}

/** Body of RTM_NEWQDISC / RTM_DELQDISC for the clsact qdisc of a device. */
export function encodeClsact(ifindex: number): Uint8Array {
  return encodeQdisc({ ifindex, handle: CLSACT_HANDLE, parent: TC_H_CLSACT }, { kind: "clsact" });
}

/** A cls_bpf filter to add. */
export interface BpfFilter {
  ifindex: number;
  direction: TcDirection;
  /** A loaded SCHED_CLS program's descriptor. */
  fd: number;
  /** TCA_BPF_NAME. */
  name: string;
  /** Filter priority (default 1). */
  prio?: number;
  /** Filter handle (default 1). */
  handle?: number;
  /** Direct action (default true). */
  directAction?: boolean;
  /** Protocol the filter sees (default ETH_P_ALL). */
  protocol?: number;
}

/** TCA_OPTIONS content of a cls_bpf filter. */
export function bpfFilterAttrs(f: Pick<BpfFilter, "fd" | "name" | "directAction">): AttrLike[] {
  return [
    nla.u32(TCA_BPF_FD, f.fd),
    nla.str(TCA_BPF_NAME, f.name),
    nla.u32(TCA_BPF_FLAGS, f.directAction === false ? 0 : TCA_BPF_FLAG_ACT_DIRECT),
  ];
}

/** Body of RTM_NEWTFILTER for a cls_bpf filter on a clsact hook. */
export function encodeBpfFilter(f: BpfFilter): Uint8Array {
  return encodeTc(
    {
      ifindex: f.ifindex,
      handle: f.handle ?? 1,
      parent: clsactParent(f.direction),
      info: filterInfo(f.prio ?? 1, f.protocol ?? ETH_P_ALL),
    },
    [nla.str(TCA_KIND, "bpf"), nla.nested(TCA_OPTIONS, bpfFilterAttrs(f))],
  );
}

/** Body of RTM_DELTFILTER for one filter (by priority and handle), or every filter of a hook without `prio`. */
export function encodeFilterRef(r: { ifindex: number; direction: TcDirection; prio?: number; handle?: number; protocol?: number }): Uint8Array {
  const info = r.prio === undefined ? 0 : filterInfo(r.prio, r.protocol ?? ETH_P_ALL);
  return encodeTc({ ifindex: r.ifindex, parent: clsactParent(r.direction), handle: r.prio === undefined ? 0 : (r.handle ?? 1), info });
}

/** What a dump says about a cls_bpf filter. */
export interface BpfFilterInfo {
  /** TCA_BPF_NAME. */
  name: string;
  /** The attached program's id. */
  progId?: number;
  /** The program's tag, hex. */
  tag?: string;
  directAction: boolean;
}

/** The cls_bpf details of a decoded filter (undefined for another kind or a filter without options). */
export function decodeBpfFilter(t: TcObject): BpfFilterInfo | undefined {
  if (t.kind !== "bpf" || !t.options) return undefined;
  const o = Attrs.parse(t.options);
  const tag = o.get(TCA_BPF_TAG);
  const flags = o.u32(TCA_BPF_FLAGS) ?? 0;
  const out: BpfFilterInfo = { name: o.str(TCA_BPF_NAME) ?? "", directAction: (flags & TCA_BPF_FLAG_ACT_DIRECT) !== 0 };
  const id = o.u32(TCA_BPF_ID);
  if (id !== undefined) out.progId = id;
  if (tag) out.tag = toHex(tag);
  return out;
}

/** The hook a filter of a clsact qdisc sits on, from its parent (undefined for another parent). */
export function clsactDirection(parent: number): TcDirection | undefined {
  if (parent === CLSACT_INGRESS) return "ingress";
  if (parent === CLSACT_EGRESS) return "egress";
  return undefined;
}
