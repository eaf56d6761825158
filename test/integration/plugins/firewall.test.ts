/**
 * cnikit's firewall chained after cnikit's bridge: ingressPolicy same-bridge blocks traffic
 * between two same-bridge networks and nothing else; isolated lets the pod open connections but
 * nobody open one to it; elements come and go with the pods; CHECK; GC.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertPrivateNetns, must, Namespaces, ping, run, runPrefix, tempDir } from "../../support/netns.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const prefix = runPrefix("fw");
const ns = new Namespaces(prefix);
const tmp = tempDir("firewall");
const bin = join(tmp.path, "bin");
const confDir = join(tmp.path, "net.d");
const dataDir = join(tmp.path, "fw-data");
const bridges: string[] = [];

const env = () => ({ ...process.env, NETCONFPATH: confDir, CNI_PATH: bin, CNI_CACHE_DIR: join(tmp.path, "cache") });
const cnikit = (args: string[]) => run([CNIKIT, ...args], { env: env() });

function writeList(name: string, n: number, policy: string) {
  const bridge = `${prefix}${n}`;
  bridges.push(bridge);
  writeFileSync(join(confDir, `${name}.conflist`), JSON.stringify({
    cniVersion: "1.1.0",
    name,
    plugins: [
      { type: "bridge", bridge, isDefaultGateway: true, ipam: { type: "host-local", ranges: [[{ subnet: `10.95.${n}.0/24` }]], dataDir: join(tmp.path, "ipam") } },
      { type: "firewall", ingressPolicy: policy, dataDir },
    ],
  }));
}
const elements = (set: string) => run(["nft", "-j", "list", "set", "inet", "cnikit_firewall", set]).stdout;
const pods: Record<string, { netns: string; ip: string }> = {};

beforeAll(() => {
  must(["ip", "link", "set", "lo", "up"]);
  must(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  mkdirSync(confDir, { recursive: true });
  must([CNIKIT, "install", "--bin-dir", bin]);
  for (const [name, n, policy] of [["sba", 1, "same-bridge"], ["sbb", 2, "same-bridge"], ["open", 3, "open"], ["iso", 4, "isolated"]] as const) {
    writeList(name, n, policy);
    const netns = ns.add(name);
    const r = cnikit(["add", name, netns]);
    if (r.code !== 0) throw new Error(`add ${name}: ${r.stdout}${r.stderr}`);
    pods[name] = { netns, ip: JSON.parse(r.stdout).ips[0].address.split("/")[0] };
  }
});
afterAll(() => {
  ns.cleanup();
  for (const b of bridges) run(["ip", "link", "del", b]);
  run(["nft", "delete", "table", "inet", "cnikit_firewall"]);
  tmp.remove();
});

describe("firewall", () => {
  test("same-bridge: the two same-bridge networks cannot reach each other; an open one reaches both and back", () => {
    expect(ping(pods.sba!.netns, pods.sbb!.ip)).toBe(false);
    expect(ping(pods.sbb!.netns, pods.sba!.ip)).toBe(false);
    expect(ping(pods.sba!.netns, pods.open!.ip)).toBe(true);
    expect(ping(pods.open!.netns, pods.sba!.ip)).toBe(true);
    expect(ping(pods.open!.netns, pods.sbb!.ip)).toBe(true);
    expect(ping("", pods.sba!.ip)).toBe(true); // the node itself is not a bridge: not blocked
  });

  test("isolated: the pod opens connections, nobody opens one to it", () => {
    expect(ping(pods.iso!.netns, pods.open!.ip)).toBe(true); // its own requests, and their replies
    expect(ping(pods.open!.netns, pods.iso!.ip)).toBe(false);
    expect(ping(pods.sba!.netns, pods.iso!.ip)).toBe(false);
  });

  test("CHECK passes; DEL removes the pod's elements; GC drops attachments that are not valid", () => {
    for (const name of Object.keys(pods)) expect(cnikit(["check", name, pods[name]!.netns]).code).toBe(0);
    expect(elements("isolated4")).toContain(pods.iso!.ip);
    expect(cnikit(["del", "iso", pods.iso!.netns]).code).toBe(0);
    expect(elements("isolated4")).not.toContain(pods.iso!.ip);
    expect(elements("pods4")).not.toContain(pods.iso!.ip);
    expect(ping(pods.open!.netns, pods.iso!.ip)).toBe(false); // gone with its veth anyway
    // the plugin's own GC (as libcni sends it, 1.1.0): the "open" network with nothing valid loses
    // its attachment's elements; the other networks' records are not touched
    expect(elements("pods4")).toContain(pods.open!.ip);
    const gcConf = { cniVersion: "1.1.0", name: "open", type: "firewall", dataDir, "cni.dev/valid-attachments": [] };
    const g = run([join(bin, "firewall")], { env: { PATH: process.env.PATH, CNI_COMMAND: "GC", CNI_PATH: bin }, stdin: JSON.stringify(gcConf) });
    expect(g.code).toBe(0);
    expect(elements("pods4")).not.toContain(pods.open!.ip);
    expect(elements("pods4")).toContain(pods.sba!.ip);
    expect(cnikit(["del", "open", pods.open!.netns]).code).toBe(0);
    for (const name of ["sba", "sbb"]) expect(cnikit(["del", name, pods[name]!.netns]).code).toBe(0);
    expect(elements("pods4")).not.toMatch(/10\.95\./);
  });
});
