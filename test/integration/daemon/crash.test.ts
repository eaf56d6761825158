/**
 * Crash consistency (issue 13), against the real kernel in this file's private network namespace
 * (prefix ckk): the reference's full chain (bridge with ipMasq and host-local, portmap, firewall,
 * bandwidth, tuning; a 1.0.0 list, as containerd's default) is SIGKILLed at random moments:
 * - the chain (`cnikit add` running the plugins in-process) during ADD,
 * - the daemon (runtime -> cnikit-shim -> daemon) during ADD, and during DEL (without the
 *   runtime's DEL the runtime is killed at the same moment, as in a node crash: no rollback),
 * each with the runtime's DEL afterwards (nothing of the pod may remain) and without it (the pod's
 * netns is deleted; the daemon's reconcile, and for attachments the runtime's cache still knows the
 * runtime's `cnikit gc`, leave nothing within 10 s). Counted: reservations, nftables elements, ifb
 * devices, qdiscs, veths, saved state files, attachment records, cache entries. The daemon runs with
 * the production defaults (--request-timeout 120, --reconcile-interval 5): the 10 s hold because an
 * attachment whose ADD provably ended (its writer process gone, or the daemon with no call for it
 * in flight) is released without waiting out the deadline.
 *
 * Seeded and bounded: CNIKIT_KILLS kills per variant (default 6), CNIKIT_KILL_SEED (default 13).
 * Also: a simulated reboot (netns gone, cache kept, boot id changed: the daemon frees every old
 * reservation at start and a full range of new pods gets addresses), and an attachment whose netns
 * exists is never touched.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CNIKIT, startDaemon, type TestDaemon } from "../../support/daemon.ts";
import { assertPrivateNetns, must, ping, run, runPrefix, tempDir } from "../../support/netns.ts";
import { seeded } from "../../support/seeded.ts";

assertPrivateNetns();

const KILLS = Number(process.env.CNIKIT_KILLS || 6);
const SEED = Number(process.env.CNIKIT_KILL_SEED || 13);
/** Without the runtime's DEL, pods' netns go away this many at a time. */
const BATCH = Number(process.env.CNIKIT_KILL_BATCH || 10);
const prefix = runPrefix("k"); // ckk...
const tmp = tempDir("ckk-crash");
const shimBin = join(tmp.path, "bin-shim"); // cnikit install: every type a link to cnikit-shim
const directBin = join(tmp.path, "bin"); // links to the binary: the runtime runs the plugins in-process
const confDir = join(tmp.path, "net.d");
const stateDir = join(tmp.path, "state");
const cacheDir = join(tmp.path, "cache");
const ipamDir = join(tmp.path, "ipam");
const socket = join(tmp.path, "run", "cni.sock");
const bridge = `${prefix}br`;
const NET = "crash";
const PORT = 19000 + ((process.pid + 500) % 1000);
const daemons: TestDaemon[] = [];
const netnses = new Set<string>();
const bridges = new Set<string>([bridge]);
let daemon: TestDaemon;

// the full chain, as full-chain.test.ts; a 1.0.0 list (below GC's 1.1.0)
const conflist = {
  cniVersion: "1.0.0",
  name: NET,
  plugins: [
    { type: "bridge", bridge, isGateway: true, ipMasq: true, hairpinMode: true,
      ipam: { type: "host-local", subnet: "10.97.0.0/22", routes: [{ dst: "0.0.0.0/0" }], dataDir: ipamDir } },
    { type: "portmap", capabilities: { portMappings: true }, snat: true },
    { type: "firewall", backend: "iptables", dataDir: join(tmp.path, "firewall") },
    { type: "bandwidth", capabilities: { bandwidth: true } },
    { type: "tuning", sysctl: { "net.core.somaxconn": "500" }, dataDir: join(tmp.path, "tuning") },
  ],
};

const rand = seeded(SEED);

