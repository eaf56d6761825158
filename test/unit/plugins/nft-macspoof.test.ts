/**
 * macspoofchk (bridge) against FakeNft: the bridge-family table made once, a port's two elements,
 * CHECK, DEL of one port, and the sweep of ports that are gone.
 */

import { describe, expect, test } from "bun:test";
import { addMacSpoofCheck, delMacSpoofCheck, hasMacSpoofCheck, MACSPOOF_TABLE, sweepMacSpoofChecks } from "../../../src/plugins/common/macspoof.ts";
import { elementsIn, fakeNftPerTest } from "./nft-fake.ts";

const fake = fakeNftPerTest();
const T = `bridge ${MACSPOOF_TABLE}`;

describe("macspoofchk over nftables", () => {
  test("the first port makes the table: prerouting at -300, the pod's MAC passes, anything else from the port drops", () => {
    addMacSpoofCheck("veth1234", "02:42:0a:01:02:03");
    expect(fake.nft.dump()).toBe(`table ${T}
  chain prerouting { filter hook prerouting priority -300 policy accept }
    meta iifname > r8; link[6:6] > r12; r8 in @allowed; return
    meta iifname > r1; r1 in @checked; counter; drop
  set checked { ifname }
    "veth1234"
  set allowed { ifname . ether_addr }
    "veth1234" . 02:42:0a:01:02:03
`);
  });

  test("ports of several pods; DEL removes one port's elements, twice is fine", () => {
    addMacSpoofCheck("veth1", "02:00:00:00:00:01");
    addMacSpoofCheck("veth2", "02:00:00:00:00:02");
    expect(fake.nft.applied.length).toBe(3); // the table once
    delMacSpoofCheck("veth1", "02:00:00:00:00:01");
    delMacSpoofCheck("veth1", "02:00:00:00:00:01");
    const dump = fake.nft.dump();
    expect(elementsIn(dump, T, "checked")).toEqual(['"veth2"']);
    expect(elementsIn(dump, T, "allowed")).toEqual(['"veth2" . 02:00:00:00:00:02']);
  });

  test("DEL without the table changes nothing", () => {
    delMacSpoofCheck("veth1", "02:00:00:00:00:01");
    expect(fake.nft.dump()).toBe("");
  });

  test("CHECK: the port with this MAC, not another MAC, not after DEL", () => {
    expect(hasMacSpoofCheck("veth1", "02:00:00:00:00:01")).toBe(false);
    addMacSpoofCheck("veth1", "02:00:00:00:00:01");
    expect(hasMacSpoofCheck("veth1", "02:00:00:00:00:01")).toBe(true);
    expect(hasMacSpoofCheck("veth1", "02:00:00:00:00:09")).toBe(false);
    expect(hasMacSpoofCheck("veth2", "02:00:00:00:00:01")).toBe(false);
    delMacSpoofCheck("veth1", "02:00:00:00:00:01");
    expect(hasMacSpoofCheck("veth1", "02:00:00:00:00:01")).toBe(false);
  });

  test("the sweep removes the elements of ports that no longer exist, and only those", () => {
    addMacSpoofCheck("veth1", "02:00:00:00:00:01");
    addMacSpoofCheck("veth2", "02:00:00:00:00:02");
    addMacSpoofCheck("veth3", "02:00:00:00:00:03");
    sweepMacSpoofChecks((port) => port !== "veth2");
    const dump = fake.nft.dump();
    expect(elementsIn(dump, T, "checked")).toEqual(['"veth1"', '"veth3"']);
    expect(elementsIn(dump, T, "allowed")).toEqual(['"veth1" . 02:00:00:00:00:01', '"veth3" . 02:00:00:00:00:03']);
    sweepMacSpoofChecks(() => true);
    expect(fake.nft.dump()).toBe(dump);
  });
});
