// endpoint-del.ts keeps the endpoint map's layout as numbers of its own (so that a plugin's DEL
// and, through endpoints.ts, its ADD load nothing else): they must be what programs/layout.ts
// makes, and its value encoder is layout.ts's `encodeEndpoint`. Its behaviour on pinned maps is
// checked in test/integration/bpf/pinning.test.ts (a bpffs needs a mount namespace of its own).
import { expect, test } from "bun:test";
import { ENDPOINT_MAP } from "../../../src/bpf/endpoint-del.ts";
import { MapType } from "../../../src/bpf/map.ts";
import { EP, encodeEndpoint, endpointKey, MapName, mapSpecs } from "../../../src/bpf/programs/layout.ts";

test("the endpoint map's file, type, key and value sizes and ifindex offset are layout.ts's", () => {
  const spec = mapSpecs().endpoints;
  expect(ENDPOINT_MAP.file).toBe(MapName.endpoints);
  expect(ENDPOINT_MAP.type).toBe(MapType.HASH);
  expect(spec.type).toBe(MapType.HASH);
  expect<number>(ENDPOINT_MAP.keySize).toBe(spec.keySize);
  expect<number>(ENDPOINT_MAP.valueSize).toBe(spec.valueSize);
  expect(ENDPOINT_MAP.ifindexAt).toBe(EP.ifindex);
  const v = encodeEndpoint({ ifindex: 0x01020304, podMac: "0a:00:00:00:00:01", hostMac: "0e:00:00:00:00:01" });
  expect(new DataView(v.buffer).getUint32(ENDPOINT_MAP.ifindexAt, true)).toBe(0x01020304);
  // the key is the address's four bytes, as parseIP gives them
  expect([...endpointKey("10.77.0.9")]).toEqual([10, 77, 0, 9]);
  for (const bad of ["fd00::9", "10.77.0", ""]) expect(() => endpointKey(bad)).toThrow(TypeError);
});

test("an endpoint's value: ifindex, pod MAC and host MAC at layout.ts's offsets; a bad MAC is refused", () => {
  expect(ENDPOINT_MAP.podMacAt).toBe(EP.podMac);
  expect(ENDPOINT_MAP.hostMacAt).toBe(EP.hostMac);
  expect([...encodeEndpoint({ ifindex: 0x01020304, podMac: "0a:00:00:00:00:01", hostMac: "0e:00:00:00:00:01" })]).toEqual([
    4, 3, 2, 1, 0x0a, 0, 0, 0, 0, 1, 0x0e, 0, 0, 0, 0, 1,
  ]);
  expect([...encodeEndpoint({ ifindex: 7, podMac: "DE:AD:be:ef:00:ff", hostMac: "00:00:00:00:00:00" })]).toEqual([
    7, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0xff, 0, 0, 0, 0, 0, 0,
  ]);
  for (const mac of ["0a:00:00:00:00", "0a:00:00:00:00:1", "0a:00:00:00:00:0g", "0a-00-00-00-00-01", "", "0a:00:00:00:00:01:02"]) {
    expect(() => encodeEndpoint({ ifindex: 1, podMac: mac, hostMac: "0e:00:00:00:00:01" })).toThrow(TypeError);
  }
});
