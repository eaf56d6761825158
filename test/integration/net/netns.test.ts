import { assertPrivateNetns } from "./guard.ts";
assertPrivateNetns();

import { afterAll, describe, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { listLinks } from "../../../src/net/link.ts";
import { SysError } from "../../../src/sys/error.ts";
import { netnsInode, openNetns, THREAD_NETNS_PATH, withNetns } from "../../../src/sys/netns.ts";
import { NetlinkProtocol, openNetlinkSocketIn } from "../../../src/sys/socket.ts";
import { addPodNetns, deleteAllPodNetns, nsPath, run } from "./helpers.ts";

const pod = addPodNetns("ns");
afterAll(deleteAllPodNetns);
const own = () => statSync(THREAD_NETNS_PATH).ino;

describe("withNetns in a real pod namespace", () => {
  test("fn runs inside the pod, and the thread returns to its own namespace", () => {
    const home = own();
    const podIno = netnsInode(nsPath(pod));
    expect(podIno).not.toBe(home);
    expect(withNetns(nsPath(pod), own)).toBe(podIno);
    expect(own()).toBe(home);
  });
  test("also after fn throws", () => {
    const home = own();
    expect(() => withNetns(nsPath(pod), () => {
      throw new Error("inside");
    })).toThrow("inside");
    expect(own()).toBe(home);
  });
  test("nested namespaces unwind in order", () => {
    const home = own();
    const h = openNetns(`/proc/${process.pid}/ns/net`);
    try {
      const seen = withNetns(nsPath(pod), () => [own(), withNetns(h, own), own()]);
      expect(seen).toEqual([netnsInode(nsPath(pod)), home, netnsInode(nsPath(pod))]);
    } finally {
      h.close();
    }
    expect(own()).toBe(home);
  });
  test("a socket opened inside stays bound to the pod after stepping out", () => {
    const conn = new NetlinkConn(openNetlinkSocketIn(nsPath(pod), NetlinkProtocol.ROUTE));
    try {
      run("ip", "-n", pod, "link", "add", "ckns0", "type", "bridge");
      expect(listLinks(conn).map((l) => l.name).sort()).toEqual(["ckns0", "lo"]);
    } finally {
      conn.close();
    }
  });
  test("a missing namespace is a SysError ENOENT", () => {
    expect(() => NetlinkConn.open({ netns: nsPath("cknosuch-ns") })).toThrow(SysError);
  });
});
