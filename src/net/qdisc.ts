/**
 * Qdiscs and filters: add a TBF (token bucket) or ingress qdisc, redirect a device's incoming
 * traffic to another device (u32 match-all + mirred), list and delete them; and the psched clock
 * TBF's buffer is counted in.
 */

import { readText } from "../sys/file.ts";
import { Errno } from "../sys/errno.ts";
import { type NetlinkConn } from "../netlink/conn.ts";
import { isNotFound } from "../netlink/error.ts";
import { NLM_F_CREATE, NLM_F_EXCL } from "../netlink/message.ts";
import { RTM_DELQDISC, RTM_GETQDISC, RTM_NEWQDISC } from "../netlink/rtnl.ts";
import {
  decodeTc,
  encodeFilter,
  encodeQdisc,
  encodeTc,
  ETH_P_ALL,
  parsePsched,
  type PschedClock,
  RTM_GETTFILTER,
  RTM_NEWTFILTER,
  TC_ACT_STOLEN,
  TC_H_INGRESS,
  TC_H_ROOT,
  TCA_EGRESS_REDIR,
  type TbfOptions,
  type TcObject,
  tcHandle,
} from "../netlink/tc.ts";

/** Handle of the ingress qdisc ("ffff:"). */
export const INGRESS_HANDLE = tcHandle(0xffff, 0);

let clock: PschedClock | undefined;

/** The kernel's psched clock (read once from /proc/net/psched). */
export function pschedClock(): PschedClock {
  clock ??= parsePsched(readText("/proc/net/psched"));
  return clock;
}

/** Add a root TBF qdisc (handle `handle`, default 1:) to a device; EEXIST when it has one. */
export function addTbf(conn: NetlinkConn, ifindex: number, tbf: TbfOptions, opts: { handle?: number } = {}): void {
  conn.request(
    RTM_NEWQDISC,
    encodeQdisc({ ifindex, handle: opts.handle ?? tcHandle(1, 0), parent: TC_H_ROOT }, { kind: "tbf", tbf }),
    { flags: NLM_F_CREATE | NLM_F_EXCL },
  );
}

/** Add the ingress qdisc (ffff:) to a device; EEXIST when it has one. */
export function addIngressQdisc(conn: NetlinkConn, ifindex: number): void {
  conn.request(
    RTM_NEWQDISC,
    encodeQdisc({ ifindex, handle: INGRESS_HANDLE, parent: TC_H_INGRESS }, { kind: "ingress" }),
    { flags: NLM_F_CREATE | NLM_F_EXCL },
  );
}

/** Options of `addRedirectFilter`. */
export interface RedirectOptions {
  /** Device whose ingress qdisc gets the filter. */
  from: number;
  /** Device the packets are redirected to (out of its egress). */
  to: number;
  /** Filter priority (default 1). */
  prio?: number;
  /** Flow id to tag packets with (default 1:1, as the reference). */
  classid?: number;
  /** u32 with an all-zero key (default, as the reference) or matchall. */
  kind?: "u32" | "matchall";
}

/**
 * On the ingress qdisc of `from`, a filter matching every packet whose mirred action redirects it
 * to the egress of `to` (as `tc filter add dev FROM parent ffff: protocol all u32 match u32 0 0
 * flowid 1:1 action mirred egress redirect dev TO`).
 */
export function addRedirectFilter(conn: NetlinkConn, o: RedirectOptions): void {
  const actions = [{ kind: "mirred" as const, eaction: TCA_EGRESS_REDIR, ifindex: o.to, action: TC_ACT_STOLEN }];
  const classid = o.classid ?? tcHandle(1, 1);
  conn.request(
    RTM_NEWTFILTER,
    encodeFilter(
      { ifindex: o.from, parent: INGRESS_HANDLE, prio: o.prio ?? 1, protocol: ETH_P_ALL },
      o.kind === "matchall" ? { kind: "matchall", matchall: { classid, actions } } : { kind: "u32", u32: { classid, actions } },
    ),
    { flags: NLM_F_CREATE | NLM_F_EXCL },
  );
}

/** The qdiscs of a device (every device without `ifindex`), defaults included. */
export function listQdiscs(conn: NetlinkConn, ifindex?: number): TcObject[] {
  const all = conn.dump(RTM_GETQDISC, encodeTc({ ifindex: 0 })).map((m) => decodeTc(m.body));
  return ifindex === undefined ? all : all.filter((q) => q.ifindex === ifindex);
}

/** The filters attached to `parent` (a qdisc handle) of a device. */
export function listFilters(conn: NetlinkConn, ifindex: number, parent: number): TcObject[] {
  return conn.dump(RTM_GETTFILTER, encodeTc({ ifindex, parent })).map((m) => decodeTc(m.body));
}

/**
 * Delete the qdisc of a device at `parent` (TC_H_ROOT or TC_H_INGRESS); its filters go with it.
 * Returns false when there was none (deleting the default root qdisc also reports "not found").
 */
export function deleteQdisc(conn: NetlinkConn, ifindex: number, parent: number): boolean {
  const handle = parent === TC_H_INGRESS ? INGRESS_HANDLE : 0;
  try {
    conn.request(RTM_DELQDISC, encodeTc({ ifindex, parent, handle }));
    return true;
  } catch (err) {
    if (isNotFound(err) || (err as { errno?: number }).errno === Errno.EINVAL) return false;
    throw err;
  }
}
