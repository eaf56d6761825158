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
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cluster, type Node } from "../../support/cluster.ts";
import { assertPrivateNetns, must, ping, run, runPrefix, tempDir } from "../../support/netns.ts";
import { birdDirOf, birdRoutes, httpGet, killAndTimeWithdrawal, restartAgentUnderLoad, stopStrayBirds, subnetOf, unreachable, type Pod } from "./bgp-support.ts";

assertPrivateNetns();

const HOLD = 9;
const TIMERS = { HoldTime: HOLD, KeepaliveTime: 3, ConnectDelayTime: 0, ConnectRetryTime: 1, GracefulRestartTime: HOLD - 2 };
const A = 86;
const B = 87;
const ROUTER = (net: number) => `192.168.${net}.253`;

/** The router's BIRD configuration: one session per node, as a reflector (same AS) or an eBGP peer. */
function routerConf(nodes: Node[], as: number, reflector: boolean): string {
  const lines = [
    `router id ${ROUTER(A)};`,
    "log stderr all;",
    "protocol device { scan time 2; }",
    'protocol direct { ipv4; interface "*"; }',
    "protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; }",
  ];
  for (const n of nodes) {
    lines.push(
      `protocol bgp node_${n.name} {`,
      `  local ${ROUTER(n.ip.startsWith(`192.168.${A}.`) ? A : B)} as ${as};`,
      `  neighbor ${n.ip} as 64512;`,
      `  hold time ${HOLD}; keepalive time 3; connect delay time 0; connect retry time 1; error wait time 1, 6;`,
      `  graceful restart on; graceful restart time ${HOLD};`,
      ...(reflector ? ["  rr client;", "  rr cluster id 1.1.1.1;"] : []),
      "  ipv4 { import all; export all; };",
      "}",
    );
  }
  return `${lines.join("\n")}\n`;
}

function suite(mode: "reflector" | "external", tag: string, port: number) {
  const prefix = runPrefix(tag);
  const key = `/${prefix}/network`;
  const segB = `${prefix}v`;
  const routerNs = `${prefix}r`;
  let tmp!: ReturnType<typeof tempDir>;
  let c!: Cluster;
  let router: ReturnType<typeof Bun.spawn> | undefined;
  const pods: Pod[] = [];
  const start = (n: Node) => c.startAgent(n, key, ["--bird-dir", birdDirOf(c, n), ...(n.name === "n1" ? ["--healthz", "127.0.0.1:9932"] : [])]);
  const segOf = (n: Node) => (n.ip.startsWith(`192.168.${A}.`) ? A : B);

  beforeAll(async () => {
    tmp = tempDir(`ckb-router-${mode}`);
    c = new Cluster({ prefix, dir: tmp.path, underlayNet: A, etcdPort: port });
    // segment B and the router between the two
    must(["ip", "link", "add", segB, "type", "bridge"]);
    must(["ip", "link", "set", segB, "up"]);
    const rPath = c.ns.add("r");
    for (const [side, bridge, net] of [["a", c.bridge, A], ["b", segB, B]] as const) {
      must(["ip", "link", "add", `${prefix}r${side}`, "type", "veth", "peer", "name", `${prefix}R${side}`, "netns", routerNs]);
      must(["ip", "link", "set", `${prefix}r${side}`, "master", bridge, "up"]);
      must(["ip", "-n", routerNs, "addr", "add", `${ROUTER(net)}/24`, "dev", `${prefix}R${side}`]);
      must(["ip", "-n", routerNs, "link", "set", `${prefix}R${side}`, "up"]);
    }
    must(["ip", "netns", "exec", routerNs, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    // etcd (here, on A) answers nodes on B through the router
    must(["ip", "route", "add", `192.168.${B}.0/24`, "via", ROUTER(A)]);
    await c.startEtcd();
    const etcd = await c.client();
    // a killed node closes its sessions: peers keep its routes for GracefulRestartTime (2 s under the
    // hold time here), a silent one is dropped at the hold time
    const backend = mode === "reflector"
      ? { Type: "bgp", NodeMesh: false, RouteReflectors: [{ PeerIP: ROUTER(A), NodeSubnet: `192.168.${A}.0/24` }, { PeerIP: ROUTER(B), NodeSubnet: `192.168.${B}.0/24` }], ...TIMERS }
      : { Type: "bgp", NodeMesh: false, Peers: [{ PeerIP: ROUTER(A), ASNumber: 64600, NodeSubnet: `192.168.${A}.0/24` }, { PeerIP: ROUTER(B), ASNumber: 64600, NodeSubnet: `192.168.${B}.0/24` }], ...TIMERS };
    await etcd.put(`${key}/config`).value(JSON.stringify({ Network: "10.98.0.0/16", Backend: backend }));
    for (const i of [1, 2]) c.addNode(i);
    for (const i of [3, 4]) c.addNode(i, undefined, { bridge: segB, underlayNet: B });
    for (const n of c.nodes) {
      const other = segOf(n) === A ? B : A;
      // the underlay's own routing: the other segment through the router (no pod subnet)
      must(["ip", "-n", `${prefix}${n.name}`, "route", "add", `192.168.${other}.0/24`, "via", ROUTER(segOf(n))]);
    }
    const dir = join(tmp.path, "router");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "bird.conf"), routerConf(c.nodes, mode === "reflector" ? 64512 : 64600, mode === "reflector"));
    must(["bird", "-p", "-c", join(dir, "bird.conf")]);
    router = Bun.spawn(["nsenter", `--net=${rPath}`, "bird", "-f", "-c", join(dir, "bird.conf"), "-s", join(dir, "bird.ctl"), "-P", join(dir, "bird.pid")], { stdout: "ignore", stderr: Bun.file(join(dir, "bird.log")) });
    for (const n of c.nodes) start(n);
    for (const n of c.nodes) await c.until(`${n.name}'s subnet.env`, () => existsSync(n.subnetFile));
    for (const n of c.nodes) await c.until(`${n.name}'s BGP routes to 3 subnets`, () => birdRoutes(n).length === 3, 30_000);
    for (const n of c.nodes) for (const t of ["a", "b"]) pods.push({ ...c.addPod(n, t), node: n });
  }, 90_000);
  afterAll(async () => {
    await c?.destroy();
    stopStrayBirds(c);
    if (router) {
      router.kill("SIGKILL");
      await router.exited;
    }
    run(["ip", "link", "del", segB]);
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

  test("the session with the router is Established on /metrics", async () => {
    const want = `cnikit_bgp_session_up{peer="${ROUTER(A)}",kind="${mode === "reflector" ? "rr" : "peer"}",state="Established"} 1`;
    await c.until("n1's session on /metrics", () => httpGet(c, c.nodes[0]!, "http://127.0.0.1:9932/metrics").includes(want));
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
