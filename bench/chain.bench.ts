/**
 * The chain a pod typically gets (bridge with ipMasq + host-local, portmap, firewall, bandwidth,
 * tuning) driven by a Go runtime: containernetworking/cni's libcni (bench/golibcni/main.go, built
 * here in GOPATH mode against Debian's libcni), each plugin exec'd as a process, the pod's port
 * mappings and bandwidth passed as capability arguments. All times are taken inside the Go program,
 * around AddNetworkList / DelNetworkList. Sides, in one run and interleaved, with the same conflist
 * but their own bridge, subnet and state paths:
 *   - reference: the Go plugins (/usr/lib/cni);
 *   - daemon: cnikit through cnikit-shim and a running `cnikit agent` (with attachment records
 *     under a state dir, as on a node);
 *   - standalone: the types linked to cnikit's binary, no daemon (sequential rows only; no target).
 * Rows (issue 11): chain ADD and DEL of one pod at a time (target 0.3x); 50 pods ADDed at once,
 * then DELeted at once, the wall time of each burst (target 0.2x). Then where the time goes: the
 * median of each plugin process per side, and the daemon's own time per plugin (its /metrics).
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assertPrivate, median, pluginDirs, report, ROOT, startDaemon } from "./lib.ts";

assertPrivate();
const ITER = Number(process.env.BENCH_ITER ?? 15);
const WARMUP = 2;
const BURST = Number(process.env.BENCH_BURST ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const HEALTHZ = "127.0.0.1:19102"; // this bench's own network namespace
const shimmed = pluginDirs({ shim: true }); // cnikit's types linked to cnikit-shim; the reference
const standalone = pluginDirs(); // cnikit's types linked to the binary
const data = mkdtempSync(join(tmpdir(), "cnikit-bench-chain-"));
const tag = `ckc${process.pid % 1000}`;
const SIDES = { reference: "r", daemon: "d", standalone: "s" } as const;
type SideName = keyof typeof SIDES;

/** The conflist of one side: the reference's chain, with capabilities as a runtime fills them. */
function conflist(side: SideName, subnet: string): string {
  const dir = (what: string) => join(data, side, what);
  const file = join(data, `${side}.conflist`);
  writeFileSync(file, JSON.stringify({
    cniVersion: "1.0.0",
    name: `chain-${side}`,
    plugins: [
      { type: "bridge", bridge: `${tag}${SIDES[side]}`, isGateway: true, ipMasq: true, hairpinMode: true,
        ipam: { type: "host-local", ranges: [[{ subnet }]], dataDir: dir("ipam") } },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
      { type: "firewall", backend: "iptables", dataDir: dir("firewall") },
      { type: "bandwidth", capabilities: { bandwidth: true } },
      { type: "tuning", sysctl: { "net.ipv4.conf.IFNAME.rp_filter": "0" }, dataDir: dir("tuning") },
    ],
  }));
  return file;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Build the Go runtime (its build cache in the temp dir). */
function buildGo(): string {
  const out = join(data, "golibcni");
  const b = Bun.spawnSync(["go", "build", "-o", out, join(ROOT, "bench/golibcni/main.go")], {
    env: { PATH: process.env.PATH!, HOME: data, GOPATH: "/usr/share/gocode", GO111MODULE: "off", GOCACHE: join(data, "go-cache"), GOFLAGS: "" },
    stderr: "pipe",
  });
  if (b.exitCode !== 0) throw new Error(`go build bench/golibcni failed: ${b.stderr}`);
  return out;
}

interface Times {
  add: number[];
  del: number[];
}
interface GoOut {
  seq?: Record<string, Times>;
  burst?: Record<string, Times>;
  calls: Record<string, Record<string, Record<string, number[]>>>;
}

/** Run the Go runtime over the sides with `args` (a phase); its JSON output. */
function runGo(bin: string, sides: Array<[SideName, string, string]>, args: string[]): GoOut {
  const p = Bun.spawnSync([bin, "-tag", tag, "-cache-dir", join(data, "cache"), ...args, ...sides.flatMap(([name, dir, conf]) => ["-side", `${name}=${dir}:${conf}`])], {
    env: { PATH: process.env.PATH!, CNIKIT_SOCKET: daemonSocket },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (p.exitCode !== 0) throw new Error(`golibcni ${args.join(" ")} failed (${p.exitCode}): ${p.stderr.toString().slice(-4000)}`);
  return JSON.parse(p.stdout.toString()) as GoOut;
}

/** The daemon's per-plugin, per-verb time (sum of seconds, count) from its /metrics. */
async function daemonTimes(): Promise<Map<string, { sum: number; count: number }>> {
  const text = await (await fetch(`http://${HEALTHZ}/metrics`)).text();
  const out = new Map<string, { sum: number; count: number }>();
  for (const m of text.matchAll(/^cnikit_cni_request_duration_seconds_(sum|count)\{plugin="([^"]+)",verb="([^"]+)"\} (\S+)$/gm)) {
    const k = `${m[2]} ${m[3]}`;
    const e = out.get(k) ?? { sum: 0, count: 0 };
    e[m[1] as "sum" | "count"] = Number(m[4]);
    out.set(k, e);
  }
  return out;
}

/** Print each plugin's median process time per side, and the daemon's mean time for it in this phase. */
function where(title: string, calls: Record<string, Record<string, number[]>>, before: Map<string, { sum: number; count: number }>, after: Map<string, { sum: number; count: number }>): void {
  const sides = Object.keys(calls);
  console.log(`\n${title}: median per plugin process, ms (${sides.join(" / ")}; daemon: its own mean time inside)`);
  const keys = [...new Set(sides.flatMap((s) => Object.keys(calls[s]!)))].sort((a, b) => a.split(" ")[1]!.localeCompare(b.split(" ")[1]!));
  for (const k of keys) {
    const a = after.get(k);
    const b = before.get(k) ?? { sum: 0, count: 0 };
    const inside = a && a.count > b.count ? `  (inside the daemon ${(((a.sum - b.sum) / (a.count - b.count)) * 1000).toFixed(1)})` : "";
    console.log(`  ${k.padEnd(18)} ${sides.map((s) => (calls[s]![k] ? median(calls[s]![k]!).toFixed(1) : "-").padStart(7)).join(" /")}${inside}`);
  }
}

let daemonSocket = join(data, "none", "cni.sock");
let ok = true;
const daemon = await startDaemon(data, shimmed.cnikit, ["--healthz", HEALTHZ, "--state-dir", join(data, "state"), "--cni-cache-dir", join(data, "cache", "daemon")]).catch((e) => {
  rmSync(data, { recursive: true, force: true });
  shimmed.remove();
  standalone.remove();
  throw e;
});
daemonSocket = daemon.socket;
try {
  const bin = buildGo();
  const sides: Array<[SideName, string, string]> = [
    ["reference", shimmed.reference, conflist("reference", "10.126.0.0/16")],
    ["daemon", shimmed.cnikit, conflist("daemon", "10.125.0.0/16")],
    ["standalone", standalone.cnikit, conflist("standalone", "10.127.0.0/16")],
  ];
  runGo(bin, sides, ["-n", String(WARMUP), "-warmup", "0", "-burst", "0"]); // warm-up, not counted
  const m0 = await daemonTimes();
  const c0 = daemon.cpuSeconds();
  const seq = runGo(bin, sides, ["-n", String(ITER), "-warmup", "0", "-burst", "0"]);
  const m1 = await daemonTimes();
  const c1 = daemon.cpuSeconds();
  const burst = runGo(bin, sides.slice(0, 2), ["-n", "0", "-burst", String(BURST), "-rounds", String(ROUNDS)]);
  const m2 = await daemonTimes();
  const c2 = daemon.cpuSeconds();

  const s = seq.seq!;
  const b = burst.burst!;
  ok = report(`Go libcni runtime, bridge(ipMasq) + host-local, portmap, firewall, bandwidth, tuning (each plugin a process): shim + daemon / reference`, [
    { what: `chain ADD (${ITER} pods)`, cnikit: s.daemon!.add, reference: s.reference!.add, target: 0.3 },
    { what: `chain DEL (${ITER} pods)`, cnikit: s.daemon!.del, reference: s.reference!.del, target: 0.3 },
    { what: `${BURST} pods at once ADD (${ROUNDS}x)`, cnikit: b.daemon!.add, reference: b.reference!.add, target: 0.2 },
    { what: `${BURST} pods at once DEL (${ROUNDS}x)`, cnikit: b.daemon!.del, reference: b.reference!.del, target: 0.2 },
  ]);
  report("standalone cnikit (no daemon) / reference, same run (no target)", [
    { what: "chain ADD", cnikit: s.standalone!.add, reference: s.reference!.add },
    { what: "chain DEL", cnikit: s.standalone!.del, reference: s.reference!.del },
  ]);
  where("one pod at a time", seq.calls.seq!, m0, m1);
  console.log(`  the daemon's CPU time: ${(((c1 - c0) / ITER) * 1000).toFixed(1)} ms per pod (ADD + DEL)`);
  where(`${BURST} pods at once`, burst.calls.burst!, m1, m2);
  console.log(`  the daemon's CPU time: ${(((c2 - c1) / (BURST * ROUNDS)) * 1000).toFixed(1)} ms per pod (ADD + DEL); bursts' wall time ${sum(b.daemon!.add) + sum(b.daemon!.del) > 0 ? (((c2 - c1) / ((sum(b.daemon!.add) + sum(b.daemon!.del)) / 1000)) * 100).toFixed(0) : "-"}% busy`);
} finally {
  await daemon.stop();
  // what a failed run may have left: the pods' namespaces (the Go runtime deletes them) and the bridges
  const left = Bun.spawnSync(["ip", "netns", "list"]).stdout.toString().split("\n").map((l) => l.split(" ")[0]!)
    .filter((n) => new RegExp(`^${tag}-b?[rds]\\d+(-\\d+)?$`).test(n));
  for (const n of left) Bun.spawnSync(["ip", "netns", "del", n]);
  for (const side of Object.values(SIDES)) Bun.spawnSync(["ip", "link", "del", `${tag}${side}`]);
  rmSync(data, { recursive: true, force: true });
  shimmed.remove();
  standalone.remove();
}
process.exit(ok ? 0 : 1);
