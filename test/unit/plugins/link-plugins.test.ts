/**
 * macvlan, ipvlan and vlan without a kernel: the RTM_NEWLINK bodies they send, byte for byte
 * against the UAPI layout (this machine has no ipvlan and no 8021q module, so these bytes are the
 * only check those two get here), and config parsing with its spec errors.
 */

import { describe, expect, test } from "bun:test";
import { toHex } from "../../../src/netlink/bytes.ts";
import { decodeLink } from "../../../src/netlink/link.ts";
import { buildIpvlanLink, ipvlan, parseIpvlanConf } from "../../../src/plugins/main/ipvlan.ts";
import { buildMacvlanLink, parseMacvlanConf } from "../../../src/plugins/main/macvlan.ts";
import { buildVlanLink, parseVlanConf } from "../../../src/plugins/main/vlan.ts";
import { CniError } from "../../../src/spec/error.ts";
import { cmdArgs } from "./cmd-args.ts";
import { errorOf } from "./wrong-types.ts";

const hex = (...parts: string[]) => parts.join("");
// struct ifinfomsg (include/uapi/linux/rtnetlink.h): u8 family, u8 pad, u16 type, i32 index,
// u32 flags, u32 change; all zero for a create.
const IFINFO_ZERO = hex("00", "00", "0000", "00000000", "00000000", "00000000");
// struct nlattr: u16 len (header included, padding not), u16 type; payload padded to 4 bytes.
const IFNAME_ETH0 = hex("0900", "0300", "6574683000", "000000"); // IFLA_IFNAME (3) "eth0\0"
const LINK_7 = hex("0800", "0500", "07000000"); //                    IFLA_LINK (5) u32 7
const NETNS_FD_9 = hex("0800", "1c00", "09000000"); //                IFLA_NET_NS_FD (28) u32 9

/** The spec error code `fn` throws (fails when it throws something else or nothing). */
const codeOf = (fn: () => unknown): number => errorOf(fn).code;
const conf = (type: string, extra: Record<string, unknown>, cniArgs = "") => cmdArgs({ type, ...extra }, { cniArgs });

