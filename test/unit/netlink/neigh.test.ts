import { describe, expect, test } from "bun:test";
import { toHex } from "../../../src/netlink/bytes.ts";
import { decodeNeigh, encodeNeigh, NTF_MASTER, NTF_SELF, NUD_PERMANENT } from "../../../src/netlink/neigh.ts";
import { AF_BRIDGE, AF_INET } from "../../../src/netlink/rtnl.ts";
import { formatIP, parseIP } from "../../../src/spec/ip.ts";
import { dataMessages, loadFixture, mac } from "./fixture.ts";

const MAC = Uint8Array.of(2, 0, 0, 0, 0, 0x77);

describe("neighbour requests", () => {
  test("FDB entry on a vxlan device (struct ndmsg, NTF_SELF, NDA_LLADDR, NDA_DST)", () => {
    // struct ndmsg: u8 family, u8 pad1, u16 pad2, s32 ifindex, u16 state, u8 flags, u8 type
    const b = encodeNeigh({ family: AF_BRIDGE, index: 9, state: NUD_PERMANENT, flags: NTF_SELF, lladdr: MAC, dst: parseIP("10.9.0.99")! });
    expect(toHex(b)).toBe(
      "07" + "00" + "0000" + "09000000" + "8000" + "02" + "00" +
        "0800" + "0100" + "0a090063" + // NDA_DST
        "0a00" + "0200" + "020000000077" + "0000", // NDA_LLADDR
    );
  });
  test("NTF_MASTER entry with VLAN and master round-trips", () => {
    const back = decodeNeigh(encodeNeigh({ family: AF_BRIDGE, index: 4, flags: NTF_MASTER, lladdr: MAC, vlan: 10, master: 3, vni: 7, port: 4789 }));
    expect(back).toMatchObject({ family: AF_BRIDGE, index: 4, flags: NTF_MASTER, vlan: 10, master: 3, vni: 7, port: 4789 });
  });
});

describe("neighbour dumps captured from the kernel", () => {
  const links = new Map<string, number>(
    (loadFixture("link_dump").ip as { ifname: string; ifindex: number }[]).map((l) => [l.ifname, l.ifindex]),
  );
  test("ARP entry", () => {
    const n = dataMessages("neigh_dump").map((m) => decodeNeigh(m.body));
    const o = loadFixture("neigh_dump").ip[0];
    const e = n.find((x) => x.dst && formatIP(x.dst) === o.dst)!;
    expect(e.family).toBe(AF_INET);
    expect(mac(e.lladdr)).toBe(o.lladdr);
    expect(e.index).toBe(links.get(o.dev)!);
    expect(e.state).toBe(NUD_PERMANENT);
  });
  test("FDB: every entry bridge(8) listed, the vxlan one with its remote", () => {
    const n = dataMessages("fdb_dump").map((m) => decodeNeigh(m.body));
    const oracle = loadFixture("fdb_dump").ip as { mac: string; ifname: string; dst?: string; flags: string[] }[];
    expect(n.length).toBe(oracle.length);
    expect(n.every((x) => x.family === AF_BRIDGE)).toBe(true);
    for (const o of oracle) {
      const e = n.find((x) => mac(x.lladdr) === o.mac && x.index === links.get(o.ifname))!;
      expect(e).toBeDefined();
      expect(e.dst && formatIP(e.dst)).toBe(o.dst);
      expect(((e.flags ?? 0) & NTF_SELF) !== 0).toBe(o.flags.includes("self"));
    }
  });
});
