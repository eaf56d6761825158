/**
 * The main plugins' configs decoded as the reference's Go structs are (no kernel): every key in any
 * case, every wrong JSON type of every known key refused with code 2 naming its path, the
 * reference's semantic checks with their codes, and DEL lenient (nothing it needs for cleanup is
 * refused, and an ipMasq / macspoofchk that does not decode still gets cleaned up).
 */

import { describe, expect, test } from "bun:test";
import { mtuCodec } from "../../../src/plugins/common/conf.ts";
import { bridgeCodec, parseBridgeConf } from "../../../src/plugins/main/bridge.ts";
import { hostDeviceCodec, parseHostDeviceConf, type SysfsView } from "../../../src/plugins/main/host-device.ts";
import { ipvlanCodec, parseIpvlanConf } from "../../../src/plugins/main/ipvlan.ts";
import { macvlanCodec, parseMacvlanConf } from "../../../src/plugins/main/macvlan.ts";
import { bpfPinDirOf, delegateConfig, overlayCodec, parseOverlayConf } from "../../../src/plugins/main/overlay.ts";
import { parsePtpConf, ptpCodec } from "../../../src/plugins/main/ptp.ts";
import { parseVlanConf, vlanCodec } from "../../../src/plugins/main/vlan.ts";
import { runPlugin } from "../../../src/skel/skel.ts";
import type { CmdArgs } from "../../../src/skel/plugin.ts";
import type { Codec } from "../../../src/spec/decode.ts";
import { cmdArgs } from "./cmd-args.ts";
import { errorOf, expectWrongTypesRefused, wrongValues, withValue, type Kind } from "./wrong-types.ts";

/** A sysfs with nothing in it: host-device's PCI probe finds no driver. */
const noSysfs: SysfsView = { list: () => null, resolve: () => null };

interface Case {
  type: string;
  codec: Codec<unknown> & { shape: Record<string, Codec<unknown>> };
  parse: (args: CmdArgs) => unknown;
  /** A config ADD accepts, with every key the plugin has (canonical names). */
  full: Record<string, unknown>;
  /** The least config ADD accepts. */
  least: Record<string, unknown>;
}

const ipam = { type: "host-local", subnet: "10.1.0.0/24" };
const CASES: Case[] = [
  {
    type: "bridge",
    codec: bridgeCodec,
    parse: parseBridgeConf,
    full: {
      bridge: "br0", isGateway: true, isDefaultGateway: true, forceAddress: true, ipMasq: true, ipMasqBackend: "nftables",
      mtu: 1400, hairpinMode: true, promiscMode: false, vlan: 0, vlanTrunk: [], preserveDefaultVlan: true, macspoofchk: true,
      enabledad: true, disableContainerInterface: false, portIsolation: true, args: { cni: { mac: "02:00:00:00:00:0A" } },
      runtimeConfig: { mac: "02:00:00:00:00:0b" }, ipam,
    },
    least: {},
  },
  { type: "ptp", codec: ptpCodec, parse: parsePtpConf, full: { ipMasq: true, ipMasqBackend: "iptables", mtu: 1400, ipam }, least: { ipam } },
  {
    type: "macvlan",
    codec: macvlanCodec,
    parse: parseMacvlanConf,
    full: { master: "eth1", mode: "vepa", mtu: 1400, mac: "02:00:00:00:00:01", linkInContainer: true, bcqueuelen: 0, runtimeConfig: { mac: "02:00:00:00:00:02" }, ipam },
    least: {},
  },
  { type: "ipvlan", codec: ipvlanCodec, parse: parseIpvlanConf, full: { master: "eth1", mode: "l3", mtu: 1400, linkInContainer: true, ipam }, least: {} },
  {
    type: "vlan",
    codec: vlanCodec,
    parse: parseVlanConf,
    full: { master: "eth1", vlanId: 100, mtu: 1400, linkInContainer: true, ipam },
    least: { master: "eth1", ipam },
  },
  {
    type: "host-device",
    codec: hostDeviceCodec,
    parse: (a) => parseHostDeviceConf(a, noSysfs),
    full: { device: "eth1", hwaddr: "02:00:00:00:00:01", DPDKMode: false, kernelpath: "/sys/devices/x", ipam },
    least: { device: "eth1" },
  },
  {
    type: "overlay",
    codec: overlayCodec,
    parse: parseOverlayConf,
    full: { subnetFile: "/run/x.env", dataDir: "/tmp/x", subnetFileWaitMs: 10, delegate: { bridge: "br0" }, runtimeConfig: { portMappings: [] } },
    least: {},
  },
];

