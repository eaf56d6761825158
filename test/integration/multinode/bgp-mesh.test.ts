/**
 * The bgp backend with node-to-node mesh only, inside one L2 segment, all in this test's private
 * namespace: a real etcd, three node namespaces each running `cnikit agent` (which runs BIRD 2 with
 * its files in the node's temp directory), two pods per node through `overlay`. Routes to the
 * other nodes' subnets are BIRD's (`proto bird`, via each node's underlay address); the sessions'
 * states are on /metrics (promtool-clean), in `cnikit nodes` and on the agent's status page; an agent restart keeps every route and a TCP stream between pods; a
 * node whose agent and BIRD are killed loses its routes on the others within the hold time.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Etcd3 } from "etcd3";
import { Cluster, CNIKIT, type Node } from "../../support/cluster.ts";
import { assertPrivateNetns, ping, run, runPrefix, tempDir } from "../../support/netns.ts";
import { birdDirOf, birdRoutes, httpGet, killAndTimeWithdrawal, restartAgentUnderLoad, stopStrayBirds, subnetOf, unreachable, type Pod } from "./bgp-support.ts";

assertPrivateNetns();

const HOLD = 9;
const BACKEND = { Type: "bgp", ASNumber: 64512, NodeMesh: true, HoldTime: HOLD, KeepaliveTime: 3, ConnectDelayTime: 0, ConnectRetryTime: 1, GracefulRestartTime: HOLD - 2 };

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

  test("one session per pair of nodes, Established, on /metrics, in cnikit nodes and on the status page", async () => {
    const n2 = c.nodes[1]!;
    let m = "";
    await c.until("n2's sessions on /metrics", () => {
      m = httpGet(c, n2, "http://127.0.0.1:9931/metrics");
      return (m.match(/cnikit_bgp_session_up\{[^}]*\} 1/g) ?? []).length === 2;
    });
    expect(m).toContain(`cnikit_bgp_session_up{peer="${c.nodes[0]!.ip}",kind="mesh",state="Established"} 1`);
    expect(m).toContain(`cnikit_bgp_session_up{peer="${c.nodes[2]!.ip}",kind="mesh",state="Established"} 1`);
    expect(m).toContain("cnikit_bgp_bird_up 1");
    expect(m).toContain('cnikit_agent_routes{protocol="bird"} 2');
    // the whole /metrics passes promtool
    const file = join(tmp.path, "metrics.txt");
    writeFileSync(file, m);
    const lint = run(["sh", "-c", `promtool check metrics < ${file}`]);
    expect(`${lint.stdout}${lint.stderr}`).toBe("");
    // cnikit nodes on n2 asks n2's BIRD: its sessions with n1 and n3 are Established; n2 is this node
    const r = c.inNode(n2, [CNIKIT, "nodes", "--etcd-endpoints", c.etcdURL, "--etcd-prefix", key, "--bird-dir", birdDirOf(c, n2)]);
    expect(r.stderr).toBe("");
    const row = (n: Node) => r.stdout.split("\n").find((l) => l.includes(` ${n.ip} `)) ?? "";
    expect(row(c.nodes[0]!)).toMatch(/^\s+\S+\s+\S+\s+\S+\s+bgp\s+-\s+\S+\s+Established$/);
    expect(row(c.nodes[2]!)).toMatch(/\sbgp\s.*\sEstablished$/);
    expect(row(n2)).toMatch(/^\*\s.*\sbgp\s+-\s+\S+\s+-$/);
    // --json, and the agent's status page data, say the same
    const doc = JSON.parse(c.inNode(n2, [CNIKIT, "nodes", "--json", "--etcd-endpoints", c.etcdURL, "--etcd-prefix", key, "--bird-dir", birdDirOf(c, n2)]).stdout) as { nodes: { publicIP: string; bgp?: string }[]; bgpPeers: unknown[] };
    expect(Object.fromEntries(doc.nodes.map((n) => [n.publicIP, n.bgp ?? "-"]))).toEqual({ [c.nodes[0]!.ip]: "Established", [n2.ip]: "-", [c.nodes[2]!.ip]: "Established" });
    expect(doc.bgpPeers).toEqual([]);
    const api = JSON.parse(httpGet(c, n2, "http://127.0.0.1:9931/api/status")) as { nodes: { publicIP: string; bgp?: string }[] };
    expect(Object.fromEntries(api.nodes.map((n) => [n.publicIP, n.bgp ?? "-"]))).toEqual({ [c.nodes[0]!.ip]: "Established", [n2.ip]: "-", [c.nodes[2]!.ip]: "Established" });
    // without an answering BIRD the state is unknown, not made up
    const none = c.inNode(n2, [CNIKIT, "nodes", "--etcd-endpoints", c.etcdURL, "--etcd-prefix", key, "--bird-dir", join(tmp.path, "no-bird")]);
    expect(none.stdout.split("\n").find((l) => l.includes(` ${c.nodes[0]!.ip} `))).toMatch(/\sunknown$/);
    // n2 (the middle address) waits for n1 and connects to n3
    const conf = readFileSync(join(birdDirOf(c, n2), "bird.conf"), "utf8");
    expect(conf).toMatch(new RegExp(`neighbor ${c.nodes[0]!.ip.replaceAll(".", "\\.")} as 64512;\\n  passive on;`));
    expect(conf).not.toMatch(new RegExp(`neighbor ${c.nodes[2]!.ip.replaceAll(".", "\\.")} as 64512;\\n  passive on;`));
  });

  test("an agent restart (BIRD stopped for a graceful restart and started again) keeps every route and a TCP stream", async () => {
    const { changed, rate } = await restartAgentUnderLoad(c, c.nodes[0]!, (n) => start(n), pods[2]!, pods[0]!, 7101);
    expect(changed).toEqual([]);
    expect(rate).toBeGreaterThan(0);
    expect(unreachable(pods)).toEqual([]);
  }, 60_000);

  test(`a node whose agent and BIRD are killed loses its routes on the others within the hold time (${HOLD} s)`, async () => {
    const n3 = c.nodes[2]!;
    const took = await killAndTimeWithdrawal(c, n3, HOLD);
    console.log(`mesh: a killed node's subnet was withdrawn on the others after ${took.toFixed(1)} s (hold time ${HOLD} s)`);
    expect(took).toBeLessThanOrEqual(HOLD);
    expect(ping(pods[0]!.ns, pods[4]!.ip)).toBe(false);
    expect(unreachable(pods.slice(0, 4))).toEqual([]); // n1 and n2 still reach each other
    // the node comes back: its routes come back everywhere
    start(n3);
    for (const n of c.nodes) await c.until(`${n.name}'s routes to 2 peers again`, () => birdRoutes(n).length === 2, 20_000);
    expect(unreachable(pods)).toEqual([]);
  }, 60_000);
});
