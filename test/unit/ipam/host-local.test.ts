/**
 * host-local as a process, against its on-disk layout and against the reference host-local
 * (Debian containernetworking-plugins): reservations written by one are honoured by the other.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import { run, tempDir } from "../../support/netns.ts";

const ROOT = resolve(import.meta.dir, "../../..");
const tmp = tempDir("hostlocal");
const bin = join(tmp.path, "bin");
const REF = "/usr/lib/cni/host-local";

beforeAll(() => {
  if (!existsSync(join(ROOT, "dist/cnikit"))) throw new Error("dist/cnikit is missing: run `npm run build`");
  mkdirSync(bin);
  symlinkSync(join(ROOT, "dist/cnikit"), join(bin, "host-local"));
});
afterAll(() => tmp.remove());

let seq = 0;
function conf(extra: Record<string, unknown> = {}, version = "1.0.0") {
  const dataDir = join(tmp.path, `data${++seq}`);
  return {
    dataDir,
    text: JSON.stringify({
      cniVersion: version,
      name: "net1",
      type: "bridge",
      ipam: { type: "host-local", ranges: [[{ subnet: "10.5.0.0/24" }], [{ subnet: "fd05::/120" }]], routes: [{ dst: "0.0.0.0/0" }], dataDir, ...extra },
    }),
  };
}

function call(plugin: string, command: string, cid: string, stdin: string, extraEnv: Record<string, string> = {}) {
  const r = run([plugin], {
    env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: "/proc/self/ns/net", CNI_IFNAME: "eth0", CNI_PATH: bin, ...extraEnv },
    stdin,
  });
  return { ...r, json: r.stdout.trim() ? JSON.parse(r.stdout) : undefined };
}
const ours = join(bin, "host-local");

describe("host-local", () => {
  test("ADD gives one address per range set, with gateway and routes, in the reference's files", () => {
    const c = conf();
    const r = call(ours, "ADD", "c1", c.text);
    expect(r.code).toBe(0);
    expect(r.json).toEqual({
      cniVersion: "1.0.0",
      ips: [{ address: "10.5.0.2/24", gateway: "10.5.0.1" }, { address: "fd05::2/120", gateway: "fd05::1" }],
      routes: [{ dst: "0.0.0.0/0" }],
    });
    const dir = join(c.dataDir, "net1");
    expect(readdirSync(dir).sort()).toEqual(["10.5.0.2", "fd05::2", "last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
    expect(readFileSync(join(dir, "10.5.0.2"), "utf8")).toBe("c1\r\neth0");
    expect(readFileSync(join(dir, "last_reserved_ip.1"), "utf8")).toBe("fd05::2");
    expect(call(ours, "CHECK", "c1", JSON.stringify({ ...JSON.parse(c.text), prevResult: r.json })).code).toBe(0);
    expect(call(ours, "DEL", "c1", c.text).code).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(["last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
    expect(call(ours, "DEL", "c1", c.text).code).toBe(0); // idempotent
    expect(call(ours, "CHECK", "c1", JSON.stringify({ ...JSON.parse(c.text), prevResult: r.json })).json.msg).toMatch(/failed to find address/);
  });

  test("reservations made by the reference are honoured by cnikit, and the other way round", () => {
    const c = conf();
    const a = call(REF, "ADD", "ref1", c.text);
    expect(a.code).toBe(0);
    const b = call(ours, "ADD", "ours1", c.text);
    expect(b.json.ips[0].address).toBe("10.5.0.3/24"); // continues after the reference's last reservation
    const d = call(REF, "ADD", "ref2", c.text);
    expect(d.json.ips[0].address).toBe("10.5.0.4/24");
    // each releases the other's reservations
    expect(call(ours, "DEL", "ref1", c.text).code).toBe(0);
    expect(call(REF, "DEL", "ours1", c.text).code).toBe(0);
    const left = readdirSync(join(c.dataDir, "net1")).filter((f) => /^[0-9a-f.:]+$/.test(f) && f.includes(".") || f.includes(":"));
    expect(left.sort()).toEqual(["10.5.0.4", "fd05::4"]);
  });

  test("requested addresses from runtimeConfig, args and CNI_ARGS", () => {
    const c = conf();
    const base = JSON.parse(c.text);
    const r1 = call(ours, "ADD", "r1", JSON.stringify({ ...base, runtimeConfig: { ips: ["10.5.0.50/24"] } }));
    expect(r1.json.ips.map((i: { address: string }) => i.address)).toEqual(["10.5.0.50/24", "fd05::2/120"]);
    const r2 = call(ours, "ADD", "r2", JSON.stringify({ ...base, args: { cni: { ips: ["fd05::77"] } } }));
    expect(r2.json.ips.map((i: { address: string }) => i.address)).toEqual(["10.5.0.51/24", "fd05::77/120"]);
    const r3 = call(ours, "ADD", "r3", c.text, { CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.5.0.99" });
    expect(r3.json.ips[0].address).toBe("10.5.0.99/24");
    const taken = call(ours, "ADD", "r4", c.text, { CNI_ARGS: "IP=10.5.0.99" });
    expect(taken.code).toBe(1);
    expect(taken.json.msg).toMatch(/10\.5\.0\.99 is not available/);
    const outside = call(ours, "ADD", "r5", c.text, { CNI_ARGS: "IP=192.168.9.9" });
    expect(outside.json.msg).toMatch(/192\.168\.9\.9/);
    // a failed ADD leaves no reservation behind
    const files = readdirSync(join(c.dataDir, "net1"));
    for (const f of files) if (!f.startsWith("last") && f !== "lock") expect(readFileSync(join(c.dataDir, "net1", f), "utf8")).not.toMatch(/^r[45]/);
  });

  test("50 ADDs at once give 50 distinct addresses; 50 DELs leave no reservation", async () => {
    const c = conf({ ranges: [[{ subnet: "10.6.0.0/24" }]] });
    const env = (cid: string, cmd: string) => ({ PATH: process.env.PATH!, CNI_COMMAND: cmd, CNI_CONTAINERID: cid, CNI_NETNS: "/x", CNI_IFNAME: "eth0", CNI_PATH: bin });
    const spawnAll = (cmd: string) =>
      Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const p = Bun.spawn([ours], { env: env(`p${i}`, cmd), stdin: new TextEncoder().encode(c.text), stdout: "pipe" });
          const out = await new Response(p.stdout).text();
          return { code: await p.exited, out };
        }),
      );
    const adds = await spawnAll("ADD");
    expect(adds.every((a) => a.code === 0)).toBe(true);
    const addrs = adds.map((a) => JSON.parse(a.out).ips[0].address);
    expect(new Set(addrs).size).toBe(50);
    const dels = await spawnAll("DEL");
    expect(dels.every((d) => d.code === 0)).toBe(true);
    expect(readdirSync(join(c.dataDir, "net1")).filter((f) => f.startsWith("10."))).toEqual([]);
  }, 30_000); // 100 processes: slow on a loaded 2-core machine

  test("GC releases reservations not in the valid attachments; STATUS reports an exhausted range", () => {
    const c = conf({ ranges: [[{ subnet: "10.7.0.0/29" }]] }, "1.1.0");
    for (const id of ["g1", "g2", "g3", "g4", "g5"]) expect(call(ours, "ADD", id, c.text).code).toBe(0);
    const st = call(ours, "STATUS", "", c.text);
    expect(st.code).toBe(1);
    expect(st.json.code).toBe(50);
    expect(st.json.msg).toMatch(/exhausted/);
    const gcConf = { ...JSON.parse(c.text), "cni.dev/valid-attachments": [{ containerID: "g2", ifname: "eth0" }] };
    expect(call(ours, "GC", "", JSON.stringify(gcConf)).code).toBe(0);
    const left = readdirSync(join(c.dataDir, "net1")).filter((f) => f.startsWith("10."));
    expect(left).toEqual(["10.7.0.3"]);
    expect(readFileSync(join(c.dataDir, "net1", "10.7.0.3"), "utf8")).toBe("g2\r\neth0");
    expect(call(ours, "STATUS", "", c.text).code).toBe(0);
  });

  test("go-cni's ipRanges capability; wrong types are code 2; DEL with keys that do not decode releases; a dataDir of the wrong type touches nothing", () => {
    const c = conf();
    const base = JSON.parse(c.text);
    const rc = { runtimeConfig: { ipRanges: [[{ Subnet: "10.8.0.0/24", RangeStart: "10.8.0.100", RangeEnd: "10.8.0.100", Gateway: "10.8.0.254" }]] } };
    const a = call(ours, "ADD", "go1", JSON.stringify({ ...base, ...rc }));
    expect(a.code).toBe(0);
    expect(a.json.ips[0]).toEqual({ address: "10.8.0.100/24", gateway: "10.8.0.254" });
    const held = () => readdirSync(join(c.dataDir, "net1")).filter((f) => /^\d+\.|:/.test(f)).sort();
    expect(held()).toEqual(["10.5.0.2", "10.8.0.100", "fd05::2"]);
    const wrong = call(ours, "ADD", "go2", JSON.stringify({ ...base, ipam: { ...base.ipam, dataDir: 5 } }));
    expect(wrong.json).toMatchObject({ code: 2, msg: 'host-local: "ipam.dataDir" must be a string, not number 5' });
    // DEL: a dataDir of the wrong type releases nothing, anywhere; broken ranges and routes do not stop a release
    expect(call(ours, "DEL", "go1", JSON.stringify({ ...base, ipam: { ...base.ipam, dataDir: 5 } })).code).toBe(0);
    expect(held()).toEqual(["10.5.0.2", "10.8.0.100", "fd05::2"]);
    const broken = { ...base, ipam: { ...base.ipam, ranges: "10.5.0.0/24", routes: [{ dst: 1 }], resolvConf: [] }, runtimeConfig: { ipRanges: {}, ips: "x" }, args: { cni: { ips: 5 } } };
    const d = call(ours, "DEL", "go1", JSON.stringify(broken));
    expect(d.stdout).toBe("");
    expect(d.code).toBe(0);
    expect(held()).toEqual([]);
  });

  test("bad configs are spec errors with no state left", () => {
    const c = conf();
    const base = JSON.parse(c.text);
    for (const ipam of [
      { type: "host-local", dataDir: c.dataDir },
      { type: "host-local", ranges: [[{ subnet: "10.5.0.1/24" }]], dataDir: c.dataDir },
      { type: "host-local", ranges: [[{ subnet: "10.5.0.0/24" }], [{ subnet: "10.5.0.0/25" }]], dataDir: c.dataDir },
      { type: "host-local", ranges: [[{ subnet: "10.5.0.0/24" }]], routes: [{ dst: "x" }], dataDir: c.dataDir },
    ]) {
      const r = call(ours, "ADD", "bad", JSON.stringify({ ...base, ipam }));
      expect(r.code).toBe(1);
      expect(r.json.code).toBe(7);
    }
    expect(existsSync(join(c.dataDir, "net1"))).toBe(false);
  });
});

describe("static", () => {
  test("config addresses, routes and dns; CNI_ARGS IP and GATEWAY", () => {
    symlinkSync(join(ROOT, "dist/cnikit"), join(bin, "static"));
    const st = join(bin, "static");
    const base = {
      cniVersion: "1.0.0",
      name: "s",
      type: "bridge",
      ipam: { type: "static", addresses: [{ address: "10.10.0.5/24", gateway: "10.10.0.1" }, { address: "fd10::5/64" }], routes: [{ dst: "0.0.0.0/0", gw: "10.10.0.1" }], dns: { nameservers: ["10.10.0.1"] } },
    };
    const r = call(st, "ADD", "s1", JSON.stringify(base));
    expect(r.json).toEqual({
      cniVersion: "1.0.0",
      ips: [{ address: "10.10.0.5/24", gateway: "10.10.0.1" }, { address: "fd10::5/64" }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.10.0.1" }],
      dns: { nameservers: ["10.10.0.1"] },
    });
    const a = call(st, "ADD", "s2", JSON.stringify(base), { CNI_ARGS: "IP=10.20.0.7/16;GATEWAY=10.20.0.1" });
    expect(a.json.ips).toEqual([{ address: "10.20.0.7/16", gateway: "10.20.0.1" }]);
    const rc = call(st, "ADD", "s3", JSON.stringify({ ...base, runtimeConfig: { ips: ["10.30.0.7/24"] } }));
    expect(rc.json.ips).toEqual([{ address: "10.30.0.7/24" }]);
    const noPrefix = call(st, "ADD", "s4", JSON.stringify(base), { CNI_ARGS: "IP=10.20.0.7" });
    expect(noPrefix.json.code).toBe(7);
    const bad = call(st, "ADD", "s5", JSON.stringify({ ...base, ipam: { type: "static", addresses: [{ address: "10.1.1.1" }] } }));
    expect(bad.json.msg).toContain("addresses[0].address");
    expect(call(st, "DEL", "s1", JSON.stringify(base)).code).toBe(0);
  });
});
