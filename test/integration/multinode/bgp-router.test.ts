/**
 * The bgp backend across two L2 segments, all in this test's private namespace:
 *
 *   segment A (bridge <p>u, 192.168.86.0/24)        segment B (bridge <p>v, 192.168.87.0/24)
 *     etcd .254 (this namespace)                      n3 .3, n4 .4 (cnikit nodes)
 *     n1 .1, n2 .2 (cnikit nodes)                          |
 *            \                                             |
 *             router <p>r: .253 on A and on B, a plain BIRD 2 (not a cnikit node)
 *
 * Nodes have underlay routes to the other segment through the router, and no route to any pod
 * subnet but what BIRD learns. Two pods per node through `overlay`. Run twice: the router as the
 * route reflector of the nodes' AS (no mesh), and as an external peer in AS 64600 (eBGP; the nodes
 * of a segment reach each other through third-party next hops). Each time: pods on different
 * segments reach each other through the router, an agent restart keeps every route and a TCP
 * stream, and a killed node's routes are withdrawn everywhere within the hold time.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { Cluster, CNIKIT, type Node } from "../../support/cluster.ts";
import { assertPrivateNetns, ping, run, runPrefix, tempDir } from "../../support/netns.ts";
import { birdDirOf, birdRoutes, httpGet, killAndTimeWithdrawal, restartAgentUnderLoad, routerIP, stopStrayBirds, subnetOf, twoSegments, unreachable, type Pod } from "./bgp-support.ts";

assertPrivateNetns();

const HOLD = 9;
// a killed node closes its sessions: peers keep its routes for GracefulRestartTime (2 s under the hold
// time here); a silent one is dropped at the hold time
const TIMERS = { HoldTime: HOLD, KeepaliveTime: 3, ConnectDelayTime: 0, ConnectRetryTime: 1, GracefulRestartTime: HOLD - 2 };
const A = 86;
const B = 87;
const ROUTER = routerIP;

function suite(mode: "reflector" | "external", tag: string, port: number) {
  const prefix = runPrefix(tag);
  const key = `/${prefix}/network`;
  let tmp!: ReturnType<typeof tempDir>;
  let c!: Cluster;
  let router: { stop: () => Promise<void> } | undefined;
  const pods: Pod[] = [];
  const start = (n: Node) => c.startAgent(n, key, ["--bird-dir", birdDirOf(c, n), ...(n.name === "n1" ? ["--healthz", "127.0.0.1:9932"] : [])]);
  const segOf = (n: Node) => (n.ip.startsWith(`192.168.${A}.`) ? A : B);

  beforeAll(async () => {
    tmp = tempDir(`ckb-router-${mode}`);
    c = new Cluster({ prefix, dir: tmp.path, underlayNet: A, etcdPort: port });
    const t = await twoSegments(c, { key, mode, timers: TIMERS, start, a: A, b: B });
    router = t.router;
    for (const n of c.nodes) await c.until(`${n.name}'s subnet.env`, () => existsSync(n.subnetFile));
    for (const n of c.nodes) await c.until(`${n.name}'s BGP routes to 3 subnets`, () => birdRoutes(n).length === 3, 30_000);
    for (const n of c.nodes) for (const t of ["a", "b"]) pods.push({ ...c.addPod(n, t), node: n });
  }, 90_000);
  afterAll(async () => {
    await c?.destroy();
    stopStrayBirds(c);
    await router?.stop();
    run(["ip", "link", "del", `${prefix}v`]); // segment B's bridge (gone already when the setup failed before it)
    tmp?.remove();
  });

  test("each node learns the other nodes' subnets over BGP: the other segment's through the router, its own segment's directly", () => {
    for (const n of c.nodes) {
      const got = Object.fromEntries(birdRoutes(n).map((r) => [r.dst, `${r.gateway} ${r.dev}`]));
      const want = Object.fromEntries(c.nodes.filter((m) => m !== n).map((m) => [subnetOf(m), `${segOf(m) === segOf(n) ? m.ip : ROUTER(segOf(n))} ${n.dev}`]));
      expect(got).toEqual(want);
      // no route to the cluster network but BIRD's and the node's own bridge
      const other = run(["nsenter", `--net=${n.ns}`, "ip", "-4", "route", "show", "root", "10.98.0.0/16"]).stdout;
      expect(other.split("\n").filter((l) => l && !l.includes("proto bird") && !l.startsWith(subnetOf(n)))).toEqual([]);
    }
  });

  test("every pod reaches every other pod, across the segments through the router", () => {
    expect(pods.length).toBe(8);
    expect(unreachable(pods)).toEqual([]);
  });

  test("the session with the router is Established on /metrics and in cnikit nodes", async () => {
    const want = `cnikit_bgp_session_up{peer="${ROUTER(A)}",kind="${mode === "reflector" ? "rr" : "peer"}",state="Established"} 1`;
    await c.until("n1's session on /metrics", () => httpGet(c, c.nodes[0]!, "http://127.0.0.1:9932/metrics").includes(want));
    // cnikit nodes on n1: no session with the other nodes (no mesh), the router apart
    const n1 = c.nodes[0]!;
    const r = c.inNode(n1, [CNIKIT, "nodes", "--etcd-endpoints", c.etcdURL, "--etcd-prefix", key, "--bird-dir", birdDirOf(c, n1)]);
    expect(r.stderr).toBe("");
    const lines = r.stdout.split("\n");
    for (const n of c.nodes.slice(1)) expect(lines.find((l) => l.includes(` ${n.ip} `))).toMatch(/\sno session$/);
    expect(r.stdout).toContain("BGP peers of this node that are not nodes:");
    // the status page's data: the same, from the agent's own BIRD
    const api = JSON.parse(httpGet(c, n1, "http://127.0.0.1:9932/api/status")) as { nodes: { publicIP: string; bgp?: string }[]; bgpPeers: { peerIP: string; state: string }[] };
    expect(api.nodes.filter((n) => n.publicIP !== n1.ip).map((n) => n.bgp)).toEqual(["no session", "no session", "no session"]);
    expect(api.bgpPeers.map((p) => `${p.peerIP} ${p.state}`)).toEqual([`${ROUTER(A)} Established`]);
    expect(lines.find((l) => l.startsWith(`${ROUTER(A)} `))).toMatch(new RegExp(`^${ROUTER(A).replaceAll(".", "\\.")}\\s+${mode === "reflector" ? "route reflector" : "peer"}\\s+Established$`));
  });

  test("an agent restart keeps every route and a TCP stream across the segments", async () => {
    const { changed, rate } = await restartAgentUnderLoad(c, c.nodes[0]!, start, pods[6]!, pods[0]!, 7102);
    expect(changed).toEqual([]);
    expect(rate).toBeGreaterThan(0);
    expect(unreachable([pods[0]!, pods[3]!, pods[5]!, pods[7]!])).toEqual([]);
  }, 60_000);

  test(`a node whose agent and BIRD are killed is withdrawn everywhere within the hold time (${HOLD} s)`, async () => {
    const n4 = c.nodes[3]!;
    const took = await killAndTimeWithdrawal(c, n4, HOLD);
    console.log(`${mode}: a killed node's subnet was withdrawn on the others after ${took.toFixed(1)} s (hold time ${HOLD} s)`);
    expect(took).toBeLessThanOrEqual(HOLD);
    expect(ping(pods[0]!.ns, pods[6]!.ip)).toBe(false);
    expect(unreachable(pods.slice(0, 6))).toEqual([]);
  }, 60_000);
}

describe("bgp across two segments, the router a route reflector", () => suite("reflector", "r", 23860));
describe("bgp across two segments, the router an external peer (eBGP)", () => suite("external", "e", 23870));
