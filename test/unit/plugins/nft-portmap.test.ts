/**
 * portmap against FakeNft: the shared table made once, ADD / CHECK / DEL of the whole plugin where
 * it needs no other kernel access (TCP, snat off: no route_localnet, no conntrack flush), a host
 * port taken by another pod, and the nftables steps with snat and UDP (interval elements of the
 * masquerade sets are found and removed with their end, as listElements now lists it).
 */

import { describe, expect, test } from "bun:test";
import portmap, { addMappings, mappingElements, parsePortmapConf, PORTMAP_TABLE, podIPsOf, removeMappings } from "../../../src/plugins/meta/portmap.ts";
import { CniError, ErrorCode } from "../../../src/spec/error.ts";
import type { Result } from "../../../src/spec/result.ts";
import { cmdArgs } from "./cmd-args.ts";
import { elementsIn, fakeNftPerTest, tableIn } from "./nft-fake.ts";

const fake = fakeNftPerTest();
const T = `inet ${PORTMAP_TABLE}`;

function podResult(...addrs: string[]): Result {
  return { cniVersion: "1.1.0", interfaces: [{ name: "eth0", sandbox: "/var/run/netns/p" }], ips: addrs.map((address) => ({ address, interface: 0 })) };
}

function args(command: string, prev: Result, portMappings: unknown[], extra: Record<string, unknown> = {}) {
  const a = cmdArgs({ type: "portmap", snat: false, runtimeConfig: { portMappings }, ...extra }, { command });
  a.prevResult = prev;
  return a;
}

async function errOf(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error("did not fail");
}

const web = [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }];

