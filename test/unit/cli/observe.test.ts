/**
 * `cnikit status` / `nodes` / `graph` without a kernel: attachments read from cache files as cnikit
 * and Go's libcni write them, the tables, the daemon state when nothing answers, the DOT picture,
 * and the metrics parser the status page uses.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { statusURLOf } from "../../../src/agent/agent.ts";
import { buildDot, podLabel } from "../../../src/agent/graph.ts";
import { decodeLease, encodeLease } from "../../../src/agent/lease.ts";
import { latencySeries, parseMetrics, withBgpStates, type NodeInfo } from "../../../src/agent/status-data.ts";
import { formatAge, listAttachments } from "../../../src/libcni/attachments.ts";
import { writeCache } from "../../../src/libcni/cache.ts";
import { bgpPeersTable, nodesTable } from "../../../src/cli/nodes.ts";
import { attachmentsTable, describeDaemon, queryDaemon } from "../../../src/cli/status.ts";

const root = mkdtempSync(join(tmpdir(), "cnikit-ckv-observe-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const CONF = JSON.stringify({ cniVersion: "1.1.0", name: "podnet", plugins: [{ type: "bridge", bridge: "ckvbr9", ipam: { type: "host-local" } }, { type: "portmap", capabilities: { portMappings: true } }] });

function cacheWithTwo(): string {
  const dir = join(root, "cache1");
  writeCache(dir, {
    network: "podnet",
    containerId: "abc123",
    ifName: "eth0",
    netns: "/run/netns/ckvpod1",
    config: CONF,
    cniArgs: [["IgnoreUnknown", "1"], ["K8S_POD_NAMESPACE", "shop"], ["K8S_POD_NAME", "web-0"]],
    result: {
      cniVersion: "1.1.0",
      interfaces: [{ name: "ckvbr9", mac: "02:00:00:00:00:01" }, { name: "veth1" }, { name: "eth0", mac: "02:00:00:00:00:02", sandbox: "/run/netns/ckvpod1" }],
      ips: [{ address: "10.9.0.2/24", gateway: "10.9.0.1", interface: 2 }],
    },
  });
  // as Go's libcni (1.x) writes it: a 0.4.0 result, config bytes base64, no netns on old versions
  mkdirSync(join(dir, "results"), { recursive: true });
  writeFileSync(
    join(dir, "results", "flannel-def456-eth1"),
    JSON.stringify({
      kind: "cniCacheV1",
      containerId: "def456",
      config: Buffer.from(JSON.stringify({ cniVersion: "0.4.0", name: "flannel", type: "overlay", delegate: { bridge: "ckvcni0" } })).toString("base64"),
      ifName: "eth1",
      networkName: "flannel",
      result: { cniVersion: "0.4.0", interfaces: [{ name: "eth1", mac: "0a:00:00:00:00:03", sandbox: "/proc/1/ns/net" }], ips: [{ version: "4", address: "10.244.3.4/24", interface: 0 }] },
    }),
  );
  // a foreign file is skipped, as libcni skips it
  writeFileSync(join(dir, "results", "junk"), "not json");
  const old = (Date.now() - 3.5 * 3600 * 1000) / 1000;
  utimesSync(join(dir, "results", "flannel-def456-eth1"), old, old);
  return dir;
}

describe("attachments from the result cache", () => {
  test("cnikit's and Go libcni's entries, oldest first, with pod, addresses, MAC, chain and bridge", () => {
    const list = listAttachments(cacheWithTwo());
    expect(list.map((a) => a.containerId)).toEqual(["def456", "abc123"]);
    const [go, mine] = list as [(typeof list)[0], (typeof list)[0]];
    expect(mine).toMatchObject({ network: "podnet", podName: "web-0", podNamespace: "shop", netns: "/run/netns/ckvpod1", ifName: "eth0", addresses: ["10.9.0.2/24"], gateways: ["10.9.0.1"], mac: "02:00:00:00:00:02", plugins: ["bridge", "portmap"], bridge: "ckvbr9", hostInterfaces: ["ckvbr9", "veth1"] });
    expect(go).toMatchObject({ network: "flannel", ifName: "eth1", netns: "", addresses: ["10.244.3.4/24"], mac: "0a:00:00:00:00:03", plugins: ["overlay"], bridge: "ckvcni0" });
    expect(go.podName).toBeUndefined();
  });

  test("a missing cache directory is no attachments", () => {
    expect(listAttachments(join(root, "nope"))).toEqual([]);
  });

  test("the table has one row per attachment and shortens long container ids", () => {
    const now = Date.now();
    const list = listAttachments(cacheWithTwo());
    list.push({ ...list[1]!, containerId: "cnitool-0123456789abcdef0123" });
    const t = attachmentsTable(list, now).split("\n");
    expect(t[0]).toMatch(/^NETWORK\s+POD\s+CONTAINER\s+NETNS\s+IFNAME\s+ADDRESSES\s+MAC\s+PLUGINS\s+AGE$/);
    expect(t).toHaveLength(5);
    expect(t[2]).toMatch(/^flannel\s+-\s+def456\s+-\s+eth1\s+10\.244\.3\.4\/24\s+0a:00:00:00:00:03\s+overlay\s+3h$/);
    expect(t[3]).toContain("shop/web-0");
    expect(t[4]).toContain("cnitool-01234...");
    expect(attachmentsTable(list, now, true)).toContain("cnitool-0123456789abcdef0123");
  });

  test("ages", () => {
    expect([formatAge(5000), formatAge(600_000), formatAge(3 * 3600_000), formatAge(5 * 86400_000)]).toEqual(["5s", "10m", "3h", "5d"]);
  });
});

describe("the daemon's state", () => {
  test("nothing on the socket: not running", async () => {
    const d = await queryDaemon({ socket: join(root, "no.sock") });
    expect(d.running).toBe(false);
    expect(describeDaemon(d)).toStartWith("daemon: not running (no answer on ");
  });

  test("nothing at the agent's address: not running", async () => {
    const d = await queryDaemon({ socket: join(root, "no.sock"), agent: "127.0.0.1:1", timeoutMs: 500 });
    expect(d).toMatchObject({ running: false, via: "http://127.0.0.1:1" });
  });

  test("an agent's /api/status: version, in flight, pending removals", async () => {
    const srv = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => Response.json({ daemon: { version: "9.9.9", pid: 42, ready: true, inFlight: 3, uptimeSec: 1 } }) });
    try {
      const d = await queryDaemon({ socket: join(root, "no.sock"), agent: `127.0.0.1:${srv.port}` });
      expect(d).toMatchObject({ running: true, version: "9.9.9", pid: 42, ready: true, inFlight: 3 });
      expect(describeDaemon(d)).toBe(`daemon: up (cnikit 9.9.9, pid 42) at http://127.0.0.1:${srv.port}, ready, 3 request(s) in flight, pending removals: n/a`);
    } finally {
      srv.stop(true);
    }
  });
});

const NODES: NodeInfo[] = [
  { name: "192.168.5.1", key: "/p/subnets/10.96.1.0-24", subnet: "10.96.1.0/24", publicIP: "192.168.5.1", backend: "vxlan", vni: 7, vtepMAC: "aa:00:00:00:00:01", leaseTtlSec: 86000, self: true },
  { name: "192.168.5.2", key: "/p/subnets/10.96.2.0-24", subnet: "10.96.2.0/24", publicIP: "192.168.5.2", backend: "vxlan", vni: 7, vtepMAC: "aa:00:00:00:00:02", leaseTtlSec: 50, self: false },
];

describe("nodes", () => {
  test("table marks this node", () => {
    const t = nodesTable(NODES).split("\n");
    expect(t[0]).toMatch(/^\s+NAME\s+SUBNET\s+PUBLIC-IP\s+BACKEND\s+VTEP-MAC\s+LEASE-LEFT\s+BGP$/);
    expect(t[2]).toMatch(/^\*\s+192\.168\.5\.1\s+10\.96\.1\.0\/24\s+192\.168\.5\.1\s+vxlan\s+aa:00:00:00:00:01\s+23h\s+-$/);
    expect(t[3]).toMatch(/^\s+192\.168\.5\.2\s.*\s50s\s+-$/);
  });

  test("bgp: each node's session state as BIRD names it, 'no session', 'unknown' without BIRD; other peers apart", () => {
    const bgpNode = (ip: string, self = false): NodeInfo => ({ name: ip, key: `k${ip}`, subnet: `10.9.${ip.split(".")[3]}.0/24`, publicIP: ip, backend: "bgp", bgp: "unknown", self });
    const nodes = [bgpNode("192.168.8.1", true), bgpNode("192.168.8.2"), bgpNode("192.168.8.3"), bgpNode("192.168.8.4")];
    const s = (peerIP: string, state: string, kind = "mesh") => ({ name: `${kind}_${peerIP.replaceAll(".", "_")}`, kind, peerIP, state, up: state === "Established" });
    const others = withBgpStates(nodes, [s("192.168.8.2", "Established"), s("192.168.8.3", "Active"), s("192.168.8.253", "Established", "rr")]);
    expect(nodes.map((n) => n.bgp)).toEqual([undefined, "Established", "Active", "no session"]);
    expect(others.map((o) => o.peerIP)).toEqual(["192.168.8.253"]);
    const t = nodesTable(nodes).split("\n");
    expect(t[2]).toMatch(/^\*\s+192\.168\.8\.1\s.*\sbgp\s+-\s+-\s+-$/);
    expect(t[3]).toMatch(/\sEstablished$/);
    expect(t[5]).toMatch(/\sno session$/);
    expect(bgpPeersTable(others).split("\n")[2]).toMatch(/^192\.168\.8\.253\s+route reflector\s+Established$/);
    // BIRD could not be asked
    expect(withBgpStates(nodes, undefined)).toEqual([]);
    expect(nodes.map((n) => n.bgp)).toEqual([undefined, "unknown", "unknown", "unknown"]);
  });
});

describe("graph", () => {
  test("DOT names every node, bridge and pod, and the tunnel between nodes", () => {
    const dot = buildDot({ nodes: NODES, attachments: listAttachments(cacheWithTwo()), host: "ignored" });
    for (const s of ["192.168.5.1 (this node)", "192.168.5.2", "10.96.2.0/24", "bridge ckvbr9", "bridge ckvcni0", "shop/web-0", "10.9.0.2", "def456", "vxlan 7"]) expect(dot).toContain(s);
    expect(dot).toContain('"node:/p/subnets/10.96.1.0-24" -> "node:/p/subnets/10.96.2.0-24"');
    expect(dot).not.toContain("ignored");
  });

  test("another node's pods, as its agent told them, are drawn in its box with ids of their own", () => {
    const mine = listAttachments(cacheWithTwo());
    const theirs = mine.map((a) => ({ ...a, podName: `${a.podName ?? "x"}-n2`, addresses: ["10.96.2.7/24"] }));
    const nodes = NODES.map((n) => (n.self ? n : { ...n, attachments: theirs }));
    const dot = buildDot({ nodes, attachments: mine, host: "h" });
    for (const s of ["shop/web-0", "shop/web-0-n2", "10.96.2.7"]) expect(dot).toContain(s);
    // the same container id on both nodes still makes two pods and two bridges
    const ids = [...dot.matchAll(/^\s+"([^"]*pod:[^"]*)" \[/gm)].map((m) => m[1]);
    expect(new Set(ids).size).toBe(4);
    expect([...dot.matchAll(/^\s+"([^"]*bridge:ckvbr9)" \[/gm)]).toHaveLength(2);
    // a node whose agent did not answer says so
    expect(buildDot({ nodes: NODES.map((n) => (n.self ? n : { ...n, attachmentsError: "x" })), attachments: [], host: "h" })).toContain("pods: its agent did not answer");
  });

  test("a lease names its agent's status URL unless --healthz is on loopback", () => {
    expect(statusURLOf({ host: "192.168.5.1", port: 9102 }, "192.168.5.1")).toBe("http://192.168.5.1:9102");
    expect(statusURLOf({ host: "0.0.0.0", port: 9102 }, "192.168.5.1")).toBe("http://192.168.5.1:9102");
    expect(statusURLOf({ host: "::", port: 9102 }, "fd00::1")).toBe("http://[fd00::1]:9102");
    expect(statusURLOf({ host: "fd00::5", port: 1 }, "192.168.5.1")).toBe("http://[fd00::5]:1");
    for (const host of ["127.0.0.1", "127.0.0.53", "::1", "localhost"]) expect(statusURLOf({ host, port: 9102 }, "192.168.5.1")).toBeUndefined();
    expect(statusURLOf(undefined, "192.168.5.1")).toBeUndefined();
    const attrs = { publicIP: "192.168.5.1", backendType: "vxlan", statusURL: "http://192.168.5.1:9102" };
    expect(JSON.parse(encodeLease(attrs)).CnikitStatusURL).toBe("http://192.168.5.1:9102");
    expect(decodeLease(encodeLease(attrs))).toEqual(attrs);
    // anything but a bare http(s) origin is ignored
    expect(decodeLease(JSON.stringify({ PublicIP: "192.168.5.1", CnikitStatusURL: "file:///etc/passwd" })).statusURL).toBeUndefined();
    expect(decodeLease(JSON.stringify({ PublicIP: "192.168.5.1", CnikitStatusURL: "http://a/b" })).statusURL).toBeUndefined();
  });

  test("without etcd: this host alone; quotes in names are escaped", () => {
    const list = listAttachments(cacheWithTwo());
    list[0]!.podName = 'we"ird';
    const dot = buildDot({ attachments: list, host: "ckvhost" });
    expect(dot).toContain("ckvhost (this node)");
    expect(dot).toContain('we\\"ird');
    expect(podLabel({ ...list[1]!, podName: undefined, containerId: "x".repeat(64) } as never)).toBe("x".repeat(16));
  });
});

describe("metrics parser", () => {
  test("histogram series by plugin and verb, unlabelled samples", () => {
    const text = [
      "# HELP cnikit_cni_request_duration_seconds x",
      "# TYPE cnikit_cni_request_duration_seconds histogram",
      'cnikit_cni_request_duration_seconds_bucket{plugin="bridge",verb="ADD",le="0.005"} 1',
      'cnikit_cni_request_duration_seconds_bucket{plugin="bridge",verb="ADD",le="+Inf"} 2',
      'cnikit_cni_request_duration_seconds_sum{plugin="bridge",verb="ADD"} 0.5',
      'cnikit_cni_request_duration_seconds_count{plugin="bridge",verb="ADD"} 2',
      'weird{a="q\\"x"} 1',
      "cnikit_cni_requests_in_flight 0",
    ].join("\n");
    const samples = parseMetrics(text);
    expect(samples.find((s) => s.name === "weird")!.labels.a).toBe('q"x');
    expect(latencySeries(samples)).toEqual([{ plugin: "bridge", verb: "ADD", buckets: [[0.005, 1], [Infinity, 2]], sum: 0.5, count: 2 }]);
  });
});
