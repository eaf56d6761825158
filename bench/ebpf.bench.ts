/**
 * The eBPF datapath (issue 15) against the kernel's, everything in one run, interleaved, ratios:
 *  - same node: pod-to-pod TCP (iperf3) through overlay's `"datapath": "ebpf"` (veths and
 *    `bpf_redirect_peer`) against overlay's bridge, and the same with `"bigTCP": true` (IPv4 BIG
 *    TCP on the pods' veths, what an agent with `"BigTCP": true` offers); target at least 1.2x,
 *    judged on the better of the two, and each line says which;
 *  - across nodes (three clusters side by side, each with a real etcd and `cnikit agent`s: one with
 *    `"Datapath": "ebpf"` through its vxlan tunnel, one with `"Datapath": "ebpf"` and
 *    `"DirectRouting": true` (native routing, no tunnel), one with the kernel's vxlan): pod-to-pod
 *    TCP against node-to-node over the same underlay (target at least 0.95x) and against the
 *    kernel vxlan path (target above 1x); request/response latency with sockperf ping-pong (TCP),
 *    pod-to-pod against node-to-node (target within 1.05x). Both eBPF variants are reported; the
 *    targets are judged on the better one, and each line says which;
 *  - ADD and DEL of overlay (as a process, as a runtime runs it) with the eBPF datapath against the
 *    bridge; target no slower (at most 1.0x).
 * The pins live on a bpffs mounted in a mount namespace of the bench's own (agents and plugins
 * enter it), never under the machine's /sys/fs/bpf. BENCH_ITER sets the ADD/DEL count (default 150:
 * one DEL's veth unregister alone varies 13-40 ms, and with 20 a side the ratio swung by +-3 %),
 * BENCH_ROUNDS the throughput/latency rounds (default 5); BENCH_ONLY=adddel runs only ADD/DEL,
 * BENCH_ONLY=samenode only the same-node part; BENCH_BIG_TCP sets the same-node BIG TCP size (what an
 * agent writes as CNIKIT_BIG_TCP; default cnikit's 196608).
 */

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { privateBpffs } from "../test/support/bpffs.ts";
import { Cluster, type Node } from "../test/support/cluster.ts";
import { iperf3Throughput } from "../test/support/tcp.ts";
import { assertPrivate, median, pluginDirs, report, runPlugin } from "./lib.ts";

assertPrivate();
const ITER = Number(process.env.BENCH_ITER ?? 150);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WARMUP = 3;
const tag = `ckbe${process.pid % 1000}`;
const base = mkdtempSync(join(tmpdir(), "cnikit-bench-ebpf-"));
const bpffs = join(base, "bpffs");
mkdirSync(bpffs);
const pin = navigator.hardwareConcurrency >= 2;
const gb = (x: number) => `${(x / 1e9).toFixed(2)} Gbit/s`;
const made: string[] = [];

function sh(cmd: string[]): string {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}
function netns(name: string): string {
  sh(["ip", "netns", "add", name]);
  made.push(name);
  sh(["ip", "-n", name, "link", "set", "lo", "up"]);
  return `/run/netns/${name}`;
}

// a namespace first (so /run/netns is a shared mount), then the mount namespace holding the bpffs
netns(`${tag}0`);
const holder = await privateBpffs(bpffs);
const MNT = holder.mountNs;

/** sockperf ping-pong over TCP from `from` to `to`'s `ip`: the median round trip / 2 in µs. */
async function sockperfLatency(from: string, to: string, ip: string, port: number, sec = 2): Promise<number> {
  const server = Bun.spawn(["nsenter", `--net=${to}`, ...(pin ? ["taskset", "-c", "1"] : []), "sockperf", "server", "--tcp", "-i", ip, "-p", String(port)], { stdout: "pipe", stderr: "pipe" });
  try {
    await Bun.sleep(300);
    const r = Bun.spawnSync(["nsenter", `--net=${from}`, ...(pin ? ["taskset", "-c", "0"] : []), "sockperf", "ping-pong", "--tcp", "-i", ip, "-p", String(port), "-t", String(sec)], { stdout: "pipe", stderr: "pipe" });
    const out = r.stdout.toString() + r.stderr.toString();
    const m = /percentile 50\.000 =\s+([\d.]+)/.exec(out);
    if (!m) throw new Error(`sockperf: ${out.slice(-600)}`);
    return Number(m[1]);
  } finally {
    server.kill();
    await server.exited;
  }
}

// ---------------------------------------------------------------------------------------------
// same node: overlay with the eBPF datapath against overlay with the bridge, plugins as processes

