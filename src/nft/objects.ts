/**
 * The nftables objects a transaction adds, deletes or flushes. Each lives in the transaction's
 * table (family and table name come from the `Transaction`), as in knftables.
 */

import type { KeyType } from "./datatype.ts";
import type { Expr } from "./expr.ts";
import type { NF_INET_HOOK, NFPROTO } from "./uapi.ts";
import type { Verdict } from "./verdict.ts";

/** A table family. */
export type Family = keyof typeof NFPROTO;

/** The table itself. */
export interface Table {
  readonly kind: "table";
  /** NFT_TABLE_F_* (dormant 1, owner 2). */
  readonly flags?: number;
}

/** A chain: a base chain when `hook` is given, otherwise a regular one (a jump target). */
export interface Chain {
  readonly kind: "chain";
  readonly name: string;
  /** Chain type of a base chain (default filter). */
  readonly type?: "filter" | "nat" | "route";
  readonly hook?: keyof typeof NF_INET_HOOK;
  /** Hook priority (lower runs first); default 0. */
  readonly priority?: number;
  /** Base chain policy; default accept. */
  readonly policy?: "accept" | "drop";
}

/** Set flags by name. */
export type SetFlag = "constant" | "interval" | "timeout" | "concat";

/** A named set of keys. */
export interface NftSet {
  readonly kind: "set";
  readonly name: string;
  /** Key type: one data type, or several for a concatenation. */
  readonly key: KeyType;
  readonly flags?: readonly SetFlag[];
  /** Default element timeout in milliseconds (needs the `timeout` flag). */
  readonly timeoutMs?: number;
}

/** A named map: keys to data of a type, or to verdicts. */
export interface NftMap {
  readonly kind: "map";
  readonly name: string;
  readonly key: KeyType;
  /** Value type, or "verdict" for a verdict map. */
  readonly data: KeyType | "verdict";
  readonly flags?: readonly SetFlag[];
  readonly timeoutMs?: number;
}

/** An element of a set or map. */
export interface Element {
  readonly kind: "element";
  /** The set or map. */
  readonly set: string;
  /** The key: raw bytes, or components of a concatenation (each padded to 4 bytes). */
  readonly key: Uint8Array | readonly Uint8Array[];
  /** End of a range (interval sets of concatenations): NFTA_SET_ELEM_KEY_END. */
  readonly keyEnd?: Uint8Array | readonly Uint8Array[];
  /** Map value: raw bytes or components of a concatenation. */
  readonly data?: Uint8Array | readonly Uint8Array[];
  /** Verdict-map value. */
  readonly verdict?: Verdict;
  /** Element timeout in milliseconds. */
  readonly timeoutMs?: number;
}

/** A rule: a list of expressions in a chain. Delete needs its kernel handle. */
export interface Rule {
  readonly kind: "rule";
  readonly chain: string;
  readonly exprs: readonly Expr[];
  /** Kernel handle (for delete). */
  readonly handle?: bigint;
  /** Opaque user data (nft keeps comments here). */
  readonly userdata?: Uint8Array;
}

/** Any object a transaction can name. */
export type NftObject = Table | Chain | NftSet | NftMap | Element | Rule;
