/**
 * The IPAM plugins' configs (host-local, static, cluster-ipam) decoded as the reference decodes
 * them: go-cni's Go field names (`ipRanges` as Subnet/RangeStart/RangeEnd/Gateway) give the same
 * settings as the canonical keys, every wrong JSON type of every known key is code 2 naming the
 * key, a dataDir of the wrong type never falls back to the default, and host-local's DEL releases
 * by container id and ifname whatever else the config holds.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import hostLocal, { parseHostLocal } from "../../../src/plugins/ipam/host-local.ts";
import { parseClusterIpam } from "../../../src/plugins/ipam/cluster-ipam.ts";
import { staticResult } from "../../../src/plugins/ipam/static.ts";
import type { CmdArgs } from "../../../src/skel/plugin.ts";
import type { NetConf } from "../../../src/spec/netconf.ts";
import type { Result } from "../../../src/spec/result.ts";
import { errorOf, expectWrongTypesRefused, withValue, type Kind } from "../plugins/wrong-types.ts";

const tmp = mkdtempSync(join(tmpdir(), "cnikit-ipam-conf-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const netconf = (ipam: Record<string, unknown>, extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: "1.1.0", name: "net1", type: "bridge", ipam, ...extra });

/** Key paths of a route list at `p` and their Go types. */
const routeKeys = (p: string): Array<[string, Kind]> => [
  [p, "list"], [`${p}[0]`, "object"], [`${p}[0].dst`, "string"], [`${p}[0].gw`, "string"], [`${p}[0].mtu`, "int"],
  [`${p}[0].advmss`, "int"], [`${p}[0].priority`, "int"], [`${p}[0].table`, "int"], [`${p}[0].scope`, "int"],
];
const rangeKeys = (p: string): Array<[string, Kind]> => [
  [`${p}subnet`, "string"], [`${p}rangeStart`, "string"], [`${p}rangeEnd`, "string"], [`${p}gateway`, "string"],
];
const requestedKeys: Array<[string, Kind]> = [
  ["runtimeConfig", "object"], ["runtimeConfig.ips", "list"], ["runtimeConfig.ips[0]", "string"],
  ["args", "object"], ["args.cni", "object"], ["args.cni.ips", "list"], ["args.cni.ips[0]", "string"],
];

