/**
 * Kernel parameters under /proc/sys, read and written inside a network namespace when asked
 * (the net.* ones are per namespace: the file opened decides which namespace it speaks for).
 */

import { SysError } from "../sys/error.ts";
import { readText, writeText } from "../sys/file.ts";
import { type NetnsHandle, withNetns } from "../sys/netns.ts";

/** Options for the sysctl functions. */
export interface SysctlOptions {
  /** Read or write inside this network namespace (a path or an open handle). */
  netns?: string | NetnsHandle;
}

/**
 * The file of a sysctl key: "net.ipv4.ip_forward" or "net/ipv4/ip_forward". Use the slash form
 * when a part (an interface name such as "eth0.100") contains dots.
 */
export function sysctlPath(key: string): string {
  const rel = key.includes("/") ? key.replace(/^\/+/, "") : key.replaceAll(".", "/");
  if (rel.split("/").some((p) => p === ".." || p === "")) throw new TypeError(`invalid sysctl key ${JSON.stringify(key)}`);
  return `/proc/sys/${rel}`;
}

function inNetns<T>(opts: SysctlOptions, fn: () => T): T {
  return opts.netns === undefined ? fn() : withNetns(opts.netns, fn);
}

/** Set a sysctl (synchronously; inside `opts.netns` when given). */
export function setSysctl(key: string, value: string | number, opts: SysctlOptions = {}): void {
  const path = sysctlPath(key);
  inNetns(opts, () => {
    try {
      writeText(path, String(value));
    } catch (err) {
      throw err instanceof SysError ? new SysError(err.errno, "write", path) : err;
    }
  });
}

/** Read a sysctl, trimmed (synchronously; inside `opts.netns` when given). */
export function getSysctl(key: string, opts: SysctlOptions = {}): string {
  const path = sysctlPath(key);
  return inNetns(opts, () => {
    try {
      return readText(path).trim();
    } catch (err) {
      throw err instanceof SysError ? new SysError(err.errno, "read", path) : err;
    }
  });
}
