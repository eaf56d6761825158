/** Process and thread ids from libc. */

import { libc } from "./libc.ts";

/** The calling process's id, as libc's `getpid()` returns it. */
export function getpid(): number {
  return libc().getpid();
}

/** The calling thread's id (`gettid()`): the thread whose namespaces `setns` changes. */
export function gettid(): number {
  return libc().gettid();
}