let podSeq = 0;
/** A new pod: its netns (ck prefix) and container id. */
function newPod(tag: string): { cid: string; netns: string; port: number } {
  const n = ++podSeq;
  const name = `${prefix}${tag}${n}`;
  must(["ip", "netns", "add", name]);
  netnses.add(name);
  return { cid: `${tag}-${n}`, netns: `/run/netns/${name}`, port: 20000 + n };
}
function delNetns(netns: string): void {
  const name = netns.slice("/run/netns/".length);
  run(["ip", "netns", "del", name]);
  netnses.delete(name);
}

/** The runtime's environment; through the daemon (shims) or with the plugins in-process. */
function runtimeEnv(via: "daemon" | "direct", pod: { cid: string; port: number }, caps = true): Record<string, string> {
  return {
    PATH: process.env.PATH!,
    NETCONFPATH: confDir,
    CNI_PATH: via === "daemon" ? shimBin : directBin,
    CNI_CACHE_DIR: cacheDir,
    CNI_CONTAINERID: pod.cid,
    CNIKIT_SOCKET: socket,
    // standalone runs (the runtime's own, or a shim's fallback while the daemon is down) record too
    CNIKIT_STATE_DIR: stateDir,
    ...(caps ? { CAP_ARGS: JSON.stringify({ portMappings: [{ hostPort: pod.port, containerPort: 8080, protocol: "tcp" }], bandwidth: { ingressRate: 100_000_000, ingressBurst: 1_000_000, egressRate: 100_000_000, egressBurst: 1_000_000 } }) } : {}),
  };
}

function spawnRuntime(verb: "add" | "del" | "gc", via: "daemon" | "direct", pod: { cid: string; netns: string; port: number }) {
  const args = verb === "gc" ? [CNIKIT, "gc", NET] : [CNIKIT, verb, NET, pod.netns];
  return Bun.spawn(args, { env: runtimeEnv(via, pod, verb === "add"), stdout: "pipe", stderr: "pipe" });
}
async function runtime(verb: "add" | "del" | "gc", via: "daemon" | "direct", pod: { cid: string; netns: string; port: number }) {
  const p = spawnRuntime(verb, via, pod);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

const filesIn = (dir: string): string[] => {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesIn(join(dir, e.name)).map((f) => `${e.name}/${f}`) : [e.name]));
};
const jsonOf = (cmd: string[]) => {
  const out = must(cmd).trim();
  return out ? (JSON.parse(out) as unknown[]) : [];
};

/** What is on the machine that a pod may leave behind. */
function census(): Record<string, number> {
  let elements = 0;
  for (const o of (JSON.parse(must(["nft", "-j", "list", "ruleset"])) as { nftables: Record<string, { elem?: unknown[] }>[] }).nftables) {
    for (const k of ["set", "map"]) elements += o[k]?.elem?.length ?? 0;
  }
  return {
    reservations: filesIn(join(ipamDir, NET)).filter((f) => /^[0-9a-f.:]+$/.test(f) && f.includes(".")).length,
    nftElements: elements,
    ifbs: jsonOf(["ip", "-j", "link", "show", "type", "ifb"]).length,
    qdiscs: (jsonOf(["tc", "-j", "qdisc", "show"]) as { kind: string }[]).filter((q) => q.kind === "tbf" || q.kind === "ingress").length,
    veths: jsonOf(["ip", "-j", "link", "show", "type", "veth"]).length,
    stateFiles: filesIn(join(tmp.path, "tuning")).length + filesIn(join(tmp.path, "firewall")).filter((f) => !/lock/.test(f)).length,
    records: filesIn(join(stateDir, "attachments")).length,
    cacheEntries: filesIn(join(cacheDir, "results")).length,
  };
}
/** Records of attachments that the runtime's cache does not hold. */
function uncachedRecords(): number {
  const cached = new Set(filesIn(join(cacheDir, "results")));
  return filesIn(join(stateDir, "attachments", NET)).filter((f) => {
    const [cid, ifHex] = f.split(".");
    return !cached.has(`${NET}-${cid}-${Buffer.from(ifHex!, "hex").toString()}`);
  }).length;
}

