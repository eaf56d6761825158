/**
 * The agent's masquerading (FLANNEL_IPMASQ) against FakeNft: the whole table in one transaction,
 * replaced when the network changes, removed (also when missing).
 */

import { describe, expect, test } from "bun:test";
import { AGENT_TABLE, installMasquerade, removeMasquerade } from "../../../src/agent/masq.ts";
import { parseCIDR } from "../../../src/spec/ip.ts";
import { fakeNftPerTest } from "../plugins/nft-fake.ts";

const fake = fakeNftPerTest();
const net = (s: string) => parseCIDR(s)!;

describe("agent masquerading over nftables", () => {
  test("dual-stack: multicast returns, traffic from the cluster network to outside it is masqueraded", () => {
    installMasquerade([net("10.244.0.0/16"), net("fd10::/56")]);
    expect(fake.nft.dump()).toBe(`table inet ${AGENT_TABLE}
  chain postrouting { nat hook postrouting priority 100 policy accept }
    meta nfproto > r1; r1 == 0x02; network[16:4] > r1; r1 & 0xf0000000 > r1; r1 == 0xe0000000; return
    meta nfproto > r1; r1 == 0x02; network[12:4] > r1; r1 & 0xffff0000 > r1; r1 == 0x0af40000; network[16:4] > r1; r1 & 0xffff0000 > r1; r1 != 0x0af40000; masq
    meta nfproto > r1; r1 == 0x0a; network[24:16] > r1; r1 & 0xff000000000000000000000000000000 > r1; r1 == 0xff000000000000000000000000000000; return
    meta nfproto > r1; r1 == 0x0a; network[8:16] > r1; r1 & 0xffffffffffffff000000000000000000 > r1; r1 == 0xfd100000000000000000000000000000; network[24:16] > r1; r1 & 0xffffffffffffff000000000000000000 > r1; r1 != 0xfd100000000000000000000000000000; masq
`);
    expect(fake.nft.applied.length).toBe(1);
  });

  test("a changed network replaces the table in one transaction (deleted and written again)", () => {
    installMasquerade([net("10.244.0.0/16")]);
    installMasquerade([net("10.9.0.0/16")]);
    expect(fake.nft.applied.length).toBe(2);
    expect(fake.nft.applied[1]!.operations.slice(0, 2).map((o) => `${o.verb} ${o.obj.kind}`)).toEqual(["delete table", "add table"]);
    expect(fake.nft.dump()).toBe(`table inet ${AGENT_TABLE}
  chain postrouting { nat hook postrouting priority 100 policy accept }
    meta nfproto > r1; r1 == 0x02; network[16:4] > r1; r1 & 0xf0000000 > r1; r1 == 0xe0000000; return
    meta nfproto > r1; r1 == 0x02; network[12:4] > r1; r1 & 0xffff0000 > r1; r1 == 0x0a090000; network[16:4] > r1; r1 & 0xffff0000 > r1; r1 != 0x0a090000; masq
`);
  });

  test("remove: the table goes; removing it again is fine", () => {
    installMasquerade([net("10.244.0.0/16")]);
    removeMasquerade();
    expect(fake.nft.dump()).toBe("");
    removeMasquerade();
    expect(fake.nft.dump()).toBe("");
  });
});
