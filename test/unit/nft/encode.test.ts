import { describe, expect, test } from "bun:test";
import { fromHex, HOST_LE, toHex } from "../../../src/netlink/bytes.ts";
import { encodeBatch } from "../../../src/nft/batch.ts";
import { encodeOperation, type EncodeContext } from "../../../src/nft/encode.ts";
import type { NftObject } from "../../../src/nft/objects.ts";
import { reg32 } from "../../../src/nft/registers.ts";
import { Transaction, type Verb } from "../../../src/nft/transaction.ts";
import { inetService, ipv4 } from "../../../src/nft/value.ts";
import { verdict } from "../../../src/nft/verdict.ts";

// Layouts below are derived by hand from linux/netfilter/nf_tables.h: nlattr headers are host
// order (these fixtures are little-endian), nftables numbers are big-endian, nests carry 0x8000.
const le = test.skipIf(!HOST_LE);

function ctx(): EncodeContext {
  let id = 0;
  return { family: "inet", table: "t", nextSetId: () => ++id };
}

function enc(verb: Verb, obj: NftObject): { msg: number; flags: number; hex: string } {
  const r = encodeOperation(ctx(), { verb, obj });
  return { msg: r.msg, flags: r.flags, hex: toHex(r.body) };
}

const hex = (s: string): string => s.replace(/\s+/g, "");

