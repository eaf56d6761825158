import { describe, expect, test } from "bun:test";
import { CniError } from "../../../src/spec/error.ts";
import {
  convertResult,
  parseResult,
  toCurrentResult,
  type Result,
  type Result02,
  type Result04,
} from "../../../src/spec/result.ts";
import { SUPPORTED_VERSIONS } from "../../../src/spec/version.ts";

/** A 1.1.0 result with everything: two families, two addresses of one family, 1.1.0-only fields. */
const full: Result = {
  cniVersion: "1.1.0",
  interfaces: [
    { name: "cni0", mac: "aa:bb:cc:dd:ee:01" },
    { name: "eth0", mac: "aa:bb:cc:dd:ee:02", mtu: 1450, sandbox: "/run/netns/p1", socketPath: "/s.sock", pciID: "0000:00:01.0" },
  ],
  ips: [
    { interface: 1, address: "10.1.0.5/24", gateway: "10.1.0.1" },
    { interface: 1, address: "10.2.0.5/24" },
    { interface: 1, address: "fd00::5/64", gateway: "fd00::1" },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "10.1.0.1", mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 },
    { dst: "::/0", gw: "fd00::1" },
    { dst: "192.168.0.0/16" },
  ],
  dns: { nameservers: ["10.1.0.1"], domain: "cluster.local", search: ["a.local"], options: ["ndots:5"] },
};

const v02: Result02 = {
  cniVersion: "0.2.0",
  ip4: { ip: "10.1.0.5/24", gateway: "10.1.0.1", routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }, { dst: "192.168.0.0/16" }] },
  ip6: { ip: "fd00::5/64", gateway: "fd00::1", routes: [{ dst: "::/0", gw: "fd00::1" }] },
  dns: { nameservers: ["10.1.0.1"] },
};

const v04: Result04 = {
  cniVersion: "0.4.0",
  interfaces: [{ name: "eth0", mac: "aa:bb:cc:dd:ee:02", sandbox: "/run/netns/p1" }],
  ips: [
    { version: "4", interface: 0, address: "10.1.0.5/24", gateway: "10.1.0.1" },
    { version: "6", interface: 0, address: "fd00::5/64" },
  ],
  routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
};

const family = (v: string) => (v === "0.1.0" || v === "0.2.0" ? "02" : v.startsWith("0.") ? "04" : "1");

describe("convertResult: every direction", () => {
  for (const from of SUPPORTED_VERSIONS) {
    for (const to of SUPPORTED_VERSIONS) {
      test(`${from} -> ${to}`, () => {
        const src = convertResult(full, from);
        expect(src.cniVersion).toBe(from);
        const out = convertResult(src, to);
        expect(out.cniVersion).toBe(to);
        // The output must itself parse as a valid result of its version.
        expect(parseResult(JSON.parse(JSON.stringify(out)))).toEqual(out);
        if (family(to) === "02") {
          const r = out as Result02;
          expect(r.ip4?.ip).toBe("10.1.0.5/24");
          expect(r.ip4?.gateway).toBe("10.1.0.1");
          expect(r.ip6?.ip).toBe("fd00::5/64");
          expect(r.ip4?.routes?.map((x) => x.dst)).toEqual(["0.0.0.0/0", "192.168.0.0/16"]);
          expect(r.ip6?.routes).toEqual([{ dst: "::/0", gw: "fd00::1" }]);
          expect("interfaces" in r).toBe(false);
        } else {
          const r = out as Result04;
          const addrs = r.ips!.map((i) => i.address);
          // going through 0.1.0/0.2.0 keeps only the first address of each family
          if (family(from) === "02") expect(addrs).toEqual(["10.1.0.5/24", "fd00::5/64"]);
          else expect(addrs).toEqual(["10.1.0.5/24", "10.2.0.5/24", "fd00::5/64"]);
          for (const ip of r.ips!) {
            if (family(to) === "04") expect(ip.version).toBe(ip.address.includes(":") ? "6" : "4");
            else expect("version" in ip).toBe(false);
          }
          const eth0 = r.interfaces?.find((i) => i.name === "eth0");
          const route = r.routes?.find((x) => x.dst === "0.0.0.0/0");
          if (to === "1.1.0" && from === "1.1.0") {
            expect(eth0).toEqual(full.interfaces![1]!);
            expect(route).toEqual(full.routes![0]!);
          } else if (family(from) !== "02") {
            // fields newer than the target (or lost on the way) are dropped
            expect(eth0).toEqual({ name: "eth0", mac: "aa:bb:cc:dd:ee:02", sandbox: "/run/netns/p1" });
            expect(route).toEqual({ dst: "0.0.0.0/0", gw: "10.1.0.1" });
          }
        }
      });
    }
  }
});

