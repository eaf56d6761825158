/**
 * cluster-ipam's records in etcd, under `<prefix>/<pool>/` ("/cnikit/ipam/10.100.0.0-16/"):
 *   blocks/<block>          = the node the block is affine to (claimed with compare-and-create)
 *   ips/<block>/<address>   = {"containerID","ifname","node"}
 *   handles/<id>/<ifname>   = "<block>/<address>"
 *   pool                    = {"blockSize":26}, how the pool is cut (created once)
 * An address is taken in one transaction that creates its ips key and its handle key and checks
 * the block's owner and the pool record, so two writers can never hold one address, whatever their
 * caches say: the ips key of an address depends on the block size, and a writer configured with
 * another block size than the pool's fails the check instead of writing a second key for it.
 */

import type { EtcdGateway } from "./gateway.ts";

/** One reservation. */
export interface IPRecord {
  ip: string;
  /** Its block's key part ("10.100.0.64-26"). */
  block: string;
  containerID: string;
  ifname: string;
  node: string;
}

/** What a reservation attempt found. */
export type ReserveOutcome =
  | { ok: true }
  /** `handle`: the attachment already holds this ("<block>/<address>"); `ipTaken`: the address is
   * someone's; `owner`: who the block belongs to now (undefined: nobody). */
  | { ok: false; handle?: string; ipTaken: boolean; owner?: string; pool?: string };

/** The pool record a store expects for a pool cut into /`blockLen` blocks. */
export const poolRecord = (blockLen: number): string => JSON.stringify({ blockSize: blockLen });

/** The operations cluster-ipam needs; each is one etcd round trip. */
export interface ClusterStore {
  /** The pool record this store writes under (from `poolRecord`); every write checks it. */
  readonly pool: string;
  /** Create the pool record if there is none; returns the record now in etcd. */
  createPool(): Promise<string>;
  /** Every claimed block and its node. */
  blocks(): Promise<Map<string, string>>;
  /** Claim a free block for `node`; not ok when someone has it (or the pool record differs: `pool`). */
  claimBlock(block: string, node: string): Promise<{ ok: boolean; pool?: string }>;
  /** The reservations in one block, or in all of them. */
  ips(block?: string): Promise<IPRecord[]>;
  /** How many reservations there are. */
  countIPs(): Promise<number>;
  /** Reserve an address if it is free, the handle unused, the block still `owner`'s and the pool record ours. */
  reserve(r: IPRecord, owner: string): Promise<ReserveOutcome>;
  /** The handle's "<block>/<address>", if it holds one. */
  handle(containerID: string, ifname: string): Promise<string | undefined>;
  /** Release the handle's address (only while the handle still says `held`); false when it held none. */
  releaseIf(containerID: string, ifname: string, held: string): Promise<boolean>;
  close(): void;
}

const recordValue = (r: Pick<IPRecord, "containerID" | "ifname" | "node">) => JSON.stringify({ containerID: r.containerID, ifname: r.ifname, node: r.node });

/** The store over etcd's JSON gateway (no gRPC client to load in a plugin process). */
export class EtcdClusterStore implements ClusterStore {
  constructor(
    private readonly etcd: EtcdGateway,
    /** "<prefix>/<pool>" */
    private readonly base: string,
    readonly pool: string,
  ) {}

  private k(...parts: string[]): string {
    return `${this.base}/${parts.join("/")}`;
  }

  async blocks(): Promise<Map<string, string>> {
    const start = this.k("blocks", "").length;
    return new Map((await this.etcd.range(this.k("blocks", ""))).map((kv) => [kv.key.slice(start), kv.value]));
  }

  async createPool(): Promise<string> {
    const key = this.k("pool");
    const res = await this.etcd.txn([{ key, created: false }], [{ put: key, value: this.pool }], [{ get: key }]);
    return res.succeeded ? this.pool : (res.values[0] ?? "");
  }

  async claimBlock(block: string, node: string): Promise<{ ok: boolean; pool?: string }> {
    const key = this.k("blocks", block);
    const pool = this.k("pool");
    const res = await this.etcd.txn([{ key, created: false }, { key: pool, value: this.pool }], [{ put: key, value: node }], [{ get: pool }]);
    return res.succeeded ? { ok: true } : { ok: false, ...(res.values[0] !== undefined ? { pool: res.values[0] } : {}) };
  }

  async ips(block?: string): Promise<IPRecord[]> {
    const start = this.k("ips", "").length;
    const out: IPRecord[] = [];
    for (const kv of await this.etcd.range(block ? this.k("ips", block, "") : this.k("ips", ""))) {
      const [b, ip] = kv.key.slice(start).split("/");
      try {
        const v = JSON.parse(kv.value) as Omit<IPRecord, "ip" | "block">;
        out.push({ ip: ip!, block: b!, containerID: v.containerID, ifname: v.ifname, node: v.node });
      } catch {
        // not ours: skip
      }
    }
    return out;
  }