let baseline: Record<string, number>;
/** The census minus `base` (default: what the machine has with no pod: shared tables, files kept between pods). */
function leftovers(base = baseline): Record<string, number> {
  const now = census();
  return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - (base[k] ?? 0)]));
}
const total = (l: Record<string, number>) => Object.values(l).reduce((a, b) => a + b, 0);
/** What is left, in detail, when something is (for the failure message). */
function detail(left: Record<string, number>): string {
  if (total(left) === 0) return "";
  const res = filesIn(join(ipamDir, NET)).filter((f) => f.includes(".") && !f.startsWith("last_")).map((f) => `${f}=${JSON.stringify(readFileSync(join(ipamDir, NET, f), "utf8"))}`);
  const elems = (JSON.parse(must(["nft", "-j", "list", "ruleset"])) as { nftables: Record<string, { name?: string; table?: string; elem?: unknown[] }>[] }).nftables
    .flatMap((o) => ["set", "map"].flatMap((k) => (o[k]?.elem?.length ? [`${o[k]!.table}/${o[k]!.name}: ${JSON.stringify(o[k]!.elem)}`] : [])));
  return ` [ipam: ${res.join(", ")}; nft: ${elems.join(" | ")}; records: ${filesIn(join(stateDir, "attachments")).join(", ")}; cache: ${filesIn(join(cacheDir, "results")).join(", ")}]`;
}

const metric = async (re: RegExp) => Number(re.exec(await (await fetch(`http://127.0.0.1:${PORT}/metrics`)).text())?.[1] ?? 0);
const released = () => metric(/cnikit_reconcile_released_total\{reason="netns-gone"\} (\d+)/);
const reconcileRuns = () => metric(/cnikit_reconcile_runs_total (\d+)/);

/** The production defaults of --request-timeout (120 s) and --reconcile-interval (5 s). */
const daemonFlags = () => ["--state-dir", stateDir, "--cni-cache-dir", cacheDir, "--healthz", `127.0.0.1:${PORT}`];
async function restartDaemon(): Promise<void> {
  daemon = await startDaemon(socket, daemonFlags());
  daemons.push(daemon);
}

/** Milliseconds a full-chain ADD takes (median of 3), for drawing kill moments. */
async function addDuration(via: "daemon" | "direct"): Promise<number> {
  const ts: number[] = [];
  for (let i = 0; i < 3; i++) {
    const pod = newPod("w");
    const t0 = performance.now();
    const r = await runtime("add", via, pod);
    ts.push(performance.now() - t0);
    if (r.code !== 0) throw new Error(`warm-up ADD failed: ${r.stdout} ${r.stderr}`);
    expect((await runtime("del", via, pod)).code).toBe(0);
    delNetns(pod.netns);
  }
  return ts.sort((a, b) => a - b)[1]!;
}

/** Wait until nothing is left beyond `base` (or `ms` pass); the time it took, or -1. */
async function settle(ms: number, base = baseline): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (total(leftovers(base)) === 0) return Date.now() - t0;
    await Bun.sleep(100);
  }
  return -1;
}

type Variant = "chain-add" | "daemon-add" | "daemon-del";

/** Kill `n` pods' verbs of one kind; the pods. */
async function kills(variant: Variant, withDel: boolean, spanMs: number, n: number, st: { finishedFirst: number; addFailed: number }) {
  const pods: { cid: string; netns: string; port: number }[] = [];
  for (let i = 0; i < n; i++) {
    const pod = newPod(variant === "chain-add" ? "c" : variant === "daemon-add" ? "a" : "d");
    pods.push(pod);
    const at = 1 + rand() * spanMs;
    if (variant === "chain-add") {
      const p = spawnRuntime("add", "direct", pod);
      await Bun.sleep(at);
      if (p.exitCode !== null) st.finishedFirst++;
      else process.kill(p.pid, "SIGKILL"); // our own child, by PID
      await p.exited;
    } else if (variant === "daemon-add") {
      const p = spawnRuntime("add", "daemon", pod);
      await Bun.sleep(at);
      if (p.exitCode !== null) st.finishedFirst++;
      // without the runtime's DEL the runtime dies too (a node crash): no rollback of the ADD
      if (!withDel && p.exitCode === null) process.kill(p.pid, "SIGKILL");
      await daemon.kill();
      await restartDaemon(); // as the node's init system would
      if ((await p.exited) !== 0) st.addFailed++;
    } else {
      const r = await runtime("add", "daemon", pod);
      expect(r.code).toBe(0);
      const p = spawnRuntime("del", "daemon", pod);
      await Bun.sleep(at * 0.8); // DEL is shorter than ADD
      if (p.exitCode !== null) st.finishedFirst++;
      if (!withDel && p.exitCode === null) process.kill(p.pid, "SIGKILL");
      await daemon.kill();
      await restartDaemon();
      await p.exited;
    }
  }
  return pods;
}

