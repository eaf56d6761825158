/** Helpers shared by the bgp backend's end-to-end tests (bgp-*.test.ts). */

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Cluster, Node } from "../../support/cluster.ts";
import { must, ping } from "../../support/netns.ts";
import { measureThroughput } from "../../support/tcp.ts";

export type Pod = { ns: string; ip: string; node: Node };
export type RouteJ = { dst: string; gateway?: string; dev: string; flags: string[]; protocol?: string };

/** The directory `--bird-dir` points a node's agent at (inside the test's temp directory). */
export const birdDirOf = (c: Cluster, n: Node): string => join(c.o.dir, n.name, "bird");

/** Routes BIRD wrote in a node's namespace (`ip route show proto bird`). */
export const birdRoutes = (n: Node): RouteJ[] => JSON.parse(must(["nsenter", `--net=${n.ns}`, "ip", "-4", "-j", "route", "show", "proto", "bird"])) as RouteJ[];

/** A node's subnet, from its subnet.env ("10.97.3.0/24"). */
export function subnetOf(n: Node): string {
  const m = /FLANNEL_SUBNET=(\S+)/.exec(readFileSync(n.subnetFile, "utf8"));
  const [ip, len] = m![1]!.split("/");
  return `${ip!.replace(/\.1$/, ".0")}/${len}`;
}

/** Pairs of pods that cannot ping each other. */
export function unreachable(pods: Pod[]): string[] {
  const bad: string[] = [];
  for (const a of pods) for (const b of pods) if (a !== b && !ping(a.ns, b.ip)) bad.push(`${a.ip}->${b.ip}`);
  return bad;
}

/** The PID of the BIRD a node's agent runs, when it is alive (checked by its command line). */
export function birdPid(c: Cluster, n: Node): number | undefined {
  const dir = birdDirOf(c, n);
  const file = join(dir, "bird.pid");
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, "utf8").trim());
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** SIGKILL a node's agent and its BIRD (a node dying), by their PIDs. */
export async function killAgentAndBird(c: Cluster, n: Node): Promise<void> {
  const bird = birdPid(c, n);
  if (n.agent) {
    n.agent.proc.kill("SIGKILL");
    await n.agent.proc.exited;
    n.agent = undefined;
  }
  if (bird) process.kill(bird, "SIGKILL");
}

/** After destroy(): kill any BIRD of this cluster's nodes still running (an agent killed by a test). */
export function stopStrayBirds(c: Cluster | undefined): void {
  for (const n of c?.nodes ?? []) {
    const pid = birdPid(c!, n);
    if (pid) process.kill(pid, "SIGKILL");
  }
}

/** GET a path of a node's agent HTTP endpoint (run inside the node's namespace). */
export function httpGet(c: Cluster, n: Node, url: string): string {
  return c.inNode(n, [process.execPath, "-e", `const r = await fetch(${JSON.stringify(url)}); console.log(await r.text())`]).stdout;
}

/** Whether a process runs (a zombie does not). */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/**
 * Restart `n`'s agent (SIGTERM: BIRD stops for a graceful restart; then a new agent and BIRD)
 * while a TCP stream runs from pod `from` to pod `to` (on `n`); returns what changed in any node's
 * BIRD routes meanwhile (nothing should) and the stream's rate (bits/s; 0 if it broke).
 */
export async function restartAgentUnderLoad(c: Cluster, n: Node, start: (n: Node) => void, from: Pod, to: Pod, port: number): Promise<{ changed: string[]; rate: number }> {
  const before = c.nodes.map((m) => JSON.stringify(birdRoutes(m)));
  const stream = measureThroughput(from.ns, to.ns, to.ip, port, 9000);
  await Bun.sleep(1000);
  const changed: string[] = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      for (const [i, m] of c.nodes.entries()) if (JSON.stringify(birdRoutes(m)) !== before[i]) changed.push(`${m.name} at ${Date.now()}`);
      await Bun.sleep(100);
    }
  })();
  try {
    const bird = birdPid(c, n);
    if (!bird) throw new Error(`${n.name} runs no BIRD`);
    await c.stopAgent(n);
    if (alive(bird)) throw new Error(`${n.name}'s BIRD outlived its agent`);
    start(n);
    await c.until(`${n.name}'s restarted agent to be ready`, () => readFileSync(n.agent!.log, "utf8").includes("agent ready"));
    await c.until(`${n.name}'s BGP sessions to be back`, () => !/Active|Connect|Idle|OpenSent|OpenConfirm/.test(c.inNode(n, ["birdc", "-s", join(birdDirOf(c, n), "bird.ctl"), "show", "protocols"]).stdout), 15_000);
    return { changed, rate: await stream };
  } finally {
    watching = false;
    await watcher;
  }
}

/**
 * Kill `n`'s agent and BIRD and wait until no other node has a BIRD route to its subnet; the
 * seconds it took (throws after `limitSec` + 4).
 */
export async function killAndTimeWithdrawal(c: Cluster, n: Node, limitSec: number): Promise<number> {
  const s = subnetOf(n);
  const others = c.nodes.filter((m) => m !== n);
  const t0 = Date.now();
  await killAgentAndBird(c, n);
  await c.until(`${s} withdrawn on ${others.map((m) => m.name).join(", ")}`, () => others.every((m) => !birdRoutes(m).some((r) => r.dst === s)), (limitSec + 4) * 1000);
  return (Date.now() - t0) / 1000;
}