describe("request bytes", () => {
  test("ipvlan l3 with an MTU, created in another namespace (include/uapi/linux/if_link.h IFLA_IPVLAN_*)", () => {
    const b = buildIpvlanLink({ name: "eth0", parent: 7, mode: "l3", mtu: 1400, netnsFd: 9 });
    expect(toHex(b)).toBe(hex(
      IFINFO_ZERO,
      IFNAME_ETH0,
      "0800", "0400", "78050000", //                IFLA_MTU (4) u32 1400
      LINK_7,
      NETNS_FD_9,
      "2400", "1200", //                            IFLA_LINKINFO (18), 36 bytes
      "0b00", "0100", "6970766c616e00", "00", //      IFLA_INFO_KIND (1) "ipvlan\0"
      "1400", "0200", //                              IFLA_INFO_DATA (2), 20 bytes
      "0600", "0100", "0100", "0000", //                IFLA_IPVLAN_MODE (1) u16 IPVLAN_MODE_L3 = 1
      "0600", "0200", "0000", "0000", //                IFLA_IPVLAN_FLAGS (2) u16 0 (bridge)
    ));
    // and it reads back as what was asked for
    const m = decodeLink(b);
    expect(m.info?.kind).toBe("ipvlan");
    expect(m.info?.ipvlan).toEqual({ mode: 1, flags: 0 });
  });

  test("ipvlan modes: l2 = 0, l3s = 2; no MTU attribute when the MTU is left to the kernel", () => {
    const l2 = toHex(buildIpvlanLink({ name: "eth0", parent: 7, mode: "l2" }));
    expect(l2).toBe(hex(
      IFINFO_ZERO, IFNAME_ETH0, LINK_7,
      "2400", "1200", "0b00", "0100", "6970766c616e00", "00", "1400", "0200",
      "0600", "0100", "0000", "0000",
      "0600", "0200", "0000", "0000",
    ));
    expect(decodeLink(buildIpvlanLink({ name: "eth0", parent: 7, mode: "l3s" })).info?.ipvlan?.mode).toBe(2);
  });

  test("vlan 100 created in another namespace (include/uapi/linux/if_link.h IFLA_VLAN_ID)", () => {
    const b = buildVlanLink({ name: "eth0", parent: 7, vlanId: 100, netnsFd: 9 });
    expect(toHex(b)).toBe(hex(
      IFINFO_ZERO,
      IFNAME_ETH0,
      LINK_7,
      NETNS_FD_9,
      "1c00", "1200", //                            IFLA_LINKINFO (18), 28 bytes
      "0900", "0100", "766c616e00", "000000", //      IFLA_INFO_KIND (1) "vlan\0"
      "0c00", "0200", //                              IFLA_INFO_DATA (2), 12 bytes
      "0600", "0100", "6400", "0000", //                IFLA_VLAN_ID (1) u16 100
    ));
  });

  test("vlan id 4094 and an MTU", () => {
    const b = buildVlanLink({ name: "eth0", parent: 7, vlanId: 4094, mtu: 1400 });
    expect(toHex(b)).toBe(hex(
      IFINFO_ZERO, IFNAME_ETH0,
      "0800", "0400", "78050000",
      LINK_7,
      "1c00", "1200", "0900", "0100", "766c616e00", "000000", "0c00", "0200",
      "0600", "0100", "fe0f", "0000", // 4094 = 0x0ffe, host order
    ));
  });

  test("macvlan private with a MAC, created in another namespace (IFLA_MACVLAN_MODE u32)", () => {
    const b = buildMacvlanLink({ name: "eth0", parent: 7, mode: "private", mac: "02:00:00:00:00:01", netnsFd: 9 });
    expect(toHex(b)).toBe(hex(
      IFINFO_ZERO,
      IFNAME_ETH0,
      "0a00", "0100", "020000000001", "0000", //    IFLA_ADDRESS (1), 6 bytes
      LINK_7,
      NETNS_FD_9,
      "1c00", "1200", //                            IFLA_LINKINFO (18), 28 bytes
      "0c00", "0100", "6d6163766c616e00", //          IFLA_INFO_KIND (1) "macvlan\0"
      "0c00", "0200", //                              IFLA_INFO_DATA (2), 12 bytes
      "0800", "0100", "01000000", //                    IFLA_MACVLAN_MODE (1) MACVLAN_MODE_PRIVATE = 1
    ));
  });

  test("macvlan modes: bridge 4, vepa 2, passthru 8", () => {
    const mode = (m: "bridge" | "vepa" | "passthru") => decodeLink(buildMacvlanLink({ name: "x", parent: 1, mode: m })).info?.macvlan?.mode;
    expect([mode("bridge"), mode("vepa"), mode("passthru")]).toEqual([4, 2, 8]);
  });
});

