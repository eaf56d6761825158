import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { buildPluginConfig, CNIConfig, type RuntimeConf } from "../../../src/libcni/cni.ts";
import { confListFromObject, type NetworkConfigList } from "../../../src/libcni/conf.ts";
import { CniError, ErrorCode } from "../../../src/spec/error.ts";
import { convertResult, type AnyResult } from "../../../src/spec/result.ts";
import { cleanupWorlds, makeWorld, type Call, type FakeWorld } from "./fakes.ts";

afterAll(() => cleanupWorlds());

async function rejection(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error("expected a rejection");
}

const RA = {
  cniVersion: "1.1.0",
  interfaces: [
    { name: "cni0", mac: "aa:bb:cc:00:00:01" },
    { name: "eth0", mac: "aa:bb:cc:00:00:02", sandbox: "/var/run/netns/p1", mtu: 1400 },
  ],
  ips: [{ interface: 1, address: "10.1.0.5/24", gateway: "10.1.0.1" }],
  routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1", table: 100 }],
};
const RB = {
  cniVersion: "1.0.0",
  interfaces: [
    { name: "cni0", mac: "aa:bb:cc:00:00:01" },
    { name: "veth1", mac: "aa:bb:cc:00:00:03" },
    { name: "eth0", mac: "aa:bb:cc:00:00:02", sandbox: "/var/run/netns/p1" },
  ],
  ips: [{ interface: 2, address: "10.1.0.5/24", gateway: "10.1.0.1" }],
  routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
  dns: { nameservers: ["10.1.0.1"] },
};
const RC = {
  cniVersion: "0.4.0",
  interfaces: [{ name: "eth0", sandbox: "/var/run/netns/p1" }],
  ips: [
    { version: "4", interface: 0, address: "10.1.0.5/24", gateway: "10.1.0.1" },
    { version: "6", interface: 0, address: "fd00::5/64" },
  ],
  routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
  dns: { nameservers: ["10.1.0.1"], search: ["svc.local"] },
};

const CAPS = {
  portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
  bandwidth: { ingressRate: 1000, ingressBurst: 2000 },
  ipRanges: [[{ subnet: "10.9.0.0/16" }]],
};

const ARGS: Array<[string, string]> = [
  ["K8S_POD_NAME", "web"],
  ["IgnoreUnknown", "1"],
];

interface Setup {
  w: FakeWorld;
  list: NetworkConfigList;
  cni: CNIConfig;
}

/** Three fake plugins a (portMappings), b (bandwidth), c (none) in a list of `version`. */
function setup(version = "1.0.0", extra: Record<string, unknown> = {}, opts: { rollback?: boolean } = {}): Setup {
  const w = makeWorld();
  w.plugin("a", { result: RA });
  w.plugin("b", { result: RB });
  w.plugin("c", { result: RC });
  const list = confListFromObject({
    cniVersion: version,
    name: "net1",
    plugins: [
      { type: "a", name: "inner-name", cniVersion: "0.1.0", capabilities: { portMappings: true }, keyA: 1 },
      { type: "b", capabilities: { bandwidth: true, portMappings: false }, keyB: { nested: true } },
      { type: "c" },
    ],
    ...extra,
  });
  const cni = new CNIConfig({
    path: [w.bin],
    cacheDir: w.cache,
    baseEnv: w.baseEnv,
    forceExec: true,
    ...(opts.rollback === false ? { rollbackFailedAdd: false } : {}),
  });
  return { w, list, cni };
}

const rt = (over: Partial<RuntimeConf> = {}): RuntimeConf => ({
  containerId: "ctr1",
  netns: "/var/run/netns/p1",
  ifName: "eth0",
  args: ARGS,
  capabilityArgs: CAPS,
  ...over,
});

const seq = (calls: Call[]) => calls.map((c) => `${c.type}:${c.command}`);
const cachePath = (s: Setup, cid = "ctr1", ifname = "eth0", net = "net1") => join(s.w.cache, "results", `${net}-${cid}-${ifname}`);
const conv = (r: unknown, v: string) => convertResult(r as AnyResult, v);

