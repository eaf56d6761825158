/**
 * Network namespaces: open a namespace file, and run code synchronously inside a namespace.
 *
 * `setns` changes only the calling thread, so everything done inside must be synchronous: a
 * promise's continuation, or work handed to another thread, would run in the original namespace.
 */

import { Errno } from "./errno.ts";
import { SysError } from "./error.ts";
import { closeFile, fileStat, openFile } from "./file.ts";
import { check, libc } from "./libc.ts";

const CLONE_NEWNET = 0x40000000;

/** The calling thread's own network namespace file. */
export const THREAD_NETNS_PATH = "/proc/thread-self/ns/net";

/** An open network namespace file (for example to pass as `IFLA_NET_NS_FD`). */
export interface NetnsHandle {
  /** The open file descriptor. */
  readonly fd: number;
  /** The path it was opened from. */
  readonly path: string;
  /** Close the descriptor (safe to call twice). */
  close(): void;
}

/** Open the namespace file at `path` (such as /proc/PID/ns/net or /run/netns/NAME). */
export function openNetns(path: string): NetnsHandle {
  const fd = openFile(path, "read");
  let open = true;
  return {
    fd,
    path,
    close() {
      if (!open) return;
      open = false;
      closeFile(fd);
    },
  };
}

/** The inode of the namespace at `path` (or of an open handle): equal inodes, same namespace. */
export function netnsInode(ns: string | NetnsHandle): number {
  const h = typeof ns === "string" ? openNetns(ns) : ns;
  try {
    return Number(fileStat(h.fd).ino);
  } finally {
    if (typeof ns === "string") h.close();
  }
}

function enter(fd: number, path: string): void {
  check("setns", () => libc().setns(fd, CLONE_NEWNET), path);
}

function isThenable(v: unknown): boolean {
  return typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";
}

/**
 * Run `fn` with the calling thread inside the network namespace at `ns` (a path or an open
 * handle), then switch back to the thread's original namespace, also when `fn` throws.
 * `fn` must be synchronous: returning a promise is an error.
 */
export function withNetns<T>(ns: string | NetnsHandle, fn: () => T): T {
  const target = typeof ns === "string" ? openNetns(ns) : ns;
  let original: NetnsHandle | null = null;
  try {
    original = openNetns(THREAD_NETNS_PATH);
    enter(target.fd, target.path);
    let result: T;
    try {
      result = fn();
    } finally {
      try {
        enter(original.fd, "(original namespace)");
      } catch (err) {
        // Staying in the wrong namespace would silently change the wrong network: stop here.
        const e = err as SysError;
        throw new SysError(e.errno ?? Errno.EINVAL, "setns", `back to the original namespace failed`);
      }
    }
    if (isThenable(result)) {
      throw new TypeError("withNetns: the function must be synchronous (it returned a promise)");
    }
    return result;
  } finally {
    original?.close();
    if (typeof ns === "string") target.close();
  }
}
