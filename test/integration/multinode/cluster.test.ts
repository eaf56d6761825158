/**
 * Multi-node networking end to end, all inside this test's private namespace: a real etcd on an
 * underlay bridge, three node namespaces each running `cnikit agent`, two pods per node through
 * `overlay`. With vxlan and again with host-gw every pod reaches every other pod; an agent restart
 * keeps its subnet; removing a node's lease removes its routes on the others; with etcd stopped for
 * 10 s pods keep talking and a new pod still gets an address; traffic leaving the cluster network
 * is masqueraded, traffic between pods is not. Dual-stack and IPv6-only networks (flannel's
 * `0.0.0.0-0&<ipv6>` keys) with both backends.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, existsSync } from "node:fs";
import type { Etcd3 } from "etcd3";
import { Cluster, type Node } from "../../support/cluster.ts";
import { assertPrivateNetns, must, ping, runPrefix, tempDir } from "../../support/netns.ts";
import { ask, whoamiServer } from "../../support/tcp.ts";

assertPrivateNetns();

type Pod = { ns: string; ip: string; ip6?: string; node: Node };

const subnetOf = (n: Node): string => {
  const m = /FLANNEL_SUBNET=(\S+)/.exec(readFileSync(n.subnetFile, "utf8"));
  const [ip, len] = m![1]!.split("/");
  return `${ip!.replace(/\.1$/, ".0")}/${len}`;
};
const subnet6Of = (n: Node): string => {
  const m = /FLANNEL_IPV6_SUBNET=(\S+)/.exec(readFileSync(n.subnetFile, "utf8"));
  const [ip, len] = m![1]!.split("/");
  return `${ip!.replace(/::1$/, "::")}/${len}`;
};
const leaseKeyOf = (prefix: string, subnet: string, subnet6?: string) =>
  `${prefix}/subnets/${subnet.replace("/", "-")}${subnet6 ? `&${subnet6.replace("/", "-")}` : ""}`;
type RouteJ = { dst: string; gateway?: string; dev: string; flags: string[] };
const agentRoutes = (c: Cluster, n: Node, family: "-4" | "-6" = "-4") =>
  (JSON.parse(must(["nsenter", `--net=${n.ns}`, "ip", family, "-j", "route", "show", "proto", "210"])) as RouteJ[]);

/** Every pair of pods can ping each other (over IPv6 too when they have it); returns the pairs that cannot. */
function unreachable(pods: Pod[]): string[] {
  const bad: string[] = [];
  for (const a of pods) {
    for (const b of pods) {
      if (a === b) continue;
      if (!ping(a.ns, b.ip)) bad.push(`${a.ip}->${b.ip}`);
      if (b.ip6 && !ping(a.ns, b.ip6)) bad.push(`${a.ip6}->${b.ip6}`);
    }
  }
  return bad;
}

