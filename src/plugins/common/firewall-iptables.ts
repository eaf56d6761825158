/**
 * firewall on hosts whose iptables FORWARD chain drops what it does not accept: Docker sets the
 * policy to DROP, so do many kube-proxy hosts, and firewalld's iptables backend ends the chain in a
 * REJECT. An accept in cnikit's own nftables table ends only that table's verdict: the packet still
 * meets iptables' FORWARD chain (iptables-nft's `ip filter FORWARD` / `ip6 filter FORWARD` base
 * chains, or legacy x_tables at the same hook and priority) and is dropped there. The reference
 * plugin inserts `-j CNI-FORWARD` with two accepts per pod; cnikit adds ONE rule per family and
 * backend, and only where that family's chain drops:
 *
 *     iptables -I FORWARD 1 -m mark --mark 0x1000/0x1000 -m comment --comment "cnikit firewall" -j ACCEPT
 *
 * with a base chain `podmark` in `inet cnikit_firewall` (hook forward, priority -10: before iptables'
 * filter at 0) that owns mark bit 0x1000. It clears the bit on every forwarded packet, then sets it
 * on pod traffic, which is what the reference accepts plus hostPorts:
 *   - packets from a pod address (sets `pods4` / `pods6`);
 *   - packets to a pod address on a connection that is established or related, or that was DNATed
 *     on this host (hostPorts, which cnikit's `forward` chain accepts too).
 * New connections to a pod from elsewhere are left to the host's policy, as with the reference.
 * cnikit's `forward` chain (priority 0) still drops what its ingressPolicy drops: an iptables
 * accept does not end another table's verdict either.
 *
 * The bit: 0x1000 (bit 12). kube-proxy uses 0x4000 (masquerade) and 0x8000 (drop), the reference
 * portmap and netavark 0x2000 (markMasqBit 13), Cilium 0x0f00, Calico 0xffff0000 (its default
 * IptablesMarkMask), Istio 0x539 and WireGuard 0xca6c as whole values on local traffic. The bit is
 * cleared before it is set (as Calico does with its own bits), so a packet another program marked
 * 0x1000 is never accepted by cnikit's rule; in exchange such a program no longer sees that bit on
 * forwarded packets after priority -10, and only on hosts where the rule is installed.
 *
 * When: every ADD reads the FORWARD policy of each of the pod's address families over nfnetlink
 * (one GETCHAIN request, plus a rule dump when the policy is ACCEPT, to see whether the chain ends
 * in an unconditional DROP/REJECT) and, only where this namespace has legacy filter tables
 * (/proc/net/ip{,6}_tables_names), runs one `iptables-legacy -S FORWARD`. Where nothing drops that is all. Where a chain drops, ADD takes
 * a lock (`<dataDir>/iptables.lock`), creates the mark chain when missing and inserts the rule when
 * missing (found by its comment over nfnetlink for iptables-nft, `-C` for legacy), by exec'ing
 * `iptables-nft` / `iptables-legacy` (`ip6tables-*`; plain `iptables` when it is that variant).
 * DEL and GC, when they leave `pods4` and `pods6` empty and the mark chain exists, take the same
 * lock, look again, and delete exactly the rules carrying the comment (iptables-nft: by handle over
 * nfnetlink; legacy: `-D` with the same rule) and the mark chain. A concurrent ADD either finds the
 * rule still there or adds it again after the DEL. Networks configured with different dataDirs do
 * not share the lock. Nothing else in iptables is touched; nothing is cached across processes.
 */

import { makeDir, readText } from "../../sys/file.ts";
import { withFileLock } from "../../sys/flock.ts";
import { joinPath as join } from "../../sys/path.ts";
import { isExists, isNotFound } from "../../netlink/error.ts";
import type { NftClient } from "../../nft/client.ts";
import type { Expr } from "../../nft/expr.ts";
import type { RuleInfo } from "../../nft/list.ts";
import { Transaction } from "../../nft/transaction.ts";
import { mark } from "../../nft/value.ts";
import { decodeVerdict, verdict } from "../../nft/verdict.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import { CT_ESTABLISHED_RELATED, ctHasAny, IP_FAMILIES, IPS_DST_NAT, loadAddr, nfprotoIs } from "../../nft/match.ts";

