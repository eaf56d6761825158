import { describe, expect, test } from "bun:test";
import { decodeLease, encodeLease, leaseId, leaseKey, pickFreeSubnet, subnetOfKey, subnetsOfKey } from "../../../src/agent/lease.ts";
import { parseNetworkConfig } from "../../../src/agent/netconfig.ts";
import { formatCIDR, formatIP, parseCIDR } from "../../../src/spec/ip.ts";

const fmt = (p: { network: any; subnetLen: number; subnetMin: Uint8Array; subnetMax: Uint8Array }) =>
  [formatCIDR(p.network), p.subnetLen, formatIP(p.subnetMin), formatIP(p.subnetMax)];

describe("network config (flannel's format and defaults)", () => {
  test("defaults: /24 subnets from the second to the last, vxlan VNI 1 port 8472", () => {
    const c = parseNetworkConfig(JSON.stringify({ Network: "10.244.0.0/16" }));
    expect(fmt(c.v4!)).toEqual(["10.244.0.0/16", 24, "10.244.1.0", "10.244.255.0"]);
    expect(c.backend).toEqual({ type: "vxlan", vni: 1, port: 8472, directRouting: false, datapath: "kernel", bigTcp: false });
    expect(c.v6).toBeUndefined();
  });
  test("a network smaller than /22 gets subnets two bits longer", () => {
    expect(parseNetworkConfig(JSON.stringify({ Network: "10.1.0.0/24" })).v4!.subnetLen).toBe(26);
  });
  test("explicit values, IPv6, host-gw", () => {
    const c = parseNetworkConfig(JSON.stringify({
      Network: "10.0.0.0/8", SubnetLen: 20, SubnetMin: "10.10.0.0", SubnetMax: "10.20.0.0",
      IPv6Network: "fd10::/48", Backend: { Type: "host-gw" },
    }));
    expect(fmt(c.v4!)).toEqual(["10.0.0.0/8", 20, "10.10.0.0", "10.20.0.0"]);
    expect(fmt(c.v6!)).toEqual(["fd10::/48", 64, "fd10:0:0:1::", "fd10:0:0:ffff::"]);
    expect(c.backend.type).toBe("host-gw");
  });
  test("vxlan's Datapath: ebpf, or the kernel's; only with vxlan", () => {
    expect(parseNetworkConfig(JSON.stringify({ Network: "10.244.0.0/16", Backend: { Type: "vxlan", Datapath: "ebpf" } })).backend.datapath).toBe("ebpf");
    expect(() => parseNetworkConfig(JSON.stringify({ Network: "10.244.0.0/16", Backend: { Datapath: "xdp" } }))).toThrow(/Backend.Datapath "xdp"/);
    expect(() => parseNetworkConfig(JSON.stringify({ Network: "10.244.0.0/16", Backend: { Type: "host-gw", Datapath: "ebpf" } }))).toThrow(/Type vxlan/);
    const direct = { Type: "vxlan", Datapath: "ebpf", DirectRouting: true };
    expect(parseNetworkConfig(JSON.stringify({ Network: "10.244.0.0/16", Backend: direct })).backend).toMatchObject({ datapath: "ebpf", directRouting: true, bigTcp: false });
    expect(parseNetworkConfig(JSON.stringify({ Network: "10.244.0.0/16", Backend: { ...direct, BigTCP: true } })).backend.bigTcp).toBe(true);
    // BIG TCP only where no vxlan device carries pods' packets (it takes none over 64 KiB)
    expect(() => parseNetworkConfig(JSON.stringify({ Network: "10.244.0.0/16", Backend: { Type: "vxlan", Datapath: "ebpf", BigTCP: true } }))).toThrow(/BigTCP goes with "Datapath": "ebpf" and "DirectRouting": true/);
    expect(() => parseNetworkConfig(JSON.stringify({ Network: "10.244.0.0/16", Backend: { Type: "vxlan", DirectRouting: true, BigTCP: true } }))).toThrow(/BigTCP goes with/);
    expect(() => parseNetworkConfig(JSON.stringify({ Network: "10.244.0.0/16", Backend: { ...direct, BigTCP: "yes" } }))).toThrow(/BigTCP must be true or false/);
  });
  test("errors name the key", () => {
    for (const [conf, re] of [
      [{}, /Network is required/],
      [{ Network: "x" }, /Network/],
      [{ Network: "10.0.0.0/16", SubnetLen: 16 }, /SubnetLen/],
      [{ Network: "10.0.0.0/16", SubnetMin: "10.1.0.0" }, /SubnetMin/],
      [{ Network: "10.0.0.0/16", SubnetMin: "10.0.5.7" }, /start of a \/24/],
      [{ Network: "10.0.0.0/16", Backend: { Type: "udp" } }, /Backend.Type/],
      [{ Network: "10.0.0.0/16", Backend: { VNI: -1 } }, /VNI/],
    ] as const) {
      expect(() => parseNetworkConfig(JSON.stringify(conf))).toThrow(re);
    }
  });
});

