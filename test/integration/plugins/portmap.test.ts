/**
 * portmap chained after cnikit's bridge (isGateway, hairpinMode) and host-local, through
 * `cnikit add/check/del`: TCP and UDP host ports reach a pod from another pod, from the host
 * (its own addresses and 127.0.0.1), from outside and from the pod itself; a mapping bound to a
 * hostIP answers there only; a host port already taken fails the ADD whole; DEL without
 * runtimeConfig leaves no element and no conntrack entry; go-cni's Go field names; DEL with keys
 * that do not decode leaves nothing; 50 pods at once; IPv6.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertPrivateNetns, must, Namespaces, run, runPrefix, tempDir } from "../../support/netns.ts";
import { listConntrack } from "../../../src/net/conntrack.ts";
import { formatIP } from "../../../src/spec/ip.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const prefix = runPrefix("pm");
const ns = new Namespaces(prefix);
const tmp = tempDir("portmap");
const bin = join(tmp.path, "bin");
const confDir = join(tmp.path, "net.d");
const servers: Array<ReturnType<typeof Bun.spawn>> = [];
const links: string[] = [];
let ext = "";
const HOST = "198.18.0.1"; // the host's address towards the outside namespace
const GW = "10.94.1.1";
const GW6 = "fd00:94:1::1";

const env = (capArgs?: unknown) => ({
  ...process.env,
  NETCONFPATH: confDir,
  CNI_PATH: bin,
  CNI_CACHE_DIR: join(tmp.path, "cache"),
  ...(capArgs !== undefined ? { CAP_ARGS: JSON.stringify(capArgs) } : {}),
});
const cnikit = (args: string[], capArgs?: unknown) => run([CNIKIT, ...args], { env: env(capArgs) });
const pm = (hostPort: number, containerPort: number, protocol = "tcp", hostIP?: string) => ({ hostPort, containerPort, protocol, ...(hostIP ? { hostIP } : {}) });

/** TCP (port) and UDP (port + 1) servers in `netns` answering with the address they saw. */
async function whoami(netns: string, port: number): Promise<void> {
  const p = Bun.spawn(["nsenter", `--net=${netns}`, process.execPath, "-e",
    `Bun.listen({hostname:"::",port:${port},socket:{data(s){s.write(String(s.remoteAddress));s.end()}}});` +
    `await Bun.udpSocket({hostname:"::",port:${port + 1},socket:{data(s,_b,port,addr){s.send(String(addr),port,addr)}}});console.log("ready")`],
  { stdout: "pipe" });
  servers.push(p);
  await p.stdout.getReader().read();
}

const clean = (s: string) => s.trim().replace(/^::ffff:/, "");

/** Connect over TCP from `netns` ("" for here) and return what the server saw as our address. */
function tcp(netns: string, host: string, port: number): string {
  const code = `Bun.connect({hostname:"${host}",port:${port},socket:{open(s){s.write("x")},data(_s,d){console.log(String(d));process.exit(0)},error(){console.log("error");process.exit(0)},connectError(){console.log("refused");process.exit(0)}}}).catch(()=>{console.log("refused");process.exit(0)});setTimeout(()=>{console.log("timeout");process.exit(0)},2000)`;
  const cmd = [process.execPath, "-e", code];
  return clean(run(netns ? ["nsenter", `--net=${netns}`, ...cmd] : cmd).stdout);
}

/** Send a UDP datagram from `netns` ("" for here) and return the answer (or "timeout"). */
function udp(netns: string, host: string, port: number): string {
  const bind = host.includes(":") ? `hostname:"::",` : "";
  const code = `process.on("uncaughtException",()=>{console.log("refused");process.exit(0)});` +
    `const s=await Bun.udpSocket({${bind}socket:{data(_s,b){console.log(String(b));process.exit(0)},error(){console.log("refused");process.exit(0)}}});` +
    `s.send("x",${port},"${host}");setTimeout(()=>{console.log("timeout");process.exit(0)},1500)`;
  const cmd = [process.execPath, "-e", code];
  return clean(run(netns ? ["nsenter", `--net=${netns}`, ...cmd] : cmd).stdout);
}

const table = (): string => {
  const r = run(["nft", "list", "table", "inet", "cnikit_portmap"]);
  return r.code === 0 ? r.stdout : "";
};
const ipOf = (out: string, v: 4 | 6 = 4): string =>
  JSON.parse(out).ips.map((i: { address: string }) => i.address.split("/")[0]).find((a: string) => (v === 4) === !a.includes(":"));

