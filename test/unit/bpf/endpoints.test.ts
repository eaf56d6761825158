// A pod's DEL removes its endpoint only while the entry still names the pod's host veth: a late
// DEL of a pod whose address has gone to a new pod keeps the new pod's entry. Real maps (bpf()),
// unpinned; needs root: reported as skipped otherwise.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { removeEndpointOf } from "../../../src/bpf/endpoints.ts";
import { BpfMap } from "../../../src/bpf/map.ts";
import { decodeEndpoint, encodeEndpoint, endpointKey, mapSpecs } from "../../../src/bpf/programs/layout.ts";

const root = process.getuid?.() === 0;
const POD = { ip: "10.77.0.9", podMac: "0a:00:00:00:00:09", hostMac: "ee:ee:ee:ee:ee:09" };

describe.skipIf(!root)("removeEndpointOf", () => {
  let m: BpfMap;
  beforeAll(() => {
    m = BpfMap.create(mapSpecs({ maxEndpoints: 8 }).endpoints);
  });
  afterAll(() => m?.close());
  const entry = () => {
    const v = m.lookup(endpointKey(POD.ip));
    return v && decodeEndpoint(endpointKey(POD.ip), v);
  };

  test("the entry of another host veth (a newer pod with the address) stays", () => {
    m.update(endpointKey(POD.ip), encodeEndpoint({ ...POD, ifindex: 42 }));
    expect(removeEndpointOf(m, POD.ip, 41)).toBe(false);
    expect(entry()?.ifindex).toBe(42);
  });

  test("the pod's own entry goes; again is a no-op", () => {
    expect(removeEndpointOf(m, POD.ip, 42)).toBe(true);
    expect(entry()).toBeUndefined();
    expect(removeEndpointOf(m, POD.ip, 42)).toBe(false);
  });

  test("without a recorded host veth (what older versions kept) the entry goes whatever it names", () => {
    m.update(endpointKey(POD.ip), encodeEndpoint({ ...POD, ifindex: 43 }));
    expect(removeEndpointOf(m, POD.ip)).toBe(true);
    expect(entry()).toBeUndefined();
  });
});
