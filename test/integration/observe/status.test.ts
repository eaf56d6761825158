/**
 * `cnikit status` (no NET) and `cnikit graph` on a real node set-up, in this test's private network
 * namespace: pods added through cnikit's runtime (`cnikit add`, a temp NETCONFPATH and
 * CNI_CACHE_DIR), some with the K8S_POD_* arguments a Kubernetes runtime passes; the table and
 * --json list each of them with its address and MAC; the daemon is "not running", then up once a
 * `cnikit agent` serves the socket; the SVG picture parses and names every pod and the node.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { CNIKIT, socketDir, startDaemon, type TestDaemon } from "../../support/daemon.ts";
import { assertPrivateNetns, must, Namespaces, run, runPrefix, tempDir } from "../../support/netns.ts";
import { parseXml } from "../../support/xml.ts";

assertPrivateNetns();

const prefix = runPrefix("v");
let tmp!: ReturnType<typeof tempDir>;
let ns!: Namespaces;
let env!: Record<string, string>;
let sock!: ReturnType<typeof socketDir>;
let daemon: TestDaemon | undefined;
type Pod = { ns: string; cid: string; pod?: [string, string]; ip: string; mac: string };
const pods: Pod[] = [];

const cnikit = (args: string[], extra: Record<string, string> = {}) => run([CNIKIT, ...args], { env: { ...env, ...extra } });

function addPod(suffix: string, pod?: [string, string]): Pod {
  const path = ns.add(suffix);
  const cid = `${prefix}-${suffix}`;
  const args: Record<string, string> = pod ? { CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod[0]};K8S_POD_NAME=${pod[1]};K8S_POD_INFRA_CONTAINER_ID=${cid}` } : {};
  const r = cnikit(["add", "ckvnet", path], { CNI_CONTAINERID: cid, ...args });
  if (r.code !== 0) throw new Error(`add ${suffix}: ${r.stdout} ${r.stderr}`);
  const res = JSON.parse(r.stdout) as { ips: { address: string }[]; interfaces: { mac: string; sandbox?: string }[] };
  const p: Pod = { ns: path, cid, ...(pod ? { pod } : {}), ip: res.ips[0]!.address, mac: res.interfaces.find((i) => i.sandbox)!.mac };
  pods.push(p);
  return p;
}

beforeAll(() => {
  tmp = tempDir("ckv-status");
  ns = new Namespaces(prefix);
  sock = socketDir("ckvst");
  must(["ip", "link", "set", "lo", "up"]);
  must([CNIKIT, "install", "--bin-dir", join(tmp.path, "bin"), "--no-shim"]);
  const conf = join(tmp.path, "net.d");
  must(["mkdir", "-p", conf]);
  writeFileSync(join(conf, "10-ckv.conflist"), JSON.stringify({
    cniVersion: "1.1.0",
    name: "ckvnet",
    plugins: [
      { type: "bridge", bridge: `${prefix}b`, isGateway: true, ipam: { type: "host-local", ranges: [[{ subnet: "10.123.0.0/24" }]], dataDir: join(tmp.path, "ipam") } },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  }));
  env = { ...(process.env as Record<string, string>), NETCONFPATH: conf, CNI_PATH: join(tmp.path, "bin"), CNI_CACHE_DIR: join(tmp.path, "cache"), CNIKIT_SOCKET: sock.socket };
  addPod("a", ["shop", "web-0"]);
  addPod("b", ["shop", "web-1"]);
  addPod("c");
});

afterAll(async () => {
  await daemon?.stop();
  for (const p of pods) cnikit(["del", "ckvnet", p.ns], { CNI_CONTAINERID: p.cid });
  ns?.cleanup();
  run(["ip", "link", "del", `${prefix}b`]);
  sock?.remove();
  tmp?.remove();
});

describe("cnikit status", () => {
  test("the table lists every attachment with its pod, address, MAC and chain; no daemon yet", () => {
    const r = cnikit(["status"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^NETWORK\s+POD\s+CONTAINER\s+NETNS\s+IFNAME\s+ADDRESSES\s+MAC\s+PLUGINS\s+AGE$/);
    for (const p of pods) {
      const row = lines.find((l) => l.includes(p.ip));
      expect(row).toBeDefined();
      expect(row!).toContain(p.mac);
      expect(row!).toContain(p.ns);
      expect(row!).toContain(p.pod ? `${p.pod[0]}/${p.pod[1]}` : " - ");
      expect(row!).toMatch(/ckvnet .* eth0 .* bridge>portmap\s+\d+s$/);
    }
    expect(lines.at(-1)).toBe(`daemon: not running (no answer on ${sock.socket}: Failed to connect)`);
  });

  test("--json holds the same for scripts", () => {
    const r = cnikit(["status", "--json"]);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { attachments: Record<string, unknown>[]; daemon: { running: boolean } };
    expect(doc.daemon.running).toBe(false);
    expect(doc.attachments).toHaveLength(pods.length);
    for (const p of pods) {
      const a = doc.attachments.find((x) => x.containerId === p.cid)!;
      expect(a).toMatchObject({ network: "ckvnet", netns: p.ns, ifName: "eth0", addresses: [p.ip], mac: p.mac, plugins: ["bridge", "portmap"], bridge: `${prefix}b` });
      expect(a.podName).toBe(p.pod?.[1]);
      expect(a.podNamespace).toBe(p.pod?.[0]);
      expect(typeof a.ageSec).toBe("number");
    }
  });

  test("a running daemon answers on its socket", async () => {
    daemon = await startDaemon(sock.socket, [], env);
    const r = cnikit(["status"]);
    expect(r.stdout.trimEnd().split("\n").at(-1)).toStartWith(`daemon: up (protocol 1) at ${sock.socket}`);
    const j = JSON.parse(cnikit(["status", "--json"]).stdout) as { daemon: { running: boolean; protocol: number } };
    expect(j.daemon).toMatchObject({ running: true, protocol: 1 });
  });

  test("`cnikit status NET` is still cnitool's STATUS", () => {
    expect(cnikit(["status", "ckvnet"]).code).toBe(0);
    expect(cnikit(["status", "nosuchnet"]).code).not.toBe(0);
  });
});

describe("cnikit graph", () => {
  test("--svg renders with graphviz; the SVG parses and names every pod and the node", () => {
    const file = join(tmp.path, "net.svg");
    const r = cnikit(["graph", "--svg", file]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const { root, texts } = parseXml(readFileSync(file, "utf8"));
    expect(root).toBe("svg");
    const all = texts.join("\n");
    expect(all).toContain(`${hostname()} (this node)`);
    expect(all).toContain(`bridge ${prefix}b`);
    for (const p of pods) {
      expect(all).toContain(p.pod ? `${p.pod[0]}/${p.pod[1]}` : p.cid);
      expect(all).toContain(p.ip.split("/")[0]!);
    }
  });

  test("--dot prints the DOT text; a removed pod leaves the picture and the table", () => {
    const gone = pods.pop()!;
    expect(cnikit(["del", "ckvnet", gone.ns], { CNI_CONTAINERID: gone.cid }).code).toBe(0);
    const dot = cnikit(["graph", "--dot"]);
    expect(dot.stdout).toStartWith("digraph cnikit {");
    expect(dot.stdout).not.toContain(gone.cid);
    expect(cnikit(["status"]).stdout).not.toContain(gone.ip);
  });
});

describe("cnikit agent's logs", () => {
  test("--log-format text: it says every few seconds that it waits for etcd, then for the network config", async () => {
    const { loopbackEtcd } = await import("../../support/cluster.ts");
    const port = 23870;
    const s = socketDir("ckvlog");
    const log = join(tmp.path, "agent-text.log");
    const agent = Bun.spawn([CNIKIT, "agent", "--cni-socket", s.socket, "--log-format", "text", "--log-level", "info", "--etcd-endpoints", `http://127.0.0.1:${port}`,
      "--etcd-prefix", `/${prefix}/network`, "--iface", "lo", "--public-ip", "127.0.0.1", "--subnet-file", join(tmp.path, "subnet.env")], { env, stdout: "ignore", stderr: Bun.file(log) });
    let etcd: Awaited<ReturnType<typeof loopbackEtcd>> | undefined;
    const text = () => readFileSync(log, "utf8");
    const until = async (what: string, re: RegExp) => {
      for (const end = Date.now() + 15_000; !re.test(text()); await Bun.sleep(100)) if (Date.now() > end) throw new Error(`no ${what} in the log:\n${text()}`);
    };
    try {
      await until("wait for etcd", /^\S+ WARN  waiting for etcd \(reading the network config\) error=/m);
      etcd = await loopbackEtcd(join(tmp.path, "etcd"), port);
      await until("wait for the network config", /^\S+ WARN  waiting for the network config in etcd error=".*no network config at/m);
      expect(text()).toMatch(/^\S+ INFO  serving CNI socket=\S+ protocol=1/m);
      expect(text().split("\n").filter((l) => l.startsWith("{"))).toEqual([]);
    } finally {
      agent.kill("SIGTERM");
      await agent.exited;
      await etcd?.stop();
      s.remove();
    }
  }, 40_000);
});
