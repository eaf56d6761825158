// Same-node pods wired by eBPF redirects, with no bridge: two pods on veth pairs whose host ends
// carry the pod program (tc ingress: pod a's as a cls_bpf filter, the default, pod b's with tcx,
// as `hook` "tcx" asks); each pod reaches the other through a gateway it knows by a permanent neighbour entry
// (the host veth's MAC). Ping and TCP go through, the program's counters show it, `listTc` shows
// cnikit's programs; after DEL nothing of cnikit is left on the devices.
// Runs in a private network namespace (npm test: `unshare -n`), names prefixed ckf.
import { assertPrivateNetns, must, Namespaces, run, runPrefix } from "../../support/netns.ts";
assertPrivateNetns();

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Datapath } from "../../../src/bpf/datapath.ts";
import { Asm, R0 } from "../../../src/bpf/asm.ts";
import { BpfMap, MapType } from "../../../src/bpf/map.ts";
import { loadProgram } from "../../../src/bpf/prog.ts";
import { attachTc, listTc } from "../../../src/bpf/tc.ts";
import { attachTcx, queryTcx } from "../../../src/bpf/tcx.ts";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { ask, whoamiServer } from "../../support/tcp.ts";

const P = runPrefix("fb");
const GW = "169.254.1.1";
const ns = new Namespaces(P);
const conn = NetlinkConn.open();
let dp: Datapath;

interface Pod {
  ns: string;
  host: string;
  ip: string;
  ifindex: number;
  podMac: string;
  hostMac: string;
}
const pods: Pod[] = [];

const linkJson = (args: string[]) => JSON.parse(must(["ip", "-j", ...args]))[0];

/** A pod on a veth pair: /32 address, the gateway as a permanent neighbour, default route through it. */
function addPod(suffix: string, ip: string): Pod {
  const path = ns.add(suffix);
  const name = path.split("/").pop()!;
  const host = `${P}${suffix}`;
  must(["ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", name]);
  must(["ip", "link", "set", host, "up"]);
  const h = linkJson(["link", "show", host]);
  const podMac = linkJson(["-n", name, "link", "show", "eth0"]).address as string;
  must(["ip", "-n", name, "addr", "add", `${ip}/32`, "dev", "eth0"]);
  must(["ip", "-n", name, "link", "set", "eth0", "up"]);
  must(["ip", "-n", name, "route", "add", GW, "dev", "eth0", "scope", "link"]);
  must(["ip", "-n", name, "route", "add", "default", "via", GW, "dev", "eth0"]);
  must(["ip", "-n", name, "neigh", "replace", GW, "lladdr", h.address, "dev", "eth0", "nud", "permanent"]);
  const pod = { ns: name, host, ip, ifindex: h.ifindex as number, podMac, hostMac: h.address as string };
  pods.push(pod);
  return pod;
}

