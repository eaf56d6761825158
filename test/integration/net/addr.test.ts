import { assertPrivateNetns } from "./guard.ts";
assertPrivateNetns();

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { IFA_F_NODAD, IFA_F_TENTATIVE } from "../../../src/netlink/addr.ts";
import { isExists, NetlinkError } from "../../../src/netlink/error.ts";
import { addAddress, deleteAddress, listAddresses } from "../../../src/net/addr.ts";
import { deleteLink, getLink, setLinkUp } from "../../../src/net/link.ts";
import { createVeth } from "../../../src/net/veth.ts";
import { setSysctl } from "../../../src/net/sysctl.ts";
import { ipJson } from "./helpers.ts";

const conn = NetlinkConn.open();
beforeAll(() => {
  createVeth(conn, { name: "ckad0", peerName: "ckad0p" });
  // Without this the kernel would run DAD on both ends; keep the check about our flag alone.
  setSysctl("net.ipv6.conf.ckad0.accept_dad", 1);
  setLinkUp(conn, "ckad0");
  setLinkUp(conn, "ckad0p");
});
afterAll(() => {
  deleteLink(conn, "ckad0");
  conn.close();
});

const addrsOf = (dev: string) => ipJson(null, "addr", "show", "dev", dev)[0].addr_info as any[];

describe("addresses", () => {
  test("IPv4: added with its broadcast, listed, and visible to ip", () => {
    addAddress(conn, { link: "ckad0", address: "10.123.0.2/24" });
    const a = addrsOf("ckad0").find((x) => x.local === "10.123.0.2")!;
    expect(a.prefixlen).toBe(24);
    expect(a.broadcast).toBe("10.123.0.255");
    const ours = listAddresses(conn, { link: "ckad0", family: 4 });
    expect(ours.map((x) => x.cidr)).toEqual(["10.123.0.2/24"]);
    expect(ours[0]!.index).toBe(getLink(conn, "ckad0").index);
  });
  test("adding it again is EEXIST, unless existOk", () => {
    let err: unknown;
    try {
      addAddress(conn, { link: "ckad0", address: "10.123.0.2/24" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetlinkError);
    expect(isExists(err)).toBe(true);
    addAddress(conn, { link: "ckad0", address: "10.123.0.2/24" }, { existOk: true });
  });
  test("IPv6 with nodad is usable at once (never tentative); without it, it is tentative", () => {
    addAddress(conn, { link: "ckad0", address: "fd00:123::2/64", nodad: true });
    addAddress(conn, { link: "ckad0", address: "fd00:124::2/64" });
    const v6 = listAddresses(conn, { link: "ckad0", family: 6 });
    const nodad = v6.find((a) => a.cidr === "fd00:123::2/64")!;
    expect(nodad.flags & IFA_F_NODAD).toBe(IFA_F_NODAD);
    expect(nodad.flags & IFA_F_TENTATIVE).toBe(0);
    const ip = addrsOf("ckad0").find((x) => x.local === "fd00:123::2")!;
    expect(ip.nodad).toBe(true);
    expect(ip.tentative).toBeUndefined();
    const dad = addrsOf("ckad0").find((x) => x.local === "fd00:124::2")!;
    expect(dad.tentative).toBe(true);
  });
  test("the family filter and the link filter", () => {
    const all = listAddresses(conn, { link: "ckad0" });
    expect(all.some((a) => a.family === 4) && all.some((a) => a.family === 6)).toBe(true);
    expect(listAddresses(conn, { family: 4 }).map((a) => a.cidr)).toContain("10.123.0.2/24");
    expect(listAddresses(conn, { link: "lo" }).map((a) => a.cidr)).not.toContain("10.123.0.2/24");
  });
  test("delete: true when removed, false when already gone or the link is gone", () => {
    expect(deleteAddress(conn, { link: "ckad0", address: "10.123.0.2/24" })).toBe(true);
    expect(deleteAddress(conn, { link: "ckad0", address: "10.123.0.2/24" })).toBe(false);
    expect(deleteAddress(conn, { link: "ckad0", address: "fd00:123::2/64" })).toBe(true);
    expect(deleteAddress(conn, { link: "cknosuch", address: "10.1.1.1/24" })).toBe(false);
    expect(addrsOf("ckad0").map((x) => x.local)).not.toContain("10.123.0.2");
  });
  test("invalid input is a TypeError before anything is sent", () => {
    expect(() => addAddress(conn, { link: "ckad0", address: "10.1.1.1" })).toThrow(TypeError);
    expect(() => addAddress(conn, { link: "ckad0", address: "10.1.1.1/33" })).toThrow(TypeError);
  });
});
