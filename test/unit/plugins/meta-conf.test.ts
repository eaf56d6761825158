/**
 * The meta plugins' configs (portmap, bandwidth, tuning, sbr) decoded as the reference decodes
 * them: go-cni's Go field names give the same settings as the canonical keys, every wrong JSON
 * type of every known key is code 2 naming the key, semantic checks keep their codes, and DEL
 * decodes leniently.
 */

import { describe, expect, test } from "bun:test";
import { pluginConf } from "../../../src/skel/conf.ts";
import type { CmdArgs } from "../../../src/skel/plugin.ts";
import { bandwidthCodec, parseBandwidth } from "../../../src/plugins/meta/bandwidth.ts";
import { parsePortmapConf, portmapCodec } from "../../../src/plugins/meta/portmap.ts";
import { parseSbrConf, sbrCodec } from "../../../src/plugins/meta/sbr.ts";
import { parseTuningConf, tuningCodec } from "../../../src/plugins/meta/tuning.ts";
import type { Codec } from "../../../src/spec/decode.ts";
import type { NetConf } from "../../../src/spec/netconf.ts";
import { errorOf, expectWrongTypesRefused, withValue, type Kind } from "./wrong-types.ts";

const netconf = (type: string, extra: Record<string, unknown>): NetConf => ({ cniVersion: "1.1.0", name: "n", type, ...extra });

/** Decode `conf` as the skel hands it to a plugin's DEL. */
function delDecode<T>(codec: Codec<T>, conf: NetConf): { out: T; log: string[] } {
  const log: string[] = [];
  const args = { command: "DEL", config: conf, log: (m: string) => log.push(m) } as unknown as CmdArgs;
  return { out: pluginConf(args, codec, conf.type), log };
}

describe("portmap", () => {
  const base = netconf("portmap", {
    backend: "nftables",
    snat: true,
    masqAll: false,
    markMasqBit: 13,
    conditionsV4: [],
    conditionsV6: [],
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "" }] },
  });

  test("go-cni's Go field names give the same mappings as the canonical keys", () => {
    const goCni = netconf("portmap", {
      RuntimeConfig: { portMappings: [{ HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "" }, { HostPort: 5353, ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1" }] },
    });
    const canonical = netconf("portmap", {
      runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "" }, { hostPort: 5353, containerPort: 53, protocol: "udp", hostIP: "127.0.0.1" }] },
    });
    expect(parsePortmapConf(goCni)).toEqual(parsePortmapConf(canonical));
    expect(parsePortmapConf(goCni).mappings).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: "tcp" },
      { hostPort: 5353, containerPort: 53, protocol: "udp", hostIP: "127.0.0.1", family: 4 },
    ]);
    // top-level keys in any case too, as Go matches them
    expect(parsePortmapConf(netconf("portmap", { SNAT: false, MasqAll: true }))).toMatchObject({ snat: false, masqAll: true });
  });

  test("every wrong JSON type of every known key is code 2 naming the key", () => {
    const keys: Array<[string, Kind]> = [
      ["backend", "string"], ["snat", "bool"], ["masqAll", "bool"], ["markMasqBit", "int"], ["externalSetMarkChain", "string"],
      ["conditionsV4", "list"], ["conditionsV4[0]", "string"], ["conditionsV6", "list"], ["conditionsV6[0]", "string"],
      ["runtimeConfig", "object"], ["runtimeConfig.portMappings", "list"], ["runtimeConfig.portMappings[0]", "object"],
      ["runtimeConfig.portMappings[0].hostPort", "int"], ["runtimeConfig.portMappings[0].containerPort", "int"],
      ["runtimeConfig.portMappings[0].protocol", "string"], ["runtimeConfig.portMappings[0].hostIP", "string"],
      ["runtimeConfig.portMappings[0].HostPort", "int"], ["runtimeConfig.portMappings[0].ContainerPort", "int"],
    ];
    expectWrongTypesRefused(base, keys, parsePortmapConf);
    expect(parsePortmapConf(base).mappings.length).toBe(1);
  });

  test("the reference's checks keep their codes", () => {
    const code = (path: string, v: unknown) => errorOf(() => parsePortmapConf(withValue(base, path, v))).code;
    expect(code("runtimeConfig.portMappings[0].containerPort", 0)).toBe(7);
    expect(code("runtimeConfig.portMappings[0].hostPort", 70000)).toBe(7);
    expect(code("runtimeConfig.portMappings[0]", { containerPort: 80 })).toBe(7); // hostPort 0, as Go's zero value
    expect(errorOf(() => parsePortmapConf(withValue(base, "runtimeConfig.portMappings[0]", {}))).message).toContain("Invalid container port number: 0");
    expect(code("markMasqBit", 32)).toBe(7);
    expect(code("externalSetMarkChain", "KUBE-MARK-MASQ")).toBe(7); // with markMasqBit
    expect(code("backend", "ebpf")).toBe(7);
    expect(code("conditionsV4", ["-s", "1.2.3.4"])).toBe(2); // unsupported, as before
    expect(parsePortmapConf(withValue(base, "backend", "iptables")).snat).toBe(true);
  });

  test("DEL decodes leniently: what does not decode is dropped and logged", () => {
    const bad = withValue(withValue(base, "snat", "yes"), "runtimeConfig.portMappings[0].hostPort", "x");
    const { out, log } = delDecode(portmapCodec, bad);
    expect(out.snat).toBeUndefined();
    expect(out.runtimeConfig?.portMappings?.[0]).toEqual({ containerPort: 80, protocol: "tcp", hostIP: "" });
    expect(log.length).toBe(2);
    expect(log[0]).toContain('"snat"');
  });
});