/**
 * `KILLS` kills of one kind, then (withDel) the runtime's DEL of each pod, or (without) the pods'
 * netns deleted, in batches of `BATCH`, and reconcile (plus the runtime's `cnikit gc` for
 * attachments its cache still holds) must leave nothing within 10 s.
 */
async function killRun(variant: Variant, withDel: boolean, spanMs: number): Promise<void> {
  // counted against the machine before this variant: one variant's leak is not another's
  const base = census();
  const st = { finishedFirst: 0, addFailed: 0 };
  const says = () => `${KILLS} kills within ${Math.round(spanMs)} ms of the verb (${st.finishedFirst} finished before the kill${variant === "daemon-add" ? `, ${st.addFailed} ADDs failed` : ""})`;
  if (withDel) {
    const pods = await kills(variant, withDel, spanMs, KILLS, st);
    for (const pod of pods) {
      const r = await runtime("del", "daemon", pod);
      expect(`${r.code} ${r.stdout}`).toBe("0 ");
    }
    // counted while the pods' netns still exist (reconcile never touches those), once the DELs'
    // veths had their second to go in the daemon's batch
    await settle(1000, base);
    const left = leftovers(base);
    for (const pod of pods) delNetns(pod.netns);
    console.log(`crash: ${variant} + runtime DEL: ${says()}; left after DEL: ${JSON.stringify(left)}${detail(left)}`);
    expect(left).toEqual(Object.fromEntries(Object.keys(left).map((k) => [k, 0])));
    return;
  }
  let byReconcile = 0;
  let byGc = 0;
  let worst = 0;
  for (let done = 0; done < KILLS; done += BATCH) {
    const pods = await kills(variant, withDel, spanMs, Math.min(BATCH, KILLS - done), st);
    const before = await released();
    const t0 = Date.now();
    for (const pod of pods) delNetns(pod.netns);
    // reconcile releases what no runtime knows of; the attachments the runtime's cache still holds
    // are the runtime's to collect: its GC (no pod is valid any more), once reconcile is done
    while (Date.now() - t0 < 9_000 && uncachedRecords() > 0) await Bun.sleep(100);
    const cached = filesIn(join(cacheDir, "results")).length;
    if (cached > 0) {
      const r = await runtime("gc", "daemon", pods[0]!);
      expect(`${r.code} ${r.stdout}`).toBe("0 ");
      byGc += cached;
    }
    const settled = await settle(10_000 - (Date.now() - t0), base);
    byReconcile += (await released()) - before;
    const left = leftovers(base);
    if (settled < 0) {
      console.log(`crash: ${variant} without DEL: batch at kill ${done}: not clean within 10 s: ${JSON.stringify(left)}${detail(left)}`);
      expect(left).toEqual(Object.fromEntries(Object.keys(left).map((k) => [k, 0])));
    }
    worst = Math.max(worst, Date.now() - t0);
  }
  const left = leftovers(base);
  console.log(`crash: ${variant} without DEL: ${says()}; netns deleted in batches of ${BATCH} -> released by reconcile ${byReconcile}, attachments the runtime's cache held collected by its cnikit gc ${byGc}; nothing left at most ${worst} ms after the netns went; left: ${JSON.stringify(left)}${detail(left)}`);
  expect(left).toEqual(Object.fromEntries(Object.keys(left).map((k) => [k, 0])));
  expect(worst).toBeLessThan(10_000);
}

