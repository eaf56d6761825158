// A real packet effect: an output-chain rule drops traffic to addresses in a set. A pod namespace
// is reached over a veth; pings fail while its address is in the set and pass once it is removed.
import { assertPrivateNetns, must, run, runPrefix } from "../../support/netns.ts";
assertPrivateNetns();

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { applyTransaction, NftConn } from "../../../src/nft/conn.ts";
import { Transaction } from "../../../src/nft/transaction.ts";
import { ipv4 } from "../../../src/nft/value.ts";
import { verdict } from "../../../src/nft/verdict.ts";

const prefix = runPrefix("np");
const pod = `${prefix}p`;
const hostIf = `${prefix}h`;
const T = { family: "ip", table: prefix } as const;
const POD_IP = "10.213.0.2";
const OTHER_IP = "10.213.0.3";
let conn: NftConn;

function ping(ip: string): boolean {
  return run(["ping", "-c", "1", "-W", "1", ip]).code === 0;
}

beforeAll(() => {
  must(["ip", "link", "set", "lo", "up"]);
  must(["ip", "netns", "add", pod]);
  must(["ip", "link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", pod]);
  must(["ip", "addr", "add", "10.213.0.1/24", "dev", hostIf]);
  must(["ip", "link", "set", hostIf, "up"]);
  must(["ip", "-n", pod, "addr", "add", `${POD_IP}/24`, "dev", "eth0"]);
  must(["ip", "-n", pod, "addr", "add", `${OTHER_IP}/24`, "dev", "eth0"]);
  must(["ip", "-n", pod, "link", "set", "eth0", "up"]);
  must(["ip", "-n", pod, "link", "set", "lo", "up"]);
  conn = NftConn.open();
  applyTransaction(
    conn,
    new Transaction(T)
      .add({ kind: "table" })
      .add({ kind: "chain", name: "out", type: "filter", hook: "output", priority: 0, policy: "accept" })
      .add({ kind: "set", name: "blocked", key: "ipv4_addr" })
      .add({
        kind: "rule",
        chain: "out",
        exprs: [
          { kind: "payload", base: "network", offset: 16, len: 4, dreg: 1 },
          { kind: "lookup", set: "blocked", sreg: 1 },
          { kind: "counter" },
          { kind: "immediate", verdict: verdict.drop },
        ],
      }),
  );
});

afterAll(() => {
  conn?.close();
  run(["nft", "delete", "table", "ip", prefix]);
  run(["ip", "link", "del", hostIf]);
  run(["ip", "netns", "del", pod]);
});

describe("nft rule with a set, on real packets", () => {
  test("traffic to an address in the set is dropped until the element is removed", () => {
    expect(ping(POD_IP)).toBe(true);
    applyTransaction(conn, new Transaction(T).add({ kind: "element", set: "blocked", key: ipv4(POD_IP) }));
    expect(ping(POD_IP)).toBe(false);
    expect(ping(OTHER_IP)).toBe(true); // only the element's address is affected
    const listed = JSON.parse(must(["nft", "-j", "list", "set", "ip", prefix, "blocked"])).nftables[1].set;
    expect(listed.elem).toEqual([POD_IP]);
    applyTransaction(conn, new Transaction(T).delete({ kind: "element", set: "blocked", key: ipv4(POD_IP) }));
    expect(ping(POD_IP)).toBe(true);
  });

  test("the rule's counter saw the dropped packet", () => {
    const rules = (JSON.parse(must(["nft", "-j", "list", "chain", "ip", prefix, "out"])).nftables as Record<string, any>[])
      .filter((o) => o.rule);
    const counter = rules[0]!.rule.expr.find((e: Record<string, unknown>) => "counter" in e).counter;
    expect(counter.packets).toBeGreaterThanOrEqual(1);
  });
});