describe("convertResult: libcni's rules", () => {
  test("0.2.0 up to 0.4.0 produces ips with version, routes and no interfaces", () => {
    const r = convertResult(v02, "0.4.0") as Result04;
    expect(r).toEqual({
      cniVersion: "0.4.0",
      ips: [
        { version: "4", address: "10.1.0.5/24", gateway: "10.1.0.1" },
        { version: "6", address: "fd00::5/64", gateway: "fd00::1" },
      ],
      routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }, { dst: "192.168.0.0/16" }, { dst: "::/0", gw: "fd00::1" }],
      dns: { nameservers: ["10.1.0.1"] },
    });
  });

  test("0.2.0 up to 1.0.0 goes through 0.4.0 and drops version", () => {
    const r = convertResult(v02, "1.0.0") as Result;
    expect(r.ips).toEqual([
      { address: "10.1.0.5/24", gateway: "10.1.0.1" },
      { address: "fd00::5/64", gateway: "fd00::1" },
    ]);
  });

  test("1.x down to 0.4.0 adds version and keeps interface indexes", () => {
    const r = convertResult(full, "0.4.0") as Result04;
    expect(r.ips![0]).toEqual({ version: "4", interface: 1, address: "10.1.0.5/24", gateway: "10.1.0.1" });
    expect(r.ips![2]!.version).toBe("6");
  });

  test("down to 0.2.0 fails when there is no address", () => {
    const noIPs: Result = { cniVersion: "1.0.0", interfaces: [{ name: "eth0" }] };
    expect(() => convertResult(noIPs, "0.2.0")).toThrow(/no valid IP addresses/);
    try {
      convertResult(noIPs, "0.1.0");
    } catch (e) {
      expect(e).toBeInstanceOf(CniError);
    }
  });

  test("down to 0.2.0 with IPv6 only keeps ip6 and its routes only", () => {
    const r = convertResult(
      { cniVersion: "1.0.0", ips: [{ address: "fd00::2/64" }], routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }] },
      "0.2.0",
    ) as Result02;
    expect(r).toEqual({ cniVersion: "0.2.0", ip6: { ip: "fd00::2/64", routes: [{ dst: "::/0" }] } });
  });

  test("an empty version means 0.1.0", () => {
    const r = convertResult({ cniVersion: "", ip4: { ip: "10.0.0.2/8" } } as Result02, "0.3.1") as Result04;
    expect(r.ips).toEqual([{ version: "4", address: "10.0.0.2/8" }]);
  });

  test("converting to an unknown version fails with code 1", () => {
    expect(() => convertResult(full, "2.0.0")).toThrow(CniError);
    try {
      convertResult(full, "0.5.0");
    } catch (e) {
      expect((e as CniError).code).toBe(1);
    }
  });

  test("toCurrentResult of a 0.4.0 result", () => {
    const r = toCurrentResult(v04);
    expect(r.cniVersion).toBe("1.1.0");
    expect(r.ips![1]).toEqual({ interface: 0, address: "fd00::5/64" });
  });

  test("conversion does not mutate its input", () => {
    const copy = structuredClone(full);
    convertResult(full, "0.2.0");
    convertResult(full, "0.4.0");
    convertResult(full, "1.0.0");
    expect(full).toEqual(copy);
  });
});

describe("parseResult", () => {
  test("rejects malformed addresses, gateways and routes with code 6", () => {
    const bad = [
      { cniVersion: "1.0.0", ips: [{ address: "10.0.0.1" }] },
      { cniVersion: "1.0.0", ips: [{ address: "10.0.0.1/24", gateway: "x" }] },
      { cniVersion: "1.0.0", routes: [{ dst: "banana" }] },
      { cniVersion: "1.0.0", interfaces: [{ name: "eth0" }], ips: [{ address: "10.0.0.1/24", interface: 3 }] },
      { cniVersion: "0.2.0", ip4: { ip: "300.0.0.1/24" } },
      { cniVersion: "1.0.0", dns: { nameservers: "8.8.8.8" } },
      "not an object",
    ];
    for (const b of bad) {
      let err: unknown;
      try {
        parseResult(b);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CniError);
      expect((err as CniError).code).toBe(6);
    }
  });

  test("a 0.4.0 result without ip version gets it from the address", () => {
    const r = parseResult({ cniVersion: "0.4.0", ips: [{ address: "fd00::1/64" }] }) as Result04;
    expect(r.ips![0]!.version).toBe("6");
  });

  test("drops 1.1.0-only fields when parsing a 1.0.0 result and an empty dns", () => {
    const r = parseResult({
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", mtu: 1500 }],
      routes: [{ dst: "0.0.0.0/0", table: 5 }],
      dns: {},
    });
    expect(r).toEqual({ cniVersion: "1.0.0", interfaces: [{ name: "eth0" }], routes: [{ dst: "0.0.0.0/0" }] });
  });

  test("the reference bridge's 1.0.0 result round-trips", () => {
    const ref = {
      cniVersion: "1.0.0",
      interfaces: [
        { name: "cni0", mac: "26:3f:a9:f7:be:42" },
        { name: "veth7b7b4b70", mac: "2e:c2:18:1c:f3:20" },
        { name: "eth0", mac: "b6:ba:c0:28:01:c9", sandbox: "/run/netns/ckpod1" },
      ],
      ips: [{ interface: 2, address: "10.99.0.2/24", gateway: "10.99.0.1" }],
      dns: {},
    };
    const r = parseResult(ref) as Result;
    expect(r.ips).toEqual(ref.ips);
    expect(r.interfaces).toEqual(ref.interfaces);
  });
});