describe("bandwidth", () => {
  const limits = { ingressRate: 8000, ingressBurst: 800, egressRate: 16000, egressBurst: 1600 };
  const goNames = { IngressRate: 8000, IngressBurst: 800, EgressRate: 16000, EgressBurst: 1600 };
  const base = netconf("bandwidth", { ...limits, unshapedSubnets: [], shapedSubnets: [], runtimeConfig: { bandwidth: limits } });

  test("go-cni's Go field names give the same limits as the canonical keys", () => {
    expect(parseBandwidth(netconf("bandwidth", { runtimeConfig: { bandwidth: goNames } }))).toEqual(limits);
    expect(parseBandwidth(netconf("bandwidth", { runtimeConfig: { Bandwidth: goNames } }))).toEqual(limits);
    expect(parseBandwidth(netconf("bandwidth", goNames))).toEqual(limits);
  });

  test("every wrong JSON type of every known key is code 2 naming the key", () => {
    const entry = (p: string): Array<[string, Kind]> => [
      [`${p}ingressRate`, "uint"], [`${p}ingressBurst`, "uint"], [`${p}egressRate`, "uint"], [`${p}egressBurst`, "uint"],
      [`${p}unshapedSubnets`, "list"], [`${p}shapedSubnets`, "list"], [`${p}unshapedSubnets[0]`, "string"],
    ];
    expectWrongTypesRefused(base, [...entry(""), ["runtimeConfig", "object"], ["runtimeConfig.bandwidth", "object"], ...entry("runtimeConfig.bandwidth."), ["runtimeConfig.bandwidth.IngressRate", "uint"]], parseBandwidth);
    // a string rate: the fuzz run's case
    expect(errorOf(() => parseBandwidth(netconf("bandwidth", { ingressRate: "1000", ingressBurst: 8 }))).message).toBe('bandwidth: "ingressRate" must be a non-negative integer, not string "1000"');
  });

  test("the reference's checks keep their codes", () => {
    const code = (c: Record<string, unknown>) => errorOf(() => parseBandwidth(netconf("bandwidth", c))).code;
    expect(code({ ingressRate: 1000 })).toBe(7);
    expect(code({ runtimeConfig: { bandwidth: { EgressBurst: 1000 } } })).toBe(7);
    expect(code({ ingressRate: 1000, ingressBurst: 8 * 2 ** 32 })).toBe(7);
    expect(code({ runtimeConfig: { bandwidth: { unshapedSubnets: ["10.0.0.0/8"] } } })).toBe(2);
  });

  test("DEL decodes leniently", () => {
    const { out, log } = delDecode(bandwidthCodec, netconf("bandwidth", { ingressRate: "fast", ingressBurst: 800, runtimeConfig: { bandwidth: [] } }));
    expect(out.ingressBurst).toBe(800);
    expect(out.ingressRate).toBeUndefined();
    expect(log.length).toBe(2);
  });
});