const dirs = pluginDirs();
const SIDES = ["bridge", "ebpf"] as const;
type Side = (typeof SIDES)[number];
/** Same-node variants: the two sides, and ebpf with BIG TCP (its own subnet and pins). */
type Variant = Side | "big";
const SUBNET: Record<Variant, number> = { bridge: 1, ebpf: 1, big: 2 };
for (const n of new Set(Object.values(SUBNET))) {
  const big = n === SUBNET.big && process.env.BENCH_BIG_TCP ? `CNIKIT_BIG_TCP=${process.env.BENCH_BIG_TCP}\n` : "";
  writeFileSync(join(base, `subnet-${n}.env`), `FLANNEL_NETWORK=10.130.0.0/16\nFLANNEL_SUBNET=10.130.${n}.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n${big}`);
}
function overlayConf(side: Variant): string {
  return JSON.stringify({
    cniVersion: "1.1.0", name: `bench-${side}`, type: "overlay", subnetFile: join(base, `subnet-${SUBNET[side]}.env`), dataDir: join(base, `data-${side}`),
    ...(side === "ebpf" ? { datapath: "ebpf", bpfPinDir: join(bpffs, "same-node") } : {}),
    ...(side === "big" ? { datapath: "ebpf", bigTCP: true, bpfPinDir: join(bpffs, "same-node-big") } : {}),
    delegate: { bridge: `${tag}br`, ipam: { dataDir: join(base, `ipam-${side}`) } },
  });
}
const overlayEnv = (cmd: string, cid: string, ns: string): Record<string, string> => ({
  PATH: process.env.PATH!, CNI_COMMAND: cmd, CNI_CONTAINERID: cid, CNI_NETNS: ns, CNI_IFNAME: "eth0", CNI_PATH: dirs.cnikit,
});
// both sides run through the same nsenter into the bench's mount namespace
const wrapped = join(base, "overlay-in-mnt");
writeFileSync(wrapped, `#!/bin/sh\nexec nsenter --mount=${MNT} ${join(dirs.cnikit, "overlay")}\n`, { mode: 0o755 });

async function addPod(side: Variant, name: string): Promise<{ ns: string; ip: string }> {
  const ns = netns(name);
  const r = await runPlugin(wrapped, overlayEnv("ADD", name, ns), overlayConf(side));
  return { ns, ip: (JSON.parse(r.stdout).ips[0].address as string).split("/")[0]! };
}

async function sameNode(): Promise<{ ok: boolean; lines: string[] }> {
  const variants: Variant[] = ["bridge", "ebpf", "big"];
  const pods = {} as Record<Variant, { ns: string; ip: string }[]>;
  const letter: Record<Variant, string> = { bridge: "b", ebpf: "e", big: "g" };
  for (const v of variants) pods[v] = [await addPod(v, `${tag}${letter[v]}1`), await addPod(v, `${tag}${letter[v]}2`)];
  const rate: Record<Variant, number[]> = { bridge: [], ebpf: [], big: [] };
  const lat: Record<Variant, number[]> = { bridge: [], ebpf: [], big: [] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const [j, v] of (i % 2 ? [...variants].reverse() : variants).entries()) {
      const [a, b] = pods[v];
      rate[v].push(await iperf3Throughput(a!.ns, b!.ns, b!.ip, 5500 + 10 * j + i, 2000, pin));
      lat[v].push(await sockperfLatency(a!.ns, b!.ns, b!.ip, 5600 + 10 * j + i));
    }
  }
  const m = (xs: number[]) => median(xs);
  const best = m(rate.big) >= m(rate.ebpf) ? "big" : "ebpf";
  const bigName = `ebpf with BIG TCP${process.env.BENCH_BIG_TCP ? ` (${process.env.BENCH_BIG_TCP} B)` : ""}`;
  const name = { ebpf: "ebpf", big: bigName };
  const r = m(rate[best]) / m(rate.bridge);
  return {
    ok: r >= 1.2,
    lines: [
      `same node, pod-to-pod TCP: ebpf ${gb(m(rate.ebpf))} (${(m(rate.ebpf) / m(rate.bridge)).toFixed(2)}x), ${bigName} ${gb(m(rate.big))} (${(m(rate.big) / m(rate.bridge)).toFixed(2)}x) of bridge ${gb(m(rate.bridge))}`,
      `same node, pod-to-pod TCP (${name[best]}) vs bridge = ${r.toFixed(2)}x (target >= 1.2x) ${r >= 1.2 ? "MET" : "MISSED"}`,
      `same node, TCP ping-pong latency (sockperf, median): ebpf ${m(lat.ebpf).toFixed(1)} us (${(m(lat.ebpf) / m(lat.bridge)).toFixed(2)}x), ${bigName} ${m(lat.big).toFixed(1)} us (${(m(lat.big) / m(lat.bridge)).toFixed(2)}x), bridge ${m(lat.bridge).toFixed(1)} us`,
    ],
  };
}