describe("macvlan config", () => {
  test("defaults: mode bridge, no master (the default route's interface is found at ADD), MTU left to the kernel", () => {
    expect(parseMacvlanConf(conf("macvlan", { ipam: { type: "host-local" } }))).toEqual({
      mode: "bridge", mtu: 0, linkInContainer: false, ipamType: "host-local",
    });
  });
  test("no IPAM is allowed (an L2-only interface)", () => {
    expect(parseMacvlanConf(conf("macvlan", { master: "eth1" })).ipamType).toBeUndefined();
  });
  test("MAC: the config's, then CNI_ARGS, then runtimeConfig", () => {
    const c = { master: "eth1", mac: "02:00:00:00:00:01" };
    expect(parseMacvlanConf(conf("macvlan", c)).mac).toBe("02:00:00:00:00:01");
    expect(parseMacvlanConf(conf("macvlan", c, "IgnoreUnknown=1;MAC=02:00:00:00:00:02")).mac).toBe("02:00:00:00:00:02");
    const rc = { ...c, runtimeConfig: { mac: "02:00:00:00:00:0A" } };
    expect(parseMacvlanConf(conf("macvlan", rc, "MAC=02:00:00:00:00:02")).mac).toBe("02:00:00:00:00:0a");
  });
  test("errors: unknown mode, bad MTU, bad MAC, bad master are code 7; a wrong JSON type is code 2", () => {
    for (const extra of [{ mode: "l2" }, { mode: "source" }, { mtu: -1 }, { mtu: 20 }, { mac: "zz" }, { master: "a/b" }]) {
      expect(codeOf(() => parseMacvlanConf(conf("macvlan", extra)))).toBe(7);
    }
    for (const extra of [{ mtu: "1500" }, { master: 5 }, { linkInContainer: "yes" }, { bcqueuelen: -1 }]) {
      expect(codeOf(() => parseMacvlanConf(conf("macvlan", extra)))).toBe(2);
    }
  });
  test("bcqueuelen: 0 is the kernel's default and accepted; anything else is refused with code 2", () => {
    expect(parseMacvlanConf(conf("macvlan", { bcqueuelen: 0 })).mode).toBe("bridge");
    expect(codeOf(() => parseMacvlanConf(conf("macvlan", { bcqueuelen: 100 })))).toBe(2);
  });
});

describe("ipvlan config", () => {
  test("defaults to l2; l3 and l3s accepted", () => {
    expect(parseIpvlanConf(conf("ipvlan", { master: "eth1" }))).toEqual({ master: "eth1", mode: "l2", mtu: 0, linkInContainer: false });
    expect(parseIpvlanConf(conf("ipvlan", { mode: "l3s", mtu: 1400, linkInContainer: true })).mode).toBe("l3s");
  });
  test("errors are code 7; a fraction for the MTU is code 2", () => {
    for (const extra of [{ mode: "bridge" }, { mode: "toString" }, { master: "" + "x".repeat(16) }]) {
      expect(codeOf(() => parseIpvlanConf(conf("ipvlan", extra)))).toBe(7);
    }
    expect(codeOf(() => parseIpvlanConf(conf("ipvlan", { mtu: 1.5 })))).toBe(2);
  });
  test("ADD without IPAM and without a prevResult carrying IPs is refused (code 7) before touching the kernel", async () => {
    const args = conf("ipvlan", { master: "eth1" });
    const err = await Promise.resolve(ipvlan.add(args)).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).code).toBe(7);
    expect((err as CniError).message).toContain("unless chained");
  });
});

describe("vlan config", () => {
  test("master and IPAM are required; 0 and 4094 are valid ids; no vlanId is 0, as in the reference", () => {
    const ok = { master: "eth1", ipam: { type: "host-local" } };
    expect(parseVlanConf(conf("vlan", { ...ok, vlanId: 0 }))).toEqual({ master: "eth1", vlanId: 0, mtu: 0, linkInContainer: false, ipamType: "host-local" });
    expect(parseVlanConf(conf("vlan", { ...ok, vlanId: 4094, mtu: 1400 })).vlanId).toBe(4094);
    expect(parseVlanConf(conf("vlan", ok)).vlanId).toBe(0);
    for (const extra of [
      { ...ok, vlanId: 4095 }, { ...ok, vlanId: -1 }, { ipam: ok.ipam, vlanId: 7 }, { master: "eth1", vlanId: 7 }, { ...ok, vlanId: 7, mtu: -5 },
    ]) {
      expect(codeOf(() => parseVlanConf(conf("vlan", extra)))).toBe(7);
    }
    for (const extra of [{ ...ok, vlanId: "7" }, { ...ok, vlanId: 1.5 }]) {
      expect(codeOf(() => parseVlanConf(conf("vlan", extra)))).toBe(2);
    }
    expect(() => parseVlanConf(conf("vlan", { ipam: ok.ipam, vlanId: 7 }))).toThrow('"master" field is required');
    expect(() => parseVlanConf(conf("vlan", { ...ok, vlanId: 4095 }))).toThrow("invalid VLAN ID 4095");
  });
});