async function bringUp(c: Cluster, prefix: string, backend: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<Etcd3> {
  await c.startEtcd();
  const etcd = await c.client();
  await etcd.put(`${prefix}/config`).value(JSON.stringify({ Network: "10.96.0.0/16", ...extra, Backend: backend }));
  for (let i = 1; i <= 3; i++) c.startAgent(c.addNode(i), prefix);
  for (const n of c.nodes) await c.until(`${n.name}'s subnet.env`, () => existsSync(n.subnetFile));
  const family = extra.EnableIPv4 === false ? "-6" : "-4";
  for (const n of c.nodes) await c.until(`${n.name}'s routes to 2 peers`, () => agentRoutes(c, n, family).length === 2);
  return etcd;
}

function twoPodsEach(c: Cluster): Pod[] {
  const pods: Pod[] = [];
  for (const n of c.nodes) for (const t of ["a", "b"]) pods.push({ ...c.addPod(n, t), node: n });
  return pods;
}

describe("vxlan", () => {
  const prefix = runPrefix("mv");
  // made in beforeAll, so that a run filtered to other tests (-t) makes nothing it will not remove
  let tmp!: ReturnType<typeof tempDir>;
  let c!: Cluster;
  const key = `/${prefix}/network`;
  let etcd: Etcd3;
  let pods: Pod[] = [];

  beforeAll(async () => {
    tmp = tempDir("cluster-vxlan");
    c = new Cluster({ prefix, dir: tmp.path, underlayNet: 77, etcdPort: 23790 });
    etcd = await bringUp(c, key, { Type: "vxlan", VNI: 7 });
    pods = twoPodsEach(c);
  }, 60_000);
  afterAll(async () => {
    await c?.destroy();
    tmp?.remove();
  });

  test("leases carry the public IP and the VTEP; device, MTU and subnet.env are flannel's", async () => {
    const subnets = c.nodes.map(subnetOf);
    expect(new Set(subnets).size).toBe(3);
    for (const [i, n] of c.nodes.entries()) {
      const lease = JSON.parse((await etcd.get(leaseKeyOf(key, subnets[i]!)).string())!);
      const dev = JSON.parse(c.inNode(n, ["ip", "-j", "-d", "link", "show", `${prefix}.7`]).stdout)[0];
      expect(lease).toEqual({ PublicIP: n.ip, BackendType: "vxlan", BackendData: { VNI: 7, VtepMAC: dev.address } });
      expect(dev.mtu).toBe(1450);
      expect(dev.linkinfo.info_data).toMatchObject({ id: 7, port: 8472, local: n.ip, learning: false });
      expect(readFileSync(n.subnetFile, "utf8")).toBe(
        `FLANNEL_NETWORK=10.96.0.0/16\nFLANNEL_SUBNET=${subnets[i]!.replace(".0/", ".1/")}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`,
      );
      // per peer: neighbour, FDB entry and onlink route, pointing at the peer's VTEP and address
      for (const [j, m] of c.nodes.entries()) {
        if (i === j) continue;
        const peerLease = JSON.parse((await etcd.get(leaseKeyOf(key, subnets[j]!)).string())!);
        const r = agentRoutes(c, n).find((x) => x.dst === subnets[j]);
        expect(r).toMatchObject({ gateway: subnets[j]!.replace(/\/.*/, ""), dev: `${prefix}.7` });
        expect(r!.flags).toContain("onlink");
        expect(c.inNode(n, ["ip", "neigh", "show", "dev", `${prefix}.7`]).stdout).toContain(`${subnets[j]!.replace(/\/.*/, "")} lladdr ${peerLease.BackendData.VtepMAC} PERMANENT`);
        expect(c.inNode(n, ["bridge", "fdb", "show", "dev", `${prefix}.7`]).stdout).toContain(`${peerLease.BackendData.VtepMAC} dst ${m.ip} self permanent`);
      }
    }
    for (const p of pods) expect(JSON.parse(c.inNode(p.node, ["nsenter", `--net=${p.ns}`, "ip", "-j", "link", "show", "eth0"]).stdout)[0].mtu).toBe(1450);
  });

  test("every pod reaches every other pod, across nodes", () => {
    expect(pods.length).toBe(6);
    expect(unreachable(pods)).toEqual([]);
  });

  test("pod-to-pod traffic keeps the pod's address; traffic leaving the cluster network is masqueraded", async () => {
    const [a, , b] = pods; // a on n1, b on n2
    const inPod = await whoamiServer(b!.ns, 7001);
    const outside = await whoamiServer("", 7002); // this namespace: etcd's address, outside 10.96/16
    try {
      expect(ask(a!.ns, b!.ip, 7001)).toBe(a!.ip);
      expect(ask(a!.ns, c.etcdIP, 7002)).toBe(a!.node.ip);
    } finally {
      inPod.stop();
      outside.stop();
    }
  });

  test("an agent restart keeps its subnet (its lease, or subnet.env when the lease is gone)", async () => {
    const n1 = c.nodes[0]!;
    const before = subnetOf(n1);
    const routesOn2 = JSON.stringify(agentRoutes(c, c.nodes[1]!));
    await c.stopAgent(n1);
    c.startAgent(n1, key);
    await c.until("the restarted agent to be ready", () => readFileSync(n1.agent!.log, "utf8").includes("agent ready"));
    expect(subnetOf(n1)).toBe(before);
    expect(JSON.stringify(agentRoutes(c, c.nodes[1]!))).toBe(routesOn2);
    expect(agentRoutes(c, n1).length).toBe(2);
    // again with the lease deleted while the agent was down: subnet.env brings the same subnet back
    await c.stopAgent(n1);
    await etcd.delete().key(leaseKeyOf(key, before));
    c.startAgent(n1, key);
    await c.until("the restarted agent to be ready", () => readFileSync(n1.agent!.log, "utf8").includes("agent ready"));
    expect(subnetOf(n1)).toBe(before);
    expect(await etcd.get(leaseKeyOf(key, before)).string()).not.toBeNull();
    await c.until("n2 to route to n1 again", () => agentRoutes(c, c.nodes[1]!).some((r) => r.dst === before));
    expect(unreachable(pods)).toEqual([]);
  }, 60_000);

  test("removing a node's lease removes its routes, neighbours and FDB entries on the others", async () => {
    const n3 = c.nodes[2]!;
    const s3 = subnetOf(n3);
    const lease = JSON.parse((await etcd.get(leaseKeyOf(key, s3)).string())!);
    await c.stopAgent(n3); // a node going away: nobody writes its lease again
    await etcd.delete().key(leaseKeyOf(key, s3));
    for (const n of c.nodes.slice(0, 2)) {
      await c.until(`${n.name} to drop the route to ${s3}`, () => !agentRoutes(c, n).some((r) => r.dst === s3), 5000);
      expect(c.inNode(n, ["ip", "neigh", "show", "dev", `${prefix}.7`]).stdout).not.toContain(lease.BackendData.VtepMAC);
      expect(c.inNode(n, ["bridge", "fdb", "show", "dev", `${prefix}.7`]).stdout).not.toContain(lease.BackendData.VtepMAC);
    }
    const p1 = pods[0]!;
    const p3 = pods[4]!;
    expect(ping(p1.ns, p3.ip)).toBe(false);
    // the node comes back: same subnet, routes everywhere again
    c.startAgent(n3, key);
    for (const n of c.nodes.slice(0, 2)) await c.until(`${n.name} to route to ${s3} again`, () => agentRoutes(c, n).some((r) => r.dst === s3));
    expect(subnetOf(n3)).toBe(s3);
    expect(ping(p1.ns, p3.ip)).toBe(true);
  }, 60_000);

  test("with etcd stopped for 10 s pods keep talking and a new pod gets an address; the agents recover", async () => {
    const routes = c.nodes.map((n) => JSON.stringify(agentRoutes(c, n)));
    await c.stopEtcd();
    const t0 = Date.now();
    const fresh = { ...c.addPod(c.nodes[1]!, "c"), node: c.nodes[1]! };
    expect(fresh.ip.startsWith(subnetOf(c.nodes[1]!).replace(/0\/24$/, ""))).toBe(true);
    const bad: string[] = [];
    while (Date.now() - t0 < 10_000) {
      bad.push(...unreachable([pods[0]!, pods[3]!, pods[5]!, fresh]));
      await Bun.sleep(1000);
    }
    expect(bad).toEqual([]);
    expect(c.nodes.map((n) => JSON.stringify(agentRoutes(c, n)))).toEqual(routes);
    await c.startEtcd();
    // a lease written after the outage reaches every agent (their watches came back)
    const ghost = leaseKeyOf(key, "10.96.200.0/24");
    await etcd.put(ghost).value(JSON.stringify({ PublicIP: "192.168.77.40", BackendType: "vxlan", BackendData: { VNI: 7, VtepMAC: "0a:00:00:00:00:28" } }));
    for (const n of c.nodes) await c.until(`${n.name} to route to the new lease`, () => agentRoutes(c, n).some((r) => r.dst === "10.96.200.0/24"), 8000);
    await etcd.delete().key(ghost);
    for (const n of c.nodes) await c.until(`${n.name} to drop it`, () => !agentRoutes(c, n).some((r) => r.dst === "10.96.200.0/24"));
    expect(unreachable([pods[0]!, pods[3]!, fresh])).toEqual([]);
  }, 60_000);
  test("a watch resumed past a compaction is replaced, after a full read", async () => {
    const n1 = c.nodes[0]!;
    const ghost = leaseKeyOf(key, "10.96.201.0/24");
    process.kill(n1.agent!.pid, "SIGSTOP"); // n1 misses what follows
    try {
      await c.stopEtcd(); // n1's watch stream is cut (it notices when it runs again)
      await c.startEtcd();
      await etcd.put(ghost).value(JSON.stringify({ PublicIP: "192.168.77.41", BackendType: "vxlan", BackendData: { VNI: 7, VtepMAC: "0a:00:00:00:00:29" } }));
      await etcd.put(`${key}/unrelated`).value("x"); // a later revision to compact up to
      const rev = (await etcd.get(ghost).exec()).header.revision;
      await etcd.kv.compact({ revision: rev, physical: true } as never); // n1's resume point is gone
    } finally {
      process.kill(n1.agent!.pid, "SIGCONT");
    }
    await c.until("n1 to route to the lease it missed", () => agentRoutes(c, n1).some((r) => r.dst === "10.96.201.0/24"), 15_000).catch((e) => {
      throw new Error(`${(e as Error).message}; n1's log: ${readFileSync(n1.agent!.log, "utf8").slice(-3000)}`);
    });
    await etcd.delete().key(ghost);
    await c.until("n1 to see it go through its new watch", () => !agentRoutes(c, n1).some((r) => r.dst === "10.96.201.0/24"), 8000);
    expect(readFileSync(n1.agent!.log, "utf8")).toContain("etcd canceled the watch");
  }, 60_000);

  test("/healthz and /metrics", async () => {
    const n2 = c.nodes[1]!;
    await c.stopAgent(n2);
    c.startAgent(n2, key, ["--healthz", "127.0.0.1:9911"]);
    await c.until("n2's agent", () => readFileSync(n2.agent!.log, "utf8").includes("agent ready"));
    const get = (path: string) => c.inNode(n2, [process.execPath, "-e", `const r = await fetch("http://127.0.0.1:9911${path}"); console.log(r.status); console.log(await r.text())`]);
    expect(get("/healthz").stdout).toBe("200\nok\n\n");
    const m = get("/metrics").stdout;
    expect(m).toMatch(/^200\n/);
    expect(m).toContain("cnikit_agent_peers 2\n");
    expect(m).toMatch(/cnikit_agent_leases 3\n/);
    expect(m).toMatch(/cnikit_agent_etcd_errors_total \d+\n/);
    expect(m).toMatch(/cnikit_agent_last_sync_timestamp_seconds \d{10}\n/);
  }, 30_000);
});

/**
 * A three-node cluster on a dual-stack underlay for the enclosing describe: brought up with the
 * network config `extra` before its tests (two pods per node), destroyed after them.
 */
function dualStackSuite(type: string, tag: string, net: number, port: number, extra: Record<string, unknown>) {
  const prefix = runPrefix(tag);
  const s = { prefix, key: `/${prefix}/network`, c: undefined as unknown as Cluster, etcd: undefined as unknown as Etcd3, pods: [] as Pod[] };
  let tmp: ReturnType<typeof tempDir> | undefined;
  beforeAll(async () => {
    tmp = tempDir(`cluster-${tag}-${type}`);
    s.c = new Cluster({ prefix, dir: tmp.path, underlayNet: net, etcdPort: port, dualStack: true });
    s.etcd = await bringUp(s.c, s.key, { Type: type }, extra);
    for (const n of s.c.nodes) await s.c.until(`${n.name}'s IPv6 routes`, () => agentRoutes(s.c, n, "-6").length === 2);
    s.pods = twoPodsEach(s.c); // pinged at once: a new pod must be reachable over IPv6 without delay
  }, 60_000);
  afterAll(async () => {
    await s.c?.destroy();
    tmp?.remove();
  });
  return s;
}

describe("dual-stack", () => {
  for (const [type, tag, net, port] of [["vxlan", "dv", 83, 23798], ["host-gw", "dh", 85, 23802]] as const) {
    describe(type, () => {
      const s = dualStackSuite(type, tag, net, port, { IPv6Network: "fd96::/48" });

      test("leases carry both subnets, both public addresses and (vxlan) both VTEPs; subnet.env has both", async () => {
        for (const n of s.c.nodes) {
          const s4 = subnetOf(n);
          const s6 = subnet6Of(n);
          expect(s6).toMatch(/^fd96:0:0:[0-9a-f]+::\/64$/);
          const lease = JSON.parse((await s.etcd.get(leaseKeyOf(s.key, s4, s6)).string())!);
          expect(lease.PublicIP).toBe(n.ip);
          expect(lease.PublicIPv6).toBe(n.ip6);
          expect(readFileSync(n.subnetFile, "utf8")).toContain(`FLANNEL_IPV6_NETWORK=fd96::/48\nFLANNEL_IPV6_SUBNET=${s6.replace("::/", "::1/")}\n`);
          if (type === "vxlan") {
            const dev6 = JSON.parse(s.c.inNode(n, ["ip", "-j", "-d", "link", "show", `${s.prefix}-v6.1`]).stdout)[0];
            expect(lease.BackendV6Data).toEqual({ VNI: 1, VtepMAC: dev6.address });
            expect(dev6.mtu).toBe(1430);
            expect(dev6.linkinfo.info_data.local6).toBe(n.ip6);
            expect(readFileSync(n.subnetFile, "utf8")).toContain("FLANNEL_MTU=1430\n");
          } else {
            const want = s.c.nodes.filter((m) => m !== n).map((m) => ({ dst: subnet6Of(m), gateway: m.ip6 })).sort((x, y) => x.dst.localeCompare(y.dst));
            expect(agentRoutes(s.c, n, "-6").map((r) => ({ dst: r.dst, gateway: r.gateway })).sort((x, y) => x.dst.localeCompare(y.dst))).toEqual(want);
          }
        }
        for (const p of s.pods) expect(p.ip6).toBeDefined();
      });

      test("every pod reaches every other pod over IPv4 and IPv6", () => {
        expect(unreachable(s.pods)).toEqual([]);
      });

      test("a removed lease takes both families' routes with it", async () => {
        const n3 = s.c.nodes[2]!;
        const [s4, s6] = [subnetOf(n3), subnet6Of(n3)];
        await s.c.stopAgent(n3);
        await s.etcd.delete().key(leaseKeyOf(s.key, s4, s6));
        for (const n of s.c.nodes.slice(0, 2)) {
          await s.c.until(`${n.name} to drop ${s4} and ${s6}`, () => !agentRoutes(s.c, n).some((r) => r.dst === s4) && !agentRoutes(s.c, n, "-6").some((r) => r.dst === s6), 5000);
        }
        s.c.startAgent(n3, s.key);
        for (const n of s.c.nodes.slice(0, 2)) await s.c.until(`${n.name} to route to n3 again`, () => agentRoutes(s.c, n, "-6").some((r) => r.dst === s6));
        expect(subnet6Of(n3)).toBe(s6);
      }, 30_000);
    });
  }
});

describe("IPv6-only", () => {
  for (const [type, tag, net, port] of [["vxlan", "sv", 87, 23806], ["host-gw", "sh", 89, 23810]] as const) {
    describe(type, () => {
      const s = dualStackSuite(type, tag, net, port, { EnableIPv4: false, IPv6Network: "fd97::/48" });
      const v6Key = (n: Node) => `${s.key}/subnets/0.0.0.0-0&${subnet6Of(n).replace("/", "-")}`;

      test("leases are flannel's 0.0.0.0-0&<ipv6> keys; subnet.env and the pods have IPv6 only", async () => {
        for (const n of s.c.nodes) {
          const env = readFileSync(n.subnetFile, "utf8");
          expect(env).not.toContain("FLANNEL_SUBNET=");
          expect(env).not.toContain("FLANNEL_NETWORK=");
          expect(env).toContain(`FLANNEL_IPV6_NETWORK=fd97::/48\nFLANNEL_IPV6_SUBNET=${subnet6Of(n).replace("::/", "::1/")}\n`);
          const lease = JSON.parse((await s.etcd.get(v6Key(n)).string())!);
          expect(lease.PublicIPv6).toBe(n.ip6);
          expect(lease.BackendData).toBeUndefined();
          if (type === "vxlan") {
            const dev6 = JSON.parse(s.c.inNode(n, ["ip", "-j", "link", "show", `${s.prefix}-v6.1`]).stdout)[0];
            expect(lease.BackendV6Data).toEqual({ VNI: 1, VtepMAC: dev6.address });
            expect(s.c.inNode(n, ["ip", "link", "show", `${s.prefix}.1`]).code).not.toBe(0); // no IPv4 device
          }
          expect(agentRoutes(s.c, n).length).toBe(0);
          expect(agentRoutes(s.c, n, "-6").map((r) => r.dst).sort()).toEqual(s.c.nodes.filter((m) => m !== n).map(subnet6Of).sort());
        }
        for (const p of s.pods) {
          expect(p.ip).toBeUndefined();
          expect(p.ip6).toMatch(/^fd97:/);
        }
      });

      test("every pod reaches every other pod over IPv6, across nodes", () => {
        const bad = s.pods.flatMap((a) => s.pods.filter((b) => b !== a && !ping(a.ns, b.ip6!)).map((b) => `${a.ip6}->${b.ip6}`));
        expect(bad).toEqual([]);
      });

      test("an agent restart keeps its IPv6 subnet; a removed lease takes its routes with it", async () => {
        const n3 = s.c.nodes[2]!;
        const s6 = subnet6Of(n3);
        await s.c.stopAgent(n3);
        s.c.startAgent(n3, s.key);
        await s.c.until("the restarted agent to be ready", () => readFileSync(n3.agent!.log, "utf8").includes("agent ready"));
        expect(readFileSync(n3.agent!.log, "utf8")).toContain("reusing our lease");
        expect(subnet6Of(n3)).toBe(s6);
        await s.c.stopAgent(n3);
        await s.etcd.delete().key(v6Key(n3));
        for (const n of s.c.nodes.slice(0, 2)) await s.c.until(`${n.name} to drop ${s6}`, () => !agentRoutes(s.c, n, "-6").some((r) => r.dst === s6), 5000);
        s.c.startAgent(n3, s.key);
        for (const n of s.c.nodes.slice(0, 2)) await s.c.until(`${n.name} to route to n3 again`, () => agentRoutes(s.c, n, "-6").some((r) => r.dst === s6));
        expect(subnet6Of(n3)).toBe(s6); // taken again from its subnet.env
        const bad = s.pods.flatMap((a) => s.pods.filter((b) => b !== a && !ping(a.ns, b.ip6!)).map((b) => `${a.ip6}->${b.ip6}`));
        expect(bad).toEqual([]);
      }, 60_000);
    });
  }
});

describe("host-gw", () => {
  const prefix = runPrefix("mh");
  let tmp!: ReturnType<typeof tempDir>;
  let c!: Cluster;
  const key = `/${prefix}/network`;
  let pods: Pod[] = [];
  let etcd: Etcd3;

  beforeAll(async () => {
    tmp = tempDir("cluster-hostgw");
    c = new Cluster({ prefix, dir: tmp.path, underlayNet: 78, etcdPort: 23794 });
    etcd = await bringUp(c, key, { Type: "host-gw" });
    pods = twoPodsEach(c);
  }, 60_000);
  afterAll(async () => {
    await c?.destroy();
    tmp?.remove();
  });

  test("routes go through the peers' underlay addresses, the MTU is the underlay's", () => {
    for (const [i, n] of c.nodes.entries()) {
      const routes = agentRoutes(c, n);
      const want = c.nodes.filter((_, j) => j !== i).map((m) => ({ dst: subnetOf(m), gateway: m.ip, dev: n.dev }));
      expect(routes.map((r) => ({ dst: r.dst, gateway: r.gateway, dev: r.dev })).sort((x, y) => x.dst.localeCompare(y.dst))).toEqual(
        want.sort((x, y) => x.dst.localeCompare(y.dst)),
      );
      expect(readFileSync(n.subnetFile, "utf8")).toContain("FLANNEL_MTU=1500\n");
    }
  });

  test("every pod reaches every other pod, across nodes", () => {
    expect(unreachable(pods)).toEqual([]);
  });

  test("a node that dies: its lease expires and the others drop its routes", async () => {
    const n3 = c.nodes[2]!;
    const s3 = subnetOf(n3);
    await c.stopAgent(n3);
    c.startAgent(n3, key, ["--lease-ttl", "10"]);
    await c.until("n3's agent", () => readFileSync(n3.agent!.log, "utf8").includes("agent ready"));
    process.kill(n3.agent!.pid, "SIGKILL"); // no goodbye: only the lease's TTL tells the others
    await n3.agent!.proc.exited;
    n3.agent = undefined;
    const t0 = Date.now();
    for (const n of c.nodes.slice(0, 2)) await c.until(`${n.name} to drop ${s3}`, () => !agentRoutes(c, n).some((r) => r.dst === s3), 20_000);
    expect(Date.now() - t0).toBeGreaterThan(3000); // it was the expiry, not something else
    expect(await etcd.get(leaseKeyOf(key, s3)).string()).toBeNull();
  }, 40_000);
});