/** The kind of wrong values (`wrong-types.ts`) for a codec, from the type it expects (undefined: it takes anything). */
function kindOf(c: Codec<unknown>): Kind | undefined {
  const kinds: Record<string, Kind> = {
    "a string": "string", "true or false": "bool", "an integer": "int", "a non-negative integer": "uint", "a list": "list", "an object": "object",
  };
  return kinds[c.expected];
}

/**
 * Every key path of a codec's shape (nested objects too) with the kind of its wrong values; not
 * the GC keys `cni.dev/...` (a path cannot spell their dots; the skel decodes them anyway).
 */
function keyKinds(shape: Record<string, Codec<unknown>>, prefix = ""): Array<[string, Kind]> {
  const out: Array<[string, Kind]> = [];
  for (const [key, c] of Object.entries(shape)) {
    if (key.startsWith("cni.dev/")) continue;
    const path = prefix ? `${prefix}.${key}` : key;
    const kind = kindOf(c);
    if (kind) out.push([path, kind]);
    if ("shape" in c) out.push(...keyKinds((c as { shape: Record<string, Codec<unknown>> }).shape, path));
  }
  return out;
}

/** `v` with every object key spelt in another case (Go matches them), except inside maps. */
function oddCase(v: unknown, flip = true): unknown {
  if (Array.isArray(v)) return v.map((e) => oddCase(e, flip));
  if (typeof v !== "object" || v === null) return v;
  return Object.fromEntries(Object.entries(v).map(([k, e], i) => {
    const maps = ["delegate", "prevResult", "capabilities"].includes(k);
    const key = !flip ? k : i % 2 === 0 ? k.toUpperCase() : k[0]!.toUpperCase() + k.slice(1);
    return [key, maps ? e : oddCase(e, flip)];
  }));
}

/** Run `parse` as the plugin would, through the skel (common keys decoded first); returns what it parsed or the error printed. */
async function viaSkel(c: Case, config: Record<string, unknown>, command = "ADD"): Promise<{ parsed?: unknown; error?: { code: number; msg: string } }> {
  let parsed: unknown;
  let out = "";
  const run = (args: CmdArgs) => {
    parsed = c.parse(args);
  };
  const code = await runPlugin(
    { add: (a) => (run(a), { cniVersion: "1.1.0" }), del: run, check: run },
    {
      env: { CNI_COMMAND: command, CNI_CONTAINERID: "c1", CNI_NETNS: "/run/netns/x", CNI_IFNAME: "eth0", CNI_PATH: "/bin" },
      readStdin: () => JSON.stringify({ cniVersion: "1.0.0", name: "net", type: c.type, ...config }),
      writeStdout: (s) => {
        out += s;
      },
      writeStderr: () => {},
    },
  );
  return code === 0 ? { parsed } : { error: JSON.parse(out) };
}