describe("host-local", () => {
  const base = netconf(
    {
      type: "host-local",
      subnet: "10.1.0.0/24",
      rangeStart: "10.1.0.10",
      rangeEnd: "10.1.0.20",
      gateway: "10.1.0.1",
      ranges: [[{ subnet: "10.2.0.0/24", rangeStart: "10.2.0.5", rangeEnd: "10.2.0.9", gateway: "10.2.0.1" }]],
      routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1", mtu: 1400, advmss: 1360, priority: 5, table: 10, scope: 0 }],
      dataDir: join(tmp, "hl"),
      resolvConf: "",
    },
    { runtimeConfig: { ips: ["10.1.0.12"], ipRanges: [[{ subnet: "10.3.0.0/24", rangeStart: "10.3.0.2", rangeEnd: "10.3.0.3", gateway: "10.3.0.1" }]] }, args: { cni: { ips: ["10.2.0.6"] } } },
  );

  test("the ipRanges capability with go-cni's Go field names equals the canonical keys, and comes first", () => {
    const goCni = netconf({ type: "host-local", ranges: [[{ subnet: "10.2.0.0/24" }]] }, {
      runtimeConfig: { IPRanges: [[{ Subnet: "10.9.0.0/24", RangeStart: "10.9.0.10", RangeEnd: "10.9.0.20", Gateway: "10.9.0.254" }]] },
    });
    const canonical = netconf({ type: "host-local", ranges: [[{ subnet: "10.2.0.0/24" }]] }, {
      runtimeConfig: { ipRanges: [[{ subnet: "10.9.0.0/24", rangeStart: "10.9.0.10", rangeEnd: "10.9.0.20", gateway: "10.9.0.254" }]] },
    });
    const a = parseHostLocal(goCni);
    expect(a).toEqual(parseHostLocal(canonical));
    expect(a.rangeSets.length).toBe(2);
    expect([...a.rangeSets[0]![0]!.gateway]).toEqual([10, 9, 0, 254]);
    // keys of the ipam section in any case too
    const b = parseHostLocal(netconf({ Type: "host-local", Ranges: [[{ Subnet: "10.2.0.0/24" }]], DataDir: "/tmp/x", Routes: [{ Dst: "0.0.0.0/0" }] }));
    expect(b.dataDir).toBe("/tmp/x");
    expect(b.routes).toEqual([{ dst: "0.0.0.0/0" }]);
  });

  test("the full config: ipRanges, the legacy range, ranges; routes with every field", () => {
    const c = parseHostLocal(base);
    expect(c.rangeSets.map((s) => s[0]!.start.join("."))).toEqual(["10.3.0.2", "10.1.0.10", "10.2.0.5"]);
    expect(c.routes).toEqual([{ dst: "0.0.0.0/0", gw: "10.1.0.1", mtu: 1400, advmss: 1360, priority: 5, table: 10, scope: 0 }]);
    expect(c.dataDir).toBe(join(tmp, "hl"));
  });

  test("every wrong JSON type of every known key is code 2 naming the key", () => {
    const keys: Array<[string, Kind]> = [
      ["ipam", "object"], ["ipam.type", "string"], ["ipam.name", "string"], ["ipam.dataDir", "string"], ["ipam.resolvConf", "string"],
      ...rangeKeys("ipam."), ["ipam.ranges", "list"], ["ipam.ranges[0]", "list"], ["ipam.ranges[0][0]", "object"], ...rangeKeys("ipam.ranges[0][0]."),
      ...routeKeys("ipam.routes"), ...requestedKeys,
      ["runtimeConfig.ipRanges", "list"], ["runtimeConfig.ipRanges[0]", "list"], ["runtimeConfig.ipRanges[0][0]", "object"], ...rangeKeys("runtimeConfig.ipRanges[0][0]."),
      ["runtimeConfig.ipRanges[0][0].Subnet", "string"],
    ];
    expectWrongTypesRefused(base, keys, parseHostLocal);
    expect(errorOf(() => parseHostLocal(withValue(base, "ipam.dataDir", 5))).message).toBe('host-local: "ipam.dataDir" must be a string, not number 5');
  });

  test("bad values are code 7", () => {
    const code = (path: string, v: unknown) => errorOf(() => parseHostLocal(withValue(base, path, v))).code;
    expect(code("ipam.routes[0].dst", "x")).toBe(7);
    expect(code("ipam.routes[0].gw", "x")).toBe(7);
    expect(code("ipam.routes[0]", { gw: "10.1.0.1" })).toBe(7);
    expect(code("runtimeConfig.ipRanges[0][0].subnet", "10.3.0.1/24")).toBe(7);
    expect(code("runtimeConfig.ipRanges[0]", [])).toBe(7);
    expect(code("ipam.ranges[0][0]", { rangeStart: "10.2.0.5" })).toBe(7);
  });

  describe("DEL", () => {
    let seq = 0;
    const call = (command: string, config: NetConf, cid: string, log: string[] = []) => {
      const args = { command, containerId: cid, ifName: "eth0", netns: "", args: "", path: "", stdinData: "", config, cniVersion: "1.1.0", env: {}, log: (m: string) => log.push(m) } as CmdArgs;
      return command === "ADD" ? (hostLocal.add(args) as Result) : hostLocal.del(args);
    };
    const fresh = () => {
      const dataDir = join(tmp, `del${++seq}`);
      return { dataDir, conf: netconf({ type: "host-local", ranges: [[{ subnet: "10.5.0.0/24" }]], dataDir }), held: () => readdirSync(join(dataDir, "net1")).filter((f) => f.startsWith("10.")) };
    };

    test("releases by container id and ifname when the rest of the config does not decode or check", () => {
      for (const [path, v] of [["ipam.ranges", "x"], ["ipam.ranges", [[{ subnet: "10.5.0.1/24" }]]], ["ipam.routes", [{ dst: 1 }]], ["runtimeConfig.ipRanges", {}], ["args.cni.ips", [1]], ["ipam.ranges", null]] as const) {
        const f = fresh();
        expect((call("ADD", f.conf, "c1") as Result).ips?.[0]?.address).toBe("10.5.0.2/24");
        expect(f.held()).toEqual(["10.5.0.2"]);
        const log: string[] = [];
        call("DEL", withValue(f.conf, path, v), "c1", log);
        expect(f.held()).toEqual([]);
      }
    });

    test("go-cni's ipRanges: ADD from the capability, DEL releases", () => {
      const f = fresh();
      const conf = { ...f.conf, runtimeConfig: { ipRanges: [[{ Subnet: "10.6.0.0/24", RangeStart: "10.6.0.100", RangeEnd: "10.6.0.110" }]] } };
      const r = call("ADD", conf, "c2") as Result;
      expect(r.ips?.map((i) => i.address)).toEqual(["10.6.0.100/24", "10.5.0.2/24"]);
      expect(f.held().sort()).toEqual(["10.5.0.2", "10.6.0.100"]);
      call("DEL", conf, "c2");
      expect(f.held()).toEqual([]);
    });

    test("a dataDir of the wrong type: ADD refuses (code 2), DEL releases nothing and writes nothing, never the default directory", () => {
      const f = fresh();
      call("ADD", f.conf, "c3");
      const bad = withValue(f.conf, "ipam.dataDir", 5);
      expect(errorOf(() => call("ADD", bad, "c4")).code).toBe(2);
      const log: string[] = [];
      call("DEL", bad, "c3", log);
      expect(f.held()).toEqual(["10.5.0.2"]);
      expect(log.join("\n")).toContain("dataDir");
      call("DEL", f.conf, "c3");
      expect(f.held()).toEqual([]);
    });

    test("DEL of an attachment that holds nothing creates nothing", () => {
      const f = fresh();
      call("DEL", f.conf, "nobody");
      expect(existsSync(f.dataDir)).toBe(false);
    });
  });
});

