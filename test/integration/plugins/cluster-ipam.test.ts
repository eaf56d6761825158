/**
 * cluster-ipam against a real etcd (on loopback of this test's private namespace), each ADD and DEL
 * a process of the built plugin as a runtime runs it: ADDs on three nodes at once never share an
 * address; with a warm cache an ADD and a DEL are one etcd request each (etcd's own counters); DEL
 * releases (twice, unknown) and the address can be had again; a repeated ADD keeps its address; a
 * lost or stale cache yields no duplicate; a node with another blockSize is refused; wrong types
 * are code 2 and DEL with keys that do not decode still releases; a small pool is exhausted with a
 * clear error and nothing half-written; GC touches only
 * this node's stale reservations; STATUS; and a pod on cnikit's bridge gets its address from the
 * pool and reaches the gateway.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Etcd3 } from "etcd3";
import type { NodeCache } from "../../../src/ipam/cluster/allocate.ts";
import { parseBlockKey, parsePool, pickFree } from "../../../src/ipam/cluster/pool.ts";
import { formatIP } from "../../../src/spec/ip.ts";
import { CNIKIT, loopbackEtcd } from "../../support/cluster.ts";
import { assertPrivateNetns, must, Namespaces, ping, run, runPrefix, tempDir } from "../../support/netns.ts";

assertPrivateNetns();

const prefix = runPrefix("ci");
const tmp = tempDir("cluster-ipam");
const ns = new Namespaces(prefix);
const bin = join(tmp.path, "bin");
const ENDPOINT = "http://127.0.0.1:24310";
let etcd: Etcd3;
let stopEtcd: (() => Promise<void>) | undefined;

const ipam = (extra: Record<string, unknown> = {}) => ({ type: "cluster-ipam", etcdEndpoints: [ENDPOINT], etcdPrefix: `/${prefix}`, subnet: "10.120.0.0/16", ...extra });
const conf = (node: string, extra: Record<string, unknown> = {}, more: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: "1.1.0", name: "pool", type: "cluster-ipam", ...more, ipam: ipam({ dataDir: join(tmp.path, node), ...extra }) });

/** Run the plugin as its own process. */
async function plugin(cmd: string, node: string, id: string, stdin: string, extraEnv: Record<string, string> = {}) {
  const p = Bun.spawn([join(bin, "cluster-ipam")], {
    env: { CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: "/proc/self/ns/net", CNI_IFNAME: "eth0", CNI_PATH: bin, CNIKIT_NODE_NAME: node, ...extraEnv },
    stdin: new TextEncoder().encode(stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  return { code, json: out ? JSON.parse(out) : undefined };
}
const addrOf = (r: { json: { ips: { address: string }[] } }) => r.json.ips[0]!.address;
const handles = async () => Object.values(await etcd.getAll().prefix(`/${prefix}/10.120.0.0-16/handles/`).strings());

/** The KV and Auth requests etcd has answered so far (its gRPC counters; the JSON gateway goes through them). */
async function etcdRequests(): Promise<number> {
  let n = 0;
  for (const line of (await (await fetch(`${ENDPOINT}/metrics`)).text()).split("\n")) {
    const m = /^grpc_server_handled_total\{(.*)\} (\d+)$/.exec(line);
    if (m && /grpc_service="etcdserverpb\.(KV|Auth)"/.test(m[1]!) && m[1]!.includes('grpc_type="unary"')) n += Number(m[2]);
  }
  return n;
}
const keys = async (part: string) => Object.keys(await etcd.getAll().prefix(`/${prefix}/10.120.0.0-16/${part}/`).strings());

beforeAll(async () => {
  must(["ip", "link", "set", "lo", "up"]);
  must([CNIKIT, "install", "--bin-dir", bin]);
  ({ etcd, stop: stopEtcd } = await loopbackEtcd(tmp.path, 24310));
}, 30_000);
afterAll(async () => {
  await stopEtcd?.();
  ns.cleanup();
  run(["ip", "link", "del", `${prefix}b`]);
  tmp.remove();
});

describe("cluster-ipam", () => {
  test("75 ADDs on three nodes at once: 75 distinct addresses, each in a block of its node; etcd holds exactly those", async () => {
    const jobs = [];
    for (const node of ["n1", "n2", "n3"]) for (let i = 0; i < 25; i++) jobs.push(plugin("ADD", node, `${node}-c${i}`, conf(node)).then((r) => ({ node, r })));
    const done = await Promise.all(jobs);
    for (const { r } of done) expect(r.code).toBe(0);
    const addrs = done.map(({ r }) => addrOf(r));
    expect(new Set(addrs).size).toBe(75);
    for (const a of addrs) expect(a).toMatch(/^10\.120\.\d+\.\d+\/16$/);
    const blocks = await etcd.getAll().prefix(`/${prefix}/10.120.0.0-16/blocks/`).strings();
    for (const { node, r } of done) {
      const [a, b, c, d] = addrOf(r).split("/")[0]!.split(".").map(Number);
      const block = `/${prefix}/10.120.0.0-16/blocks/${a}.${b}.${c}.${d! & ~63}-26`;
      expect(blocks[block]).toBe(node);
    }
    expect((await keys("ips")).length).toBe(75);
    expect((await keys("handles")).length).toBe(75);
  }, 60_000);

  test("with the node's cache warm, an ADD is one etcd request and its DEL one more", async () => {
    const before = await etcdRequests();
    const a = await plugin("ADD", "n1", "one-trip", conf("n1"));
    expect(a.code).toBe(0);
    const between = await etcdRequests();
    expect(between - before).toBe(1);
    expect((await plugin("DEL", "n1", "one-trip", conf("n1"))).code).toBe(0);
    expect((await etcdRequests()) - between).toBe(1);
  });

  test("a repeated ADD keeps its address; DEL releases it (twice, and for unknown attachments, too)", async () => {
    const a = await plugin("ADD", "n1", "rep", conf("n1"));
    expect((await plugin("ADD", "n1", "rep", conf("n1"))).json).toEqual(a.json);
    expect((await plugin("DEL", "n1", "rep", conf("n1"))).code).toBe(0);
    expect(await etcd.get(`/${prefix}/10.120.0.0-16/handles/rep/eth0`).string()).toBeNull();
    const ip = addrOf(a).split("/")[0]!;
    expect((await keys("ips")).some((k) => k.endsWith(`/${ip}`))).toBe(false);
    expect((await keys("ips")).length).toBe(75);
    // the address is free again: another node may ask for it by name
    const again = await plugin("ADD", "n2", "rep-again", conf("n2"), { CNI_ARGS: `IP=${ip}` });
    expect(again.code).toBe(0);
    expect(addrOf(again)).toBe(addrOf(a));
    expect((await plugin("DEL", "n2", "rep-again", conf("n2"))).code).toBe(0);
    expect((await keys("ips")).length).toBe(75);
    expect((await plugin("DEL", "n1", "rep", conf("n1"))).code).toBe(0);
    expect((await plugin("DEL", "n2", "never-added", conf("n2"))).code).toBe(0);
  });

  test("a lost cache (dataDir gone) yields no duplicate", async () => {
    rmSync(join(tmp.path, "n1"), { recursive: true, force: true });
    const before = new Set(await handles());
    const fresh = await Promise.all(Array.from({ length: 5 }, (_, i) => plugin("ADD", "n1", `lost${i}`, conf("n1"))));
    for (const r of fresh) expect(r.code).toBe(0);
    const all = await handles();
    expect(new Set(all).size).toBe(all.length);
    expect(all.length).toBe(before.size + 5);
  });

  test("a stale cache (another node took the address it would hand out next) yields no duplicate", async () => {
    const cache = JSON.parse(readFileSync(join(tmp.path, "n1", "10.120.0.0-16.json"), "utf8")) as NodeCache;
    const pool = parsePool("10.120.0.0/16", 26);
    const next = cache.blocks.map((b) => pickFree(pool, parseBlockKey(pool, b)!, new Set(Object.keys(cache.used[b] ?? {})), cache.last)).find(Boolean);
    const ip = formatIP(next!);
    const n3 = await plugin("ADD", "n3", "stale-n3", conf("n3"), { CNI_ARGS: `IP=${ip}` });
    expect(addrOf(n3)).toBe(`${ip}/16`);
    const before = await etcdRequests();
    const n1 = await plugin("ADD", "n1", "stale-n1", conf("n1"));
    expect(n1.code).toBe(0);
    expect((await etcdRequests()) - before).toBe(3); // the refused transaction, a read of the block, the retry
    expect(addrOf(n1)).not.toBe(`${ip}/16`);
    const all = await handles();
    expect(new Set(all).size).toBe(all.length);
  });

  test("a node configured with another blockSize for the pool is refused and writes nothing", async () => {
    const before = await etcd.getAll().prefix(`/${prefix}/`).strings();
    const r = await plugin("ADD", "n4", "other-size", conf("n4", { blockSize: 24 }));
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ code: 7, msg: expect.stringContaining("is cut into /26 blocks in etcd, but this config says blockSize 24") });
    expect(await etcd.getAll().prefix(`/${prefix}/`).strings()).toEqual(before);
  });

  test("wrong types are code 2 naming the key; DEL with keys that do not decode (or check) still releases", async () => {
    const wrong = await plugin("ADD", "n8", "w1", conf("n8", { blockSize: "26" }));
    expect(wrong.json).toMatchObject({ code: 2, msg: 'cluster-ipam: "ipam.blockSize" must be an integer, not string "26"' });
    const a = await plugin("ADD", "n8", "d1", conf("n8", { EtcdPrefix: `/${prefix}`, NodeName: "n8" }, { RuntimeConfig: { IPs: ["10.120.200.7"] } }));
    expect(a.code).toBe(0);
    expect(addrOf(a)).toBe("10.120.200.7/16");
    const broken = conf("n8", { gateway: "10.9.9.9", routes: "x", blockSize: "big", nodeName: 7, dataDir: 5 }, { runtimeConfig: { ips: 5 }, args: { cni: [] } });
    const d = await plugin("DEL", "n8", "d1", broken);
    expect(d.code).toBe(0);
    expect((await handles()).some((h) => h.endsWith("/10.120.200.7"))).toBe(false);
    // and the address can be had again
    const again = await plugin("ADD", "n8", "d2", conf("n8", {}, { runtimeConfig: { ips: ["10.120.200.7"] } }));
    expect(addrOf(again)).toBe("10.120.200.7/16");
    expect((await plugin("DEL", "n8", "d2", conf("n8"))).code).toBe(0);
  });

  test("GC releases this node's reservations that are not valid, and nobody else's", async () => {
    const valid = Array.from({ length: 25 }, (_, i) => ({ containerID: `n1-c${i}`, ifname: "eth0" })).filter((_, i) => i % 2 === 0);
    const gc = await plugin("GC", "n1", "", conf("n1", {}, { "cni.dev/valid-attachments": valid }));
    expect(gc.code).toBe(0);
    const handles = await keys("handles");
    const n1 = handles.filter((k) => /\/handles\/(n1-c|lost)/.test(k));
    expect(n1.length).toBe(13); // the valid ones; the 5 "lost" ones were not in the list
    expect(handles.filter((k) => /\/handles\/n[23]-c/.test(k)).length).toBe(50);
  });

  test("STATUS: fine, then code 50 with etcd unreachable", async () => {
    expect((await plugin("STATUS", "n1", "", conf("n1"))).code).toBe(0);
    const down = await plugin("STATUS", "n1", "", JSON.stringify({ cniVersion: "1.1.0", name: "pool", type: "cluster-ipam", ipam: ipam({ etcdEndpoints: ["http://127.0.0.1:1"], dataDir: join(tmp.path, "n1") }) }));
    expect(down.code).toBe(1);
    expect(down.json.code).toBe(50);
  }, 30_000);

  test("a small pool is exhausted with a clear error and nothing half-written; STATUS says so", async () => {
    const small = (node: string) => conf(node, { subnet: "10.121.0.0/28", blockSize: 30, etcdPrefix: `/${prefix}-small` });
    const got = await Promise.all(Array.from({ length: 14 }, (_, i) => plugin("ADD", `s${i % 3}`, `s${i}`, small(`s${i % 3}`))));
    for (const r of got) expect(r.code).toBe(0);
    expect(new Set(got.map(addrOf)).size).toBe(14);
    const over = await plugin("ADD", "s0", "s-over", small("s0"));
    expect(over.code).toBe(1);
    expect(over.json).toMatchObject({ code: 11, msg: expect.stringContaining("pool 10.121.0.0/28 is exhausted") });
    expect(await etcd.get(`/${prefix}-small/10.121.0.0-28/handles/s-over/eth0`).string()).toBeNull();
    expect(Object.keys(await etcd.getAll().prefix(`/${prefix}-small/10.121.0.0-28/ips/`).strings()).length).toBe(14);
    const st = await plugin("STATUS", "s0", "", small("s0"));
    expect(st.json).toMatchObject({ code: 50, msg: expect.stringContaining("exhausted") });
  }, 30_000);

  test("a pod on cnikit's bridge gets its address from the pool and reaches the gateway", () => {
    const confDir = join(tmp.path, "net.d");
    mkdirSync(confDir, { recursive: true });
    writeFileSync(join(confDir, "10-pool.conflist"), JSON.stringify({
      cniVersion: "1.1.0",
      name: "pool",
      plugins: [{ type: "bridge", bridge: `${prefix}b`, isGateway: true, ipam: ipam({ subnet: "10.122.0.0/24", gateway: "10.122.0.1", dataDir: join(tmp.path, "pod"), nodeName: "podnode" }) }],
    }));
    const env = { ...process.env, NETCONFPATH: confDir, CNI_PATH: bin, CNI_CACHE_DIR: join(tmp.path, "cache") };
    const p = ns.add("p");
    const r = run([CNIKIT, "add", "pool", p], { env });
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.ips[0]).toMatchObject({ address: expect.stringMatching(/^10\.122\.0\.\d+\/24$/), gateway: "10.122.0.1" });
    expect(ping(p, "10.122.0.1")).toBe(true);
    expect(run([CNIKIT, "del", "pool", p], { env }).code).toBe(0);
  });
});
