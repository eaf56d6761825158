import { describe, expect, test } from "bun:test";
import { decodeAddr, encodeAddr, IFA_F_NODAD, IFA_F_SECONDARY, INFINITY_LIFE_TIME, RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE } from "../../../src/netlink/addr.ts";
import { toHex } from "../../../src/netlink/bytes.ts";
import { AF_INET, AF_INET6 } from "../../../src/netlink/rtnl.ts";
import { formatIP, parseIP } from "../../../src/spec/ip.ts";
import { dataMessages, loadFixture } from "./fixture.ts";

describe("address requests", () => {
  test("IPv4 address: ifaddrmsg, IFA_LOCAL and IFA_ADDRESS", () => {
    // struct ifaddrmsg: u8 family, u8 prefixlen, u8 flags, u8 scope, u32 index (if_addr.h)
    const b = encodeAddr({ family: AF_INET, prefixLen: 24, index: 5, local: parseIP("10.1.2.3")!, address: parseIP("10.1.2.3")! });
    expect(toHex(b)).toBe(
      "02" + "18" + "00" + "00" + "05000000" +
        "0800" + "0200" + "0a010203" + // IFA_LOCAL
        "0800" + "0100" + "0a010203", // IFA_ADDRESS
    );
  });
  test("IPv6 with IFA_F_NODAD: in ifa_flags and in IFA_FLAGS", () => {
    const b = encodeAddr({ family: AF_INET6, prefixLen: 64, index: 2, flags: IFA_F_NODAD, local: parseIP("fd00::1")! });
    expect(toHex(b)).toBe(
      "0a" + "40" + "02" + "00" + "02000000" +
        "1400" + "0200" + "fd000000000000000000000000000001" +
        "0800" + "0800" + "02000000", // IFA_FLAGS = 8
    );
  });
  test("lifetimes go in IFA_CACHEINFO", () => {
    const back = decodeAddr(encodeAddr({ family: AF_INET, prefixLen: 8, index: 1, preferredLifetime: 0, validLifetime: 60 }));
    expect(back.preferredLifetime).toBe(0);
    expect(back.validLifetime).toBe(60);
  });
});

const SCOPES: Record<string, number> = { global: RT_SCOPE_UNIVERSE, link: RT_SCOPE_LINK, host: RT_SCOPE_HOST };

describe("address dump captured from the kernel", () => {
  const addrs = dataMessages("addr_dump").map((m) => decodeAddr(m.body));
  const oracle = loadFixture("addr_dump").ip as {
    ifindex: number;
    addr_info: { family: string; local: string; prefixlen: number; scope: string; secondary?: boolean; nodad?: boolean; label?: string; valid_life_time: number }[];
  }[];

  test("every address iproute2 saw, with prefix, scope, flags and lifetimes", () => {
    const want = oracle.flatMap((l) => l.addr_info.map((a) => ({ index: l.ifindex, ...a })));
    expect(addrs.length).toBe(want.length);
    for (const w of want) {
      const a = addrs.find((x) => x.index === w.index && formatIP(x.local ?? x.address!) === w.local)!;
      expect(a).toBeDefined();
      expect(a.family).toBe(w.family === "inet" ? AF_INET : AF_INET6);
      expect(a.prefixLen).toBe(w.prefixlen);
      expect(a.scope).toBe(SCOPES[w.scope]);
      expect(((a.flags ?? 0) & IFA_F_SECONDARY) !== 0).toBe(!!w.secondary && w.family === "inet");
      expect(((a.flags ?? 0) & IFA_F_NODAD) !== 0).toBe(!!w.nodad);
      expect(a.label).toBe(w.label);
      expect(a.validLifetime).toBe(w.valid_life_time);
    }
    expect(addrs.some((a) => a.validLifetime === INFINITY_LIFE_TIME)).toBe(true);
  });
});
