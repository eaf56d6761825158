/**
 * `FakeNft`: an in-memory nftables for unit tests. It applies transactions to a model of tables,
 * chains (rules kept as the objects given), sets and elements, all-or-nothing, and fails with the
 * errno the kernel would use (ENOENT, EEXIST, EBUSY, EINVAL), so `isNotFound` / `isExists` work.
 * It answers look-ups in `NftConn`'s shapes (a listed rule is the rule encoded and decoded as the
 * kernel would list it), and `dump()` prints its whole state as readable text for tests to compare.
 */

import { Errno } from "../sys/errno.ts";
import { toHex } from "../netlink/bytes.ts";
import { NetlinkError } from "../netlink/error.ts";
import type { NftClient } from "./client.ts";
import { keyLen } from "./datatype.ts";
import { formatChain, formatElement, formatRule, formatSet } from "./dump.ts";
import { encodeOperation } from "./encode.ts";
import { type ChainInfo, decodeRule, type ElementInfo, type RuleInfo, type TableInfo } from "./list.ts";
import type { Chain, Element, Family, NftMap, NftObject, NftSet, Rule } from "./objects.ts";
import type { Operation, Transaction } from "./transaction.ts";
import { concat } from "./value.ts";
import { NF_INET_HOOK } from "./uapi.ts";
import type { Verdict } from "./verdict.ts";

/** A chain in the fake, with its rules in order. */
export interface FakeChain {
  readonly def: Chain;
  readonly rules: { readonly handle: bigint; readonly rule: Rule }[];
}

/** A set or map in the fake, with its elements by hex key. */
export interface FakeSet {
  readonly def: NftSet | NftMap;
  readonly elements: Map<string, ElementInfo>;
}

/** A table in the fake. */
export interface FakeTable {
  flags: number;
  readonly chains: Map<string, FakeChain>;
  readonly sets: Map<string, FakeSet>;
}

class Fail extends Error {
  constructor(readonly errno: number, readonly why: string) {
    super(why);
  }
}

function bytesOf(v: Uint8Array | readonly Uint8Array[]): Uint8Array {
  return v instanceof Uint8Array ? v.slice() : concat(v);
}

function cloneTable(t: FakeTable): FakeTable {
  return {
    flags: t.flags,
    chains: new Map([...t.chains].map(([k, c]) => [k, { def: c.def, rules: [...c.rules] }])),
    sets: new Map([...t.sets].map(([k, s]) => [k, { def: s.def, elements: new Map(s.elements) }])),
  };
}

function sameSet(a: NftSet | NftMap, b: NftSet | NftMap): boolean {
  const norm = (s: NftSet | NftMap) =>
    JSON.stringify([s.kind, s.key, s.kind === "map" ? s.data : null, [...(s.flags ?? [])].sort(), s.timeoutMs ?? null]);
  return norm(a) === norm(b);
}

function sameValue(a: ElementInfo, b: ElementInfo): boolean {
  return (
    toHex(a.data ?? new Uint8Array(0)) === toHex(b.data ?? new Uint8Array(0)) &&
    JSON.stringify(a.verdict ?? null) === JSON.stringify(b.verdict ?? null)
  );
}

function jumpTarget(v: Verdict | undefined): string | undefined {
  return v && (v.kind === "jump" || v.kind === "goto") ? v.chain : undefined;
}

/** An in-memory stand-in for the kernel's nftables. */
export class FakeNft implements NftClient {
  private state = new Map<string, FakeTable>();
  private handle = 0n;
  /** Every transaction applied successfully, in order (for asserting what a plugin did). */
  readonly applied: Transaction[] = [];

  /** Apply `tx` to the model: all of it, or nothing and the first error (a `NetlinkError`). */
  apply(tx: Transaction): void {
    const next = new Map([...this.state].map(([k, t]) => [k, cloneTable(t)]));
    const handle = this.handle;
    for (const op of tx.operations) {
      try {
        this.step(next, `${tx.family}/${tx.table}`, op);
      } catch (e) {
        this.handle = handle;
        if (!(e instanceof Fail)) throw e;
        throw new NetlinkError(`${op.verb} ${op.obj.kind} ${tx.family} ${tx.table}${nameOf(op.obj)}`, {
          errno: e.errno,
          message: e.why,
        });
      }
    }
    this.state = next;
    this.applied.push(tx);
  }

  /** The table, or undefined. */
  getTable(family: Family, name: string): TableInfo | undefined {
    const t = this.state.get(`${family}/${name}`);
    return t ? { family, name, flags: t.flags, use: t.chains.size + t.sets.size } : undefined;
  }