describe("nft encoder", () => {
  le("table", () => {
    const r = enc("add", { kind: "table" });
    expect(r.msg).toBe(0); // NFT_MSG_NEWTABLE
    expect(r.flags).toBe(0x400); // NLM_F_CREATE
    expect(r.hex).toBe(hex("01000000 06000100 74000000"));
    const c = enc("create", { kind: "table", flags: 1 });
    expect(c.flags).toBe(0x600); // CREATE | EXCL
    expect(c.hex).toBe(hex("01000000 06000100 74000000 08000200 00000001"));
    expect(enc("delete", { kind: "table" })).toEqual({ msg: 2, flags: 0, hex: hex("01000000 06000100 74000000") });
  });

  le("base chain", () => {
    const r = enc("add", { kind: "chain", name: "out", type: "filter", hook: "output", priority: -100, policy: "drop" });
    expect(r.msg).toBe(3); // NFT_MSG_NEWCHAIN
    expect(r.hex).toBe(hex(`
      01000000
      06000100 74000000
      08000300 6f757400
      14000480 08000100 00000003 08000200 ffffff9c
      08000500 00000000
      0b000700 66696c74 65720000`));
  });

  le("regular chain has no hook, policy or type", () => {
    expect(enc("add", { kind: "chain", name: "out" }).hex).toBe(hex("01000000 06000100 74000000 08000300 6f757400"));
  });

  le("set with a concatenated key", () => {
    const r = enc("add", { kind: "set", name: "s", key: ["ipv4_addr", "inet_service"] });
    expect(r.msg).toBe(9); // NFT_MSG_NEWSET
    expect(r.hex).toBe(hex(`
      01000000
      06000100 74000000
      06000200 73000000
      08000300 00000000
      08000400 000001cd
      08000500 00000008
      08000a00 00000001
      0a000d00 00040000 00000000`));
  });

  le("interval set of a concatenation: CONCAT flag and field description", () => {
    const r = enc("add", { kind: "set", name: "s", key: ["ipv4_addr", "inet_service"], flags: ["interval"] });
    expect(r.hex).toBe(hex(`
      01000000
      06000100 74000000
      06000200 73000000
      08000300 00000084
      08000400 000001cd
      08000500 00000008
      20000980 1c000280 0c000180 08000100 00000004 0c000180 08000100 00000002
      08000a00 00000001
      0a000d00 00040000 00000000`));
  });

  le("data map: MAP flag, data type and length, byte orders in user data", () => {
    const r = enc("add", { kind: "map", name: "m", key: "mark", data: ["ipv4_addr", "inet_service"] });
    expect(r.hex).toBe(hex(`
      01000000
      06000100 74000000
      06000200 6d000000
      08000300 00000008
      08000400 00000013
      08000500 00000004
      08000600 000001cd
      08000700 00000008
      08000a00 00000001
      10000d00 00040100 00000104 00000000`));
  });

  le("verdict map element", () => {
    const r = enc("add", { kind: "element", set: "vm", key: ipv4("10.0.0.1"), verdict: verdict.jump("c") });
    expect(r.msg).toBe(12); // NFT_MSG_NEWSETELEM
    expect(r.hex).toBe(hex(`
      01000000
      06000100 74000000
      07000200 766d0000
      2c000380 28000180
        0c000180 08000100 0a000001
        18000280 14000280 08000100 fffffffd 06000200 63000000`));
  });

  le("data map element with concatenated key and value", () => {
    const r = enc("add", {
      kind: "element",
      set: "m",
      key: [ipv4("1.2.3.4"), inetService(80)],
      data: [ipv4("10.0.0.2"), inetService(8080)],
    });
    expect(r.hex).toBe(hex(`
      01000000
      06000100 74000000
      06000200 6d000000
      28000380 24000180
        10000180 0c000100 01020304 00500000
        10000280 0c000100 0a000002 1f900000`));
    // delete carries the key only
    const d = enc("delete", { kind: "element", set: "m", key: [ipv4("1.2.3.4"), inetService(80)], data: ipv4("1.1.1.1") });
    expect(d.msg).toBe(14);
    expect(d.hex).toBe(hex("01000000 06000100 74000000 06000200 6d000000 18000380 14000180 10000180 0c000100 01020304 00500000"));
  });

  le("rule with payload, cmp, lookup and immediate", () => {
    const r = enc("add", {
      kind: "rule",
      chain: "c",
      exprs: [
        { kind: "payload", base: "network", offset: 9, len: 1, dreg: 1 },
        { kind: "cmp", op: "eq", sreg: 1, data: Uint8Array.of(6) },
        { kind: "payload", base: "network", offset: 16, len: 4, dreg: reg32(0) },
        { kind: "payload", base: "transport", offset: 2, len: 2, dreg: reg32(1) },
        { kind: "lookup", set: "s", sreg: reg32(0) },
        { kind: "immediate", verdict: verdict.drop },
      ],
    });
    expect(r.msg).toBe(6); // NFT_MSG_NEWRULE
    expect(r.flags).toBe(0xc00); // CREATE | APPEND
    expect(r.hex).toBe(hex(`
      01000000
      06000100 74000000
      06000200 63000000
      20010480
        34000180 0c000100 7061796c 6f616400
          24000280 08000100 00000001 08000200 00000001 08000300 00000009 08000400 00000001
        2c000180 08000100 636d7000
          20000280 08000100 00000001 08000200 00000000 0c000380 05000100 06000000
        34000180 0c000100 7061796c 6f616400
          24000280 08000100 00000008 08000200 00000001 08000300 00000010 08000400 00000004
        34000180 0c000100 7061796c 6f616400
          24000280 08000100 00000009 08000200 00000002 08000300 00000002 08000400 00000002
        24000180 0b000100 6c6f6f6b 75700000
          14000280 06000100 73000000 08000200 00000008
        30000180 0e000100 696d6d65 64696174 65000000
          1c000280 08000100 00000000 10000280 0c000280 08000100 00000000`));
  });

  le("flush chain and set", () => {
    expect(enc("flush", { kind: "chain", name: "c" })).toEqual({
      msg: 8,
      flags: 0,
      hex: hex("01000000 06000100 74000000 06000200 63000000"),
    });
    expect(enc("flush", { kind: "set", name: "s", key: "ipv4_addr" })).toEqual({
      msg: 14,
      flags: 0,
      hex: hex("01000000 06000100 74000000 06000200 73000000"),
    });
  });
});

describe("nft batch", () => {
  le("frames begin, each operation with ACK, end", () => {
    const tx = new Transaction({ family: "inet", table: "t" }).add({ kind: "table" });
    const b = encodeBatch(tx, 100);
    expect(b.beginSeq).toBe(100);
    expect(b.requests.map((r) => r.seq)).toEqual([101]);
    expect(toHex(b.data)).toBe(hex(`
      14000000 1000 0100 64000000 00000000 0000000a
      1c000000 000a 0504 65000000 00000000 01000000 06000100 74000000
      14000000 1100 0100 66000000 00000000 0000000a`));
  });

  test("set ids are unique within a batch", () => {
    const tx = new Transaction({ family: "ip", table: "t" })
      .add({ kind: "set", name: "a", key: "ipv4_addr" })
      .add({ kind: "set", name: "b", key: "ipv4_addr" });
    const b = encodeBatch(tx, 1);
    const ids = b.requests.map((r) => toHex(r.req.body).match(/08000a00(........)/)?.[1]);
    expect(ids).toEqual(["00000001", "00000002"]);
  });

  test("fromHex round trip of fixtures", () => {
    expect(toHex(fromHex("0a 0b"))).toBe("0a0b");
  });
});
