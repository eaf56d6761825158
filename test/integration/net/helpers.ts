/**
 * Helpers for kernel integration tests: run iproute2 for independent checks, and create "pod"
 * namespaces with a unique prefix that are always deleted (afterAll, and at process exit as a
 * fallback). Every test file also calls `assertPrivateNetns()` itself, at its top.
 */

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { assertPrivateNetns } from "./guard.ts";

assertPrivateNetns();

/** Prefix of every namespace these tests create. */
export const NS_PREFIX = `ckn${process.pid}-`;

const created = new Set<string>();

/** Run iproute2 (or another tool) and return its stdout; throws with stderr on failure. */
export function run(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** `ip -j ...` parsed (inside namespace `ns` when given). */
export function ipJson(ns: string | null, ...args: string[]): any[] {
  const out = run("ip", ...(ns ? ["-n", ns] : []), "-j", ...args);
  return out.trim() ? JSON.parse(out) : [];
}

/** Whether a command exits 0 (used for ping). */
export function succeeds(cmd: string, ...args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: "ignore", timeout: 10000 }).status === 0;
}

/** Create a pod namespace `<prefix><suffix>` with lo up; returns its name (path: nsPath). */
export function addPodNetns(suffix: string): string {
  const name = NS_PREFIX + suffix;
  run("ip", "netns", "add", name);
  created.add(name);
  run("ip", "-n", name, "link", "set", "lo", "up");
  return name;
}

/** The file of a pod namespace. */
export function nsPath(name: string): string {
  return `/run/netns/${name}`;
}

/** Delete one pod namespace (ignoring a missing one). */
export function deletePodNetns(name: string): void {
  if (existsSync(nsPath(name))) spawnSync("ip", ["netns", "del", name], { stdio: "ignore" });
  created.delete(name);
}

/** Delete every pod namespace this process created. */
export function deleteAllPodNetns(): void {
  for (const name of [...created]) deletePodNetns(name);
}

process.on("exit", deleteAllPodNetns);