  async countIPs(): Promise<number> {
    return await this.etcd.count(this.k("ips", ""));
  }

  async reserve(r: IPRecord, owner: string): Promise<ReserveOutcome> {
    const ipKey = this.k("ips", r.block, r.ip);
    const handleKey = this.k("handles", r.containerID, r.ifname);
    const blockKey = this.k("blocks", r.block);
    const poolKey = this.k("pool");
    const res = await this.etcd.txn(
      [{ key: ipKey, created: false }, { key: handleKey, created: false }, { key: blockKey, value: owner }, { key: poolKey, value: this.pool }],
      [{ put: ipKey, value: recordValue(r) }, { put: handleKey, value: `${r.block}/${r.ip}` }],
      // the same round trip tells why it failed
      [{ get: handleKey }, { get: ipKey }, { get: blockKey }, { get: poolKey }],
    );
    if (res.succeeded) return { ok: true };
    const [handle, ip, owned, pool] = res.values;
    return { ok: false, ...(handle ? { handle } : {}), ipTaken: ip !== undefined, ...(owned !== undefined ? { owner: owned } : {}), ...(pool !== undefined ? { pool } : {}) };
  }

  async handle(containerID: string, ifname: string): Promise<string | undefined> {
    return await this.etcd.get(this.k("handles", containerID, ifname));
  }

  async releaseIf(containerID: string, ifname: string, held: string): Promise<boolean> {
    const handleKey = this.k("handles", containerID, ifname);
    const [block, ip] = held.split("/");
    const res = await this.etcd.txn([{ key: handleKey, value: held }], [{ del: handleKey }, { del: this.k("ips", block!, ip!) }]);
    return res.succeeded;
  }

  close(): void {}
}

/** An in-memory store with etcd's semantics, counting round trips (for unit tests). */
export class FakeClusterStore implements ClusterStore {
  roundTrips = 0;

  constructor(
    readonly pool: string = poolRecord(28),
    /** Pass another store's map to share one "etcd" between differently configured writers. */
    readonly kv = new Map<string, string>(),
  ) {}

  async createPool(): Promise<string> {
    this.roundTrips++;
    if (!this.kv.has("pool")) this.kv.set("pool", this.pool);
    return this.kv.get("pool")!;
  }

  async blocks(): Promise<Map<string, string>> {
    this.roundTrips++;
    const out = new Map<string, string>();
    for (const [k, v] of this.kv) if (k.startsWith("blocks/")) out.set(k.slice(7), v);
    return out;
  }

  async claimBlock(block: string, node: string): Promise<{ ok: boolean; pool?: string }> {
    this.roundTrips++;
    const pool = this.kv.get("pool");
    if (this.kv.has(`blocks/${block}`) || pool !== this.pool) return { ok: false, ...(pool !== undefined ? { pool } : {}) };
    this.kv.set(`blocks/${block}`, node);
    return { ok: true };
  }

  async ips(block?: string): Promise<IPRecord[]> {
    this.roundTrips++;
    const out: IPRecord[] = [];
    for (const [k, v] of this.kv) {
      if (!k.startsWith(block ? `ips/${block}/` : "ips/")) continue;
      const [, b, ip] = k.split("/");
      out.push({ ip: ip!, block: b!, ...(JSON.parse(v) as Omit<IPRecord, "ip" | "block">) });
    }
    return out;
  }

  async countIPs(): Promise<number> {
    this.roundTrips++;
    return [...this.kv.keys()].filter((k) => k.startsWith("ips/")).length;
  }

  async reserve(r: IPRecord, owner: string): Promise<ReserveOutcome> {
    this.roundTrips++;
    const ipKey = `ips/${r.block}/${r.ip}`;
    const handleKey = `handles/${r.containerID}/${r.ifname}`;
    const blockOwner = this.kv.get(`blocks/${r.block}`);
    const pool = this.kv.get("pool");
    if (!this.kv.has(ipKey) && !this.kv.has(handleKey) && blockOwner === owner && pool === this.pool) {
      this.kv.set(ipKey, recordValue(r));
      this.kv.set(handleKey, `${r.block}/${r.ip}`);
      return { ok: true };
    }
    const handle = this.kv.get(handleKey);
    return { ok: false, ...(handle ? { handle } : {}), ipTaken: this.kv.has(ipKey), ...(blockOwner !== undefined ? { owner: blockOwner } : {}), ...(pool !== undefined ? { pool } : {}) };
  }

  async handle(containerID: string, ifname: string): Promise<string | undefined> {
    this.roundTrips++;
    return this.kv.get(`handles/${containerID}/${ifname}`);
  }

  async releaseIf(containerID: string, ifname: string, held: string): Promise<boolean> {
    this.roundTrips++;
    const handleKey = `handles/${containerID}/${ifname}`;
    if (this.kv.get(handleKey) !== held) return false;
    this.kv.delete(handleKey);
    this.kv.delete(`ips/${held}`);
    return true;
  }

  close(): void {}
}