for (const c of CASES) {
  describe(`${c.type} config`, () => {
    test("the full and the least config are accepted", () => {
      expect(() => c.parse(cmdArgs({ type: c.type, ...c.full }))).not.toThrow();
      expect(() => c.parse(cmdArgs({ type: c.type, ...c.least }))).not.toThrow();
    });

    test("keys in any case (Go's encoding/json) give what the canonical names give, through the skel", async () => {
      const canonical = await viaSkel(c, c.full);
      expect(canonical.error).toBeUndefined();
      expect(canonical.parsed).toBeDefined();
      const odd = oddCase(c.full) as Record<string, unknown>;
      expect(Object.keys(odd)).not.toEqual(Object.keys(c.full));
      expect(await viaSkel(c, odd)).toEqual(canonical);
    });

    const keys = keyKinds(c.codec.shape);
    test(`every known key with a wrong JSON type is code 2 naming its path (${keys.length} keys)`, () => {
      const base = { type: c.type, ...c.least };
      expectWrongTypesRefused(base, keys, (conf) => c.parse(cmdArgs(conf)));
      for (const [path, kind] of keys) {
        expect(errorOf(() => c.parse(cmdArgs(withValue(base, path, wrongValues(kind)[0]))))?.message).toStartWith(`${c.type}: "${path}" must be `);
      }
    });

    test("DEL decodes leniently: no wrong type stops it", () => {
      for (const [path, kind] of keys) {
        if (path === "type") continue; // the skel's, as `type` names the plugin
        for (const v of wrongValues(kind)) {
          const log: string[] = [];
          expect(() => c.parse(cmdArgs(withValue({ type: c.type, ...c.full }, path, v), { command: "DEL", log }))).not.toThrow();
          expect(log.join("\n")).toContain(`"${path}"`);
        }
      }
    });

    test("a wrong type through the skel: the spec error JSON, code 2, the message naming the key as written", async () => {
      const key = c.type === "overlay" ? "subnetFileWaitMs" : c.type === "host-device" ? "device" : "mtu";
      for (const k of [key, key.toUpperCase()]) {
        const r = await viaSkel(c, { ...c.least, [k]: true });
        expect(r.error?.code).toBe(2);
        expect(r.error?.msg).toStartWith(`${c.type}: "${k}" must be `);
        expect(r.error?.msg).toEndWith(", not boolean true");
      }
    });
  });
}

describe("the MTU: one rule for every plugin that has one", () => {
  const withMtu = CASES.filter((c) => "mtu" in c.codec.shape);
  test("bridge, ptp, macvlan, ipvlan and vlan decode mtu with the shared codec", () => {
    expect(withMtu.map((c) => c.type)).toEqual(["bridge", "ptp", "macvlan", "ipvlan", "vlan"]);
    for (const c of withMtu) expect(c.codec.shape.mtu).toBe(mtuCodec as Codec<unknown>);
  });
  for (const [mtu, code] of [[0, 0], [68, 0], [9000, 0], [65535, 0], [67, 7], [-1, 7], [65536, 7], [1.5, 2], ["1500", 2], [true, 2]] as const) {
    test(`mtu ${JSON.stringify(mtu)}: ${code === 0 ? "accepted" : `code ${code}`}; DEL goes on`, () => {
      for (const c of withMtu) {
        const args = cmdArgs({ type: c.type, ...c.least, mtu });
        if (code === 0) expect(() => c.parse(args)).not.toThrow();
        else expect(errorOf(() => c.parse(args)).code).toBe(code);
        expect(() => c.parse(cmdArgs({ type: c.type, ...c.least, mtu }, { command: "DEL" }))).not.toThrow();
      }
    });
  }
});

