/**
 * firewall's nftables steps against FakeNft: the shared table made once (forward chain, the
 * ingress policies' sets and rules), a pod's elements for each policy, same-bridge pairs between
 * bridges, DEL, CHECK.
 */

import { describe, expect, test } from "bun:test";
import { addPod, checkPod, FIREWALL_TABLE, removePod } from "../../../src/plugins/meta/firewall.ts";
import { elementsIn, fakeNftPerTest } from "./nft-fake.ts";

const fake = fakeNftPerTest();
const T = `inet ${FIREWALL_TABLE}`;
const open = { sameBridge: false };

describe("firewall over nftables", () => {
  test("the first pod makes the table: established and DNATed pass, isolated drop, bridge pairs drop, pods pass", () => {
    addPod(fake.nft, { ips: ["10.1.2.3", "fd00::3"], isolated: false }, open);
    expect(fake.nft.dump()).toBe(`table ${T}
  chain forward { filter hook forward priority 0 policy accept }
    ct state > r1; r1 & 0x06000000 > r1; r1 != 0x00000000; accept
    ct status > r1; r1 & 0x20000000 > r1; r1 != 0x00000000; accept
    meta nfproto > r1; r1 == 0x02; network[16:4] > r1; r1 in @isolated4; counter; drop
    meta nfproto > r1; r1 == 0x0a; network[24:16] > r1; r1 in @isolated6; counter; drop
    meta iifname > r8; meta oifname > r12; r8 in @crossbridge; counter; drop
    meta nfproto > r1; r1 == 0x02; network[12:4] > r1; r1 in @pods4; accept
    meta nfproto > r1; r1 == 0x02; network[16:4] > r1; r1 in @pods4; accept
    meta nfproto > r1; r1 == 0x0a; network[8:16] > r1; r1 in @pods6; accept
    meta nfproto > r1; r1 == 0x0a; network[24:16] > r1; r1 in @pods6; accept
  set pods4 { ipv4_addr }
    10.1.2.3
  set isolated4 { ipv4_addr }
  set pods6 { ipv6_addr }
    fd00::3
  set isolated6 { ipv6_addr }
  set crossbridge { ifname . ifname }
  set samebridges { ifname }
`);
  });

  test("isolated: the pod's addresses also in isolatedN; the table is made once", () => {
    addPod(fake.nft, { ips: ["10.1.2.3"], isolated: false }, open);
    addPod(fake.nft, { ips: ["10.1.2.4", "fd00::4"], isolated: true }, open);
    expect(fake.nft.applied.length).toBe(3);
    const dump = fake.nft.dump();
    expect(elementsIn(dump, T, "pods4")).toEqual(["10.1.2.3", "10.1.2.4"]);
    expect(elementsIn(dump, T, "isolated4")).toEqual(["10.1.2.4"]);
    expect(elementsIn(dump, T, "isolated6")).toEqual(["fd00::4"]);
  });

  test("same-bridge: each new bridge is cut off from every other same-bridge bridge, both ways; one bridge's pods add nothing more", () => {
    const sb = { sameBridge: true };
    addPod(fake.nft, { ips: ["10.1.0.2"], isolated: false, bridge: "br-a" }, sb);
    addPod(fake.nft, { ips: ["10.1.0.3"], isolated: false, bridge: "br-a" }, sb);
    expect(elementsIn(fake.nft.dump(), T, "crossbridge")).toEqual([]);
    addPod(fake.nft, { ips: ["10.2.0.2"], isolated: false, bridge: "br-b" }, sb);
    addPod(fake.nft, { ips: ["10.3.0.2"], isolated: false, bridge: "br-c" }, sb);
    addPod(fake.nft, { ips: ["10.9.0.2"], isolated: false, bridge: "br-open" }, open); // an open network: not cut off
    const dump = fake.nft.dump();
    expect(elementsIn(dump, T, "samebridges")).toEqual(['"br-a"', '"br-b"', '"br-c"']);
    expect(elementsIn(dump, T, "crossbridge")).toEqual([
      '"br-a" . "br-b"', '"br-a" . "br-c"', '"br-b" . "br-a"', '"br-b" . "br-c"', '"br-c" . "br-a"', '"br-c" . "br-b"',
    ]);
  });

  test("DEL removes the pod's elements only (also isolated ones it never had), twice is fine; without the table nothing happens", () => {
    removePod(fake.nft, { ips: ["10.1.2.3"], isolated: true });
    expect(fake.nft.dump()).toBe("");
    addPod(fake.nft, { ips: ["10.1.2.3", "fd00::3"], isolated: false }, open);
    addPod(fake.nft, { ips: ["10.1.2.4"], isolated: true }, open);
    // a DEL without a record assumes isolated: the element that was never added must not keep the others
    removePod(fake.nft, { ips: ["10.1.2.3", "fd00::3"], isolated: true });
    removePod(fake.nft, { ips: ["10.1.2.3", "fd00::3"], isolated: true });
    const dump = fake.nft.dump();
    expect(elementsIn(dump, T, "pods4")).toEqual(["10.1.2.4"]);
    expect(elementsIn(dump, T, "pods6")).toEqual([]);
    expect(elementsIn(dump, T, "isolated4")).toEqual(["10.1.2.4"]);
  });

  test("CHECK: accepted and (when isolated) isolated, else a spec error naming the address", () => {
    expect(() => checkPod(fake.nft, { ips: ["10.1.2.3"], isolated: false })).toThrow("firewall: table inet cnikit_firewall is missing");
    addPod(fake.nft, { ips: ["10.1.2.3"], isolated: false }, open);
    checkPod(fake.nft, { ips: ["10.1.2.3"], isolated: false });
    expect(() => checkPod(fake.nft, { ips: ["10.1.2.3"], isolated: true })).toThrow("firewall: 10.1.2.3 is not isolated");
    expect(() => checkPod(fake.nft, { ips: ["10.1.2.9"], isolated: false })).toThrow("firewall: 10.1.2.9 is not accepted in forwarding");
  });
});