beforeAll(async () => {
  must(["ip", "link", "set", "lo", "up"]);
  mkdirSync(confDir, { recursive: true });
  writeFileSync(join(confDir, "10-crash.conflist"), JSON.stringify(conflist));
  must([CNIKIT, "install", "--bin-dir", shimBin]);
  must([CNIKIT, "install", "--bin-dir", directBin, "--no-shim"]);
  await restartDaemon();
}, 30_000);

afterAll(async () => {
  for (const d of daemons) await d.kill();
  for (const n of netnses) run(["ip", "netns", "del", n]);
  for (const b of bridges) run(["ip", "link", "del", b]);
  tmp.remove();
}, 60_000);

describe("crash consistency", () => {
  let spanDirect = 0;
  let spanDaemon = 0;

  test("warm-up: full-chain ADD and DEL leave nothing (the baseline)", async () => {
    spanDirect = await addDuration("direct");
    baseline = census();
    spanDaemon = await addDuration("daemon");
    await settle(1_500); // the daemon's DELs leave veths and ifbs to its batched remover (~100 ms)
    expect(leftovers()).toEqual(Object.fromEntries(Object.keys(baseline).map((k) => [k, 0])));
    console.log(`crash: full-chain ADD takes ~${Math.round(spanDirect)} ms in-process, ~${Math.round(spanDaemon)} ms through the daemon; baseline ${JSON.stringify(baseline)}; seed ${SEED}, ${KILLS} kills per variant`);
  }, 60_000);

  test("an attachment whose netns exists is never touched by reconcile, even unknown to the runtime's cache", async () => {
    const pod = newPod("l");
    // ADD through the shim straight to bridge (no runtime: no cache entry)
    const conf = { ...conflist.plugins[0], cniVersion: "1.0.0", name: NET };
    const p = Bun.spawn([join(shimBin, "bridge")], {
      env: { PATH: process.env.PATH!, CNIKIT_SOCKET: socket, CNI_COMMAND: "ADD", CNI_CONTAINERID: pod.cid, CNI_NETNS: pod.netns, CNI_IFNAME: "eth0", CNI_PATH: shimBin },
      stdin: new TextEncoder().encode(JSON.stringify(conf)), stdout: "pipe",
    });
    const res = JSON.parse(await new Response(p.stdout).text()) as { ips: { address: string }[] };
    expect(await p.exited).toBe(0);
    // a whole reconcile pass after the ADD (the daemon, its writer, has no call for it in flight:
    // it would be released at once if its netns were gone)
    const runs = await reconcileRuns();
    while ((await reconcileRuns()) < runs + 2) await Bun.sleep(200);
    expect(ping(pod.netns, "10.97.0.1")).toBe(true);
    expect(filesIn(join(ipamDir, NET))).toContain(res.ips[0]!.address.split("/")[0]!);
    expect(filesIn(join(stateDir, "attachments", NET)).length).toBe(2); // bridge's and host-local's records
    // its netns goes: released (no cache entry, its ADD over), long before the 120 s deadline
    const before = await released();
    delNetns(pod.netns);
    expect(await settle(10_000)).toBeGreaterThanOrEqual(0);
    expect((await released()) - before).toBe(1);
    expect(daemon.log()).toContain("reconcile: released attachment");
  }, 40_000);

  for (const withDel of [true, false]) {
    test(`SIGKILL of the chain during ADD, ${withDel ? "then the runtime's DEL" : "no DEL: netns deleted"}`, async () => {
      await killRun("chain-add", withDel, spanDirect * 1.1);
    }, 120_000 + KILLS * 3_000);
    test(`SIGKILL of the daemon during ADD, ${withDel ? "then the runtime's DEL" : "no DEL: netns deleted"}`, async () => {
      await killRun("daemon-add", withDel, spanDaemon * 1.1);
    }, 120_000 + KILLS * 5_000);
    test(`SIGKILL of the daemon during DEL, ${withDel ? "then the runtime's DEL again" : "no further DEL: netns deleted"}`, async () => {
      await killRun("daemon-del", withDel, spanDaemon * 1.1);
    }, 120_000 + KILLS * 5_000);
  }
});

