/**
 * firewall on hosts whose iptables FORWARD chain drops: how such a chain is recognised (policy,
 * a last unconditional DROP/REJECT, iptables-nft's and legacy's forms), how cnikit's rule is told
 * apart from others, and what ADD / DEL / CHECK do against FakeNft and a scripted iptables.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Attrs, nla } from "../../../src/netlink/attr.ts";
import { encodeOperation } from "../../../src/nft/encode.ts";
import type { Expr } from "../../../src/nft/expr.ts";
import { decodeRule, type RuleInfo } from "../../../src/nft/list.ts";
import { Transaction } from "../../../src/nft/transaction.ts";
import { verdict } from "../../../src/nft/verdict.ts";
import { encodeNftAttrs } from "../../../src/nft/wire.ts";
import {
  ACCEPT_RULE,
  checkForwardAccept,
  ensureForwardAccept,
  type ExecResult,
  isCnikitRule,
  isUnconditionalDrop,
  legacyChainDrops,
  MARK_CHAIN,
  markChainTransaction,
  releaseForwardAccept,
  RULE_COMMENT,
} from "../../../src/plugins/common/firewall-iptables.ts";
import { addPod, FIREWALL_TABLE, removePod } from "../../../src/plugins/meta/firewall.ts";
import { fakeNftPerTest, tableIn } from "./nft-fake.ts";

const tmp = mkdtempSync(join(tmpdir(), "cnikit-fwipt-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const expr = (name: string, attrs: Parameters<typeof encodeNftAttrs>[0]) => ({ name, data: Attrs.parse(encodeNftAttrs(attrs)) });
let handles = 0n;
const rule = (...exprs: RuleInfo["exprs"]): RuleInfo => ({ handle: ++handles, exprs });
const listed = (exprs: Parameters<typeof encodeOperation>[1]["obj"] & { kind: "rule" }) =>
  decodeRule(encodeOperation({ family: "ip", table: "filter", nextSetId: () => 1 }, { verb: "add", obj: exprs }).body);
const counter = expr("counter", []);
const target = (name: string) => expr("target", [nla.str(1, name), nla.bytes(2, Uint8Array.of(0, 0, 0, 0))]);
const comment = (text: string) => {
  const info = new Uint8Array(256);
  info.set(new TextEncoder().encode(text));
  return expr("match", [nla.str(1, "comment"), nla.bytes(3, info)]);
};

describe("recognising a FORWARD chain that drops", () => {
  test("iptables-nft: `-j DROP` and `-j REJECT` without a match drop; with one, or accepting, they do not", () => {
    expect(isUnconditionalDrop(listed({ kind: "rule", chain: "FORWARD", exprs: [{ kind: "counter" }, { kind: "immediate", verdict: verdict.drop }] }))).toBe(true);
    expect(isUnconditionalDrop(rule(counter, target("REJECT")))).toBe(true);
    expect(isUnconditionalDrop(listed({ kind: "rule", chain: "FORWARD", exprs: [{ kind: "counter" }, { kind: "immediate", verdict: verdict.accept }] }))).toBe(false);
    expect(isUnconditionalDrop(listed({ kind: "rule", chain: "FORWARD", exprs: [{ kind: "counter" }, { kind: "immediate", verdict: verdict.jump("DOCKER-USER") }] }))).toBe(false);
    expect(isUnconditionalDrop(rule(expr("meta", []), expr("cmp", []), counter, target("DROP")))).toBe(false);
    expect(isUnconditionalDrop(rule(counter))).toBe(false);
  });

  test("legacy `-S FORWARD`: the policy, or the last rule", () => {
    expect(legacyChainDrops("-P FORWARD DROP\n-A FORWARD -j DOCKER-USER\n")).toBe(true);
    expect(legacyChainDrops("-P FORWARD ACCEPT\n-A FORWARD -j DOCKER-USER\n-A FORWARD -j DROP\n")).toBe(true);
    expect(legacyChainDrops("-P FORWARD ACCEPT\n-A FORWARD -j REJECT --reject-with icmp-host-prohibited\n")).toBe(true);
    expect(legacyChainDrops("-P FORWARD ACCEPT\n-A FORWARD -j DROP\n-A FORWARD -j ACCEPT\n")).toBe(false);
    expect(legacyChainDrops("-P FORWARD ACCEPT\n-A FORWARD -i eth0 -j DROP\n")).toBe(false);
    expect(legacyChainDrops("")).toBe(false);
  });

  test("cnikit's rule is the one with its comment, as a compat match or in the userdata", () => {
    expect(isCnikitRule(rule(expr("meta", []), comment("cnikit firewall"), counter))).toBe(true);
    expect(isCnikitRule(rule(comment("cnikit firewall plus")))).toBe(false);
    expect(isCnikitRule(rule(comment("CNI firewall plugin rules")))).toBe(false);
    expect(isCnikitRule({ handle: 1n, exprs: [counter], userdata: new TextEncoder().encode("\0\x10cnikit firewall\0") })).toBe(true);
    expect(ACCEPT_RULE.join(" ")).toBe('-m mark --mark 0x1000/0x1000 -m comment --comment cnikit firewall -j ACCEPT');
  });

  test("the mark chain runs before iptables' filter (priority 0): clear the bit, then set it on pod traffic", () => {
    const ops = markChainTransaction("t").operations;
    expect(ops[0]).toEqual({ verb: "create", obj: { kind: "chain", name: MARK_CHAIN, type: "filter", hook: "forward", priority: -10 } });
    const rules = ops.slice(1).map((o) => o.obj as { kind: "rule"; exprs: ReadonlyArray<{ kind: string; set?: string }> });
    expect(rules.length).toBe(7); // clear + (from pod, to pod established/related, to pod DNATed) x 2 families
    expect(rules[0]!.exprs.map((e) => e.kind)).toEqual(["meta", "bitwise", "metaSet"]);
    for (const r of rules.slice(1)) {
      expect(r.exprs.some((e) => e.kind === "lookup" && /^pods[46]$/.test(e.set!))).toBe(true);
      expect(r.exprs.some((e) => e.kind === "metaSet")).toBe(true);
    }
  });
});

const fake = fakeNftPerTest();

/** iptables-nft's FORWARD chain of a family, with its policy and rules. */
function forward(family: "ip" | "ip6", policy: "accept" | "drop", ...rules: Expr[][]) {
  const tx = new Transaction({ family, table: "filter" }).add({ kind: "table" });
  tx.add({ kind: "chain", name: "FORWARD", type: "filter", hook: "forward", priority: 0, policy });
  for (const exprs of rules) tx.add({ kind: "rule", chain: "FORWARD", exprs });
  fake.nft.apply(tx);
}

