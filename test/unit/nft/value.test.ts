import { describe, expect, test } from "bun:test";
import { toHex } from "../../../src/netlink/bytes.ts";
import { byteOrderCode, keyLen, keyTypeId, rawFieldLens } from "../../../src/nft/datatype.ts";
import { concatRegs, reg32 } from "../../../src/nft/registers.ts";
import { concat, ifname, inetProto, inetService, ipv4, ipv6 } from "../../../src/nft/value.ts";

describe("nft data types", () => {
  test("plain types", () => {
    expect([keyTypeId("ipv4_addr"), keyLen("ipv4_addr")]).toEqual([7, 4]);
    expect([keyTypeId("ipv6_addr"), keyLen("ipv6_addr")]).toEqual([8, 16]);
    expect([keyTypeId("inet_proto"), keyLen("inet_proto")]).toEqual([12, 1]);
    expect([keyTypeId("inet_service"), keyLen("inet_service")]).toEqual([13, 2]);
    expect([keyTypeId("mark"), keyLen("mark")]).toEqual([19, 4]);
    expect([keyTypeId("ifname"), keyLen("ifname")]).toEqual([41, 16]);
  });

  test("concatenations: ids shifted by 6 bits, lengths aligned to 4", () => {
    expect(keyTypeId(["ipv4_addr", "inet_service"])).toBe((7 << 6) | 13);
    expect(keyTypeId(["ipv4_addr", "inet_proto", "inet_service"])).toBe((((7 << 6) | 12) << 6) | 13);
    expect(keyLen(["ipv4_addr", "inet_proto", "inet_service"])).toBe(12);
    expect(keyLen(["ipv6_addr", "inet_service"])).toBe(20);
    expect(rawFieldLens(["ipv4_addr", "inet_service"])).toEqual([4, 2]);
    expect(byteOrderCode("mark")).toBe(1);
    expect(byteOrderCode("ipv4_addr")).toBe(2);
    expect(byteOrderCode(["ipv4_addr", "mark"])).toBe(0);
  });
});

describe("nft values", () => {
  test("addresses, ports, protocols, names", () => {
    expect(toHex(ipv4("10.1.2.255"))).toBe("0a0102ff");
    expect(() => ipv4("10.1.2")).toThrow();
    expect(() => ipv4("10.1.2.256")).toThrow();
    expect(toHex(ipv6("fd00::1"))).toBe("fd000000000000000000000000000001");
    expect(toHex(ipv6("::"))).toBe("0".repeat(32));
    expect(toHex(ipv6("1:2:3:4:5:6:7:8"))).toBe("00010002000300040005000600070008");
    expect(() => ipv6("1::2::3")).toThrow();
    expect(() => ipv6("1:2:3")).toThrow();
    expect(toHex(inetService(8080))).toBe("1f90");
    expect(toHex(inetProto("udp"))).toBe("11");
    expect(toHex(ifname("eth0"))).toBe("65746830" + "0".repeat(24));
    expect(() => ifname("a-name-too-long!")).toThrow();
  });

  test("concatenation pads each component to 4 bytes", () => {
    expect(toHex(concat([ipv4("1.2.3.4"), inetProto("tcp"), inetService(80)]))).toBe("010203040600000000500000");
  });

  test("registers", () => {
    expect(reg32(0)).toBe(8);
    expect(concatRegs(reg32(0), [4, 1, 2])).toEqual([8, 9, 10]);
    expect(concatRegs(reg32(0), [16, 2])).toEqual([8, 12]);
    expect(() => concatRegs(reg32(14), [16])).toThrow();
  });
});
