/**
 * The idempotent steps every user of a shared nftables table takes (DESIGN.md: shared host objects
 * are created once and checked cheaply; per-pod work touches only per-pod objects): make the
 * table once, and remove a pod's elements whether or not some are gone already.
 */

import { isExists, isNotFound } from "../netlink/error.ts";
import type { NftClient } from "./client.ts";
import type { Element } from "./objects.ts";
import { Transaction, type TransactionOptions } from "./transaction.ts";

/**
 * Apply `setup` (a transaction whose first step is `create table`) unless its table exists; a
 * concurrent caller that created it first (EEXIST) is fine.
 */
export function ensureTable(nft: NftClient, setup: Transaction): void {
  if (nft.getTable(setup.family, setup.table)) return;
  try {
    nft.apply(setup);
  } catch (e) {
    if (!isExists(e)) throw e;
  }
}

/**
 * Delete `elements` from the table `where`: in one transaction, and when that fails because one
 * is gone already (a DEL run twice, a concurrent DEL), one transaction each so that the missing
 * one does not keep the others. A missing set or table is fine too.
 */
export function removeElements(nft: NftClient, where: TransactionOptions, elements: readonly Element[]): void {
  if (elements.length === 0) return;
  const all = new Transaction(where);
  for (const el of elements) all.delete(el);
  try {
    nft.apply(all);
    return;
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  if (elements.length === 1) return;
  for (const el of elements) {
    try {
      nft.apply(new Transaction(where).delete(el));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
}
