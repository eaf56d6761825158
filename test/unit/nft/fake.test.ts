import { beforeEach, describe, expect, test } from "bun:test";
import { isExists, isNotFound, NetlinkError } from "../../../src/netlink/error.ts";
import { FakeNft } from "../../../src/nft/fake.ts";
import type { Chain, NftMap, NftSet } from "../../../src/nft/objects.ts";
import { Transaction } from "../../../src/nft/transaction.ts";
import { concat, inetService, ipv4 } from "../../../src/nft/value.ts";
import { verdict } from "../../../src/nft/verdict.ts";

const T = { family: "inet", table: "cni" } as const;
const out: Chain = { kind: "chain", name: "out", type: "filter", hook: "output", priority: 0 };
const pods: NftSet = { kind: "set", name: "pods", key: ["ipv4_addr", "inet_service"] };
const vm: NftMap = { kind: "map", name: "vm", key: "ipv4_addr", data: "verdict" };

function errOf(f: () => void): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("did not throw");
}

describe("FakeNft", () => {
  let nft: FakeNft;
  beforeEach(() => {
    nft = new FakeNft();
    nft.apply(new Transaction(T).add({ kind: "table" }).add(out).add({ kind: "chain", name: "pod" }).add(pods).add(vm));
  });

  test("tables, chains and sets exist after a transaction", () => {
    expect(nft.getTable("inet", "cni")).toEqual({ family: "inet", name: "cni", flags: 0, use: 4 });
    expect(nft.getTable("ip", "cni")).toBeUndefined();
    expect(nft.fakeChain("inet", "cni", "out")?.def).toEqual(out);
    expect(nft.getSet("inet", "cni", "pods")?.def).toEqual(pods);
    expect(nft.applied.length).toBe(1);
  });

  test("add is idempotent, create fails with EEXIST", () => {
    nft.apply(new Transaction(T).add({ kind: "table" }).add(out).add(pods));
    const e = errOf(() => nft.apply(new Transaction(T).create(pods)));
    expect(e).toBeInstanceOf(NetlinkError);
    expect(isExists(e)).toBe(true);
    expect(isExists(errOf(() => nft.apply(new Transaction(T).add({ ...pods, key: "ipv4_addr" }))))).toBe(true);
  });

  test("an interval element keeps its end, as the kernel lists it", () => {
    const iv: NftSet = { kind: "set", name: "iv", key: ["ipv4_addr", "inet_service"], flags: ["interval"] };
    const key = [ipv4("10.0.0.1"), inetService(80)];
    const keyEnd = [ipv4("10.0.0.9"), inetService(90)];
    nft.apply(new Transaction(T).add(iv).add({ kind: "element", set: "iv", key, keyEnd }));
    expect(nft.listElements("inet", "cni", "iv")).toEqual([{ key: concat(key), keyEnd: concat(keyEnd), flags: 0 }]);
    // deleted by its start and its end, or its start alone (as the kernel does); another end is not it
    const other = [ipv4("10.0.0.8"), inetService(90)];
    expect(isNotFound(errOf(() => nft.apply(new Transaction(T).delete({ kind: "element", set: "iv", key, keyEnd: other }))))).toBe(true);
    nft.apply(new Transaction(T).delete({ kind: "element", set: "iv", key, keyEnd }));
    expect(nft.listElements("inet", "cni", "iv")).toEqual([]);
    nft.apply(new Transaction(T).add({ kind: "element", set: "iv", key, keyEnd }).delete({ kind: "element", set: "iv", key }));
    expect(nft.listElements("inet", "cni", "iv")).toEqual([]);
  });

  test("elements: add, list, re-add, clash, delete, destroy", () => {
    const key = [ipv4("10.0.0.2"), inetService(80)];
    nft.apply(new Transaction(T).add({ kind: "element", set: "pods", key }));
    nft.apply(new Transaction(T).add({ kind: "element", set: "pods", key }));
    expect(nft.listElements("inet", "cni", "pods")).toEqual([{ key: concat(key), flags: 0 }]);
    expect(isExists(errOf(() => nft.apply(new Transaction(T).create({ kind: "element", set: "pods", key }))))).toBe(true);
    nft.apply(new Transaction(T).add({ kind: "element", set: "vm", key: ipv4("10.0.0.2"), verdict: verdict.jump("pod") }));
    const clash = errOf(() =>
      nft.apply(new Transaction(T).add({ kind: "element", set: "vm", key: ipv4("10.0.0.2"), verdict: verdict.drop }))
    );
    expect((clash as NetlinkError).code).toBe("EBUSY");
    nft.apply(new Transaction(T).delete({ kind: "element", set: "pods", key }));
    expect(nft.listElements("inet", "cni", "pods")).toEqual([]);
    expect(isNotFound(errOf(() => nft.apply(new Transaction(T).delete({ kind: "element", set: "pods", key }))))).toBe(true);
    nft.apply(new Transaction(T).destroy({ kind: "element", set: "pods", key }));
  });

  test("wrong key length and data for a plain set are EINVAL", () => {
    const e = errOf(() => nft.apply(new Transaction(T).add({ kind: "element", set: "pods", key: ipv4("10.0.0.2") })));
    expect((e as NetlinkError).code).toBe("EINVAL");
    const d = errOf(() =>
      nft.apply(new Transaction(T).add({ kind: "element", set: "vm", key: ipv4("10.0.0.2"), data: ipv4("1.1.1.1") }))
    );
    expect((d as NetlinkError).code).toBe("EINVAL");
  });

  test("missing table, chain, set or jump target is not found", () => {
    const other = { family: "ip", table: "none" } as const;
    expect(isNotFound(errOf(() => nft.apply(new Transaction(other).add(out))))).toBe(true);
    expect(isNotFound(errOf(() => nft.listElements("inet", "cni", "nope")))).toBe(true);
    expect(isNotFound(errOf(() => nft.apply(new Transaction(T).add({ kind: "rule", chain: "nope", exprs: [] }))))).toBe(true);
    expect(
      isNotFound(errOf(() =>
        nft.apply(new Transaction(T).add({ kind: "rule", chain: "out", exprs: [{ kind: "lookup", set: "nope", sreg: 8 }] }))
      )),
    ).toBe(true);
    expect(
      isNotFound(errOf(() =>
        nft.apply(new Transaction(T).add({ kind: "rule", chain: "out", exprs: [{ kind: "immediate", verdict: verdict.jump("x") }] }))
      )),
    ).toBe(true);
    nft.apply(new Transaction(other).destroy({ kind: "table" }));
  });

  test("a failing transaction changes nothing", () => {
    const tx = new Transaction(T)
      .add({ kind: "element", set: "pods", key: [ipv4("10.0.0.3"), inetService(53)] })
      .add({ kind: "chain", name: "extra" })
      .delete({ kind: "set", name: "missing", key: "ipv4_addr" });
    const e = errOf(() => nft.apply(tx));
    expect(isNotFound(e)).toBe(true);
    expect((e as NetlinkError).op).toContain("delete set inet cni missing");
    expect(nft.listElements("inet", "cni", "pods")).toEqual([]);
    expect(nft.getChain("inet", "cni", "extra")).toBeUndefined();
    expect(nft.applied.length).toBe(1);
  });

  test("rules: append, insert, flush; objects in use are EBUSY", () => {
    const lookup = { kind: "rule", chain: "out", exprs: [{ kind: "lookup", set: "pods", sreg: 8 }] } as const;
    const first = { kind: "rule", chain: "out", exprs: [{ kind: "counter" }] } as const;
    nft.apply(new Transaction(T).add(lookup).insert(first));
    expect(nft.fakeChain("inet", "cni", "out")?.rules.map((r) => r.rule)).toEqual([first, lookup]);
    expect((errOf(() => nft.apply(new Transaction(T).delete(pods))) as NetlinkError).code).toBe("EBUSY");
    expect((errOf(() => nft.apply(new Transaction(T).delete(out))) as NetlinkError).code).toBe("EBUSY");
    nft.apply(new Transaction(T).flush(out).delete(out).delete(pods));
    expect(nft.getChain("inet", "cni", "out")).toBeUndefined();
    const handle = (() => {
      nft.apply(new Transaction(T).add({ kind: "rule", chain: "pod", exprs: [] }));
      return nft.fakeChain("inet", "cni", "pod")!.rules[0]!.handle;
    })();
    nft.apply(new Transaction(T).delete({ kind: "rule", chain: "pod", exprs: [], handle }));
    expect(nft.fakeChain("inet", "cni", "pod")?.rules).toEqual([]);
  });

  test("deleting the table removes everything; delete again is not found, destroy is fine", () => {
    nft.apply(new Transaction(T).delete({ kind: "table" }));
    expect(nft.getTable("inet", "cni")).toBeUndefined();
    expect(isNotFound(errOf(() => nft.apply(new Transaction(T).delete({ kind: "table" }))))).toBe(true);
    nft.apply(new Transaction(T).destroy({ kind: "table" }));
  });
});
