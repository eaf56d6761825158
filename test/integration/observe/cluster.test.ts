/**
 * Seeing a 2-node cluster, all inside this test's private network namespace: a real etcd on an
 * underlay bridge, two node namespaces each running `cnikit agent` (vxlan, --healthz on the node's
 * underlay address), pods added through cnikit's runtime and each node's daemon (through the
 * shim), with the K8S_POD_* arguments. Checks `cnikit nodes` (table, --json, this node marked),
 * `cnikit graph --svg` (parses, names every node and every pod: the other node's from its agent), the agent's whole /metrics
 * through `promtool check metrics`, /api/status, and the status page /ui in headless Chromium: it
 * lists every pod and node, a screenshot is taken, and it updates when a pod is added.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Cluster, CNIKIT, type Node } from "../../support/cluster.ts";
import { openPage } from "../../support/chromium.ts";
import { assertPrivateNetns, run, runPrefix, tempDir } from "../../support/netns.ts";
import { parseXml } from "../../support/xml.ts";

assertPrivateNetns();

const prefix = runPrefix("v");
const key = `/${prefix}/network`;
const NET = 83;
const PORT = 9102;
let tmp!: ReturnType<typeof tempDir>;
let c!: Cluster;
type Pod = { node: Node; name: string; ns: string; ip: string };
const pods: Pod[] = [];

const healthz = (n: Node) => `http://${n.ip}:${PORT}`;
const env = (n: Node) => ({ ...process.env, NETCONFPATH: n.confDir, CNI_PATH: c.bin, CNI_CACHE_DIR: join(tmp.path, n.name, "cache"), CNIKIT_SOCKET: join(tmp.path, n.name, "run", "cni.sock") });
const inNode = (n: Node, args: string[]) => run(["nsenter", `--net=${n.ns}`, CNIKIT, ...args], { env: env(n) });
const etcdFlags = ["--etcd-endpoints", `http://192.168.${NET}.254:23850`, "--etcd-prefix", key];

/** A pod on node `n`, added through its daemon (the shim finds the node's socket). */
function addPod(n: Node, name: string): Pod {
  const ns = c.ns.add(`${n.name}${name}`);
  const r = run(["nsenter", `--net=${n.ns}`, CNIKIT, "add", "cluster", ns], {
    env: { ...env(n), CNI_CONTAINERID: `${prefix}${n.name}${name}`, CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=ckv;K8S_POD_NAME=${n.name}-${name}` },
  });
  if (r.code !== 0) throw new Error(`pod ${name} on ${n.name}: ${r.stdout} ${r.stderr}`);
  const p = { node: n, name: `ckv/${n.name}-${name}`, ns, ip: (JSON.parse(r.stdout).ips as { address: string }[])[0]!.address.split("/")[0]! };
  pods.push(p);
  return p;
}

const subnetOf = (n: Node): string => {
  const m = /FLANNEL_SUBNET=(\S+)/.exec(readFileSync(n.subnetFile, "utf8"))!;
  const [ip, len] = m[1]!.split("/");
  return `${ip!.replace(/\.1$/, ".0")}/${len}`;
};

beforeAll(async () => {
  tmp = tempDir("ckv-observe");
  c = new Cluster({ prefix, dir: tmp.path, underlayNet: NET, etcdPort: 23850 });
  await c.startEtcd();
  const etcd = await c.client();
  await etcd.put(`${key}/config`).value(JSON.stringify({ Network: "10.97.0.0/16", Backend: { Type: "vxlan", VNI: 7 } }));
  for (let i = 1; i <= 2; i++) {
    const n = c.addNode(i);
    c.startAgent(n, key, ["--healthz", `${n.ip}:${PORT}`, "--cni-cache-dir", join(tmp.path, n.name, "cache")]);
  }
  for (const n of c.nodes) await c.until(`${n.name}'s subnet.env`, () => existsSync(n.subnetFile));
  for (const n of c.nodes) await c.until(`${n.name}'s status page`, async () => (await fetch(`${healthz(n)}/readyz`).catch(() => undefined))?.status === 200);
  for (const n of c.nodes) await c.until(`${n.name}'s route to its peer`, () => c.inNode(n, ["ip", "route", "show", "proto", "210"]).stdout.trim() !== "");
  for (const n of c.nodes) for (const t of ["a", "b"]) addPod(n, t);
}, 90_000);

afterAll(async () => {
  for (const p of pods) inNode(p.node, ["del", "cluster", p.ns]);
  await c?.destroy();
  tmp?.remove();
});

describe("cnikit nodes", () => {
  test("the table lists both nodes with subnet, address, backend, VTEP MAC and lease left; this node marked", () => {
    const [n1, n2] = c.nodes as [Node, Node];
    const r = inNode(n1, ["nodes", ...etcdFlags]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^\s+NAME\s+SUBNET\s+PUBLIC-IP\s+BACKEND\s+VTEP-MAC\s+LEASE-LEFT\s+BGP$/);
    expect(lines).toHaveLength(4);
    const row = (n: Node) => lines.find((l) => l.includes(` ${n.ip} `))!;
    expect(row(n1)).toMatch(new RegExp(`^\\*\\s+${n1.ip}\\s+${subnetOf(n1)}\\s+${n1.ip}\\s+vxlan\\s+([0-9a-f]{2}:){5}[0-9a-f]{2}\\s+(23h|24h)\\s+-$`));
    expect(row(n2)).toMatch(new RegExp(`^\\s+${n2.ip}\\s+${subnetOf(n2)}\\s+${n2.ip}\\s+vxlan\\s`));
    // from node 2, node 2 is this node
    expect(inNode(n2, ["nodes", ...etcdFlags]).stdout.split("\n").find((l) => l.startsWith("*"))).toContain(n2.ip);
  });

  test("--json for scripts; --public-ip names this node", () => {
    const [n1, n2] = c.nodes as [Node, Node];
    const r = run([CNIKIT, "nodes", ...etcdFlags, "--json", "--public-ip", n2.ip]);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { nodes: Record<string, unknown>[] };
    expect(doc.nodes).toHaveLength(2);
    const by = (n: Node) => doc.nodes.find((x) => x.publicIP === n.ip)!;
    expect(by(n1)).toMatchObject({ name: n1.ip, subnet: subnetOf(n1), backend: "vxlan", vni: 7, self: false });
    expect(by(n2)).toMatchObject({ subnet: subnetOf(n2), self: true });
    expect(by(n2).vtepMAC).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(by(n2).leaseTtlSec as number).toBeGreaterThan(86000);
  });

  test("no etcd endpoints: usage, exit 2", () => {
    expect(run([CNIKIT, "nodes"], { env: { ...process.env, CNIKIT_ETCD_ENDPOINTS: "" } }).code).toBe(2);
  });
});

describe("cnikit status and graph on a node", () => {
  test("status lists the node's pods and its daemon", () => {
    const n1 = c.nodes[0]!;
    const r = inNode(n1, ["status", "--agent", `${n1.ip}:${PORT}`]);
    expect(r.code).toBe(0);
    for (const p of pods) (p.node === n1 ? expect(r.stdout) : expect(r.stdout).not).toContain(p.name);
    expect(r.stdout).toMatch(/daemon: up \(cnikit [\d.]+, pid \d+\) at http:\/\/[\d.]+:9102, ready, \d+ request\(s\) in flight, pending removals: 0$/m);
  });

  test("graph --svg names every node and every pod (the other node's from its agent), with the vxlan tunnel", () => {
    const n1 = c.nodes[0]!;
    const file = join(tmp.path, "cluster.svg");
    const r = inNode(n1, ["graph", "--svg", file, ...etcdFlags]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const { root, texts } = parseXml(readFileSync(file, "utf8"));
    expect(root).toBe("svg");
    const all = texts.join("\n");
    expect(all).toContain(`${n1.ip} (this node)`);
    for (const n of c.nodes) expect(all).toContain(subnetOf(n));
    expect(all).toContain(c.nodes[1]!.ip);
    expect(all).toContain("vxlan 7");
    for (const p of pods) {
      expect(all).toContain(p.name);
      expect(all).toContain(p.ip);
    }
    // --no-peers: this node's pods only
    const own = inNode(n1, ["graph", "--dot", "--no-peers", ...etcdFlags]).stdout;
    for (const p of pods) (p.node === n1 ? expect(own) : expect(own).not).toContain(p.name);
  });
});

describe("the agent's endpoints", () => {
  test("/metrics passes promtool check metrics and has the CNI latency histograms and requests by code", async () => {
    const n1 = c.nodes[0]!;
    // one ADD through the daemon that fails with error 2: a bridge config whose mtu is a string
    const conf = join(tmp.path, "bad.d");
    mkdirSync(conf, { recursive: true });
    writeFileSync(join(conf, "bad.conflist"), JSON.stringify({ cniVersion: "1.1.0", name: "bad", plugins: [{ type: "bridge", bridge: `${prefix}x`, mtu: "x", ipam: { type: "host-local", subnet: "10.98.0.0/24" } }] }));
    const bad = run(["nsenter", `--net=${n1.ns}`, CNIKIT, "add", "bad", pods[0]!.ns], { env: { ...env(n1), NETCONFPATH: conf, CNI_CONTAINERID: `${prefix}bad` } });
    expect(JSON.parse(bad.stdout).code).toBe(2);
    const text = await (await fetch(`${healthz(c.nodes[0]!)}/metrics`)).text();
    const file = join(tmp.path, "metrics.txt");
    writeFileSync(file, text);
    const r = run(["sh", "-c", `promtool check metrics < ${file}`]);
    expect(`${r.stdout}${r.stderr}`).toBe("");
    expect(r.code).toBe(0);
    expect(text).toMatch(/^cnikit_cni_request_duration_seconds_count\{plugin="overlay",verb="ADD"\} 2$/m);
    // requests by code: the two ADDs succeeded (0), the bad config failed with 2
    expect(text).toMatch(/^cnikit_cni_requests_total\{plugin="overlay",verb="ADD",code="0"\} 2$/m);
    expect(text).toMatch(/^cnikit_cni_requests_total\{plugin="bridge",verb="ADD",code="2"\} 1$/m);
    expect(text).not.toMatch(/^cnikit_cni_requests_total\{plugin="overlay",verb="ADD",code="[1-9]/m);
    // the lease count is refreshed by the agent's full syncs (every 30 s), the peers by its watch
    expect(text).toMatch(/^cnikit_agent_leases [12]$/m);
    expect(text).toMatch(/^cnikit_agent_peers 1$/m);
    expect(text).toMatch(/^cnikit_agent_routes\{protocol="agent"\} 1$/m);
  });

  test("/api/status: this node's attachments, both nodes, latency", async () => {
    const n1 = c.nodes[0]!;
    const doc = (await (await fetch(`${healthz(n1)}/api/status`)).json()) as { attachments: { podName: string }[]; nodes: { publicIP: string; self: boolean }[]; latency: { plugin: string; verb: string; count: number }[] };
    expect(doc.attachments.map((a) => a.podName).sort()).toEqual(["n1-a", "n1-b"]);
    expect(doc.nodes.map((n) => [n.publicIP, n.self]).sort()).toEqual([[c.nodes[0]!.ip, true], [c.nodes[1]!.ip, false]]);
    expect(doc.latency.find((l) => l.plugin === "overlay" && l.verb === "ADD")?.count).toBe(2);
  });

  test("the status page in headless Chromium lists every pod and node, and updates when a pod is added", async () => {
    const n1 = c.nodes[0]!;
    const page = await openPage(`${healthz(n1)}/ui`);
    try {
      const text = () => page.evaluate<string>("document.body ? document.body.innerText : ''").catch(() => "");
      const waitFor = async (what: string, fn: (t: string) => boolean) => {
        const end = Date.now() + 15_000;
        for (let t = await text(); !fn(t); t = await text()) {
          if (Date.now() > end) throw new Error(`the page never showed ${what}:\n${t}`);
          await Bun.sleep(200);
        }
      };
      const mine = pods.filter((p) => p.node === n1);
      await waitFor("its pods and nodes", (t) => mine.every((p) => t.includes(p.name) && t.includes(p.ip)) && c.nodes.every((n) => t.includes(n.ip) && t.includes(subnetOf(n))));
      // the picture came from graphviz, and the latency chart from the histograms
      const drawn = () => page.evaluate<number>("document.querySelectorAll('#graph svg g.node').length");
      for (const end = Date.now() + 10_000; (await drawn()) < 2 + mine.length && Date.now() < end;) await Bun.sleep(200);
      expect(await drawn()).toBeGreaterThanOrEqual(2 + mine.length);
      expect(await page.evaluate<boolean>("!!document.querySelector('[data-series=\"overlay ADD\"] svg rect')")).toBe(true);
      const added = addPod(n1, "c");
      await waitFor(`the new pod ${added.name}`, (t) => t.includes(added.name) && t.includes(added.ip));
      await Bun.sleep(500);
      const graphNames = await page.evaluate<string>("document.getElementById('graph').textContent");
      expect(graphNames).toContain(added.name);
      // the picture also has the other node's pods, from its agent
      for (const p of pods.filter((x) => x.node !== n1)) expect(graphNames).toContain(p.name);
      const png = await page.screenshot();
      const shot = join(tmp.path, "status-page.png");
      writeFileSync(shot, png);
      expect(Buffer.from(png.subarray(1, 4)).toString()).toBe("PNG");
      expect(png.length).toBeGreaterThan(20_000);
      // `CNIKIT_UPDATE_DOCS=1` refreshes the README's picture
      if (process.env.CNIKIT_UPDATE_DOCS === "1") copyFileSync(shot, resolve(import.meta.dir, "../../../docs/status-page.png"));
    } finally {
      await page.close();
    }
  }, 60_000);
});