describe("bridge", () => {
  const parse = (conf: Record<string, unknown>, opts: { command?: string; cniArgs?: string } = {}) => parseBridgeConf(cmdArgs({ type: "bridge", ...conf }, opts));

  test("the reference's names in Go's case", () => {
    const c = parse({ IsGateway: true, MTU: 1400, Bridge: "br1", IPMASQ: true, MacSpoofChk: true, HairpinMode: true, IPAM: { type: "x" } });
    expect(c).toMatchObject({ bridge: "br1", isGateway: true, mtu: 1400, ipMasq: true, macspoofchk: true, hairpinMode: true, ipamType: "x" });
  });

  test("isDefaultGateway implies isGateway; defaults", () => {
    expect(parse({ isDefaultGateway: true }).isGateway).toBe(true);
    expect(parse({})).toEqual({
      bridge: "cni0", ipMasq: false, macspoofchk: false, isGateway: false, isDefaultGateway: false, forceAddress: false,
      hairpinMode: false, promiscMode: false, enabledad: false, disableContainerInterface: false, portIsolation: false,
    });
  });

  test("the MAC: CNI_ARGS, then args.cni.mac, then runtimeConfig.mac (last wins); lower case; \"\" is unset", () => {
    expect(parse({}, { cniArgs: "MAC=02:00:00:00:00:AA" }).mac).toBe("02:00:00:00:00:aa");
    expect(parse({ args: { cni: { mac: "02-00-00-00-00-bb" } } }, { cniArgs: "MAC=02:00:00:00:00:AA" }).mac).toBe("02:00:00:00:00:bb");
    expect(parse({ args: { cni: { mac: "02:00:00:00:00:bb" } }, runtimeConfig: { mac: "02:00:00:00:00:cc" } }).mac).toBe("02:00:00:00:00:cc");
    expect(parse({ runtimeConfig: { mac: "" }, args: { cni: { mac: "" } } }).mac).toBeUndefined();
  });

  test("semantic checks keep their codes on ADD and do not stop DEL", () => {
    for (const [conf, code, msg, cniArgs] of [
      [{ vlan: 100 }, 2, "vlan=100 is not supported yet", ""],
      [{ vlanTrunk: [{ id: 5 }] }, 2, "vlanTrunk is not supported yet", ""],
      [{ ipMasqBackend: "ebpf" }, 7, "invalid ipMasqBackend", ""],
      [{ mtu: 12 }, 7, "mtu must be 0 (default) or from 68 to 65535", ""],
      [{ bridge: "a/b" }, 7, "invalid interface name", ""],
      [{ bridge: "" }, 7, "must name the bridge", ""],
      [{ runtimeConfig: { mac: "zz" } }, 7, "invalid MAC address", ""],
      [{}, 7, "invalid MAC address", "MAC=zz"],
      [{ disableContainerInterface: true, ipam: { type: "host-local" } }, 7, "disableContainerInterface", ""],
      [{ vlanTrunk: [{ id: "5" }] }, 2, '"vlanTrunk[0].id" must be an integer', ""],
    ] as const) {
      const e = errorOf(() => parse(conf, { cniArgs }));
      expect({ conf, code: e.code }).toEqual({ conf, code });
      expect(e.message).toContain(msg);
      expect(() => parse(conf, { cniArgs, command: "DEL" })).not.toThrow();
    }
  });

  test("DEL: an ipMasq or macspoofchk that does not decode counts as on (their elements still go); IPAM type and bridge survive other bad keys", () => {
    const c = parse({ ipMasq: "yes", macspoofchk: 1, mtu: "x", vlan: 7, bridge: "br1", isGateway: "no", ipam: { type: "host-local" } }, { command: "DEL" });
    expect(c).toMatchObject({ ipMasq: true, macspoofchk: true, bridge: "br1", isGateway: false, ipamType: "host-local" });
    expect(parse({ ipMasq: false, macspoofchk: false }, { command: "DEL" })).toMatchObject({ ipMasq: false, macspoofchk: false });
    expect(parse({}, { command: "DEL" })).toMatchObject({ ipMasq: false, macspoofchk: false });
    expect(parse({ IPMASQ: 1 }, { command: "DEL" }).ipMasq).toBe(true);
    expect(parse({ bridge: 5 }, { command: "DEL" }).bridge).toBe("cni0");
  });
});

