/**
 * Attaching programs to devices with tc: the clsact qdisc and a `cls_bpf` direct-action filter
 * per hook. cnikit's filters carry a name starting with `cnikit-` (TCA_BPF_NAME), which is how
 * they are listed and removed as cnikit's own while other tools' filters are left alone.
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
 * new program takes over without a gap.
 */
export function attachTc(conn: NetlinkConn, a: TcAttach): void {
  ensureClsact(conn, a.ifindex);
  conn.request(
    RTM_NEWTFILTER,
    encodeBpfFilter({ ifindex: a.ifindex, direction: a.direction, fd: a.prog.fd, name: `${CNIKIT_FILTER_PREFIX}${a.name}`, prio: a.prio ?? 1, handle: a.handle ?? 1 }),
    { flags: NLM_F_CREATE | NLM_F_REPLACE },
  );
}

/** One attached cls_bpf filter. */
export interface TcProgram {
  ifindex: number;
  /** The device's name (when listed over every device). */
  ifname?: string;
  direction: TcDirection;
  prio: number;
  handle: number;
  /** TCA_BPF_NAME ("cnikit-pod"). */
  name: string;
  progId?: number;
  tag?: string;
  directAction: boolean;
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

/** The cls_bpf filters on clsact hooks (cnikit's unless `all`). */
export function listTc(conn: NetlinkConn, opts: ListTcOptions = {}): TcProgram[] {
  // one device: its name alone (a dump of every link costs O(links), and a node has many)
  const names = opts.ifindex !== undefined ? deviceName(conn, opts.ifindex) : deviceNames(conn);
  const devices = opts.ifindex !== undefined ? [opts.ifindex] : [...names.keys()];
  const out: TcProgram[] = [];
  for (const ifindex of devices) {
    for (const direction of ["ingress", "egress"] as const) {
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
 * Remove cnikit's filters from a device (one hook, or both), and the clsact qdisc when no filter
 * of anyone is left on it. Returns how many filters were removed.
 */
export function detachTc(conn: NetlinkConn, ifindex: number, opts: { direction?: TcDirection } = {}): number {
  let removed = 0;
  for (const f of listTc(conn, { ifindex })) {
    if (opts.direction && f.direction !== opts.direction) continue;
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
