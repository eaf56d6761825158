/**
 * The IPIP device of the bgp backend's `"Encapsulation": "ipip"` against the kernel, in node
 * namespaces of this test's private namespace: where the kernel has the ipip module, the tunl0
 * device is set up and a `via PEER dev tunl0 onlink` route carries a ping between two nodes; where
 * it has not (reported as skipped, not passed), making the device fails with an error naming the
 * module.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { addAddress } from "../../../src/net/addr.ts";
import { ensureIpipDevice } from "../../../src/net/ipip.ts";
import { addRoute } from "../../../src/net/route.ts";
import { assertPrivateNetns, must, Namespaces, ping, run, runPrefix } from "../../support/netns.ts";

assertPrivateNetns();

const prefix = runPrefix("bi");
const ns = new Namespaces(prefix);
const probe = `${prefix}pr`;
const supported = run(["ip", "link", "add", probe, "type", "ipip"]).code === 0;
run(["ip", "link", "del", probe]);

afterAll(() => ns.cleanup());

describe("ipip tunnel device", () => {
  test.skipIf(supported)("without the ipip module: a clear error naming it, no device left", () => {
    const p = ns.add("x");
    const conn = NetlinkConn.open({ netns: p });
    try {
      expect(() => ensureIpipDevice(conn, { name: "tunl0", mtu: 1480 })).toThrow(/ipip module \(modprobe ipip\)/);
      expect(run(["ip", "-n", `${prefix}x`, "link", "show", "tunl0"]).code).not.toBe(0);
    } finally {
      conn.close();
    }
  });

  test.skipIf(!supported)("tunl0 up with the MTU asked; two nodes ping through `via PEER dev tunl0 onlink`", () => {
    const nodes = ["a", "b"].map((t, i) => {
      const path = ns.add(t);
      return { path, name: `${prefix}${t}`, ip: `192.168.88.${i + 1}`, pod: `10.99.${i + 1}.1` };
    });
    must(["ip", "link", "add", `${prefix}va`, "netns", nodes[0]!.name, "type", "veth", "peer", "name", `${prefix}vb`, "netns", nodes[1]!.name]);
    for (const [i, n] of nodes.entries()) {
      const conn = NetlinkConn.open({ netns: n.path });
      try {
        const dev = `${prefix}v${i === 0 ? "a" : "b"}`;
        must(["ip", "-n", n.name, "addr", "add", `${n.ip}/24`, "dev", dev]);
        must(["ip", "-n", n.name, "link", "set", dev, "up"]);
        const tun = ensureIpipDevice(conn, { name: "tunl0", mtu: 1480 });
        expect(tun.up).toBe(true);
        expect(tun.mtu).toBe(1480);
        expect(ensureIpipDevice(conn, { name: "tunl0", mtu: 1480 }).index).toBe(tun.index); // taken as it is
        addAddress(conn, { link: tun.index, address: `${n.pod}/32` });
        const peer = nodes[1 - i]!;
        addRoute(conn, { dst: `${peer.pod}/32`, gateway: peer.ip, link: tun.index, onlink: true });
      } finally {
        conn.close();
      }
    }
    expect(ping(nodes[0]!.path, nodes[1]!.pod)).toBe(true);
  });
});
