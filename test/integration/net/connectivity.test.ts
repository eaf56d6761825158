// End to end: a bridge in this (private) namespace and two pods attached with veths whose pod
// ends are created directly inside the pods, then real pings between them over IPv4 and IPv6.
import { assertPrivateNetns } from "./guard.ts";
assertPrivateNetns();

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { addAddress, listAddresses } from "../../../src/net/addr.ts";
import { ensureBridge } from "../../../src/net/bridge.ts";
import { deleteLink, setLink, setLinkUp } from "../../../src/net/link.ts";
import { addRoute, listRoutes } from "../../../src/net/route.ts";
import { withRtnetlink } from "../../../src/net/rtnetlink.ts";
import { setSysctl } from "../../../src/net/sysctl.ts";
import { createVeth } from "../../../src/net/veth.ts";
import { addPodNetns, deleteAllPodNetns, nsPath, run, succeeds } from "./helpers.ts";

const conn = NetlinkConn.open();
const pods = [
  { ns: addPodNetns("pa"), host: "ckpa0", v4: "10.131.0.2", v6: "fd00:131::2" },
  { ns: addPodNetns("pb"), host: "ckpb0", v4: "10.131.0.3", v6: "fd00:131::3" },
];

beforeAll(() => {
  ensureBridge(conn, "ckbr9");
  addAddress(conn, { link: "ckbr9", address: "10.131.0.1/24" });
  addAddress(conn, { link: "ckbr9", address: "fd00:131::1/64", nodad: true });
  for (const p of pods) {
    const { link } = createVeth(conn, { name: p.host, peerName: "eth0", peerNetns: nsPath(p.ns), mtu: 1400 });
    setLink(conn, link.index, { master: "ckbr9", up: true });
    // The pod side, configured over a connection opened inside the pod.
    withRtnetlink((pc) => {
      setSysctl("net.ipv6.conf.eth0.accept_dad", 0, { netns: nsPath(p.ns) });
      addAddress(pc, { link: "eth0", address: `${p.v4}/24` });
      addAddress(pc, { link: "eth0", address: `${p.v6}/64`, nodad: true });
      setLinkUp(pc, "eth0");
      addRoute(pc, { dst: "default", gateway: "10.131.0.1", link: "eth0" });
    }, { netns: nsPath(p.ns) });
  }
});
afterAll(() => {
  for (const p of pods) deleteLink(conn, p.host);
  deleteLink(conn, "ckbr9");
  conn.close();
  deleteAllPodNetns();
});

const ping = (ns: string, addr: string) => succeeds("ip", "netns", "exec", ns, "ping", "-c1", "-W2", addr);

describe("two pods on a bridge", () => {
  test("pod state as the pod sees it", () => {
    const [a] = pods;
    withRtnetlink((pc) => {
      expect(listAddresses(pc, { link: "eth0" }).map((x) => x.cidr)).toEqual(
        expect.arrayContaining([`${a!.v4}/24`, `${a!.v6}/64`]),
      );
      expect(listRoutes(pc, { family: 4 }).find((r) => r.dst === "0.0.0.0/0")!.gateway).toBe("10.131.0.1");
    }, { netns: nsPath(a!.ns) });
    expect(run("ip", "-n", a!.ns, "-br", "link", "show", "eth0")).toContain("UP");
  });
  test("pod a pings pod b (IPv4 and IPv6) and the bridge", () => {
    const [a, b] = pods;
    expect(ping(a!.ns, b!.v4)).toBe(true);
    expect(ping(b!.ns, a!.v4)).toBe(true);
    expect(ping(a!.ns, "10.131.0.1")).toBe(true);
    expect(ping(a!.ns, b!.v6)).toBe(true);
  });
  test("detaching pod b from the bridge cuts it off", () => {
    const [a, b] = pods;
    setLink(conn, b!.host, { master: null });
    expect(ping(a!.ns, b!.v4)).toBe(false);
    setLink(conn, b!.host, { master: "ckbr9" });
    expect(ping(a!.ns, b!.v4)).toBe(true);
  });
});