/** The packet mark bit that lets pod traffic through iptables' FORWARD chain. */
export const FORWARD_MARK = 0x1000;
/** The comment of cnikit's iptables rule: how it is found and told apart from every other rule. */
export const RULE_COMMENT = "cnikit firewall";
/** The base chain (in the firewall's table) that marks pod traffic, and its priority. */
export const MARK_CHAIN = "podmark";
export const MARK_CHAIN_PRIORITY = -10;
/** The rule, as iptables arguments after the chain. */
export const ACCEPT_RULE = ["-m", "mark", "--mark", `0x${FORWARD_MARK.toString(16)}/0x${FORWARD_MARK.toString(16)}`, "-m", "comment", "--comment", RULE_COMMENT, "-j", "ACCEPT"];

/** Which iptables implements a FORWARD chain: nftables (iptables-nft) or x_tables (legacy). */
export type IptablesBackend = "nft" | "legacy";

/** One family's FORWARD chain in one backend. */
export interface ForwardChain {
  readonly v: 4 | 6;
  readonly backend: IptablesBackend;
}

/** Result of running a command. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command synchronously (injectable for tests). */
export type Exec = (argv: string[]) => ExecResult;

/** Where the firewall keeps its objects: its nftables table and its data directory (for the lock). */
export interface ForwardAcceptOptions {
  table: string;
  dataDir: string;
  /** The pod's address families (ADD, CHECK): only their chains are looked at. Default both. */
  families?: ReadonlyArray<4 | 6>;
  exec?: Exec;
}

const NF_INET_FORWARD = 2;
const NFTA_IMMEDIATE_DATA = 2;
const NFTA_DATA_VERDICT = 2;
const NFTA_TARGET_NAME = 1;
const NFTA_MATCH_NAME = 1;
const NFTA_MATCH_INFO = 3;
const SEARCH_PATH = ":/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin";