describe("ptp", () => {
  const parse = (conf: Record<string, unknown>, command = "ADD") => parsePtpConf(cmdArgs({ type: "ptp", ...conf }, { command }));
  test("IPAM is required on ADD (code 7), not on DEL; Go's case", () => {
    expect(errorOf(() => parse({})).code).toBe(7);
    expect(parse({}, "DEL")).toEqual({ ipamType: "", ipMasq: false });
    expect(parse({ IPMasq: true, Mtu: 1400, Ipam: { Type: "static" } })).toEqual({ ipamType: "static", ipMasq: true, mtu: 1400 });
  });
  test("DEL: an ipMasq that does not decode counts as on", () => {
    expect(parse({ ipMasq: "yes", mtu: "x", ipMasqBackend: 3, ipam }, "DEL")).toEqual({ ipamType: "host-local", ipMasq: true });
  });
});

describe("macvlan, ipvlan, vlan", () => {
  test("modes by the reference's names; \"\" is the default", () => {
    expect(parseMacvlanConf(cmdArgs({ type: "macvlan", Mode: "" })).mode).toBe("bridge");
    expect(parseIpvlanConf(cmdArgs({ type: "ipvlan", MODE: "l3s" })).mode).toBe("l3s");
    expect(errorOf(() => parseIpvlanConf(cmdArgs({ type: "ipvlan", mode: "l4" }))).message).toContain("unknown ipvlan mode");
  });
  test("Go's names: Master, MTU, LinkInContainer, VlanId, Mac, BcQueueLen", () => {
    expect(parseMacvlanConf(cmdArgs({ type: "macvlan", Master: "eth2", MTU: 1400, LinkInContainer: true, Mac: "02:00:00:00:00:0F", BcQueueLen: 0 })))
      .toEqual({ master: "eth2", mode: "bridge", mtu: 1400, linkInContainer: true, mac: "02:00:00:00:00:0f" });
    expect(parseVlanConf(cmdArgs({ type: "vlan", MASTER: "eth2", VlanId: 5, Ipam: { type: "x" } }))).toMatchObject({ master: "eth2", vlanId: 5, ipamType: "x" });
  });
  test("DEL needs nothing but what it finds: no master, a bad mode, an unsupported bcqueuelen, a bad MAC", () => {
    const del = { command: "DEL" };
    expect(parseVlanConf(cmdArgs({ type: "vlan", vlanId: 9999, ipam }, del)).ipamType).toBe("host-local");
    expect(parseMacvlanConf(cmdArgs({ type: "macvlan", mode: "l2", bcqueuelen: 100, mac: "zz", ipam }, { ...del, cniArgs: "MAC=zz" })).ipamType).toBe("host-local");
    expect(parseIpvlanConf(cmdArgs({ type: "ipvlan", mode: "x", master: "a/b" }, del)).mode).toBe("l2");
  });
});

describe("host-device", () => {
  const parse = (conf: Record<string, unknown>, command = "ADD") => parseHostDeviceConf(cmdArgs({ type: "host-device", ...conf }, { command }), noSysfs);
  test("Go's names, and the untagged DPDKMode field as the reference reads it", () => {
    expect(parse({ Device: "eth1", HWADDR: "02-00-00-00-00-0A", PciBusId: "", KernelPath: "" })).toEqual({ device: "eth1", hwaddr: "02:00:00:00:00:0a", dpdkMode: false });
    expect(parse({ device: "eth1", dpdkmode: true }).dpdkMode).toBe(true);
  });
  test("semantic checks (code 7) on ADD; DEL needs none of them", () => {
    for (const conf of [{}, { hwaddr: "zz" }, { kernelpath: "/dev/x" }, { pciBusID: "eth0" }, { runtimeConfig: { deviceID: "x" } }, { pciBusID: "0000:00:01.0" }]) {
      expect({ conf, code: errorOf(() => parse(conf)).code }).toEqual({ conf, code: 7 });
      expect(() => parse(conf, "DEL")).not.toThrow();
    }
  });
});

