// The other expressions plugins use (fib, nat to a map, masquerade, ct state through bitwise,
// meta names and marks, sets of interface names and marks, timeouts, interval concatenations),
// applied to the real kernel and read back with `nft -j`.
import { assertPrivateNetns, must, run, runPrefix } from "../../support/netns.ts";
assertPrivateNetns();

import { afterAll, describe, expect, test } from "bun:test";
import { applyTransaction, NftConn } from "../../../src/nft/conn.ts";
import { CT_STATE, RTN } from "../../../src/nft/expr.ts";
import { concatRegs, reg32 } from "../../../src/nft/registers.ts";
import { Transaction } from "../../../src/nft/transaction.ts";
import { ifname, inetProto, inetService, ipv4, mark } from "../../../src/nft/value.ts";
import { verdict } from "../../../src/nft/verdict.ts";

const prefix = runPrefix("nx");
const T = { family: "ip", table: prefix } as const;
const conn = NftConn.open();

afterAll(() => {
  run(["nft", "delete", "table", "ip", prefix]);
  conn.close();
});

type Json = Record<string, any>;
function table(): Json[] {
  return JSON.parse(must(["nft", "-j", "list", "table", "ip", prefix])).nftables as Json[];
}
function rulesOf(chain: string): Json[][] {
  return table().filter((o) => o.rule?.chain === chain).map((o) => o.rule.expr);
}
function setOf(name: string): Json {
  return table().find((o) => (o.set ?? o.map)?.name === name)!.set;
}

describe("nft expressions", () => {
  test("fib, dnat through a map, masquerade, ct state, iifname and mark lookups", () => {
    const [a, p, s] = concatRegs(reg32(0), [4, 1, 2]);
    applyTransaction(
      conn,
      new Transaction(T)
        .add({ kind: "table" })
        .add({ kind: "chain", name: "pre", type: "nat", hook: "prerouting", priority: -100 })
        .add({ kind: "chain", name: "post", type: "nat", hook: "postrouting", priority: 100 })
        .add({ kind: "chain", name: "fw", type: "filter", hook: "forward", priority: 0, policy: "drop" })
        .add({ kind: "map", name: "dnat", key: ["ipv4_addr", "inet_proto", "inet_service"], data: ["ipv4_addr", "inet_service"] })
        .add({ kind: "set", name: "ifs", key: "ifname" })
        .add({ kind: "set", name: "marks", key: "mark" })
        .add({ kind: "set", name: "to", key: "ipv4_addr", flags: ["timeout"], timeoutMs: 60000 })
        .add({ kind: "set", name: "iv", key: ["ipv4_addr", "inet_service"], flags: ["interval"] })
        .add({ kind: "element", set: "ifs", key: ifname("cni0") })
        .add({ kind: "element", set: "marks", key: mark(0x2000) })
        .add({ kind: "element", set: "to", key: ipv4("10.0.0.9"), timeoutMs: 30000 })
        .add({ kind: "element", set: "iv", key: [ipv4("10.0.0.1"), inetService(80)], keyEnd: [ipv4("10.0.0.9"), inetService(90)] })
        .add({
          kind: "rule",
          chain: "pre",
          exprs: [
            { kind: "fib", result: "type", flags: ["daddr"], dreg: 1 },
            { kind: "cmp", op: "eq", sreg: 1, data: mark(RTN.local) },
            { kind: "payload", base: "network", offset: 16, len: 4, dreg: a! },
            { kind: "meta", key: "l4proto", dreg: p! },
            { kind: "payload", base: "transport", offset: 2, len: 2, dreg: s! },
            { kind: "lookup", set: "dnat", sreg: a!, dreg: reg32(0) },
            { kind: "nat", type: "dnat", family: "ip", addrMin: reg32(0), protoMin: reg32(1) },
          ],
        })
        .add({
          kind: "rule",
          chain: "post",
          exprs: [
            { kind: "meta", key: "oifname", dreg: 1 },
            { kind: "cmp", op: "neq", sreg: 1, data: ifname("cni0") },
            { kind: "masq" },
          ],
        })
        .add({
          kind: "rule",
          chain: "fw",
          exprs: [
            { kind: "ct", key: "state", dreg: 1 },
            { kind: "bitwise", sreg: 1, dreg: 1, len: 4, mask: mark(CT_STATE.established | CT_STATE.related), xor: mark(0) },
            { kind: "cmp", op: "neq", sreg: 1, data: mark(0) },
            { kind: "immediate", verdict: verdict.accept },
          ],
        })
        .add({
          kind: "rule",
          chain: "fw",
          exprs: [
            { kind: "meta", key: "iifname", dreg: 1 },
            { kind: "lookup", set: "ifs", sreg: 1 },
            { kind: "meta", key: "mark", dreg: 1 },
            { kind: "lookup", set: "marks", sreg: 1, invert: true },
            { kind: "immediate", verdict: verdict.accept },
          ],
        }),
    );
    expect(rulesOf("pre")).toEqual([[
      { match: { op: "==", left: { fib: { result: "type", flags: ["daddr"] } }, right: "local" } },
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
    ]]);
    expect(rulesOf("post")).toEqual([[
      { match: { op: "!=", left: { meta: { key: "oifname" } }, right: "cni0" } },
      { masquerade: null },
    ]]);
    expect(rulesOf("fw")).toEqual([
      [{ match: { op: "in", left: { ct: { key: "state" } }, right: ["established", "related"] } }, { accept: null }],
      [
        { match: { op: "==", left: { meta: { key: "iifname" } }, right: "@ifs" } },
        { match: { op: "!=", left: { meta: { key: "mark" } }, right: "@marks" } },
        { accept: null },
      ],
    ]);
    expect(setOf("ifs").elem).toEqual(["cni0"]);
    expect(setOf("marks").elem).toEqual([8192]);
    expect(setOf("to")).toMatchObject({ flags: ["timeout"], timeout: 60 });
    expect(setOf("to").elem[0].elem).toMatchObject({ val: "10.0.0.9", timeout: 30 });
    expect(setOf("iv").flags).toEqual(["interval"]);
    expect(setOf("iv").elem).toEqual([{ concat: [{ range: ["10.0.0.1", "10.0.0.9"] }, { range: [80, 90] }] }]);
    // the inet_proto helper and a second dnat element round-trip through the listing
    applyTransaction(conn, new Transaction(T).add({
      kind: "element",
      set: "dnat",
      key: [ipv4("192.0.2.7"), inetProto("udp"), inetService(53)],
      data: [ipv4("10.0.0.53"), inetService(5353)],
    }));
    expect(conn.listElements("ip", prefix, "dnat").length).toBe(1);
    // an interval element of a concatenation lists with its end (NFTA_SET_ELEM_KEY_END)
    const iv = conn.listElements("ip", prefix, "iv");
    expect(iv.length).toBe(1);
    const hex = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString("hex");
    expect(hex(iv[0]!.key)).toBe("0a000001" + "00500000");
    expect(hex(iv[0]!.keyEnd)).toBe("0a000009" + "005a0000");
  });
});
