/**
 * portmap without a kernel: config parsing with the reference's checks, the pod addresses it
 * picks, the map and set elements of mappings byte for byte, the shared table's transaction, and
 * the ctnetlink codec it flushes UDP entries with.
 */

import { describe, expect, test } from "bun:test";
import { toHex } from "../../../src/netlink/bytes.ts";
import { ctMsgType, decodeCtEntry, encodeCtDelete, IPCTNL_MSG } from "../../../src/netlink/conntrack.ts";
import { encodeBatch } from "../../../src/nft/batch.ts";
import { concat } from "../../../src/nft/value.ts";
import { mappingElements, parsePortmapConf, podIPsOf, setupTransaction, type PortmapConf } from "../../../src/plugins/meta/portmap.ts";
import { CniError } from "../../../src/spec/error.ts";
import type { NetConf } from "../../../src/spec/netconf.ts";
import type { Result } from "../../../src/spec/result.ts";
import type { Element } from "../../../src/nft/objects.ts";

const conf = (extra: Record<string, unknown>): NetConf => ({ cniVersion: "1.0.0", name: "n", type: "portmap", ...extra });
const withMaps = (portMappings: unknown, extra: Record<string, unknown> = {}) => conf({ runtimeConfig: { portMappings }, ...extra });

function codeOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return e.code;
    throw e;
  }
  throw new Error("did not throw");
}

const hexOf = (v: Element["key"] | undefined): string => (v === undefined ? "" : toHex(v instanceof Uint8Array ? v : concat(v)));
const show = (els: Element[]) => els.map((e) => ({ set: e.set, key: hexOf(e.key), ...(e.keyEnd ? { end: hexOf(e.keyEnd) } : {}), ...(e.data ? { data: hexOf(e.data) } : {}) }));

describe("config", () => {
  test("defaults: snat on, masqAll off, no mappings", () => {
    expect(parsePortmapConf(conf({}))).toEqual({ snat: true, masqAll: false, mappings: [] });
  });

  test("mappings: protocol defaults to tcp, any case; hostIP limits the family; 0.0.0.0 and :: bind no address", () => {
    const c = parsePortmapConf(withMaps([
      { hostPort: 8080, containerPort: 80 },
      { hostPort: 53, containerPort: 53, protocol: "UDP", hostIP: "192.0.2.1" },
      { hostPort: 9, containerPort: 9, protocol: "sctp", hostIP: "2001:db8::1" },
      { hostPort: 10, containerPort: 10, hostIP: "0.0.0.0" },
      { hostPort: 11, containerPort: 11, hostIP: "::" },
      { hostPort: 12, containerPort: 12, hostIP: "" },
    ]));
    expect(c.mappings).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: "tcp" },
      { hostPort: 53, containerPort: 53, protocol: "udp", hostIP: "192.0.2.1", family: 4 },
      { hostPort: 9, containerPort: 9, protocol: "sctp", hostIP: "2001:db8::1", family: 6 },
      { hostPort: 10, containerPort: 10, protocol: "tcp", family: 4 },
      { hostPort: 11, containerPort: 11, protocol: "tcp", family: 6 },
      { hostPort: 12, containerPort: 12, protocol: "tcp" },
    ]);
  });

  test("snat, masqAll, markMasqBit and externalSetMarkChain are accepted and checked", () => {
    expect(parsePortmapConf(conf({ snat: false, masqAll: true, markMasqBit: 13 }))).toMatchObject({ snat: false, masqAll: true, markMasqBit: 13 });
    expect(parsePortmapConf(conf({ externalSetMarkChain: "KUBE-MARK-MASQ" })).externalSetMarkChain).toBe("KUBE-MARK-MASQ");
    expect(codeOf(() => parsePortmapConf(conf({ markMasqBit: 32 })))).toBe(7);
    expect(codeOf(() => parsePortmapConf(conf({ markMasqBit: 1, externalSetMarkChain: "X" })))).toBe(7);
    expect(codeOf(() => parsePortmapConf(conf({ snat: "yes" })))).toBe(2); // a wrong JSON type
  });

  test("invalid mappings are spec errors (code 7)", () => {
    for (const bad of [
      [{ hostPort: 0, containerPort: 80 }],
      [{ hostPort: 80, containerPort: -1 }],
      [{ hostPort: 70000, containerPort: 80 }],
      [{ hostPort: 80, containerPort: 80, protocol: "icmp" }],
      [{ hostPort: 80, containerPort: 80, hostIP: "nope" }],
      [{ hostPort: 80, containerPort: 80 }, { hostPort: 80, containerPort: 81 }],
    ]) {
      expect(codeOf(() => parsePortmapConf(withMaps(bad)))).toBe(7);
    }
    expect(codeOf(() => parsePortmapConf(withMaps("8080:80")))).toBe(2); // a wrong JSON type
    // the same mapping twice, and one host port per protocol, are fine
    expect(parsePortmapConf(withMaps([
      { hostPort: 80, containerPort: 80 }, { hostPort: 80, containerPort: 80 }, { hostPort: 80, containerPort: 81, protocol: "udp" },
    ])).mappings.length).toBe(3);
  });
});