describe("leases", () => {
  test("keys and values in flannel's layout", () => {
    const sn = parseCIDR("10.244.3.0/24")!;
    expect(leaseKey("/coreos.com/network", sn)).toBe("/coreos.com/network/subnets/10.244.3.0-24");
    expect(formatCIDR(subnetOfKey("/coreos.com/network", "/coreos.com/network/subnets/10.244.3.0-24")!)).toBe("10.244.3.0/24");
    expect(subnetOfKey("/coreos.com/network", "/coreos.com/network/config")).toBeUndefined();
    const v = encodeLease({ publicIP: "192.0.2.7", backendType: "vxlan", backendData: { VNI: 1, VtepMAC: "aa:bb:cc:dd:ee:ff" } });
    expect(JSON.parse(v)).toEqual({ PublicIP: "192.0.2.7", BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: "aa:bb:cc:dd:ee:ff" } });
    expect(decodeLease(v).backendData?.VtepMAC).toBe("aa:bb:cc:dd:ee:ff");
    expect(() => decodeLease("{}")).toThrow(/PublicIP/);
  });
  test("dual-stack keys and values (flannel's `v4&v6` key, PublicIPv6, BackendV6Data)", () => {
    const key = leaseKey("/p", parseCIDR("10.244.3.0/24")!, parseCIDR("fd00:244:0:3::/64")!);
    expect(key).toBe("/p/subnets/10.244.3.0-24&fd00:244:0:3::-64");
    const s = subnetsOfKey("/p", key)!;
    expect([formatCIDR(s.v4!), formatCIDR(s.v6!)]).toEqual(["10.244.3.0/24", "fd00:244:0:3::/64"]);
    expect(formatCIDR(subnetOfKey("/p", key)!)).toBe("10.244.3.0/24");
    expect(subnetsOfKey("/p", "/p/subnets/10.244.3.0-24")).toEqual({ v4: parseCIDR("10.244.3.0/24")! });
    for (const bad of ["/p/subnets/fd00::-64", "/p/subnets/10.0.0.0-24&10.1.0.0-24", "/p/subnets/10.0.0.0-24&fd00::-64&x", "/p/subnets/10.0.0.0"]) {
      expect(subnetsOfKey("/p", bad)).toBeUndefined();
    }
    const attrs = { publicIP: "192.0.2.7", publicIPv6: "2001:db8::7", backendType: "vxlan", backendData: { VNI: 1, VtepMAC: "aa:bb:cc:dd:ee:01" }, backendV6Data: { VNI: 1, VtepMAC: "aa:bb:cc:dd:ee:02" } };
    const v = encodeLease(attrs);
    expect(JSON.parse(v)).toEqual({ PublicIP: "192.0.2.7", PublicIPv6: "2001:db8::7", BackendType: "vxlan", BackendData: attrs.backendData, BackendV6Data: attrs.backendV6Data });
    expect(decodeLease(v)).toEqual(attrs);
    // flannel writes "PublicIPv6": null for IPv4-only nodes
    expect(decodeLease('{"PublicIP":"192.0.2.7","PublicIPv6":null,"BackendType":"host-gw"}')).toEqual({ publicIP: "192.0.2.7", backendType: "host-gw" });
  });
  test("IPv6-only keys: flannel's empty IPv4 half 0.0.0.0-0; the lease's identity is its IPv6 subnet", () => {
    const v6 = parseCIDR("fd00:244:0:3::/64")!;
    const key = leaseKey("/p", undefined, v6);
    expect(key).toBe("/p/subnets/0.0.0.0-0&fd00:244:0:3::-64");
    expect(subnetsOfKey("/p", key)).toEqual({ v6 });
    expect(subnetOfKey("/p", key)).toBeUndefined();
    expect(leaseId({ v6 })).toBe("fd00:244:0:3::/64");
    expect(leaseId({ v4: parseCIDR("10.244.3.0/24")!, v6 })).toBe("10.244.3.0/24");
    // 0.0.0.0-0 alone names nothing
    expect(subnetsOfKey("/p", "/p/subnets/0.0.0.0-0")).toBeUndefined();
    expect(() => leaseKey("/p", undefined)).toThrow(TypeError);
  });
  test("a free subnet is picked among the free ones; none when full", () => {
    const plan = parseNetworkConfig(JSON.stringify({ Network: "10.9.0.0/22" })).v4!; // /24s: .1 .2 .3 (.0 is skipped)
    const taken = new Set(["10.9.1.0/24", "10.9.3.0/24"]);
    expect(formatCIDR(pickFreeSubnet(plan, taken, () => 0)!)).toBe("10.9.2.0/24");
    expect(pickFreeSubnet(plan, new Set([...taken, "10.9.2.0/24"]))).toBeUndefined();
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add(formatCIDR(pickFreeSubnet(plan, new Set())!));
    expect([...seen].sort()).toEqual(["10.9.1.0/24", "10.9.2.0/24", "10.9.3.0/24"]);
  });
});