  /** The elements of a set or map; ENOENT when the table or set is missing. */
  listElements(family: Family, table: string, set: string): ElementInfo[] {
    const s = this.state.get(`${family}/${table}`)?.sets.get(set);
    if (!s) throw new NetlinkError("NFT_MSG_GETSETELEM", { errno: Errno.ENOENT, message: `no set ${set}` });
    return [...s.elements.values()];
  }

  /** The chain as `NftConn.getChain` reports it (base chains with hook, priority, policy, type), or undefined. */
  getChain(family: Family, table: string, name: string): ChainInfo | undefined {
    const c = this.fakeChain(family, table, name)?.def;
    if (!c) return undefined;
    if (c.hook === undefined) return { family, table, name };
    return { family, table, name, hook: NF_INET_HOOK[c.hook], priority: c.priority ?? 0, policy: c.policy ?? "accept", type: c.type ?? "filter" };
  }

  /** The rules of a chain as `NftConn.listRules` lists them (kernel expressions, handles); empty when missing. */
  listRules(family: Family, table: string, chain: string): RuleInfo[] {
    const c = this.fakeChain(family, table, chain);
    const ctx = { family, table, nextSetId: () => 0 };
    return (c?.rules ?? []).map(({ handle, rule }) => ({ ...decodeRule(encodeOperation(ctx, { verb: "add", obj: rule }).body), handle }));
  }

  /** A chain as the fake keeps it (its definition and rules as given), or undefined. */
  fakeChain(family: Family, table: string, name: string): FakeChain | undefined {
    return this.state.get(`${family}/${table}`)?.chains.get(name);
  }

  /** A set or map, or undefined. */
  getSet(family: Family, table: string, name: string): FakeSet | undefined {
    return this.state.get(`${family}/${table}`)?.sets.get(name);
  }

  /**
   * The whole state as text: each table (sorted), its chains with their rules in order, its sets
   * and maps with their elements (sorted), indented by two spaces a level.
   */
  dump(): string {
    const out: string[] = [];
    for (const id of [...this.state.keys()].sort()) {
      const t = this.state.get(id)!;
      out.push(`table ${id.replace("/", " ")}${t.flags ? ` { flags ${t.flags} }` : ""}`);
      for (const c of t.chains.values()) {
        out.push(`  ${formatChain(c.def)}`);
        for (const { rule } of c.rules) out.push(`    ${formatRule(rule)}`);
      }
      for (const set of t.sets.values()) {
        out.push(`  ${formatSet(set.def)}`);
        for (const e of [...set.elements.values()].map((e) => formatElement(set.def, e)).sort()) out.push(`    ${e}`);
      }
    }
    return out.map((l) => `${l}\n`).join("");
  }

  private step(state: Map<string, FakeTable>, id: string, op: Operation): void {
    const { verb, obj } = op;
    const table = state.get(id);
    if (obj.kind === "table") {
      if (verb === "add" || verb === "create") {
        if (table && verb === "create") throw new Fail(Errno.EEXIST, "table exists");
        if (table) table.flags = obj.flags ?? table.flags;
        else state.set(id, { flags: obj.flags ?? 0, chains: new Map(), sets: new Map() });
      } else if (verb === "flush") {
        if (!table) throw new Fail(Errno.ENOENT, "no such table");
        for (const c of table.chains.values()) c.rules.length = 0;
      } else if (table) {
        state.delete(id);
      } else if (verb === "delete") {
        throw new Fail(Errno.ENOENT, "no such table");
      }
      return;
    }
    if (!table) {
      if (verb === "destroy") return;
      throw new Fail(Errno.ENOENT, "no such table");
    }
    switch (obj.kind) {
      case "chain":
        return this.chainStep(table, verb, obj);
      case "set":
      case "map":
        return this.setStep(table, verb, obj);
      case "element":
        return this.elementStep(table, verb, obj);
      case "rule":
        return this.ruleStep(table, verb, obj);
    }
  }

  private chainStep(table: FakeTable, verb: Operation["verb"], c: Chain): void {
    const have = table.chains.get(c.name);
    if (verb === "add" || verb === "create") {
      if (have && verb === "create") throw new Fail(Errno.EEXIST, `chain ${c.name} exists`);
      if (have && (have.def.hook !== c.hook || have.def.type !== c.type)) throw new Fail(Errno.EBUSY, `chain ${c.name} differs`);
      if (!have) table.chains.set(c.name, { def: c, rules: [] });
      return;
    }
    if (!have) {
      if (verb === "destroy") return;
      throw new Fail(Errno.ENOENT, `no chain ${c.name}`);
    }
    if (verb === "flush") {
      have.rules.length = 0;
      return;
    }
    if (have.rules.length > 0 || this.chainUsed(table, c.name)) throw new Fail(Errno.EBUSY, `chain ${c.name} is in use`);
    table.chains.delete(c.name);
  }

