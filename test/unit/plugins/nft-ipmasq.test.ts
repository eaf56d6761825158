/**
 * ipMasq (bridge and ptp) against FakeNft: the shared table made once with three rules a family,
 * a pod's two kinds of elements (its address, its kept ranges: own subnet and ipMasqExclude),
 * DEL removing exactly its own and running twice, CHECK.
 */

import { describe, expect, test } from "bun:test";
import { addMasq, delMasq, hasMasq, MASQ_TABLE } from "../../../src/plugins/common/ipmasq.ts";
import { elementsIn, fakeNftPerTest } from "./nft-fake.ts";

const fake = fakeNftPerTest();
const T = `inet ${MASQ_TABLE}`;

describe("ipmasq over nftables", () => {
  test("the first pod makes the table: one nat postrouting chain, three rules a family, and its elements", () => {
    addMasq(["10.1.2.3/24", "fd00::5/64"]);
    expect(fake.nft.dump()).toBe(`table ${T}
  chain postrouting { nat hook postrouting priority 100 policy accept }
    meta nfproto > r1; r1 == 0x02; network[12:4] > r8; network[16:4] > r9; r8 in @keep4; return
    meta nfproto > r1; r1 == 0x02; network[16:4] > r1; r1 & 0xf0000000 > r1; r1 == 0xe0000000; return
    meta nfproto > r1; r1 == 0x02; network[12:4] > r1; r1 in @masq4; masq
    meta nfproto > r1; r1 == 0x0a; network[8:16] > r8; network[24:16] > r12; r8 in @keep6; return
    meta nfproto > r1; r1 == 0x0a; network[24:16] > r1; r1 & 0xff000000000000000000000000000000 > r1; r1 == 0xff000000000000000000000000000000; return
    meta nfproto > r1; r1 == 0x0a; network[8:16] > r1; r1 in @masq6; masq
  set masq4 { ipv4_addr }
    10.1.2.3
  set keep4 { ipv4_addr . ipv4_addr; interval }
    10.1.2.3 . 10.1.2.0 - 10.1.2.3 . 10.1.2.255
  set masq6 { ipv6_addr }
    fd00::5
  set keep6 { ipv6_addr . ipv6_addr; interval }
    fd00::5 . fd00:: - fd00::5 . fd00::ffff:ffff:ffff:ffff
`);
  });

  test("a second pod adds only elements: the table is made once", () => {
    addMasq(["10.1.2.3/24"]);
    addMasq(["10.1.2.4/24"]);
    expect(fake.nft.applied.length).toBe(3); // setup, pod 1, pod 2
    expect(fake.nft.applied.slice(1).map((tx) => tx.operations.map((o) => `${o.verb} ${o.obj.kind}`))).toEqual([
      ["add element", "add element"],
      ["add element", "add element"],
    ]);
    expect(elementsIn(fake.nft.dump(), T, "masq4")).toEqual(["10.1.2.3", "10.1.2.4"]);
  });

  test("ipMasqExclude: a kept range per excluded CIDR of the pod's family; a range inside another is left out", () => {
    addMasq(["10.1.2.3/24", "fd00::5/64"], ["10.0.0.0/8", "192.168.0.0/16", "192.168.1.0/24", "fd00:1::/48"]);
    const dump = fake.nft.dump();
    // 10.1.2.0/24 is inside 10.0.0.0/8, 192.168.1.0/24 inside 192.168.0.0/16
    expect(elementsIn(dump, T, "keep4")).toEqual([
      "10.1.2.3 . 10.0.0.0 - 10.1.2.3 . 10.255.255.255",
      "10.1.2.3 . 192.168.0.0 - 10.1.2.3 . 192.168.255.255",
    ]);
    expect(elementsIn(dump, T, "keep6")).toEqual([
      "fd00::5 . fd00:1:: - fd00::5 . fd00:1:0:ffff:ffff:ffff:ffff:ffff",
      "fd00::5 . fd00:: - fd00::5 . fd00::ffff:ffff:ffff:ffff",
    ]);
  });

  test("DEL removes exactly the pod's elements, keeps the table and the other pod; a second DEL is fine", () => {
    addMasq(["10.1.2.3/24", "fd00::5/64"], ["10.0.0.0/8"]);
    addMasq(["10.1.2.4/24"], ["10.0.0.0/8"]);
    const withBoth = fake.nft.dump();
    delMasq(["10.1.2.3/24", "fd00::5/64"], ["10.0.0.0/8"]);
    const dump = fake.nft.dump();
    expect(elementsIn(dump, T, "masq4")).toEqual(["10.1.2.4"]);
    expect(elementsIn(dump, T, "keep4")).toEqual(["10.1.2.4 . 10.0.0.0 - 10.1.2.4 . 10.255.255.255"]);
    expect(elementsIn(dump, T, "masq6")).toEqual([]);
    expect(elementsIn(dump, T, "keep6")).toEqual([]);
    delMasq(["10.1.2.3/24", "fd00::5/64"], ["10.0.0.0/8"]);
    expect(fake.nft.dump()).toBe(dump);
    addMasq(["10.1.2.3/24", "fd00::5/64"], ["10.0.0.0/8"]);
    expect(fake.nft.dump()).toBe(withBoth); // ADD again after DEL: the same state
  });

  test("DEL with some elements gone already removes the rest", () => {
    addMasq(["10.1.2.3/24"]);
    delMasq(["10.1.2.3/32"]); // a kept range that was never added: the address goes, the /24 range stays
    expect(elementsIn(fake.nft.dump(), T, "masq4")).toEqual([]);
    expect(elementsIn(fake.nft.dump(), T, "keep4")).toEqual(["10.1.2.3 . 10.1.2.0 - 10.1.2.3 . 10.1.2.255"]);
  });

  test("DEL without the table, or of nothing, changes nothing", () => {
    delMasq(["10.1.2.3/24"]);
    delMasq([]);
    expect(fake.nft.dump()).toBe("");
    expect(fake.nft.applied).toEqual([]);
  });

  test("CHECK: masqueraded once added, not after DEL, not without the table", () => {
    expect(hasMasq("10.1.2.3/24")).toBe(false);
    addMasq(["10.1.2.3/24", "fd00::5/64"]);
    expect(hasMasq("10.1.2.3/24")).toBe(true);
    expect(hasMasq("fd00::5/64")).toBe(true);
    expect(hasMasq("10.1.2.4/24")).toBe(false);
    delMasq(["10.1.2.3/24"]);
    expect(hasMasq("10.1.2.3/24")).toBe(false);
    expect(hasMasq("fd00::5/64")).toBe(true);
  });
});
