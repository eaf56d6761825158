// The datapath programs in the real kernel: loaded through the verifier and run with
// BPF_PROG_TEST_RUN on crafted frames (verdict, rewritten Ethernet addresses, the counter of the
// decision). A test run works on the kernel's private copy of the frame: redirects go nowhere, so
// the redirect target and the tunnel key are checked end to end by test/integration/bpf instead.
// Needs root: reported as skipped otherwise.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { programVersion } from "../../../src/bpf/datapath.ts";
import { BpfMap } from "../../../src/bpf/map.ts";
import { TC_ACT } from "../../../src/bpf/programs/common.ts";
import {
  Config,
  decodeCounter,
  encodeEndpoint,
  encodeRemote,
  endpointKey,
  mapSpecs,
  remoteKey,
  Stat,
} from "../../../src/bpf/programs/layout.ts";
import { podProgram } from "../../../src/bpf/programs/pod.ts";
import { underlayProgram } from "../../../src/bpf/programs/underlay.ts";
import { PROGRAM_VERSIONS } from "../../../src/bpf/programs/versions.ts";
import { vxlanProgram } from "../../../src/bpf/programs/vxlan.ts";
import { type BpfProgram, loadProgram } from "../../../src/bpf/prog.ts";
import { frame, macBytes, u32 } from "./packets.ts";

const root = process.getuid?.() === 0;

const POD_A_MAC = "0a:00:00:00:00:0a";
const GW_MAC = "ee:ee:ee:ee:ee:01";
const POD_B = { ip: "10.77.0.3", ifindex: 42, podMac: "0a:00:00:00:00:0b", hostMac: "ee:ee:ee:ee:ee:0b" };

