/**
 * firewall on hosts whose iptables FORWARD chain drops: how such a chain is recognised (policy,
 * a last unconditional DROP/REJECT, iptables-nft's and legacy's forms), how cnikit's rule is told
 * apart from others, and what ADD / DEL do against a scripted nftables connection and iptables.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Attrs, nla } from "../../../src/netlink/attr.ts";
import type { NftConn } from "../../../src/nft/conn.ts";
import { encodeOperation } from "../../../src/nft/encode.ts";
import { decodeRule, type ChainInfo, type RuleInfo } from "../../../src/nft/list.ts";
import type { Transaction } from "../../../src/nft/transaction.ts";
import { verdict } from "../../../src/nft/verdict.ts";
import { encodeNftAttrs } from "../../../src/nft/wire.ts";
import {
  ACCEPT_RULE,
  ensureForwardAccept,
  type ExecResult,
  isCnikitRule,
  isUnconditionalDrop,
  legacyChainDrops,
  MARK_CHAIN,
  markChainTransaction,
  releaseForwardAccept,
} from "../../../src/plugins/common/firewall-iptables.ts";

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

/** A scripted nftables connection: iptables-nft's FORWARD chains and cnikit's table. */
class FakeConn {
  chains = new Map<string, ChainInfo>();
  rules = new Map<string, RuleInfo[]>();
  pods = 0;
  applied: Transaction[] = [];
  getChain(family: string, table: string, name: string) {
    return this.chains.get(`${family} ${table} ${name}`);
  }
  listRules(family: string, table: string, chain: string) {
    return this.rules.get(`${family} ${table} ${chain}`) ?? [];
  }
  listElements(_f: string, _t: string, set: string) {
    return set === "pods4" ? Array.from({ length: this.pods }, () => ({ key: new Uint8Array(4), flags: 0 })) : [];
  }
  apply(tx: Transaction) {
    this.applied.push(tx);
    for (const op of tx.operations) {
      if (op.obj.kind === "chain" && op.verb === "create") this.chains.set(`${tx.family} ${tx.table} ${op.obj.name}`, { family: tx.family, table: tx.table, name: op.obj.name });
      if (op.obj.kind === "chain" && op.verb === "delete") this.chains.delete(`${tx.family} ${tx.table} ${op.obj.name}`);
      if (op.obj.kind === "rule" && op.verb === "delete") {
        const key = `${tx.family} ${tx.table} ${op.obj.chain}`;
        const handle = op.obj.handle;
        this.rules.set(key, (this.rules.get(key) ?? []).filter((r) => r.handle !== handle));
      }
    }
  }
  forward(family: "ip" | "ip6", policy: "accept" | "drop") {
    this.chains.set(`${family} filter FORWARD`, { family, table: "filter", name: "FORWARD", hook: 2, priority: 0, policy, type: "filter" });
  }
}

function scriptedExec(conn: FakeConn) {
  const calls: string[][] = [];
  const exec = (argv: string[]): ExecResult => {
    calls.push(argv);
    if (argv.includes("-I")) {
      const family = argv[0]!.includes("ip6") ? "ip6" : "ip";
      const key = `${family} filter FORWARD`;
      conn.rules.set(key, [rule(comment("cnikit firewall"), counter), ...(conn.rules.get(key) ?? [])]);
    }
    if (argv.includes("-V")) return { code: 0, stdout: "iptables v1.8.9 (nf_tables)\n", stderr: "" };
    if (argv.includes("-S")) return { code: 0, stdout: "-P FORWARD ACCEPT\n", stderr: "" }; // legacy tables, if the test machine has any
    if (argv.includes("-D") || argv.includes("-C")) return { code: 1, stdout: "", stderr: "" };
    return { code: 0, stdout: "", stderr: "" };
  };
  return { calls, exec };
}

describe("ADD and DEL against a scripted host", () => {
  test("policy ACCEPT: no lock, no mark chain, no iptables command", () => {
    const conn = new FakeConn();
    conn.forward("ip", "accept");
    const { calls, exec } = scriptedExec(conn);
    ensureForwardAccept(conn as unknown as NftConn, { table: "t", dataDir: join(tmp, "a"), exec });
    expect(calls.filter((c) => c.includes("-I"))).toEqual([]);
    expect(conn.applied).toEqual([]);
  });

  test("only the pod's families are looked at: an IPv4-only pod adds no IPv6 rule", () => {
    const conn = new FakeConn();
    conn.forward("ip", "drop");
    conn.forward("ip6", "drop");
    const { calls, exec } = scriptedExec(conn);
    ensureForwardAccept(conn as unknown as NftConn, { table: "t", dataDir: join(tmp, "c"), families: [4], exec });
    expect(calls.filter((c) => c.includes("-I")).map((c) => c[0]!.split("/").pop()!.replace(/-nft$/, ""))).toEqual(["iptables"]);
  });

  test("policy DROP: the mark chain and one insert per dropping family, once; DEL of the last pod removes both", () => {
    const conn = new FakeConn();
    conn.forward("ip", "drop");
    conn.forward("ip6", "accept");
    conn.rules.set("ip6 filter FORWARD", [rule(counter, target("REJECT"))]); // ends in REJECT
    const { calls, exec } = scriptedExec(conn);
    const opts = { table: "t", dataDir: join(tmp, "b"), exec };
    conn.pods = 1;
    ensureForwardAccept(conn as unknown as NftConn, opts);
    ensureForwardAccept(conn as unknown as NftConn, opts); // the second pod
    const inserts = calls.filter((c) => c.includes("-I"));
    expect(inserts.length).toBe(2);
    expect(inserts.map((c) => c.slice(1))).toEqual([["-w", "-I", "FORWARD", "1", ...ACCEPT_RULE], ["-w", "-I", "FORWARD", "1", ...ACCEPT_RULE]]);
    expect(conn.getChain("inet", "t", MARK_CHAIN)).toBeDefined();
    // a DEL that leaves a pod keeps everything
    releaseForwardAccept(conn as unknown as NftConn, opts);
    expect(conn.listRules("ip", "filter", "FORWARD").filter(isCnikitRule).length).toBe(1);
    conn.pods = 0;
    releaseForwardAccept(conn as unknown as NftConn, opts);
    expect(conn.listRules("ip", "filter", "FORWARD").filter(isCnikitRule)).toEqual([]);
    expect(conn.listRules("ip6", "filter", "FORWARD").map((r) => r.exprs.map((e) => e.name))).toEqual([["counter", "target"]]); // the REJECT stays
    expect(conn.getChain("inet", "t", MARK_CHAIN)).toBeUndefined();
  });
});
