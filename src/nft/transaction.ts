/**
 * `Transaction`: nftables changes collected as objects, in order, to be applied as one atomic
 * batch (by `NftConn.apply` against the kernel, or `FakeNft.apply` in tests).
 */

import type { Chain, Element, Family, NftMap, NftObject, NftSet, Rule, Table } from "./objects.ts";

/**
 * What to do with an object: `add` (create, fine if it exists), `create` (fail with EEXIST if it
 * exists), `insert` (a rule at the head of its chain), `delete` (fail with ENOENT if missing),
 * `destroy` (delete, fine if missing), `flush` (empty a table's chains, a chain or a set).
 */
export type Verb = "add" | "create" | "insert" | "delete" | "destroy" | "flush";

/** One operation of a transaction. */
export interface Operation {
  readonly verb: Verb;
  readonly obj: NftObject;
}

/** Which table a transaction works in. */
export interface TransactionOptions {
  readonly family: Family;
  readonly table: string;
}

/** Objects that can be flushed. */
export type Flushable = Table | Chain | NftSet | NftMap;

/** A list of changes to one table, applied all-or-nothing. */
export class Transaction {
  /** The table's family. */
  readonly family: Family;
  /** The table's name. */
  readonly table: string;
  private readonly list: Operation[] = [];

  constructor(opts: TransactionOptions) {
    this.family = opts.family;
    this.table = opts.table;
  }

  /** The operations, in order. */
  get operations(): readonly Operation[] {
    return this.list;
  }

  /** Number of operations. */
  get size(): number {
    return this.list.length;
  }

  /** Add `obj`; an existing table, chain, set or identical element is fine. Rules are appended. */
  add(obj: NftObject): this {
    return this.push("add", obj);
  }
  /** Create `obj`, failing with EEXIST when it exists. */
  create(obj: Exclude<NftObject, Rule>): this {
    return this.push("create", obj);
  }
  /** Insert a rule at the head of its chain. */
  insert(rule: Rule): this {
    return this.push("insert", rule);
  }
  /** Delete `obj`, failing with ENOENT when it is missing (a rule needs its handle). */
  delete(obj: NftObject): this {
    return this.push("delete", obj);
  }
  /** Delete `obj` if it exists (kernel 6.3+). */
  destroy(obj: Table | Chain | NftSet | NftMap | Element): this {
    return this.push("destroy", obj);
  }
  /** Remove every rule of a table or chain, or every element of a set or map. */
  flush(obj: Flushable): this {
    return this.push("flush", obj);
  }

  private push(verb: Verb, obj: NftObject): this {
    if (verb === "flush" && (obj.kind === "element" || obj.kind === "rule")) throw new TypeError(`cannot flush a ${obj.kind}`);
    if (verb === "insert" && obj.kind !== "rule") throw new TypeError("only rules are inserted");
    if (verb === "delete" && obj.kind === "rule" && obj.handle === undefined) throw new TypeError("deleting a rule needs its handle");
    this.list.push({ verb, obj });
    return this;
  }
}
