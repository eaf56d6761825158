/**
 * The `bpf()` system call and the bpf filesystem over `bun:ffi`: the raw call (a command and its
 * `union bpf_attr` as bytes), addresses of buffers for the attr's pointer fields, and mounting,
 * recognising and unmounting a bpffs. Everything above it (src/bpf) builds the attrs as plain bytes.
 */

import { dlopen, FFIType, ptr } from "bun:ffi";
import { Errno } from "./errno.ts";
import { SysError } from "./error.ts";
import { check, errno } from "./libc.ts";

const { i32, i64, u32, u64 } = FFIType;

/** x86-64 and arm64 numbers of the bpf system call. */
const SYS_BPF: Record<string, number> = { x64: 321, arm64: 280 };
/** statfs f_type of a bpf filesystem. */
export const BPF_FS_MAGIC = 0xcafe4a11;
const MNT_DETACH = 2;

// Two sets, each bound on first use: every bpf() user needs `syscall`, only set-up and clean-up
// need the rest (binding 5 symbols costs ~0.35 ms of a plugin's start, 1 symbol ~0.05 ms)
const CALL = { syscall: { args: [i64, i32, FFIType.ptr, u32], returns: i64 } } as const;
const FS = {
  mount: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, u64, FFIType.ptr], returns: i32 },
  umount2: { args: [FFIType.ptr, i32], returns: i32 },
  statfs: { args: [FFIType.ptr, FFIType.ptr], returns: i32 },
  rmdir: { args: [FFIType.ptr], returns: i32 },
} as const;

let call: ReturnType<typeof dlopen<typeof CALL>>["symbols"] | null = null;
let fs: ReturnType<typeof dlopen<typeof FS>>["symbols"] | null = null;
const sys = () => (call ??= dlopen("libc.so.6", CALL).symbols);
const fsSys = () => (fs ??= dlopen("libc.so.6", FS).symbols);

const enc = new TextEncoder();
const cstr = (s: string) => enc.encode(`${s}\0`);

/** Names of the bpf() commands cnikit uses, for error messages. */
const CMD_NAMES: Record<number, string> = {
  0: "BPF_MAP_CREATE",
  1: "BPF_MAP_LOOKUP_ELEM",
  2: "BPF_MAP_UPDATE_ELEM",
  3: "BPF_MAP_DELETE_ELEM",
  4: "BPF_MAP_GET_NEXT_KEY",
  5: "BPF_PROG_LOAD",
  6: "BPF_OBJ_PIN",
  7: "BPF_OBJ_GET",
  8: "BPF_PROG_ATTACH",
  9: "BPF_PROG_DETACH",
  10: "BPF_PROG_TEST_RUN",
  11: "BPF_PROG_GET_NEXT_ID",
  13: "BPF_PROG_GET_FD_BY_ID",
  15: "BPF_OBJ_GET_INFO_BY_FD",
  16: "BPF_PROG_QUERY",
};

/**
 * Call `bpf(cmd, attr, attr.length)`; returns the kernel's non-negative result (a new descriptor
 * for the commands that make one) or throws a `SysError` naming the command. The buffers that
 * `attr`'s pointer fields point at must stay referenced by the caller until this returns.
 */
export function bpfCall(cmd: number, attr: Uint8Array, detail = ""): number {
  const nr = SYS_BPF[process.arch];
  if (nr === undefined) throw new SysError(Errno.ENOSYS, "bpf", `no bpf syscall number for ${process.arch}`);
  return check(CMD_NAMES[cmd] ?? `bpf(${cmd})`, () => sys().syscall(nr, cmd, attr, attr.length), detail);
}

/** The address of a buffer's first byte, for a `__aligned_u64` pointer field of a bpf attr (0 for an empty one). */
export function addressOf(buf: Uint8Array): bigint {
  return buf.length === 0 ? 0n : BigInt(ptr(buf));
}

/** Whether `dir` is the root of (or inside) a bpf filesystem. */
export function isBpffs(dir: string): boolean {
  const buf = new BigInt64Array(16); // struct statfs: f_type is its first field
  if (fsSys().statfs(cstr(dir), buf) !== 0) {
    const e = errno();
    if (e === Errno.ENOENT) return false;
    throw new SysError(e, "statfs", dir);
  }
  return Number(BigInt.asUintN(32, buf[0]!)) === BPF_FS_MAGIC;
}

/** Mount a bpf filesystem on the existing directory `dir` (mode 0700). */
export function mountBpffs(dir: string): void {
  check("mount", () => fsSys().mount(cstr("bpf"), cstr(dir), cstr("bpf"), 0n, cstr("mode=0700")), `bpf on ${dir}`);
}

/** Unmount the filesystem on `dir` (lazily: it goes once nothing uses it). */
export function unmount(dir: string): void {
  check("umount2", () => fsSys().umount2(cstr(dir), MNT_DETACH), dir);
}

/** Remove an empty directory; false when there was none. */
export function removeDir(dir: string): boolean {
  if (fsSys().rmdir(cstr(dir)) === 0) return true;
  const e = errno();
  if (e === Errno.ENOENT) return false;
  throw new SysError(e, "rmdir", dir);
}