describe("portmap over nftables: the plugin", () => {
  test("ADD makes the table once and maps the port in each of the pod's families", async () => {
    await portmap.add(args("ADD", podResult("10.1.2.3/24", "fd00::3/64"), web));
    expect(tableIn(fake.nft.dump(), T)).toBe(`table ${T}
  chain dnat
    meta nfproto > r1; r1 == 0x02; network[16:4] > r8; meta l4proto > r9; transport[2:2] > r10; r8 in @dnat4ip > r8; dnat ip addr r8 port r9
    meta nfproto > r1; r1 == 0x02; meta l4proto > r8; transport[2:2] > r9; r8 in @dnat4 > r8; dnat ip addr r8 port r9
    meta nfproto > r1; r1 == 0x0a; network[24:16] > r8; meta l4proto > r12; transport[2:2] > r13; r8 in @dnat6ip > r8; dnat ip6 addr r8 port r12
    meta nfproto > r1; r1 == 0x0a; meta l4proto > r8; transport[2:2] > r9; r8 in @dnat6 > r8; dnat ip6 addr r8 port r12
  chain prerouting { nat hook prerouting priority -100 policy accept }
    fib daddr type > r1; r1 == 0x02000000; jump dnat
  chain output { nat hook output priority -100 policy accept }
    fib daddr type > r1; r1 == 0x02000000; jump dnat
  chain postrouting { nat hook postrouting priority 100 policy accept }
    meta nfproto > r1; r1 == 0x02; ct status > r1; r1 & 0x20000000 > r1; r1 != 0x00000000; network[12:4] > r8; network[16:4] > r9; meta l4proto > r10; transport[2:2] > r11; r8 in @masq4; masq
    meta nfproto > r1; r1 == 0x0a; ct status > r1; r1 & 0x20000000 > r1; r1 != 0x00000000; network[8:16] > r8; network[24:16] > r12; meta l4proto > r16; transport[2:2] > r17; r8 in @masq6; masq
  map dnat4 { inet_proto . inet_service : ipv4_addr . inet_service }
    tcp . 8080 : 10.1.2.3 . 80
  map dnat4ip { ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
  set masq4 { ipv4_addr . ipv4_addr . inet_proto . inet_service; interval }
  map dnat6 { inet_proto . inet_service : ipv6_addr . inet_service }
    tcp . 8080 : fd00::3 . 80
  map dnat6ip { ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service }
  set masq6 { ipv6_addr . ipv6_addr . inet_proto . inet_service; interval }
`);
    await portmap.add(args("ADD", podResult("10.1.2.4/24"), [{ hostPort: 8081, containerPort: 80, protocol: "tcp", hostIP: "192.168.1.1" }]));
    expect(fake.nft.applied.length).toBe(3); // the table once
    expect(elementsIn(fake.nft.dump(), T, "dnat4ip")).toEqual(["192.168.1.1 . tcp . 8081 : 10.1.2.4 . 80"]);
  });

  test("a host port mapped to another pod fails ADD whole (code 7), naming where it goes", async () => {
    await portmap.add(args("ADD", podResult("10.1.2.3/24"), web));
    const before = fake.nft.dump();
    const e = await errOf(Promise.resolve(portmap.add(args("ADD", podResult("10.1.2.4/24"), [{ hostPort: 9090, containerPort: 90, protocol: "tcp" }, ...web]))));
    expect(e.code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(e.message).toBe("portmap: host port tcp/8080 is already mapped to 10.1.2.3:80");
    expect(fake.nft.dump()).toBe(before); // 9090 was not added either
    await portmap.add(args("ADD", podResult("10.1.2.3/24"), web)); // the same pod again: fine
  });

  test("CHECK passes after ADD; fails when the table, a mapping, or its target is not as configured", async () => {
    const prev = podResult("10.1.2.3/24");
    expect((await errOf(Promise.resolve(portmap.check!(args("CHECK", prev, web))))).message).toBe(`portmap: table ${T} is missing`);
    await portmap.add(args("ADD", prev, web));
    await portmap.check!(args("CHECK", prev, web));
    expect((await errOf(Promise.resolve(portmap.check!(args("CHECK", prev, [{ hostPort: 8080, containerPort: 81, protocol: "tcp" }])))))
      .message).toBe("portmap: host port tcp/8080 is mapped to 10.1.2.3:80, not 10.1.2.3:81");
    expect((await errOf(Promise.resolve(portmap.check!(args("CHECK", prev, [{ hostPort: 8082, containerPort: 80, protocol: "tcp" }])))))
      .message).toBe("portmap: host port tcp/8082 is not mapped");
  });

  test("DEL finds the pod's elements by its addresses (no runtimeConfig needed), leaves the other pod's; twice is fine", async () => {
    await portmap.add(args("ADD", podResult("10.1.2.3/24", "fd00::3/64"), web));
    await portmap.add(args("ADD", podResult("10.1.2.4/24"), [{ hostPort: 8081, containerPort: 80, protocol: "tcp" }]));
    const del = cmdArgs({ type: "portmap" }, { command: "DEL" });
    del.prevResult = podResult("10.1.2.3/24", "fd00::3/64");
    await portmap.del(del);
    await portmap.del(del);
    const dump = fake.nft.dump();
    expect(elementsIn(dump, T, "dnat4")).toEqual(["tcp . 8081 : 10.1.2.4 . 80"]);
    expect(elementsIn(dump, T, "dnat6")).toEqual([]);
  });

  test("DEL without the table changes nothing", async () => {
    const del = cmdArgs({ type: "portmap" }, { command: "DEL" });
    del.prevResult = podResult("10.1.2.3/24");
    await portmap.del(del);
    expect(fake.nft.dump()).toBe("");
  });
});

describe("portmap over nftables: the steps with snat and UDP", () => {
  const conf = parsePortmapConf({
    cniVersion: "1.0.0", name: "n", type: "portmap",
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }, { hostPort: 5353, containerPort: 53, protocol: "udp", hostIP: "192.168.1.1" }] },
  });

  test("snat: each mapping masquerades loopback and the pod's subnet (IPv4), the subnet (IPv6), as interval elements", () => {
    addMappings(fake.nft, mappingElements(conf, podIPsOf(podResult("10.1.2.3/24", "fd00::3/64"))));
    const dump = fake.nft.dump();
    expect(elementsIn(dump, T, "masq4")).toEqual([
      "10.1.2.0 . 10.1.2.3 . tcp . 80 - 10.1.2.255 . 10.1.2.3 . tcp . 80",
      "10.1.2.0 . 10.1.2.3 . udp . 53 - 10.1.2.255 . 10.1.2.3 . udp . 53",
      "127.0.0.0 . 10.1.2.3 . tcp . 80 - 127.255.255.255 . 10.1.2.3 . tcp . 80",
      "127.0.0.0 . 10.1.2.3 . udp . 53 - 127.255.255.255 . 10.1.2.3 . udp . 53",
    ]);
    expect(elementsIn(dump, T, "masq6")).toEqual(["fd00:: . fd00::3 . tcp . 80 - fd00::ffff:ffff:ffff:ffff . fd00::3 . tcp . 80"]);
    expect(elementsIn(dump, T, "dnat4ip")).toEqual(["192.168.1.1 . udp . 5353 : 10.1.2.3 . 53"]);
    expect(elementsIn(dump, T, "dnat6ip")).toEqual([]); // a hostIP binds its own family only
  });

  test("removeMappings takes every element of the pod (intervals with their end) and reports its UDP mappings", () => {
    const other = parsePortmapConf({ cniVersion: "1.0.0", name: "n", type: "portmap", runtimeConfig: { portMappings: [{ hostPort: 9090, containerPort: 90, protocol: "tcp" }] } });
    addMappings(fake.nft, mappingElements(other, podIPsOf(podResult("10.1.2.4/24"))));
    const onlyOther = fake.nft.dump();
    const pods = podIPsOf(podResult("10.1.2.3/24", "fd00::3/64"));
    addMappings(fake.nft, mappingElements(conf, pods));
    expect(removeMappings(fake.nft, pods)).toEqual([{ v: 4, pod: { v: 4, ip: "10.1.2.3", prefix: 24 }, hostPort: 5353, containerPort: 53 }]);
    expect(fake.nft.dump()).toBe(onlyOther);
    expect(removeMappings(fake.nft, pods)).toEqual([]);
  });
});
