import { assertPrivateNetns } from "./guard.ts";
assertPrivateNetns();

import { afterAll, describe, expect, test } from "bun:test";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { isExists } from "../../../src/netlink/error.ts";
import { deleteLink, findLink, getLink, setLinkUp } from "../../../src/net/link.ts";
import { withRtnetlink } from "../../../src/net/rtnetlink.ts";
import { createVeth } from "../../../src/net/veth.ts";
import { openNetns } from "../../../src/sys/netns.ts";
import { addPodNetns, deleteAllPodNetns, ipJson, nsPath } from "./helpers.ts";

const conn = NetlinkConn.open();
const pod = addPodNetns("veth");
afterAll(() => {
  deleteLink(conn, "ckveth0");
  deleteLink(conn, "ckveth1");
  conn.close();
  deleteAllPodNetns();
});

describe("createVeth", () => {
  test("the peer is born inside the pod namespace, with MTU and MACs on both ends", () => {
    const pair = createVeth(conn, {
      name: "ckveth0",
      peerName: "eth0",
      peerNetns: nsPath(pod),
      mtu: 1450,
      mac: "02:00:00:aa:00:01",
      peerMac: "02:00:00:aa:00:02",
    });
    expect(pair.link.name).toBe("ckveth0");
    expect(pair.link.kind).toBe("veth");
    expect(pair.link.mtu).toBe(1450);

    const [host] = ipJson(null, "link", "show", "ckveth0");
    expect(host.address).toBe("02:00:00:aa:00:01");
    expect(host.link_netnsid).toBeDefined(); // its peer lives in another namespace
    const [peer] = ipJson(pod, "link", "show", "eth0");
    expect(peer.mtu).toBe(1450);
    expect(peer.address).toBe("02:00:00:aa:00:02");
    expect(peer.ifindex).toBe(pair.peerIndex);
    // and not here
    expect(findLink(conn, "eth0")).toBeNull();
  });
  test("the pod end is visible to a connection opened inside the pod", () => {
    const peer = withRtnetlink((c) => getLink(c, "eth0"), { netns: nsPath(pod) });
    expect(peer.kind).toBe("veth");
    expect(peer.parent).toBe(getLink(conn, "ckveth0").index);
  });
  test("a taken name is EEXIST (in either namespace)", () => {
    let err: unknown;
    try {
      createVeth(conn, { name: "ckveth0", peerName: "ckveth1" });
    } catch (e) {
      err = e;
    }
    expect(isExists(err)).toBe(true);
    const h = openNetns(nsPath(pod));
    try {
      expect(() => createVeth(conn, { name: "ckveth1", peerName: "eth0", peerNetns: h })).toThrow("EEXIST");
    } finally {
      h.close();
    }
    expect(findLink(conn, "ckveth1")).toBeNull();
  });
  test("a pair in one namespace, then deleting one end removes both", () => {
    const pair = createVeth(conn, { name: "ckveth1", peerName: "ckveth1p" });
    setLinkUp(conn, pair.link.index);
    expect(getLink(conn, "ckveth1p").index).toBe(pair.peerIndex);
    expect(deleteLink(conn, "ckveth1")).toBe(true);
    expect(findLink(conn, "ckveth1p")).toBeNull();
  });
  test("deleting the host end removes the pod end", () => {
    expect(deleteLink(conn, "ckveth0")).toBe(true);
    expect(ipJson(pod, "link", "show").map((l) => l.ifname)).toEqual(["lo"]);
  });
});