describe("overlay", () => {
  const parse = (conf: Record<string, unknown>, command = "ADD") => parseOverlayConf(cmdArgs({ type: "overlay", ...conf }, { command }));
  test("defaults; \"\" is the default; flannel's names in any case", () => {
    expect(parse({})).toEqual({ subnetFile: "/run/flannel/subnet.env", dataDir: "/var/lib/cni/overlay", waitMs: 3000, delegate: {}, datapath: "kernel", bpfPinDir: "", bigTCP: undefined });
    expect(parse({ SubnetFile: "/x.env", DataDir: "", Delegate: { Bridge: "b" } })).toMatchObject({ subnetFile: "/x.env", dataDir: "/var/lib/cni/overlay", delegate: { Bridge: "b" } });
  });
  test("bigTCP: true or false, else code 2 naming the key", () => {
    expect(parse({ datapath: "ebpf", bigTCP: true }).bigTCP).toBe(true);
    expect(parse({ datapath: "ebpf", BigTCP: false }).bigTCP).toBe(false);
    const e = errorOf(() => parse({ datapath: "ebpf", bigTCP: "yes" }));
    expect(e.code).toBe(2);
    expect(e.message).toContain("bigTCP");
  });
  test("a negative wait is code 7; a dataDir that does not decode is never the default one on DEL", () => {
    expect(errorOf(() => parse({ subnetFileWaitMs: -1 })).code).toBe(7);
    expect(parse({ dataDir: 5 }, "DEL").dataDir).toBeNull();
    expect(parse({ dataDir: null }, "DEL").dataDir).toBe("/var/lib/cni/overlay");
  });
  test("datapath: kernel (default) or ebpf in any case; anything else is code 7, a wrong type code 2", () => {
    expect(parse({ Datapath: "ebpf", BPFPinDir: "/sys/fs/bpf/x" })).toMatchObject({ datapath: "ebpf", bpfPinDir: "/sys/fs/bpf/x" });
    expect(parse({ datapath: "" }).datapath).toBe("kernel");
    expect(errorOf(() => parse({ datapath: "xdp" })).code).toBe(7);
    expect(errorOf(() => parse({ datapath: true })).code).toBe(2);
    expect(errorOf(() => parse({ bpfPinDir: "relative" })).code).toBe(7);
  });
  test("ebpf: ptp with the lease's range and a default route; pins: the config's, else the agent's, else per network", () => {
    const env = { network: "10.96.0.0/16", subnet: "10.96.3.1/24", mtu: 1450, ipMasq: true, bpfPinDir: "/sys/fs/bpf/agent" };
    expect(delegateConfig({ name: "net", cniVersion: "1.1.0" }, env, { hairpinMode: true }, "ebpf")).toEqual({
      type: "ptp", ipMasq: false, mtu: 1450, hairpinMode: true, name: "net", cniVersion: "1.1.0",
      ipam: { type: "host-local", ranges: [[{ subnet: "10.96.3.0/24" }]], routes: [{ dst: "10.96.0.0/16" }, { dst: "0.0.0.0/0" }] },
    });
    expect(delegateConfig({ name: "net", cniVersion: "1.1.0" }, env, {}).type).toBe("bridge");
    expect(bpfPinDirOf(parse({ datapath: "ebpf", bpfPinDir: "/x" }), env, "net")).toBe("/x");
    expect(bpfPinDirOf(parse({ datapath: "ebpf" }), env, "net")).toBe("/sys/fs/bpf/agent");
    expect(bpfPinDirOf(parse({ datapath: "ebpf" }), { ...env, bpfPinDir: undefined }, "net")).toBe("/sys/fs/bpf/cnikit/net");
    expect(errorOf(() => bpfPinDirOf(parse({ datapath: "ebpf" }), undefined, "../x")).code).toBe(7);
  });
});
