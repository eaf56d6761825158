/**
 * The ipip device request, byte by byte against the UAPI layout (include/uapi/linux/if_link.h and
 * if_tunnel.h): IFLA_LINKINFO { IFLA_INFO_KIND "ipip", IFLA_INFO_DATA { IFLA_IPTUN_* } }.
 */

import { describe, expect, test } from "bun:test";
import { Attrs } from "../../../src/netlink/attr.ts";
import { toHex } from "../../../src/netlink/bytes.ts";
import { encodeLink } from "../../../src/netlink/link.ts";
import { decodeIpip, IFLA_IPTUN_LINK, IFLA_IPTUN_LOCAL, IFLA_IPTUN_PMTUDISC, IFLA_IPTUN_REMOTE, IFLA_IPTUN_TOS, IFLA_IPTUN_TTL } from "../../../src/netlink/link_kind.ts";
import { ipipLinkMessage } from "../../../src/net/ipip.ts";

const hex = (...parts: string[]) => parts.join("");
// struct ifinfomsg: u8 family, u8 pad, u16 type, i32 index, u32 flags, u32 change
const IFINFO_ZERO = hex("00", "00", "0000", "00000000", "00000000", "00000000");

describe("ipip requests", () => {
  test("attribute numbers are the UAPI's", () => {
    expect([IFLA_IPTUN_LINK, IFLA_IPTUN_LOCAL, IFLA_IPTUN_REMOTE, IFLA_IPTUN_TTL, IFLA_IPTUN_TOS, IFLA_IPTUN_PMTUDISC]).toEqual([1, 2, 3, 4, 5, 10]);
  });

  test("a tunl0-style device: no local, no remote; TTL inherit (0), TOS inherit (1), PMTU discovery on", () => {
    const b = encodeLink(ipipLinkMessage({ name: "ckbtun0", mtu: 1480 }));
    expect(toHex(b)).toBe(
      hex(
        IFINFO_ZERO,
        "0c00", "0300", "636b6274756e3000", //   IFLA_IFNAME "ckbtun0"
        "0800", "0400", "c8050000", //           IFLA_MTU 1480
        "2c00", "1200", //                       IFLA_LINKINFO, 44 bytes
        "0900", "0100", "6970697000", "000000", //  IFLA_INFO_KIND "ipip"
        "1c00", "0200", //                          IFLA_INFO_DATA, 28 bytes
        "0500", "0400", "00", "000000", //            IFLA_IPTUN_TTL 0
        "0500", "0500", "01", "000000", //            IFLA_IPTUN_TOS 1
        "0500", "0a00", "01", "000000", //            IFLA_IPTUN_PMTUDISC 1
      ),
    );
  });

  test("a point-to-point device: underlay link, local and remote addresses in network order", () => {
    const b = encodeLink(ipipLinkMessage({ name: "ckbt1", data: { link: 3, local: Uint8Array.of(192, 168, 1, 1), remote: Uint8Array.of(192, 168, 2, 9), ttl: 64 } }));
    expect(toHex(b)).toBe(
      hex(
        IFINFO_ZERO,
        "0a00", "0300", "636b62743100", "0000", // IFLA_IFNAME "ckbt1"
        "3400", "1200", //                        IFLA_LINKINFO, 52 bytes
        "0900", "0100", "6970697000", "000000",
        "2400", "0200", //                          IFLA_INFO_DATA, 36 bytes
        "0800", "0100", "03000000", //                IFLA_IPTUN_LINK 3
        "0800", "0200", "c0a80101", //                IFLA_IPTUN_LOCAL 192.168.1.1
        "0800", "0300", "c0a80209", //                IFLA_IPTUN_REMOTE 192.168.2.9
        "0500", "0400", "40", "000000", //            IFLA_IPTUN_TTL 64
      ),
    );
  });

  test("IFLA_INFO_DATA decodes back", () => {
    const m = ipipLinkMessage({ name: "x", data: { link: 7, local: Uint8Array.of(10, 0, 0, 1), ttl: 0, tos: 1, pmtudisc: true } });
    expect(decodeIpip(Attrs.parse(m.info!.data!))).toEqual({ link: 7, local: Uint8Array.of(10, 0, 0, 1), ttl: 0, tos: 1, pmtudisc: true });
  });

  test("an IPv6 address is refused", () => {
    expect(() => ipipLinkMessage({ name: "x", data: { local: new Uint8Array(16) } })).toThrow(/not an IPv4 address/);
  });
});
