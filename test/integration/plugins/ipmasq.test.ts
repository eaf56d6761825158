/**
 * ipMasq of cnikit's bridge and ptp over nftables: traffic from a pod leaving its subnet reaches
 * an outside host (a namespace of this test) from the node's address; traffic inside the subnet
 * and from a network without ipMasq keeps the pod's address; per-pod state is set elements that
 * DEL removes.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertPrivateNetns, must, Namespaces, run, runPrefix, tempDir } from "../../support/netns.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const prefix = runPrefix("mq");
const ns = new Namespaces(prefix);
const tmp = tempDir("ipmasq");
const bin = join(tmp.path, "bin");
const confDir = join(tmp.path, "net.d");
const links: string[] = [];
const servers: Array<ReturnType<typeof Bun.spawn>> = [];
let ext = "";

const env = () => ({ ...process.env, NETCONFPATH: confDir, CNI_PATH: bin, CNI_CACHE_DIR: join(tmp.path, "cache") });
const cnikit = (args: string[]) => run([CNIKIT, ...args], { env: env() });

function writeList(name: string, plugin: Record<string, unknown>, subnet: string) {
  writeFileSync(join(confDir, `${name}.conflist`), JSON.stringify({
    cniVersion: "1.1.0",
    name,
    plugins: [{ ...plugin, ipam: { type: "host-local", ranges: [[{ subnet }]], routes: [{ dst: "0.0.0.0/0" }], dataDir: join(tmp.path, "ipam") } }],
  }));
}

/** A TCP server in `netns` that answers with the address the connection came from. */
async function whoami(netns: string, port: number): Promise<void> {
  const p = Bun.spawn(["nsenter", `--net=${netns}`, process.execPath, "-e",
    `Bun.listen({hostname:"0.0.0.0",port:${port},socket:{data(s){s.write(String(s.remoteAddress));s.end()}}});console.log("ready")`],
  { stdout: "pipe" });
  servers.push(p);
  await p.stdout.getReader().read();
}

/** Connect from `netns` to host:port and return what the server saw as our address. */
function seenAs(netns: string, host: string, port: number): string {
  return run(["nsenter", `--net=${netns}`, process.execPath, "-e",
    `Bun.connect({hostname:"${host}",port:${port},socket:{open(s){s.write("x")},data(_s,d){console.log(String(d));process.exit(0)},error(){console.log("error");process.exit(0)},connectError(){console.log("refused");process.exit(0)}}}).catch(()=>{console.log("refused");process.exit(0)});setTimeout(()=>{console.log("timeout");process.exit(0)},3000)`]).stdout.trim();
}

const elements = (set: string): string => {
  const r = run(["nft", "-j", "list", "set", "inet", "cnikit_masq", set]);
  return r.code === 0 ? r.stdout : "";
};

beforeAll(async () => {
  must(["ip", "link", "set", "lo", "up"]);
  mkdirSync(confDir, { recursive: true });
  must([CNIKIT, "install", "--bin-dir", bin]);
  // the "outside": a namespace behind a veth, with a route back to the pod subnets so that traffic
  // that is not masqueraded can answer too
  ext = ns.add("ext");
  const hostEnd = `${prefix}x`;
  links.push(hostEnd);
  must(["ip", "link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", ext]);
  must(["ip", "addr", "add", "198.18.0.1/24", "dev", hostEnd]);
  must(["ip", "link", "set", hostEnd, "up"]);
  must(["nsenter", `--net=${ext}`, "ip", "addr", "add", "198.18.0.2/24", "dev", "eth0"]);
  must(["nsenter", `--net=${ext}`, "ip", "link", "set", "eth0", "up"]);
  must(["nsenter", `--net=${ext}`, "ip", "route", "add", "10.93.0.0/16", "via", "198.18.0.1"]);
  must(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  await whoami(ext, 7000);
});

afterAll(() => {
  for (const s of servers) s.kill();
  for (const l of links) run(["ip", "link", "del", l]);
  ns.cleanup();
  run(["nft", "delete", "table", "inet", "cnikit_masq"]);
  tmp.remove();
});

describe("ipMasq", () => {
  test("bridge: outside traffic leaves from the node's address, in-subnet traffic keeps the pod's, DEL removes the elements", async () => {
    links.push(`${prefix}b`, `${prefix}n`);
    writeList("masq", { type: "bridge", bridge: `${prefix}b`, isGateway: true, ipMasq: true }, "10.93.1.0/24");
    writeList("plain", { type: "bridge", bridge: `${prefix}n`, isGateway: true, ipMasq: false }, "10.93.2.0/24");
    const a = ns.add("a");
    const b = ns.add("b");
    const c = ns.add("c");
    const ra = cnikit(["add", "masq", a]);
    expect(ra.stderr).toBe("");
    expect(ra.code).toBe(0);
    const ipA = JSON.parse(ra.stdout).ips[0].address.split("/")[0];
    const ipB = JSON.parse(cnikit(["add", "masq", b]).stdout).ips[0].address.split("/")[0];
    const ipC = JSON.parse(cnikit(["add", "plain", c]).stdout).ips[0].address.split("/")[0];
    expect(seenAs(a, "198.18.0.2", 7000)).toBe("198.18.0.1"); // masqueraded
    expect(seenAs(c, "198.18.0.2", 7000)).toBe(ipC); // the network without ipMasq: not
    await whoami(b, 7001);
    expect(seenAs(a, ipB, 7001)).toBe(ipA); // inside the subnet: not
    expect(elements("masq4")).toContain(ipA);
    expect(cnikit(["check", "masq", a]).code).toBe(0);
    expect(cnikit(["del", "masq", a]).code).toBe(0);
    expect(elements("masq4")).not.toContain(ipA);
    expect(elements("keep4")).not.toContain(ipA);
    expect(elements("masq4")).toContain(ipB);
    // DEL again (and with the cache gone) is fine
    expect(cnikit(["del", "masq", a]).code).toBe(0);
    expect(cnikit(["del", "masq", b]).code).toBe(0);
    expect(cnikit(["del", "plain", c]).code).toBe(0);
    expect(elements("masq4")).not.toContain(ipB);
  }, 20_000);

  test("ptp: outside traffic is masqueraded; DEL with the netns gone removes the elements", () => {
    writeList("pmasq", { type: "ptp", ipMasq: true }, "10.93.3.0/24");
    const p = ns.add("p");
    const r = cnikit(["add", "pmasq", p]);
    expect(r.code).toBe(0);
    const ip = JSON.parse(r.stdout).ips[0].address.split("/")[0];
    expect(seenAs(p, "198.18.0.2", 7000)).toBe("198.18.0.1");
    expect(elements("masq4")).toContain(ip);
    must(["ip", "netns", "del", `${prefix}p`]);
    expect(cnikit(["del", "pmasq", p]).code).toBe(0);
    expect(elements("masq4")).not.toContain(ip);
  });

  test("the shared rules are created once, however many pods", () => {
    const rules = JSON.parse(must(["nft", "-j", "list", "chain", "inet", "cnikit_masq", "postrouting"])).nftables.filter((x: any) => x.rule);
    expect(rules.length).toBe(6);
  });
});