describe("static", () => {
  const base = netconf({
    type: "static",
    addresses: [{ address: "10.10.0.5/24", gateway: "10.10.0.1" }],
    routes: [{ dst: "0.0.0.0/0", gw: "10.10.0.1" }],
    dns: { nameservers: ["10.10.0.1"], domain: "example", search: ["example"], options: ["ndots:2"] },
  });

  test("keys in any case; Go's untagged Address and Version decode for their types only", () => {
    const r = staticResult(netconf({ Type: "static", Addresses: [{ Address: { IP: "10.10.0.5", Mask: "////AA==" }, address: "10.10.0.5/24", Version: "4" }], DNS: { Nameservers: ["1.1.1.1"] } }), "");
    expect(r).toEqual({ cniVersion: "1.1.0", ips: [{ address: "10.10.0.5/24" }], dns: { nameservers: ["1.1.1.1"] } });
    expect(staticResult(base, "").dns).toEqual({ nameservers: ["10.10.0.1"], domain: "example", search: ["example"], options: ["ndots:2"] });
    expect(staticResult(netconf({ type: "static" }, { RuntimeConfig: { IPs: ["10.30.0.7/24"] } }), "").ips).toEqual([{ address: "10.30.0.7/24" }]);
  });

  test("every wrong JSON type of every known key is code 2 naming the key (a dns list too)", () => {
    const keys: Array<[string, Kind]> = [
      ["ipam", "object"], ["ipam.type", "string"], ["ipam.name", "string"], ["ipam.addresses", "list"], ["ipam.addresses[0]", "object"],
      ["ipam.addresses[0].address", "string"], ["ipam.addresses[0].gateway", "string"], ["ipam.addresses[0].Version", "string"],
      ["ipam.addresses[0].Address", "object"], ...routeKeys("ipam.routes"), ["ipam.dns", "object"], ["ipam.dns.nameservers", "list"],
      ["ipam.dns.nameservers[0]", "string"], ["ipam.dns.domain", "string"], ["ipam.dns.search", "list"], ["ipam.dns.options", "list"],
      ...requestedKeys,
    ];
    expectWrongTypesRefused(base, keys, (c) => staticResult(c, ""));
  });

  test("bad values are code 7", () => {
    const code = (path: string, v: unknown) => errorOf(() => staticResult(withValue(base, path, v), "")).code;
    expect(code("ipam.addresses[0].address", "10.1.1.1")).toBe(7);
    expect(code("ipam.addresses[0].gateway", "x")).toBe(7);
    expect(code("runtimeConfig.ips", ["10.1.1.1"])).toBe(7);
    expect(errorOf(() => staticResult(withValue(base, "ipam.addresses[0].address", "10.1.1.1"), "")).message).toContain("addresses[0].address");
  });
});

