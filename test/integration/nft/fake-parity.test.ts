// FakeNft answers as the kernel does: the same transactions applied to the kernel (NftConn) and to
// FakeNft give the same chains (hook, priority, policy, type), the same listed rules (expressions
// by name, verdicts, user data) and the same set and map elements (keys, interval ends, values),
// so unit tests against the fake see what plugins see against the kernel.
import { assertPrivateNetns, run, runPrefix } from "../../support/netns.ts";
assertPrivateNetns();

import { afterAll, expect, test } from "bun:test";
import type { NftClient } from "../../../src/nft/client.ts";
import { NftConn } from "../../../src/nft/conn.ts";
import { FakeNft } from "../../../src/nft/fake.ts";
import type { ElementInfo, RuleInfo } from "../../../src/nft/list.ts";
import { Transaction } from "../../../src/nft/transaction.ts";
import { mappingElements, parsePortmapConf, podIPsOf, setupTransaction } from "../../../src/plugins/meta/portmap.ts";
import { markChainTransaction } from "../../../src/plugins/common/firewall-iptables.ts";
import { decodeVerdict, verdict } from "../../../src/nft/verdict.ts";

const prefix = runPrefix("nfp");
const conn = NftConn.open();
const fake = new FakeNft();

afterAll(() => {
  run(["nft", "delete", "table", "inet", prefix]);
  run(["nft", "delete", "table", "ip", prefix]);
  conn.close();
});

/** `tx`'s operations in table `prefix` of `family`. */
function retarget(tx: Transaction, family: "inet" | "ip" = "inet"): Transaction {
  const out = new Transaction({ family, table: prefix });
  for (const op of tx.operations) {
    if (op.verb === "insert") out.insert(op.obj as Parameters<Transaction["insert"]>[0]);
    else if (op.verb === "create") out.create(op.obj as Parameters<Transaction["create"]>[0]);
    else out.add(op.obj);
  }
  return out;
}

function both(tx: Transaction): void {
  conn.apply(tx);
  fake.apply(tx);
}

const rulesOf = (c: NftClient, family: "inet" | "ip", chain: string) =>
  c.listRules(family, prefix, chain).map((r: RuleInfo) => ({
    exprs: r.exprs.map((e) => (e.name === "immediate" && e.data.nested(2)?.nested(2) ? `${e.name} ${JSON.stringify(decodeVerdict(e.data.nested(2)!.nested(2)!))}` : e.name)),
    userdata: r.userdata ? Buffer.from(r.userdata).toString("hex") : undefined,
    handle: typeof r.handle,
  }));
const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString("hex") : undefined);
const elementsOf = (c: NftClient, set: string) =>
  c.listElements("inet", prefix, set).map((e: ElementInfo) => ({ key: hex(e.key), keyEnd: hex(e.keyEnd), data: hex(e.data), verdict: e.verdict, flags: e.flags }))
    .sort((a, b) => `${a.key}${a.keyEnd}`.localeCompare(`${b.key}${b.keyEnd}`));

test("portmap's table, firewall's mark chain, elements with interval ends and values: the fake lists what the kernel lists", () => {
  both(retarget(setupTransaction()));
  const sets = new Transaction({ family: "inet", table: prefix })
    .add({ kind: "set", name: "pods4", key: "ipv4_addr" })
    .add({ kind: "set", name: "pods6", key: "ipv6_addr" });
  both(sets);
  both(retarget(markChainTransaction(prefix)));
  const conf = parsePortmapConf({
    cniVersion: "1.0.0", name: "n", type: "portmap",
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }, { hostPort: 5353, containerPort: 53, protocol: "udp", hostIP: "192.168.1.1" }] },
  });
  const prev = { cniVersion: "1.1.0", interfaces: [{ name: "eth0", sandbox: "/x" }], ips: [{ address: "10.1.2.3/24", interface: 0 }, { address: "fd00::3/64", interface: 0 }] };
  const els = new Transaction({ family: "inet", table: prefix });
  for (const e of mappingElements(conf, podIPsOf(prev))) els.add(e);
  both(els);

  for (const chain of ["dnat", "prerouting", "output", "postrouting", "podmark"]) {
    expect(fake.getChain("inet", prefix, chain)).toEqual(conn.getChain("inet", prefix, chain)!);
    expect(rulesOf(fake, "inet", chain)).toEqual(rulesOf(conn, "inet", chain));
  }
  expect(fake.getChain("inet", prefix, "nope")).toBeUndefined();
  expect(conn.getChain("inet", prefix, "nope")).toBeUndefined();
  expect(fake.listRules("inet", prefix, "nope")).toEqual(conn.listRules("inet", prefix, "nope"));
  for (const set of ["dnat4", "dnat4ip", "masq4", "dnat6", "dnat6ip", "masq6"]) {
    expect(elementsOf(fake, set)).toEqual(elementsOf(conn, set));
  }
  expect(elementsOf(conn, "masq4").length).toBe(4);
});

test("an iptables-style FORWARD chain with policy drop and a rule with user data", () => {
  const tx = new Transaction({ family: "ip", table: prefix }).add({ kind: "table" })
    .add({ kind: "chain", name: "FORWARD", type: "filter", hook: "forward", priority: 0, policy: "drop" })
    .add({ kind: "rule", chain: "FORWARD", exprs: [{ kind: "counter" }, { kind: "immediate", verdict: verdict.drop }] })
    .insert({ kind: "rule", chain: "FORWARD", exprs: [{ kind: "counter" }], userdata: new TextEncoder().encode("\0\x10cnikit firewall\0") });
  both(tx);
  expect(fake.getChain("ip", prefix, "FORWARD")).toEqual(conn.getChain("ip", prefix, "FORWARD")!);
  expect(rulesOf(fake, "ip", "FORWARD")).toEqual(rulesOf(conn, "ip", "FORWARD"));
});