describe.skipIf(!root)("datapath programs under BPF_PROG_TEST_RUN", () => {
  let maps: Record<string, BpfMap>;
  let pod: BpfProgram;
  let vxlan: BpfProgram;
  let underlay: BpfProgram;

  beforeAll(() => {
    maps = Object.fromEntries(Object.entries(mapSpecs({ maxEndpoints: 16, maxRemotes: 16 })).map(([k, s]) => [k, BpfMap.create(s)]));
    const fds = Object.fromEntries(Object.entries(maps).map(([k, m]) => [k, m.fd]));
    pod = loadProgram({ insns: podProgram(), link: { maps: fds }, name: "cnikit_pod" });
    vxlan = loadProgram({ insns: vxlanProgram(), link: { maps: fds }, name: "cnikit_vxlan" });
    underlay = loadProgram({ insns: underlayProgram(), link: { maps: fds }, name: "cnikit_underlay" });
  });
  afterAll(() => {
    pod?.close();
    vxlan?.close();
    underlay?.close();
    for (const m of Object.values(maps ?? {})) m.close();
  });
  beforeEach(() => {
    for (const k of [...maps.endpoints!.keys()]) maps.endpoints!.delete(k);
    for (const k of [...maps.remotes!.keys()]) maps.remotes!.delete(k);
    maps.config!.update(u32(Config.vxlanIfindex), u32(0));
    maps.config!.update(u32(Config.underlayIfindex), u32(0));
    for (let i = 0; i < 8; i++) maps.stats!.update(u32(i), new Uint8Array(16));
  });
  const counter = (i: number) => decodeCounter(maps.stats!.lookup(u32(i))!);

  test("both programs pass the verifier and use the datapath maps", () => {
    expect(pod.name).toBe("cnikit_pod");
    expect(new Set(pod.mapIds)).toEqual(new Set(Object.values(maps).map((m) => m.id)));
    expect(new Set(vxlan.mapIds)).toEqual(new Set([maps.endpoints!.id, maps.stats!.id]));
    expect(underlay.name).toBe("cnikit_underlay");
    expect(new Set(underlay.mapIds)).toEqual(new Set([maps.endpoints!.id, maps.remotes!.id, maps.stats!.id]));
  });

  test("pod program: a local pod's frame is redirected with the pod's and the gateway's MACs", () => {
    maps.endpoints!.update(endpointKey(POD_B.ip), encodeEndpoint(POD_B));
    const f = frame({ dst: GW_MAC, src: POD_A_MAC, saddr: "10.77.0.2", daddr: POD_B.ip, payload: 40 });
    const r = pod.testRun(f);
    expect(r.retval).toBe(TC_ACT.REDIRECT);
    expect([...r.data.subarray(0, 6)]).toEqual([...macBytes(POD_B.podMac)]);
    expect([...r.data.subarray(6, 12)]).toEqual([...macBytes(POD_B.hostMac)]);
    expect([...r.data.subarray(12)]).toEqual([...f.subarray(12)]);
    expect(counter(Stat.podToLocal)).toEqual({ packets: 1n, bytes: BigInt(f.length) });
    expect(counter(Stat.podToHost).packets).toBe(0n);
  });

  test("pod program: another node's subnet goes to the vxlan device, frame untouched", () => {
    maps.remotes!.update(remoteKey("10.77.3.0/24"), encodeRemote({ remote: "192.168.50.2", vni: 7 }));
    maps.config!.update(u32(Config.vxlanIfindex), u32(99));
    const f = frame({ dst: GW_MAC, src: POD_A_MAC, saddr: "10.77.0.2", daddr: "10.77.3.9", payload: 20 });
    const r = pod.testRun(f);
    expect(r.retval).toBe(TC_ACT.REDIRECT);
    expect([...r.data]).toEqual([...f]);
    expect(counter(Stat.podToRemote).packets).toBe(1n);
    expect(counter(Stat.errors).packets).toBe(0n);
  });

  test("pod program: a remote subnet without a vxlan device goes to the host", () => {
    maps.remotes!.update(remoteKey("10.77.3.0/24"), encodeRemote({ remote: "192.168.50.2", vni: 7 }));
    const r = pod.testRun(frame({ dst: GW_MAC, src: POD_A_MAC, saddr: "10.77.0.2", daddr: "10.77.3.9" }));
    expect(r.retval).toBe(TC_ACT.OK);
    expect(counter(Stat.podToHost).packets).toBe(1n);
  });

  test("pod program: a directly routed subnet goes out of the underlay device (redirect_neigh), not the tunnel", () => {
    maps.remotes!.update(remoteKey("10.77.4.0/24"), encodeRemote({ remote: "192.168.50.4", vni: 7, direct: true }));
    maps.config!.update(u32(Config.vxlanIfindex), u32(99));
    maps.config!.update(u32(Config.underlayIfindex), u32(98));
    const f = frame({ dst: GW_MAC, src: POD_A_MAC, saddr: "10.77.0.2", daddr: "10.77.4.9", payload: 20 });
    const r = pod.testRun(f);
    expect(r.retval).toBe(TC_ACT.REDIRECT);
    expect([...r.data]).toEqual([...f]);
    expect(counter(Stat.podToRemoteDirect)).toEqual({ packets: 1n, bytes: BigInt(f.length) });
    expect(counter(Stat.podToRemote).packets).toBe(0n);
    expect(counter(Stat.errors).packets).toBe(0n);
  });

  test("pod program: a directly routed subnet without an underlay device goes to the host (its route)", () => {
    maps.remotes!.update(remoteKey("10.77.4.0/24"), encodeRemote({ remote: "192.168.50.4", vni: 7, direct: true }));
    maps.config!.update(u32(Config.vxlanIfindex), u32(99));
    const r = pod.testRun(frame({ dst: GW_MAC, src: POD_A_MAC, saddr: "10.77.0.2", daddr: "10.77.4.9" }));
    expect(r.retval).toBe(TC_ACT.OK);
    expect(counter(Stat.podToHost).packets).toBe(1n);
    expect(counter(Stat.podToRemoteDirect).packets).toBe(0n);
  });

  // (a runt IPv4 frame cannot be test-run: the kernel refuses one shorter than an IPv4 header)
  test("pod program: the node, the outside, ARP and IPv6 go to the host unchanged", () => {
    maps.endpoints!.update(endpointKey(POD_B.ip), encodeEndpoint(POD_B));
    const cases = [
      frame({ dst: GW_MAC, src: POD_A_MAC, saddr: "10.77.0.2", daddr: "8.8.8.8" }),
      frame({ dst: GW_MAC, src: POD_A_MAC, saddr: "10.77.0.2", daddr: "10.77.0.1" }),
      frame({ dst: "ff:ff:ff:ff:ff:ff", src: POD_A_MAC, ethertype: 0x0806, saddr: "10.77.0.2", daddr: POD_B.ip }),
      frame({ dst: GW_MAC, src: POD_A_MAC, ethertype: 0x86dd, saddr: "10.77.0.2", daddr: POD_B.ip, payload: 40 }),
    ];
    for (const f of cases) {
      const r = pod.testRun(f);
      expect(r.retval).toBe(TC_ACT.OK);
      expect([...r.data]).toEqual([...f]);
    }
    expect(counter(Stat.podToHost).packets).toBe(BigInt(cases.length));
    expect(counter(Stat.podToLocal).packets).toBe(0n);
  });

  test("vxlan program: a decapsulated frame for a local pod is delivered, others go to the host", () => {
    maps.endpoints!.update(endpointKey(POD_B.ip), encodeEndpoint(POD_B));
    const f = frame({ dst: "02:00:00:00:00:99", src: "02:00:00:00:00:98", saddr: "10.77.3.9", daddr: POD_B.ip });
    const r = vxlan.testRun(f);
    expect(r.retval).toBe(TC_ACT.REDIRECT);
    expect([...r.data.subarray(0, 12)]).toEqual([...macBytes(POD_B.podMac), ...macBytes(POD_B.hostMac)]);
    expect(counter(Stat.tunnelToLocal).packets).toBe(1n);
    const other = vxlan.testRun(frame({ dst: "02:00:00:00:00:99", src: "02:00:00:00:00:98", saddr: "10.77.3.9", daddr: "10.77.0.99" }));
    expect(other.retval).toBe(TC_ACT.OK);
    expect(counter(Stat.tunnelToHost).packets).toBe(1n);
  });

  // A test run takes the frame in through loopback, whose MAC is all zeros: a frame to that MAC is
  // PACKET_HOST (addressed to this node), one to any other unicast MAC PACKET_OTHERHOST.
  test("underlay program: a frame from another node's pod to a local pod is delivered into it; everything else passes uncounted", () => {
    maps.endpoints!.update(endpointKey(POD_B.ip), encodeEndpoint(POD_B));
    maps.remotes!.update(remoteKey("10.77.4.0/24"), encodeRemote({ remote: "192.168.50.4", vni: 7, direct: true }));
    const f = frame({ dst: "00:00:00:00:00:00", src: "02:00:00:00:00:98", saddr: "10.77.4.9", daddr: POD_B.ip, payload: 30 });
    const r = underlay.testRun(f);
    expect(r.retval).toBe(TC_ACT.REDIRECT);
    expect([...r.data.subarray(0, 12)]).toEqual([...macBytes(POD_B.podMac), ...macBytes(POD_B.hostMac)]);
    expect([...r.data.subarray(12)]).toEqual([...f.subarray(12)]);
    expect(counter(Stat.directToLocal)).toEqual({ packets: 1n, bytes: BigInt(f.length) });
    const passes = [
      frame({ dst: "00:00:00:00:00:00", src: "02:00:00:00:00:98", saddr: "192.168.50.4", daddr: "192.168.50.1" }),
      frame({ dst: "02:00:00:00:00:77", src: "02:00:00:00:00:98", saddr: "10.77.4.9", daddr: POD_B.ip }),
      frame({ dst: "ff:ff:ff:ff:ff:ff", src: "02:00:00:00:00:98", saddr: "10.77.4.9", daddr: POD_B.ip }),
      frame({ dst: "00:00:00:00:00:00", src: "02:00:00:00:00:98", ethertype: 0x86dd, saddr: "10.77.4.9", daddr: POD_B.ip, payload: 40 }),
      // another node itself to our pod: through our stack, whose conntrack must see it
      frame({ dst: "00:00:00:00:00:00", src: "02:00:00:00:00:98", saddr: "192.168.50.4", daddr: POD_B.ip }),
    ];
    for (const p of passes) {
      const x = underlay.testRun(p);
      expect(x.retval).toBe(TC_ACT.OK);
      expect([...x.data]).toEqual([...p]);
    }
    expect(counter(Stat.directToLocal).packets).toBe(1n);
    for (const s of [Stat.podToHost, Stat.tunnelToHost, Stat.errors]) expect(counter(s).packets).toBe(0n);
  });
});

// ADD finds a pinned program by the version written out in programs/versions.ts, without
// assembling it: this fails when a program changed and that file was not updated.
test("the written-out program versions match the programs", () => {
  expect({ pod: programVersion(podProgram()), vxlan: programVersion(vxlanProgram()), underlay: programVersion(underlayProgram()) }).toEqual({ ...PROGRAM_VERSIONS });
});
