import { assertPrivateNetns } from "./guard.ts";
assertPrivateNetns();

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { isExists } from "../../../src/netlink/error.ts";
import { addAddress } from "../../../src/net/addr.ts";
import { deleteLink, setLinkUp } from "../../../src/net/link.ts";
import { addRoute, deleteRoute, listRoutes, routeTo } from "../../../src/net/route.ts";
import { createVeth } from "../../../src/net/veth.ts";
import { ipJson } from "./helpers.ts";

const conn = NetlinkConn.open();
let index = 0;
beforeAll(() => {
  index = createVeth(conn, { name: "ckrt0", peerName: "ckrt0p" }).link.index;
  setLinkUp(conn, "ckrt0");
  setLinkUp(conn, "ckrt0p");
  addAddress(conn, { link: "ckrt0", address: "10.124.0.1/24" });
  addAddress(conn, { link: "ckrt0", address: "fd00:124::1/64", nodad: true });
});
afterAll(() => {
  deleteLink(conn, "ckrt0");
  conn.close();
});

const ipRoutes = (...args: string[]) => ipJson(null, "route", "show", ...args);

describe("routes", () => {
  test("via a gateway with a metric, MTU and advmss", () => {
    addRoute(conn, { dst: "10.125.0.0/16", gateway: "10.124.0.254", link: "ckrt0", priority: 50, mtu: 1300, advmss: 1260 });
    const [r] = ipRoutes("10.125.0.0/16");
    expect(r.gateway).toBe("10.124.0.254");
    expect(r.dev).toBe("ckrt0");
    expect(r.metric).toBe(50);
    expect(r.metrics[0]).toEqual({ mtu: 1300, advmss: 1260 });
    const ours = listRoutes(conn, { link: "ckrt0", family: 4 }).find((x) => x.dst === "10.125.0.0/16")!;
    expect(ours).toMatchObject({ gateway: "10.124.0.254", oif: index, priority: 50, mtu: 1300, advmss: 1260, onlink: false });
  });
  test("the same route again is EEXIST, existOk passes, replace changes it", () => {
    const spec = { dst: "10.125.0.0/16", gateway: "10.124.0.254", link: "ckrt0", priority: 50 };
    let err: unknown;
    try {
      addRoute(conn, spec);
    } catch (e) {
      err = e;
    }
    expect(isExists(err)).toBe(true);
    addRoute(conn, spec, { existOk: true });
    addRoute(conn, { ...spec, gateway: "10.124.0.253" }, { replace: true });
    expect(ipRoutes("10.125.0.0/16")[0].gateway).toBe("10.124.0.253");
  });
  test("an on-link gateway outside every prefix", () => {
    addRoute(conn, { dst: "10.126.0.0/24", gateway: "10.200.0.1", link: "ckrt0", onlink: true });
    const [r] = ipRoutes("10.126.0.0/24");
    expect(r.flags).toContain("onlink");
    expect(listRoutes(conn, { link: index }).find((x) => x.dst === "10.126.0.0/24")!.onlink).toBe(true);
  });
  test("a link-scope route without a gateway, and a default route", () => {
    addRoute(conn, { dst: "10.127.0.0/24", link: "ckrt0" });
    expect(ipRoutes("10.127.0.0/24")[0].scope).toBe("link");
    addRoute(conn, { dst: "default", gateway: "10.124.0.254" });
    const [d] = ipRoutes("default");
    expect(d.gateway).toBe("10.124.0.254");
    expect(listRoutes(conn, { family: 4 }).map((x) => x.dst)).toContain("0.0.0.0/0");
  });
  test("IPv6 route and another table", () => {
    addRoute(conn, { dst: "fd00:125::/64", gateway: "fd00:124::fe", link: "ckrt0" });
    expect(ipJson(null, "-6", "route", "show", "fd00:125::/64")[0].gateway).toBe("fd00:124::fe");
    addRoute(conn, { dst: "10.128.0.0/24", link: "ckrt0", table: 1000 });
    expect(ipRoutes("table", "1000").map((r) => r.dst)).toEqual(["10.128.0.0/24"]);
    expect(listRoutes(conn).map((r) => r.dst)).not.toContain("10.128.0.0/24");
    expect(listRoutes(conn, { table: 1000 }).map((r) => r.dst)).toEqual(["10.128.0.0/24"]);
    expect(listRoutes(conn, { table: 0 }).map((r) => r.dst)).toContain("10.128.0.0/24");
  });
  test("delete: true when removed, false when gone", () => {
    for (const spec of [
      { dst: "10.125.0.0/16", gateway: "10.124.0.253", link: "ckrt0", priority: 50 },
      { dst: "10.126.0.0/24" },
      { dst: "default" as const, gateway: "10.124.0.254" },
      { dst: "fd00:125::/64", link: "ckrt0" },
      { dst: "10.128.0.0/24", table: 1000 },
    ]) {
      expect(deleteRoute(conn, spec)).toBe(true);
      expect(deleteRoute(conn, spec)).toBe(false);
    }
    expect(deleteRoute(conn, { dst: "10.127.0.0/24", link: "cknosuch" })).toBe(false);
    const left = ipRoutes().map((r) => r.dst);
    expect(left).not.toContain("10.125.0.0/16");
    expect(left).not.toContain("default");
    expect(left).toContain("10.127.0.0/24");
  });
  test("routeTo: the route the kernel would take, as ip route get; undefined when unreachable", () => {
    addRoute(conn, { dst: "10.126.0.0/16", gateway: "10.124.0.254", link: "ckrt0" });
    const r = routeTo(conn, "10.126.3.4")!;
    expect(r).toMatchObject({ oif: index, gateway: "10.124.0.254" });
    expect(r.gateway).toBe(ipJson(null, "route", "get", "10.126.3.4")[0].gateway);
    expect(routeTo(conn, "10.124.0.77")).toMatchObject({ oif: index });
    expect(routeTo(conn, "fd00:124::9")).toMatchObject({ oif: index });
    expect(routeTo(conn, "192.0.2.1")).toBeUndefined(); // no default route in this namespace
    expect(() => routeTo(conn, "nope")).toThrow(TypeError);
    deleteRoute(conn, { dst: "10.126.0.0/16" });
  });
});