describe("simulated reboot", () => {
  test("netns gone, cache kept, boot id changed: the daemon frees every old reservation at start; a full range of new pods gets addresses", async () => {
    const dir = join(tmp.path, "reboot");
    const sock = join(dir, "run", "cni.sock");
    const bootFile = join(dir, "boot_id");
    const state = join(dir, "state");
    const cache = join(dir, "cache");
    const ipam = join(dir, "ipam");
    const confs = join(dir, "net.d");
    const br = `${prefix}rb`;
    bridges.add(br);
    mkdirSync(confs, { recursive: true });
    // a /28: 13 addresses for pods (.2 - .14; .1 is the gateway)
    writeFileSync(join(confs, "10-reboot.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "reboot", plugins: [{ type: "bridge", bridge: br, isGateway: true, ipMasq: true, ipam: { type: "host-local", subnet: "10.98.0.0/28", dataDir: ipam } }] }));
    writeFileSync(bootFile, "11111111-aaaa-4aaa-8aaa-000000000001\n");
    const env = { ...process.env, CNIKIT_BOOT_ID_FILE: bootFile };
    const flags = ["--state-dir", state, "--cni-cache-dir", cache, "--reconcile-interval", "0", "--healthz", `127.0.0.1:${PORT + 1}`];
    let d = await startDaemon(sock, flags, env);
    daemons.push(d);
    const add = async (pod: { cid: string; netns: string }) => {
      const p = Bun.spawn([CNIKIT, "add", "reboot", pod.netns], {
        env: { PATH: process.env.PATH!, NETCONFPATH: confs, CNI_PATH: shimBin, CNI_CACHE_DIR: cache, CNI_CONTAINERID: pod.cid, CNIKIT_SOCKET: sock, CNIKIT_STATE_DIR: state, CNIKIT_BOOT_ID_FILE: bootFile },
        stdout: "pipe", stderr: "pipe",
      });
      const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
      return { code, out };
    };
    const reserved = () => filesIn(join(ipam, "reboot")).filter((f) => f.startsWith("10.")).length;
    const before: string[] = [];
    for (let i = 0; i < 13; i++) {
      const r = await add(newPod("r"));
      expect(r.code).toBe(0);
      before.push(JSON.parse(r.out).ips[0].address);
    }
    expect(new Set(before).size).toBe(13);
    const full = await add(newPod("r"));
    expect(full.code).not.toBe(0); // the range is full
    expect(reserved()).toBe(13);
    // the "reboot": the daemon and every pod's netns gone, the runtime's cache kept, a new boot id
    await d.kill();
    for (const n of [...netnses]) if (n.startsWith(`${prefix}r`)) delNetns(`/run/netns/${n}`);
    writeFileSync(bootFile, "22222222-bbbb-4bbb-8bbb-000000000002\n");
    expect(filesIn(join(cache, "results")).length).toBe(13);
    d = await startDaemon(sock, flags, env); // resolves once it serves: reconcile ran before
    daemons.push(d);
    expect(reserved()).toBe(0);
    const m = await (await fetch(`http://127.0.0.1:${PORT + 1}/metrics`)).text();
    expect(m).toContain('cnikit_reconcile_released_total{reason="reboot"} 13');
    expect(d.log()).toContain('"reason":"reboot"');
    const after: string[] = [];
    const pods = Array.from({ length: 13 }, () => newPod("n"));
    for (const pod of pods) {
      const r = await add(pod);
      expect(r.code).toBe(0);
      after.push(JSON.parse(r.out).ips[0].address);
    }
    expect(new Set(after).size).toBe(13);
    expect(ping(pods[0]!.netns, "10.98.0.1")).toBe(true);
    console.log(`crash: reboot: 13 of 13 old reservations freed at start; 13 new pods got ${after.length} distinct addresses`);
    await d.stop();
  }, 120_000);
});