const ping = (from: Pod, to: Pod) => run(["ip", "netns", "exec", from.ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", to.ip]).code === 0;

beforeAll(() => {
  dp = Datapath.open();
  addPod("a", "10.79.0.2");
  addPod("b", "10.79.0.3");
});

afterAll(() => {
  for (const p of pods) {
    try {
      dp?.detachPod(conn, { ip: p.ip, ifindex: p.ifindex });
    } catch {
      // the link deletion below removes the filters anyway
    }
    run(["ip", "link", "del", p.host]);
  }
  dp?.close();
  conn.close();
  ns.cleanup();
});

describe("two pods, eBPF redirects, no bridge", () => {
  test("without the programs the pods cannot reach each other", () => {
    expect(ping(pods[0]!, pods[1]!)).toBe(false);
  });

  test("ADD: endpoints in the map, cnikit's program on each host veth (a cls_bpf filter by default, tcx when asked)", () => {
    const [a, b] = pods as [Pod, Pod];
    // on b's hook before: an older version of cnikit's program (it goes) and another tool's (it stays)
    const older = loadProgram({ insns: new Asm().mov64(R0, -1).exit(), name: "cnikit_pod" });
    const other = loadProgram({ insns: new Asm().mov64(R0, -1).exit(), name: "other_tool" });
    attachTcx(b.ifindex, "ingress", other);
    attachTcx(b.ifindex, "ingress", older);
    expect(queryTcx(b.ifindex, "ingress")).toEqual([other.id, older.id]);
    const hooks = [dp.attachPod(conn, { ip: a.ip, ifindex: a.ifindex, podMac: a.podMac, hostMac: a.hostMac }), dp.attachPod(conn, { ip: b.ip, ifindex: b.ifindex, podMac: b.podMac, hostMac: b.hostMac }, "tcx")];
    expect(hooks).toEqual(["tc", "tcx"]);
    expect(dp.endpoints().sort((x, y) => x.ip.localeCompare(y.ip))).toEqual(
      pods.map((p) => ({ ip: p.ip, ifindex: p.ifindex, podMac: p.podMac, hostMac: p.hostMac })),
    );
    const id = dp.program("pod").id;
    expect(queryTcx(b.ifindex, "ingress")).toEqual([other.id, id]);
    expect(listTc(conn, { ifindex: b.ifindex, all: true }).map((t) => [t.name, t.prio])).toEqual([["other_tool", 1], ["cnikit_pod", 2]]);
    older.close();
    other.close();
    const attached = listTc(conn).sort((x, y) => x.ifname!.localeCompare(y.ifname!));
    expect(attached.map((t) => [t.ifname, t.direction, t.name, t.progId, t.directAction, t.tcx ?? false])).toEqual([
      [a.host, "ingress", "cnikit-pod", id, true, false],
      [b.host, "ingress", "cnikit_pod", id, true, true],
    ]);
    // iproute2's view: a's filter on its clsact qdisc; b has no qdisc at all
    const shown = must(["tc", "filter", "show", "dev", a.host, "ingress"]);
    expect(shown).toContain("bpf chain 0 handle 0x1 cnikit-pod direct-action");
    expect(shown).toContain(`id ${id} name cnikit_pod`);
    expect(must(["tc", "qdisc", "show", "dev", b.host])).not.toContain("clsact");
    // attaching again is no error and attaches nothing more
    dp.attachPod(conn, { ip: a.ip, ifindex: a.ifindex, podMac: a.podMac, hostMac: a.hostMac });
    dp.attachPod(conn, { ip: b.ip, ifindex: b.ifindex, podMac: b.podMac, hostMac: b.hostMac }, "tcx");
    expect(listTc(conn, { ifindex: a.ifindex }).length).toBe(1);
    expect(listTc(conn, { ifindex: b.ifindex }).length).toBe(1);
  });

  test("ping both ways and TCP, through the program and no bridge", async () => {
    expect(JSON.parse(must(["ip", "-j", "link", "show", "type", "bridge"]) || "[]")).toEqual([]);
    const before = dp.stats().podToLocal!.packets;
    expect(ping(pods[0]!, pods[1]!)).toBe(true);
    expect(ping(pods[1]!, pods[0]!)).toBe(true);
    const server = await whoamiServer(`/run/netns/${pods[1]!.ns}`, 7101);
    try {
      expect(ask(`/run/netns/${pods[0]!.ns}`, pods[1]!.ip, 7101)).toBe(pods[0]!.ip);
    } finally {
      server.stop();
    }
    // 2 pings each way (request and reply each redirected) plus a TCP exchange
    expect(dp.stats().podToLocal!.packets - before).toBeGreaterThanOrEqual(8n);
  });

  test("traffic for anything else goes to the host's stack (counted as podToHost)", () => {
    const before = dp.stats().podToHost!.packets;
    run(["ip", "netns", "exec", pods[0]!.ns, "ping", "-c", "1", "-W", "1", "10.79.9.9"]);
    expect(dp.stats().podToHost!.packets).toBeGreaterThan(before);
  });

  test("DEL: no endpoint, filter, tcx attachment or clsact qdisc left; the pods are cut off again", () => {
    for (const p of pods) dp.detachPod(conn, { ip: p.ip, ifindex: p.ifindex });
    expect(dp.endpoints()).toEqual([]);
    // another tool's program stays where it was
    expect(listTc(conn, { all: true }).map((t) => [t.ifname, t.name])).toEqual([[pods[1]!.host, "other_tool"]]);
    for (const p of pods) expect(must(["tc", "qdisc", "show", "dev", p.host])).not.toContain("clsact");
    expect(ping(pods[0]!, pods[1]!)).toBe(false);
    // DEL is idempotent
    dp.detachPod(conn, { ip: pods[0]!.ip, ifindex: pods[0]!.ifindex });
  });

  test("a filter the kernel refuses leaves no clsact qdisc behind (one that was there stays)", () => {
    const a = pods[0]!;
    // a descriptor that is no program (a map's): the kernel takes the clsact qdisc, then refuses the filter
    const map = BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1, name: "ckf_notprog" });
    const notAProgram = { fd: map.fd };
    expect(() => attachTc(conn, { ifindex: a.ifindex, direction: "ingress", prog: notAProgram, name: "pod" })).toThrow();
    expect(must(["tc", "qdisc", "show", "dev", a.host])).not.toContain("clsact");
    must(["tc", "qdisc", "add", "dev", a.host, "clsact"]);
    expect(() => attachTc(conn, { ifindex: a.ifindex, direction: "ingress", prog: notAProgram, name: "pod" })).toThrow();
    expect(must(["tc", "qdisc", "show", "dev", a.host])).toContain("clsact");
    must(["tc", "qdisc", "del", "dev", a.host, "clsact"]);
    map.close();
  });

  test("GC removes endpoints of pods that are gone", () => {
    for (const p of pods) dp.setEndpoint({ ip: p.ip, ifindex: p.ifindex, podMac: p.podMac, hostMac: p.hostMac });
    expect(dp.gcEndpoints([pods[0]!.ip])).toEqual([pods[1]!.ip]);
    expect(dp.endpoints().map((e) => e.ip)).toEqual([pods[0]!.ip]);
    expect(dp.gcEndpoints([])).toEqual([pods[0]!.ip]);
  });
});