/** The router's address on segment 192.168.<net>.0/24. */
export const routerIP = (net: number): string => `192.168.${net}.253`;

/** The router's BIRD configuration: one session per node, as a reflector (same AS) or an eBGP peer. */
function routerConf(nodes: Node[], o: { as: number; reflector: boolean; a: number; b: number; hold: number; keepalive: number }): string {
  const lines = [
    `router id ${routerIP(o.a)};`,
    "log stderr all;",
    "protocol device { scan time 2; }",
    'protocol direct { ipv4; interface "*"; }',
    "protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; }",
  ];
  for (const n of nodes) {
    lines.push(
      `protocol bgp node_${n.name} {`,
      `  local ${routerIP(n.ip.startsWith(`192.168.${o.a}.`) ? o.a : o.b)} as ${o.as};`,
      `  neighbor ${n.ip} as 64512;`,
      `  hold time ${o.hold}; keepalive time ${o.keepalive}; connect delay time 0; connect retry time 1; error wait time 1, 6;`,
      `  graceful restart on; graceful restart time ${o.hold};`,
      ...(o.reflector ? ["  rr client;", "  rr cluster id 1.1.1.1;"] : []),
      "  ipv4 { import all; export all; };",
      "}",
    );
  }
  return `${lines.join("\n")}\n`;
}

/**
 * Two underlay segments joined by a router namespace running a plain BIRD 2, for a cluster whose
 * own bridge is segment A (192.168.<a>.0/24, etcd on .254): makes segment B's bridge (`<prefix>v`)
 * and the router (.253 on both), starts etcd, writes a bgp network config under `key` (the router
 * as route reflector of AS 64512, or as external peer in AS 64600; no node mesh), adds nodes 1, 2
 * on A and 3, 4 on B with underlay routes to the other segment through the router, starts the
 * router's BIRD (by PID) and every agent through `start`. The caller removes segB and stops the
 * router after `c.destroy()`.
 */
export async function twoSegments(c: Cluster, o: { key: string; mode: "reflector" | "external"; timers: { HoldTime: number; KeepaliveTime: number }; start: (n: Node) => void; a: number; b: number }): Promise<{ segB: string; router: { stop: () => Promise<void> } }> {
  const prefix = c.o.prefix;
  const { a: A, b: B } = o;
  const segB = `${prefix}v`;
  const routerNs = `${prefix}r`;
  must(["ip", "link", "add", segB, "type", "bridge"]);
  must(["ip", "link", "set", segB, "up"]);
  const rPath = c.ns.add("r");
  for (const [side, bridge, net] of [["a", c.bridge, A], ["b", segB, B]] as const) {
    must(["ip", "link", "add", `${prefix}r${side}`, "type", "veth", "peer", "name", `${prefix}R${side}`, "netns", routerNs]);
    must(["ip", "link", "set", `${prefix}r${side}`, "master", bridge, "up"]);
    must(["ip", "-n", routerNs, "addr", "add", `${routerIP(net)}/24`, "dev", `${prefix}R${side}`]);
    must(["ip", "-n", routerNs, "link", "set", `${prefix}R${side}`, "up"]);
  }
  must(["ip", "netns", "exec", routerNs, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  // etcd (here, on A) answers nodes on B through the router
  must(["ip", "route", "add", `192.168.${B}.0/24`, "via", routerIP(A)]);
  await c.startEtcd();
  const etcd = await c.client();
  const peers = (extra: Record<string, unknown>) => [A, B].map((net) => ({ PeerIP: routerIP(net), NodeSubnet: `192.168.${net}.0/24`, ...extra }));
  const backend = o.mode === "reflector"
    ? { Type: "bgp", NodeMesh: false, RouteReflectors: peers({}), ...o.timers }
    : { Type: "bgp", NodeMesh: false, Peers: peers({ ASNumber: 64600 }), ...o.timers };
  await etcd.put(`${o.key}/config`).value(JSON.stringify({ Network: "10.98.0.0/16", Backend: backend }));
  for (const i of [1, 2]) c.addNode(i);
  for (const i of [3, 4]) c.addNode(i, undefined, { bridge: segB, underlayNet: B });
  for (const n of c.nodes) {
    const [mine, other] = n.ip.startsWith(`192.168.${A}.`) ? [A, B] : [B, A];
    // the underlay's own routing: the other segment through the router (no pod subnet)
    must(["ip", "-n", `${prefix}${n.name}`, "route", "add", `192.168.${other}.0/24`, "via", routerIP(mine)]);
  }
  const dir = join(c.o.dir, "router");
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, "bird.conf");
  writeFileSync(conf, routerConf(c.nodes, { as: o.mode === "reflector" ? 64512 : 64600, reflector: o.mode === "reflector", a: A, b: B, hold: o.timers.HoldTime, keepalive: o.timers.KeepaliveTime }));
  must(["bird", "-p", "-c", conf]);
  const proc = Bun.spawn(["nsenter", `--net=${rPath}`, "bird", "-f", "-c", conf, "-s", join(dir, "bird.ctl"), "-P", join(dir, "bird.pid")], { stdout: "ignore", stderr: Bun.file(join(dir, "bird.log")) });
  for (const n of c.nodes) o.start(n);
  return { segB, router: { stop: async () => { proc.kill("SIGKILL"); await proc.exited; } } };
}
