/**
 * Attaching programs to devices with tc: the clsact qdisc and a `cls_bpf` direct-action filter
 * per hook. cnikit's filters carry a name starting with `cnikit-` (TCA_BPF_NAME), which is how
 * they are listed and removed as cnikit's own while other tools' filters are left alone. Listing
 * and removal also cover programs on the tcx hooks (tcx.ts), cnikit's known by their program names.
 */

import { type NetlinkConn } from "../netlink/conn.ts";
import { isExists, isNotFound } from "../netlink/error.ts";
import { decodeLink, encodeLink, RTEXT_FILTER_SKIP_STATS } from "../netlink/link.ts";
import { NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE } from "../netlink/message.ts";
import { RTM_DELQDISC, RTM_GETLINK, RTM_NEWQDISC } from "../netlink/rtnl.ts";
import { decodeTc, encodeTc, RTM_DELTFILTER, RTM_GETTFILTER, RTM_NEWTFILTER } from "../netlink/tc.ts";
import {
  clsactDirection,
  clsactParent,
  decodeBpfFilter,
  encodeBpfFilter,
  encodeClsact,
  encodeFilterRef,
  type TcDirection,
} from "../netlink/tc-bpf.ts";
import { Errno } from "../sys/errno.ts";
import { withNetns } from "../sys/netns.ts";
import { attachTcx, CNIKIT_PROG_PREFIX, detachOwnTcx, programNameTag, queryTcx } from "./tcx.ts";

/** The TCA_BPF_NAME prefix of every filter cnikit attaches. */
export const CNIKIT_FILTER_PREFIX = "cnikit-";

/** Add the clsact qdisc to a device; false when it already has one. */
export function ensureClsact(conn: NetlinkConn, ifindex: number): boolean {
  try {
    conn.request(RTM_NEWQDISC, encodeClsact(ifindex), { flags: NLM_F_CREATE | NLM_F_EXCL });
    return true;
  } catch (err) {
    if (isExists(err)) return false;
    throw err;
  }
}

/** Remove a device's clsact qdisc with every filter on it; false when there was none. */
export function removeClsact(conn: NetlinkConn, ifindex: number): boolean {
  try {
    conn.request(RTM_DELQDISC, encodeClsact(ifindex));
    return true;
  } catch (err) {
    if (isNotFound(err) || (err as { errno?: number }).errno === Errno.EINVAL) return false;
    throw err;
  }
}

/** What `attachTc` attaches. */
export interface TcAttach {
  ifindex: number;
  direction: TcDirection;
  /** A loaded SCHED_CLS program (its descriptor). */
  prog: { fd: number };
  /** The filter's name after `cnikit-` ("pod" makes "cnikit-pod"). */
  name: string;
  /** Filter priority (default 1) and handle (default 1): one cnikit program per hook at these. */
  prio?: number;
  handle?: number;
}

/**
 * Attach a program to a device's clsact hook as a direct-action cls_bpf filter, adding clsact
 * when missing. A filter already at the same priority and handle is replaced in one step, so a
 * new program takes over without a gap. A clsact added here goes again when the filter fails.
 */
export function attachTc(conn: NetlinkConn, a: TcAttach): void {
  const added = ensureClsact(conn, a.ifindex);
  try {
    conn.request(
      RTM_NEWTFILTER,
      encodeBpfFilter({ ifindex: a.ifindex, direction: a.direction, fd: a.prog.fd, name: `${CNIKIT_FILTER_PREFIX}${a.name}`, prio: a.prio ?? 1, handle: a.handle ?? 1 }),
      { flags: NLM_F_CREATE | NLM_F_REPLACE },
    );
  } catch (err) {
    if (added) removeClsact(conn, a.ifindex);
    throw err;
  }
}

/** Run `fn` (tcx's `bpf()` calls, which name devices of the caller's namespace) in `conn`'s namespace. */
function inNetnsOf<T>(conn: NetlinkConn, fn: () => T): T {
  return conn.netns === undefined ? fn() : withNetns(conn.netns, fn);
}

/** How a program is on a device's hook: a tcx attachment or a cls_bpf filter. */
export type Hook = "tcx" | "tc";

/**
 * Attach a program as cnikit's on a device's hook: as the cls_bpf filter `attachTc` makes
 * (the default), or with tcx (tcx.ts, Linux 6.6+) when `hook` asks for it. Not tcx by default:
 * a tcx attach waits for an RCU grace period under the rtnl lock (the kernel's tcx_entry_sync),
 * which on a kernel without rcu_expedited (the default) cost an overlay ADD ~11 ms of its ~20
 * (medians of 40, Linux 6.18), where the filter cost ~1 ms. Returns which it used.
 */
export function attachHook(conn: NetlinkConn, a: TcAttach & { prog: { fd: number; id: number } }, hook: Hook = "tc"): Hook {
  if (hook === "tcx") inNetnsOf(conn, () => attachTcx(a.ifindex, a.direction, a.prog));
  else attachTc(conn, a);
  return hook;
}

