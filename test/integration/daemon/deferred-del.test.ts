/**
 * DEL through the daemon answers once the pod is cut off and leaves the veths' deletion to a
 * batched remover (src/net/removal.ts, src/agent/link-remover.ts), in this file's private network
 * namespace (prefix bd): the pod is cut off when DEL returns (no eth0, no address, no
 * reservation, the host end down), nothing of it remains one second later, an immediate re-ADD
 * of the same container and ifname works, `cnikit status` shows the pending removals, SIGTERM
 * flushes them, and a daemon SIGKILLed with removals pending leaves them to the next one's start.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { CNIKIT, startDaemon, type TestDaemon } from "../../support/daemon.ts";
import { assertPrivateNetns, must, Namespaces, ping, run, tempDir } from "../../support/netns.ts";

assertPrivateNetns();

const prefix = `bd${(process.pid % 10000).toString(36)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
const ns = new Namespaces(prefix);
const tmp = tempDir("bd-deferred");
const bin = join(tmp.path, "bin");
const ipamDir = join(tmp.path, "ipam");
const socket = join(tmp.path, "run", "cni.sock");
const PORT = 20000 + (process.pid % 1000);
const daemons: TestDaemon[] = [];
let daemon: TestDaemon;

const bridgeConf = (net: string, subnet: string) => ({
  cniVersion: "1.0.0", name: net, type: "bridge", bridge: `${prefix}${net}`, isGateway: true, ipMasq: true,
  ipam: { type: "host-local", ranges: [[{ subnet }]], dataDir: ipamDir },
});
const ptpConf = (net: string, subnet: string) => ({
  cniVersion: "1.0.0", name: net, type: "ptp", ipMasq: true, ipam: { type: "host-local", ranges: [[{ subnet }]], dataDir: ipamDir },
});

const env = (command: string, cid: string, netns: string) => ({
  PATH: process.env.PATH!, CNIKIT_SOCKET: socket, CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: bin,
});

async function call(type: string, command: string, cid: string, netns: string, conf: unknown) {
  const t0 = performance.now();
  const p = Bun.spawn([join(bin, type)], { env: env(command, cid, netns), stdin: new TextEncoder().encode(JSON.stringify(conf)), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${type} ${command} ${cid}: ${stdout} ${stderr}`);
  return { ms: performance.now() - t0, stdout };
}

const veths = () => (JSON.parse(must(["ip", "-j", "link", "show", "type", "veth"])) as unknown[]).length;
const reservations = (net: string) => {
  try {
    return readdirSync(join(ipamDir, net)).filter((f) => f !== "lock" && !f.startsWith("last_reserved_ip"));
  } catch {
    return [];
  }
};
/** The pod's links and global addresses, besides lo. */
const podLinks = (netns: string) => (JSON.parse(must(["ip", "-n", netns.split("/").pop()!, "-j", "addr", "show"])) as { ifname: string; operstate: string; addr_info: { scope: string }[] }[]).filter((l) => l.ifname !== "lo");

