/**
 * Where plugins and the agent get their nftables client (DESIGN.md: kernel handles come from a
 * context, never opened by the plugin itself). By default `withNft` opens an `NftConn` for the
 * call and closes it afterwards: a standalone plugin run. `useNft` replaces that with one client
 * for every call: the daemon installs one connection it keeps open (warm), unit tests a `FakeNft`.
 * A shared connection is safe under concurrent calls: each request and its answer are synchronous.
 */

import type { NftClient } from "./client.ts";
import { NftConn } from "./conn.ts";

let shared: NftClient | undefined;

/**
 * Serve every `withNft` with `client` until the returned function is called, which puts back
 * what was there before (the per-call connections, or another shared client).
 */
export function useNft(client: NftClient): () => void {
  const before = shared;
  shared = client;
  return () => {
    if (shared === client) shared = before;
  };
}

/**
 * Run `fn` with the nftables client: the shared one, else a connection opened for it and closed
 * after. `fn` is synchronous (a shared connection may be closed between two turns of the loop).
 */
export function withNft<T>(fn: (nft: NftClient) => T): T {
  if (shared) return fn(shared);
  const conn = NftConn.open();
  try {
    return fn(conn);
  } finally {
    conn.close();
  }
}

/**
 * For DEL and GC: as `withNft`, but undefined without calling `fn` when no nftables connection
 * can be opened (no nftables at all: nothing to clean). Errors of `fn` itself are thrown.
 */
export function cleanupWithNft<T>(fn: (nft: NftClient) => T): T | undefined {
  if (shared) return fn(shared);
  let conn: NftConn;
  try {
    conn = NftConn.open();
  } catch {
    return undefined;
  }
  try {
    return fn(conn);
  } finally {
    conn.close();
  }
}