describe("pod addresses", () => {
  test("the first IPv4 and first IPv6 address of sandbox interfaces", () => {
    const prev: Result = {
      cniVersion: "1.1.0",
      interfaces: [{ name: "br0" }, { name: "veth1" }, { name: "eth0", sandbox: "/run/netns/x" }],
      ips: [
        { address: "10.9.9.1/24", interface: 0 },
        { address: "10.1.2.3/24", interface: 2 },
        { address: "10.1.2.4/24", interface: 2 },
        { address: "fd00::0005/64", interface: 2 },
      ],
    };
    expect(podIPsOf(prev)).toEqual([{ v: 4, ip: "10.1.2.3", prefix: 24 }, { v: 6, ip: "fd00::5", prefix: 64 }]);
    expect(podIPsOf(undefined)).toEqual([]);
  });
});

describe("elements", () => {
  const pods = [{ v: 4 as const, ip: "10.1.2.3", prefix: 24 }, { v: 6 as const, ip: "fd00::5", prefix: 64 }];
  const parse = (pms: unknown[], extra: Record<string, unknown> = {}): PortmapConf => parsePortmapConf(withMaps(pms, extra));

  test("an unbound TCP mapping: proto . port -> pod . port in both families, masquerading loopback and the subnet", () => {
    expect(show(mappingElements(parse([{ hostPort: 8080, containerPort: 80 }]), pods))).toEqual([
      // inet_proto (6, padded to 4) . inet_service (8080 = 0x1f90, padded) : ipv4_addr . inet_service (80)
      { set: "dnat4", key: "06000000" + "1f900000", data: "0a010203" + "00500000" },
      { set: "masq4", key: "7f000000" + "0a010203" + "06000000" + "00500000", end: "7fffffff" + "0a010203" + "06000000" + "00500000" },
      { set: "masq4", key: "0a010200" + "0a010203" + "06000000" + "00500000", end: "0a0102ff" + "0a010203" + "06000000" + "00500000" },
      { set: "dnat6", key: "06000000" + "1f900000", data: "fd000000000000000000000000000005" + "00500000" },
      {
        set: "masq6",
        key: "fd000000000000000000000000000000" + "fd000000000000000000000000000005" + "06000000" + "00500000",
        end: "fd00000000000000ffffffffffffffff" + "fd000000000000000000000000000005" + "06000000" + "00500000",
      },
    ]);
  });

  test("a hostIP-bound UDP mapping goes to its family's dnatNip map only; snat off adds no masquerading", () => {
    expect(show(mappingElements(parse([{ hostPort: 53, containerPort: 5353, protocol: "udp", hostIP: "192.0.2.1" }], { snat: false }), pods))).toEqual([
      { set: "dnat4ip", key: "c0000201" + "11000000" + "00350000", data: "0a010203" + "14e90000" },
    ]);
    expect(mappingElements(parse([{ hostPort: 53, containerPort: 53, hostIP: "2001:db8::1" }]), [pods[0]!])).toEqual([]);
  });

  test("masqAll masquerades every source; duplicate elements are listed once", () => {
    const els = show(mappingElements(parse([{ hostPort: 1, containerPort: 80 }, { hostPort: 2, containerPort: 80 }], { masqAll: true }), [pods[0]!]));
    expect(els.filter((e) => e.set === "masq4")).toEqual([
      { set: "masq4", key: "00000000" + "0a010203" + "06000000" + "00500000", end: "ffffffff" + "0a010203" + "06000000" + "00500000" },
    ]);
    expect(els.filter((e) => e.set === "dnat4").length).toBe(2);
  });
});

