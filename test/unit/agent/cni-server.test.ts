/**
 * The daemon's CNI server in this process, with fake plugin types: replies as a standalone run
 * prints them, per-attachment serialization, the concurrency bound, deadlines, refused requests
 * that disturb nothing, socket modes and the stale socket, metrics.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { lstatSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CniServer, REQUEST_ENV } from "../../../src/agent/cni-server.ts";
import { decodeReply, encodeRequest, MAX_STDIN, PROTOCOL_VERSION } from "../../../src/agent/protocol.ts";
import { registerBuiltins } from "../../../src/invoke/builtin.ts";
import type { CmdArgs } from "../../../src/skel/plugin.ts";
import { callDaemon, rawCall } from "../../support/daemon.ts";
import { tempDir } from "../../support/netns.ts";

const tmp = tempDir("ckd-server");
const socket = join(tmp.path, "run", "cni.sock");
let server: CniServer;
let running = 0;
let peak = 0;
const spans: Record<string, [number, number][]> = {};

registerBuiltins({
  "ckd-fake": async () => ({
    async add(a: CmdArgs) {
      const c = a.config as { sleepMs?: number; fail?: boolean; nested?: boolean };
      running++;
      peak = Math.max(peak, running);
      const t0 = performance.now();
      try {
        if (c.sleepMs) await Bun.sleep(c.sleepMs);
        if (c.fail) throw new Error("asked to fail");
        if (c.nested) {
          // a delegate exec'd on behalf of this request that comes back through a shim: same key
          const r = await callDaemon(socket, { type: "ckd-fake", env: { ...pick(a.env), CNI_COMMAND: "ADD" }, stdin: JSON.stringify({ cniVersion: "1.0.0", name: "n" }) });
          if (r.reply?.exitCode !== 0) throw new Error(`nested call failed: ${r.stdout}`);
        }
        return { cniVersion: "1.1.0", ips: [{ address: "10.1.2.3/24" }] };
      } finally {
        running--;
        (spans[a.containerId] ??= []).push([t0, performance.now()]);
      }
    },
    async del(a: CmdArgs) {
      const c = a.config as { sleepMs?: number };
      if (c.sleepMs) await Bun.sleep(c.sleepMs);
    },
  }),
});

function pick(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && (k.startsWith("CNI_") || k.startsWith("CNIKIT_"))) out[k] = v;
  return out;
}

const addEnv = (cid: string) => ({ CNI_COMMAND: "ADD", CNI_CONTAINERID: cid, CNI_NETNS: "/proc/self/ns/net", CNI_IFNAME: "eth0", CNI_PATH: "/nonexistent" });
const add = (cid: string, conf: Record<string, unknown> = {}) =>
  callDaemon(socket, { type: "ckd-fake", env: addEnv(cid), stdin: JSON.stringify({ cniVersion: "1.0.0", name: "n", ...conf }) });

beforeAll(async () => {
  server = new CniServer({ socketPath: socket, maxConcurrent: 3, timeoutMs: 400, log: () => {} });
  await server.start();
});
afterAll(async () => {
  await server.stop(100);
  tmp.remove();
});

describe("CNI server", () => {
  test("the socket is 0600 in a 0700 directory; ready once listening", () => {
    expect(statSync(join(tmp.path, "run")).mode & 0o777).toBe(0o700);
    expect(lstatSync(socket).isSocket()).toBe(true);
    expect(lstatSync(socket).mode & 0o777).toBe(0o600);
    expect(server.ready).toBe(true);
  });

  test("ADD and VERSION print what a standalone run prints; a failure is a spec error in the config's version", async () => {
    const r = await add("a1");
    expect(r.reply!.exitCode).toBe(0);
    expect(r.stdout).toBe(`${JSON.stringify({ cniVersion: "1.0.0", ips: [{ address: "10.1.2.3/24" }] }, null, 4)}\n`);
    const v = await callDaemon(socket, { type: "ckd-fake", env: { CNI_COMMAND: "VERSION" } });
    expect(JSON.parse(v.stdout).supportedVersions).toContain("1.1.0");
    const f = await add("a2", { fail: true });
    expect(f.reply!.exitCode).toBe(1);
    expect(JSON.parse(f.stdout)).toMatchObject({ cniVersion: "1.0.0", code: 999, msg: "asked to fail" });
    const missing = await callDaemon(socket, { type: "ckd-fake", env: { CNI_COMMAND: "ADD" }, stdin: "{}" });
    expect(JSON.parse(missing.stdout).code).toBe(4);
  });

  test("a type neither built in nor in CNI_PATH is a spec error naming the path", async () => {
    const r = await callDaemon(socket, { type: "ckd-none", env: addEnv("n1"), stdin: "{}" });
    expect(r.reply!.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 4, msg: expect.stringContaining('failed to find plugin "ckd-none"') });
  });

  test("a type that is not built in runs as the process CNI_PATH names, its stdout bytes untouched", async () => {
    const dir = join(tmp.path, "plugins");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "ckd-ext"), `#!/bin/sh\nprintf '{"cniVersion":"1.0.0","ips":[{"address":"10.9.9.9/32"}],"x":"%s"}' "$CNI_CONTAINERID"\nexit 0\n`, { mode: 0o755 });
    const r = await callDaemon(socket, { type: "ckd-ext", env: { ...addEnv("x1"), CNI_PATH: dir }, stdin: "{}" });
    expect(r.reply!.exitCode).toBe(0);
    expect(r.stdout).toBe('{"cniVersion":"1.0.0","ips":[{"address":"10.9.9.9/32"}],"x":"x1"}');
  });

  test("calls for one container and ifname run one after the other; others at once, up to the bound", async () => {
    peak = 0;
    await Promise.all([add("same", { sleepMs: 60 }), add("same", { sleepMs: 60 }), add("same", { sleepMs: 60 })]);
    const s = spans.same!;
    expect(s).toHaveLength(3);
    s.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < s.length; i++) expect(s[i]![0]).toBeGreaterThanOrEqual(s[i - 1]![1] - 1);
    expect(peak).toBe(1);
    peak = 0;
    const all = await Promise.all(Array.from({ length: 8 }, (_, i) => add(`par${i}`, { sleepMs: 40 })));
    expect(all.every((r) => r.reply!.exitCode === 0)).toBe(true);
    expect(peak).toBe(3); // maxConcurrent
  });

  test("a call past its deadline gets error 11; the next call for it waits for the late one", async () => {
    const t0 = performance.now();
    const r = await add("late", { sleepMs: 700 });
    expect(performance.now() - t0).toBeLessThan(650);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: "1.0.0", code: 11, msg: expect.stringContaining("did not finish within 0.4 s") });
    expect(server.deadlineMisses).toBeGreaterThanOrEqual(1);
    const next = await add("late");
    expect(next.reply!.exitCode).toBe(0);
    const s = spans.late!;
    expect(s[1]![0]).toBeGreaterThanOrEqual(s[0]![1] - 1);
  });

  test("a call made on behalf of a call being served does not wait for that call's key", async () => {
    const r = await add("nest", { nested: true });
    expect(r.stdout).toContain("10.1.2.3/24");
    expect(r.reply!.exitCode).toBe(0);
    // an id that is not in flight gives no such pass
    const env = { ...addEnv("nest2"), [REQUEST_ENV]: "no-such-request" };
    const r2 = await callDaemon(socket, { type: "ckd-fake", env, stdin: JSON.stringify({ cniVersion: "1.0.0", name: "n" }) });
    expect(r2.stdout).toContain("10.1.2.3/24");
  });

  test("refused requests (other version, bad magic, malformed, oversized) disturb nothing", async () => {
    const slow = add("busy", { sleepMs: 150 });
    const other = await callDaemon(socket, { type: "ckd-fake", env: addEnv("v") }, PROTOCOL_VERSION + 1);
    expect(other.version).toBe(PROTOCOL_VERSION);
    expect(other.reply).toBeUndefined();
    const garbage = await rawCall(socket, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    expect(new TextDecoder().decode(garbage)).toContain('"code": 6');
    const bad = new Uint8Array([...encodeRequest({ type: "x", env: {}, stdin: new Uint8Array() }).subarray(0, 12)]);
    new DataView(bad.buffer).setUint32(8, 3);
    const malformed = await rawCall(socket, Buffer.concat([bad, new Uint8Array([120, 121, 122])]));
    expect(new TextDecoder().decode(malformed)).toContain("NUL-terminated");
    const big = await callDaemon(socket, { type: "ckd-fake", env: addEnv("big"), stdin: `{"cniVersion":"1.0.0","pad":"${"x".repeat(MAX_STDIN + (128 << 10))}"}` });
    expect(JSON.parse(big.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining("1 MiB") });
    const over = await callDaemon(socket, { type: "ckd-fake", env: addEnv("big2"), stdin: `{"cniVersion":"1.0.0","pad":"${"x".repeat(MAX_STDIN)}"}` });
    expect(JSON.parse(over.stdout)).toMatchObject({ code: 7 });
    expect((await slow).reply!.exitCode).toBe(0);
    expect((await add("after")).reply!.exitCode).toBe(0);
    expect(server.refused).toBeGreaterThanOrEqual(5);
  });

  test("latency histograms per plugin and verb on /metrics", () => {
    const m = server.metricsText();
    expect(m).toContain("# TYPE cnikit_cni_request_duration_seconds histogram");
    expect(m).toMatch(/cnikit_cni_request_duration_seconds_count\{plugin="ckd-fake",verb="ADD"\} \d+/);
    expect(m).toMatch(/cnikit_cni_request_duration_seconds_bucket\{plugin="ckd-fake",verb="VERSION",le="\+Inf"\} 1/);
    expect(server.latency.count(["ckd-fake", "ADD"])).toBeGreaterThan(10);
  });

  test("requests by plugin, verb and code on /metrics: 0, each spec error's code, 11 past the deadline", () => {
    const m = server.metricsText();
    expect(m).toContain("# TYPE cnikit_cni_requests_total counter");
    expect(m).toMatch(/^cnikit_cni_requests_total\{plugin="ckd-fake",verb="ADD",code="0"\} \d+$/m);
    expect(server.requests.get(["ckd-fake", "ADD", "0"])).toBeGreaterThan(10);
    expect(server.requests.get(["ckd-fake", "ADD", "999"])).toBe(1); // "asked to fail"
    expect(server.requests.get(["ckd-fake", "ADD", "4"])).toBe(1); // no CNI_CONTAINERID
    expect(server.requests.get(["ckd-fake", "ADD", "11"])).toBe(1); // the late one
    expect(server.requests.get(["ckd-fake", "VERSION", "0"])).toBe(1);
  });

  test("pending removals: DEL calls not finished yet, also past their deadline", async () => {
    expect(server.pendingRemovals).toBe(0);
    const del = (cid: string) =>
      callDaemon(socket, { type: "ckd-fake", env: { ...addEnv(cid), CNI_COMMAND: "DEL" }, stdin: JSON.stringify({ cniVersion: "1.0.0", name: "n", sleepMs: 600 }) });
    const slow = [del("d1"), del("d2")];
    await Bun.sleep(100);
    expect(server.pendingRemovals).toBe(2);
    expect(JSON.parse((await slow[0]!).stdout).code).toBe(11); // answered at the deadline, still running
    expect(server.pendingRemovals).toBe(2);
    await slow[1];
    for (let i = 0; i < 100 && server.pendingRemovals > 0; i++) await Bun.sleep(20);
    expect(server.pendingRemovals).toBe(0);
    expect(server.requests.get(["ckd-fake", "DEL", "11"])).toBe(2);
  });

  test("a live socket is refused, a stale one replaced, a file that is not a socket kept", async () => {
    await expect(new CniServer({ socketPath: socket, log: () => {} }).start()).rejects.toThrow(/another daemon/);
    const file = join(tmp.path, "not-a-socket");
    writeFileSync(file, "x");
    await expect(new CniServer({ socketPath: file, log: () => {} }).start()).rejects.toThrow(/not a socket/);
    // a stale socket: bound by a listener that is gone without removing it
    const stalePath = join(tmp.path, "stale.sock");
    const l = Bun.listen({ unix: stalePath, socket: { data() {} } });
    l.stop(true);
    let exists = true;
    try {
      lstatSync(stalePath);
    } catch {
      exists = false;
    }
    if (!exists) writeFileSync(stalePath, ""); // Bun removed it: nothing stale to test then
    const s2 = new CniServer({ socketPath: stalePath, log: () => {} });
    if (exists) {
      await s2.start();
      expect((await callDaemon(stalePath, { type: "ckd-fake", env: { CNI_COMMAND: "VERSION" } })).reply!.exitCode).toBe(0);
      await s2.stop(100);
      expect(() => lstatSync(stalePath)).toThrow();
    }
  });

  test("stop: not ready at once, calls in flight finish, the socket goes", async () => {
    const path = join(tmp.path, "stop", "cni.sock");
    const s = new CniServer({ socketPath: path, log: () => {} });
    await s.start();
    const inflight = callDaemon(path, { type: "ckd-fake", env: addEnv("stop1"), stdin: JSON.stringify({ cniVersion: "1.0.0", name: "n", sleepMs: 100 }) });
    await Bun.sleep(20);
    const stopping = s.stop(5000);
    expect(s.ready).toBe(false);
    expect((await inflight).reply!.exitCode).toBe(0);
    await stopping;
    expect(() => lstatSync(path)).toThrow();
  });

  test("stop: a shim that connected before is answered though its request comes after; new shims find no socket", async () => {
    const path = join(tmp.path, "stop2", "cni.sock");
    const s = new CniServer({ socketPath: path, log: () => {} });
    await s.start();
    // connected, request not yet sent (a shim between connect() and write())
    const chunks: Uint8Array[] = [];
    let closed!: () => void;
    const done = new Promise<void>((r) => (closed = r));
    const conn = await Bun.connect({ unix: path, socket: { data: (_s, d) => void chunks.push(new Uint8Array(d)), close: () => closed() } });
    await Bun.sleep(20);
    const stopping = s.stop(5000);
    await Bun.sleep(30);
    // the socket went at once: a shim from now on runs the standalone binary
    expect(() => lstatSync(path)).toThrow();
    conn.write(encodeRequest({ type: "ckd-fake", env: addEnv("stop2"), stdin: new TextEncoder().encode(JSON.stringify({ cniVersion: "1.0.0", name: "n" })) }));
    await done;
    await stopping;
    const reply = decodeReply(Buffer.concat(chunks));
    expect(reply.reply?.exitCode).toBe(0);
    expect(new TextDecoder().decode(reply.reply!.stdout)).toContain("10.1.2.3/24");
  });
});
