/**
 * tcx (Linux 6.6+): programs on a device's tc ingress or egress hook, attached by `bpf()` itself
 * (BPF_PROG_ATTACH with the device's ifindex): no qdisc and no filter. An attachment stays until it
 * is detached or its device goes, whichever process made it, and runs before any cls_bpf filter.
 *
 * cnikit attaches this way only when asked (`attachHook`'s "tcx"): an attach waits for an RCU grace
 * period under the rtnl lock, which made a pod's ADD ~11 ms slower than a cls_bpf filter on kernels
 * without rcu_expedited (see tc.ts). Listing and detaching also cover the pod programs some earlier
 * versions attached this way; the kernel drops an attachment with its device, so DEL leaves it to
 * the veth's delete. Kernels without tcx refuse with EINVAL. cnikit's tcx programs are known by
 * their program names, which start with `cnikit_`.
 */

import { toHex } from "../netlink/bytes.ts";
import type { TcDirection } from "../netlink/tc-bpf.ts";
import { Errno } from "../sys/errno.ts";
import { SysError } from "../sys/error.ts";
import { Attr, closeFd, Cmd, fdById, objInfo, readName } from "./attr.ts";

/** BPF_TCX_INGRESS and BPF_TCX_EGRESS (enum bpf_attach_type). */
const ATTACH_TYPE: Record<TcDirection, number> = { ingress: 46, egress: 47 };
/** The prefix of the names of cnikit's programs. */
export const CNIKIT_PROG_PREFIX = "cnikit_";

/** Whether an error is the kernel's refusal of tcx itself (an older kernel): fall back to cls_bpf. */
export function isNoTcx(err: unknown): boolean {
  return err instanceof SysError && err.errno === Errno.EINVAL;
}

const where = (ifindex: number, direction: TcDirection) => `tcx ${direction} of ifindex ${ifindex}`;

/** The ids of the programs on a device's tcx hook, in the order they run; null when the kernel has no tcx. */
export function queryTcx(ifindex: number, direction: TcDirection): number[] | null {
  const ids = new Uint32Array(64);
  const a = new Attr().u32(0, ifindex).u32(4, ATTACH_TYPE[direction]).ptr(16, new Uint8Array(ids.buffer)).u32(24, ids.length);
  try {
    a.call(Cmd.PROG_QUERY, where(ifindex, direction));
  } catch (err) {
    if (isNoTcx(err)) return null;
    throw err;
  }
  return [...ids.subarray(0, a.getU32(24))];
}

/** A program's name and tag (hex) from its descriptor. */
function nameTagOf(fd: number, id: number): { name: string; tag: string } {
  // struct bpf_prog_info: type @0, id @4, tag[8] @8, ..., name[16] @64
  const info = new Attr(232);
  objInfo(fd, info, `program id ${id}`);
  return { name: readName(info.buf, 64), tag: toHex(info.buf.subarray(8, 16)) };
}

/** Run `fn` on a descriptor of program `id`; null when the program went away meanwhile. */
function withProgram<T>(id: number, fn: (fd: number) => T): T | null {
  let fd: number;
  try {
    fd = fdById(Cmd.PROG_GET_FD_BY_ID, id, "program");
  } catch (err) {
    if (err instanceof SysError && err.errno === Errno.ENOENT) return null;
    throw err;
  }
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

/** A program's name and tag (hex) by kernel id; null when it went away meanwhile. */
export function programNameTag(id: number): { name: string; tag: string } | null {
  return withProgram(id, (fd) => nameTagOf(fd, id));
}

/**
 * Attach `prog` to a device's tcx hook as cnikit's program there: attaching a program that is
 * already on the hook is no error, and another cnikit program on it (an older version) is taken
 * off once the new one runs, so traffic has no gap. Throws EINVAL (`isNoTcx`) on a kernel
 * without tcx.
 */
export function attachTcx(ifindex: number, direction: TcDirection, prog: { fd: number; id: number }): void {
  try {
    new Attr().u32(0, ifindex).u32(4, prog.fd).u32(8, ATTACH_TYPE[direction]).call(Cmd.PROG_ATTACH, where(ifindex, direction));
  } catch (err) {
    if (!(err instanceof SysError && err.errno === Errno.EEXIST)) throw err;
  }
  detachOwnTcx(ifindex, direction, prog.id);
}

/** Detach the program behind `fd` from a device's tcx hook; false when it was not on it (or the device is gone). */
function detachTcxFd(ifindex: number, direction: TcDirection, fd: number): boolean {
  try {
    new Attr().u32(0, ifindex).u32(4, fd).u32(8, ATTACH_TYPE[direction]).call(Cmd.PROG_DETACH, where(ifindex, direction));
    return true;
  } catch (err) {
    if (err instanceof SysError && (err.errno === Errno.ENOENT || err.errno === Errno.ENODEV)) return false;
    throw err;
  }
}

/**
 * Take cnikit's programs off a device's tcx hook, all but the one with id `keep`; returns how many
 * went (0 for a device that is gone, or a kernel without tcx). Other tools' programs stay.
 */
export function detachOwnTcx(ifindex: number, direction: TcDirection, keep?: number): number {
  let ids: number[] | null;
  try {
    ids = queryTcx(ifindex, direction);
  } catch (err) {
    if (err instanceof SysError && err.errno === Errno.ENODEV) return 0;
    throw err;
  }
  let removed = 0;
  for (const id of ids ?? []) {
    if (id === keep) continue;
    const gone = withProgram(id, (fd) => {
      return nameTagOf(fd, id).name.startsWith(CNIKIT_PROG_PREFIX) && detachTcxFd(ifindex, direction, fd);
    });
    if (gone) removed++;
  }
  return removed;
}
