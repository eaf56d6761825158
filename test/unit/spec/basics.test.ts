import { describe, expect, test } from "bun:test";
import { CniError, ErrorCode, isCniErrorJson, toCniError } from "../../../src/spec/error.ts";
import { addIP, bigIntToIP, containsIP, firstHost, formatCIDR, formatIP, ipToBigInt, lastIP, networkOf, parseCIDR, parseIP } from "../../../src/spec/ip.ts";
import { loadCniArgs, parseCniArgs, formatCniArgs } from "../../../src/spec/args.ts";
import { validateContainerId, validateIfName, validateNetworkName } from "../../../src/spec/validate.ts";
import { compareVersions, parseVersionInfo, versionAtLeast } from "../../../src/spec/version.ts";

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    return (e as CniError).code;
  }
  return undefined;
}

describe("CniError", () => {
  test("has the spec's codes", () => {
    expect(ErrorCode).toMatchObject({
      IncompatibleVersion: 1, UnsupportedField: 2, UnknownContainer: 3, InvalidEnvironment: 4, IOFailure: 5,
      DecodingFailure: 6, InvalidNetworkConfig: 7, InvalidNetNS: 8, TryAgainLater: 11, PluginNotAvailable: 50,
      LimitedConnectivity: 51, Internal: 999,
    });
  });
  test("JSON form omits empty details", () => {
    expect(new CniError(7, "bad").toJSON()).toEqual({ cniVersion: "1.1.0", code: 7, msg: "bad" });
    expect(new CniError(7, "bad", "why", "0.4.0").toJSON()).toEqual({ cniVersion: "0.4.0", code: 7, msg: "bad", details: "why" });
  });
  test("toCniError keeps CniErrors and wraps others as 999", () => {
    const e = new CniError(3, "x");
    expect(toCniError(e)).toBe(e);
    expect(toCniError(new Error("boom")).code).toBe(999);
    expect(toCniError("s").message).toBe("s");
    expect(isCniErrorJson({ code: 4, msg: "m" })).toBe(true);
    expect(isCniErrorJson({ cniVersion: "1.0.0", ips: [] })).toBe(false);
  });
});

describe("validation", () => {
  test("container ids", () => {
    expect(codeOf(() => validateContainerId("abc-123_x.y"))).toBeUndefined();
    expect(codeOf(() => validateContainerId(""))).toBe(4);
    expect(codeOf(() => validateContainerId("-abc"))).toBe(4);
    expect(codeOf(() => validateContainerId("a/b"))).toBe(4);
    expect(codeOf(() => validateContainerId("a b"))).toBe(4);
  });
  test("interface names", () => {
    for (const ok of ["eth0", "net1", "a".repeat(15), "veth-x.1"]) expect(codeOf(() => validateIfName(ok))).toBeUndefined();
    for (const bad of ["", ".", "..", "a".repeat(16), "a/b", "a:b", "a b", "a\tb", "é".repeat(8)]) {
      expect(codeOf(() => validateIfName(bad))).toBe(4);
    }
    expect(() => validateIfName("a".repeat(16))).toThrow(/too long/);
  });
  test("network names", () => {
    expect(codeOf(() => validateNetworkName("my-net.1"))).toBeUndefined();
    expect(codeOf(() => validateNetworkName(""))).toBe(7);
    expect(codeOf(() => validateNetworkName("my net"))).toBe(7);
  });
});

describe("IP parsing", () => {
  test("IPv4", () => {
    expect(formatIP(parseIP("10.1.2.3")!)).toBe("10.1.2.3");
    for (const bad of ["10.1.2", "10.1.2.256", "01.1.1.1", "a.b.c.d", "", "1.2.3.4.5"]) expect(parseIP(bad)).toBeNull();
  });
  test("IPv6 canonical form", () => {
    expect(formatIP(parseIP("fd00:0:0:0:0:0:0:1")!)).toBe("fd00::1");
    expect(formatIP(parseIP("::")!)).toBe("::");
    expect(formatIP(parseIP("2001:db8:0:1:1:1:1:1")!)).toBe("2001:db8:0:1:1:1:1:1");
    expect(formatIP(parseIP("::ffff:10.0.0.1")!)).toBe("::ffff:10.0.0.1");
    for (const bad of ["1::2::3", "12345::", "fe80::1%eth0", ":::", "1:2:3:4:5:6:7:8:9"]) expect(parseIP(bad)).toBeNull();
  });
  test("CIDR", () => {
    expect(formatCIDR(parseCIDR("10.1.2.3/24")!)).toBe("10.1.2.3/24");
    expect(formatCIDR(networkOf(parseCIDR("10.1.2.3/20")!))).toBe("10.1.0.0/20");
    expect(parseCIDR("10.0.0.0/33")).toBeNull();
    expect(parseCIDR("fd00::/129")).toBeNull();
    expect(parseCIDR("10.0.0.0")).toBeNull();
    expect(containsIP(parseCIDR("10.1.0.0/16")!, parseIP("10.1.255.3")!)).toBe(true);
    expect(containsIP(parseCIDR("10.1.0.0/16")!, parseIP("10.2.0.1")!)).toBe(false);
    expect(containsIP(parseCIDR("fd00::/8")!, parseIP("10.2.0.1")!)).toBe(false);
  });
});

