/**
 * The eBPF datapath end to end: a real etcd, three node namespaces each running `cnikit agent`
 * with `"Backend": {"Type": "vxlan", "Datapath": "ebpf"}`, and pods added through the overlay
 * plugin with `"datapath": "ebpf"`. No bridge anywhere: pods on the same node reach each other by
 * `bpf_redirect_peer`, pods on other nodes through each node's collect-metadata vxlan device with
 * the tunnel key from the LPM map the agent fills from the leases (a lease that comes and goes
 * comes and goes in every node's map). Pod to node, node to pod (on its node and, through the
 * agent's encap routes, on others) and pod to the outside (masqueraded) still work. An agent restart keeps traffic flowing (pinned maps and programs);
 * DEL and GC leave no endpoint, program or pod program pin behind.
 *
 * Everything runs in this test's private network namespace; the bpffs holding the pins is mounted
 * on a temporary directory inside a mount namespace of this test's own (a slave of the machine's,
 * so nothing mounted in it shows outside), which agents and plugins enter with nsenter. Names carry
 * the prefix "ckeb" and a run id.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Etcd3 } from "etcd3";
import { containerIdFor } from "../../../src/cli/network.ts";
import type { Cluster, Node } from "../../support/cluster.ts";
import { EbpfCluster } from "../../support/ebpf-cluster.ts";
import { assertPrivateNetns, must, ping, run, runPrefix } from "../../support/netns.ts";
import { ask, whoamiServer } from "../../support/tcp.ts";

assertPrivateNetns();

type Pod = { ns: string; ip: string; node: Node };

const VNI = 9;
const prefix = runPrefix("eb");
const key = `/${prefix}/network`;
let ec!: EbpfCluster;
let c!: Cluster;
let etcd!: Etcd3;
let bpffs = "";
const pods: Pod[] = [];

const pinDir = (n: Node) => ec.pinDir(n);
const report = (n: Node) => ec.report(n);
const net = (n: Node) => ec.net(n);
const pins = (n: Node) => c.inNode(n, ["ls", pinDir(n)]).stdout.split("\n").filter(Boolean).sort();
const subnetOf = (n: Node) => ec.subnetOf(n);
const counter = (n: Node, k: string) => ec.counter(n, k);

beforeAll(async () => {
  ec = await EbpfCluster.start({ prefix, tag: "ebpf-cluster", underlayNet: 78, etcdPort: 23796, key, nodes: 3, config: { Network: "10.98.0.0/16", Backend: { Type: "vxlan", VNI, Datapath: "ebpf" } } });
  ({ c, etcd, bpffs } = ec);
  for (const n of c.nodes) await c.until(`${n.name}'s map of 2 other nodes`, () => net(n)?.remotes.length === 2);
  for (const n of c.nodes) for (const t of ["a", "b"]) pods.push({ ...c.addPod(n, t), node: n });
}, 90_000);

afterAll(async () => {
  await ec?.destroy();
});

describe("three nodes, eBPF datapath", () => {
  test("agents: an external vxlan device with the vxlan program, other nodes' subnets in the LPM map and as encap routes", () => {
    const subnets = c.nodes.map(subnetOf);
    for (const [i, n] of c.nodes.entries()) {
      expect(readFileSync(n.subnetFile, "utf8")).toContain(`CNIKIT_BPF_PIN_DIR=${pinDir(n)}\n`);
      const dev = JSON.parse(c.inNode(n, ["ip", "-j", "-d", "link", "show", `${prefix}.${VNI}`]).stdout)[0];
      expect(dev.linkinfo.info_data.external).toBe(true);
      expect(dev.mtu).toBe(1450);
      const r = net(n)!;
      expect(r.vxlanIfindex).toBe(dev.ifindex);
      expect(r.remotes).toEqual(c.nodes.filter((_, j) => j !== i).map((m, k) => ({ subnet: subnets.filter((_, j) => j !== i)[k]!, remote: m.ip, vni: VNI })).sort((a, b) => a.subnet.localeCompare(b.subnet, "en", { numeric: true })));
      // for the node's own traffic: the same tunnel key on a route, no neighbour or FDB entry
      const routes = c.inNode(n, ["ip", "route", "show", "proto", "210"]).stdout.trim().split("\n").sort();
      expect(routes.length).toBe(2);
      for (const rs of r.remotes) expect(routes.some((x) => x.startsWith(`${rs.subnet} `) && x.includes(`encap ip id ${VNI} `) && x.includes(` dst ${rs.remote} `) && x.includes(`dev ${prefix}.${VNI} `))).toBe(true);
      expect(c.inNode(n, ["ip", "neigh", "show", "dev", `${prefix}.${VNI}`]).stdout).toBe("");
      expect(report(n).programs.map((p) => `${p.ifname} ${p.progName}`)).toContain(`${prefix}.${VNI} cnikit_vxlan`);
    }
  });

  test("pods: on veths with the pod program, endpoints in the map, the gateway a permanent neighbour, no bridge", () => {
    for (const n of c.nodes) {
      const mine = pods.filter((p) => p.node === n);
      expect(net(n)!.endpoints.map((e) => e.ip).sort()).toEqual(mine.map((p) => p.ip).sort());
      expect(report(n).programs.filter((p) => p.progName === "cnikit_pod").length).toBe(2);
      expect(c.inNode(n, ["ip", "-j", "link", "show", "type", "bridge"]).stdout.trim() || "[]").toBe("[]");
    }
    const p = pods[0]!;
    expect(run(["nsenter", `--net=${p.ns}`, "ip", "neigh", "show", "dev", "eth0"]).stdout).toMatch(/^10\.98\.\d+\.1 lladdr \S+ PERMANENT/m);
    expect(run(["nsenter", `--net=${p.ns}`, "ip", "route", "show", "default"]).stdout).toContain("default via 10.98.");
  });

  test("every pod reaches every other pod (ping), on its node and across nodes, through the programs", () => {
    const before = c.nodes.map((n) => [counter(n, "podToLocal"), counter(n, "podToRemote"), counter(n, "tunnelToLocal")]);
    const bad: string[] = [];
    for (const a of pods) for (const b of pods) if (a !== b && !ping(a.ns, b.ip)) bad.push(`${a.ip}->${b.ip}`);
    expect(bad).toEqual([]);
    for (const [i, n] of c.nodes.entries()) {
      expect(counter(n, "podToLocal")).toBeGreaterThan(before[i]![0]!);
      expect(counter(n, "podToRemote")).toBeGreaterThan(before[i]![1]!);
      expect(counter(n, "tunnelToLocal")).toBeGreaterThan(before[i]![2]!);
    }
  });

  test("TCP across nodes keeps the pod's address; pod to node, node to pod (its own and others'); the outside sees the node's address", async () => {
    const [a, , b] = pods; // a on n1, b on n2
    const inPod = await whoamiServer(b!.ns, 7201);
    const onNode = await whoamiServer(a!.node.ns, 7202);
    const outside = await whoamiServer("", 7203); // this namespace: etcd's address, outside 10.98/16
    try {
      expect(ask(a!.ns, b!.ip, 7201)).toBe(a!.ip);
      expect(ask(a!.ns, a!.node.ip, 7202)).toBe(a!.ip);
      expect(ask(a!.ns, c.etcdIP, 7203)).toBe(a!.node.ip);
    } finally {
      inPod.stop();
      onNode.stop();
      outside.stop();
    }
    expect(c.inNode(a!.node, ["ping", "-c", "1", "-W", "2", a!.ip]).code).toBe(0);
    // a node reaches other nodes' pods too (encap route out, the pods' answers through the tunnel)
    const toRemote = await whoamiServer(b!.ns, 7204);
    try {
      expect(c.inNode(a!.node, ["ping", "-c", "1", "-W", "2", b!.ip]).code).toBe(0);
      expect(ask(a!.node.ns, b!.ip, 7204)).toBe(subnetOf(a!.node).replace(/\/.*/, ""));
    } finally {
      toRemote.stop();
    }
  });

  test("a lease that comes and goes comes and goes in every node's map", async () => {
    const fake = `${key}/subnets/10.98.200.0-24`;
    await etcd.put(fake).value(JSON.stringify({ PublicIP: "192.168.78.50", BackendType: "vxlan", BackendData: { VNI, VtepMAC: "0a:00:00:00:00:50" } }));
    for (const n of c.nodes) await c.until(`${n.name} to route 10.98.200.0/24`, () => net(n)!.remotes.some((r) => r.subnet === "10.98.200.0/24" && r.remote === "192.168.78.50"));
    await etcd.delete().key(fake);
    for (const n of c.nodes) await c.until(`${n.name} to forget 10.98.200.0/24`, () => net(n)!.remotes.length === 2);
  });

  test("an agent restart keeps traffic flowing and finds its device and map as they were", async () => {
    const [a, , b] = pods;
    const n1 = c.nodes[0]!;
    const remotes = JSON.stringify(net(n1)!.remotes);
    const progs = JSON.stringify(report(n1).programs);
    const pinger = Bun.spawn(["nsenter", `--net=${a!.ns}`, "ping", "-c", "60", "-i", "0.1", "-W", "1", b!.ip], { stdout: "pipe", stderr: "ignore" });
    await Bun.sleep(500);
    await c.stopAgent(n1);
    await Bun.sleep(1000); // no agent at all: the pinned datapath carries on
    ec.startAgent(n1);
    await c.until("the restarted agent to be ready", () => readFileSync(n1.agent!.log, "utf8").includes("agent ready"));
    await pinger.exited;
    const out = await new Response(pinger.stdout).text();
    const received = Number(/(\d+) received/.exec(out)?.[1] ?? 0);
    expect(received).toBeGreaterThanOrEqual(58);
    expect(JSON.stringify(net(n1)!.remotes)).toBe(remotes);
    expect(JSON.stringify(report(n1).programs)).toBe(progs);
    expect(ping(b!.ns, a!.ip)).toBe(true);
  });

  test("DEL removes the pod's endpoint and program; GC removes the endpoint of a pod that vanished", () => {
    const n2 = c.nodes[1]!;
    const [gone, kept] = pods.filter((p) => p.node === n2) as [Pod, Pod];
    // a pod that vanished without DEL: its namespace (and so its veth) gone, the runtime forgot it
    run(["ip", "netns", "del", gone.ns.split("/").pop()!]);
    const cid = containerIdFor(gone.ns);
    const cache = join(ec.tmp.path, n2.name, "cache");
    for (const f of readdirSync(cache, { recursive: true }) as string[]) if (f.includes(cid)) rmSync(join(cache, f), { force: true, recursive: true });
    expect(net(n2)!.endpoints.map((e) => e.ip)).toContain(gone.ip);
    const gc = c.cnikit(n2, ["gc", "cluster", "--valid", `${containerIdFor(kept.ns)}/eth0`]);
    expect(gc.stdout).toBe("");
    expect(gc.stderr).toContain(`GC removed the eBPF endpoints of ${gone.ip}`);
    expect(gc.code).toBe(0);
    expect(net(n2)!.endpoints.map((e) => e.ip)).toEqual([kept.ip]);
    expect(ping(pods[0]!.ns, kept.ip)).toBe(true);

    // DEL of every other pod: no endpoint, no pod program, no pod program pin; the agent's pins stay
    for (const p of pods) {
      if (p === gone) continue;
      const r = c.cnikit(p.node, ["del", "cluster", p.ns]);
      expect(r.code).toBe(0);
    }
    for (const n of c.nodes) {
      expect(net(n)!.endpoints).toEqual([]);
      expect(report(n).programs.map((p) => p.progName)).toEqual(["cnikit_vxlan"]);
      expect(pins(n).filter((p) => !p.startsWith("prog_vxlan_"))).toEqual(["config", "endpoints", "remotes", "stats"]);
      expect(readdirSync(join(ec.tmp.path, n.name, "overlay"))).toEqual([]);
    }
    // DEL again is fine
    expect(c.cnikit(pods[0]!.node, ["del", "cluster", pods[0]!.ns]).code).toBe(0);
  });
});

test("the pins live only in the test's mount namespace (here the directory is empty, no bpffs): they go with it", () => {
  expect(readdirSync(bpffs)).toEqual([]);
  expect(must(["stat", "-f", "-c", "%T", bpffs]).trim()).not.toBe("bpf_fs");
});
