/**
 * The eBPF datapath with DirectRouting (flannel's key, Cilium's native routing): two node
 * namespaces on one underlay L2 segment, a real etcd, `cnikit agent` with
 * `"Backend": {"Type": "vxlan", "Datapath": "ebpf", "DirectRouting": true}`, two pods per node
 * through the overlay plugin's `"datapath": "ebpf"`. A peer on the underlay subnet is marked
 * direct in the remotes map: pods reach its pods through `bpf_redirect_neigh` out of the underlay
 * device (no vxlan datagram at all), its pods' frames arrive on our underlay device and the
 * underlay program puts them straight into our pods; the node's own traffic takes a plain route
 * through the peer's address. A lease whose address is off the underlay subnet still goes through
 * the tunnel. An agent restart keeps it all; an agent restarted without DirectRouting takes its
 * underlay program away and tunnels again, and pods still reach each other.
 *
 * Everything runs in this test's private network namespace; the pins live on a bpffs in a mount
 * namespace of this test's own. Names carry the prefix "ckdr" and a run id.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { BIG_TCP_SIZE, bigTcpRefusal } from "../../../src/net/big-tcp.ts";
import { getLink } from "../../../src/net/link.ts";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import type { Cluster, Node } from "../../support/cluster.ts";
import { EbpfCluster } from "../../support/ebpf-cluster.ts";
import { assertPrivateNetns, ping, runPrefix } from "../../support/netns.ts";
import { ask, iperf3Throughput, whoamiServer } from "../../support/tcp.ts";

assertPrivateNetns();

type Pod = { ns: string; ip: string; node: Node };

const VNI = 4;
const prefix = runPrefix("dr");
const key = `/${prefix}/network`;
const config = (direct: boolean, big = false) => ({ Network: "10.97.0.0/16", Backend: { Type: "vxlan", VNI, Datapath: "ebpf", DirectRouting: direct, ...(big ? { BigTCP: true } : {}) } });
let ec!: EbpfCluster;
let c!: Cluster;
const pods: Pod[] = [];

const report = (n: Node) => ec.report(n);
const net = (n: Node) => ec.net(n)!;
const counter = (n: Node, k: string) => ec.counter(n, k);
const counters = (n: Node) => Object.fromEntries(["podToRemote", "podToRemoteDirect", "tunnelToLocal", "directToLocal"].map((k) => [k, counter(n, k)]));
const subnetOf = (n: Node) => ec.subnetOf(n);
const ifindex = (n: Node, dev: string): number => JSON.parse(c.inNode(n, ["ip", "-j", "link", "show", dev]).stdout)[0].ifindex;
/** A device's IPv4 GSO/GRO maximum sizes and its TSO maximum, as the kernel reports them. */
function gso(ns: string, dev: string): { gso?: number; gro?: number; tso?: number } {
  const conn = NetlinkConn.open({ netns: ns });
  try {
    const l = getLink(conn, dev);
    return { gso: l.raw.gsoIPv4MaxSize, gro: l.raw.groIPv4MaxSize, tso: l.raw.tsoMaxSize };
  } finally {
    conn.close();
  }
}
const agentRoutes = (n: Node) => c.inNode(n, ["ip", "route", "show", "proto", "210"]).stdout.trim().split("\n").filter(Boolean);

beforeAll(async () => {
  ec = await EbpfCluster.start({ prefix, tag: "ebpf-direct", underlayNet: 79, etcdPort: 23797, key, nodes: 2, config: config(true) });
  c = ec.c;
  for (const n of c.nodes) await c.until(`${n.name}'s map of the other node`, () => ec.net(n)?.remotes.length === 1);
  for (const n of c.nodes) for (const t of ["a", "b"]) pods.push({ ...c.addPod(n, t), node: n });
}, 90_000);

afterAll(async () => {
  await ec?.destroy();
});

