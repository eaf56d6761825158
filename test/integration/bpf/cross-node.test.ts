// Two "nodes" (namespaces joined by an underlay veth), each with a collect-metadata vxlan device
// and a pod on a veth without a bridge. The pod program sends traffic for the other node's subnet
// into the vxlan device with the tunnel key from the remotes LPM map; the vxlan program on the other
// side delivers it straight into the pod. A probe program on the underlay checks the outer packet:
// UDP to port 8472, to the remote node's address, with the VNI from the map.
// Runs in a private network namespace (npm test: `unshare -n`), names prefixed ckf.
import { assertPrivateNetns, must, Namespaces, run, runPrefix } from "../../support/netns.ts";
assertPrivateNetns();

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Asm, R0, R1, R6, R7, R8 } from "../../../src/bpf/asm.ts";
import { Datapath } from "../../../src/bpf/datapath.ts";
import { BpfMap, MapType } from "../../../src/bpf/map.ts";
import { type BpfProgram, loadProgram } from "../../../src/bpf/prog.ts";
import { attachTc, detachTc, listTc } from "../../../src/bpf/tc.ts";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { ask, whoamiServer } from "../../support/tcp.ts";
import { countHit } from "../../unit/bpf/packets.ts";

const P = runPrefix("fb");
const GW = "169.254.1.1";
const VNI = 7;
const ns = new Namespaces(P);

interface Node {
  name: string;
  conn: NetlinkConn;
  dp: Datapath;
  underlay: string;
  subnet: string;
  vxlan: number;
  pod: { ns: string; ip: string; ifindex: number; podMac: string; hostMac: string };
}
const nodes: Node[] = [];
let probeMap: BpfMap | undefined;
let probe: BpfProgram | undefined;

const ipj = (netns: string, args: string[]) => JSON.parse(must(["ip", "-n", netns, "-j", ...args]))[0];

/** Counts, on the underlay's ingress, VXLAN packets to `dst`:8472 carrying `vni`. */
function probeProgram(dst: string, vni: number): Asm {
  const d = dst.split(".").map(Number);
  const dstLE = (d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24)) | 0;
  const a = new Asm()
    .mov64(R6, R1)
    .ldx("w", R7, R6, 76)
    .ldx("w", R8, R6, 80)
    .mov64(R1, R7)
    .add64(R1, 50)
    .jmp("gt", R1, R8, "out")
    .ldx("h", R1, R7, 12)
    .jmp("ne", R1, 0x0008, "out") // IPv4
    .ldx("b", R1, R7, 23)
    .jmp("ne", R1, 17, "out") // UDP
    .ldx("h", R1, R7, 36)
    .jmp("ne", R1, ((8472 & 0xff) << 8) | (8472 >> 8), "out") // dport 8472
    .ldx("w", R1, R7, 30)
    .jmp32("ne", R1, dstLE, "out")
    .ldx("w", R1, R7, 46)
    .jmp32("ne", R1, ((vni & 0xff) << 16) | (vni & 0xff00) | ((vni >> 16) & 0xff), "out"); // VNI, big-endian 24 bits
  return countHit(a, "hits", "out").label("out").mov64(R0, 0).exit();
}

function addNode(i: number): Node {
  const path = ns.add(`n${i}`);
  const name = path.split("/").pop()!;
  const conn = NetlinkConn.open({ netns: path });
  const node = { name, conn, dp: Datapath.open(), underlay: `192.168.77.${i}`, subnet: `10.80.${i}.0/24` } as Node;
  nodes.push(node);
  return node;
}

beforeAll(() => {
  const [n1, n2] = [addNode(1), addNode(2)];
  must(["ip", "-n", n1.name, "link", "add", "u1", "type", "veth", "peer", "name", "u2", "netns", n2.name]);
  for (const [i, n] of [n1, n2].entries()) {
    const u = `u${i + 1}`;
    must(["ip", "-n", n.name, "addr", "add", `${n.underlay}/24`, "dev", u]);
    must(["ip", "-n", n.name, "link", "set", u, "up"]);
    must(["ip", "-n", n.name, "link", "add", "vx", "type", "vxlan", "external", "dstport", "8472"]);
    must(["ip", "-n", n.name, "link", "set", "vx", "up"]);
    n.vxlan = ipj(n.name, ["link", "show", "vx"]).ifindex;
    // the pod
    const podNs = ns.add(`p${i + 1}`).split("/").pop()!;
    const ip = `10.80.${i + 1}.2`;
    must(["ip", "-n", n.name, "link", "add", "hv", "type", "veth", "peer", "name", "eth0", "netns", podNs]);
    must(["ip", "-n", n.name, "link", "set", "hv", "up"]);
    const h = ipj(n.name, ["link", "show", "hv"]);
    must(["ip", "-n", podNs, "addr", "add", `${ip}/32`, "dev", "eth0"]);
    must(["ip", "-n", podNs, "link", "set", "eth0", "up"]);
    must(["ip", "-n", podNs, "route", "add", GW, "dev", "eth0", "scope", "link"]);
    must(["ip", "-n", podNs, "route", "add", "default", "via", GW, "dev", "eth0"]);
    must(["ip", "-n", podNs, "neigh", "replace", GW, "lladdr", h.address, "dev", "eth0", "nud", "permanent"]);
    n.pod = { ns: podNs, ip, ifindex: h.ifindex, podMac: ipj(podNs, ["link", "show", "eth0"]).address, hostMac: h.address };
  }
  probeMap = BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1, name: "ckf_probe" });
  probe = loadProgram({ insns: probeProgram(n2.underlay, VNI), link: { maps: { hits: probeMap.fd } }, name: "ckf_probe" });
});

