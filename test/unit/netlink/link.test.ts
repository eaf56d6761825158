import { describe, expect, test } from "bun:test";
import { toHex } from "../../../src/netlink/bytes.ts";
import {
  decodeLink,
  encodeLink,
  IF_OPER,
  IFF_UP,
  type LinkMessage,
} from "../../../src/netlink/link.ts";
import { IPVLAN_MODE, MACVLAN_MODE } from "../../../src/netlink/link_kind.ts";
import { dataMessages, loadFixture, mac } from "./fixture.ts";

const hex = (...parts: string[]) => parts.join("");
// struct ifinfomsg (include/uapi/linux/rtnetlink.h): u8 family, u8 pad, u16 type, i32 index,
// u32 flags, u32 change.
const IFINFO_ZERO = hex("00", "00", "0000", "00000000", "00000000", "00000000");

describe("link requests", () => {
  test("set up by index: flags and change carry IFF_UP only", () => {
    const b = encodeLink({ index: 7, flags: IFF_UP, change: IFF_UP });
    expect(toHex(b)).toBe(hex("00", "00", "0000", "07000000", "01000000", "01000000"));
  });
  test("set down: flags 0, change IFF_UP", () => {
    const b = encodeLink({ index: 7, flags: 0, change: IFF_UP });
    expect(toHex(b)).toBe(hex("00", "00", "0000", "07000000", "00000000", "01000000"));
  });
  test("flags without an explicit change mask change only those bits", () => {
    expect(toHex(encodeLink({ index: 1, flags: IFF_UP })).slice(16)).toBe(hex("01000000", "01000000"));
  });
  test("veth with its peer created in another namespace (VETH_INFO_PEER holds an ifinfomsg)", () => {
    const b = encodeLink({
      name: "veth0",
      info: { kind: "veth", peer: { name: "eth0", mtu: 1400, netnsFd: 5 } },
    });
    expect(toHex(b)).toBe(
      hex(
        IFINFO_ZERO,
        "0a00", "0300", "766574683000", "0000", // IFLA_IFNAME "veth0"
        "4400", "1200", //                          IFLA_LINKINFO, 68 bytes
        "0900", "0100", "7665746800", "000000", //    IFLA_INFO_KIND "veth"
        "3400", "0200", //                            IFLA_INFO_DATA, 52 bytes
        "3000", "0100", //                              VETH_INFO_PEER, 48 bytes
        IFINFO_ZERO, //                                  the peer's ifinfomsg
        "0900", "0300", "6574683000", "000000", //       IFLA_IFNAME "eth0"
        "0800", "0400", "78050000", //                   IFLA_MTU 1400
        "0800", "1c00", "05000000", //                   IFLA_NET_NS_FD 5
      ),
    );
  });
  test("master, mtu, address and namespace pid", () => {
    const b = encodeLink({ index: 3, mtu: 9000, master: 2, address: Uint8Array.of(2, 0, 0, 0, 0, 1), netnsPid: 99 });
    expect(toHex(b)).toBe(
      hex(
        "00", "00", "0000", "03000000", "00000000", "00000000",
        "0800", "0400", "28230000", // IFLA_MTU
        "0a00", "0100", "020000000001", "0000", // IFLA_ADDRESS
        "0800", "0a00", "02000000", // IFLA_MASTER
        "0800", "1300", "63000000", // IFLA_NET_NS_PID
      ),
    );
  });
  test("IPv4 BIG TCP: IFLA_GSO_IPV4_MAX_SIZE (63) and IFLA_GRO_IPV4_MAX_SIZE (64), u32 each; TSO maximum decoded", () => {
    const b = encodeLink({ index: 4, gsoIPv4MaxSize: 196608, groIPv4MaxSize: 196608 });
    expect(toHex(b)).toBe(
      hex(
        "00", "00", "0000", "04000000", "00000000", "00000000",
        "0800", "3f00", "00000300", // IFLA_GSO_IPV4_MAX_SIZE 196608
        "0800", "4000", "00000300", // IFLA_GRO_IPV4_MAX_SIZE 196608
      ),
    );
    // as a dump carries them, with IFLA_TSO_MAX_SIZE (59) 524280
    const dumped = new Uint8Array([...b, ...[0x08, 0x00, 0x3b, 0x00, 0xf8, 0xff, 0x07, 0x00]]);
    expect(decodeLink(dumped)).toMatchObject({ index: 4, gsoIPv4MaxSize: 196608, groIPv4MaxSize: 196608, tsoMaxSize: 524280 });
  });
  test("bridge data", () => {
    const b = encodeLink({ name: "b", info: { kind: "bridge", bridge: { stpState: 0, vlanFiltering: true } } });
    expect(toHex(b)).toBe(
      hex(
        IFINFO_ZERO,
        "0600", "0300", "6200", "0000",
        "2400", "1200",
        "0b00", "0100", "627269646765", "00", "00", // "bridge"
        "1400", "0200",
        "0800", "0500", "00000000", // IFLA_BR_STP_STATE 0
        "0500", "0700", "01", "000000", // IFLA_BR_VLAN_FILTERING 1
      ),
    );
  });
  test("vxlan data: id, local, port in network order, learning, link", () => {
    const b = encodeLink({
      info: { kind: "vxlan", vxlan: { id: 42, local: Uint8Array.of(10, 0, 0, 1), link: 2, learning: false, port: 8472 } },
    });
    const data = toHex(b).slice(IFINFO_ZERO.length + 2 * (4 + 12));
    expect(data).toBe(
      hex(
        "2c00", "0200",
        "0800", "0100", "2a000000", // IFLA_VXLAN_ID
        "0800", "0400", "0a000001", // IFLA_VXLAN_LOCAL
        "0800", "0300", "02000000", // IFLA_VXLAN_LINK
        "0500", "0700", "00", "000000", // IFLA_VXLAN_LEARNING
        "0600", "0f00", "2118", "0000", // IFLA_VXLAN_PORT 8472 (big-endian)
      ),
    );
  });
  test("vxlan external (collect metadata, the eBPF datapath's tunnel device): IFLA_VXLAN_COLLECT_METADATA u8 1", () => {
    const b = encodeLink({ info: { kind: "vxlan", vxlan: { external: true, port: 8472 } } });
    expect(toHex(b).slice(-2 * 16)).toBe(
      hex(
        "0600", "0f00", "2118", "0000", // IFLA_VXLAN_PORT 8472 (big-endian)
        "0500", "1900", "01", "000000", // IFLA_VXLAN_COLLECT_METADATA (25) = 1
      ),
    );
    expect(decodeLink(b).info!.vxlan!.external).toBe(true);
    const plain = encodeLink({ info: { kind: "vxlan", vxlan: { port: 8472 } } });
    expect(toHex(plain)).not.toContain("05001900");
  });
  test("vxlan IPv6 group and local pick the *6 attributes", () => {
    const v6 = new Uint8Array(16);
    v6[0] = 0xfd;
    const b = encodeLink({ info: { kind: "vxlan", vxlan: { group: v6, local: v6 } } });
    const back = decodeLink(b);
    expect(back.info!.vxlan!.group![0]).toBe(0xfd);
    expect(toHex(b)).toContain("14001000fd"); // IFLA_VXLAN_GROUP6 = 16
    expect(toHex(b)).toContain("14001100fd"); // IFLA_VXLAN_LOCAL6 = 17
  });
  test("macvlan, ipvlan and vlan data", () => {
    const tail = (m: LinkMessage, bytes = 12) => toHex(encodeLink(m)).slice(-2 * bytes);
    expect(tail({ link: 2, info: { kind: "macvlan", macvlan: { mode: MACVLAN_MODE.bridge } } })).toBe(
      hex("0c00", "0200", "0800", "0100", "04000000"),
    );
    expect(tail({ link: 2, info: { kind: "ipvlan", ipvlan: { mode: IPVLAN_MODE.l3, flags: 0 } } }, 16)).toBe(
      hex("0600", "0100", "0100", "0000", "0600", "0200", "0000", "0000"),
    );
    expect(tail({ link: 2, info: { kind: "vlan", vlan: { id: 100, protocol: 0x8100 } } }, 16)).toBe(
      hex("0600", "0100", "6400", "0000", "0600", "0500", "8100", "0000"),
    );
  });
  test("encoded requests decode back to the same fields", () => {
    const m: LinkMessage = {
      family: 0, type: 1, index: 4, flags: IFF_UP, name: "x", mtu: 1280, master: 3,
      info: { kind: "ipvlan", ipvlan: { mode: 2, flags: 1 } },
    };
    const back = decodeLink(encodeLink(m));
    expect(back).toMatchObject({ index: 4, flags: IFF_UP, name: "x", mtu: 1280, master: 3 });
    expect(back.info).toMatchObject({ kind: "ipvlan", ipvlan: { mode: 2, flags: 1 } });
  });
});