describe("shared table", () => {
  test("created by one transaction whose first operation is `create table`", () => {
    const tx = setupTransaction();
    expect(tx.operations[0]).toEqual({ verb: "create", obj: { kind: "table" } });
    const kinds = tx.operations.map((o) => o.obj.kind);
    expect(kinds.filter((k) => k === "map").length).toBe(4);
    expect(kinds.filter((k) => k === "set").length).toBe(2);
    expect(kinds.filter((k) => k === "chain").length).toBe(4);
    expect(kinds.filter((k) => k === "rule").length).toBe(8);
    const b = encodeBatch(tx, 100);
    expect(b.requests.length).toBe(tx.size);
    expect(b.requests.find((r) => r.req.what.includes("map inet cnikit_portmap dnat6ip"))).toBeDefined();
  });
});

describe("ctnetlink", () => {
  const tuple = { src: Uint8Array.of(198, 18, 0, 2), dst: Uint8Array.of(198, 18, 0, 1), proto: 17, srcPort: 40000, dstPort: 8081 };

  test("message types: subsystem 1 in the high byte", () => {
    expect(ctMsgType(IPCTNL_MSG.GET)).toBe(0x101);
    expect(ctMsgType(IPCTNL_MSG.DELETE)).toBe(0x102);
  });

  test("a delete names the original tuple (include/uapi/linux/netfilter/nfnetlink_conntrack.h)", () => {
    expect(toHex(encodeCtDelete(4, tuple))).toBe([
      "02000000", //                 nfgenmsg: AF_INET, version 0, res_id 0
      "3400", "0180", //             CTA_TUPLE_ORIG, nested, 52 bytes
      "1400", "0180", //             CTA_TUPLE_IP
      "0800", "0100", "c6120002", // CTA_IP_V4_SRC
      "0800", "0200", "c6120001", // CTA_IP_V4_DST
      "1c00", "0280", //             CTA_TUPLE_PROTO
      "0500", "0100", "11000000", // CTA_PROTO_NUM 17 (padded)
      "0600", "0200", "9c400000", // CTA_PROTO_SRC_PORT 40000, network order
      "0600", "0300", "1f910000", // CTA_PROTO_DST_PORT 8081
    ].join(""));
  });

  test("a dumped entry decodes both tuples and the zone", () => {
    const reply = { src: Uint8Array.of(10, 1, 2, 3), dst: Uint8Array.of(198, 18, 0, 2), proto: 17, srcPort: 81, dstPort: 40000 };
    const body = encodeCtDelete(4, tuple, 7);
    // a NEW message as the kernel dumps it: the same shape plus the reply tuple
    const withReply = new Uint8Array([...body, ...encodeCtDelete(4, reply).subarray(4)]);
    withReply[withReply.length - 52 + 2] = 2; // second CTA_TUPLE_ORIG becomes CTA_TUPLE_REPLY
    const e = decodeCtEntry(withReply)!;
    expect(e.family).toBe(4);
    expect(e.orig).toEqual(tuple);
    expect(e.reply).toEqual(reply);
    expect(e.zone).toBe(7);
    expect(decodeCtEntry(Uint8Array.of(2, 0, 0, 0))).toBeUndefined();
  });
});
