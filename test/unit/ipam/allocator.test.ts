import { describe, expect, test } from "bun:test";
import { allocate } from "../../../src/ipam/allocator.ts";
import { parseRange, parseRangeSet, rangeSetSize } from "../../../src/ipam/range.ts";
import { FakeStore } from "../../../src/ipam/store.ts";
import { CniError } from "../../../src/spec/error.ts";
import { formatIP, parseIP } from "../../../src/spec/ip.ts";

const fmt = (r: { start: Uint8Array; end: Uint8Array; gateway: Uint8Array }) => [formatIP(r.start), formatIP(r.end), formatIP(r.gateway)];

describe("ranges", () => {
  test("defaults: .1 to the address before broadcast, gateway .1", () => {
    expect(fmt(parseRange({ subnet: "10.1.2.0/24" }))).toEqual(["10.1.2.1", "10.1.2.254", "10.1.2.1"]);
    expect(fmt(parseRange({ subnet: "fd00::/120" }))).toEqual(["fd00::1", "fd00::ff", "fd00::1"]);
    expect(fmt(parseRange({ subnet: "10.1.0.0/16", rangeStart: "10.1.5.10", rangeEnd: "10.1.5.20", gateway: "10.1.0.254" }))).toEqual([
      "10.1.5.10", "10.1.5.20", "10.1.0.254",
    ]);
  });
  test("errors name the problem", () => {
    expect(() => parseRange({ subnet: "10.1.2.5/24" })).toThrow(/host bits set.*10\.1\.2\.0/);
    expect(() => parseRange({ subnet: "10.1.2.0/31" })).toThrow(/too small/);
    expect(() => parseRange({ subnet: "10.1.2.0/24", rangeStart: "10.1.3.1" })).toThrow(/not in network/);
    expect(() => parseRange({ subnet: "10.1.2.0/24", rangeStart: "10.1.2.9", rangeEnd: "10.1.2.3" })).toThrow(/after RangeEnd/);
    expect(() => parseRange({ subnet: "nope" })).toThrow(CniError);
    expect(() => parseRangeSet([{ subnet: "10.1.0.0/16" }, { subnet: "10.1.2.0/24" }])).toThrow(/overlaps/);
    expect(() => parseRangeSet([{ subnet: "10.1.0.0/16" }, { subnet: "fd00::/64" }])).toThrow(/mixed/);
  });
  test("size excludes the gateway", () => {
    expect(rangeSetSize(parseRangeSet([{ subnet: "10.0.0.0/29" }]))).toBe(5n); // .1-.6 minus gateway .1
  });
});

describe("allocation", () => {
  const set = parseRangeSet([{ subnet: "10.0.0.0/29" }, { subnet: "10.0.1.0/30" }]);
  const alloc = (s: FakeStore, id: string, requested?: string) =>
    formatIP(allocate(s, { set, index: 0, containerId: id, ifName: "eth0", ...(requested ? { requested: parseIP(requested)! } : {}) }).ip);

  test("round-robin from the last reserved address, skipping gateways, across ranges, then exhausted", () => {
    const s = new FakeStore();
    const got = ["a", "b", "c", "d", "e", "f"].map((id) => alloc(s, id));
    expect(got).toEqual(["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.1.2"]);
    expect(() => alloc(s, "g")).toThrow(/no IP addresses available/);
    // releasing an early address: the next one comes after the last reserved, wrapping around
    s.releaseByID("b", "eth0");
    expect(alloc(s, "h")).toBe("10.0.0.3");
  });

  test("continues after the last reserved address instead of reusing a just-freed one", () => {
    const s = new FakeStore();
    alloc(s, "a"); // .2
    alloc(s, "b"); // .3
    s.releaseByID("a", "eth0");
    expect(alloc(s, "c")).toBe("10.0.0.4");
  });

  test("a requested address is honoured when free and refused otherwise", () => {
    const s = new FakeStore();
    expect(alloc(s, "a", "10.0.0.5")).toBe("10.0.0.5");
    expect(() => alloc(s, "b", "10.0.0.5")).toThrow(/not available/);
    expect(() => alloc(s, "b", "10.9.0.5")).toThrow(/not in range set/);
    expect(() => alloc(s, "b", "10.0.0.1")).toThrow(/gateway/);
  });

  test("a second ADD for the same attachment is refused, as the reference does", () => {
    const s = new FakeStore();
    alloc(s, "a");
    expect(() => alloc(s, "a")).toThrow(/duplicate allocation/);
  });
});
