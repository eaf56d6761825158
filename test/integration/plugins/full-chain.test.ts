/**
 * The reference's typical conflist (bridge + host-local with ipMasq, portmap, firewall with its
 * iptables backend key, bandwidth, tuning) works unchanged with cnikit's plugins only: two pods
 * talk, a hostPort answers from the host and from the other pod, tuning and shaping are in place,
 * CHECK passes, DEL (without the capability arguments) leaves nothing. (Masquerading itself is
 * proven in ipmasq.test.ts.)
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertPrivateNetns, linksSettled, must, Namespaces, ping, run, runPrefix, tempDir, vethsSettled } from "../../support/netns.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const prefix = runPrefix("fc");
const ns = new Namespaces(prefix);
const tmp = tempDir("fullchain");
const bin = join(tmp.path, "bin");
const confDir = join(tmp.path, "net.d");
const bridge = `${prefix}br`;
const servers: Array<ReturnType<typeof Bun.spawn>> = [];

// the reference's documentation example, with names, subnet and state paths of this test
const conflist = {
  cniVersion: "1.0.0",
  name: "fullchain",
  plugins: [
    { type: "bridge", bridge, isGateway: true, ipMasq: true, hairpinMode: true,
      ipam: { type: "host-local", subnet: "10.96.0.0/24", routes: [{ dst: "0.0.0.0/0" }], dataDir: join(tmp.path, "ipam") } },
    { type: "portmap", capabilities: { portMappings: true }, snat: true },
    { type: "firewall", backend: "iptables", dataDir: join(tmp.path, "firewall") },
    { type: "bandwidth", capabilities: { bandwidth: true } },
    { type: "tuning", sysctl: { "net.core.somaxconn": "500" }, dataDir: join(tmp.path, "tuning") },
  ],
};
const env = (caps?: unknown) => ({
  ...process.env, NETCONFPATH: confDir, CNI_PATH: bin, CNI_CACHE_DIR: join(tmp.path, "cache"),
  ...(caps ? { CAP_ARGS: JSON.stringify(caps) } : {}),
});
const cnikit = (args: string[], caps?: unknown) => run([CNIKIT, ...args], { env: env(caps) });

async function whoami(netns: string, port: number) {
  const p = Bun.spawn(["nsenter", `--net=${netns}`, process.execPath, "-e",
    `Bun.listen({hostname:"0.0.0.0",port:${port},socket:{data(s){s.write(String(s.remoteAddress));s.end()}}});console.log("ready")`], { stdout: "pipe" });
  servers.push(p);
  await p.stdout.getReader().read();
}
function seenAs(netns: string, host: string, port: number): string {
  const pre = netns ? ["nsenter", `--net=${netns}`] : [];
  return run([...pre, process.execPath, "-e",
    `Bun.connect({hostname:"${host}",port:${port},socket:{open(s){s.write("x")},data(_s,d){console.log(String(d));process.exit(0)},connectError(){console.log("refused");process.exit(0)}}}).catch(()=>{console.log("refused");process.exit(0)});setTimeout(()=>{console.log("timeout");process.exit(0)},3000)`]).stdout.trim();
}

beforeAll(() => {
  must(["ip", "link", "set", "lo", "up"]);
  mkdirSync(confDir, { recursive: true });
  writeFileSync(join(confDir, "10-fullchain.conflist"), JSON.stringify(conflist));
  must([CNIKIT, "install", "--bin-dir", bin]);
});
afterAll(() => {
  for (const s of servers) s.kill();
  ns.cleanup();
  run(["ip", "link", "del", bridge]);
  tmp.remove();
});

test("the reference's full chain runs unchanged on cnikit's plugins", async () => {
  const a = ns.add("a");
  const b = ns.add("b");
  const caps = { portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: "tcp" }], bandwidth: { ingressRate: 100_000_000, ingressBurst: 1_000_000, egressRate: 100_000_000, egressBurst: 1_000_000 } };
  const ra = cnikit(["add", "fullchain", a], caps);
  expect(ra.stderr).toBe("");
  expect(ra.code).toBe(0);
  const rb = cnikit(["add", "fullchain", b]);
  expect(rb.code).toBe(0);
  const ipA = JSON.parse(ra.stdout).ips[0].address.split("/")[0];
  const ipB = JSON.parse(rb.stdout).ips[0].address.split("/")[0];
  expect(ping(a, ipB)).toBe(true);
  expect(ping(b, "10.96.0.1")).toBe(true);
  await whoami(a, 8080);
  expect(seenAs("", "10.96.0.1", 18080)).not.toMatch(/refused|timeout/); // host -> its own address -> pod a
  expect(seenAs(b, "10.96.0.1", 18080)).not.toMatch(/refused|timeout/); // pod b -> hostPort -> pod a
  expect(must(["nsenter", `--net=${a}`, "cat", "/proc/sys/net/core/somaxconn"]).trim()).toBe("500");
  expect(must(["tc", "qdisc", "show"])).toContain("tbf");
  expect(cnikit(["check", "fullchain", a]).code).toBe(0);
  expect(cnikit(["check", "fullchain", b]).code).toBe(0);
  // DEL without CAP_ARGS: the cached capability arguments are reused
  expect(cnikit(["del", "fullchain", a]).code).toBe(0);
  expect(cnikit(["del", "fullchain", b]).code).toBe(0);
  expect(vethsSettled()).toEqual([]); // through the daemon a DEL's veths go in a batch after its reply
  expect(linksSettled("ifb")).toEqual([]); // bandwidth's ifb devices too
  expect(readdirSync(join(tmp.path, "ipam", "fullchain")).filter((f) => f.startsWith("10."))).toEqual([]);
  const ruleset = must(["nft", "list", "ruleset"]);
  expect(ruleset).not.toContain(ipA);
  expect(ruleset).not.toContain(ipB);
  expect(seenAs("", "10.96.0.1", 18080)).toMatch(/refused|timeout/);
}, 60_000);