describe("tuning", () => {
  const base = netconf("tuning", {
    dataDir: "/tmp/t",
    sysctl: { "net.core.somaxconn": "500" },
    mac: "02:00:00:00:00:01",
    promisc: true,
    mtu: 1400,
    txQLen: 100,
    allmulti: false,
    runtimeConfig: { mac: "02:00:00:00:00:02" },
    args: { cni: { sysctl: { "net.ipv4.conf.IFNAME.accept_local": "1" }, mac: "02:00:00:00:00:03", promisc: false, mtu: 1300, allmulti: true, txQLen: 50 } },
  });

  test("keys in any case; args.cni over the config, the MAC from runtimeConfig then args.cni", () => {
    const c = parseTuningConf(base, "");
    expect(c).toEqual({
      sysctl: { "net.core.somaxconn": "500", "net.ipv4.conf.IFNAME.accept_local": "1" },
      mac: "02:00:00:00:00:03",
      promisc: false,
      mtu: 1300,
      txQLen: 50,
      allmulti: true,
      dataDir: "/tmp/t",
    });
    const goNames = netconf("tuning", { DataDir: "/tmp/t", Mtu: 1400, Promisc: true, TxQLen: 5, RuntimeConfig: { Mac: "02:00:00:00:00:02" } });
    expect(parseTuningConf(goNames, "")).toEqual({ sysctl: {}, mac: "02:00:00:00:00:02", promisc: true, mtu: 1400, txQLen: 5, dataDir: "/tmp/t" });
    expect(parseTuningConf(netconf("tuning", { mac: "02:00:00:00:00:01" }), "MAC=02:00:00:00:00:09").mac).toBe("02:00:00:00:00:09");
    expect(parseTuningConf(netconf("tuning", {}), "").dataDir).toBe("/run/cni/tuning");
  });

  test("every wrong JSON type of every known key is code 2 naming the key; dataDir never falls back", () => {
    const keys: Array<[string, Kind]> = [
      ["dataDir", "string"], ["sysctl", "object"], ["sysctl.k", "string"], ["mac", "string"], ["promisc", "bool"], ["mtu", "int"],
      ["txQLen", "int"], ["allmulti", "bool"], ["runtimeConfig", "object"], ["runtimeConfig.mac", "string"], ["args", "object"],
      ["args.cni", "object"], ["args.cni.sysctl", "object"], ["args.cni.sysctl.k", "string"], ["args.cni.mac", "string"],
      ["args.cni.promisc", "bool"], ["args.cni.mtu", "int"], ["args.cni.allmulti", "bool"], ["args.cni.txQLen", "int"],
    ];
    expectWrongTypesRefused(base, keys, (c) => parseTuningConf(c, ""));
  });

  test("bad values are code 7", () => {
    const code = (path: string, v: unknown) => errorOf(() => parseTuningConf(withValue(base, path, v), "")).code;
    expect(code("args.cni.mac", "nope")).toBe(7);
    expect(code("mtu", 10)).toBe(7);
    expect(code("args.cni.txQLen", -1)).toBe(7);
  });

  test("DEL decodes leniently, and a dataDir that does not decode is dropped, not defaulted", () => {
    const { out, log } = delDecode(tuningCodec, withValue(withValue(base, "mtu", "big"), "dataDir", 5));
    expect(out.dataDir).toBeUndefined();
    expect(out.promisc).toBe(true);
    expect(log.length).toBe(2);
  });
});

describe("sbr", () => {
  const base = netconf("sbr", { table: 150, gateways: ["10.0.0.1", "fd00::1"], addSourceHints: false });

  test("table and gateways, keys in any case", () => {
    expect(parseSbrConf(base)).toEqual({ table: 150, gateways: { 4: "10.0.0.1", 6: "fd00::1" } });
    expect(parseSbrConf(netconf("sbr", { Table: 7, Gateways: ["fd00::0001"] }))).toEqual({ table: 7, gateways: { 6: "fd00::1" } });
    expect(parseSbrConf(netconf("sbr", {}))).toEqual({ gateways: {} });
  });

  test("every wrong JSON type of every known key is code 2 naming the key", () => {
    expectWrongTypesRefused(base, [["table", "int"], ["gateways", "list"], ["gateways[0]", "string"], ["addSourceHints", "bool"]], parseSbrConf);
  });

  test("the reference's checks: code 7; addSourceHints (not in cnikit yet): code 2", () => {
    const code = (c: Record<string, unknown>) => errorOf(() => parseSbrConf(netconf("sbr", c))).code;
    expect(code({ table: 254 })).toBe(7);
    expect(code({ table: 0 })).toBe(7);
    expect(code({ gateways: ["10.0.0.1", "10.0.0.2"] })).toBe(7);
    expect(code({ gateways: ["a", "b", "c"] })).toBe(7);
    expect(code({ gateways: ["nope"] })).toBe(7);
    expect(code({ addSourceHints: true })).toBe(2);
  });

  test("DEL decodes leniently", () => {
    const { out, log } = delDecode(sbrCodec, netconf("sbr", { table: "main", gateways: ["10.0.0.1"] }));
    expect(out).toMatchObject({ gateways: ["10.0.0.1"] });
    expect(out.table).toBeUndefined();
    expect(log.length).toBe(1);
  });
});