afterAll(() => {
  for (const n of nodes) {
    try {
      detachTc(n.conn, n.vxlan);
    } catch {
      // the namespace deletion removes it
    }
    n.dp.close();
    n.conn.close();
  }
  probe?.close();
  probeMap?.close();
  ns.cleanup();
});

const pingPod = (from: Node, to: Node) => run(["ip", "netns", "exec", from.pod.ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", to.pod.ip]).code === 0;
const probeHits = () => new BigUint64Array(probeMap!.lookup(new Uint8Array(4))!.buffer)[0]!;

describe("pods on two nodes over a collect-metadata vxlan device", () => {
  test("the agent's part: vxlan program and device, the other node's subnet with its VNI", () => {
    const [n1, n2] = nodes as [Node, Node];
    for (const [me, peer] of [[n1, n2], [n2, n1]] as const) {
      me.dp.attachPod(me.conn, { ip: me.pod.ip, ifindex: me.pod.ifindex, podMac: me.pod.podMac, hostMac: me.pod.hostMac });
      me.dp.attachVxlan(me.conn, me.vxlan);
      me.dp.setRemoteSubnet(peer.subnet, peer.underlay, VNI);
    }
    expect(n1.dp.remoteSubnets()).toEqual([{ subnet: "10.80.2.0/24", remote: "192.168.77.2", vni: VNI }]);
    expect(n1.dp.vxlanIfindex()).toBe(n1.vxlan);
    expect(listTc(n1.conn).map((t) => `${t.ifname} ${t.name}`).sort()).toEqual(["hv cnikit-pod", "vx cnikit-vxlan"]);
    attachTc(n2.conn, { ifindex: ipj(n2.name, ["link", "show", "u2"]).ifindex, direction: "ingress", prog: probe!, name: "test-probe" });
  });

  test("ping and TCP across the nodes; the outer packet has the remote address and the VNI", async () => {
    const [n1, n2] = nodes as [Node, Node];
    expect(pingPod(n1, n2)).toBe(true);
    expect(pingPod(n2, n1)).toBe(true);
    const server = await whoamiServer(`/run/netns/${n2.pod.ns}`, 7102);
    try {
      expect(ask(`/run/netns/${n1.pod.ns}`, n2.pod.ip, 7102)).toBe(n1.pod.ip);
    } finally {
      server.stop();
    }
    expect(n1.dp.stats().podToRemote!.packets).toBeGreaterThanOrEqual(4n);
    expect(n2.dp.stats().tunnelToLocal!.packets).toBeGreaterThanOrEqual(4n);
    expect(n1.dp.stats().errors!.packets).toBe(0n);
    expect(probeHits()).toBeGreaterThanOrEqual(4n);
  });

  test("another VNI in the map: the outer packets carry it (the probe no longer counts them)", () => {
    const [n1, n2] = nodes as [Node, Node];
    n1.dp.setRemoteSubnet(n2.subnet, n2.underlay, VNI + 1);
    const before = probeHits();
    pingPod(n1, n2); // the collect-metadata device takes any VNI, so this may still get through
    expect(probeHits()).toBe(before);
    n1.dp.setRemoteSubnet(n2.subnet, n2.underlay, VNI);
  });

  test("removing the remote subnet cuts the path; detaching the vxlan device removes its program", () => {
    const [n1, n2] = nodes as [Node, Node];
    expect(n1.dp.removeRemoteSubnet(n2.subnet)).toBe(true);
    expect(pingPod(n1, n2)).toBe(false);
    n1.dp.detachVxlan(n1.conn, n1.vxlan);
    expect(n1.dp.vxlanIfindex()).toBe(0);
    expect(listTc(n1.conn).map((t) => t.ifname)).toEqual(["hv"]);
  });
});
