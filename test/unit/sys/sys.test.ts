// These tests use the real kernel but change nothing: they read the current namespace, enter the
// namespace the thread is already in, take locks on temporary files, and dump links read-only.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errnoMessage, errnoName } from "../../../src/sys/errno.ts";
import { SysError } from "../../../src/sys/error.ts";
import { lockFile, withFileLock } from "../../../src/sys/flock.ts";
import { netnsInode, openNetns, THREAD_NETNS_PATH, withNetns } from "../../../src/sys/netns.ts";
import { getpid, gettid } from "../../../src/sys/process.ts";
import { NetlinkProtocol, openNetlinkSocket } from "../../../src/sys/socket.ts";

const dir = mkdtempSync(join(tmpdir(), "cnikit-sys-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("errno and SysError", () => {
  test("names and messages", () => {
    expect(errnoName(17)).toBe("EEXIST");
    expect(errnoMessage(2)).toBe("No such file or directory");
    expect(errnoName(4095)).toBe("E4095");
  });
  test("SysError carries errno, code and call", () => {
    const e = new SysError(1, "setns", "/run/netns/x");
    expect(e.message).toBe("setns /run/netns/x: Operation not permitted (EPERM)");
    expect([e.errno, e.code, e.syscall]).toEqual([1, "EPERM", "setns"]);
  });
  test("from() converts node:fs errors", () => {
    const e = SysError.from(Object.assign(new Error("x"), { errno: -13, code: "EACCES" }), "open") as SysError;
    expect(e).toBeInstanceOf(SysError);
    expect(e.errno).toBe(13);
  });
});

describe("process ids", () => {
  test("getpid matches process.pid; the JS thread is the main thread", () => {
    expect(getpid()).toBe(process.pid);
    expect(gettid()).toBe(process.pid);
  });
});

describe("network namespaces", () => {
  test("withNetns into the current namespace runs fn and returns its value", () => {
    const before = netnsInode(THREAD_NETNS_PATH);
    expect(withNetns(`/proc/${process.pid}/ns/net`, () => netnsInode(THREAD_NETNS_PATH))).toBe(before);
    expect(netnsInode(THREAD_NETNS_PATH)).toBe(before);
  });
  test("errors from fn propagate, after switching back", () => {
    expect(() => withNetns(THREAD_NETNS_PATH, () => {
      throw new Error("boom");
    })).toThrow("boom");
  });
  test("a promise-returning fn is refused", () => {
    expect(() => withNetns(THREAD_NETNS_PATH, async () => 1)).toThrow("synchronous");
  });
  test("a missing namespace file is a SysError ENOENT", () => {
    try {
      withNetns("/run/netns/cnikit-does-not-exist", () => 1);
      throw new Error("not reached");
    } catch (e) {
      expect(e).toBeInstanceOf(SysError);
      expect((e as SysError).code).toBe("ENOENT");
    }
  });
  test("a file that is not a namespace is refused by setns (EINVAL)", () => {
    expect(() => withNetns("/proc/self/status", () => 1)).toThrow("EINVAL");
  });
  test("openNetns gives a handle usable by withNetns; close twice is safe", () => {
    const h = openNetns(THREAD_NETNS_PATH);
    expect(h.fd).toBeGreaterThan(2);
    expect(withNetns(h, () => 7)).toBe(7);
    h.close();
    h.close();
  });
});

describe("netlink socket", () => {
  test("opens, sends a link dump request and receives the kernel's answer", () => {
    const s = openNetlinkSocket(NetlinkProtocol.ROUTE);
    expect(s.portId).toBeGreaterThan(0);
    // RTM_GETLINK dump: nlmsghdr (len 32, type 18, flags REQUEST|DUMP, seq 1) + zeroed ifinfomsg
    const req = new Uint8Array(32);
    const v = new DataView(req.buffer);
    v.setUint32(0, 32, true);
    v.setUint16(4, 18, true);
    v.setUint16(6, 0x301, true);
    v.setUint32(8, 1, true);
    s.send(req);
    const d = s.recv();
    expect(d.length).toBeGreaterThan(16);
    expect(new DataView(d.buffer).getUint32(8, true)).toBe(1);
    s.close();
    s.close();
    expect(() => s.recv()).toThrow("EBADF");
  });
  test("an unknown protocol is EPROTONOSUPPORT", () => {
    expect(() => openNetlinkSocket(250)).toThrow("EPROTONOSUPPORT");
  });
});

describe("flock", () => {
  test("an exclusive lock excludes a second one until unlocked", () => {
    const p = join(dir, "lock");
    const a = lockFile(p);
    expect(() => lockFile(p, { noWait: true })).toThrow("EAGAIN");
    a.unlock();
    a.unlock();
    const b = lockFile(p, { noWait: true });
    b.unlock();
  });
  test("shared locks coexist", () => {
    const p = join(dir, "shared");
    const a = lockFile(p, { shared: true });
    const b = lockFile(p, { shared: true, noWait: true });
    expect(() => lockFile(p, { noWait: true })).toThrow(SysError);
    a.unlock();
    b.unlock();
  });
  test("withFileLock releases after sync and async functions", async () => {
    const p = join(dir, "with");
    expect(withFileLock(p, () => 3)).toBe(3);
    lockFile(p, { noWait: true }).unlock();
    const pending = withFileLock(p, async () => {
      expect(() => lockFile(p, { noWait: true })).toThrow(SysError);
      return 4;
    });
    expect(await pending).toBe(4);
    lockFile(p, { noWait: true }).unlock();
    expect(() => withFileLock(p, () => {
      throw new Error("x");
    })).toThrow("x");
    lockFile(p, { noWait: true }).unlock();
  });
  test("a lock in a missing directory is ENOENT", () => {
    expect(() => lockFile(join(dir, "no", "such"))).toThrow("ENOENT");
  });
});
