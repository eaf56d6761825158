/**
 * The eBPF datapath (issue 15) against the kernel's, everything in one run, interleaved, ratios:
 *  - same node: pod-to-pod TCP (iperf3) through overlay's `"datapath": "ebpf"` (veths and
 *    `bpf_redirect_peer`) against overlay's bridge; target at least 1.2x;
 *  - across nodes (two clusters side by side, each with a real etcd and `cnikit agent`s, one with
 *    `"Datapath": "ebpf"`, one with the kernel's vxlan): pod-to-pod TCP against node-to-node over
 *    the same underlay (target at least 0.95x) and against the kernel vxlan path (target above 1x);
 *    request/response latency with sockperf ping-pong (TCP), pod-to-pod against node-to-node
 *    (target within 1.05x);
 *  - ADD and DEL of overlay (as a process, as a runtime runs it) with the eBPF datapath against the
 *    bridge; target no slower (at most 1.0x).
 * The pins live on a bpffs mounted in a mount namespace of the bench's own (agents and plugins
 * enter it), never under the machine's /sys/fs/bpf. BENCH_ITER sets the ADD/DEL count (default 20),
 * BENCH_ROUNDS the throughput/latency rounds (default 5).
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster, type Node } from "../test/support/cluster.ts";
import { iperf3Throughput } from "../test/support/tcp.ts";
import { assertPrivate, median, pluginDirs, report, runPlugin } from "./lib.ts";

assertPrivate();
const ITER = Number(process.env.BENCH_ITER ?? 20);
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
const holder = Bun.spawn(["unshare", "-m", "--propagation", "slave", "sh", "-c", `mount -t bpf bpf '${bpffs}' && exec sleep 100000`], { stdout: "ignore", stderr: "inherit" });
const MNT = `/proc/${holder.pid}/ns/mnt`;
for (let i = 0; Bun.spawnSync(["nsenter", `--mount=${MNT}`, "stat", "-f", "-c", "%T", bpffs]).stdout.toString().trim() !== "bpf_fs"; i++) {
  if (i > 100) throw new Error("the bench's bpffs did not come up");
  await Bun.sleep(50);
}

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
const LEASE = "FLANNEL_NETWORK=10.130.0.0/16\nFLANNEL_SUBNET=10.130.1.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n";
writeFileSync(join(base, "subnet.env"), LEASE);
const SIDES = ["bridge", "ebpf"] as const;
type Side = (typeof SIDES)[number];
function overlayConf(side: Side): string {
  return JSON.stringify({
    cniVersion: "1.1.0", name: `bench-${side}`, type: "overlay", subnetFile: join(base, "subnet.env"), dataDir: join(base, `data-${side}`),
    ...(side === "ebpf" ? { datapath: "ebpf", bpfPinDir: join(bpffs, "same-node") } : {}),
    delegate: { bridge: `${tag}br`, ipam: { dataDir: join(base, `ipam-${side}`) } },
  });
}
const overlayEnv = (cmd: string, cid: string, ns: string): Record<string, string> => ({
  PATH: process.env.PATH!, CNI_COMMAND: cmd, CNI_CONTAINERID: cid, CNI_NETNS: ns, CNI_IFNAME: "eth0", CNI_PATH: dirs.cnikit,
});
// both sides run through the same nsenter into the bench's mount namespace
const wrapped = join(base, "overlay-in-mnt");
writeFileSync(wrapped, `#!/bin/sh\nexec nsenter --mount=${MNT} ${join(dirs.cnikit, "overlay")}\n`, { mode: 0o755 });

async function addPod(side: Side, name: string): Promise<{ ns: string; ip: string }> {
  const ns = netns(name);
  const r = await runPlugin(wrapped, overlayEnv("ADD", name, ns), overlayConf(side));
  return { ns, ip: (JSON.parse(r.stdout).ips[0].address as string).split("/")[0]! };
}

async function sameNode(): Promise<{ ok: boolean; lines: string[] }> {
  const pods = { bridge: [await addPod("bridge", `${tag}b1`), await addPod("bridge", `${tag}b2`)], ebpf: [await addPod("ebpf", `${tag}e1`), await addPod("ebpf", `${tag}e2`)] };
  const rate: Record<Side, number[]> = { bridge: [], ebpf: [] };
  const lat: Record<Side, number[]> = { bridge: [], ebpf: [] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const side of i % 2 ? [...SIDES].reverse() : SIDES) {
      const [a, b] = pods[side];
      rate[side].push(await iperf3Throughput(a!.ns, b!.ns, b!.ip, 5500 + i, 2000, pin));
      lat[side].push(await sockperfLatency(a!.ns, b!.ns, b!.ip, 5600 + i));
    }
  }
  const r = median(rate.ebpf) / median(rate.bridge);
  const l = median(lat.ebpf) / median(lat.bridge);
  return {
    ok: r >= 1.2,
    lines: [
      `same node, pod-to-pod TCP: ebpf ${gb(median(rate.ebpf))} vs bridge ${gb(median(rate.bridge))} = ${r.toFixed(2)}x (target >= 1.2x) ${r >= 1.2 ? "MET" : "MISSED"}`,
      `same node, TCP ping-pong latency (sockperf, median): ebpf ${median(lat.ebpf).toFixed(1)} us vs bridge ${median(lat.bridge).toFixed(1)} us = ${l.toFixed(2)}x`,
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
// across nodes: two 2-node clusters side by side, ebpf and kernel vxlan

async function cluster(kind: Side, n: number): Promise<{ c: Cluster; pods: { ns: string; ip: string }[] }> {
  const dir = join(base, `cluster-${kind}`);
  mkdirSync(dir);
  const ebpf = kind === "ebpf";
  const c = new Cluster({ prefix: `${tag}${kind[0]}`, dir, underlayNet: n, etcdPort: 23900 + n, mountNs: MNT, ...(ebpf ? { overlay: { datapath: "ebpf" } } : {}) });
  await c.startEtcd();
  const etcd = await c.client();
  const key = `/bench-${kind}/network`;
  await etcd.put(`${key}/config`).value(JSON.stringify({ Network: `10.${n}.0.0/16`, Backend: { Type: "vxlan", VNI: 5, ...(ebpf ? { Datapath: "ebpf" } : {}) } }));
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
  const clusters: Record<Side, Awaited<ReturnType<typeof cluster>> | undefined> = { bridge: undefined, ebpf: undefined };
  try {
    clusters.ebpf = await cluster("ebpf", 131);
    clusters.bridge = await cluster("bridge", 132);
    const e = clusters.ebpf;
    const k = clusters.bridge;
    const [n1, n2] = e.c.nodes as [Node, Node];
    const rate = { node: [] as number[], ebpf: [] as number[], kernel: [] as number[] };
    const lat = { node: [] as number[], ebpf: [] as number[] };
    for (let i = 0; i < ROUNDS; i++) {
      const steps: [keyof typeof rate, () => Promise<number>][] = [
        ["node", () => iperf3Throughput(n1.ns, n2.ns, n2.ip, 5700 + i, 2000, pin)],
        ["ebpf", () => iperf3Throughput(e.pods[0]!.ns, e.pods[1]!.ns, e.pods[1]!.ip, 5710 + i, 2000, pin)],
        ["kernel", () => iperf3Throughput(k.pods[0]!.ns, k.pods[1]!.ns, k.pods[1]!.ip, 5720 + i, 2000, pin)],
      ];
      for (const [what, f] of i % 2 ? steps.reverse() : steps) rate[what].push(await f());
      const lsteps: [keyof typeof lat, () => Promise<number>][] = [
        ["node", () => sockperfLatency(n1.ns, n2.ns, n2.ip, 5730 + i)],
        ["ebpf", () => sockperfLatency(e.pods[0]!.ns, e.pods[1]!.ns, e.pods[1]!.ip, 5740 + i)],
      ];
      for (const [what, f] of i % 2 ? lsteps.reverse() : lsteps) lat[what].push(await f());
    }
    const vsNode = median(rate.ebpf) / median(rate.node);
    const vsKernel = median(rate.ebpf) / median(rate.kernel);
    const kernelVsNode = median(rate.kernel) / median(rate.node);
    const latRatio = median(lat.ebpf) / median(lat.node);
    return {
      ok: vsNode >= 0.95 && vsKernel > 1 && latRatio <= 1.05,
      lines: [
        `across nodes, pod-to-pod TCP (ebpf) ${gb(median(rate.ebpf))} vs node-to-node ${gb(median(rate.node))} = ${vsNode.toFixed(2)}x (target >= 0.95x) ${vsNode >= 0.95 ? "MET" : "MISSED"}`,
        `across nodes, pod-to-pod TCP: ebpf vs the kernel vxlan path ${gb(median(rate.kernel))} = ${vsKernel.toFixed(2)}x (target > 1x) ${vsKernel > 1 ? "MET" : "MISSED"}; kernel vxlan vs node-to-node ${kernelVsNode.toFixed(2)}x`,
        `across nodes, TCP ping-pong latency (sockperf, median): ebpf pod-to-pod ${median(lat.ebpf).toFixed(1)} us vs node-to-node ${median(lat.node).toFixed(1)} us = ${latRatio.toFixed(2)}x (target <= 1.05x) ${latRatio <= 1.05 ? "MET" : "MISSED"}`,
      ],
    };
  } finally {
    for (const x of [clusters.ebpf, clusters.bridge]) await x?.c.destroy();
  }
}

let ok = true;
try {
  const s = await sameNode();
  const x = await crossNode();
  ok = (await addDel()) && ok;
  console.log("");
  for (const l of [...s.lines, ...x.lines]) console.log(l);
  ok = s.ok && x.ok && ok;
} finally {
  for (const n of made) Bun.spawnSync(["ip", "netns", "del", n]);
  Bun.spawnSync(["ip", "link", "del", `${tag}br`]);
  holder.kill();
  await holder.exited;
  dirs.remove();
  rmSync(base, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