describe("buildPluginConfig", () => {
  const list = confListFromObject({
    cniVersion: "1.0.0",
    name: "n",
    plugins: [{ type: "x", name: "old", cniVersion: "0.1.0", capabilities: { portMappings: true, dns: false, mac: true }, k: 1 }],
  });
  const p = list.plugins[0]!;

  test("injects name and version over the plugin's own", () => {
    expect(JSON.parse(buildPluginConfig(list, p))).toEqual({
      type: "x",
      name: "n",
      cniVersion: "1.0.0",
      capabilities: { portMappings: true, dns: false, mac: true },
      k: 1,
    });
  });

  test("runtimeConfig holds only enabled, declared capabilities that were passed", () => {
    const conf = JSON.parse(buildPluginConfig(list, p, { capabilityArgs: { portMappings: [1], dns: { x: 1 }, bandwidth: {} } }));
    expect(conf.runtimeConfig).toEqual({ portMappings: [1] });
  });

  test("no matching capability: no runtimeConfig key", () => {
    expect("runtimeConfig" in JSON.parse(buildPluginConfig(list, p, { capabilityArgs: { bandwidth: {} } }))).toBe(false);
  });

  test("prevResult and extra keys", () => {
    const conf = JSON.parse(buildPluginConfig(list, p, { prevResult: { cniVersion: "1.0.0" }, extra: { "cni.dev/x": [1] } }));
    expect(conf.prevResult).toEqual({ cniVersion: "1.0.0" });
    expect(conf["cni.dev/x"]).toEqual([1]);
  });
});

