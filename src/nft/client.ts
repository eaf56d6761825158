/**
 * `NftClient`: what plugins and the agent need from nftables — apply a transaction, look up a
 * table or a chain, list a chain's rules or a set's elements. `NftConn` implements it over the
 * kernel, `FakeNft` in memory, both answering in the same shapes (`TableInfo`, `ChainInfo`,
 * `RuleInfo`, `ElementInfo`). Code gets its client from `withNft` (nft/handle.ts).
 */

import type { ChainInfo, ElementInfo, RuleInfo, TableInfo } from "./list.ts";
import type { Family } from "./objects.ts";
import type { Transaction } from "./transaction.ts";

/** The nftables operations plugins use; errors answer `isNotFound` / `isExists`. */
export interface NftClient {
  /** Apply every operation of `tx` atomically; throws the first failure as a `NetlinkError`. */
  apply(tx: Transaction): void;
  /** The table, or undefined when it does not exist. */
  getTable(family: Family, name: string): TableInfo | undefined;
  /** The chain, or undefined when it (or its table) does not exist. */
  getChain(family: Family, table: string, name: string): ChainInfo | undefined;
  /** The rules of a chain in order; empty when the chain does not exist. */
  listRules(family: Family, table: string, chain: string): RuleInfo[];
  /** The elements of a set or map; throws a not-found error when the table or set is missing. */
  listElements(family: Family, table: string, set: string): ElementInfo[];
}
