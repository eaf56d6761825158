import { assertPrivateNetns } from "./guard.ts";
assertPrivateNetns();

import { afterAll, describe, expect, test } from "bun:test";
import { getSysctl, setSysctl, sysctlPath } from "../../../src/net/sysctl.ts";
import { SysError } from "../../../src/sys/error.ts";
import { addPodNetns, deleteAllPodNetns, nsPath, run } from "./helpers.ts";

const pod = addPodNetns("sysctl");
afterAll(deleteAllPodNetns);

const podSysctl = (key: string) => run("ip", "netns", "exec", pod, "sysctl", "-n", key).trim();

describe("sysctl", () => {
  test("key forms", () => {
    expect(sysctlPath("net.ipv4.ip_forward")).toBe("/proc/sys/net/ipv4/ip_forward");
    expect(sysctlPath("net/ipv4/conf/eth0.100/rp_filter")).toBe("/proc/sys/net/ipv4/conf/eth0.100/rp_filter");
    expect(() => sysctlPath("net/../../etc/passwd")).toThrow(TypeError);
  });
  test("set inside the pod namespace changes only the pod", () => {
    const mine = getSysctl("net.ipv4.ip_forward");
    const other = mine === "1" ? "0" : "1";
    setSysctl("net.ipv4.ip_forward", other, { netns: nsPath(pod) });
    expect(podSysctl("net.ipv4.ip_forward")).toBe(other);
    expect(getSysctl("net.ipv4.ip_forward", { netns: nsPath(pod) })).toBe(other);
    expect(getSysctl("net.ipv4.ip_forward")).toBe(mine);
  });
  test("per-interface keys in slash form", () => {
    setSysctl("net/ipv6/conf/lo/disable_ipv6", 1, { netns: nsPath(pod) });
    expect(podSysctl("net.ipv6.conf.lo.disable_ipv6")).toBe("1");
  });
  test("a missing key is a SysError ENOENT, and the thread is back in its namespace", () => {
    let err: unknown;
    try {
      setSysctl("net.ipv4.conf.cknosuch.forwarding", 1, { netns: nsPath(pod) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SysError);
    expect((err as SysError).code).toBe("ENOENT");
    expect(getSysctl("net.ipv4.conf.lo.forwarding")).toBeDefined();
  });
});
