/** Helpers shared by the bgp backend's end-to-end tests (bgp-*.test.ts). */

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Cluster, Node } from "../../support/cluster.ts";
import { must, ping } from "../../support/netns.ts";

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
