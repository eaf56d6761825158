/**
 * Benchmark support: run plugins as processes the way a runtime does, side by side with the
 * reference Go plugins in the same run, and print ratios (absolute times on shared machines are
 * noise; ratios of interleaved runs are not).
 */

import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** The repository root. */
export const ROOT = resolve(import.meta.dir, "..");
/** The reference plugins (Debian containernetworking-plugins). */
export const REFERENCE_DIR = "/usr/lib/cni";

/** Refuse to run outside a private network namespace (the benches create bridges and veths). */
export function assertPrivate(): void {
  const foreign = Bun.spawnSync(["ip", "-o", "link", "show"]).stdout.toString()
    .split("\n").map((l) => l.split(":")[1]?.trim().split("@")[0] ?? "")
    .filter((n) => n && n !== "lo" && !n.startsWith("ck") && !n.startsWith("veth") && !n.startsWith("bw"));
  if (process.env.CNIKIT_BENCH_NETNS !== String(statSync("/proc/self/ns/net").ino) || foreign.length > 0) {
    throw new Error("run benchmarks through `npm run bench` (they need a private network namespace)");
  }
}

/**
 * A CNI_PATH directory holding cnikit's plugins (installed from dist/cnikit) and one for the
 * reference. cnikit's types link to the binary (standalone runs) unless `shim` is set (then to
 * cnikit-shim, which reaches the daemon at $CNIKIT_SOCKET or falls back to the binary).
 */
export function pluginDirs(opts: { shim?: boolean } = {}): { cnikit: string; reference: string; remove: () => void } {
  const base = mkdtempSync(join(tmpdir(), "cnikit-bench-"));
  const cnikit = join(base, "cnikit");
  const r = Bun.spawnSync([join(ROOT, "dist/cnikit"), "install", "--bin-dir", cnikit, ...(opts.shim ? [] : ["--no-shim"])]);
  if (r.exitCode !== 0) throw new Error(`install failed: ${r.stderr}`);
  const reference = join(base, "reference");
  mkdirSync(reference);
  for (const t of ["bridge", "host-local", "ptp", "loopback", "portmap", "bandwidth", "tuning", "firewall", "static"]) {
    try {
      symlinkSync(join(REFERENCE_DIR, t), join(reference, t));
    } catch {
      // missing in this build of the reference: the bench using it will say so
    }
  }
  return { cnikit, reference, remove: () => rmSync(base, { recursive: true, force: true }) };
}

/** A `cnikit agent` started by a bench, serving CNI on `socket` (shims reach it with CNIKIT_SOCKET). */
export interface BenchDaemon {
  socket: string;
  pid: number;
  /** Its log (JSON lines on stderr). */
  log: string;
  /** Its resident set size now, in MiB. */
  rssMiB(): number;
  /** CPU time it has used so far (user + system), in seconds. */
  cpuSeconds(): number;
  /** SIGTERM, then wait for it to exit (it deletes the veths DELs left to its batches). */
  stop(): Promise<void>;
}

/**
 * Start `dist/cnikit agent --cni-socket DIR/run/cni.sock ARGS...` (log in DIR/daemon.log) and wait
 * until it serves: a VERSION through the shim `shimDir/bridge` answers and the log says so.
 */
export async function startDaemon(dir: string, shimDir: string, args: string[] = []): Promise<BenchDaemon> {
  const socket = join(dir, "run", "cni.sock");
  const log = join(dir, "daemon.log");
  const p = Bun.spawn([join(ROOT, "dist/cnikit"), "agent", "--cni-socket", socket, ...args], { stdout: "ignore", stderr: Bun.file(log) });
  const d: BenchDaemon = {
    socket,
    pid: p.pid,
    log,
    rssMiB: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p.pid}/status`, "utf8"))?.[1] ?? 0) / 1024,
    cpuSeconds: () => {
      // fields 14 and 15 of /proc/PID/stat (after the command name in parentheses), in clock ticks (100 Hz)
      const f = readFileSync(`/proc/${p.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      return (Number(f[11]) + Number(f[12])) / 100;
    },
    stop: async () => {
      p.kill("SIGTERM");
      await p.exited;
    },
  };
  for (let i = 0; i < 500; i++) {
    if (p.exitCode !== null) break;
    try {
      await runPlugin(join(shimDir, "bridge"), { CNIKIT_SOCKET: socket, CNI_COMMAND: "VERSION" }, "{}");
      if (readFileSync(log, "utf8").includes("serving CNI")) return d;
    } catch {
      // not yet
    }
    await Bun.sleep(20);
  }
  await d.stop();
  throw new Error(`the daemon did not start: ${readFileSync(log, "utf8").slice(-2000)}`);
}

/** Run one plugin as its own process; returns elapsed milliseconds, throws with its output on failure. */
export async function runPlugin(file: string, env: Record<string, string>, stdin: string): Promise<{ ms: number; stdout: string }> {
  const t0 = performance.now();
  const p = Bun.spawn([file], { env, stdin: new TextEncoder().encode(stdin), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`${file} ${env.CNI_COMMAND} failed (${code}): ${stdout || stderr}`);
  return { ms, stdout };
}

/** The median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Print a comparison table: median per side and the ratio cnikit / reference. */
export function report(title: string, rows: Array<{ what: string; cnikit: number[]; reference: number[]; target?: number }>): boolean {
  console.log(`\n${title}`);
  console.log(`${"operation".padEnd(28)} ${"ratio".padStart(7)}  ${"target".padStart(7)}  (medians: cnikit / reference, ms)`);
  let ok = true;
  for (const r of rows) {
    const c = median(r.cnikit);
    const ref = median(r.reference);
    const ratio = c / ref;
    const pass = r.target === undefined || ratio <= r.target;
    ok &&= pass;
    console.log(
      `${r.what.padEnd(28)} ${ratio.toFixed(2).padStart(6)}x  ${r.target !== undefined ? `<=${r.target}x`.padStart(7) : "".padStart(7)}  ` +
        `(${c.toFixed(1)} / ${ref.toFixed(1)})${pass ? "" : "  MISSED"}`,
    );
  }
  return ok;
}
