import { describe, expect, test } from "bun:test";
import { RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE } from "../../../src/netlink/addr.ts";
import { toHex } from "../../../src/netlink/bytes.ts";
import {
  decodeRoute,
  encodeRoute,
  type RouteMessage,
  RT_TABLE_LOCAL,
  RT_TABLE_MAIN,
  RTN_BROADCAST,
  RTN_LOCAL,
  RTN_MULTICAST,
  RTN_UNICAST,
  RTNH_F_ONLINK,
  RTPROT_BOOT,
  RTPROT_KERNEL,
} from "../../../src/netlink/route.ts";
import { AF_INET, AF_INET6 } from "../../../src/netlink/rtnl.ts";
import { formatIP, parseIP } from "../../../src/spec/ip.ts";
import { dataMessages, loadFixture } from "./fixture.ts";

describe("route requests", () => {
  test("via a gateway, on-link, with metrics (struct rtmsg, RTA_*, nested RTAX_*)", () => {
    const b = encodeRoute({
      family: AF_INET, dstLen: 24, dst: parseIP("10.2.0.0")!, gateway: parseIP("10.1.0.1")!, oif: 3,
      priority: 100, protocol: RTPROT_BOOT, scope: RT_SCOPE_UNIVERSE, type: RTN_UNICAST, flags: RTNH_F_ONLINK,
      metrics: { mtu: 1400, advmss: 1360 },
    });
    expect(toHex(b)).toBe(
      // family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags
      "02" + "18" + "00" + "00" + "fe" + "03" + "00" + "01" + "04000000" +
        "0800" + "0100" + "0a020000" + // RTA_DST
        "0800" + "0500" + "0a010001" + // RTA_GATEWAY
        "0800" + "0400" + "03000000" + // RTA_OIF
        "0800" + "0600" + "64000000" + // RTA_PRIORITY
        "1400" + "0800" + // RTA_METRICS
        "0800" + "0200" + "78050000" + // RTAX_MTU
        "0800" + "0800" + "50050000", // RTAX_ADVMSS
    );
  });
  test("a table above 255 goes in RTA_TABLE, rtm_table RT_TABLE_UNSPEC", () => {
    const b = encodeRoute({ family: AF_INET, table: 1000 });
    expect(toHex(b)).toBe("020000000000000000000000" + "0800" + "0f00" + "e8030000");
    expect(decodeRoute(b).table).toBe(1000);
  });
  test("round trip of an IPv6 route", () => {
    const m: RouteMessage = { family: AF_INET6, dstLen: 64, dst: parseIP("fd00:1::")!, gateway: parseIP("fe80::1")!, oif: 2, table: RT_TABLE_MAIN };
    const back = decodeRoute(encodeRoute(m));
    expect(formatIP(back.dst!)).toBe("fd00:1::");
    expect(formatIP(back.gateway!)).toBe("fe80::1");
    expect(back.oif).toBe(2);
  });
});

const TYPES: Record<string, number> = { unicast: RTN_UNICAST, local: RTN_LOCAL, broadcast: RTN_BROADCAST, multicast: RTN_MULTICAST };
const PROTOS: Record<string, number> = { kernel: RTPROT_KERNEL, boot: RTPROT_BOOT };
const SCOPES: Record<string, number> = { global: RT_SCOPE_UNIVERSE, link: RT_SCOPE_LINK, host: RT_SCOPE_HOST };
const TABLES: Record<string, number> = { main: RT_TABLE_MAIN, local: RT_TABLE_LOCAL };

interface IpRoute {
  type: string; dst: string; gateway?: string; dev: string; table: string; protocol: string; scope: string;
  metric?: number; prefsrc?: string; flags: string[]; metrics?: { mtu?: number; advmss?: number }[];
}

function check(name: string, family: number) {
  const ifindex = new Map<string, number>(
    (loadFixture("link_dump").ip as { ifname: string; ifindex: number }[]).map((l) => [l.ifname, l.ifindex]),
  );
  const routes = dataMessages(name).map((m) => decodeRoute(m.body));
  const v6 = family === AF_INET6;
  const oracle = (loadFixture(name).ip as IpRoute[]).filter((r) => r.dst.includes(":") === v6);
  expect(routes.every((r) => r.family === family)).toBe(true);
  expect(routes.length).toBe(oracle.length);
  for (const o of oracle) {
    const table = TABLES[o.table] ?? Number(o.table);
    const r = routes.find((x) => {
      const dst = x.dst ? formatIP(x.dst) : "default";
      const full = x.dstLen === (v6 ? 128 : 32) ? dst : `${dst}/${x.dstLen}`;
      return full === o.dst && x.table === table && x.type === TYPES[o.type] && x.oif === ifindex.get(o.dev);
    });
    expect(r).toBeDefined();
    expect(r!.protocol).toBe(PROTOS[o.protocol]!);
    expect(r!.scope).toBe(SCOPES[o.scope]!);
    expect(r!.gateway && formatIP(r!.gateway)).toBe(o.gateway);
    expect(r!.prefsrc && formatIP(r!.prefsrc)).toBe(o.prefsrc);
    expect(r!.priority).toBe(o.metric);
    expect(((r!.flags ?? 0) & RTNH_F_ONLINK) !== 0).toBe(o.flags.includes("onlink"));
    if (o.metrics) expect(r!.metrics).toMatchObject(o.metrics[0]!);
  }
  return routes;
}

describe("route dumps captured from the kernel", () => {
  test("IPv4, all tables: destinations, gateways, tables, metrics, onlink", () => {
    const routes = check("route4_dump", AF_INET);
    expect(routes.find((r) => r.table === 1000)).toBeDefined();
    expect(routes.find((r) => r.metrics?.mtu === 1300)!.metrics!.advmss).toBe(1260);
  });
  test("IPv6, all tables", () => {
    check("route6_dump", AF_INET6);
  });
});
