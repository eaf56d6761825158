import { assertPrivateNetns } from "./guard.ts";
assertPrivateNetns();

import { afterAll, describe, expect, test } from "bun:test";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { ensureBridge } from "../../../src/net/bridge.ts";
import { deleteLink, getLink, setLink } from "../../../src/net/link.ts";
import { createVeth } from "../../../src/net/veth.ts";
import { ipJson } from "./helpers.ts";

const conn = NetlinkConn.open();
afterAll(() => {
  for (const l of ["ckbr0", "ckbr1", "ckbrp0"]) deleteLink(conn, l);
  conn.close();
});

describe("ensureBridge", () => {
  test("creates the bridge up, then finds the same one again", () => {
    const a = ensureBridge(conn, "ckbr0", { mtu: 1400, bridge: { stpState: 0, forwardDelay: 0 } });
    expect(a.kind).toBe("bridge");
    expect(a.up).toBe(true);
    const b = ensureBridge(conn, "ckbr0");
    expect(b.index).toBe(a.index);
    const [ip] = ipJson(null, "-d", "link", "show", "ckbr0");
    expect(ip.linkinfo.info_kind).toBe("bridge");
    expect(ip.flags).toContain("UP");
    expect(ip.mtu).toBe(1400);
    expect(ip.linkinfo.info_data.forward_delay).toBe(0);
  });
  test("brings an existing bridge that is down back up; up: false leaves it down", () => {
    const down = ensureBridge(conn, "ckbr1", { up: false });
    expect(down.up).toBe(false);
    expect(ensureBridge(conn, "ckbr1").up).toBe(true);
  });
  test("a non-bridge of that name is an error", () => {
    createVeth(conn, { name: "ckbrp0", peerName: "ckbrp0p" });
    expect(() => ensureBridge(conn, "ckbrp0")).toThrow("not a bridge");
  });
  test("setLink master attaches a port, null detaches it", () => {
    const br = getLink(conn, "ckbr0");
    setLink(conn, "ckbrp0", { master: "ckbr0", up: true });
    const port = getLink(conn, "ckbrp0");
    expect(port.master).toBe(br.index);
    expect(port.slaveKind).toBe("bridge");
    expect(ipJson(null, "link", "show", "ckbrp0")[0].master).toBe("ckbr0");
    expect(ipJson(null, "link", "show", "master", "ckbr0").map((l) => l.ifname)).toEqual(["ckbrp0"]);
    setLink(conn, port.index, { master: null });
    expect(getLink(conn, "ckbrp0").master).toBeUndefined();
    expect(ipJson(null, "link", "show", "ckbrp0")[0].master).toBeUndefined();
  });
});
