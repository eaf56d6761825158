import { assertPrivateNetns } from "./guard.ts";
assertPrivateNetns();

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { NTF_SELF, NUD_PERMANENT } from "../../../src/netlink/neigh.ts";
import { addAddress } from "../../../src/net/addr.ts";
import { createLink, deleteLink, setLinkUp } from "../../../src/net/link.ts";
import { deleteNeighbor, listNeighbors, setNeighbor } from "../../../src/net/neigh.ts";
import { createVeth } from "../../../src/net/veth.ts";
import { ipJson, run } from "./helpers.ts";

const conn = NetlinkConn.open();
beforeAll(() => {
  createVeth(conn, { name: "ckun0", peerName: "ckun0p" });
  setLinkUp(conn, "ckun0");
  addAddress(conn, { link: "ckun0", address: "10.132.0.1/24" });
});
afterAll(() => {
  deleteLink(conn, "ckvx0");
  deleteLink(conn, "ckun0");
  conn.close();
});

describe("neighbours and FDB", () => {
  test("a vxlan device with an FDB entry for a remote VTEP and an ARP entry", () => {
    const vx = createLink(conn, {
      name: "ckvx0",
      info: { kind: "vxlan", vxlan: { id: 77, port: 8472, learning: false, local: Uint8Array.of(10, 132, 0, 1) } },
    });
    setLinkUp(conn, vx.index);
    const [d] = ipJson(null, "-d", "link", "show", "ckvx0");
    expect(d.linkinfo.info_data).toMatchObject({ id: 77, port: 8472, learning: false, local: "10.132.0.1" });

    setNeighbor(conn, { link: "ckvx0", fdb: true, mac: "02:00:00:00:77:01", ip: "10.132.0.9" });
    setNeighbor(conn, { link: "ckvx0", fdb: true, mac: "02:00:00:00:77:01", ip: "10.132.0.9" }); // idempotent
    const fdb = JSON.parse(run("bridge", "-j", "fdb", "show", "dev", "ckvx0")) as any[];
    const e = fdb.find((x) => x.mac === "02:00:00:00:77:01")!;
    expect(e.dst).toBe("10.132.0.9");
    expect(e.flags).toContain("self");
    expect(e.state).toBe("permanent");
    const ours = listNeighbors(conn, { link: "ckvx0", fdb: true }).find((x) => x.mac === "02:00:00:00:77:01")!;
    expect(ours).toMatchObject({ ip: "10.132.0.9", state: NUD_PERMANENT });
    expect(ours.flags & NTF_SELF).toBe(NTF_SELF);

    setNeighbor(conn, { link: "ckvx0", ip: "10.133.0.0", mac: "02:00:00:00:77:01" });
    const [arp] = ipJson(null, "-4", "neigh", "show", "dev", "ckvx0");
    expect(arp).toMatchObject({ dst: "10.133.0.0", lladdr: "02:00:00:00:77:01", state: ["PERMANENT"] });
    expect(listNeighbors(conn, { link: "ckvx0" }).map((n) => n.ip)).toContain("10.133.0.0");
  });
  test("delete: true, then false", () => {
    const fdb = { link: "ckvx0", fdb: true, mac: "02:00:00:00:77:01", ip: "10.132.0.9" } as const;
    expect(deleteNeighbor(conn, fdb)).toBe(true);
    expect(deleteNeighbor(conn, fdb)).toBe(false);
    const arp = { link: "ckvx0", ip: "10.133.0.0", mac: "02:00:00:00:77:01" };
    expect(deleteNeighbor(conn, arp)).toBe(true);
    expect(deleteNeighbor(conn, arp)).toBe(false);
    expect(deleteNeighbor(conn, { ...arp, link: "cknosuch" })).toBe(false);
    expect(ipJson(null, "-4", "neigh", "show", "dev", "ckvx0")).toEqual([]);
    expect(listNeighbors(conn, { link: "ckvx0", fdb: true }).map((n) => n.mac)).not.toContain("02:00:00:00:77:01");
  });
});
