// nftables through nfnetlink against the real kernel: a table with base chains, a set and maps,
// elements added and removed, a rule using them, all checked with `nft -j list ruleset`; errors
// and all-or-nothing batches.
import { assertPrivateNetns, must, run, runPrefix } from "../../support/netns.ts";
assertPrivateNetns();

import { afterAll, describe, expect, test } from "bun:test";
import { isExists, isNotFound, NetlinkError } from "../../../src/netlink/error.ts";
import { applyTransaction, NftConn } from "../../../src/nft/conn.ts";
import type { Chain, NftMap, NftSet } from "../../../src/nft/objects.ts";
import { concatRegs, reg32 } from "../../../src/nft/registers.ts";
import { Transaction } from "../../../src/nft/transaction.ts";
import { concat, inetProto, inetService, ipv4 } from "../../../src/nft/value.ts";
import { verdict } from "../../../src/nft/verdict.ts";

const prefix = runPrefix("nf");
const T = { family: "inet", table: prefix } as const;
const conn = NftConn.open();

afterAll(() => {
  run(["nft", "delete", "table", "inet", prefix]);
  run(["nft", "delete", "table", "inet", `${prefix}a`]);
  conn.close();
});

type Json = Record<string, any>;
function ruleset(): Json[] {
  return (JSON.parse(must(["nft", "-j", "list", "ruleset"])).nftables as Json[]).filter(
    (o) => Object.values(o)[0]?.table === prefix || Object.values(o)[0]?.name === prefix,
  );
}
function find(kind: string, name: string): Json | undefined {
  return ruleset().find((o) => o[kind] && o[kind].name === name)?.[kind];
}

const out: Chain = { kind: "chain", name: "out", type: "filter", hook: "output", priority: 0, policy: "accept" };
const pre: Chain = { kind: "chain", name: "pre", type: "nat", hook: "prerouting", priority: -100 };
const pods: NftSet = { kind: "set", name: "pods", key: ["ipv4_addr", "inet_service"] };
const vmap: NftMap = { kind: "map", name: "vm", key: "ipv4_addr", data: "verdict" };
const dnat: NftMap = { kind: "map", name: "dnat", key: ["ipv4_addr", "inet_proto", "inet_service"], data: ["ipv4_addr", "inet_service"] };