/** One program on a device's tc hook: a cls_bpf filter, or a tcx attachment. */
export interface TcProgram {
  ifindex: number;
  /** The device's name (when listed over every device). */
  ifname?: string;
  direction: TcDirection;
  prio: number;
  handle: number;
  /** TCA_BPF_NAME ("cnikit-pod"); for a tcx attachment the program's name ("cnikit_pod"). */
  name: string;
  progId?: number;
  tag?: string;
  directAction: boolean;
  /** Attached with tcx (no filter: `prio` is its place in the hook's order, from 1; `handle` is 0). */
  tcx?: true;
}

/** Options of `listTc`. */
export interface ListTcOptions {
  /** Only this device (default: every device of the connection's namespace). */
  ifindex?: number;
  /** Other tools' filters too (default: only cnikit's). */
  all?: boolean;
}

function deviceNames(conn: NetlinkConn): Map<number, string> {
  const out = new Map<number, string>();
  for (const m of conn.dump(RTM_GETLINK, encodeLink({ extMask: RTEXT_FILTER_SKIP_STATS }))) {
    const l = decodeLink(m.body);
    if (l.index !== undefined) out.set(l.index, l.name ?? "");
  }
  return out;
}

function deviceName(conn: NetlinkConn, ifindex: number): Map<number, string> {
  try {
    const [m] = conn.request(RTM_GETLINK, encodeLink({ index: ifindex, extMask: RTEXT_FILTER_SKIP_STATS }));
    const name = m ? decodeLink(m.body).name : undefined;
    return new Map(name ? [[ifindex, name]] : []);
  } catch (err) {
    if (isNotFound(err)) return new Map();
    throw err;
  }
}

/** The programs on a device's tcx hook (cnikit's unless `all`); [] on a kernel without tcx. */
function listTcx(ifindex: number, direction: TcDirection, all: boolean): TcProgram[] {
  let ids: number[] | null;
  try {
    ids = queryTcx(ifindex, direction);
  } catch (err) {
    if ((err as { errno?: number }).errno === Errno.ENODEV) return []; // the device went away meanwhile
    throw err;
  }
  const out: TcProgram[] = [];
  for (const [i, progId] of (ids ?? []).entries()) {
    const p = programNameTag(progId);
    if (!p || (!all && !p.name.startsWith(CNIKIT_PROG_PREFIX))) continue;
    out.push({ ifindex, direction, prio: i + 1, handle: 0, name: p.name, progId, tag: p.tag, directAction: true, tcx: true });
  }
  return out;
}

/** The programs on devices' tc hooks: tcx attachments, then cls_bpf filters on clsact (cnikit's unless `all`). */
export function listTc(conn: NetlinkConn, opts: ListTcOptions = {}): TcProgram[] {
  // one device: its name alone (a dump of every link costs O(links), and a node has many)
  const names = opts.ifindex !== undefined ? deviceName(conn, opts.ifindex) : deviceNames(conn);
  const devices = opts.ifindex !== undefined ? [opts.ifindex] : [...names.keys()];
  const out: TcProgram[] = [];
  for (const ifindex of devices) {
    for (const direction of ["ingress", "egress"] as const) {
      for (const t of inNetnsOf(conn, () => listTcx(ifindex, direction, opts.all === true))) {
        const ifname = names.get(ifindex);
        out.push(ifname ? { ...t, ifname } : t);
      }
      let filters;
      try {
        filters = conn.dump(RTM_GETTFILTER, encodeTc({ ifindex, parent: clsactParent(direction) }));
      } catch (err) {
        // no clsact on the device (EINVAL), or the device went away meanwhile
        if (isNotFound(err) || (err as { errno?: number }).errno === Errno.EINVAL) continue;
        throw err;
      }
      for (const m of filters) {
        const t = decodeTc(m.body);
        const bpf = decodeBpfFilter(t);
        if (!bpf || t.handle === 0 || clsactDirection(t.parent) !== direction) continue;
        if (!opts.all && !bpf.name.startsWith(CNIKIT_FILTER_PREFIX)) continue;
        const item: TcProgram = { ifindex, direction, prio: t.info >>> 16, handle: t.handle, ...bpf };
        const ifname = names.get(ifindex);
        if (ifname) item.ifname = ifname;
        out.push(item);
      }
    }
  }
  return out;
}

/**
 * Remove cnikit's programs from a device (one hook, or both): its tcx attachments and its filters,
 * and the clsact qdisc when no filter of anyone is left on it. Returns how many were removed.
 */
export function detachTc(conn: NetlinkConn, ifindex: number, opts: { direction?: TcDirection } = {}): number {
  let removed = 0;
  for (const direction of ["ingress", "egress"] as const) {
    if (!opts.direction || opts.direction === direction) removed += inNetnsOf(conn, () => detachOwnTcx(ifindex, direction));
  }
  for (const f of listTc(conn, { ifindex })) {
    if (f.tcx || (opts.direction && f.direction !== opts.direction)) continue;
    try {
      conn.request(RTM_DELTFILTER, encodeFilterRef({ ifindex, direction: f.direction, prio: f.prio, handle: f.handle }));
      removed++;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  const left = (["ingress", "egress"] as const).some((direction) => {
    try {
      return conn.dump(RTM_GETTFILTER, encodeTc({ ifindex, parent: clsactParent(direction) })).length > 0;
    } catch {
      return false;
    }
  });
  if (!left) removeClsact(conn, ifindex);
  return removed;
}
