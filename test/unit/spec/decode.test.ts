import { describe, expect, test } from "bun:test";
import { any, bool, cidr, decode, foldKey, i64, ip, list, mac, num, object, record, str, u16, u32, u64 } from "../../../src/spec/decode.ts";
import { CniError, ErrorCode } from "../../../src/spec/error.ts";

function fails(f: () => unknown): CniError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error("expected a spec error");
}

const PortMapping = object({ hostPort: u16, containerPort: u16, protocol: str, hostIP: str });
const Conf = object({
  name: str,
  mtu: i64,
  isGateway: bool,
  runtimeConfig: object({ portMappings: list(PortMapping), bandwidth: object({ ingressRate: u64 }) }),
  sysctl: record(str),
  args: any,
});

describe("Go's key matching", () => {
  test("exact match, then case-insensitive", () => {
    expect(decode(Conf, { NAME: "a", Mtu: 1400, ISGATEWAY: true })).toEqual({ name: "a", mtu: 1400, isGateway: true });
  });

  test("go-cni's capability arguments with Go field names", () => {
    const out = decode(Conf, { runtimeConfig: { portMappings: [{ HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "" }], Bandwidth: { IngressRate: 1000 } } });
    expect(out.runtimeConfig).toEqual({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "" }], bandwidth: { ingressRate: 1000 } });
  });

  test("when several keys match one field, the last in the document wins (as Go sets the field once per key)", () => {
    expect(decode(Conf, { mtu: 1, MTU: 2 }).mtu).toBe(2);
    expect(decode(Conf, { MTU: 2, mtu: 1 }).mtu).toBe(1);
    expect(decode(Conf, { mtu: 1, MTU: null }).mtu).toBeUndefined();
  });

  test("an exact field wins over a case-insensitive one", () => {
    const C = object({ foo: str, Foo: str });
    expect(decode(C, { Foo: "x" })).toEqual({ Foo: "x" });
    expect(decode(C, { FOO: "y" })).toEqual({ foo: "y" }); // the first field in declaration order
  });

  test("Unicode folding as Go's: the Kelvin sign matches k, the long s matches s", () => {
    expect(foldKey("\u212aey")).toBe("KEY");
    expect(decode(object({ key: str, mask: str }), { "\u212aey": "k", "ma\u017fk": "m" })).toEqual({ key: "k", mask: "m" });
  });

  test("map keys are taken as they are", () => {
    expect(decode(Conf, { sysctl: { "net.ipv4.X": "1" } }).sysctl).toEqual({ "net.ipv4.X": "1" });
  });

  test("unknown keys are ignored and null leaves a field unset", () => {
    expect(decode(Conf, { other: 1, name: null })).toEqual({});
  });
});

describe("wrong types are spec error 2 naming the path and the expected type", () => {
  const cases: Array<[unknown, string]> = [
    [{ name: 1 }, '"name" must be a string, not number 1'],
    [{ name: {} }, '"name" must be a string, not an object'],
    [{ mtu: "1500" }, '"mtu" must be an integer, not string "1500"'],
    [{ mtu: 1.5 }, '"mtu" must be an integer, not number 1.5'],
    [{ mtu: 1e300 }, '"mtu" must be an integer from'],
    [{ isGateway: "true" }, '"isGateway" must be true or false, not string "true"'],
    [{ isGateway: 1 }, '"isGateway" must be true or false, not number 1'],
    [{ runtimeConfig: [] }, '"runtimeConfig" must be an object, not a list'],
    [{ runtimeConfig: { portMappings: {} } }, '"runtimeConfig.portMappings" must be a list, not an object'],
    [{ runtimeConfig: { portMappings: [{ hostPort: 70000 }] } }, '"runtimeConfig.portMappings[0].hostPort" must be a non-negative integer from 0 to 65535'],
    [{ runtimeConfig: { portMappings: [{ HostPort: -1 }] } }, '"runtimeConfig.portMappings[0].HostPort" must be a non-negative integer'],
    [{ runtimeConfig: { bandwidth: { ingressRate: "1M" } } }, '"runtimeConfig.bandwidth.ingressRate" must be a non-negative integer, not string "1M"'],
    [{ sysctl: { a: 1 } }, '"sysctl.a" must be a string, not number 1'],
    ["x", "the config must be an object"],
  ];
  for (const [input, msg] of cases) {
    test(JSON.stringify(input), () => {
      const e = fails(() => decode(Conf, input, { where: "bridge" }));
      expect(e.code).toBe(ErrorCode.UnsupportedField);
      expect(e.message.startsWith(`bridge: ${msg}`)).toBe(true);
    });
  }

  test("numbers: Go's sized integers", () => {
    expect(decode(u32, 2 ** 32 - 1)).toBe(2 ** 32 - 1);
    fails(() => decode(u32, 2 ** 32));
    expect(decode(u64, 1e19)).toBe(1e19);
    fails(() => decode(u64, -1));
    expect(decode(num, 1.5)).toBe(1.5);
    fails(() => decode(num, "1"));
  });

  test("addresses: a string that is not one is code 7", () => {
    expect(decode(ip, "10.0.0.1")).toBe("10.0.0.1");
    expect(fails(() => decode(ip, "10.0.0.300")).code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(fails(() => decode(ip, 5)).code).toBe(ErrorCode.UnsupportedField);
    expect(decode(cidr, "fd00::/64")).toBe("fd00::/64");
    expect(fails(() => decode(cidr, "10.0.0.0")).code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(decode(mac, "0A-0b-0c-0d-0e-0f")).toBe("0a:0b:0c:0d:0e:0f");
    expect(fails(() => decode(mac, "0a:0b")).code).toBe(ErrorCode.InvalidNetworkConfig);
  });

  test("null list elements are Go's zero values", () => {
    expect(decode(list(str), ["a", null])).toEqual(["a", ""]);
  });
});

describe("lenient mode (DEL)", () => {
  test("drops what does not decode, keeps the rest, and says what it dropped", () => {
    const warnings: string[] = [];
    const out = decode(Conf, { name: "n", mtu: "x", runtimeConfig: { portMappings: [{ hostPort: "a" }, { hostPort: 80 }] } }, { where: "bridge", lenient: true, warn: (m) => warnings.push(m) });
    expect(out).toEqual({ name: "n", runtimeConfig: { portMappings: [{}, { hostPort: 80 }] } });
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toStartWith('bridge: ignored "mtu" must be an integer');
  });

  test("a top-level value of the wrong type decodes to nothing", () => {
    expect(decode(Conf, [], { lenient: true })).toEqual({});
  });
});
