/** Advisory whole-file locks (`flock`), as the host-local IPAM store uses them. */

import { closeFile, openFile } from "./file.ts";
import { check, libc } from "./libc.ts";

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

/** A held lock on a file. */
export interface FileLock {
  /** The locked file. */
  readonly path: string;
  /** Release the lock and close the file (safe to call twice). */
  unlock(): void;
}

/** Options for `lockFile`. */
export interface LockOptions {
  /** Take a shared lock instead of an exclusive one. */
  shared?: boolean;
  /** Fail at once with EWOULDBLOCK (EAGAIN) instead of waiting when the lock is held. */
  noWait?: boolean;
  /** `path` is a directory: opened read-only and never created (ENOENT when missing). */
  dir?: boolean;
}

/**
 * Lock the file at `path` (created, mode 0644, when missing; with `dir` an existing directory),
 * waiting for other holders unless `noWait`. The lock belongs to the open file: it is released by
 * `unlock()` or when the process exits.
 */
export function lockFile(path: string, opts: LockOptions = {}): FileLock {
  const fd = openFile(path, opts.dir ? "read" : "append", 0o644);
  const op = (opts.shared ? LOCK_SH : LOCK_EX) | (opts.noWait ? LOCK_NB : 0);
  try {
    check("flock", () => libc().flock(fd, op), path);
  } catch (err) {
    closeFile(fd);
    throw err;
  }
  let held = true;
  return {
    path,
    unlock() {
      if (!held) return;
      held = false;
      try {
        libc().flock(fd, LOCK_UN);
      } finally {
        closeFile(fd);
      }
    },
  };
}

/**
 * Run `fn` holding the lock on `path`; the lock is released when `fn` returns, throws, or (when it
 * returns a promise) settles.
 */
export function withFileLock<T>(path: string, fn: () => T, opts: LockOptions = {}): T {
  const lock = lockFile(path, opts);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    lock.unlock();
    throw err;
  }
  if (result instanceof Promise) {
    return result.finally(() => lock.unlock()) as T;
  }
  lock.unlock();
  return result;
}
