/**
 * cluster-ipam's allocation over a ClusterStore and the node's local cache (a hint, never trusted
 * for correctness: the store's transaction is). The common case - a free address in a block this
 * node already holds - is one round trip: the reserving transaction. A stale cache costs a read of
 * one block and a retry; a full node claims a new block; a full pool lends a free address of
 * another node's block; nothing free is a clear error.
 */

import { CniError, ErrorCode } from "../../spec/error.ts";
import { formatCIDR, formatIP, parseIP, type IPBytes } from "../../spec/ip.ts";
import { blockAt, blockCount, blockKey, blockOf, parseBlockKey, pickFree, type Pool } from "./pool.ts";
import type { ClusterStore, IPRecord } from "./store.ts";

/** What a node remembers between invocations (kept in its dataDir). */
export interface NodeCache {
  node: string;
  /** Blocks this node holds. */
  blocks: string[];
  /** Addresses known to be taken, per block: address -> "id/ifname" (or "?" when someone else's). */
  used: Record<string, Record<string, string>>;
  /** Attachments of this node: "id/ifname" -> "<block>/<address>". */
  handles: Record<string, string>;
  /** The last address handed out (round robin). */
  last?: string;
}

export const emptyCache = (node: string): NodeCache => ({ node, blocks: [], used: {}, handles: {} });

/** Who asks. */
export interface AllocRequest {
  containerID: string;
  ifname: string;
  node: string;
  requested?: IPBytes;
  /** Random source for picking a free block (tests pass their own). */
  rand?: () => number;
}

const MAX_ATTEMPTS = 64;
const handleOf = (r: Pick<AllocRequest, "containerID" | "ifname">) => `${r.containerID}/${r.ifname}`;

/**
 * The pool record in etcd must be the one this config writes (created on first use): a writer with
 * another block size would key the same address differently and could hand it out twice.
 */
async function checkPool(store: ClusterStore, pool: Pool, found: string | undefined): Promise<void> {
  const now = found ?? (await store.createPool());
  if (now === store.pool) return;
  let size: unknown = now;
  try {
    size = (JSON.parse(now) as { blockSize?: unknown }).blockSize ?? now;
  } catch {
    // not a record of ours: show it as it is
  }
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    `cluster-ipam: pool ${formatCIDR(pool.net)} is cut into /${String(size)} blocks in etcd, but this config says blockSize ${pool.blockLen}`,
  );
}

function setUsed(cache: NodeCache, records: IPRecord[], block: string): void {
  cache.used[block] = Object.fromEntries(records.map((r) => [r.ip, `${r.containerID}/${r.ifname}`]));
}