describe("nftables over nfnetlink", () => {
  test("table, base chains, sets and maps", () => {
    expect(conn.getTable("inet", prefix)).toBeUndefined();
    applyTransaction(
      conn,
      new Transaction(T).add({ kind: "table" }).add(out).add(pre).add({ kind: "chain", name: "pod" }).add(pods).add(vmap).add(dnat),
    );
    expect(conn.getTable("inet", prefix)).toMatchObject({ family: "inet", name: prefix, flags: 0 });
    expect(find("chain", "out")).toMatchObject({ family: "inet", table: prefix, type: "filter", hook: "output", prio: 0, policy: "accept" });
    expect(find("chain", "pre")).toMatchObject({ type: "nat", hook: "prerouting", prio: -100 });
    expect(find("chain", "pod")?.hook).toBeUndefined();
    expect(find("set", "pods")).toMatchObject({ type: ["ipv4_addr", "inet_service"] });
    expect(find("map", "vm")).toMatchObject({ type: "ipv4_addr", map: "verdict" });
    expect(find("map", "dnat")).toMatchObject({ type: ["ipv4_addr", "inet_proto", "inet_service"], map: "ipv4_addr . inet_service" }); // nft 1.0.6 prints concatenated map data as a string
    // adding again is fine; creating again is "exists"
    applyTransaction(conn, new Transaction(T).add({ kind: "table" }).add(out).add(pods));
    let err: unknown;
    try {
      applyTransaction(conn, new Transaction(T).create(pods));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetlinkError);
    expect(isExists(err)).toBe(true);
  });

  test("elements are added, listed and removed", () => {
    const key = [ipv4("10.88.0.5"), inetService(8080)];
    const dkey = [ipv4("192.0.2.1"), inetProto("tcp"), inetService(80)];
    applyTransaction(
      conn,
      new Transaction(T)
        .add({ kind: "element", set: "pods", key })
        .add({ kind: "element", set: "vm", key: ipv4("10.88.0.5"), verdict: verdict.jump("pod") })
        .add({ kind: "element", set: "dnat", key: dkey, data: [ipv4("10.88.0.5"), inetService(8080)] }),
    );
    expect(find("set", "pods")?.elem).toEqual([{ concat: ["10.88.0.5", 8080] }]);
    expect(find("map", "vm")?.elem).toEqual([["10.88.0.5", { jump: { target: "pod" } }]]);
    expect(find("map", "dnat")?.elem).toEqual([[{ concat: ["192.0.2.1", "tcp", 80] }, { concat: ["10.88.0.5", 8080] }]]);
    expect(conn.listElements("inet", prefix, "pods")).toEqual([{ key: concat(key), flags: 0 }]);
    expect(conn.listElements("inet", prefix, "vm")).toEqual([{ key: ipv4("10.88.0.5"), verdict: verdict.jump("pod"), flags: 0 }]);
    expect(conn.listElements("inet", prefix, "dnat")).toEqual([
      { key: concat(dkey), data: concat([ipv4("10.88.0.5"), inetService(8080)]), flags: 0 },
    ]);

    applyTransaction(conn, new Transaction(T).delete({ kind: "element", set: "pods", key }));
    expect(find("set", "pods")?.elem).toBeUndefined();
    expect(conn.listElements("inet", prefix, "pods")).toEqual([]);
    let err: unknown;
    try {
      applyTransaction(conn, new Transaction(T).delete({ kind: "element", set: "pods", key }));
    } catch (e) {
      err = e;
    }
    expect(isNotFound(err)).toBe(true);
    // destroy tolerates a missing element
    applyTransaction(conn, new Transaction(T).destroy({ kind: "element", set: "pods", key }));
    let missing: unknown;
    try {
      conn.listElements("inet", prefix, "nope");
    } catch (e) {
      missing = e;
    }
    expect(isNotFound(missing)).toBe(true);
  });

  test("a rule using the set, the verdict map and NAT", () => {
    const [addr, port] = concatRegs(reg32(0), [4, 2]);
    const [da, dp, ds] = concatRegs(reg32(0), [4, 1, 2]);
    applyTransaction(
      conn,
      new Transaction(T)
        .add({
          kind: "rule",
          chain: "out",
          exprs: [
            { kind: "meta", key: "nfproto", dreg: 1 },
            { kind: "cmp", op: "eq", sreg: 1, data: Uint8Array.of(2) },
            { kind: "meta", key: "l4proto", dreg: 1 },
            { kind: "cmp", op: "eq", sreg: 1, data: inetProto("tcp") },
            { kind: "payload", base: "network", offset: 16, len: 4, dreg: addr! },
            { kind: "payload", base: "transport", offset: 2, len: 2, dreg: port! },
            { kind: "lookup", set: "pods", sreg: addr! },
            { kind: "counter" },
            { kind: "immediate", verdict: verdict.drop },
          ],
        })
        .add({
          kind: "rule",
          chain: "out",
          exprs: [
            { kind: "meta", key: "nfproto", dreg: 1 },
            { kind: "cmp", op: "eq", sreg: 1, data: Uint8Array.of(2) },
            { kind: "payload", base: "network", offset: 16, len: 4, dreg: 1 },
            { kind: "lookup", set: "vm", sreg: 1, dreg: 0 },
          ],
        })
        .add({
          kind: "rule",
          chain: "pre",
          exprs: [
            { kind: "meta", key: "nfproto", dreg: 1 },
            { kind: "cmp", op: "eq", sreg: 1, data: Uint8Array.of(2) },
            { kind: "payload", base: "network", offset: 16, len: 4, dreg: da! },
            { kind: "meta", key: "l4proto", dreg: dp! },
            { kind: "payload", base: "transport", offset: 2, len: 2, dreg: ds! },
            { kind: "lookup", set: "dnat", sreg: da!, dreg: reg32(0) },
            { kind: "nat", type: "dnat", family: "ip", addrMin: reg32(0), protoMin: reg32(1) },
          ],
        }),
    );
    const rules = ruleset().filter((o) => o.rule).map((o) => o.rule as Json);
    const outRules = rules.filter((r) => r.chain === "out").map((r) => r.expr);
    expect(outRules[0]).toEqual([
      {
        match: {
          op: "==",
          left: { concat: [{ payload: { protocol: "ip", field: "daddr" } }, { payload: { protocol: "tcp", field: "dport" } }] },
          right: "@pods",
        },
      },
      { counter: { packets: 0, bytes: 0 } },
      { drop: null },
    ]);
    expect(outRules[1]).toEqual([{ vmap: { key: { payload: { protocol: "ip", field: "daddr" } }, data: "@vm" } }]);
    const preRule = rules.find((r) => r.chain === "pre")!.expr;
    expect(preRule).toEqual([
      {
        dnat: {
          family: "ip",
          addr: {
            map: {
              key: {
                concat: [
                  { payload: { protocol: "ip", field: "daddr" } },
                  { meta: { key: "l4proto" } },
                  { payload: { protocol: "th", field: "dport" } },
                ],
              },
              data: "@dnat",
            },
          },
        },
      },
    ]);
    // a set used by a rule cannot be deleted
    let busy: unknown;
    try {
      applyTransaction(conn, new Transaction(T).delete(pods));
    } catch (e) {
      busy = e;
    }
    expect((busy as NetlinkError).code).toBe("EBUSY");
    applyTransaction(conn, new Transaction(T).flush(out));
    expect(ruleset().filter((o) => o.rule && o.rule.chain === "out")).toEqual([]);
  });

  test("a batch whose last message fails leaves nothing behind", () => {
    const A = { family: "inet", table: `${prefix}a` } as const;
    const tx = new Transaction(A)
      .add({ kind: "table" })
      .add({ kind: "chain", name: "c", type: "filter", hook: "input", priority: 0 })
      .add({ kind: "set", name: "s", key: "ipv4_addr" })
      .add({ kind: "element", set: "s", key: ipv4("10.0.0.1") })
      .add({ kind: "element", set: "missing", key: ipv4("10.0.0.1") });
    let err: unknown;
    try {
      applyTransaction(conn, tx);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetlinkError);
    expect(isNotFound(err)).toBe(true);
    expect((err as NetlinkError).op).toContain("NFT_MSG_NEWSETELEM");
    expect((err as NetlinkError).op).toContain("missing");
    expect(conn.getTable("inet", `${prefix}a`)).toBeUndefined();
    expect(must(["nft", "list", "tables"])).not.toContain(`${prefix}a`);
  });

  test("delete and destroy the table", () => {
    applyTransaction(conn, new Transaction(T).delete({ kind: "table" }));
    expect(conn.getTable("inet", prefix)).toBeUndefined();
    applyTransaction(conn, new Transaction(T).destroy({ kind: "table" }));
    let err: unknown;
    try {
      applyTransaction(conn, new Transaction(T).delete({ kind: "table" }));
    } catch (e) {
      err = e;
    }
    expect(isNotFound(err)).toBe(true);
  });
});