const OPER: Record<string, number> = { UNKNOWN: IF_OPER.unknown, DOWN: IF_OPER.down, UP: IF_OPER.up, LOWERLAYERDOWN: IF_OPER.lowerlayerdown };

describe("link dump captured from the kernel", () => {
  const fx = loadFixture("link_dump");
  const links = dataMessages("link_dump").map((m) => decodeLink(m.body));
  const byName = new Map(links.map((l) => [l.name!, l]));
  const oracle: any[] = fx.ip;

  test("every link iproute2 saw is decoded, with the same index, name, MTU, MAC and state", () => {
    expect(links.length).toBe(oracle.length);
    for (const o of oracle) {
      const l = byName.get(o.ifname)!;
      expect(l).toBeDefined();
      expect(l.index).toBe(o.ifindex);
      expect(l.mtu).toBe(o.mtu);
      expect(mac(l.address)).toBe(o.address);
      expect(((l.flags ?? 0) & IFF_UP) !== 0).toBe(o.flags.includes("UP"));
      expect(l.operState).toBe(OPER[o.operstate]);
      expect(l.info?.kind).toBe(o.linkinfo?.info_kind);
      expect(l.minMtu).toBe(o.min_mtu);
      expect(l.maxMtu).toBe(o.max_mtu);
      if (o.master) expect(l.master).toBe(byName.get(o.master)!.index);
      else expect(l.master ?? 0).toBe(0);
      if (o.link) expect(l.link).toBe(byName.get(o.link)!.index);
    }
  });
  test("bridge port: slave kind and master", () => {
    const port = byName.get("veth0")!;
    expect(port.info!.slaveKind).toBe("bridge");
    expect(port.master).toBe(byName.get("br0")!.index);
  });
  test("bridge settings", () => {
    const o = oracle.find((x) => x.ifname === "br0").linkinfo.info_data;
    expect(byName.get("br0")!.info!.bridge).toMatchObject({
      forwardDelay: o.forward_delay,
      helloTime: o.hello_time,
      maxAge: o.max_age,
      ageingTime: o.ageing_time,
      stpState: o.stp_state,
      priority: o.priority,
      vlanFiltering: o.vlan_filtering === 1,
      mcastSnooping: o.mcast_snooping === 1,
    });
  });
  test("vxlan settings", () => {
    const o = oracle.find((x) => x.ifname === "vxlan0").linkinfo.info_data;
    const v = byName.get("vxlan0")!.info!.vxlan!;
    expect(v.id).toBe(o.id);
    expect(Array.from(v.local!).join(".")).toBe(o.local);
    expect(v.port).toBe(o.port);
    expect(v.learning).toBe(o.learning);
    expect(v.ttl).toBe(o.ttl);
    expect(v.ageing).toBe(o.ageing);
    expect(v.udpCsum).toBe(o.udp_csum);
    expect(v.link).toBe(byName.get(o.link)!.index);
  });
  test("macvlan mode", () => {
    expect(byName.get("mv0")!.info!.macvlan!.mode).toBe(MACVLAN_MODE.bridge);
  });
  test("veth peers point at each other through IFLA_LINK", () => {
    expect(byName.get("veth0")!.link).toBe(byName.get("veth1")!.index);
    expect(byName.get("veth1")!.link).toBe(byName.get("veth0")!.index);
  });
});