/** Reserve an address for the attachment; returns it (the same one again for a repeated ADD). */
export async function allocate(store: ClusterStore, pool: Pool, cache: NodeCache, req: AllocRequest): Promise<IPBytes> {
  const rand = req.rand ?? Math.random;
  const handle = handleOf(req);
  // candidate address and the owner its block must have for the transaction to pass
  let pick: { ip: IPBytes; block: string; owner: string } | undefined;
  let refreshed = false;
  let knownBlocks: Map<string, string> | undefined;

  if (req.requested) {
    const ip = req.requested;
    if (ip.length !== pool.net.ip.length || !parseBlockKey(pool, blockKey(blockOf(pool, ip))) || pool.exclude.has(formatIP(ip))) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `cluster-ipam: requested address ${formatIP(ip)} is not one the pool ${formatCIDR(pool.net)} hands out`);
    }
  }

  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (!pick && cache.handles[handle]) {
      // a repeated ADD: the address we gave before (the transaction below confirms it)
      const [block, ip] = cache.handles[handle]!.split("/");
      pick = { ip: parseIP(ip!)!, block: block!, owner: cache.blocks.includes(block!) ? req.node : "" };
    }
    if (!pick && req.requested) {
      const block = blockKey(blockOf(pool, req.requested));
      let owner = cache.blocks.includes(block) ? req.node : (knownBlocks ??= await store.blocks()).get(block);
      if (owner === undefined) {
        const claim = await store.claimBlock(block, req.node);
        if (claim.ok) cache.blocks.push(block);
        else if (claim.pool !== store.pool) await checkPool(store, pool, claim.pool);
        knownBlocks = undefined;
        continue;
      }
      pick = { ip: req.requested, block, owner };
    }
    if (!pick) {
      for (const block of cache.blocks) {
        const ip = pickFree(pool, parseBlockKey(pool, block)!, new Set(Object.keys(cache.used[block] ?? {})), cache.last);
        if (ip) {
          pick = { ip, block, owner: req.node };
          break;
        }
      }
    }
    if (!pick && !refreshed) {
      // our blocks look full, or we know none (first ADD, lost cache): read what we hold as it is
      // now (others may have released addresses they borrowed or requested in our blocks)
      refreshed = true;
      knownBlocks = await store.blocks();
      const mine = [...knownBlocks].filter(([, n]) => n === req.node).map(([b]) => b);
      cache.blocks = mine;
      const read = await Promise.all(mine.map((b) => store.ips(b)));
      mine.forEach((b, i) => setUsed(cache, read[i]!, b));
      if (mine.length > 0) continue;
    }
    if (!pick) {
      // claim a free block, starting at a random one so nodes claiming together rarely collide
      knownBlocks ??= await store.blocks();
      const n = blockCount(pool);
      const start = BigInt(Math.floor(rand() * Number(n > 1_000_000n ? 1_000_000n : n)));
      let claimed = false;
      for (let k = 0n; k < n; k++) {
        const block = blockKey(blockAt(pool, (start + k) % n));
        if (knownBlocks.has(block)) continue;
        const claim = await store.claimBlock(block, req.node);
        if (claim.ok) {
          cache.blocks.push(block);
          cache.used[block] = {};
          claimed = true;
        } else if (claim.pool !== store.pool) {
          await checkPool(store, pool, claim.pool); // the first block of a new pool: create its record
        } else {
          knownBlocks = await store.blocks();
        }
        break;
      }
      if (claimed) continue;
      if ((knownBlocks?.size ?? 0) < n) continue; // lost a race for a block: look again
      // every block is claimed: borrow a free address from another node's block
      const all = await store.ips();
      const used = new Map<string, Set<string>>();
      for (const r of all) (used.get(r.block) ?? used.set(r.block, new Set()).get(r.block)!).add(r.ip);
      for (const [block, owner] of knownBlocks) {
        const ip = pickFree(pool, parseBlockKey(pool, block)!, used.get(block) ?? new Set());
        if (ip) {
          pick = { ip, block, owner };
          break;
        }
      }
      if (!pick) throw new CniError(ErrorCode.TryAgainLater, `cluster-ipam: pool ${formatCIDR(pool.net)} is exhausted (${all.length} addresses reserved)`);
    }

    const rec: IPRecord = { ip: formatIP(pick.ip), block: pick.block, containerID: req.containerID, ifname: req.ifname, node: req.node };
    const out = await store.reserve(rec, pick.owner);
    if (out.ok) {
      (cache.used[pick.block] ??= {})[rec.ip] = handle;
      cache.handles[handle] = `${pick.block}/${rec.ip}`;
      cache.last = rec.ip;
      return pick.ip;
    }
    if (out.handle) {
      // this attachment already holds an address: the same ADD again
      cache.handles[handle] = out.handle;
      return parseIP(out.handle.split("/")[1]!)!;
    }
    if (out.pool !== store.pool) {
      await checkPool(store, pool, out.pool);
      continue; // the same pick again, now that the pool record is there
    }
    delete cache.handles[handle];
    if (req.requested && out.ipTaken) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `cluster-ipam: requested address ${rec.ip} is already reserved`);
    }
    if (out.owner !== pick.owner) {
      // the block is not (or no longer) whose we thought
      if (out.owner !== req.node) cache.blocks = cache.blocks.filter((b) => b !== pick!.block);
      knownBlocks = undefined;
    } else if (out.ipTaken) {
      // our cache was stale: read the block as it is
      setUsed(cache, await store.ips(pick.block), pick.block);
    }
    pick = undefined;
  }
  throw new CniError(ErrorCode.TryAgainLater, `cluster-ipam: could not reserve an address in ${formatCIDR(pool.net)} (too many conflicts); try again`);
}

/** Release the attachment's address; false when it held none. One round trip when the cache knows it. */
export async function release(store: ClusterStore, cache: NodeCache, containerID: string, ifname: string): Promise<boolean> {
  const handle = handleOf({ containerID, ifname });
  const forget = (held: string) => {
    const [block, ip] = held.split("/");
    delete cache.used[block!]?.[ip!];
    delete cache.handles[handle];
  };
  const cached = cache.handles[handle];
  if (cached && (await store.releaseIf(containerID, ifname, cached))) {
    forget(cached);
    return true;
  }
  const held = await store.handle(containerID, ifname);
  if (cached) forget(cached);
  if (!held) return false;
  const ok = await store.releaseIf(containerID, ifname, held);
  forget(held);
  return ok;
}