describe("ADD", () => {
  test("runs every plugin in order, chaining prevResult in the list's version", async () => {
    const s = setup("1.0.0");
    const res = await s.cni.addNetworkList(s.list, rt());
    const calls = s.w.calls();
    expect(seq(calls)).toEqual(["a:ADD", "b:ADD", "c:ADD"]);
    expect(calls[0]!.stdin.prevResult).toBeUndefined();
    expect(calls[1]!.stdin.prevResult).toEqual(conv(RA, "1.0.0"));
    expect(calls[2]!.stdin.prevResult).toEqual(conv(RB, "1.0.0"));
    // RA's 1.1.0-only fields are gone in the 1.0.0 prevResult
    expect(JSON.stringify(calls[1]!.stdin.prevResult)).not.toContain("table");
    expect(res).toEqual(conv(RC, "1.0.0"));
    expect(res).toEqual({
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", sandbox: "/var/run/netns/p1" }],
      ips: [
        { interface: 0, address: "10.1.0.5/24", gateway: "10.1.0.1" },
        { interface: 0, address: "fd00::5/64" },
      ],
      routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
      dns: { nameservers: ["10.1.0.1"], search: ["svc.local"] },
    });
  });

  test("each plugin gets its config with name and cniVersion injected, other keys kept", async () => {
    const s = setup("1.0.0");
    await s.cni.addNetworkList(s.list, rt());
    const [a, b, c] = s.w.calls();
    expect(a!.stdin).toEqual({
      type: "a",
      name: "net1",
      cniVersion: "1.0.0",
      capabilities: { portMappings: true },
      keyA: 1,
      runtimeConfig: { portMappings: CAPS.portMappings },
    });
    expect(b!.stdin.name).toBe("net1");
    expect(b!.stdin.keyB).toEqual({ nested: true });
    expect(c!.stdin.type).toBe("c");
  });

  test("runtimeConfig holds only the capabilities each plugin declares", async () => {
    const s = setup("1.0.0");
    await s.cni.addNetworkList(s.list, rt());
    const [a, b, c] = s.w.calls();
    expect(a!.stdin.runtimeConfig).toEqual({ portMappings: CAPS.portMappings });
    expect(b!.stdin.runtimeConfig).toEqual({ bandwidth: CAPS.bandwidth });
    expect("runtimeConfig" in c!.stdin).toBe(false);
  });

  test("without capability args no plugin gets runtimeConfig", async () => {
    const s = setup("1.0.0");
    await s.cni.addNetworkList(s.list, rt({ capabilityArgs: undefined }));
    for (const c of s.w.calls()) expect("runtimeConfig" in c.stdin).toBe(false);
  });

  test("environment: the attachment's CNI_* variables replace inherited ones", async () => {
    const s = setup("1.0.0");
    await s.cni.addNetworkList(s.list, rt());
    for (const c of s.w.calls()) {
      expect(c.env).toMatchObject({
        CNI_COMMAND: "ADD",
        CNI_CONTAINERID: "ctr1",
        CNI_NETNS: "/var/run/netns/p1",
        CNI_IFNAME: "eth0",
        CNI_ARGS: "K8S_POD_NAME=web;IgnoreUnknown=1",
        CNI_PATH: s.w.bin,
        MARKER: "base",
      });
    }
  });

  test("no CNI_ARGS at all when the attachment has none", async () => {
    const s = setup("1.0.0");
    await s.cni.addNetworkList(s.list, rt({ args: undefined }));
    for (const c of s.w.calls()) expect(c.env.CNI_ARGS).toBeUndefined();
  });

  test("a 0.3.1 list chains 0.3.1 results (ips with version)", async () => {
    const s = setup("0.3.1");
    const res = await s.cni.addNetworkList(s.list, rt());
    const calls = s.w.calls();
    expect(calls.map((c) => c.stdin.cniVersion)).toEqual(["0.3.1", "0.3.1", "0.3.1"]);
    expect(calls[1]!.stdin.prevResult).toEqual(conv(RA, "0.3.1"));
    expect((calls[1]!.stdin.prevResult as { ips: Array<{ version: string }> }).ips[0]!.version).toBe("4");
    expect(res).toEqual(conv(RC, "0.3.1"));
  });

  test("the result is cached in libcni's format", async () => {
    const s = setup("1.0.0");
    const res = await s.cni.addNetworkList(s.list, rt());
    const doc = JSON.parse(readFileSync(cachePath(s), "utf8"));
    expect(doc).toEqual({
      kind: "cniCacheV1",
      containerId: "ctr1",
      config: Buffer.from(s.list.bytes, "utf8").toString("base64"),
      ifName: "eth0",
      networkName: "net1",
      netns: "/var/run/netns/p1",
      cniArgs: ARGS,
      capabilityArgs: CAPS,
      result: res,
    });
    expect(s.cni.getCachedResult(s.list, rt())).toEqual(res);
    expect(s.cni.getCachedAttachments("ctr1").map((a) => a.network)).toEqual(["net1"]);
  });

  test("the cached result is converted to the version of the list reading it", async () => {
    const s = setup("1.1.0");
    await s.cni.addNetworkList(s.list, rt());
    const older = confListFromObject({ cniVersion: "0.4.0", name: "net1", plugins: [{ type: "a" }] });
    expect(s.cni.getCachedResult(older, rt())).toEqual(conv(RC, "0.4.0"));
  });

  // Same root cause as test/unit/invoke/invoke.test.ts "BUG: a result without cniVersion ...":
  // libcni reads a result without cniVersion in the config's version; cnikit reads it as 0.1.0
  // (ip4/ip6 form), so the plugin's ips/interfaces silently vanish from the chain and the cache.
  test("BUG: a plugin result without cniVersion keeps its addresses in the chain and the final result", async () => {
    const s = setup("1.0.0");
    s.w.plugin("bare", { result: { interfaces: [{ name: "eth0" }], ips: [{ interface: 0, address: "10.3.0.7/24" }] } });
    const list = confListFromObject({ cniVersion: "1.0.0", name: "net1", plugins: [{ type: "bare" }] });
    const res = await s.cni.addNetworkList(list, rt());
    expect(res).toEqual({ cniVersion: "1.0.0", interfaces: [{ name: "eth0" }], ips: [{ interface: 0, address: "10.3.0.7/24" }] });
  });

  test.each([
    ["container id", { containerId: "bad/id" }, ErrorCode.InvalidEnvironment],
    ["interface name", { ifName: "way-too-long-ifname" }, ErrorCode.InvalidEnvironment],
  ])("an invalid %s is refused before any plugin runs", async (_, over, code) => {
    const s = setup("1.0.0");
    const e = await rejection(s.cni.addNetworkList(s.list, rt(over)));
    expect(e.code).toBe(code);
    expect(s.w.calls()).toEqual([]);
  });

  test("an invalid network name is refused", async () => {
    const s = setup("1.0.0");
    const bad = { ...s.list, name: "bad/name" };
    expect((await rejection(s.cni.addNetworkList(bad, rt()))).code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(s.w.calls()).toEqual([]);
  });
});

describe("ADD failure and rollback", () => {
  test("DEL goes to the plugins that ran (failed one first, reverse order); the error names the plugin", async () => {
    const s = setup("1.0.0");
    s.w.fail("b", "ADD", { code: 7, msg: "bridge is broken", details: "no such device" });
    const e = await rejection(s.cni.addNetworkList(s.list, rt()));
    expect(e.code).toBe(7);
    expect(e.message).toContain('type="b"');
    expect(e.message).toContain("bridge is broken");
    expect(e.details).toBe("no such device");
    const calls = s.w.calls();
    expect(seq(calls)).toEqual(["a:ADD", "b:ADD", "b:DEL", "a:DEL"]);
    // rollback DELs carry the attachment and its capabilities, but no prevResult
    for (const c of calls.slice(2)) {
      expect(c.env).toMatchObject({ CNI_CONTAINERID: "ctr1", CNI_IFNAME: "eth0", CNI_NETNS: "/var/run/netns/p1" });
      expect(c.stdin.name).toBe("net1");
      expect(c.stdin.cniVersion).toBe("1.0.0");
      expect("prevResult" in c.stdin).toBe(false);
    }
    expect(calls[3]!.stdin.runtimeConfig).toEqual({ portMappings: CAPS.portMappings });
    expect(existsSync(cachePath(s))).toBe(false);
  });

  test("a failure of the first plugin rolls back only that one", async () => {
    const s = setup("1.0.0");
    s.w.fail("a", "ADD", undefined, "cannot create bridge\n");
    const e = await rejection(s.cni.addNetworkList(s.list, rt()));
    expect(e.code).toBe(ErrorCode.Internal);
    expect(e.message).toContain('type="a"');
    expect(e.message).toContain("cannot create bridge");
    expect(seq(s.w.calls())).toEqual(["a:ADD", "a:DEL"]);
  });

  test("a failing rollback DEL does not hide the ADD error", async () => {
    const s = setup("1.0.0");
    s.w.fail("c", "ADD", { code: 11, msg: "try again" });
    s.w.fail("b", "DEL", { code: 5, msg: "del broke" });
    const e = await rejection(s.cni.addNetworkList(s.list, rt()));
    expect(e.code).toBe(11);
    expect(e.message).toContain('type="c"');
    expect(seq(s.w.calls())).toEqual(["a:ADD", "b:ADD", "c:ADD", "c:DEL", "b:DEL", "a:DEL"]);
  });

  test("rollbackFailedAdd: false sends no DEL", async () => {
    const s = setup("1.0.0", {}, { rollback: false });
    s.w.fail("b", "ADD");
    await rejection(s.cni.addNetworkList(s.list, rt()));
    expect(seq(s.w.calls())).toEqual(["a:ADD", "b:ADD"]);
  });

  test("a plugin type missing from the path: the error names it and the path; earlier plugins rolled back", async () => {
    const s = setup("1.0.0");
    const list = confListFromObject({ cniVersion: "1.0.0", name: "net1", plugins: [{ type: "a" }, { type: "ghost" }, { type: "c" }] });
    const e = await rejection(s.cni.addNetworkList(list, rt()));
    expect(e.message).toContain("ghost");
    expect(e.message).toContain(s.w.bin);
    expect(seq(s.w.calls())).toEqual(["a:ADD", "a:DEL"]);
  });

  test("a result that cannot be cached: I/O error and everything rolled back", async () => {
    const s = setup("1.0.0");
    writeFileSync(s.w.cache, "not a directory");
    const e = await rejection(s.cni.addNetworkList(s.list, rt()));
    expect(e.code).toBe(ErrorCode.IOFailure);
    expect(e.message).toContain("net1");
    expect(seq(s.w.calls())).toEqual(["a:ADD", "b:ADD", "c:ADD", "c:DEL", "b:DEL", "a:DEL"]);
  });
});

describe("CHECK", () => {
  test("runs every plugin in order with the cached result and cached capabilities", async () => {
    const s = setup("1.0.0");
    const res = await s.cni.addNetworkList(s.list, rt());
    s.w.reset();
    await s.cni.checkNetworkList(s.list, rt({ capabilityArgs: undefined }));
    const calls = s.w.calls();
    expect(seq(calls)).toEqual(["a:CHECK", "b:CHECK", "c:CHECK"]);
    for (const c of calls) {
      expect(c.stdin.prevResult).toEqual(res);
      expect(c.stdin.name).toBe("net1");
      expect(c.env).toMatchObject({ CNI_COMMAND: "CHECK", CNI_CONTAINERID: "ctr1", CNI_IFNAME: "eth0", CNI_NETNS: "/var/run/netns/p1" });
    }
    expect(calls[0]!.stdin.runtimeConfig).toEqual({ portMappings: CAPS.portMappings });
    expect(calls[1]!.stdin.runtimeConfig).toEqual({ bandwidth: CAPS.bandwidth });
  });

  test("capability args passed to CHECK win over the cached ones", async () => {
    const s = setup("1.0.0");
    await s.cni.addNetworkList(s.list, rt());
    s.w.reset();
    await s.cni.checkNetworkList(s.list, rt({ capabilityArgs: { portMappings: [] } }));
    const [a, b] = s.w.calls();
    expect(a!.stdin.runtimeConfig).toEqual({ portMappings: [] });
    expect("runtimeConfig" in b!.stdin).toBe(false);
  });

  test.each(["0.1.0", "0.2.0", "0.3.0", "0.3.1"])("refused for a %s list (code 1), no plugin run", async (v) => {
    const s = setup(v);
    await s.cni.addNetworkList(s.list, rt());
    s.w.reset();
    const e = await rejection(s.cni.checkNetworkList(s.list, rt()));
    expect(e.code).toBe(ErrorCode.IncompatibleVersion);
    expect(s.w.calls()).toEqual([]);
  });

  test("skipped with disableCheck (even with nothing cached)", async () => {
    const s = setup("1.0.0", { disableCheck: true });
    await s.cni.checkNetworkList(s.list, rt());
    expect(s.w.calls()).toEqual([]);
  });

  test("no cached result: code 3, no plugin run", async () => {
    const s = setup("1.0.0");
    const e = await rejection(s.cni.checkNetworkList(s.list, rt()));
    expect(e.code).toBe(ErrorCode.UnknownContainer);
    expect(s.w.calls()).toEqual([]);
  });

  test("stops at the first failing plugin, whose error names it", async () => {
    const s = setup("1.0.0");
    await s.cni.addNetworkList(s.list, rt());
    s.w.reset();
    s.w.fail("b", "CHECK", { code: 3, msg: "interface eth0 gone" });
    const e = await rejection(s.cni.checkNetworkList(s.list, rt()));
    expect(e.code).toBe(3);
    expect(e.message).toContain('type="b"');
    expect(e.message).toContain("interface eth0 gone");
    expect(seq(s.w.calls())).toEqual(["a:CHECK", "b:CHECK"]);
  });
});

describe("DEL", () => {
  test("runs in reverse order with the cached result, then removes the cache entry", async () => {
    const s = setup("1.0.0");
    const res = await s.cni.addNetworkList(s.list, rt());
    expect(existsSync(cachePath(s))).toBe(true);
    s.w.reset();
    await s.cni.delNetworkList(s.list, rt());
    const calls = s.w.calls();
    expect(seq(calls)).toEqual(["c:DEL", "b:DEL", "a:DEL"]);
    for (const c of calls) {
      expect(c.stdin.prevResult).toEqual(res);
      expect(c.env).toMatchObject({
        CNI_COMMAND: "DEL",
        CNI_CONTAINERID: "ctr1",
        CNI_IFNAME: "eth0",
        CNI_NETNS: "/var/run/netns/p1",
        CNI_ARGS: "K8S_POD_NAME=web;IgnoreUnknown=1",
      });
    }
    expect(existsSync(cachePath(s))).toBe(false);
  });

  test("reuses the cached capability args when none are passed", async () => {
    const s = setup("1.0.0");
    await s.cni.addNetworkList(s.list, rt());
    s.w.reset();
    await s.cni.delNetworkList(s.list, rt({ capabilityArgs: undefined }));
    const byType = Object.fromEntries(s.w.calls().map((c) => [c.type, c.stdin]));
    expect(byType.a!.runtimeConfig).toEqual({ portMappings: CAPS.portMappings });
    expect(byType.b!.runtimeConfig).toEqual({ bandwidth: CAPS.bandwidth });
    expect("runtimeConfig" in byType.c!).toBe(false);
  });

  test("empty capability args also fall back to the cached ones", async () => {
    const s = setup("1.0.0");
    await s.cni.addNetworkList(s.list, rt());
    s.w.reset();
    await s.cni.delNetworkList(s.list, rt({ capabilityArgs: {} }));
    const a = s.w.calls().find((c) => c.type === "a")!;
    expect(a.stdin.runtimeConfig).toEqual({ portMappings: CAPS.portMappings });
  });

  test("capability args passed to DEL win over the cached ones", async () => {
    const s = setup("1.0.0");
    await s.cni.addNetworkList(s.list, rt());
    s.w.reset();
    const mine = { portMappings: [{ hostPort: 9, containerPort: 9, protocol: "udp" }] };
    await s.cni.delNetworkList(s.list, rt({ capabilityArgs: mine }));
    const byType = Object.fromEntries(s.w.calls().map((c) => [c.type, c.stdin]));
    expect(byType.a!.runtimeConfig).toEqual(mine);
    expect("runtimeConfig" in byType.b!).toBe(false);
  });

  test("an empty netns is left out of the environment", async () => {
    const s = setup("1.0.0");
    await s.cni.addNetworkList(s.list, rt());
    s.w.reset();
    await s.cni.delNetworkList(s.list, rt({ netns: "" }));
    for (const c of s.w.calls()) expect(c.env.CNI_NETNS).toBeUndefined();
  });

  test("a list below 0.4.0 gets no prevResult; the cache entry still goes", async () => {
    const s = setup("0.3.1");
    await s.cni.addNetworkList(s.list, rt());
    s.w.reset();
    await s.cni.delNetworkList(s.list, rt());
    const calls = s.w.calls();
    expect(seq(calls)).toEqual(["c:DEL", "b:DEL", "a:DEL"]);
    for (const c of calls) expect("prevResult" in c.stdin).toBe(false);
    expect(existsSync(cachePath(s))).toBe(false);
  });

  test("without anything cached it still runs (idempotent), without prevResult", async () => {
    const s = setup("1.0.0");
    await s.cni.delNetworkList(s.list, rt());
    await s.cni.delNetworkList(s.list, rt());
    const calls = s.w.calls();
    expect(seq(calls)).toEqual(["c:DEL", "b:DEL", "a:DEL", "c:DEL", "b:DEL", "a:DEL"]);
    for (const c of calls) expect("prevResult" in c.stdin).toBe(false);
  });

  test("a broken cache entry is dropped and DEL runs without prevResult", async () => {
    const s = setup("1.0.0");
    mkdirSync(join(s.w.cache, "results"), { recursive: true });
    writeFileSync(cachePath(s), "{garbage");
    await s.cni.delNetworkList(s.list, rt());
    const calls = s.w.calls();
    expect(seq(calls)).toEqual(["c:DEL", "b:DEL", "a:DEL"]);
    for (const c of calls) expect("prevResult" in c.stdin).toBe(false);
    expect(existsSync(cachePath(s))).toBe(false);
  });

  test("a legacy cache file (bare result) still provides prevResult", async () => {
    const s = setup("1.0.0");
    mkdirSync(join(s.w.cache, "results"), { recursive: true });
    writeFileSync(cachePath(s), JSON.stringify(RC));
    await s.cni.delNetworkList(s.list, rt());
    const calls = s.w.calls();
    expect(seq(calls)).toEqual(["c:DEL", "b:DEL", "a:DEL"]);
    for (const c of calls) expect(c.stdin.prevResult).toEqual(conv(RC, "1.0.0"));
    expect(existsSync(cachePath(s))).toBe(false);
  });

  test("continues past a failing plugin and keeps the cache entry; a later DEL finishes", async () => {
    const s = setup("1.0.0");
    const res = await s.cni.addNetworkList(s.list, rt());
    s.w.reset();
    s.w.fail("b", "DEL", { code: 5, msg: "netlink busy", details: "EBUSY" });
    const e = await rejection(s.cni.delNetworkList(s.list, rt()));
    expect(e.code).toBe(5);
    expect(e.message).toContain('type="b"');
    expect(e.message).toContain("netlink busy");
    expect(e.details).toContain("EBUSY");
    expect(seq(s.w.calls())).toEqual(["c:DEL", "b:DEL", "a:DEL"]);
    expect(existsSync(cachePath(s))).toBe(true);
    expect(s.cni.getCachedResult(s.list, rt())).toEqual(res);

    s.w.heal("b", "DEL");
    s.w.reset();
    await s.cni.delNetworkList(s.list, rt({ capabilityArgs: undefined }));
    const calls = s.w.calls();
    expect(seq(calls)).toEqual(["c:DEL", "b:DEL", "a:DEL"]);
    expect(calls[0]!.stdin.prevResult).toEqual(res);
    expect(existsSync(cachePath(s))).toBe(false);
  });

  test("several failures: the first (in DEL order) is thrown, the others in details", async () => {
    const s = setup("1.0.0");
    await s.cni.addNetworkList(s.list, rt());
    s.w.reset();
    s.w.fail("c", "DEL", { code: 7, msg: "c broke" });
    s.w.fail("a", "DEL", undefined, "a broke on stderr");
    const e = await rejection(s.cni.delNetworkList(s.list, rt()));
    expect(e.code).toBe(7);
    expect(e.message).toContain('type="c"');
    expect(e.details).toContain('type="a"');
    expect(e.details).toContain("a broke on stderr");
    expect(seq(s.w.calls())).toEqual(["c:DEL", "b:DEL", "a:DEL"]);
    expect(existsSync(cachePath(s))).toBe(true);
  });

  test("other attachments' cache entries are untouched", async () => {
    const s = setup("1.0.0");
    await s.cni.addNetworkList(s.list, rt());
    await s.cni.addNetworkList(s.list, rt({ ifName: "eth1" }));
    await s.cni.addNetworkList(s.list, rt({ containerId: "ctr2" }));
    await s.cni.delNetworkList(s.list, rt());
    expect(readdirSync(join(s.w.cache, "results")).sort()).toEqual(["net1-ctr1-eth1", "net1-ctr2-eth0"]);
  });
});

describe("GC", () => {
  /** net1 (a, b) and net2 (c) lists of `version`, with attachments added. */
  async function gcSetup(version: string, extra: Record<string, unknown> = {}) {
    const s = setup(version);
    const net1 = confListFromObject({
      cniVersion: version,
      name: "net1",
      plugins: [{ type: "a", capabilities: { portMappings: true } }, { type: "b" }],
      ...extra,
    });
    const net2 = confListFromObject({ cniVersion: version, name: "net2", plugins: [{ type: "c" }] });
    await s.cni.addNetworkList(net1, rt({ containerId: "ctr1" }));
    await s.cni.addNetworkList(net1, rt({ containerId: "ctr2", netns: "/var/run/netns/p2", args: [["POD", "two"]] }));
    await s.cni.addNetworkList(net1, rt({ containerId: "ctr3", ifName: "eth1", args: undefined, capabilityArgs: undefined }));
    await s.cni.addNetworkList(net2, rt({ containerId: "ctr2" }));
    s.w.reset();
    return { ...s, net1, net2 };
  }
  const files = (s: Setup) => readdirSync(join(s.w.cache, "results")).sort();

  test("DELs stale attachments of this network, then sends GC with both attachment keys", async () => {
    const s = await gcSetup("1.1.0");
    const valid = [{ containerID: "ctr1", ifname: "eth0" }];
    await s.cni.gcNetworkList(s.net1, { validAttachments: valid });
    const calls = s.w.calls();
    expect(seq(calls)).toEqual(["b:DEL", "a:DEL", "b:DEL", "a:DEL", "a:GC", "b:GC"]);
    // stale DELs run with what the cache remembers of each attachment
    expect(calls[0]!.env).toMatchObject({ CNI_CONTAINERID: "ctr2", CNI_IFNAME: "eth0", CNI_NETNS: "/var/run/netns/p2", CNI_ARGS: "POD=two" });
    expect(calls[1]!.stdin.runtimeConfig).toEqual({ portMappings: CAPS.portMappings });
    expect(calls[1]!.stdin.prevResult).toEqual(conv(RB, "1.1.0"));
    expect(calls[2]!.env).toMatchObject({ CNI_CONTAINERID: "ctr3", CNI_IFNAME: "eth1" });
    expect(calls[2]!.env.CNI_ARGS).toBeUndefined();
    expect("runtimeConfig" in calls[3]!.stdin).toBe(false);
    for (const c of calls.slice(4)) {
      expect(c.stdin["cni.dev/valid-attachments"]).toEqual(valid);
      expect(c.stdin["cni.dev/attachments"]).toEqual(valid);
      expect(c.stdin.name).toBe("net1");
      expect(c.stdin.cniVersion).toBe("1.1.0");
      expect("prevResult" in c.stdin).toBe(false);
      expect(c.env.CNI_COMMAND).toBe("GC");
      expect(c.env.CNI_PATH).toBe(s.w.bin);
      // no attachment on a GC, and the inherited ones must not leak
      expect(c.env.CNI_CONTAINERID).toBeUndefined();
      expect(c.env.CNI_NETNS).toBeUndefined();
      expect(c.env.CNI_IFNAME).toBeUndefined();
      expect(c.env.CNI_ARGS).toBeUndefined();
    }
    expect(files(s)).toEqual(["net1-ctr1-eth0", "net2-ctr2-eth0"]);
  });

  test("valid attachments match on container id and interface together", async () => {
    const s = await gcSetup("1.1.0");
    // ctr3 is valid on eth0 only, but cached on eth1: stale
    await s.cni.gcNetworkList(s.net1, {
      validAttachments: [
        { containerID: "ctr1", ifname: "eth0" },
        { containerID: "ctr2", ifname: "eth0" },
        { containerID: "ctr3", ifname: "eth0" },
      ],
    });
    expect(seq(s.w.calls())).toEqual(["b:DEL", "a:DEL", "a:GC", "b:GC"]);
    expect(s.w.calls()[0]!.env.CNI_CONTAINERID).toBe("ctr3");
    expect(files(s)).toEqual(["net1-ctr1-eth0", "net1-ctr2-eth0", "net2-ctr2-eth0"]);
  });

  test("no valid list: every attachment of the network is stale; GC gets empty lists", async () => {
    const s = await gcSetup("1.1.0");
    await s.cni.gcNetworkList(s.net1);
    const calls = s.w.calls();
    expect(seq(calls)).toEqual(["b:DEL", "a:DEL", "b:DEL", "a:DEL", "b:DEL", "a:DEL", "a:GC", "b:GC"]);
    expect(calls[6]!.stdin["cni.dev/valid-attachments"]).toEqual([]);
    expect(calls[6]!.stdin["cni.dev/attachments"]).toEqual([]);
    expect(files(s)).toEqual(["net2-ctr2-eth0"]);
  });

  test("a list below 1.1.0 deletes stale attachments but sends no GC", async () => {
    const s = await gcSetup("1.0.0");
    await s.cni.gcNetworkList(s.net1, { validAttachments: [{ containerID: "ctr1", ifname: "eth0" }] });
    expect(seq(s.w.calls())).toEqual(["b:DEL", "a:DEL", "b:DEL", "a:DEL"]);
    expect(files(s)).toEqual(["net1-ctr1-eth0", "net2-ctr2-eth0"]);
  });

  test("disableGC skips everything", async () => {
    const s = await gcSetup("1.1.0", { disableGC: true });
    expect(s.net1.disableGC).toBe(true);
    await s.cni.gcNetworkList(s.net1, { validAttachments: [] });
    expect(s.w.calls()).toEqual([]);
    expect(files(s)).toEqual(["net1-ctr1-eth0", "net1-ctr2-eth0", "net1-ctr3-eth1", "net2-ctr2-eth0"]);
  });

  test("a failing stale DEL is reported, its entry kept, and GC still sent", async () => {
    const s = await gcSetup("1.1.0");
    s.w.fail("a", "DEL", { code: 5, msg: "a cannot delete" });
    const e = await rejection(s.cni.gcNetworkList(s.net1, { validAttachments: [{ containerID: "ctr1", ifname: "eth0" }] }));
    expect(e.code).toBe(5);
    expect(e.message).toContain("ctr2");
    expect(e.message).toContain("a cannot delete");
    expect(e.details).toContain("ctr3");
    expect(seq(s.w.calls())).toEqual(["b:DEL", "a:DEL", "b:DEL", "a:DEL", "a:GC", "b:GC"]);
    expect(files(s)).toEqual(["net1-ctr1-eth0", "net1-ctr2-eth0", "net1-ctr3-eth1", "net2-ctr2-eth0"]);
  });

  test("a failing plugin GC names the plugin; the other plugins still get GC", async () => {
    const s = await gcSetup("1.1.0");
    s.w.fail("a", "GC", { code: 11, msg: "store locked" });
    const e = await rejection(
      s.cni.gcNetworkList(s.net1, {
        validAttachments: [
          { containerID: "ctr1", ifname: "eth0" },
          { containerID: "ctr2", ifname: "eth0" },
          { containerID: "ctr3", ifname: "eth1" },
        ],
      }),
    );
    expect(e.code).toBe(11);
    expect(e.message).toContain('type="a"');
    expect(e.message).toContain("store locked");
    expect(seq(s.w.calls())).toEqual(["a:GC", "b:GC"]);
  });
});

describe("STATUS", () => {
  test("a 1.1.0 list asks every plugin in order", async () => {
    const s = setup("1.1.0");
    await s.cni.getStatusNetworkList(s.list);
    const calls = s.w.calls();
    expect(seq(calls)).toEqual(["a:STATUS", "b:STATUS", "c:STATUS"]);
    for (const c of calls) {
      expect(c.stdin.name).toBe("net1");
      expect(c.stdin.cniVersion).toBe("1.1.0");
      expect(c.env.CNI_PATH).toBe(s.w.bin);
      expect(c.env.CNI_CONTAINERID).toBeUndefined();
      expect(c.env.CNI_NETNS).toBeUndefined();
    }
  });

  test("the first failure is thrown with its code, naming the plugin", async () => {
    const s = setup("1.1.0");
    s.w.fail("b", "STATUS", { code: 50, msg: "not ready" });
    const e = await rejection(s.cni.getStatusNetworkList(s.list));
    expect(e.code).toBe(ErrorCode.PluginNotAvailable);
    expect(e.message).toContain('type="b"');
    expect(e.message).toContain("not ready");
    expect(seq(s.w.calls())).toEqual(["a:STATUS", "b:STATUS"]);
  });

  test.each(["0.4.0", "1.0.0"])("a %s list is reported ready without running plugins", async (v) => {
    const s = setup(v);
    s.w.fail("a", "STATUS", { code: 50, msg: "not ready" });
    await s.cni.getStatusNetworkList(s.list);
    expect(s.w.calls()).toEqual([]);
  });
});

describe("validateNetworkList and VERSION", () => {
  test("every plugin present and supporting the version: the declared capabilities", async () => {
    const s = setup("1.0.0");
    const caps = await s.cni.validateNetworkList(s.list);
    expect(caps.sort()).toEqual(["bandwidth", "portMappings"]);
    expect(s.w.calls()).toEqual([]);
  });

  test("getVersionInfo asks the plugin", async () => {
    const s = setup("1.0.0");
    s.w.plugin("old", { versions: ["0.3.0", "0.3.1"] });
    expect(await s.cni.getVersionInfo("old")).toEqual({ cniVersion: "1.1.0", supportedVersions: ["0.3.0", "0.3.1"] });
  });

  test("a plugin not supporting the list's version and a missing plugin are both reported", async () => {
    const s = setup("1.0.0");
    s.w.plugin("old", { versions: ["0.3.0", "0.3.1"] });
    const list = confListFromObject({ cniVersion: "1.0.0", name: "net1", plugins: [{ type: "a" }, { type: "old" }, { type: "ghost" }] });
    const e = await rejection(s.cni.validateNetworkList(list));
    expect(e.code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(e.message).toContain("old");
    expect(e.message).toContain('"1.0.0"');
    expect(e.message).toContain("ghost");
    expect(e.message).not.toContain('plugin a ');
  });
});