describe("cluster-ipam", () => {
  const ipam = {
    type: "cluster-ipam",
    etcdEndpoints: ["http://127.0.0.1:2379"],
    etcdPrefix: "/p",
    etcdCAFile: "/ca",
    etcdCertFile: "/crt",
    etcdKeyFile: "/key",
    etcdUsername: "u",
    etcdPassword: "p",
    subnet: "10.100.0.0/16",
    blockSize: 24,
    gateway: "10.100.0.1",
    routes: [{ dst: "0.0.0.0/0" }],
    nodeName: "n1",
    dataDir: "/tmp/c",
  };
  const parse = (c: { ipam: Record<string, unknown> }) => parseClusterIpam(c.ipam, {});

  test("keys in any case", () => {
    const c = parseClusterIpam({ Type: "cluster-ipam", EtcdEndpoints: "http://a:1", Subnet: "10.100.0.0/16", NodeName: "x", DataDir: "/d" }, {});
    expect(c).toMatchObject({ node: "x", dataDir: "/d", etcd: { endpoints: ["http://a:1"] } });
    expect(parse({ ipam })).toMatchObject({ prefix: "/p", node: "n1", gateway: "10.100.0.1", etcd: { caFile: "/ca", certFile: "/crt", keyFile: "/key", username: "u", password: "p" } });
  });

  test("every wrong JSON type of every known key is code 2 naming the key", () => {
    const keys: Array<[string, Kind | unknown[]]> = [
      ["ipam", "object"], ["ipam.etcdEndpoints", [1, true, {}]], ["ipam.etcdEndpoints[0]", "string"],
      ...(["type", "etcdPrefix", "etcdCAFile", "etcdCertFile", "etcdKeyFile", "etcdUsername", "etcdPassword", "subnet", "gateway", "nodeName", "dataDir"] as const).map((k): [string, Kind] => [`ipam.${k}`, "string"]),
      ["ipam.blockSize", "int"], ...routeKeys("ipam.routes"),
    ];
    expectWrongTypesRefused({ ipam }, keys, parse);
  });

  test("DEL (lenient): bad gateway, routes, block size or node name do not stop a release; a missing pool does", () => {
    const warn: string[] = [];
    const c = parseClusterIpam({ ...ipam, gateway: "10.9.9.9", routes: "x", blockSize: 99, nodeName: "has space" }, {}, { lenient: true, warn: (m) => warn.push(m) });
    expect(c.pool.blockLen).toBe(26);
    expect(c.gateway).toBeUndefined();
    expect(warn.length).toBe(1);
    expect(errorOf(() => parseClusterIpam({ ...ipam, subnet: 5 }, {}, { lenient: true })).code).toBe(7);
  });
});
