/**
 * cnikit's firewall on a host whose iptables FORWARD chain drops (Docker, kube-proxy hosts): the
 * policy DROP is set inside this file's private network namespace, through iptables-nft (Debian's
 * default) and through iptables-legacy, and Docker's layout (DOCKER-USER, a chain that ends in
 * DROP) is imitated. Two pods on two cnikit bridge networks (so their traffic is routed, and meets
 * FORWARD) and an "outside" namespace behind a veth: pods reach each other, their gateways and the
 * outside, and a hostPort reaches a pod from outside; new connections from outside straight to a
 * pod stay dropped by the host's policy, as with the reference plugin. The one accept rule per
 * family exists once with two pods, stays after the first DEL, and goes with the last, leaving
 * iptables as it was; with policy ACCEPT nothing is ever added.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertPrivateNetns, must, Namespaces, ping, run, runPrefix, tempDir } from "../../support/netns.ts";
import { installPlugins } from "../../support/plugin-bin.ts";
import { ask, whoamiServer } from "../../support/tcp.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const prefix = runPrefix("f"); // "ckf..."
const ns = new Namespaces(prefix);
const tmp = tempDir("fwdrop");
const bin = join(tmp.path, "bin");
const confDir = join(tmp.path, "net.d");
const dataDir = join(tmp.path, "firewall");
const HOST_X = "198.18.97.1"; // the node's address towards the outside
const EXT = "198.18.97.2";
const HOST_X6 = "fd00:198:97::1";
const EXT6 = "fd00:198:97::2";
const COMMENT = "cnikit firewall";
const servers: Array<{ stop: () => void }> = [];
let ext = "";

/** Network n: bridge `<prefix>b<n>`, 10.97.n.0/24 and fd00:97:n::/64, portmap and firewall chained. */
function writeNetwork(n: number): string {
  const name = `${prefix}n${n}`;
  writeFileSync(join(confDir, `${name}.conflist`), JSON.stringify({
    cniVersion: "1.1.0",
    name,
    plugins: [
      {
        type: "bridge", bridge: `${prefix}b${n}`, isGateway: true,
        ipam: {
          type: "host-local", dataDir: join(tmp.path, "ipam"),
          ranges: [[{ subnet: `10.97.${n}.0/24` }], [{ subnet: `fd00:97:${n}::/64` }]],
          routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
      { type: "firewall", dataDir },
    ],
  }));
  return name;
}

const env = (caps?: unknown) => ({
  ...process.env, NETCONFPATH: confDir, CNI_PATH: bin, CNI_CACHE_DIR: join(tmp.path, "cache"),
  ...(caps ? { CAP_ARGS: JSON.stringify(caps) } : {}),
});
const cnikit = (args: string[], caps?: unknown) => run([CNIKIT, ...args], { env: env(caps) });

interface Pod { net: string; netns: string; ip4: string; ip6: string; gw4: string; gw6: string }
const live: Pod[] = [];

function addPod(n: number, suffix: string, caps?: unknown): Pod {
  const net = `${prefix}n${n}`;
  const netns = ns.add(suffix);
  const r = cnikit(["add", net, netns], caps);
  if (r.code !== 0) throw new Error(`add ${net}: ${r.stdout}${r.stderr}`);
  const ips: string[] = JSON.parse(r.stdout).ips.map((i: { address: string }) => i.address.split("/")[0]);
  const pod = { net, netns, ip4: ips.find((a) => !a.includes(":"))!, ip6: ips.find((a) => a.includes(":"))!, gw4: `10.97.${n}.1`, gw6: `fd00:97:${n}::1` };
  live.push(pod);
  return pod;
}
function delPod(p: Pod): void {
  const r = cnikit(["del", p.net, p.netns]);
  if (r.code !== 0) throw new Error(`del ${p.net}: ${r.stdout}${r.stderr}`);
  live.splice(live.indexOf(p), 1);
}

/** ping with a few tries (neighbour discovery after setup) when a reply is expected. */
const reaches = (netns: string, ip: string) => [0, 1, 2].some(() => ping(netns, ip));

/** `iptables-save` of both families without counters and comments: what must not change. */
function saved(backend: "nft" | "legacy"): string {
  return ["iptables", "ip6tables"].map((t) => must([`${t}-${backend}-save`]))
    .join("")
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => l.replace(/\[\d+:\d+\]/, "[]"))
    .join("\n");
}
/** How many cnikit accept rules FORWARD holds in each family: [IPv4, IPv6]. */
function ours(backend: "nft" | "legacy"): [number, number] {
  const count = (t: string) => must([`${t}-${backend}`, "-w", "-S", "FORWARD"]).split("\n").filter((l) => l.includes(COMMENT)).length;
  return [count("iptables"), count("ip6tables")];
}
const markChain = () => run(["nft", "list", "chain", "inet", "cnikit_firewall", "podmark"]).code === 0;
const policy = (backend: "nft" | "legacy", p: "ACCEPT" | "DROP") => {
  for (const t of ["iptables", "ip6tables"]) must([`${t}-${backend}`, "-w", "-P", "FORWARD", p]);
};


beforeAll(() => {
  must(["ip", "link", "set", "lo", "up"]);
  must(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  must(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
  for (const d of [bin, confDir]) mkdirSync(d, { recursive: true });
  installPlugins(CNIKIT, bin, ["bridge", "host-local", "portmap", "firewall"]);
  writeNetwork(1);
  writeNetwork(2);
  // the outside: a namespace behind a veth, routing the pods' networks back through the node
  ext = ns.add("x");
  must(["ip", "link", "add", `${prefix}x0`, "type", "veth", "peer", "name", `${prefix}x1`, "netns", `${prefix}x`]);
  must(["ip", "addr", "add", `${HOST_X}/24`, "dev", `${prefix}x0`]);
  must(["ip", "addr", "add", `${HOST_X6}/64`, "dev", `${prefix}x0`, "nodad"]);
  must(["ip", "link", "set", `${prefix}x0`, "up"]);
  const x = ["ip", "-n", `${prefix}x`];
  must([...x, "addr", "add", `${EXT}/24`, "dev", `${prefix}x1`]);
  must([...x, "addr", "add", `${EXT6}/64`, "dev", `${prefix}x1`, "nodad"]);
  must([...x, "link", "set", `${prefix}x1`, "up"]);
  must([...x, "route", "add", "default", "via", HOST_X]);
  must([...x, "-6", "route", "add", "default", "via", HOST_X6]);
});

afterAll(() => {
  for (const s of servers) s.stop();
  for (const p of [...live]) cnikit(["del", p.net, p.netns]);
  ns.cleanup();
  for (const l of [`${prefix}b1`, `${prefix}b2`, `${prefix}x0`]) run(["ip", "link", "del", l]);
  for (const t of ["cnikit_firewall", "cnikit_portmap"]) run(["nft", "delete", "table", "inet", t]);
  tmp.remove();
});

/** Traffic that must pass for pods a (network 1) and b (network 2). */
function expectPodsPass(a: Pod, b: Pod): void {
  expect(reaches(a.netns, b.ip4)).toBe(true); // routed between the two bridges: through FORWARD
  expect(reaches(b.netns, a.ip4)).toBe(true);
  expect(reaches(a.netns, b.ip6)).toBe(true);
  expect(reaches(b.netns, a.ip6)).toBe(true);
  expect(reaches(a.netns, a.gw4)).toBe(true);
  expect(reaches(a.netns, a.gw6)).toBe(true);
  expect(reaches(a.netns, EXT)).toBe(true); // out of the node, and the replies back in
  expect(reaches(b.netns, EXT6)).toBe(true);
}

describe("firewall with iptables' FORWARD chain", () => {
  test("policy ACCEPT (no iptables tables, then empty ones): nothing is added to iptables", () => {
    const a = addPod(1, "a");
    const b = addPod(2, "b");
    expectPodsPass(a, b);
    expect(reaches(ext, a.ip4)).toBe(true); // the host's policy lets new connections in
    expect(markChain()).toBe(false);
    for (const p of [a, b]) delPod(p);
    // iptables tables that exist with policy ACCEPT
    policy("nft", "ACCEPT");
    const before = saved("nft");
    const c = addPod(1, "c");
    const d = addPod(2, "d");
    expectPodsPass(c, d);
    expect(saved("nft")).toBe(before);
    expect(markChain()).toBe(false);
    for (const p of [c, d]) delPod(p);
    expect(saved("nft")).toBe(before);
  }, 60_000);

  test("policy DROP (iptables-nft): one accept per family while pods exist; gone with the last pod", async () => {
    policy("nft", "DROP");
    const before = saved("nft");
    const a = addPod(1, "e", { portMappings: [{ hostPort: 18090, containerPort: 8080, protocol: "tcp" }] });
    expect(ours("nft")).toEqual([1, 1]);
    const b = addPod(2, "f");
    expect(ours("nft")).toEqual([1, 1]); // once with two pods
    expect(markChain()).toBe(true);
    expectPodsPass(a, b);
    // a hostPort from outside (DNATed here) passes; a new connection straight to a pod does not
    servers.push(await whoamiServer(a.netns, 8080));
    expect(ask(ext, HOST_X, 18090)).toBe(EXT);
    expect(ping(ext, a.ip4)).toBe(false);
    expect(ping(ext, b.ip6)).toBe(false);
    expect(cnikit(["check", a.net, a.netns]).code).toBe(0);

    // without the rule the host's policy drops the pods' traffic, and CHECK says so
    must(["iptables-nft", "-D", "FORWARD", "-m", "mark", "--mark", "0x1000/0x1000", "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"]);
    expect(ping(a.netns, b.ip4)).toBe(false);
    const chk = cnikit(["check", a.net, a.netns]);
    expect(chk.code).not.toBe(0);
    expect(chk.stdout).toContain("accept rule is missing");
    must(["iptables-nft", "-I", "FORWARD", "1", "-m", "mark", "--mark", "0x1000/0x1000", "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"]);
    expect(reaches(a.netns, b.ip4)).toBe(true);

    delPod(a);
    expect(ours("nft")).toEqual([1, 1]); // b still needs it
    expect(reaches(b.netns, EXT)).toBe(true);
    expect(reaches(b.netns, EXT6)).toBe(true);
    expect(reaches(b.netns, b.gw4)).toBe(true);
    delPod(b);
    expect(ours("nft")).toEqual([0, 0]);
    expect(markChain()).toBe(false);
    expect(saved("nft")).toBe(before); // nothing else changed
    policy("nft", "ACCEPT");
  }, 60_000);

  test("Docker's layout (iptables-nft): DOCKER-USER jumped to, then a chain that ends in DROP / REJECT", () => {
    const ipt = (t: string, ...args: string[]) => must([`${t}-nft`, "-w", ...args]);
    for (const t of ["iptables", "ip6tables"]) {
      ipt(t, "-N", "DOCKER-USER");
      ipt(t, "-A", "DOCKER-USER", "-j", "RETURN");
      ipt(t, "-A", "FORWARD", "-j", "DOCKER-USER");
      ipt(t, "-A", "FORWARD", "-o", `${prefix}zz`, "-j", "ACCEPT"); // some other bridge's accept
    }
    ipt("iptables", "-A", "FORWARD", "-j", "DROP");
    ipt("ip6tables", "-A", "FORWARD", "-j", "REJECT");
    const before = saved("nft");
    const a = addPod(1, "g");
    const b = addPod(2, "h");
    expect(ours("nft")).toEqual([1, 1]);
    // inserted first, before the jump to DOCKER-USER (as the reference inserts its CNI-FORWARD jump)
    expect(must(["iptables-nft", "-S", "FORWARD"]).split("\n")[1]).toContain(COMMENT);
    expectPodsPass(a, b);
    delPod(a);
    delPod(b);
    expect(ours("nft")).toEqual([0, 0]);
    expect(saved("nft")).toBe(before);
    for (const t of ["iptables", "ip6tables"]) {
      ipt(t, "-F");
      ipt(t, "-X", "DOCKER-USER");
    }
  }, 60_000);

  test("policy DROP through iptables-legacy: the rule goes to x_tables, and away with the last pod", () => {
    policy("legacy", "DROP");
    const before = saved("legacy");
    const beforeNft = saved("nft");
    const a = addPod(1, "i");
    const b = addPod(2, "j");
    expect(ours("legacy")).toEqual([1, 1]);
    expect(ours("nft")).toEqual([0, 0]); // iptables-nft's chains accept: nothing there
    expectPodsPass(a, b);
    expect(ping(ext, a.ip4)).toBe(false);
    expect(cnikit(["check", b.net, b.netns]).code).toBe(0);
    delPod(a);
    expect(ours("legacy")).toEqual([1, 1]);
    expect(reaches(b.netns, EXT)).toBe(true);
    delPod(b);
    expect(ours("legacy")).toEqual([0, 0]);
    expect(markChain()).toBe(false);
    expect(saved("legacy")).toBe(before);
    expect(saved("nft")).toBe(beforeNft);
    policy("legacy", "ACCEPT");
  }, 60_000);

  test("GC of the last attachment removes the rule too", () => {
    policy("nft", "DROP");
    const a = addPod(1, "k");
    expect(ours("nft")).toEqual([1, 1]);
    const gcConf = { cniVersion: "1.1.0", name: a.net, type: "firewall", dataDir, "cni.dev/valid-attachments": [] };
    const g = run([join(bin, "firewall")], { env: { PATH: process.env.PATH, CNI_COMMAND: "GC", CNI_PATH: bin }, stdin: JSON.stringify(gcConf) });
    expect(g.stdout + g.stderr).toBe("");
    expect(g.code).toBe(0);
    expect(ours("nft")).toEqual([0, 0]);
    expect(markChain()).toBe(false);
    delPod(a);
    policy("nft", "ACCEPT");
  }, 60_000);
});
