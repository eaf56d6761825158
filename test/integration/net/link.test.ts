import { assertPrivateNetns } from "./guard.ts";
assertPrivateNetns();

import { afterAll, describe, expect, test } from "bun:test";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { isExists, isNotFound, NetlinkError } from "../../../src/netlink/error.ts";
import { createLink, deleteLink, findLink, getLink, listLinks, setLink, setLinkDown, setLinkUp } from "../../../src/net/link.ts";
import { ipJson } from "./helpers.ts";

const conn = NetlinkConn.open();
afterAll(() => {
  deleteLink(conn, "cklk0");
  deleteLink(conn, "cklk0-renamed");
  conn.close();
});

describe("link lookup", () => {
  test("lo by name and by index", () => {
    const lo = getLink(conn, "lo");
    expect(lo.index).toBe(1);
    expect(getLink(conn, 1).name).toBe("lo");
  });
  test("a missing link: getLink throws a not-found NetlinkError, findLink gives null", () => {
    let err: unknown;
    try {
      getLink(conn, "cknosuch0");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetlinkError);
    expect(isNotFound(err)).toBe(true);
    expect(findLink(conn, "cknosuch0")).toBeNull();
    expect(findLink(conn, 999999)).toBeNull();
  });
});

describe("link changes", () => {
  test("create a bridge device, set up, MTU, MAC, down, rename, delete", () => {
    const l = createLink(conn, { name: "cklk0", info: { kind: "bridge" } });
    expect(l.kind).toBe("bridge");
    expect(() => createLink(conn, { name: "cklk0", info: { kind: "bridge" } })).toThrow(NetlinkError);
    try {
      createLink(conn, { name: "cklk0", info: { kind: "bridge" } });
    } catch (e) {
      expect(isExists(e)).toBe(true);
    }

    setLinkUp(conn, "cklk0");
    setLink(conn, "cklk0", { mtu: 1400, mac: "02:11:22:33:44:55" });
    let [ip] = ipJson(null, "link", "show", "cklk0");
    expect(ip.flags).toContain("UP");
    expect(ip.mtu).toBe(1400);
    expect(ip.address).toBe("02:11:22:33:44:55");
    const got = getLink(conn, "cklk0");
    expect([got.up, got.mtu, got.mac]).toEqual([true, 1400, "02:11:22:33:44:55"]);

    // promisc, allmulti and the queue length in one request; the up flag is left as it was
    setLink(conn, "cklk0", { promisc: true, allmulti: true, txQueueLen: 77 });
    [ip] = ipJson(null, "-d", "link", "show", "cklk0");
    expect(ip.flags).toEqual(expect.arrayContaining(["UP", "PROMISC", "ALLMULTI"]));
    expect(ip.promiscuity).toBeGreaterThan(0);
    expect(ip.txqlen).toBe(77);
    const flagged = getLink(conn, "cklk0");
    expect([flagged.up, flagged.promisc, flagged.allmulti]).toEqual([true, true, true]);
    setLink(conn, "cklk0", { promisc: false });
    const cleared = getLink(conn, "cklk0");
    expect([cleared.up, cleared.promisc, cleared.allmulti]).toEqual([true, false, true]);

    setLinkDown(conn, l.index);
    [ip] = ipJson(null, "link", "show", "cklk0");
    expect(ip.flags).not.toContain("UP");
    expect(getLink(conn, l.index).up).toBe(false);

    setLink(conn, l.index, { name: "cklk0-renamed" });
    expect(getLink(conn, l.index).name).toBe("cklk0-renamed");
    expect(listLinks(conn).map((x) => x.name)).toContain("cklk0-renamed");

    expect(deleteLink(conn, "cklk0-renamed")).toBe(true);
    expect(deleteLink(conn, "cklk0-renamed")).toBe(false);
    expect(deleteLink(conn, l.index)).toBe(false);
    expect(ipJson(null, "link", "show").map((x) => x.ifname)).not.toContain("cklk0-renamed");
  });
  test("an invalid MAC is a TypeError, nothing sent", () => {
    expect(() => setLink(conn, 1, { mac: "02:00:00:00:00" })).toThrow(TypeError);
    expect(() => setLink(conn, 1, { mac: "zz:00:00:00:00:00" })).toThrow(TypeError);
  });
  test("listLinks agrees with ip link", () => {
    const ours = listLinks(conn).map((l) => [l.index, l.name]).sort();
    const theirs = ipJson(null, "link", "show").map((l) => [l.ifindex, l.ifname]).sort();
    expect(ours).toEqual(theirs);
  });
});
