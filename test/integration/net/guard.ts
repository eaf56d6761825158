/**
 * Safety guard for kernel tests: refuse to run in the machine's initial network namespace, so a
 * test can never change the host's own network. Run suites as `unshare -n bun test ...`.
 */

import { statSync } from "node:fs";

function initialNetnsInode(): number {
  // PID 1 is in the initial namespace; where /proc/1 is hidden from us, kthreadd (PID 2) always is.
  for (const pid of [1, 2]) {
    try {
      return statSync(`/proc/${pid}/ns/net`).ino;
    } catch {
      // try the next one
    }
  }
  throw new Error("cannot read the initial network namespace (/proc/1/ns/net, /proc/2/ns/net): refusing to run");
}

/** Throw unless this process runs in a network namespace other than the machine's initial one. */
export function assertPrivateNetns(): void {
  const self = statSync("/proc/self/ns/net").ino;
  if (self === initialNetnsInode()) {
    throw new Error(
      "refusing to run in the machine's own network namespace: run as `unshare -n bun test test/integration/net`",
    );
  }
}