describe("eBPF datapath with DirectRouting", () => {
  test("a peer on the underlay subnet: direct in the map, a plain route through its address, the underlay program on our underlay device", () => {
    for (const [i, n] of c.nodes.entries()) {
      const peer = c.nodes[1 - i]!;
      const r = net(n);
      expect(r.remotes).toEqual([{ subnet: subnetOf(peer), remote: peer.ip, vni: VNI, direct: true }]);
      expect(r.underlayIfindex).toBe(ifindex(n, n.dev));
      expect(report(n).programs.map((p) => `${p.ifname} ${p.progName}`).sort()).toContain(`${n.dev} cnikit_underlay`);
      expect(agentRoutes(n)).toEqual([`${subnetOf(peer)} via ${peer.ip} dev ${n.dev}`]);
      // the underlay program has a priority of its own on the device's ingress
      expect(c.inNode(n, ["tc", "filter", "show", "dev", n.dev, "ingress"]).stdout).toMatch(/pref 193 bpf .*cnikit-underlay/);
    }
  });

  test("pods reach each other across the nodes natively (no vxlan datagram), on a node through redirects", () => {
    const before = c.nodes.map(counters);
    const bad: string[] = [];
    for (const a of pods) for (const b of pods) if (a !== b && !ping(a.ns, b.ip)) bad.push(`${a.ip}->${b.ip}`);
    expect(bad).toEqual([]);
    for (const [i, n] of c.nodes.entries()) {
      const now = counters(n);
      expect(now.podToRemoteDirect).toBeGreaterThan(before[i]!.podToRemoteDirect!);
      expect(now.directToLocal).toBeGreaterThan(before[i]!.directToLocal!);
      expect(now.podToRemote).toBe(before[i]!.podToRemote!);
      expect(now.tunnelToLocal).toBe(before[i]!.tunnelToLocal!);
    }
  });

  test("TCP across the nodes keeps the pod's address; a node reaches the other node's pods from its underlay address (through that node's stack)", async () => {
    const [a, , b] = pods; // a on n1, b on n2
    const srv = await whoamiServer(b!.ns, 7301);
    const direct = counter(b!.node, "directToLocal");
    try {
      expect(ask(a!.node.ns, b!.ip, 7301)).toBe(a!.node.ip);
      expect(counter(b!.node, "directToLocal")).toBe(direct);
      expect(ask(a!.ns, b!.ip, 7301)).toBe(a!.ip);
      expect(counter(b!.node, "directToLocal")).toBeGreaterThan(direct);
    } finally {
      srv.stop();
    }
    expect(c.inNode(b!.node, ["ping", "-c", "1", "-W", "2", a!.ip]).code).toBe(0);
    expect(c.inNode(b!.node, ["ping", "-c", "1", "-W", "2", b!.ip]).code).toBe(0);
    expect(ping(a!.ns, b!.node.ip)).toBe(true);
  });

  test("a lease whose address is off the underlay subnet still goes through the tunnel", async () => {
    const fake = `${key}/subnets/10.97.200.0-24`;
    await ec.etcd.put(fake).value(JSON.stringify({ PublicIP: "172.31.9.9", BackendType: "vxlan", BackendData: { VNI, VtepMAC: "0a:00:00:00:00:51" } }));
    try {
      for (const n of c.nodes) await c.until(`${n.name} to tunnel 10.97.200.0/24`, () => net(n).remotes.some((r) => r.subnet === "10.97.200.0/24"));
      for (const n of c.nodes) {
        expect(net(n).remotes.find((r) => r.subnet === "10.97.200.0/24")).toEqual({ subnet: "10.97.200.0/24", remote: "172.31.9.9", vni: VNI });
        expect(agentRoutes(n).find((r) => r.startsWith("10.97.200.0/24 "))).toContain(`encap ip id ${VNI} src 0.0.0.0 dst 172.31.9.9`);
      }
    } finally {
      await ec.etcd.delete().key(fake);
    }
    for (const n of c.nodes) await c.until(`${n.name} to forget 10.97.200.0/24`, () => net(n).remotes.length === 1 && agentRoutes(n).length === 1);
  });

  test("an agent restart keeps the direct entries, routes and program, and traffic flowing", async () => {
    const [a, , b] = pods;
    const n1 = c.nodes[0]!;
    const was = { remotes: JSON.stringify(net(n1).remotes), routes: agentRoutes(n1), progs: JSON.stringify(report(n1).programs) };
    const pinger = Bun.spawn(["nsenter", `--net=${a!.ns}`, "ping", "-c", "40", "-i", "0.1", "-W", "1", b!.ip], { stdout: "pipe", stderr: "ignore" });
    await Bun.sleep(300);
    await ec.restartAgent(n1);
    await pinger.exited;
    const received = Number(/(\d+) received/.exec(await new Response(pinger.stdout).text())?.[1] ?? 0);
    expect(received).toBeGreaterThanOrEqual(38);
    expect(JSON.stringify(net(n1).remotes)).toBe(was.remotes);
    expect(agentRoutes(n1)).toEqual(was.routes);
    expect(JSON.stringify(report(n1).programs)).toBe(was.progs);
  });

  test("BigTCP: the agent raises the underlay's IPv4 GSO size and offers it in subnet.env; new pods' veths take it; old and new pods talk; a tunnelled peer is warned of once", async () => {
    await ec.etcd.put(`${key}/config`).value(JSON.stringify(config(true, true)));
    for (const n of c.nodes) await ec.restartAgent(n);
    for (const n of c.nodes) {
      expect(readFileSync(n.subnetFile, "utf8")).toContain(`CNIKIT_BIG_TCP=${BIG_TCP_SIZE}\n`);
      expect(gso(n.ns, n.dev)).toMatchObject({ gso: BIG_TCP_SIZE, gro: BIG_TCP_SIZE });
      // the vxlan device cannot: why BigTCP goes only with DirectRouting
      const conn = NetlinkConn.open({ netns: n.ns });
      try {
        expect(bigTcpRefusal(conn, `${prefix}.${VNI}`)).toMatch(/takes TSO frames of at most 65536 bytes/);
      } finally {
        conn.close();
      }
    }
    const big = c.nodes.map((n) => ({ ...c.addPod(n, "c"), node: n }));
    for (const p of big) {
      expect(gso(p.ns, "eth0")).toMatchObject({ gso: BIG_TCP_SIZE, gro: BIG_TCP_SIZE });
      const host = net(p.node).endpoints.find((e) => e.ip === p.ip) as { ifname?: string } | undefined;
      expect(host?.ifname).toBeTruthy();
      expect(gso(p.node.ns, host!.ifname!)).toMatchObject({ gso: BIG_TCP_SIZE, gro: BIG_TCP_SIZE });
    }
    // an older pod keeps 64 KiB packets
    expect(gso(pods[0]!.ns, "eth0").gso).toBe(65536);
    const [x, y] = big as [Pod, Pod];
    expect(await iperf3Throughput(x.ns, y.ns, y.ip, 7310, 1000)).toBeGreaterThan(0);
    expect(await iperf3Throughput(pods[1]!.ns, x.ns, x.ip, 7311, 1000)).toBeGreaterThan(0);
    const bad: string[] = [];
    for (const a of [...pods, ...big]) for (const b of [...pods, ...big]) if (a !== b && !ping(a.ns, b.ip)) bad.push(`${a.ip}->${b.ip}`);
    expect(bad).toEqual([]);
    pods.push(...big);
    // a peer off the underlay subnet is tunnelled, where BIG TCP packets get cut up: the agent says so, once
    const fake = `${key}/subnets/10.97.201.0-24`;
    const warning = "BigTCP: 10.97.201.0/24 is tunnelled";
    expect(c.nodes.map((n) => readFileSync(n.agent!.log, "utf8").includes(warning))).toEqual([false, false]);
    await ec.etcd.put(fake).value(JSON.stringify({ PublicIP: "172.31.9.10", BackendType: "vxlan", BackendData: { VNI, VtepMAC: "0a:00:00:00:00:52" } }));
    try {
      for (const n of c.nodes) await c.until(`${n.name} to tunnel 10.97.201.0/24`, () => net(n).remotes.some((r) => r.subnet === "10.97.201.0/24"));
      for (const n of c.nodes) await c.until(`${n.name}'s agent to warn of 10.97.201.0/24`, () => readFileSync(n.agent!.log, "utf8").includes(warning));
    } finally {
      await ec.etcd.delete().key(fake);
    }
    for (const n of c.nodes) await c.until(`${n.name} to forget 10.97.201.0/24`, () => !net(n).remotes.some((r) => r.subnet === "10.97.201.0/24"));
    for (const n of c.nodes) expect(readFileSync(n.agent!.log, "utf8").split(warning).length - 1).toBe(1);
  });

  test("restarted without DirectRouting: the underlay program goes, the peer is tunnelled, pods still reach each other", async () => {
    const n1 = c.nodes[0]!;
    const n2 = c.nodes[1]!;
    await ec.etcd.put(`${key}/config`).value(JSON.stringify(config(false)));
    await ec.restartAgent(n1);
    const r = net(n1);
    expect(r.underlayIfindex).toBe(0);
    expect(r.remotes).toEqual([{ subnet: subnetOf(n2), remote: n2.ip, vni: VNI }]);
    expect(report(n1).programs.map((p) => p.progName)).not.toContain("cnikit_underlay");
    expect(c.inNode(n1, ["tc", "filter", "show", "dev", n1.dev, "ingress"]).stdout).toBe("");
    expect(agentRoutes(n1)[0]).toContain(`encap ip id ${VNI} src 0.0.0.0 dst ${n2.ip}`);
    // n2 still routes natively to n1 (the kernel forwards to the pod there); n1 tunnels back
    const before = counters(n1);
    const bad: string[] = [];
    for (const a of pods) for (const b of pods) if (a.node !== b.node && !ping(a.ns, b.ip)) bad.push(`${a.ip}->${b.ip}`);
    expect(bad).toEqual([]);
    expect(counters(n1).podToRemote).toBeGreaterThan(before.podToRemote!);
    expect(counters(n1).directToLocal).toBe(before.directToLocal!);
  });
});