async function addDel(): Promise<boolean> {
  const add: Record<Side, number[]> = { bridge: [], ebpf: [] };
  const del: Record<Side, number[]> = { bridge: [], ebpf: [] };
  for (let i = 0; i < WARMUP + ITER; i++) {
    for (const side of i % 2 ? [...SIDES].reverse() : SIDES) {
      const name = `${tag}${side[0]}x${i}`;
      const ns = netns(name);
      const a = await runPlugin(wrapped, overlayEnv("ADD", name, ns), overlayConf(side));
      const d = await runPlugin(wrapped, overlayEnv("DEL", name, ns), overlayConf(side));
      sh(["ip", "netns", "del", name]);
      made.splice(made.indexOf(name), 1);
      if (i >= WARMUP) {
        add[side].push(a.ms);
        del[side].push(d.ms);
      }
    }
  }
  return report(`overlay ADD/DEL, ${ITER} pods each, each a process (other pods of the network present): ebpf / bridge`, [
    { what: "overlay ADD (ebpf / bridge)", cnikit: add.ebpf, reference: add.bridge, target: 1.0 },
    { what: "overlay DEL (ebpf / bridge)", cnikit: del.ebpf, reference: del.bridge, target: 1.0 },
  ]);
}

// ---------------------------------------------------------------------------------------------
// across nodes: three 2-node clusters side by side: ebpf over its tunnel, ebpf routed natively
// (DirectRouting), and the kernel's vxlan

type Kind = "ebpf" | "direct" | "kernel";

async function cluster(kind: Kind, n: number): Promise<{ c: Cluster; pods: { ns: string; ip: string }[] }> {
  const dir = join(base, `cluster-${kind}`);
  mkdirSync(dir);
  const ebpf = kind !== "kernel";
  const c = new Cluster({ prefix: `${tag}${kind[0]}`, dir, underlayNet: n, etcdPort: 23900 + n, mountNs: MNT, ...(ebpf ? { overlay: { datapath: "ebpf" } } : {}) });
  await c.startEtcd();
  const etcd = await c.client();
  const key = `/bench-${kind}/network`;
  const backend = { Type: "vxlan", VNI: 5, ...(ebpf ? { Datapath: "ebpf" } : {}), ...(kind === "direct" ? { DirectRouting: true } : {}) };
  await etcd.put(`${key}/config`).value(JSON.stringify({ Network: `10.${n}.0.0/16`, Backend: backend }));
  for (let i = 1; i <= 2; i++) {
    const node = c.addNode(i);
    c.startAgent(node, key, ebpf ? ["--bpf-pin-dir", join(bpffs, `${kind}-${node.name}`)] : []);
  }
  for (const node of c.nodes) await c.until(`${node.name}'s subnet.env`, () => existsSync(node.subnetFile), 30_000);
  const pods = [c.addPod(c.nodes[0]!, "a"), c.addPod(c.nodes[1]!, "b")];
  await c.until("the pods to reach each other", () => Bun.spawnSync(["nsenter", `--net=${pods[0]!.ns}`, "ping", "-c", "1", "-W", "1", pods[1]!.ip]).exitCode === 0, 30_000);
  return { c, pods };
}