beforeAll(async () => {
  must(["ip", "link", "set", "lo", "up"]);
  mkdirSync(confDir, { recursive: true });
  must([CNIKIT, "install", "--bin-dir", bin]);
  writeFileSync(join(confDir, "pm.conflist"), JSON.stringify({
    cniVersion: "1.1.0",
    name: "pm",
    plugins: [
      {
        type: "bridge", bridge: `${prefix}b`, isGateway: true, hairpinMode: true,
        ipam: {
          type: "host-local", dataDir: join(tmp.path, "ipam"),
          ranges: [[{ subnet: "10.94.1.0/24" }], [{ subnet: "fd00:94:1::/64" }]],
          routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
        },
      },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
    ],
  }));
  links.push(`${prefix}b`);
  // the outside: a namespace behind a veth, routing back through the host
  ext = ns.add("ext");
  const hostEnd = `${prefix}x`;
  links.push(hostEnd);
  must(["ip", "link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", ext]);
  must(["ip", "addr", "add", `${HOST}/24`, "dev", hostEnd]);
  must(["ip", "link", "set", hostEnd, "up"]);
  must(["nsenter", `--net=${ext}`, "ip", "addr", "add", "198.18.0.2/24", "dev", "eth0"]);
  must(["nsenter", `--net=${ext}`, "ip", "link", "set", "eth0", "up"]);
  must(["nsenter", `--net=${ext}`, "ip", "route", "add", "default", "via", HOST]);
  must(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  must(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
});

afterAll(() => {
  for (const s of servers) s.kill();
  for (const l of links) run(["ip", "link", "del", l]);
  ns.cleanup();
  run(["nft", "delete", "table", "inet", "cnikit_portmap"]);
  tmp.remove();
});

describe("portmap", () => {
  test("TCP and UDP host ports reach a pod from everywhere; hostIP binds; CHECK; conflicts; DEL leaves nothing", async () => {
    const a = ns.add("a");
    const b = ns.add("b");
    const c = ns.add("c");
    const maps = { portMappings: [pm(8080, 80), pm(8081, 81, "udp"), pm(8082, 80, "tcp", HOST)] };
    const ra = cnikit(["add", "pm", a], maps);
    expect(ra.stderr).toBe("");
    expect(ra.code).toBe(0);
    const ipA = ipOf(ra.stdout);
    const rb = cnikit(["add", "pm", b]);
    expect(rb.code).toBe(0);
    const ipB = ipOf(rb.stdout);
    await whoami(a, 80);

    // another pod, through the gateway and the host's other address (same subnet: masqueraded)
    expect(tcp(b, GW, 8080)).toBe(GW);
    expect(tcp(b, HOST, 8080)).toBe(GW);
    expect(udp(b, GW, 8081)).toBe(GW);
    // the host itself: its own addresses and 127.0.0.1 (masqueraded to the bridge's address)
    expect(tcp("", GW, 8080)).toBe(GW);
    expect(tcp("", HOST, 8080)).toBe(HOST);
    expect(tcp("", "127.0.0.1", 8080)).toBe(GW);
    expect(udp("", "127.0.0.1", 8081)).toBe(GW);
    expect(udp("", HOST, 8081)).toBe(HOST);
    expect(run(["sysctl", "-n", `net.ipv4.conf.${prefix}b.route_localnet`]).stdout.trim()).toBe("1");
    // the outside keeps its address
    expect(tcp(ext, HOST, 8080)).toBe("198.18.0.2");
    expect(udp(ext, HOST, 8081)).toBe("198.18.0.2");
    // the pod itself (hairpin)
    expect(tcp(a, GW, 8080)).toBe(GW);
    expect(udp(a, GW, 8081)).toBe(GW);
    // bound to one host address: there only
    expect(tcp(ext, HOST, 8082)).toBe("198.18.0.2");
    expect(tcp("", HOST, 8082)).toBe(HOST);
    expect(tcp("", GW, 8082)).toBe("refused");
    expect(tcp(b, GW, 8082)).toBe("refused");

    // CHECK (an IPv4-only mapping set on a dual-stack pod: the v6 address gets the unbound ones)
    expect(cnikit(["check", "pm", a], maps).code).toBe(0);
    expect(table()).toContain(ipA);

    // a host port already mapped to another pod: the whole ADD fails, nothing of it stays
    const rc = cnikit(["add", "pm", c], { portMappings: [pm(8090, 80), pm(8080, 80)] });
    expect(rc.code).not.toBe(0);
    expect(JSON.parse(rc.stdout).code).toBe(7);
    expect(JSON.parse(rc.stdout).msg).toContain("already mapped");
    expect(table()).not.toContain("8090");
    expect(tcp(b, GW, 8080)).toBe(GW);
    cnikit(["del", "pm", c]);

    // UDP flows leave conntrack entries; DEL (without runtimeConfig) removes them and every element
    const udpEntries = () => listConntrack(4).filter((e) => e.orig.proto === 17 && e.orig.dstPort === 8081 && e.reply && formatIP(e.reply.src) === ipA);
    expect(udpEntries().length).toBeGreaterThan(0);
    expect(cnikit(["del", "pm", a]).code).toBe(0);
    expect(udpEntries()).toEqual([]);
    expect(table()).not.toContain(ipA);
    expect(table()).not.toContain("8080");
    expect(tcp(b, GW, 8080)).not.toBe(GW);
    expect(tcp("", "127.0.0.1", 8080)).toBe("refused");
    expect(tcp(ext, HOST, 8080)).toBe("refused");
    expect(tcp(ext, HOST, 8082)).toBe("refused");
    expect(["timeout", "refused"]).toContain(udp(b, GW, 8081));
    // DEL again is fine
    expect(cnikit(["del", "pm", a]).code).toBe(0);
    expect(cnikit(["del", "pm", b]).code).toBe(0);
    expect(ipB).toBeTruthy();
  }, 60_000);

  test("go-cni's Go field names map ports; DEL with keys that do not decode (and bad capability args) leaves nothing", async () => {
    const g = ns.add("g");
    const goMaps = { portMappings: [{ HostPort: 8280, ContainerPort: 80, Protocol: "tcp", HostIP: "" }, { HostPort: 8281, ContainerPort: 81, Protocol: "udp", HostIP: "" }] };
    const rg = cnikit(["add", "pm", g], goMaps);
    expect(rg.stdout + rg.stderr).not.toContain("Invalid");
    expect(rg.code).toBe(0);
    const ipG = ipOf(rg.stdout);
    await whoami(g, 80);
    expect(tcp("", HOST, 8280)).toBe(HOST);
    expect(udp("", HOST, 8281)).toBe(HOST);
    expect(cnikit(["check", "pm", g], goMaps).code).toBe(0);
    // wrong types: ADD refuses them with code 2 naming the key
    const bad = cnikit(["add", "pm", ns.add("gx")], { portMappings: [{ HostPort: "8290", ContainerPort: 80 }] });
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 2, msg: expect.stringContaining('"runtimeConfig.portMappings[0].HostPort"') });
    // the same network with portmap's and host-local's keys broken: DEL still removes everything
    const badDir = join(tmp.path, "net.d-bad");
    mkdirSync(badDir, { recursive: true });
    writeFileSync(join(badDir, "pm.conflist"), JSON.stringify({
      cniVersion: "1.1.0",
      name: "pm",
      plugins: [
        {
          type: "bridge", bridge: `${prefix}b`, isGateway: true, hairpinMode: true,
          ipam: { type: "host-local", dataDir: join(tmp.path, "ipam"), ranges: "10.94.1.0/24", routes: [{ dst: 5 }] },
        },
        { type: "portmap", capabilities: { portMappings: true }, snat: "yes", markMasqBit: 99, conditionsV4: "x", backend: 1 },
      ],
    }));
    const del = run([CNIKIT, "del", "pm", g], { env: { ...env({ portMappings: [{ HostPort: "x", ContainerPort: -1 }] }), NETCONFPATH: badDir } });
    expect(del.stdout).toBe("");
    expect(del.code).toBe(0);
    expect(table()).not.toContain(ipG);
    expect(table()).not.toContain("8280");
    expect(tcp("", HOST, 8280)).toBe("refused");
    expect(readdirSync(join(tmp.path, "ipam", "pm"))).not.toContain(ipG); // host-local released it
    expect(cnikit(["del", "pm", g]).code).toBe(0);
  }, 60_000);

  test("IPv6: a dual-stack pod's mapping answers on the host's IPv6 addresses", async () => {
    const d = ns.add("d");
    const e = ns.add("e");
    const rd = cnikit(["add", "pm", d], { portMappings: [pm(8180, 80), pm(8181, 81, "udp"), pm(8182, 80, "tcp", GW6)] });
    expect(rd.code).toBe(0);
    const ip6 = ipOf(rd.stdout, 6);
    expect(cnikit(["add", "pm", e]).code).toBe(0);
    await whoami(d, 80);
    // wait for the bridge's IPv6 address to leave DAD
    for (let i = 0; i < 50 && tcp(e, GW6, 8180) !== GW6; i++) await Bun.sleep(100);
    expect(tcp(e, GW6, 8180)).toBe(GW6);
    expect(udp(e, GW6, 8181)).toBe(GW6);
    expect(tcp("", GW6, 8180)).toBe(GW6);
    expect(tcp(d, GW6, 8180)).toBe(GW6); // hairpin
    expect(tcp(e, GW6, 8182)).toBe(GW6);
    expect(tcp(e, GW, 8182)).toBe("refused"); // bound to the IPv6 address: not on IPv4
    expect(tcp(e, GW, 8180)).toBe(GW); // the unbound mapping serves both families
    expect(cnikit(["check", "pm", d], { portMappings: [pm(8180, 80), pm(8181, 81, "udp"), pm(8182, 80, "tcp", GW6)] }).code).toBe(0);
    expect(table()).toContain(ip6);
    expect(cnikit(["del", "pm", d]).code).toBe(0);
    expect(table()).not.toContain(ip6);
    expect(tcp(e, GW6, 8180)).toBe("refused");
    expect(cnikit(["del", "pm", e]).code).toBe(0);
  }, 60_000);

  test("50 pods with their own host ports, ADDed at once, all reachable, then all DELed", async () => {
    // no table yet: the concurrent ADDs race to create it, exactly once
    run(["nft", "delete", "table", "inet", "cnikit_portmap"]);
    expect(table()).toBe("");
    const pods = Array.from({ length: 50 }, (_, i) => ns.add(`m${i}`));
    const spawnAll = (verb: string, withPorts: boolean) => Promise.all(pods.map(async (p, i) => {
      const proc = Bun.spawn([CNIKIT, verb, "pm", p], {
        env: env(withPorts ? { portMappings: [pm(9000 + i, 80), pm(9100 + i, 81, "udp")] } : undefined) as Record<string, string>,
        stdout: "pipe", stderr: "pipe",
      });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      return { out, err, code };
    }));
    const added = await spawnAll("add", true);
    for (const r of added) expect(r).toMatchObject({ code: 0, err: "" });
    await Promise.all(pods.map((p) => whoami(p, 80)));
    for (let i = 0; i < pods.length; i++) {
      expect(tcp(ext, HOST, 9000 + i)).toBe("198.18.0.2");
    }
    expect(udp(ext, HOST, 9105)).toBe("198.18.0.2");
    const dels = await spawnAll("del", false);
    for (const r of dels) expect(r).toMatchObject({ code: 0, err: "" });
    const t = table();
    for (const r of added) expect(t).not.toContain(ipOf(r.out));
    expect(t).not.toMatch(/ : 10\.94\./);
    expect(tcp(ext, HOST, 9003)).toBe("refused");
    // the shared rules stayed as they were created
    const rules = JSON.parse(must(["nft", "-j", "list", "table", "inet", "cnikit_portmap"])).nftables.filter((x: { rule?: unknown }) => x.rule);
    expect(rules.length).toBe(2 + 4 + 2);
  }, 120_000);

  test("ADD flushes stale UDP conntrack entries of its host ports", async () => {
    const f = ns.add("f");
    // a flow to the port before it is mapped: conntrack remembers it un-NATed
    expect(udp(ext, HOST, 8281)).not.toBe("198.18.0.2");
    const stale = () => listConntrack(4).filter((e) => e.orig.proto === 17 && e.orig.dstPort === 8281 && e.reply && formatIP(e.reply.src) === HOST);
    expect(stale().length).toBeGreaterThan(0);
    const rf = cnikit(["add", "pm", f], { portMappings: [pm(8281, 81, "udp")] });
    expect(rf.code).toBe(0);
    expect(stale()).toEqual([]);
    await whoami(f, 80);
    expect(udp(ext, HOST, 8281)).toBe("198.18.0.2");
    expect(cnikit(["del", "pm", f]).code).toBe(0);
    expect(table()).not.toContain(ipOf(rf.stdout));
  }, 30_000);

  test("two pods racing for one host port: one wins, the other fails whole (code 7)", async () => {
    const racers = [ns.add("r0"), ns.add("r1")];
    const results = await Promise.all(racers.map(async (p, i) => {
      const proc = Bun.spawn([CNIKIT, "add", "pm", p], {
        env: env({ portMappings: [pm(8300 + i, 80), pm(8399, 80)] }) as Record<string, string>, stdout: "pipe", stderr: "pipe",
      });
      const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      return { out, code };
    }));
    const won = results.filter((r) => r.code === 0);
    const lost = results.filter((r) => r.code !== 0);
    expect(won.length).toBe(1);
    expect(lost.length).toBe(1);
    expect(JSON.parse(lost[0]!.out).code).toBe(7);
    const loser = results.indexOf(lost[0]!);
    expect(table()).not.toContain(String(8300 + loser));
    expect(table()).toContain(String(8300 + (1 - loser)));
    for (const p of racers) expect(cnikit(["del", "pm", p]).code).toBe(0);
    expect(table()).not.toContain("8399");
  }, 30_000);
});
