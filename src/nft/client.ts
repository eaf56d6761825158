/**
 * `NftClient`: what plugins need from nftables — apply a transaction, check a table, list a set's
 * elements. `NftConn` implements it over the kernel, `FakeNft` in memory.
 */

import type { ElementInfo, TableInfo } from "./list.ts";
import type { Family } from "./objects.ts";
import type { Transaction } from "./transaction.ts";

/** The nftables operations plugins use; errors answer `isNotFound` / `isExists`. */
export interface NftClient {
  /** Apply every operation of `tx` atomically; throws the first failure as a `NetlinkError`. */
  apply(tx: Transaction): void;
  /** The table, or undefined when it does not exist. */
  getTable(family: Family, name: string): TableInfo | undefined;
  /** The elements of a set or map; throws a not-found error when the table or set is missing. */
  listElements(family: Family, table: string, set: string): ElementInfo[];
}