/** Veths left after waiting up to `ms` (the remover flushes ~100 ms after the first DEL). */
async function vethsAfter(ms: number): Promise<number> {
  const end = Date.now() + ms;
  let n = veths();
  while (n > 0 && Date.now() < end) {
    await Bun.sleep(10);
    n = veths();
  }
  return n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

beforeAll(async () => {
  must(["ip", "link", "set", "lo", "up"]);
  must([CNIKIT, "install", "--bin-dir", bin]);
  daemon = await startDaemon(socket, ["--healthz", `127.0.0.1:${PORT}`]);
  daemons.push(daemon);
}, 30_000);

afterAll(async () => {
  for (const d of daemons) await d.stop();
  ns.cleanup();
  for (const l of JSON.parse(must(["ip", "-j", "link", "show"])) as { ifname: string }[]) if (l.ifname.startsWith(prefix)) run(["ip", "link", "del", l.ifname]);
  tmp.remove();
});

describe("DEL through the daemon: cut off at once, veths removed in batches", () => {
  test("bridge: 30 pods; each DEL leaves the pod cut off, nothing remains 1 s later; re-ADD at once works", async () => {
    const pods = Array.from({ length: 30 }, (_, i) => ({ cid: `bd-pod-${i}`, netns: ns.add(`b${i}`) }));
    const conf = bridgeConf("b", "10.93.0.0/24");
    for (const p of pods) await call("bridge", "ADD", p.cid, p.netns, conf);
    expect(veths()).toBe(30);
    const delMs: number[] = [];
    for (const p of pods.slice(0, 20)) {
      delMs.push((await call("bridge", "DEL", p.cid, p.netns, conf)).ms);
      // cut off when DEL returns: no eth0 and no address in the pod (its end waits renamed and down)
      const links = podLinks(p.netns);
      expect(links.filter((l) => l.ifname === "eth0")).toEqual([]);
      expect(links.flatMap((l) => l.addr_info)).toEqual([]);
      expect(links.every((l) => l.operstate === "DOWN")).toBe(true);
    }
    expect(reservations("b")).toHaveLength(10);
    expect(await vethsAfter(1000)).toBe(10);
    // the other ten at once
    const t0 = performance.now();
    await Promise.all(pods.slice(20).map((p) => call("bridge", "DEL", p.cid, p.netns, conf)));
    const allMs = performance.now() - t0;
    expect(await vethsAfter(1000)).toBe(0);
    expect(reservations("b")).toEqual([]);
    console.log(`bridge DEL through the daemon: median ${median(delMs).toFixed(1)} ms one at a time; 10 at once ${allMs.toFixed(0)} ms`);
    // DEL right after ADD and an immediate re-ADD of the same container and ifname
    const p = pods[0]!;
    await call("bridge", "ADD", p.cid, p.netns, conf);
    await call("bridge", "DEL", p.cid, p.netns, conf);
    const again = JSON.parse((await call("bridge", "ADD", p.cid, p.netns, conf)).stdout) as { ips: { gateway: string }[] };
    expect(ping(p.netns, again.ips[0]!.gateway)).toBe(true);
    await call("bridge", "DEL", p.cid, p.netns, conf);
    expect(await vethsAfter(1000)).toBe(0);
    expect(podLinks(p.netns)).toEqual([]);
  }, 120_000);

  test("ptp: DEL cuts off, re-ADD at once works, nothing remains 1 s later", async () => {
    const p = ns.add("p");
    const conf = ptpConf("p", "10.94.0.0/24");
    await call("ptp", "ADD", "bd-ptp", p, conf);
    await call("ptp", "DEL", "bd-ptp", p, conf);
    expect(podLinks(p).flatMap((l) => l.addr_info)).toEqual([]);
    const again = JSON.parse((await call("ptp", "ADD", "bd-ptp", p, conf)).stdout) as { ips: { gateway: string }[] };
    expect(ping(p, again.ips[0]!.gateway)).toBe(true);
    await call("ptp", "DEL", "bd-ptp", p, conf);
    expect(await vethsAfter(1000)).toBe(0);
    expect(podLinks(p)).toEqual([]);
    expect(reservations("p")).toEqual([]);
  }, 60_000);

  test("cnikit status shows pending removals; SIGTERM flushes them", async () => {
    const p = ns.add("s");
    const conf = bridgeConf("s", "10.95.0.0/24");
    await call("bridge", "ADD", "bd-st", p, conf);
    await call("bridge", "DEL", "bd-st", p, conf);
    const st = run([CNIKIT, "status", "--agent", `127.0.0.1:${PORT}`, "--json"]);
    const pending = (JSON.parse(st.stdout) as { daemon?: { pendingRemovals?: number } }).daemon?.pendingRemovals;
    // the remover may have flushed already on a slow machine
    expect(pending === 0 || pending === 1).toBe(true);
    await call("bridge", "ADD", "bd-st", p, conf);
    await call("bridge", "DEL", "bd-st", p, conf);
    await daemon.stop();
    expect(veths()).toBe(0);
    daemon = await startDaemon(socket, ["--healthz", `127.0.0.1:${PORT}`]);
    daemons.push(daemon);
  }, 60_000);

  test("a daemon SIGKILLed with removals pending: the next one removes them at start", async () => {
    const p = ns.add("k");
    const conf = bridgeConf("k", "10.96.0.0/24");
    await call("bridge", "ADD", "bd-k", p, conf);
    await call("bridge", "DEL", "bd-k", p, conf);
    await daemon.kill();
    expect(veths()).toBe(1); // killed within the batch window (~100 ms)
    daemon = await startDaemon(socket, ["--healthz", `127.0.0.1:${PORT}`]);
    daemons.push(daemon);
    expect(veths()).toBe(0);
    expect(podLinks(p)).toEqual([]);
  }, 60_000);
});
