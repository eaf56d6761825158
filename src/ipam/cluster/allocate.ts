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

/** A candidate address and the owner its block must have for the reserving transaction to pass. */
interface Candidate {
  ip: IPBytes;
  block: string;
  owner: string;
}

/**
 * One allocation's search, in named steps: the address a repeated ADD got before, a requested
 * address, a free one in this node's blocks, this node's blocks read afresh, a new block, or one
 * borrowed from another node's block. Each step returns a candidate, or undefined when what it
 * learnt changed the picture and the search starts over.
 */
class Search {
  private readonly handle: string;
  /** The blocks and their owners as last read (undefined: read again when needed). */
  private knownBlocks: Map<string, string> | undefined;
  private refreshed = false;

  constructor(
    private readonly store: ClusterStore,
    private readonly pool: Pool,
    private readonly cache: NodeCache,
    private readonly req: AllocRequest,
  ) {
    this.handle = handleOf(req);
  }

  /** The next candidate, or undefined to start over. */
  async next(): Promise<Candidate | undefined> {
    const again = this.repeated();
    if (again) return again;
    if (this.req.requested) return this.requested(this.req.requested);
    const own = this.inOwnBlocks();
    if (own) return own;
    if (!this.refreshed && (await this.refresh())) return undefined;
    return this.claimOrBorrow();
  }

  /** A repeated ADD: the address given before (the transaction confirms it). */
  private repeated(): Candidate | undefined {
    const held = this.cache.handles[this.handle];
    if (!held) return undefined;
    const [block, ip] = held.split("/");
    return { ip: parseIP(ip!)!, block: block!, owner: this.cache.blocks.includes(block!) ? this.req.node : "" };
  }

  /** The requested address, in its block; a block nobody holds is claimed first. */
  private async requested(ip: IPBytes): Promise<Candidate | undefined> {
    const block = blockKey(blockOf(this.pool, ip));
    const owner = this.cache.blocks.includes(block) ? this.req.node : (this.knownBlocks ??= await this.store.blocks()).get(block);
    if (owner !== undefined) return { ip, block, owner };
    const claim = await this.store.claimBlock(block, this.req.node);
    if (claim.ok) this.cache.blocks.push(block);
    else if (claim.pool !== this.store.pool) await checkPool(this.store, this.pool, claim.pool);
    this.knownBlocks = undefined;
    return undefined;
  }

  /** A free address in a block this node holds, by the cache. */
  private inOwnBlocks(): Candidate | undefined {
    for (const block of this.cache.blocks) {
      const ip = pickFree(this.pool, parseBlockKey(this.pool, block)!, new Set(Object.keys(this.cache.used[block] ?? {})), this.cache.last);
      if (ip) return { ip, block, owner: this.req.node };
    }
    return undefined;
  }

  /**
   * Our blocks look full, or we know none (first ADD, lost cache): read what we hold as it is now
   * (others may have released addresses they borrowed or requested in our blocks). True when we
   * hold any block, so that the search looks in them again.
   */
  private async refresh(): Promise<boolean> {
    this.refreshed = true;
    this.knownBlocks = await this.store.blocks();
    const mine = [...this.knownBlocks].filter(([, n]) => n === this.req.node).map(([b]) => b);
    this.cache.blocks = mine;
    const read = await Promise.all(mine.map((b) => this.store.ips(b)));
    mine.forEach((b, i) => setUsed(this.cache, read[i]!, b));
    return mine.length > 0;
  }

