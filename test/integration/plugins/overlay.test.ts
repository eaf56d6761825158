/**
 * The overlay plugin turns the node's lease (subnet.env, flannel's format) into bridge + host-local
 * and delegates: the pod gets an address of the node's subnet, a route to the cluster network, the
 * lease's MTU; it waits briefly for an agent that has not written subnet.env yet, and says clearly
 * when there is none; DEL uses the saved delegate config.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { formatSubnetEnv, parseSubnetEnv } from "../../../src/ipam/subnet-env.ts";
import { delegateConfig } from "../../../src/plugins/main/overlay.ts";
import { assertPrivateNetns, must, Namespaces, ping, run, runPrefix, tempDir, vethsSettled } from "../../support/netns.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const prefix = runPrefix("ov");
const ns = new Namespaces(prefix);
const tmp = tempDir("overlay");
const bin = join(tmp.path, "bin");
const confDir = join(tmp.path, "net.d");
const subnetFile = join(tmp.path, "run", "subnet.env");
const dataDir = join(tmp.path, "overlay-data");
const bridge = `${prefix}br`;
const LEASE = "FLANNEL_NETWORK=10.97.0.0/16\nFLANNEL_SUBNET=10.97.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n";

const env = () => ({ ...process.env, NETCONFPATH: confDir, CNI_PATH: bin, CNI_CACHE_DIR: join(tmp.path, "cache") });
const cnikit = (args: string[]) => run([CNIKIT, ...args], { env: env() });

beforeAll(() => {
  must(["ip", "link", "set", "lo", "up"]);
  mkdirSync(confDir, { recursive: true });
  must([CNIKIT, "install", "--bin-dir", bin]);
  writeFileSync(join(confDir, "10-overlay.conflist"), JSON.stringify({
    cniVersion: "1.1.0",
    name: "cluster",
    plugins: [{ type: "overlay", subnetFile, dataDir, subnetFileWaitMs: 1500, delegate: { bridge, hairpinMode: true, ipam: { dataDir: join(tmp.path, "ipam") } } }],
  }));
});
afterAll(() => {
  ns.cleanup();
  run(["ip", "link", "del", bridge]);
  tmp.remove();
});

describe("subnet.env and the delegate config (pure)", () => {
  test("parse, format, and the delegate flannel's plugin would build", () => {
    const lease = parseSubnetEnv(LEASE);
    expect(lease).toEqual({ network: "10.97.0.0/16", subnet: "10.97.5.1/24", mtu: 1450, ipMasq: true });
    expect(parseSubnetEnv(formatSubnetEnv(lease))).toEqual(lease);
    expect(() => parseSubnetEnv("FLANNEL_NETWORK=10.0.0.0/8\n")).toThrow(/FLANNEL_SUBNET/);
    expect(() => parseSubnetEnv("FLANNEL_SUBNET=banana\n")).toThrow(/not an address/);
    const d = delegateConfig({ name: "cluster", cniVersion: "1.0.0" }, lease, { hairpinMode: true, isGateway: false });
    expect(d).toEqual({
      type: "bridge", isGateway: false, ipMasq: false, mtu: 1450, hairpinMode: true,
      ipam: { type: "host-local", ranges: [[{ subnet: "10.97.5.0/24" }]], routes: [{ dst: "10.97.0.0/16" }] },
      name: "cluster", cniVersion: "1.0.0",
    });
  });
});

describe("overlay", () => {
  test("no subnet.env: a clear error (code 11) after a short wait, and no state", () => {
    const p = ns.add("n");
    const t0 = Date.now();
    const r = cnikit(["add", "cluster", p]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 11, msg: expect.stringContaining("node agent") });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(existsSync(dataDir) ? readdirSync(dataDir) : []).toEqual([]);
  });

  test("waits for the agent's subnet.env, then the pod gets the node's subnet, the cluster route and the MTU", async () => {
    const p = ns.add("a");
    const proc = Bun.spawn([CNIKIT, "add", "cluster", p], { env: env(), stdout: "pipe", stderr: "pipe" });
    await Bun.sleep(400);
    mkdirSync(join(tmp.path, "run"), { recursive: true });
    writeFileSync(subnetFile, LEASE);
    const out = await new Response(proc.stdout).text();
    expect(await proc.exited).toBe(0);
    const result = JSON.parse(out);
    expect(result.ips[0].address).toMatch(/^10\.97\.5\.\d+\/24$/);
    expect(result.ips[0].gateway).toBe("10.97.5.1");
    expect(must(["nsenter", `--net=${p}`, "ip", "route"])).toContain("10.97.0.0/16 via 10.97.5.1");
    expect(JSON.parse(must(["nsenter", `--net=${p}`, "ip", "-j", "link", "show", "eth0"]))[0].mtu).toBe(1450);
    expect(ping(p, "10.97.5.1")).toBe(true);
    // FLANNEL_IPMASQ=true: the agent masquerades, so the bridge does not
    expect(run(["nft", "list", "table", "inet", "cnikit_masq"]).code).not.toBe(0);
    expect(cnikit(["check", "cluster", p]).code).toBe(0);
    expect(readdirSync(dataDir).length).toBe(1);
    expect(cnikit(["del", "cluster", p]).code).toBe(0);
    expect(readdirSync(dataDir)).toEqual([]);
    expect(vethsSettled()).toEqual([]); // through the daemon a DEL's veths go in a batch after its reply
    expect(cnikit(["del", "cluster", p]).code).toBe(0); // idempotent
    rmSync(subnetFile);
  });

  test("DEL with keys that no longer decode (after a good ADD) undoes the saved delegate; a dataDir that does not decode is looked for nowhere else", () => {
    const conflist = join(confDir, "10-overlay.conflist");
    const good = readFileSync(conflist, "utf8");
    mkdirSync(join(tmp.path, "run"), { recursive: true });
    writeFileSync(subnetFile, LEASE);
    const p = ns.add("k");
    try {
      expect(cnikit(["add", "cluster", p]).code).toBe(0);
      const conf = JSON.parse(good);
      const writeConf = (plugin: Record<string, unknown>) => writeFileSync(conflist, JSON.stringify({ ...conf, plugins: [{ ...conf.plugins[0], ...plugin }] }));
      // dataDir of the wrong type: DEL succeeds and touches no other directory; the state stays
      writeConf({ dataDir: 5 });
      let r = cnikit(["del", "cluster", p]);
      expect(r.code).toBe(0);
      expect(readdirSync(dataDir).length).toBe(1);
      // the other keys of the wrong type: the saved delegate is undone
      writeConf({ subnetFile: 5, subnetFileWaitMs: "x", delegate: "x", runtimeConfig: [] });
      r = cnikit(["del", "cluster", p]);
      expect(r.stdout).toBe("");
      expect(r.code).toBe(0);
      expect(r.stderr).toContain('"subnetFile" must be a string');
      expect(readdirSync(dataDir)).toEqual([]);
      expect(vethsSettled()).toEqual([]); // through the daemon a DEL's veths go in a batch after its reply
      expect(readdirSync(join(tmp.path, "ipam", "cluster")).filter((f) => f.startsWith("10."))).toEqual([]);
    } finally {
      writeFileSync(conflist, good);
      rmSync(subnetFile);
    }
  });
});
