/**
 * `cnikit add|check|del` driving the reference Go plugins (Debian containernetworking-plugins in
 * /usr/lib/cni): bridge + host-local, portmap, bandwidth and tuning for two pods. Runs in a private
 * network namespace (npm test starts it under `unshare -n`); pods are namespaces of their own.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertPrivateNetns, must, Namespaces, ping, run, runPrefix, tempDir } from "../../support/netns.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const BUN = process.execPath;
const REF = "/usr/lib/cni";
const prefix = runPrefix("rf");
const ns = new Namespaces(prefix);
const tmp = tempDir("ref");
const bridge = `${prefix}br`;
const subnet = "10.77.0";
const dataDir = join(tmp.path, "ipam");
const cacheDir = join(tmp.path, "cache");
const confDir = join(tmp.path, "net.d");
const listeners: Array<ReturnType<typeof Bun.spawn>> = [];

const full = {
  cniVersion: "1.0.0",
  name: "refnet",
  plugins: [
    {
      type: "bridge",
      bridge,
      isGateway: true,
      ipMasq: true,
      ipam: { type: "host-local", ranges: [[{ subnet: `${subnet}.0/24` }]], dataDir },
    },
    { type: "portmap", capabilities: { portMappings: true }, snat: true },
    { type: "bandwidth", ingressRate: 100_000_000, ingressBurst: 1_000_000, egressRate: 100_000_000, egressBurst: 1_000_000 },
    { type: "tuning", sysctl: { "net.ipv4.conf.eth0.rp_filter": "0" } },
  ],
};
// Debian's 1.1.1 portmap and bandwidth fail CHECK on their own bugs: check the same attachment
// through a list without them (same name, so the same cached result).
const checkable = { ...full, plugins: [full.plugins[0], full.plugins[3]] };

function env(extra: Record<string, string> = {}): Record<string, string | undefined> {
  return { ...process.env, NETCONFPATH: confDir, CNI_PATH: REF, CNI_CACHE_DIR: cacheDir, ...extra };
}

function cnikit(args: string[], extra: Record<string, string> = {}) {
  return run([CNIKIT, ...args], { env: env(extra) });
}

const pods: Record<string, { netns: string; ip: string }> = {};

beforeAll(() => {
  if (!existsSync(CNIKIT)) throw new Error("dist/cnikit is missing: run `npm run build`");
  must(["ip", "link", "set", "lo", "up"]);
  mkdirSync(confDir, { recursive: true });
  writeFileSync(join(confDir, "10-refnet.conflist"), JSON.stringify(full));
  mkdirSync(join(tmp.path, "check.d"));
  writeFileSync(join(tmp.path, "check.d", "10-refnet.conflist"), JSON.stringify(checkable));
});

afterAll(() => {
  for (const l of listeners) l.kill();
  for (const name of Object.keys(pods)) cnikit(["del", "refnet", pods[name]!.netns]);
  ns.cleanup();
  run(["ip", "link", "del", bridge]);
  tmp.remove();
});

function podIP(result: { ips?: Array<{ address: string }> }): string {
  return result.ips![0]!.address.split("/")[0]!;
}

describe("cnikit runtime with the reference plugins", () => {
  test("ADD two pods: one with a hostPort", () => {
    for (const [name, caps] of [
      ["a", { portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: "tcp" }] }],
      ["b", {}],
    ] as const) {
      const netns = ns.add(name);
      const r = cnikit(["add", "refnet", netns], { CAP_ARGS: JSON.stringify(caps) });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const result = JSON.parse(r.stdout);
      expect(result.cniVersion).toBe("1.0.0");
      expect(result.interfaces.some((i: { name: string; sandbox?: string }) => i.name === "eth0" && i.sandbox === netns)).toBe(true);
      pods[name] = { netns, ip: podIP(result) };
    }
    expect(pods.a!.ip).not.toBe(pods.b!.ip);
    expect(pods.a!.ip.startsWith(`${subnet}.`)).toBe(true);
  });

  test("pods ping each other and the gateway", () => {
    expect(ping(pods.a!.netns, pods.b!.ip)).toBe(true);
    expect(ping(pods.b!.netns, pods.a!.ip)).toBe(true);
    expect(ping(pods.a!.netns, `${subnet}.1`)).toBe(true);
  });

  test("the hostPort reaches a TCP listener in pod a, from the host and from pod b", async () => {
    const server = Bun.spawn(
      ["nsenter", `--net=${pods.a!.netns}`, BUN, "-e",
        `Bun.listen({hostname:"0.0.0.0",port:8080,socket:{data(s,d){s.write("pong:"+d);s.end();}}});console.log("ready")`],
      { stdout: "pipe", stderr: "inherit" },
    );
    listeners.push(server);
    const reader = server.stdout.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("ready");

    // from the host through its own address on the bridge
    const reply = await tcpRequest(`${subnet}.1`, 18080, "hello");
    expect(reply).toBe("pong:hello");
    // from pod b to the host's address
    const client = run([
      "nsenter", `--net=${pods.b!.netns}`, BUN, "-e",
      `const s=await Bun.connect({hostname:"${subnet}.1",port:18080,socket:{data(_s,d){console.log(String(d));process.exit(0)},error(){process.exit(3)}}});s.write("from-b");setTimeout(()=>process.exit(4),3000)`,
    ]);
    expect(client.stdout.trim()).toBe("pong:from-b");
  });

  test("the bandwidth and tuning plugins did their work", () => {
    const tc = must(["tc", "qdisc", "show"]);
    expect(tc).toContain("tbf");
    const rp = must(["nsenter", `--net=${pods.a!.netns}`, "cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter"]);
    expect(rp.trim()).toBe("0");
  });

  test("CHECK passes", () => {
    for (const name of ["a", "b"]) {
      const r = run([CNIKIT, "check", "refnet", pods[name]!.netns], { env: env({ NETCONFPATH: join(tmp.path, "check.d") }) });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    }
  });

  test("DEL leaves nothing behind: no veth, no reservation, no DNAT rule, no cache entry", () => {
    for (const name of ["a", "b"]) {
      // DEL without CAP_ARGS: the cached capability arguments let portmap remove its rules
      const r = cnikit(["del", "refnet", pods[name]!.netns]);
      expect(r.stdout).toBe("");
      expect(r.code).toBe(0);
    }
    const veths = JSON.parse(must(["ip", "-j", "link", "show", "type", "veth"]));
    expect(veths).toEqual([]);
    const reservations = readdirSync(join(dataDir, "refnet")).filter((f) => f !== "lock" && !f.startsWith("last_reserved_ip"));
    expect(reservations).toEqual([]);
    const rules = must(["iptables-save", "-t", "nat"]);
    expect(rules).not.toContain(`${subnet}.`);
    expect(rules).not.toMatch(/CNI-DN-/);
    expect(readdirSync(join(cacheDir, "results"))).toEqual([]);
    // DEL again succeeds (idempotent)
    expect(cnikit(["del", "refnet", pods.a!.netns]).code).toBe(0);
    for (const k of Object.keys(pods)) delete pods[k];
  });
});

async function tcpRequest(host: string, port: number, msg: string): Promise<string> {
  return await new Promise<string>((resolveP, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer from ${host}:${port}`)), 5000);
    Bun.connect({
      hostname: host,
      port,
      socket: {
        open(s) {
          s.write(msg);
        },
        data(_s, d) {
          clearTimeout(timer);
          resolveP(String(d));
        },
        error(_s, e) {
          clearTimeout(timer);
          reject(e);
        },
        connectError(_s, e) {
          clearTimeout(timer);
          reject(e);
        },
      },
    }).catch(reject);
  });
}