const podSets = () => addPod(fake.nft, { ips: ["10.1.2.3"], isolated: false }, { sameBridge: false });

/** iptables run against the fake: `-I` inserts cnikit's rule (its comment in the rule's user data). */
function scriptedExec() {
  const calls: string[][] = [];
  const exec = (argv: string[]): ExecResult => {
    calls.push(argv);
    if (argv.includes("-I")) {
      const family = argv[0]!.includes("ip6") ? "ip6" : "ip";
      const userdata = new TextEncoder().encode(`\0\x10${RULE_COMMENT}\0`);
      fake.nft.apply(new Transaction({ family, table: "filter" }).insert({ kind: "rule", chain: "FORWARD", exprs: [{ kind: "counter" }], userdata }));
    }
    if (argv.includes("-V")) return { code: 0, stdout: "iptables v1.8.9 (nf_tables)\n", stderr: "" };
    if (argv.includes("-S")) return { code: 0, stdout: "-P FORWARD ACCEPT\n", stderr: "" }; // legacy tables, if the test machine has any
    if (argv.includes("-D") || argv.includes("-C")) return { code: 1, stdout: "", stderr: "" };
    return { code: 0, stdout: "", stderr: "" };
  };
  return { calls, exec };
}

const drop: Expr[] = [{ kind: "counter" }, { kind: "immediate", verdict: verdict.drop }];

