/**
 * Test support for integration tests: refuse to run in the machine's own network namespace, make
 * uniquely named pod namespaces and remove them (also on failure), run commands.
 */

import { readFileSync, statSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Names of the network interfaces of this process's network namespace. */
export function linkNames(): string[] {
  return readFileSync("/proc/self/net/dev", "utf8")
    .split("\n")
    .slice(2)
    .map((l) => l.split(":")[0]!.trim())
    .filter((n) => n !== "");
}

/**
 * Throw unless this process runs in a network namespace other than the machine's own: not the
 * namespace recorded by the test runner (CNIKIT_HOST_NETNS_INO) or PID 1's, and holding no
 * interface but loopback and those of cnikit's tests (named "ck...").
 */
export function assertPrivateNetns(): void {
  keepDaemonSocketPrivate();
  const mine = statSync("/proc/self/ns/net").ino;
  const host = process.env.CNIKIT_HOST_NETNS_INO;
  let init: number | undefined;
  try {
    init = statSync("/proc/1/ns/net").ino;
  } catch {
    init = undefined; // not readable in some sandboxes
  }
  const foreign = linkNames().filter((n) => n !== "lo" && !n.startsWith("ck"));
  if (String(mine) === host || mine === init || foreign.length > 0) {
    throw new Error(
      "integration tests must run in a private network namespace: use `unshare -n bun test FILE` (npm test does)" +
        (foreign.length > 0 ? `; this namespace has interfaces ${foreign.join(", ")}` : ""),
    );
  }
}

/**
 * Point CNIKIT_SOCKET (read by cnikit-shim, and by `cnikit agent` when no --cni-socket is given)
 * at a path of this test process when it is unset, so that shims and agents run with
 * `{ ...process.env }` never use the machine's /run/cnikit/cni.sock (scripts/test.sh also exports
 * one per file: Bun.spawn without `env` passes the environment the process started with). The
 * path's directory is removed at exit.
 */
function keepDaemonSocketPrivate(): void {
  if (process.env.CNIKIT_SOCKET) return;
  const dir = join(tmpdir(), `cnikit-ckd-sock-${process.pid}`);
  process.env.CNIKIT_SOCKET = join(dir, "cni.sock");
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
}

/** A unique prefix for this run's namespaces, links and tables (short: link names have 15 bytes). */
export function runPrefix(tag: string): string {
  return `ck${tag}${(process.pid % 10000).toString(36)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
}

/** Result of a command. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command synchronously; never throws. */
export function run(cmd: string[], opts: { env?: Record<string, string | undefined>; stdin?: string } = {}): Ran {
  const p = Bun.spawnSync(cmd, {
    env: (opts.env ?? process.env) as Record<string, string>,
    stdin: opts.stdin !== undefined ? new TextEncoder().encode(opts.stdin) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

/** Run a command and throw with its output when it fails. */
export function must(cmd: string[], opts: { env?: Record<string, string | undefined>; stdin?: string } = {}): string {
  const r = run(cmd, opts);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Namespaces made by a test, removed by `cleanup()`. */
export class Namespaces {
  private readonly names: string[] = [];
  constructor(readonly prefix: string) {}

  /** Create `/run/netns/<prefix><suffix>` with loopback up; returns its path. */
  add(suffix: string): string {
    const name = `${this.prefix}${suffix}`;
    must(["ip", "netns", "add", name]);
    this.names.push(name);
    must(["ip", "-n", name, "link", "set", "lo", "up"]);
    return `/run/netns/${name}`;
  }

  /** Delete every namespace made (missing ones are fine). */
  cleanup(): void {
    for (const n of this.names.splice(0)) run(["ip", "netns", "del", n]);
  }
}

/** The link group of veths waiting for the daemon's batched removal (src/net/removal.ts REMOVAL_GROUP). */
const REMOVAL_GROUP = String(0x636e6b64);

/**
 * The links of `type` in this namespace once none waits for the daemon's batched removal (at most
 * `ms`): through the daemon a DEL answers first and its veths (bridge, ptp) and ifb devices
 * (bandwidth) go within a second of the reply.
 */
export function linksSettled(type: string, ms = 1500): { ifname: string; group?: string }[] {
  const list = () => JSON.parse(must(["ip", "-j", "link", "show", "type", type]).trim() || "[]") as { ifname: string; group?: string }[];
  let v = list();
  for (const end = Date.now() + ms; v.some((l) => l.group === REMOVAL_GROUP) && Date.now() < end; v = list()) Bun.sleepSync(10);
  return v;
}

/** The veths of this namespace once none waits for the daemon's batched removal (`linksSettled`). */
export function vethsSettled(ms = 1500): { ifname: string; group?: string }[] {
  return linksSettled("veth", ms);
}

/** A temporary directory and its removal. */
export function tempDir(tag: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `cnikit-${tag}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Ping `ip` once from inside namespace `nsPath` (or from here when empty); true on a reply. */
export function ping(nsPath: string, ip: string): boolean {
  const cmd = ["ping", "-c", "1", "-W", "2", ip];
  const r = nsPath ? run(["nsenter", `--net=${nsPath}`, ...cmd]) : run(cmd);
  return r.code === 0;
}
