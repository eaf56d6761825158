/**
 * The C library over `bun:ffi`: the few calls cnikit needs, opened on first use so that importing
 * this module costs nothing. This folder is the only place that touches FFI.
 */

import { dlopen, FFIType, read } from "bun:ffi";
import { Errno } from "./errno.ts";
import { SysError } from "./error.ts";

const { i32, u32, u64, i64, ptr } = FFIType;

const SYMBOLS = {
  socket: { args: [i32, i32, i32], returns: i32 },
  bind: { args: [i32, ptr, u32], returns: i32 },
  getsockname: { args: [i32, ptr, ptr], returns: i32 },
  setsockopt: { args: [i32, i32, i32, ptr, u32], returns: i32 },
  sendto: { args: [i32, ptr, u64, i32, ptr, u32], returns: i64 },
  recvfrom: { args: [i32, ptr, u64, i32, ptr, ptr], returns: i64 },
  close: { args: [i32], returns: i32 },
  setns: { args: [i32, i32], returns: i32 },
  flock: { args: [i32, i32], returns: i32 },
  getpid: { args: [], returns: i32 },
  gettid: { args: [], returns: i32 },
  __errno_location: { args: [], returns: ptr },
  // files (sys/file.ts): node:fs alone costs ~1.2 ms to load in a compiled binary
  open: { args: [ptr, i32, u32], returns: i32 },
  read: { args: [i32, ptr, u64], returns: i64 },
  write: { args: [i32, ptr, u64], returns: i64 },
  mkdir: { args: [ptr, u32], returns: i32 },
  rename: { args: [ptr, ptr], returns: i32 },
  unlink: { args: [ptr], returns: i32 },
  realpath: { args: [ptr, ptr], returns: ptr },
  free: { args: [ptr], returns: FFIType.void },
  opendir: { args: [ptr], returns: ptr },
  readdir: { args: [ptr], returns: ptr },
  closedir: { args: [ptr], returns: i32 },
  statx: { args: [i32, ptr, i32, u32, ptr], returns: i32 },
} as const;

type Libc = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];

let lib: Libc | null = null;
let errnoPtr: number | null = null;

/** The libc symbols, opening `libc.so.6` on the first call. */
export function libc(): Libc {
  if (!lib) lib = dlopen("libc.so.6", SYMBOLS).symbols;
  return lib;
}

/**
 * The calling thread's errno. Read it right after the failing call: nothing in between may make
 * another call into libc.
 */
export function errno(): number {
  // errno is thread-local; every call of ours comes from the JS thread, so the address is stable.
  if (errnoPtr === null) errnoPtr = libc().__errno_location() as unknown as number;
  return read.i32(errnoPtr as never, 0);
}

/**
 * Run a libc call that returns -1 and sets errno on failure, retrying on EINTR; returns the
 * (non-negative) result or throws a SysError naming `syscall`.
 */
export function check(syscall: string, call: () => number | bigint, detail = ""): number {
  for (;;) {
    const ret = Number(call());
    if (ret >= 0) return ret;
    const e = errno();
    if (e === Errno.EINTR) continue;
    throw new SysError(e, syscall, detail);
  }
}