const runSync: Exec = (argv) => {
  try {
    const p = Bun.spawnSync(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
  } catch (e) {
    return { code: 127, stdout: "", stderr: (e as Error).message };
  }
};

const familyOf = (v: 4 | 6): "ip" | "ip6" => (v === 4 ? "ip" : "ip6");
const tool = (v: 4 | 6) => (v === 4 ? "iptables" : "ip6tables");

/** True when this namespace has legacy (x_tables) filter tables of family `v`. */
function hasLegacyFilter(v: 4 | 6): boolean {
  try {
    return readText(v === 4 ? "/proc/net/ip_tables_names" : "/proc/net/ip6_tables_names").split("\n").includes("filter");
  } catch {
    return false;
  }
}

/**
 * The iptables command of a backend: `iptables-nft` / `iptables-legacy` (ip6tables likewise), else
 * plain `iptables` when `-V` says it is that variant; undefined when there is none.
 */
function binary(v: 4 | 6, backend: IptablesBackend, exec: Exec): string | undefined {
  const PATH = `${process.env.PATH ?? ""}${SEARCH_PATH}`;
  const own = Bun.which(`${tool(v)}-${backend}`, { PATH });
  if (own) return own;
  const plain = Bun.which(tool(v), { PATH });
  if (!plain) return undefined;
  const ver = exec([plain, "-V"]);
  const isNft = ver.stdout.includes("nf_tables");
  return ver.code === 0 && isNft === (backend === "nft") ? plain : undefined;
}

function mustBinary(c: ForwardChain, exec: Exec): string {
  const bin = binary(c.v, c.backend, exec);
  if (!bin) {
    throw new CniError(
      ErrorCode.Internal,
      `firewall: iptables' IPv${c.v} FORWARD chain (${c.backend}) drops pod traffic, and no ${tool(c.v)}-${c.backend} (or ${tool(c.v)} of that variant) was found to add the accept`,
    );
  }
  return bin;
}

/** True for a rule with no match that drops or rejects (`-A FORWARD -j DROP` / `-j REJECT`, as iptables-nft stores them). */
export function isUnconditionalDrop(rule: RuleInfo): boolean {
  let drops = false;
  for (const e of rule.exprs) {
    if (e.name === "counter") continue;
    if (e.name === "immediate") {
      const vd = e.data.nested(NFTA_IMMEDIATE_DATA)?.nested(NFTA_DATA_VERDICT);
      if (!vd || decodeVerdict(vd).kind !== "drop") return false;
      drops = true;
    } else if (e.name === "target") {
      const name = e.data.str(NFTA_TARGET_NAME);
      if (name !== "DROP" && name !== "REJECT") return false;
      drops = true;
    } else {
      return false;
    }
  }
  return drops;
}

/** True when `iptables -S FORWARD` output shows a DROP policy or a last rule that drops everything. */
export function legacyChainDrops(out: string): boolean {
  const lines = out.split("\n").map((l) => l.trim()).filter(Boolean);
  if (lines.includes("-P FORWARD DROP")) return true;
  const last = lines.filter((l) => l.startsWith("-A FORWARD ")).at(-1) ?? "";
  return last === "-A FORWARD -j DROP" || /^-A FORWARD -j REJECT( |$)/.test(last);
}

/** True for the rule this module inserts (its comment, as a compat match or in the rule's userdata). */
export function isCnikitRule(rule: RuleInfo): boolean {
  if (rule.userdata && new TextDecoder().decode(rule.userdata).includes(RULE_COMMENT)) return true;
  return rule.exprs.some((e) => e.name === "match" && e.data.str(NFTA_MATCH_NAME) === "comment" && e.data.str(NFTA_MATCH_INFO) === RULE_COMMENT);
}

/** The FORWARD chains (per family and backend) that drop what no rule accepts. */
export function droppingForwardChains(conn: NftClient, exec: Exec = runSync, families: ReadonlyArray<4 | 6> = [4, 6]): ForwardChain[] {
  const out: ForwardChain[] = [];
  for (const v of families) {
    const chain = conn.getChain(familyOf(v), "filter", "FORWARD");
    if (chain && chain.hook === NF_INET_FORWARD) {
      const rules = chain.policy === "drop" ? [] : conn.listRules(familyOf(v), "filter", "FORWARD");
      if (chain.policy === "drop" || (rules.length > 0 && isUnconditionalDrop(rules.at(-1)!))) out.push({ v, backend: "nft" });
    }
    if (hasLegacyFilter(v)) {
      const bin = binary(v, "legacy", exec);
      if (bin && legacyChainDrops(exec([bin, "-w", "-S", "FORWARD"]).stdout)) out.push({ v, backend: "legacy" });
    }
  }
  return out;
}

/** `meta mark set meta mark & ~bit | (set ? bit : 0)` through register 1. */
function markBit(set: boolean): Expr[] {
  return [
    { kind: "meta", key: "mark", dreg: 1 },
    { kind: "bitwise", sreg: 1, dreg: 1, len: 4, mask: mark(~FORWARD_MARK >>> 0), xor: mark(set ? FORWARD_MARK : 0) },
    { kind: "metaSet", key: "mark", sreg: 1 },
  ];
}

/** The mark chain and its rules, created in one transaction (EEXIST when it exists). */
export function markChainTransaction(table: string): Transaction {
  const tx = new Transaction({ family: "inet", table });
  tx.create({ kind: "chain", name: MARK_CHAIN, type: "filter", hook: "forward", priority: MARK_CHAIN_PRIORITY });
  tx.add({ kind: "rule", chain: MARK_CHAIN, exprs: markBit(false) });
  for (const f of IP_FAMILIES) {
    const pod = (which: "saddr" | "daddr"): Expr[] => [loadAddr(f, which, 1), { kind: "lookup", set: `pods${f.v}`, sreg: 1 }];
    const pass: Expr[] = [...markBit(true), { kind: "immediate", verdict: verdict.accept }];
    tx.add({ kind: "rule", chain: MARK_CHAIN, exprs: [...nfprotoIs(f), ...pod("saddr"), ...pass] });
    tx.add({ kind: "rule", chain: MARK_CHAIN, exprs: [...nfprotoIs(f), ...ctHasAny("state", CT_ESTABLISHED_RELATED), ...pod("daddr"), ...pass] });
    tx.add({ kind: "rule", chain: MARK_CHAIN, exprs: [...nfprotoIs(f), ...ctHasAny("status", IPS_DST_NAT), ...pod("daddr"), ...pass] });
  }
  return tx;
}

function hasAcceptRule(conn: NftClient, c: ForwardChain, exec: Exec): boolean {
  if (c.backend === "nft") return conn.listRules(familyOf(c.v), "filter", "FORWARD").some(isCnikitRule);
  return exec([mustBinary(c, exec), "-w", "-C", "FORWARD", ...ACCEPT_RULE]).code === 0;
}

function lockPath(dataDir: string): string {
  makeDir(dataDir, { recursive: true, mode: 0o700 });
  return join(dataDir, "iptables.lock");
}

/**
 * ADD: where an iptables FORWARD chain drops, make sure the mark chain and the one accept rule of
 * that family and backend exist. Cheap where nothing drops (no exec, no lock).
 */
export function ensureForwardAccept(conn: NftClient, opts: ForwardAcceptOptions): void {
  const exec = opts.exec ?? runSync;
  const chains = droppingForwardChains(conn, exec, opts.families);
  if (chains.length === 0) return;
  withFileLock(lockPath(opts.dataDir), () => {
    if (!conn.getChain("inet", opts.table, MARK_CHAIN)) {
      try {
        conn.apply(markChainTransaction(opts.table));
      } catch (e) {
        if (!isExists(e)) throw e;
      }
    }
    for (const c of chains) {
      if (hasAcceptRule(conn, c, exec)) continue;
      const bin = mustBinary(c, exec);
      const r = exec([bin, "-w", "-I", "FORWARD", "1", ...ACCEPT_RULE]);
      if (r.code !== 0) throw new CniError(ErrorCode.Internal, `firewall: ${bin} -I FORWARD failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
    }
  });
}

function podsLeft(conn: NftClient, table: string): boolean {
  return conn.listElements("inet", table, "pods4").length > 0 || conn.listElements("inet", table, "pods6").length > 0;
}

/**
 * DEL and GC: when no pod is left in the firewall's sets, delete the accept rules (exactly those
 * carrying the comment, in every family and backend) and the mark chain.
 */
export function releaseForwardAccept(conn: NftClient, opts: ForwardAcceptOptions): void {
  const exec = opts.exec ?? runSync;
  if (!conn.getChain("inet", opts.table, MARK_CHAIN) || podsLeft(conn, opts.table)) return;
  withFileLock(lockPath(opts.dataDir), () => {
    if (podsLeft(conn, opts.table)) return; // an ADD came in between
    for (const v of [4, 6] as const) {
      const ours = conn.listRules(familyOf(v), "filter", "FORWARD").filter(isCnikitRule);
      if (ours.length > 0) {
        const tx = new Transaction({ family: familyOf(v), table: "filter" });
        for (const r of ours) tx.delete({ kind: "rule", chain: "FORWARD", exprs: [], handle: r.handle });
        try {
          conn.apply(tx);
        } catch (e) {
          if (!isNotFound(e)) throw e;
        }
      }
      const bin = hasLegacyFilter(v) ? binary(v, "legacy", exec) : undefined;
      // `-D` removes one matching rule a time and fails once none is left
      for (let i = 0; bin && i < 8 && exec([bin, "-w", "-D", "FORWARD", ...ACCEPT_RULE]).code === 0; i++);
    }
    try {
      const mc = { kind: "chain", name: MARK_CHAIN } as const;
      conn.apply(new Transaction({ family: "inet", table: opts.table }).flush(mc).delete(mc));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  });
}

/** CHECK: where an iptables FORWARD chain drops, the mark chain and the accept rule must be there. */
export function checkForwardAccept(conn: NftClient, opts: ForwardAcceptOptions): void {
  const exec = opts.exec ?? runSync;
  const chains = droppingForwardChains(conn, exec, opts.families);
  if (chains.length === 0) return;
  if (!conn.getChain("inet", opts.table, MARK_CHAIN)) {
    throw new CniError(ErrorCode.Internal, `firewall: iptables' FORWARD chain drops and chain inet ${opts.table} ${MARK_CHAIN} is missing`);
  }
  for (const c of chains) {
    if (!hasAcceptRule(conn, c, exec)) {
      throw new CniError(ErrorCode.Internal, `firewall: iptables' IPv${c.v} FORWARD chain (${c.backend}) drops and its "${RULE_COMMENT}" accept rule is missing`);
    }
  }
}
