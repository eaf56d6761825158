/**
 * The node agent (issue 6), measured in a cluster made inside this namespace (real etcd, node
 * namespaces on an underlay bridge, `cnikit agent` in each):
 *  - time from a new lease in etcd to its route on another node (vxlan);
 *  - time to program 200 peer leases written at once;
 *  - cross-node pod-to-pod TCP throughput against the same transfer between the node namespaces
 *    directly, for vxlan and host-gw (target: at least 0.85x), measured with iperf3: a sender
 *    written in JS spends so much of its core on itself that it hides the data path's cost.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NetlinkConn } from "../src/netlink/conn.ts";
import { agentRoutes } from "../src/agent/peer-routes.ts";
import { Cluster, type Node } from "../test/support/cluster.ts";
import { iperf3Throughput } from "../test/support/tcp.ts";
import { assertPrivate, median } from "./lib.ts";

assertPrivate();
const ITER = Number(process.env.BENCH_ITER ?? 20);
const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))]!;

/** A 3rd-octet subnet in the cluster network and a made-up lease for it. */
const fakeLease = (i: number) => ({
  key: `10.96.${100 + (i >> 2)}.${(i & 3) * 64}-26`,
  dst: `10.96.${100 + (i >> 2)}.${(i & 3) * 64}/26`,
  value: JSON.stringify({ PublicIP: `192.168.79.${10 + (i % 200)}`, BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: `0a:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}` } }),
});

async function cluster(tag: string, net: number, port: number, backend: Record<string, unknown>, nodes: number) {
  const dir = mkdtempSync(join(tmpdir(), `cnikit-bench-agent-${tag}-`));
  const c = new Cluster({ prefix: `ckba${tag}${process.pid % 100}`, dir, underlayNet: net, etcdPort: port });
  await c.startEtcd();
  const etcd = await c.client();
  const key = `/bench-${tag}/network`;
  await etcd.put(`${key}/config`).value(JSON.stringify({ Network: "10.96.0.0/16", SubnetLen: 24, Backend: backend }));
  for (let i = 1; i <= nodes; i++) c.startAgent(c.addNode(i), key);
  for (const n of c.nodes) await c.until(`${n.name}'s routes`, () => routesIn(n).size === nodes - 1, 20_000);
  return { c, etcd, key, dir, done: async () => { await c.destroy(); rmSync(dir, { recursive: true, force: true }); } };
}

const conns = new Map<string, NetlinkConn>();
function routesIn(n: Node) {
  let conn = conns.get(n.ns);
  if (!conn) conns.set(n.ns, (conn = NetlinkConn.open({ netns: n.ns })));
  return agentRoutes(conn);
}

async function leaseToRoute(): Promise<void> {
  const { c, etcd, key, done } = await cluster("v", 79, 23800, { Type: "vxlan" }, 2);
  try {
    const n1 = c.nodes[0]!;
    const times: number[] = [];
    for (let i = 0; i < ITER + 2; i++) {
      const l = fakeLease(i);
      const t0 = performance.now();
      await etcd.put(`${key}/subnets/${l.key}`).value(l.value);
      while (!routesIn(n1).has(l.dst)) await Bun.sleep(0.2);
      if (i >= 2) times.push(performance.now() - t0);
      await etcd.delete().key(`${key}/subnets/${l.key}`);
      while (routesIn(n1).has(l.dst)) await Bun.sleep(0.2);
    }
    console.log(`lease written -> route on another node (vxlan, ${ITER} runs): median ${fmt(median(times))}, p95 ${fmt(p95(times))}`);

    const N = 200;
    const t0 = performance.now();
    // 200 nodes joining at once: one write each, all in flight together
    await Promise.all(Array.from({ length: N }, (_, i) => fakeLease(i)).map((l) => etcd.put(`${key}/subnets/${l.key}`).value(l.value)));
    const written = performance.now() - t0;
    while (routesIn(n1).size < N + 1) await Bun.sleep(0.5);
    const all = performance.now() - t0;
    console.log(`${N} peer leases written at once -> all ${N} programmed: ${fmt(all)} (writes took ${fmt(written)}; ${(all / N).toFixed(2)} ms per peer)`);
    const t1 = performance.now();
    await etcd.delete().prefix(`${key}/subnets/10.96.1`);
    await etcd.delete().prefix(`${key}/subnets/10.96.2`);
    await etcd.delete().prefix(`${key}/subnets/10.96.3`);
    while (routesIn(n1).size > 1) await Bun.sleep(0.5);
    console.log(`${N} peer leases deleted -> all ${N} removed: ${fmt(performance.now() - t1)}`);
  } finally {
    await done();
  }
}

async function throughput(tag: string, net: number, port: number, backend: Record<string, unknown>): Promise<void> {
  const { c, done } = await cluster(tag, net, port, backend, 2);
  try {
    const [n1, n2] = c.nodes as [Node, Node];
    const a = c.addPod(n1, "a");
    const b = c.addPod(n2, "b");
    const pod: number[] = [];
    const node: number[] = [];
    // sender and receiver pinned to separate cores (when there are two): steadier ratios
    const pin = navigator.hardwareConcurrency >= 2;
    for (let i = 0; i < 5; i++) {
      node.push(await iperf3Throughput(n1.ns, n2.ns, n2.ip, 5300 + 2 * i, 2000, pin));
      pod.push(await iperf3Throughput(a.ns, b.ns, b.ip, 5301 + 2 * i, 2000, pin));
    }
    const gb = (x: number) => `${(x / 1e9).toFixed(2)} Gbit/s`;
    const ratio = median(pod) / median(node);
    console.log(`pod-to-pod across nodes (${backend.Type}): ${gb(median(pod))} vs node-to-node ${gb(median(node))} = ${ratio.toFixed(2)}x (target >= 0.85x) ${ratio >= 0.85 ? "MET" : "MISSED"}`);
  } finally {
    await done();
  }
}

try {
  await leaseToRoute();
  await throughput("x", 80, 23810, { Type: "vxlan" });
  await throughput("g", 81, 23820, { Type: "host-gw" });
} finally {
  for (const c of conns.values()) c.close();
}
process.exit(0);
