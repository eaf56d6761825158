/**
 * The bgp backend with node-to-node mesh only, inside one L2 segment, all in this test's private
 * namespace: a real etcd, three node namespaces each running `cnikit agent` (which runs BIRD 2 with
 * its files in the node's temp directory), two pods per node through `overlay`. Routes to the
 * other nodes' subnets are BIRD's (`proto bird`, via each node's underlay address); the sessions'
 * states are on /metrics; an agent restart keeps every route and a TCP stream between pods; a
 * node whose agent and BIRD are killed loses its routes on the others within the hold time.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Etcd3 } from "etcd3";
import { Cluster, type Node } from "../../support/cluster.ts";
import { assertPrivateNetns, ping, runPrefix, tempDir } from "../../support/netns.ts";
import { measureThroughput } from "../../support/tcp.ts";
import { alive, birdDirOf, birdPid, birdRoutes, httpGet, killAgentAndBird, stopStrayBirds, subnetOf, unreachable, type Pod } from "./bgp-support.ts";

assertPrivateNetns();

const HOLD = 6;
const BACKEND = { Type: "bgp", ASNumber: 64512, NodeMesh: true, HoldTime: HOLD, KeepaliveTime: 2, ConnectDelayTime: 0, ConnectRetryTime: 1, GracefulRestartTime: HOLD };

describe("bgp, node-to-node mesh in one segment", () => {
  const prefix = runPrefix("b");
  const key = `/${prefix}/network`;
  let tmp!: ReturnType<typeof tempDir>;
  let c!: Cluster;
  let etcd!: Etcd3;
  let pods: Pod[] = [];
  const start = (n: Node, extra: string[] = []) => c.startAgent(n, key, ["--bird-dir", birdDirOf(c, n), ...extra]);

  beforeAll(async () => {
    tmp = tempDir("ckb-mesh");
    c = new Cluster({ prefix, dir: tmp.path, underlayNet: 83, etcdPort: 23830 });
    await c.startEtcd();
    etcd = await c.client();
    await etcd.put(`${key}/config`).value(JSON.stringify({ Network: "10.97.0.0/16", Backend: BACKEND }));
    for (let i = 1; i <= 3; i++) start(c.addNode(i), i === 2 ? ["--healthz", "127.0.0.1:9931"] : []);
    for (const n of c.nodes) await c.until(`${n.name}'s subnet.env`, () => existsSync(n.subnetFile));
    for (const n of c.nodes) await c.until(`${n.name}'s BGP routes to 2 peers`, () => birdRoutes(n).length === 2, 20_000);
    for (const n of c.nodes) for (const t of ["a", "b"]) pods.push({ ...c.addPod(n, t), node: n });
  }, 60_000);
  afterAll(async () => {
    await c?.destroy();
    stopStrayBirds(c);
    tmp?.remove();
  });

  test("every node routes each other node's subnet via its underlay address, learned by BIRD (proto bird)", async () => {
    for (const n of c.nodes) {
      const want = c.nodes.filter((m) => m !== n).map((m) => ({ dst: subnetOf(m), gateway: m.ip, dev: n.dev })).sort((a, b) => a.dst.localeCompare(b.dst));
      expect(birdRoutes(n).map((r) => ({ dst: r.dst, gateway: r.gateway, dev: r.dev })).sort((a, b) => a.dst.localeCompare(b.dst))).toEqual(want);
      // the node's own subnet is announced, never routed by BIRD here
      expect(birdRoutes(n).some((r) => r.dst === subnetOf(n))).toBe(false);
      // BIRD's files are in the node's own directory, not /etc/bird or /run/bird
      const dir = birdDirOf(c, n);
      expect(existsSync(join(dir, "bird.conf")) && existsSync(join(dir, "bird.ctl"))).toBe(true);
    }
    // the leases are flannel's, with the backend's type
    const lease = JSON.parse((await etcd.get(`${key}/subnets/${subnetOf(c.nodes[0]!).replace("/", "-")}`).string())!);
    expect(lease).toEqual({ PublicIP: c.nodes[0]!.ip, BackendType: "bgp", BackendData: { ASNumber: 64512 } });
  });

  test("every pod reaches every other pod", () => {
    expect(pods.length).toBe(6);
    expect(unreachable(pods)).toEqual([]);
  });

  test("one session per pair of nodes, Established, on /metrics", async () => {
    const n2 = c.nodes[1]!;
    let m = "";
    await c.until("n2's sessions on /metrics", () => {
      m = httpGet(c, n2, "http://127.0.0.1:9931/metrics");
      return (m.match(/cnikit_bgp_session_up\{[^}]*\} 1/g) ?? []).length === 2;
    });
    expect(m).toContain(`cnikit_bgp_session_up{peer="${c.nodes[0]!.ip}",kind="mesh",state="Established"} 1`);
    expect(m).toContain(`cnikit_bgp_session_up{peer="${c.nodes[2]!.ip}",kind="mesh",state="Established"} 1`);
    expect(m).toContain("cnikit_bgp_bird_up 1");
    // n2 (the middle address) waits for n1 and connects to n3
    const conf = readFileSync(join(birdDirOf(c, n2), "bird.conf"), "utf8");
    expect(conf).toMatch(new RegExp(`neighbor ${c.nodes[0]!.ip.replaceAll(".", "\\.")} as 64512;\\n  passive on;`));
    expect(conf).not.toMatch(new RegExp(`neighbor ${c.nodes[2]!.ip.replaceAll(".", "\\.")} as 64512;\\n  passive on;`));
  });

  test("an agent restart (BIRD stopped for a graceful restart and started again) keeps every route and a TCP stream", async () => {
    const n1 = c.nodes[0]!;
    const before = c.nodes.map((n) => JSON.stringify(birdRoutes(n)));
    // a stream from a pod on n2 to a pod on n1, through n1's restart
    const stream = measureThroughput(pods[2]!.ns, pods[0]!.ns, pods[0]!.ip, 7101, 9000);
    await Bun.sleep(1000);
    const missing: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const [i, n] of c.nodes.entries()) if (JSON.stringify(birdRoutes(n)) !== before[i]) missing.push(`${n.name} at ${Date.now()}`);
        await Bun.sleep(100);
      }
    })();
    let rate = 0;
    try {
      const bird = birdPid(c, n1);
      expect(bird).toBeNumber();
      await c.stopAgent(n1);
      expect(alive(bird!)).toBe(false); // BIRD stopped with it
      start(n1);
      await c.until("the restarted agent to be ready", () => readFileSync(n1.agent!.log, "utf8").includes("agent ready"));
      await c.until("n1's sessions to be back", () => c.inNode(n1, ["birdc", "-s", join(birdDirOf(c, n1), "bird.ctl"), "show", "protocols"]).stdout.split("Established").length === 3, 15_000);
      rate = await stream;
    } finally {
      watching = false;
      await watcher;
    }
    expect(missing).toEqual([]);
    expect(rate).toBeGreaterThan(0);
    expect(unreachable(pods)).toEqual([]);
  }, 60_000);

  test(`a node whose agent and BIRD are killed loses its routes on the others within the hold time (${HOLD} s)`, async () => {
    const n3 = c.nodes[2]!;
    const s3 = subnetOf(n3);
    const t0 = Date.now();
    await killAgentAndBird(c, n3);
    const others = c.nodes.slice(0, 2);
    await c.until(`${s3} withdrawn on n1 and n2`, () => others.every((n) => !birdRoutes(n).some((r) => r.dst === s3)), (HOLD + 4) * 1000);
    const took = (Date.now() - t0) / 1000;
    console.log(`killed node: its subnet withdrawn on the others after ${took.toFixed(1)} s (hold time ${HOLD} s)`);
    expect(took).toBeLessThanOrEqual(HOLD + 1);
    expect(ping(pods[0]!.ns, pods[4]!.ip)).toBe(false);
    // n1 and n2 still reach each other
    expect(unreachable(pods.slice(0, 4))).toEqual([]);
    // the node comes back: its routes come back everywhere
    start(n3);
    for (const n of others) await c.until(`${n.name} to route to ${s3} again`, () => birdRoutes(n).some((r) => r.dst === s3), 20_000);
    await c.until("n3's routes", () => birdRoutes(n3).length === 2, 20_000);
    expect(unreachable(pods)).toEqual([]);
  }, 60_000);
});