  private chainUsed(table: FakeTable, name: string): boolean {
    for (const c of table.chains.values()) {
      for (const { rule } of c.rules) {
        if (rule.exprs.some((e) => e.kind === "immediate" && "verdict" in e && jumpTarget(e.verdict) === name)) return true;
      }
    }
    for (const s of table.sets.values()) {
      for (const e of s.elements.values()) if (jumpTarget(e.verdict) === name) return true;
    }
    return false;
  }

  private setStep(table: FakeTable, verb: Operation["verb"], s: NftSet | NftMap): void {
    const have = table.sets.get(s.name);
    if (verb === "add" || verb === "create") {
      if (have && (verb === "create" || !sameSet(have.def, s))) throw new Fail(Errno.EEXIST, `set ${s.name} exists`);
      if (!have) table.sets.set(s.name, { def: s, elements: new Map() });
      return;
    }
    if (!have) {
      if (verb === "destroy") return;
      throw new Fail(Errno.ENOENT, `no set ${s.name}`);
    }
    if (verb === "flush") {
      have.elements.clear();
      return;
    }
    const used = [...table.chains.values()].some((c) =>
      c.rules.some(({ rule }) => rule.exprs.some((e) => e.kind === "lookup" && e.set === s.name))
    );
    if (used) throw new Fail(Errno.EBUSY, `set ${s.name} is in use`);
    table.sets.delete(s.name);
  }

  private elementStep(table: FakeTable, verb: Operation["verb"], e: Element): void {
    const s = table.sets.get(e.set);
    if (!s) throw new Fail(Errno.ENOENT, `no set ${e.set}`);
    const key = bytesOf(e.key);
    if (key.length !== keyLen(s.def.key)) throw new Fail(Errno.EINVAL, `key of ${key.length} bytes, set wants ${keyLen(s.def.key)}`);
    const hex = toHex(key);
    if (verb === "delete" || verb === "destroy") {
      // a range given with an end must end there, as the kernel (pipapo) finds it; without one, its start is enough
      const have = s.elements.get(hex);
      const found = have !== undefined && (e.keyEnd === undefined || have.keyEnd === undefined || toHex(have.keyEnd) === toHex(bytesOf(e.keyEnd)));
      if (found) s.elements.delete(hex);
      else if (verb === "delete") throw new Fail(Errno.ENOENT, "no such element");
      return;
    }
    const def = s.def;
    const info: ElementInfo = {
      key,
      ...(e.keyEnd !== undefined ? { keyEnd: bytesOf(e.keyEnd) } : {}),
      ...(e.data !== undefined ? { data: bytesOf(e.data) } : {}),
      ...(e.verdict !== undefined ? { verdict: e.verdict } : {}),
      flags: 0,
    };
    if (def.kind === "set" && (e.data !== undefined || e.verdict !== undefined)) throw new Fail(Errno.EINVAL, "data for a set");
    if (def.kind === "map") {
      if (def.data === "verdict" ? e.verdict === undefined : info.data?.length !== keyLen(def.data)) {
        throw new Fail(Errno.EINVAL, "map element data does not fit the map");
      }
      const target = jumpTarget(e.verdict);
      if (target !== undefined && !table.chains.has(target)) throw new Fail(Errno.ENOENT, `no chain ${target}`);
    }
    const old = s.elements.get(hex);
    if (old) {
      if (!sameValue(old, info)) throw new Fail(Errno.EBUSY, "element exists with other data");
      if (verb === "create") throw new Fail(Errno.EEXIST, "element exists");
      return;
    }
    s.elements.set(hex, info);
  }

  private ruleStep(table: FakeTable, verb: Operation["verb"], r: Rule): void {
    const c = table.chains.get(r.chain);
    if (!c) throw new Fail(Errno.ENOENT, `no chain ${r.chain}`);
    if (verb === "delete") {
      const i = c.rules.findIndex((x) => x.handle === r.handle);
      if (i < 0) throw new Fail(Errno.ENOENT, `no rule ${r.handle}`);
      c.rules.splice(i, 1);
      return;
    }
    for (const e of r.exprs) {
      if (e.kind === "lookup" && !table.sets.has(e.set)) throw new Fail(Errno.ENOENT, `no set ${e.set}`);
      const target = e.kind === "immediate" && "verdict" in e ? jumpTarget(e.verdict) : undefined;
      if (target !== undefined && !table.chains.has(target)) throw new Fail(Errno.ENOENT, `no chain ${target}`);
    }
    const entry = { handle: ++this.handle, rule: r };
    if (verb === "insert") c.rules.unshift(entry);
    else c.rules.push(entry);
  }
}

function nameOf(obj: NftObject): string {
  switch (obj.kind) {
    case "table":
      return "";
    case "element":
      return ` ${obj.set}`;
    case "rule":
      return ` ${obj.chain}`;
    default:
      return ` ${obj.name}`;
  }
}
