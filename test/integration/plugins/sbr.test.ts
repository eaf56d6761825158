/**
 * cnikit's sbr chained after cnikit's bridge: a rule per pod address into a table of its own, the
 * default route and the interface's routes moved there, traffic still flowing; DEL removes the
 * rules (also when keys of its config do not decode); static gateways; the same chain through the
 * reference sbr leaves the same rules and routes.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertPrivateNetns, must, Namespaces, ping, run, runPrefix, tempDir } from "../../support/netns.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const prefix = runPrefix("sb");
const ns = new Namespaces(prefix);
const tmp = tempDir("sbr");
const bin = join(tmp.path, "bin");
const confDir = join(tmp.path, "net.d");
const bridges: string[] = [];

const env = (extra: Record<string, string> = {}) => ({ ...process.env, NETCONFPATH: confDir, CNI_PATH: bin, CNI_CACHE_DIR: join(tmp.path, "cache"), ...extra });
const cnikit = (args: string[], extra: Record<string, string> = {}) => run([CNIKIT, ...args], { env: env(extra) });
const inNs = (netns: string, cmd: string[]) => must(["nsenter", `--net=${netns}`, ...cmd]);

function writeList(name: string, bridge: string, sbr: Record<string, unknown> = {}, version = "1.1.0") {
  bridges.push(bridge);
  writeFileSync(join(confDir, `${name}.conflist`), JSON.stringify({
    cniVersion: version,
    name,
    plugins: [
      { type: "bridge", bridge, isDefaultGateway: true, ipam: { type: "host-local", ranges: [[{ subnet: "10.92.0.0/24" }], [{ subnet: "fd92::/64" }]], dataDir: join(tmp.path, `ipam-${name}`) } },
      { type: "sbr", ...sbr },
    ],
  }));
}

/** Rules and per-table routes of the pod (tables 100, 101), pod addresses masked. */
function routing(netns: string) {
  const mask = (s: string) => s.replace(/10\.92\.0\.(?![01]\b)\d+/g, "POD4").replace(/fd92::(?!1\b)[0-9a-f]+/g, "POD6");
  const rules = [...JSON.parse(inNs(netns, ["ip", "-j", "-4", "rule"])), ...JSON.parse(inNs(netns, ["ip", "-j", "-6", "rule"]))]
    .filter((r: any) => r.src && r.src !== "all")
    .map((r: any) => mask(`${r.src} ${r.table}`))
    .sort();
  const routes = (table: string) =>
    ["-4", "-6"].flatMap((fam) => {
      const out = run(["nsenter", `--net=${netns}`, "ip", "-j", fam, "route", "show", "table", table]);
      return out.code === 0 ? (JSON.parse(out.stdout) as any[]) : [];
    })
      .filter((r) => r.type !== "local" && r.type !== "multicast" && r.type !== "broadcast")
      .map((r) => mask(`${r.dst} ${r.gateway ?? ""} ${r.dev}`))
      .sort();
  return { rules, main: routes("main"), t100: routes("100"), t101: routes("101") };
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

describe("sbr", () => {
  test("rules into table 100, routes moved there, traffic flows; CHECK; DEL removes the rules", () => {
    writeList("sbr", `${prefix}a`);
    const p = ns.add("a");
    const r = cnikit(["add", "sbr", p]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const state = routing(p);
    // a table per address, each with the default route of its family and a copy of eth0's routes
    expect(state.rules).toEqual(["POD4 100", "POD6 101"]);
    expect(state.main).toEqual([]);
    // (as the reference: a route is copied when its gateway and source fit the table's address)
    expect(state.t100).toEqual(["10.92.0.0/24  eth0", "default 10.92.0.1 eth0", "fd92::/64  eth0", "fe80::/64  eth0"]);
    expect(state.t101).toEqual(["default fd92::1 eth0", "fd92::/64  eth0", "fe80::/64  eth0"]);
    // traffic from the pod's address takes its table (nothing is left in main, as with the reference)
    const pod4 = JSON.parse(r.stdout).ips.find((i: any) => !i.address.includes(":")).address.split("/")[0];
    const pod6 = JSON.parse(r.stdout).ips.find((i: any) => i.address.includes(":")).address.split("/")[0];
    expect(run(["nsenter", `--net=${p}`, "ping", "-c1", "-W2", "-I", pod4, "10.92.0.1"]).code).toBe(0);
    expect(run(["nsenter", `--net=${p}`, "ping", "-c1", "-W2", "-I", pod6, "fd92::1"]).code).toBe(0);
    expect(ping("", pod4)).toBe(true); // the replies find their way through table 100
    expect(cnikit(["check", "sbr", p]).code).toBe(0);
    // CHECK notices a missing rule
    inNs(p, ["ip", "rule", "del", "from", pod4, "table", "100"]);
    expect(JSON.parse(cnikit(["check", "sbr", p]).stdout).msg).toContain("no rule for source");
    expect(cnikit(["check", "sbr", p]).code).toBe(1);
    expect(cnikit(["del", "sbr", p]).code).toBe(0);
    expect(routing(p).rules).toEqual([]);
    expect(cnikit(["del", "sbr", p]).code).toBe(0);
  });

  test("a fixed table is honoured; the automatic choice skips tables in use", () => {
    writeList("fixed", `${prefix}b`, { table: 4242 });
    const p = ns.add("b");
    inNs(p, ["ip", "rule", "add", "from", "192.0.2.9", "table", "100"]); // table 100 in use
    expect(cnikit(["add", "fixed", p]).code).toBe(0);
    expect(routing(p).rules).toEqual(["192.0.2.9 100", "POD4 4242", "POD6 4242"]);
    expect(cnikit(["check", "fixed", p]).code).toBe(0);
    expect(cnikit(["del", "fixed", p]).code).toBe(0);
    writeList("auto", `${prefix}b`);
    expect(cnikit(["add", "auto", p]).code).toBe(0);
    expect(routing(p).rules).toEqual(["192.0.2.9 100", "POD4 101", "POD6 102"]);
    expect(cnikit(["del", "auto", p]).code).toBe(0);
  });

  test("static gateways per family (keys in any case); wrong types are code 2; DEL with keys that do not decode removes the rules", () => {
    // a bridge that is no default gateway: a main-table default route would be copied over the
    // static one (as the reference copies it, with replace)
    bridges.push(`${prefix}d`);
    writeFileSync(join(confDir, "gw.conflist"), JSON.stringify({
      cniVersion: "1.1.0",
      name: "gw",
      plugins: [
        { type: "bridge", bridge: `${prefix}d`, isGateway: true, ipam: { type: "host-local", ranges: [[{ subnet: "10.92.0.0/24" }], [{ subnet: "fd92::/64" }]], dataDir: join(tmp.path, "ipam-gw") } },
        { type: "sbr", Gateways: ["10.92.0.254"] },
      ],
    }));
    const p = ns.add("d");
    const cid = `${prefix}gw`;
    const r = cnikit(["add", "gw", p], { CNI_CONTAINERID: cid });
    expect(r.code).toBe(0);
    const state = routing(p);
    expect(state.rules).toEqual(["POD4 100", "POD6 101"]);
    expect(inNs(p, ["ip", "route", "show", "table", "100", "default"])).toContain("via 10.92.0.254 dev eth0"); // the static IPv4 gateway
    expect(state.t101).toContain("default fd92::1 eth0"); // no static IPv6 one: the address's own (host-local's gateway)
    expect(cnikit(["check", "gw", p], { CNI_CONTAINERID: cid }).code).toBe(0);
    writeList("gwbad", `${prefix}d`, { table: "100" });
    expect(JSON.parse(cnikit(["add", "gwbad", ns.add("dx")]).stdout)).toMatchObject({ code: 2, msg: expect.stringContaining('"table" must be an integer') });
    const d = run([join(bin, "sbr")], {
      env: { PATH: process.env.PATH, CNI_COMMAND: "DEL", CNI_CONTAINERID: cid, CNI_NETNS: p, CNI_IFNAME: "eth0", CNI_PATH: bin },
      stdin: JSON.stringify({ cniVersion: "1.1.0", name: "gw", type: "sbr", table: "x", gateways: 5, addSourceHints: "no", prevResult: JSON.parse(r.stdout) }),
    });
    expect(d.stdout).toBe("");
    expect(d.code).toBe(0);
    expect(routing(p).rules).toEqual([]);
    expect(cnikit(["del", "gw", p], { CNI_CONTAINERID: cid }).code).toBe(0);
  }, 20_000);

  test("the same chain through the reference sbr leaves the same rules and routes", () => {
    const ref = join(tmp.path, "ref-bin");
    must([CNIKIT, "install", "--bin-dir", ref]);
    run(["rm", "-f", join(ref, "sbr")]);
    must(["ln", "-s", "/usr/lib/cni/sbr", join(ref, "sbr")]);
    writeList("cmp", `${prefix}c`, {}, "1.0.0");
    const states: Record<string, unknown> = {};
    for (const [side, path] of [["reference", ref], ["cnikit", bin]] as const) {
      const p = ns.add(`c${side[0]}`);
      const r = cnikit(["add", "cmp", p], { CNI_PATH: path });
      expect(r.code).toBe(0);
      states[side] = routing(p);
      expect(cnikit(["del", "cmp", p], { CNI_PATH: path }).code).toBe(0);
    }
    expect(states.cnikit).toEqual(states.reference);
  }, 20_000);
});
