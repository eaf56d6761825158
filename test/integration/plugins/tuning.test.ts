/**
 * cnikit's tuning chained after cnikit's bridge: sysctls (net.* only) and interface settings are
 * applied in the pod, the previous values are restored by DEL (also when keys of its config do not
 * decode), bad keys are refused, an allowlist
 * is honoured, and the same chain through the reference gives the same pod state.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertPrivateNetns, must, Namespaces, run, runPrefix, tempDir, vethsSettled } from "../../support/netns.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const prefix = runPrefix("tu");
const ns = new Namespaces(prefix);
const tmp = tempDir("tuning");
const bin = join(tmp.path, "bin");
const confDir = join(tmp.path, "net.d");
const dataDir = join(tmp.path, "tuning-data");
const bridges: string[] = [];

const tuningConf = {
  type: "tuning",
  dataDir,
  sysctl: { "net.ipv4.conf.IFNAME.rp_filter": "2", "net.core.somaxconn": "512" },
  mac: "02:aa:bb:cc:dd:01",
  mtu: 1300,
  promisc: true,
  allmulti: true,
  txQLen: 77,
};

function writeList(name: string, bridge: string, tuning: Record<string, unknown>, version = "1.1.0") {
  bridges.push(bridge);
  writeFileSync(join(confDir, `${name}.conflist`), JSON.stringify({
    cniVersion: version,
    name,
    plugins: [
      { type: "bridge", bridge, ipam: { type: "host-local", ranges: [[{ subnet: "10.91.0.0/24" }]], dataDir: join(tmp.path, `ipam-${name}`) } },
      tuning,
    ],
  }));
}
const env = (extra: Record<string, string> = {}) => ({ ...process.env, NETCONFPATH: confDir, CNI_PATH: bin, CNI_CACHE_DIR: join(tmp.path, "cache"), ...extra });
const cnikit = (args: string[], extra: Record<string, string> = {}) => run([CNIKIT, ...args], { env: env(extra) });
const inNs = (netns: string, cmd: string[]) => must(["nsenter", `--net=${netns}`, ...cmd]);

function podState(netns: string) {
  const l = JSON.parse(inNs(netns, ["ip", "-j", "-d", "link", "show", "eth0"]))[0];
  return {
    mac: l.address,
    mtu: l.mtu,
    promisc: l.promiscuity > 0,
    allmulti: (l.flags as string[]).includes("ALLMULTI"),
    txqlen: l.txqlen ?? 0,
    rp_filter: inNs(netns, ["cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter"]).trim(),
    somaxconn: inNs(netns, ["cat", "/proc/sys/net/core/somaxconn"]).trim(),
  };
}

beforeAll(() => {
  must(["ip", "link", "set", "lo", "up"]);
  mkdirSync(confDir, { recursive: true });
  must([CNIKIT, "install", "--bin-dir", bin]);
});
afterAll(() => {
  ns.cleanup();
  for (const b of bridges) run(["ip", "link", "del", b]);
  tmp.remove();
});

describe("tuning", () => {
  test("applies sysctls and link settings, CHECK passes, DEL restores every previous value", () => {
    writeList("tune", `${prefix}a`, tuningConf);
    const p = ns.add("a");
    // the values before: a bridge-only attachment shows what tuning starts from
    const r = cnikit(["add", "tune", p]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.interfaces[2].mac).toBe("02:aa:bb:cc:dd:01");
    expect(podState(p)).toEqual({ mac: "02:aa:bb:cc:dd:01", mtu: 1300, promisc: true, allmulti: true, txqlen: 77, rp_filter: "2", somaxconn: "512" });
    expect(cnikit(["check", "tune", p]).code).toBe(0);
    const saved = readdirSync(dataDir);
    expect(saved.length).toBe(1);
    const backup = JSON.parse(readFileSync(join(dataDir, saved[0]!), "utf8"));
    expect(backup).toMatchObject({ mtu: 1500, promisc: false, allmulti: false, txQLen: 0 });
    // run tuning's DEL alone (as the list's DEL does first), then look at the pod
    const stdin = JSON.stringify({ cniVersion: "1.1.0", name: "tune", ...tuningConf, prevResult: result });
    const d = run([join(bin, "tuning")], {
      env: { PATH: process.env.PATH, CNI_COMMAND: "DEL", CNI_CONTAINERID: saved[0]!.split("_")[0], CNI_NETNS: p, CNI_IFNAME: "eth0", CNI_PATH: bin },
      stdin,
    });
    expect(d.code).toBe(0);
    const after = podState(p);
    expect(after.mtu).toBe(1500);
    expect(after.mac).toBe(backup.mac);
    expect(after.mac).not.toBe("02:aa:bb:cc:dd:01");
    expect(after).toMatchObject({ promisc: false, allmulti: false, txqlen: 0, somaxconn: "4096" });
    expect(["0", "1"]).toContain(after.rp_filter);
    expect(readdirSync(dataDir)).toEqual([]);
    expect(cnikit(["del", "tune", p]).code).toBe(0);
  });

  test("DEL with keys that do not decode still restores; a dataDir of the wrong type restores nothing and writes nothing", () => {
    writeList("tune2", `${prefix}d`, { ...tuningConf, MTU: 1280, Promisc: true }); // keys in any case, as Go reads them
    const p = ns.add("d");
    const cid = `${prefix}tune2`;
    const r = cnikit(["add", "tune2", p], { CNI_CONTAINERID: cid });
    expect(r.code).toBe(0);
    expect(podState(p)).toMatchObject({ mtu: 1280, promisc: true, somaxconn: "512" });
    // wrong types are refused on ADD with code 2 naming the key
    writeList("tune3", `${prefix}d`, { ...tuningConf, mtu: "1280" });
    expect(JSON.parse(cnikit(["add", "tune3", ns.add("dx")]).stdout)).toMatchObject({ code: 2, msg: expect.stringContaining('"mtu" must be an integer') });
    const tuningDel = (conf: Record<string, unknown>) =>
      run([join(bin, "tuning")], {
        env: { PATH: process.env.PATH, CNI_COMMAND: "DEL", CNI_CONTAINERID: cid, CNI_NETNS: p, CNI_IFNAME: "eth0", CNI_PATH: bin },
        stdin: JSON.stringify({ cniVersion: "1.1.0", name: "tune2", type: "tuning", prevResult: JSON.parse(r.stdout), ...conf }),
      });
    const file = `${cid}_eth0.json`;
    const wrongDir = tuningDel({ dataDir: 5, mtu: 1300 });
    expect(wrongDir.code).toBe(0);
    expect(readdirSync(dataDir)).toContain(file); // nothing restored, nothing looked up in /run/cni/tuning
    expect(podState(p).mtu).toBe(1280);
    const d = tuningDel({ dataDir, mtu: "big", sysctl: ["x"], promisc: "yes", mac: 5, txQLen: -1, args: { cni: "x" } });
    expect(d.stdout).toBe("");
    expect(d.code).toBe(0);
    expect(podState(p)).toMatchObject({ mtu: 1500, promisc: false, allmulti: false, txqlen: 0, somaxconn: "4096" });
    expect(readdirSync(dataDir)).not.toContain(file);
    expect(cnikit(["del", "tune2", p], { CNI_CONTAINERID: cid }).code).toBe(0);
  }, 20_000);

  test("keys outside net.*, path tricks and an allowlist are refused with nothing changed", () => {
    const p = ns.add("b");
    for (const key of ["kernel.hostname", "net.ipv4/../../kernel.hostname", "net..ipv4.ip_forward", "fs.file-max"]) {
      writeList("bad", `${prefix}b`, { type: "tuning", dataDir, sysctl: { [key]: "1" } });
      const r = cnikit(["add", "bad", p]);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout).code).toBe(7);
    }
    const allow = join(tmp.path, "allowlist.conf");
    writeFileSync(allow, "^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]+$\n");
    writeList("allow", `${prefix}b`, { type: "tuning", dataDir, sysctl: { "net.core.somaxconn": "100" } });
    const denied = cnikit(["add", "allow", p], { CNIKIT_TUNING_ALLOWLIST: allow });
    expect(JSON.parse(denied.stdout).msg).toContain("is not allowed");
    writeList("allow", `${prefix}b`, { type: "tuning", dataDir, sysctl: { "net.ipv4.conf.IFNAME.rp_filter": "2" } });
    const ok = cnikit(["add", "allow", p], { CNIKIT_TUNING_ALLOWLIST: allow });
    expect(ok.code).toBe(0);
    expect(inNs(p, ["cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter"]).trim()).toBe("2");
    expect(cnikit(["del", "allow", p]).code).toBe(0);
    // the rolled-back failed ADDs left no veth, and the namespace kept its default somaxconn
    expect(vethsSettled()).toEqual([]); // through the daemon a DEL's veths go in a batch after its reply
    expect(inNs(p, ["cat", "/proc/sys/net/core/somaxconn"]).trim()).toBe("4096");
  }, 20_000);

  test("the same chain through the reference tuning gives the same pod state", () => {
    const ref = join(tmp.path, "ref-bin");
    must([CNIKIT, "install", "--bin-dir", ref]);
    run(["rm", "-f", join(ref, "tuning")]);
    must(["ln", "-s", "/usr/lib/cni/tuning", join(ref, "tuning")]);
    // the Debian reference (1.1.1) has no txQLen and speaks up to 1.0.0
    const { txQLen: _unused, ...common } = tuningConf;
    writeList("cmp", `${prefix}c`, common, "1.0.0");
    const states: Record<string, unknown> = {};
    for (const [side, path] of [["reference", ref], ["cnikit", bin]] as const) {
      const p = ns.add(`c${side[0]}`);
      const r = cnikit(["add", "cmp", p], { CNI_PATH: path });
      expect(r.code).toBe(0);
      states[side] = { ...podState(p), result: JSON.parse(r.stdout).interfaces[2].mac };
      expect(cnikit(["del", "cmp", p], { CNI_PATH: path }).code).toBe(0);
    }
    expect(states.cnikit).toEqual(states.reference);
    expect(existsSync(join(dataDir))).toBe(true);
  });
});
