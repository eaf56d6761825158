/** `SysError`: a failed system call with its errno. */

import { errnoMessage, errnoName } from "./errno.ts";

/** A system call that failed: carries the errno, its name and the call that failed. */
export class SysError extends Error {
  /** The errno value (positive). */
  readonly errno: number;
  /** The errno's symbolic name, such as "EEXIST". */
  readonly code: string;
  /** The failing call, such as "setns". */
  readonly syscall: string;

  constructor(errno: number, syscall: string, detail = "") {
    const what = detail ? `${syscall} ${detail}` : syscall;
    super(`${what}: ${errnoMessage(errno)} (${errnoName(errno)})`);
    this.name = "SysError";
    this.errno = errno;
    this.code = errnoName(errno);
    this.syscall = syscall;
  }

  /**
   * Convert an error thrown by `node:fs` (which carries a negative or positive `errno` and a
   * `code`) into a SysError; anything else is returned unchanged.
   */
  static from(err: unknown, syscall: string, detail = ""): unknown {
    if (err instanceof SysError) return err;
    const e = err as { errno?: unknown; code?: unknown } | null;
    if (e && typeof e.errno === "number") return new SysError(Math.abs(e.errno), syscall, detail);
    return err;
  }
}
