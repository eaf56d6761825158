/** Listing chains and rules (decodeChain, decodeRule) and the `metaSet` expression. */

import { describe, expect, test } from "bun:test";
import { HOST_LE, toHex } from "../../../src/netlink/bytes.ts";
import { encodeOperation, type EncodeContext } from "../../../src/nft/encode.ts";
import { decodeChain, decodeRule, getChainBody, getRulesBody } from "../../../src/nft/list.ts";
import type { NftObject } from "../../../src/nft/objects.ts";
import { mark } from "../../../src/nft/value.ts";
import { decodeVerdict, verdict } from "../../../src/nft/verdict.ts";

const le = test.skipIf(!HOST_LE);
const ctx = (family: EncodeContext["family"] = "inet"): EncodeContext => ({ family, table: "filter", nextSetId: () => 1 });
/** What the kernel would send back for an object cnikit adds: the same attributes. */
const bodyOf = (obj: NftObject, family: EncodeContext["family"] = "inet") => encodeOperation(ctx(family), { verb: "add", obj }).body;

describe("nft listing", () => {
  test("decodeChain: a base chain's hook, priority (negative too), policy and type", () => {
    const c = decodeChain(bodyOf({ kind: "chain", name: "FORWARD", type: "filter", hook: "forward", priority: -10, policy: "drop" }, "ip"));
    expect(c).toEqual({ family: "ip", table: "filter", name: "FORWARD", hook: 2, priority: -10, policy: "drop", type: "filter" });
    expect(decodeChain(bodyOf({ kind: "chain", name: "user" }))).toEqual({ family: "inet", table: "filter", name: "user" });
  });

  test("decodeRule: the expressions by name with their attributes, and the userdata", () => {
    const r = decodeRule(bodyOf({
      kind: "rule", chain: "FORWARD", userdata: Uint8Array.of(0, 3, 0x61, 0x62, 0),
      exprs: [{ kind: "counter" }, { kind: "immediate", verdict: verdict.drop }],
    }));
    expect(r.handle).toBe(0n);
    expect(r.exprs.map((e) => e.name)).toEqual(["counter", "immediate"]);
    expect(decodeVerdict(r.exprs[1]!.data.nested(2)!.nested(2)!)).toEqual(verdict.drop);
    expect([...r.userdata!]).toEqual([0, 3, 0x61, 0x62, 0]);
  });

  le("request bodies name the table and the chain", () => {
    expect(toHex(getChainBody("ip", "filter", "FORWARD"))).toBe("02000000" + "0b000100" + "66696c7465720000" + "0c000300" + "464f525741524400");
    expect(toHex(getRulesBody("ip6", "filter", "FORWARD"))).toBe("0a000000" + "0b000100" + "66696c7465720000" + "0c000200" + "464f525741524400");
  });

  le("metaSet: `meta mark set reg 1` is NFTA_META_KEY then NFTA_META_SREG", () => {
    const r = decodeRule(bodyOf({ kind: "rule", chain: "c", exprs: [{ kind: "metaSet", key: "mark", sreg: 1 }] }));
    expect(r.exprs[0]!.name).toBe("meta");
    expect(toHex(r.exprs[0]!.data.get(2)!)).toBe("00000003"); // NFT_META_MARK
    expect(toHex(r.exprs[0]!.data.get(3)!)).toBe("00000001");
    expect(r.exprs[0]!.data.has(1)).toBe(false); // no DREG: a set, not a load
    expect(toHex(mark(0x1000))).toBe("00100000");
  });
});