describe("IP arithmetic", () => {
  const ip = (s: string) => parseIP(s)!;
  test("integers both ways, IPv4 and IPv6", () => {
    expect(ipToBigInt(ip("10.0.1.2"))).toBe(0x0a000102n);
    expect(formatIP(bigIntToIP(0x0a000102n, 4))).toBe("10.0.1.2");
    expect(formatIP(bigIntToIP(ipToBigInt(ip("fd00::1:2")), 16))).toBe("fd00::1:2");
  });
  test("addIP carries across bytes and wraps around the family's space", () => {
    expect(formatIP(addIP(ip("10.0.0.255"), 1n))).toBe("10.0.1.0");
    expect(formatIP(addIP(ip("10.0.1.0"), -1n))).toBe("10.0.0.255");
    expect(formatIP(addIP(ip("255.255.255.255"), 1n))).toBe("0.0.0.0");
    expect(formatIP(addIP(ip("0.0.0.0"), -1n))).toBe("255.255.255.255");
    expect(formatIP(addIP(ip("fd00::ffff"), 1n))).toBe("fd00::1:0");
  });
  test("a prefix's last address and first host", () => {
    expect(formatIP(lastIP(parseCIDR("10.1.2.3/24")!))).toBe("10.1.2.255");
    expect(formatIP(lastIP(parseCIDR("10.1.2.3/32")!))).toBe("10.1.2.3");
    expect(formatIP(lastIP(parseCIDR("fd00::5/120")!))).toBe("fd00::ff");
    expect(formatIP(firstHost(parseCIDR("10.1.2.77/24")!))).toBe("10.1.2.1");
    expect(formatIP(firstHost(parseCIDR("10.1.2.77/23")!))).toBe("10.1.2.1");
    expect(formatIP(firstHost(parseCIDR("fd00::9/64")!))).toBe("fd00::1");
  });
});

describe("CNI_ARGS", () => {
  test("parses pairs and round-trips", () => {
    const pairs = parseCniArgs("IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.5");
    expect(pairs).toEqual([["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"], ["IP", "10.0.0.5"]]);
    expect(formatCniArgs(pairs)).toBe("IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.5");
    expect(parseCniArgs("")).toEqual([]);
    expect(codeOf(() => parseCniArgs("novalue"))).toBe(4);
  });
  test("unknown keys fail unless IgnoreUnknown", () => {
    expect(loadCniArgs("IgnoreUnknown=true;X=1;IP=10.0.0.5", ["IP"])).toEqual({ IP: "10.0.0.5" });
    expect(codeOf(() => loadCniArgs("X=1;IP=10.0.0.5", ["IP"]))).toBe(4);
    expect(codeOf(() => loadCniArgs("IgnoreUnknown=0;X=1", ["IP"]))).toBe(4);
  });
});

describe("versions", () => {
  test("compare", () => {
    expect(compareVersions("0.3.1", "0.4.0")).toBeLessThan(0);
    expect(compareVersions("1.1.0", "1.0.0")).toBeGreaterThan(0);
    expect(versionAtLeast("", "0.1.0")).toBe(true);
    expect(versionAtLeast("0.3.1", "0.4.0")).toBe(false);
    expect(codeOf(() => compareVersions("1.0", "1.0.0"))).toBe(6);
  });
  test("VERSION answers", () => {
    expect(parseVersionInfo({ cniVersion: "1.0.0", supportedVersions: ["0.4.0", "1.0.0"] }).supportedVersions).toEqual(["0.4.0", "1.0.0"]);
    expect(parseVersionInfo({}).supportedVersions).toEqual(["0.1.0"]);
    expect(codeOf(() => parseVersionInfo("x"))).toBe(6);
  });
});