  /**
   * Claim a free block (undefined: claimed, or lost a race for it; look again); when every block is
   * claimed, borrow a free address of another node's block; nothing free is code 11.
   */
  private async claimOrBorrow(): Promise<Candidate | undefined> {
    const known = (this.knownBlocks ??= await this.store.blocks());
    const n = blockCount(this.pool);
    // start at a random block so nodes claiming together rarely collide
    const start = BigInt(Math.floor((this.req.rand ?? Math.random)() * Number(n > 1_000_000n ? 1_000_000n : n)));
    for (let k = 0n; k < n; k++) {
      const block = blockKey(blockAt(this.pool, (start + k) % n));
      if (known.has(block)) continue;
      const claim = await this.store.claimBlock(block, this.req.node);
      if (claim.ok) {
        this.cache.blocks.push(block);
        this.cache.used[block] = {};
      } else if (claim.pool !== this.store.pool) {
        await checkPool(this.store, this.pool, claim.pool); // the first block of a new pool: create its record
      } else {
        this.knownBlocks = await this.store.blocks();
      }
      return undefined;
    }
    return this.borrow(known);
  }

  /** Every block is claimed: a free address of any node's block. */
  private async borrow(known: Map<string, string>): Promise<Candidate> {
    const all = await this.store.ips();
    const used = new Map<string, Set<string>>();
    for (const r of all) (used.get(r.block) ?? used.set(r.block, new Set()).get(r.block)!).add(r.ip);
    for (const [block, owner] of known) {
      const ip = pickFree(this.pool, parseBlockKey(this.pool, block)!, used.get(block) ?? new Set());
      if (ip) return { ip, block, owner };
    }
    throw new CniError(ErrorCode.TryAgainLater, `cluster-ipam: pool ${formatCIDR(this.pool.net)} is exhausted (${all.length} addresses reserved)`);
  }

  /**
   * The reserving transaction: the address (ours now, or already this attachment's), "again" to
   * try the same candidate once the pool record exists, or undefined after a conflict (what it
   * showed is learnt: a block's real owner, a taken address).
   */
  async reserve(c: Candidate): Promise<IPBytes | "again" | undefined> {
    const rec: IPRecord = { ip: formatIP(c.ip), block: c.block, containerID: this.req.containerID, ifname: this.req.ifname, node: this.req.node };
    const out = await this.store.reserve(rec, c.owner);
    if (out.ok) {
      (this.cache.used[c.block] ??= {})[rec.ip] = this.handle;
      this.cache.handles[this.handle] = `${c.block}/${rec.ip}`;
      this.cache.last = rec.ip;
      return c.ip;
    }
    if (out.handle) {
      // this attachment already holds an address: the same ADD again
      this.cache.handles[this.handle] = out.handle;
      return parseIP(out.handle.split("/")[1]!)!;
    }
    if (out.pool !== this.store.pool) {
      await checkPool(this.store, this.pool, out.pool);
      return "again";
    }
    delete this.cache.handles[this.handle];
    if (this.req.requested && out.ipTaken) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `cluster-ipam: requested address ${rec.ip} is already reserved`);
    }
    if (out.owner !== c.owner) {
      // the block is not (or no longer) whose we thought
      if (out.owner !== this.req.node) this.cache.blocks = this.cache.blocks.filter((b) => b !== c.block);
      this.knownBlocks = undefined;
    } else if (out.ipTaken) {
      // our cache was stale: read the block as it is
      setUsed(this.cache, await this.store.ips(c.block), c.block);
    }
    return undefined;
  }
}

/** Reserve an address for the attachment; returns it (the same one again for a repeated ADD). */
export async function allocate(store: ClusterStore, pool: Pool, cache: NodeCache, req: AllocRequest): Promise<IPBytes> {
  if (req.requested) {
    const ip = req.requested;
    if (ip.length !== pool.net.ip.length || !parseBlockKey(pool, blockKey(blockOf(pool, ip))) || pool.exclude.has(formatIP(ip))) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `cluster-ipam: requested address ${formatIP(ip)} is not one the pool ${formatCIDR(pool.net)} hands out`);
    }
  }
  const search = new Search(store, pool, cache, req);
  let candidate: Candidate | undefined;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    candidate ??= await search.next();
    if (!candidate) continue;
    const got = await search.reserve(candidate);
    if (got === "again") continue;
    if (got) return got;
    candidate = undefined;
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