describe("ADD and DEL against FakeNft and a scripted iptables", () => {
  test("policy ACCEPT: no lock, no mark chain, no iptables command", () => {
    forward("ip", "accept");
    podSets();
    const before = fake.nft.dump();
    const { calls, exec } = scriptedExec();
    ensureForwardAccept(fake.nft, { table: FIREWALL_TABLE, dataDir: join(tmp, "a"), exec });
    expect(calls.filter((c) => c.includes("-I"))).toEqual([]);
    expect(fake.nft.dump()).toBe(before);
  });

  test("only the pod's families are looked at: an IPv4-only pod adds no IPv6 rule", () => {
    forward("ip", "drop");
    forward("ip6", "drop");
    podSets();
    const { calls, exec } = scriptedExec();
    ensureForwardAccept(fake.nft, { table: FIREWALL_TABLE, dataDir: join(tmp, "c"), families: [4], exec });
    expect(calls.filter((c) => c.includes("-I")).map((c) => c[0]!.split("/").pop()!.replace(/-nft$/, ""))).toEqual(["iptables"]);
  });

  test("policy DROP: the mark chain and one insert per dropping family, once; DEL of the last pod removes both", () => {
    forward("ip", "drop");
    forward("ip6", "accept", drop); // ends in an unconditional drop
    podSets();
    const { calls, exec } = scriptedExec();
    const opts = { table: FIREWALL_TABLE, dataDir: join(tmp, "b"), exec };
    ensureForwardAccept(fake.nft, opts);
    ensureForwardAccept(fake.nft, opts); // the second pod
    const inserts = calls.filter((c) => c.includes("-I"));
    expect(inserts.map((c) => c.slice(1))).toEqual([["-w", "-I", "FORWARD", "1", ...ACCEPT_RULE], ["-w", "-I", "FORWARD", "1", ...ACCEPT_RULE]]);
    const dump = fake.nft.dump();
    expect(tableIn(dump, "ip filter")).toBe(`table ip filter
  chain FORWARD { filter hook forward priority 0 policy drop }
    counter # "cnikit firewall"
`);
    expect(dump).toContain(`  chain podmark { filter hook forward priority -10 policy accept }
    meta mark > r1; r1 & 0xffefffff > r1; meta mark set r1
    meta nfproto > r1; r1 == 0x02; network[12:4] > r1; r1 in @pods4; meta mark > r1; r1 & 0xffefffff ^ 0x00100000 > r1; meta mark set r1; accept
    meta nfproto > r1; r1 == 0x02; ct state > r1; r1 & 0x06000000 > r1; r1 != 0x00000000; network[16:4] > r1; r1 in @pods4; meta mark > r1; r1 & 0xffefffff ^ 0x00100000 > r1; meta mark set r1; accept
    meta nfproto > r1; r1 == 0x02; ct status > r1; r1 & 0x20000000 > r1; r1 != 0x00000000; network[16:4] > r1; r1 in @pods4; meta mark > r1; r1 & 0xffefffff ^ 0x00100000 > r1; meta mark set r1; accept
    meta nfproto > r1; r1 == 0x0a; network[8:16] > r1; r1 in @pods6; meta mark > r1; r1 & 0xffefffff ^ 0x00100000 > r1; meta mark set r1; accept
    meta nfproto > r1; r1 == 0x0a; ct state > r1; r1 & 0x06000000 > r1; r1 != 0x00000000; network[24:16] > r1; r1 in @pods6; meta mark > r1; r1 & 0xffefffff ^ 0x00100000 > r1; meta mark set r1; accept
    meta nfproto > r1; r1 == 0x0a; ct status > r1; r1 & 0x20000000 > r1; r1 != 0x00000000; network[24:16] > r1; r1 in @pods6; meta mark > r1; r1 & 0xffefffff ^ 0x00100000 > r1; meta mark set r1; accept
`);
    checkForwardAccept(fake.nft, opts);
    // a DEL that leaves a pod keeps everything
    releaseForwardAccept(fake.nft, opts);
    expect(fake.nft.dump()).toBe(dump);
    removePod(fake.nft, { ips: ["10.1.2.3"], isolated: false });
    releaseForwardAccept(fake.nft, opts);
    const after = fake.nft.dump();
    expect(tableIn(after, "ip filter")).toBe("table ip filter\n  chain FORWARD { filter hook forward priority 0 policy drop }\n");
    expect(tableIn(after, "ip6 filter")).toBe("table ip6 filter\n  chain FORWARD { filter hook forward priority 0 policy accept }\n    counter; drop\n"); // the drop stays
    expect(after).not.toContain("chain podmark");
    expect(() => checkForwardAccept(fake.nft, opts)).toThrow(`firewall: iptables' FORWARD chain drops and chain inet ${FIREWALL_TABLE} ${MARK_CHAIN} is missing`);
  });
});