async function crossNode(): Promise<{ ok: boolean; lines: string[] }> {
  const kinds: [Kind, number][] = [["ebpf", 131], ["kernel", 132], ["direct", 133]];
  const clusters: Partial<Record<Kind, Awaited<ReturnType<typeof cluster>>>> = {};
  try {
    for (const [kind, n] of kinds) clusters[kind] = await cluster(kind, n);
    const [n1, n2] = clusters.ebpf!.c.nodes as [Node, Node];
    const pods = (k: Kind) => clusters[k]!.pods;
    const rate = { node: [] as number[], ebpf: [] as number[], direct: [] as number[], kernel: [] as number[] };
    const lat = { node: [] as number[], ebpf: [] as number[], direct: [] as number[] };
    for (let i = 0; i < ROUNDS; i++) {
      const steps: [keyof typeof rate, () => Promise<number>][] = [
        ["node", () => iperf3Throughput(n1.ns, n2.ns, n2.ip, 5700 + i, 2000, pin)],
        ...(["ebpf", "direct", "kernel"] as const).map((k, j): [Kind, () => Promise<number>] => [k, () => iperf3Throughput(pods(k)[0]!.ns, pods(k)[1]!.ns, pods(k)[1]!.ip, 5710 + 10 * j + i, 2000, pin)]),
      ];
      for (const [what, f] of i % 2 ? steps.reverse() : steps) rate[what].push(await f());
      const lsteps: [keyof typeof lat, () => Promise<number>][] = [
        ["node", () => sockperfLatency(n1.ns, n2.ns, n2.ip, 5750 + i)],
        ...(["ebpf", "direct"] as const).map((k, j): [keyof typeof lat, () => Promise<number>] => [k, () => sockperfLatency(pods(k)[0]!.ns, pods(k)[1]!.ns, pods(k)[1]!.ip, 5760 + 10 * j + i)]),
      ];
      for (const [what, f] of i % 2 ? lsteps.reverse() : lsteps) lat[what].push(await f());
    }
    const m = (xs: number[]) => median(xs);
    const best = m(rate.direct) >= m(rate.ebpf) ? "direct" : "ebpf";
    const bestLat = m(lat.direct) <= m(lat.ebpf) ? "direct" : "ebpf";
    const vsNode = m(rate[best]) / m(rate.node);
    const vsKernel = m(rate[best]) / m(rate.kernel);
    const latRatio = m(lat[bestLat]) / m(lat.node);
    const name = { ebpf: "ebpf over its tunnel", direct: "ebpf routed natively (DirectRouting)" };
    return {
      ok: vsNode >= 0.95 && vsKernel > 1 && latRatio <= 1.05,
      lines: [
        `across nodes, pod-to-pod TCP: ebpf tunnel ${gb(m(rate.ebpf))} (${(m(rate.ebpf) / m(rate.node)).toFixed(2)}x), ebpf direct ${gb(m(rate.direct))} (${(m(rate.direct) / m(rate.node)).toFixed(2)}x), kernel vxlan ${gb(m(rate.kernel))} (${(m(rate.kernel) / m(rate.node)).toFixed(2)}x) of node-to-node ${gb(m(rate.node))}`,
        `across nodes, pod-to-pod TCP (${name[best]}) vs node-to-node = ${vsNode.toFixed(2)}x (target >= 0.95x) ${vsNode >= 0.95 ? "MET" : "MISSED"}`,
        `across nodes, pod-to-pod TCP (${name[best]}) vs the kernel vxlan path = ${vsKernel.toFixed(2)}x (target > 1x) ${vsKernel > 1 ? "MET" : "MISSED"}; ebpf tunnel vs kernel vxlan ${(m(rate.ebpf) / m(rate.kernel)).toFixed(2)}x`,
        `across nodes, TCP ping-pong latency (sockperf, median): ebpf tunnel ${m(lat.ebpf).toFixed(1)} us (${(m(lat.ebpf) / m(lat.node)).toFixed(2)}x), ebpf direct ${m(lat.direct).toFixed(1)} us (${(m(lat.direct) / m(lat.node)).toFixed(2)}x), node-to-node ${m(lat.node).toFixed(1)} us`,
        `across nodes, TCP ping-pong latency (${name[bestLat]}) vs node-to-node = ${latRatio.toFixed(2)}x (target <= 1.05x) ${latRatio <= 1.05 ? "MET" : "MISSED"}`,
      ],
    };
  } finally {
    for (const x of Object.values(clusters)) await x?.c.destroy();
  }
}

let ok = true;
try {
  // BENCH_ONLY=adddel: only the ADD/DEL part (a minute instead of four); samenode: only same node
  const only = process.env.BENCH_ONLY;
  // without the same-node part, the pods it leaves (other pods of the network) are made here
  if (only === "adddel") for (const v of SIDES) for (const k of [1, 2]) await addPod(v, `${tag}${v[0]}${k}`);
  const s = !only || only === "samenode" ? await sameNode() : { ok: true, lines: [] };
  const x = !only ? await crossNode() : { ok: true, lines: [] };
  ok = (only === "samenode" || (await addDel())) && ok;
  console.log("");
  // ADD/DEL wait for RCU grace periods (a veth's unregister always; a tcx attach would): their
  // length, and so the spread of those figures, depends on this setting of the machine
  console.log(`kernel ${readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()}, rcu_expedited=${readFileSync("/sys/kernel/rcu_expedited", "utf8").trim()}`);
  for (const l of [...s.lines, ...x.lines]) console.log(l);
  ok = s.ok && x.ok && ok;
} finally {
  for (const n of made) Bun.spawnSync(["ip", "netns", "del", n]);
  Bun.spawnSync(["ip", "link", "del", `${tag}br`]);
  await holder.stop();
  dirs.remove();
  rmSync(base, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
