/**
 * Many pods at once through the daemon (issue 13): CNIKIT_PODS pods (default 100; the issue's
 * number is 500) on one bridge with a /22, every ADD sent at once through cnikit-shim, then every
 * DEL at once: no address given twice, every pod reaches the gateway, nothing left afterwards
 * (veths, reservations, attachment records, masquerade elements). In this file's private network
 * namespace (prefix ckm); state in a temp dir.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { CNIKIT, startDaemon, type TestDaemon } from "../../support/daemon.ts";
import { assertPrivateNetns, must, run, runPrefix, tempDir } from "../../support/netns.ts";

assertPrivateNetns();

const PODS = Number(process.env.CNIKIT_PODS || 100);
const prefix = runPrefix("m"); // ckm...
const tmp = tempDir("ckm-many");
const bin = join(tmp.path, "bin");
const socket = join(tmp.path, "run", "cni.sock");
const state = join(tmp.path, "state");
const ipam = join(tmp.path, "ipam");
const bridge = `${prefix}br`;
const names: string[] = [];
let daemon: TestDaemon | undefined;

const conf = JSON.stringify({ cniVersion: "1.1.0", name: "many", type: "bridge", bridge, isGateway: true, ipMasq: true,
  ipam: { type: "host-local", ranges: [[{ subnet: "10.99.0.0/22" }]], dataDir: ipam } });

async function shim(verb: string, i: number): Promise<{ code: number; stdout: string }> {
  const p = Bun.spawn([join(bin, "bridge")], {
    env: { PATH: process.env.PATH!, CNIKIT_SOCKET: socket, CNI_COMMAND: verb, CNI_CONTAINERID: `pod-${i}`, CNI_NETNS: `/run/netns/${names[i]}`, CNI_IFNAME: "eth0", CNI_PATH: bin },
    stdin: new TextEncoder().encode(conf), stdout: "pipe", stderr: "ignore",
  });
  const [stdout, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  return { code, stdout };
}

/** Run `fn` over 0..n-1, `width` at a time. */
async function pool<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

const files = (dir: string) => (existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String) : []);

beforeAll(async () => {
  must(["ip", "link", "set", "lo", "up"]);
  must([CNIKIT, "install", "--bin-dir", bin]);
  // ip -batch: one process for all the namespaces
  for (let i = 0; i < PODS; i++) names.push(`${prefix}p${i}`);
  must(["ip", "-batch", "-"], { stdin: names.map((n) => `netns add ${n}\n`).join("") });
  daemon = await startDaemon(socket, ["--state-dir", state, "--max-requests", "64"]);
}, 120_000);

afterAll(async () => {
  await daemon?.kill();
  run(["ip", "-force", "-batch", "-"], { stdin: names.map((n) => `netns del ${n}\n`).join("") });
  run(["ip", "link", "del", bridge]);
  tmp.remove();
}, 120_000);

test(`${PODS} pods ADDed at once and DELeted at once through the daemon on one bridge (/22)`, async () => {
  const t0 = performance.now();
  const adds = await Promise.all(Array.from({ length: PODS }, (_, i) => shim("ADD", i)));
  const addMs = performance.now() - t0;
  const failed = adds.filter((r) => r.code !== 0);
  expect(failed.map((r) => r.stdout).slice(0, 3)).toEqual([]);
  const ips = adds.map((r) => (JSON.parse(r.stdout) as { ips: { address: string }[] }).ips[0]!.address.split("/")[0]!);
  expect(new Set(ips).size).toBe(PODS); // no address given twice
  expect(files(join(ipam, "many")).filter((f) => f.startsWith("10.")).length).toBe(PODS);
  // every pod reaches the gateway
  const t1 = performance.now();
  let retried = 0;
  const pings = await pool(PODS, 16, async (i) => {
    // up to 3 tries: on 2 shared cores a first echo may time out under the load of the others
    for (let k = 0; k < 3; k++) {
      const p = Bun.spawn(["ip", "netns", "exec", names[i]!, "ping", "-c", "1", "-W", "3", "10.99.0.1"], { stdout: "ignore", stderr: "ignore" });
      if ((await p.exited) === 0) return true;
      retried++;
    }
    return false;
  });
  const pingMs = performance.now() - t1;
  expect(pings.filter((ok) => !ok).length).toBe(0);
  const t2 = performance.now();
  const dels = await Promise.all(Array.from({ length: PODS }, (_, i) => shim("DEL", i)));
  const delMs = performance.now() - t2;
  expect(dels.filter((r) => r.code !== 0).map((r) => r.stdout).slice(0, 3)).toEqual([]);
  const vethCount = () => (JSON.parse(must(["ip", "-j", "link", "show", "type", "veth"]).trim() || "[]") as unknown[]).length;
  // the daemon removes the DELed pods' veths in batches, within a second of the DELs' replies
  for (const end = Date.now() + 1000; vethCount() > 0 && Date.now() < end; ) await Bun.sleep(10);
  const left = {
    veths: vethCount(),
    reservations: files(join(ipam, "many")).filter((f) => f.startsWith("10.")).length,
    records: files(join(state, "attachments")).filter((f) => f.endsWith(".json")).length,
    masqElements: (must(["nft", "list", "ruleset"]).match(/10\.99\./g) ?? []).length,
  };
  console.log(`many-pods: ${PODS} ADDs at once in ${Math.round(addMs)} ms (${PODS} distinct addresses), ${pings.filter(Boolean).length}/${PODS} reach the gateway (pings ${Math.round(pingMs)} ms, ${retried} retried), ${PODS} DELs at once in ${Math.round(delMs)} ms; left: ${JSON.stringify(left)}`);
  expect(left).toEqual({ veths: 0, reservations: 0, records: 0, masqElements: 0 });
}, 600_000);
