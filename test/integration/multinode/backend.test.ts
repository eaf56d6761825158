/**
 * The agent's backends against the kernel, in this test's private namespace: the vxlan device is
 * made once and kept across restarts (same MAC), replaced when its settings differ; a peer is a
 * neighbour, an FDB entry and an onlink route, all undone when the route cannot be added; a peer
 * whose VTEP changed loses its old FDB entry; DirectRouting routes same-subnet peers plainly; a new
 * backend instance finds what an earlier one programmed; host-gw routes via the peer's address.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createBackend } from "../../../src/agent/backend.ts";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { assertPrivateNetns, must, run, runPrefix } from "../../support/netns.ts";

assertPrivateNetns();

const prefix = runPrefix("bk");
const up = `${prefix}u`; // the underlay: one end of a veth pair in this namespace
const dev = `${prefix}.9`;
let conn: NetlinkConn;

const routes = () => JSON.parse(must(["ip", "-j", "route", "show", "proto", "210"])) as { dst: string; gateway?: string; dev: string; flags: string[] }[];
const neigh = () => must(["ip", "neigh", "show", "dev", dev]);
const fdb = () => must(["bridge", "fdb", "show", "dev", dev]);
const linkOf = (name: string) => JSON.parse(must(["ip", "-j", "-d", "link", "show", name]))[0];
const vxlan = (extra: Record<string, unknown> = {}) =>
  createBackend("vxlan", { conn, localSubnet: "10.50.1.0/24", publicIP: "192.168.90.1", underlay: up, vni: 9, deviceName: dev, ...extra });

beforeAll(() => {
  must(["ip", "link", "add", up, "type", "veth", "peer", "name", `${prefix}p`]);
  must(["ip", "addr", "add", "192.168.90.1/24", "dev", up]);
  must(["ip", "link", "set", up, "up"]);
  must(["ip", "link", "set", `${prefix}p`, "up"]);
  conn = NetlinkConn.open();
});
afterAll(() => {
  conn?.close();
  run(["ip", "link", "del", dev]);
  run(["ip", "link", "del", up]);
});

describe("vxlan backend", () => {
  test("setup makes the device once: local address, port, no learning, MTU underlay - 50, subnet address /32", () => {
    const s = vxlan().setup();
    const l = linkOf(dev);
    expect(l.mtu).toBe(1450);
    expect(l.linkinfo.info_data).toMatchObject({ id: 9, local: "192.168.90.1", port: 8472, learning: false, udp_csum: false, link: up });
    expect(must(["ip", "-4", "-o", "addr", "show", "dev", dev])).toContain("inet 10.50.1.0/32");
    expect(s).toEqual({ backendData: { VNI: 9, VtepMAC: l.address }, mtu: 1450 });
    // a restarted agent keeps the device and so its MAC (other nodes' FDB entries stay right)
    expect(vxlan().setup().backendData.VtepMAC).toBe(l.address);
    expect(linkOf(dev).ifindex).toBe(l.ifindex);
  });

  test("a device with other settings is replaced; a new subnet replaces the old address", () => {
    const before = linkOf(dev);
    vxlan({ localSubnet: "10.50.7.0/24" }).setup(); // same device, another lease
    expect(linkOf(dev).ifindex).toBe(before.ifindex);
    expect(must(["ip", "-4", "-o", "addr", "show", "dev", dev]).trim().split("\n")).toHaveLength(1);
    expect(must(["ip", "-4", "-o", "addr", "show", "dev", dev])).toContain("inet 10.50.7.0/32");
    vxlan({ port: 4789 }).setup();
    const after = linkOf(dev);
    expect(after.ifindex).not.toBe(before.ifindex);
    expect(after.linkinfo.info_data.port).toBe(4789);
    vxlan().setup(); // back to the defaults for the tests below
  });

  test("a peer: neighbour, FDB entry, onlink route; removed whole; a changed VTEP drops the old FDB entry", () => {
    const b = vxlan();
    b.setup();
    b.addPeer({ subnet: "10.50.2.0/24", publicIP: "192.168.90.2", vtepMAC: "0a:00:00:00:00:02" });
    expect(neigh()).toContain("10.50.2.0 lladdr 0a:00:00:00:00:02 PERMANENT");
    expect(fdb()).toContain("0a:00:00:00:00:02 dst 192.168.90.2 self permanent");
    expect(routes()).toEqual([expect.objectContaining({ dst: "10.50.2.0/24", gateway: "10.50.2.0", dev, flags: ["onlink"] })]);
    // the peer restarted with a new device (new MAC) and a new address
    b.addPeer({ subnet: "10.50.2.0/24", publicIP: "192.168.90.12", vtepMAC: "0a:00:00:00:00:12" });
    expect(neigh()).toContain("10.50.2.0 lladdr 0a:00:00:00:00:12 PERMANENT");
    expect(fdb()).toContain("0a:00:00:00:00:12 dst 192.168.90.12 self permanent");
    expect(fdb()).not.toContain("0a:00:00:00:00:02");
    expect(b.programmedSubnets()).toEqual(["10.50.2.0/24"]);
    b.removePeer({ subnet: "10.50.2.0/24" });
    expect(routes()).toEqual([]);
    expect(neigh()).not.toContain("10.50.2.0");
    expect(fdb()).not.toContain("0a:00:00:00:00:12");
    expect(b.programmedSubnets()).toEqual([]);
  });

  test("a failed route undoes the neighbour and FDB entry before it", () => {
    const b = vxlan();
    b.setup();
    must(["ip", "link", "set", dev, "down"]); // an onlink route needs the device up: the route step fails
    try {
      expect(() => b.addPeer({ subnet: "10.50.3.0/24", publicIP: "192.168.90.3", vtepMAC: "0a:00:00:00:00:03" })).toThrow();
      expect(neigh()).not.toContain("10.50.3.0");
      expect(fdb()).not.toContain("0a:00:00:00:00:03");
      expect(routes()).toEqual([]);
      expect(b.programmedSubnets()).toEqual([]);
    } finally {
      must(["ip", "link", "set", dev, "up"]);
    }
  });

  test("a lease without VtepMAC is refused with a clear error", () => {
    const b = vxlan();
    b.setup();
    expect(() => b.addPeer({ subnet: "10.50.4.0/24", publicIP: "192.168.90.4" })).toThrow(/no VtepMAC/);
  });

  test("DirectRouting: a peer on the underlay subnet gets a plain route, others go through vxlan", () => {
    const b = vxlan({ directRouting: true });
    b.setup();
    b.addPeer({ subnet: "10.50.5.0/24", publicIP: "192.168.90.5", vtepMAC: "0a:00:00:00:00:05" });
    b.addPeer({ subnet: "10.50.6.0/24", publicIP: "172.31.9.6", vtepMAC: "0a:00:00:00:00:06" });
    const r = routes().sort((x, y) => x.dst.localeCompare(y.dst));
    expect(r[0]).toMatchObject({ dst: "10.50.5.0/24", gateway: "192.168.90.5", dev: up });
    expect(r[1]).toMatchObject({ dst: "10.50.6.0/24", gateway: "10.50.6.0", dev });
    expect(neigh()).not.toContain("10.50.5.0");
    // a new instance (an agent restart) finds both, and removes them
    const again = vxlan({ directRouting: true });
    again.setup();
    expect(again.programmedSubnets().sort()).toEqual(["10.50.5.0/24", "10.50.6.0/24"]);
    again.removePeer({ subnet: "10.50.5.0/24" });
    again.removePeer({ subnet: "10.50.6.0/24" });
    expect(routes()).toEqual([]);
    expect(fdb()).not.toContain("0a:00:00:00:00:06");
  });
});

describe("host-gw backend", () => {
  test("a route via the peer's address on the underlay; found again by a new instance; removed", () => {
    const b = createBackend("host-gw", { conn, localSubnet: "10.60.1.0/24", publicIP: "192.168.90.1", underlay: up });
    expect(b.setup()).toEqual({ backendData: {}, mtu: 1500 });
    b.addPeer({ subnet: "10.60.2.0/24", publicIP: "192.168.90.2" });
    b.addPeer({ subnet: "10.60.2.0/24", publicIP: "192.168.90.22" }); // the peer moved
    expect(routes()).toEqual([expect.objectContaining({ dst: "10.60.2.0/24", gateway: "192.168.90.22", dev: up })]);
    const again = createBackend("host-gw", { conn, localSubnet: "10.60.1.0/24", publicIP: "192.168.90.1", underlay: up });
    again.setup();
    expect(again.programmedSubnets()).toEqual(["10.60.2.0/24"]);
    again.removePeer({ subnet: "10.60.2.0/24" });
    expect(routes()).toEqual([]);
    // a route that is not the agent's (another protocol) is never touched
    must(["ip", "route", "add", "10.60.3.0/24", "via", "192.168.90.3"]);
    again.removePeer({ subnet: "10.60.3.0/24" });
    expect(must(["ip", "route", "show", "10.60.3.0/24"])).toContain("via 192.168.90.3");
  });

  test("an unknown backend type is a clear config error", () => {
    expect(() => createBackend("udp", { conn, localSubnet: "10.60.1.0/24", publicIP: "192.168.90.1", underlay: up })).toThrow(/not supported/);
  });
});
