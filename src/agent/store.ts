/**
 * The agent's view of etcd (v3, through the `etcd3` client, loaded lazily): the network config at
 * `<prefix>/config`, subnet leases under `<prefix>/subnets/` taken with a compare-and-create
 * transaction attached to an etcd lease (kept alive by the client), and a watch on them.
 */

import type { Etcd3, Lease } from "etcd3";
import { connectEtcd, type EtcdOptions } from "../ipam/etcd.ts";
import { CniError, ErrorCode } from "../spec/error.ts";
import { formatCIDR, type IPNet } from "../spec/ip.ts";
import { decodeLease, encodeLease, leaseKey, subnetsOfKey, type LeaseAttrs, type LeaseSubnets } from "./lease.ts";
import { parseNetworkConfig, type NetworkConfig } from "./netconfig.ts";

export { connectEtcd, type EtcdOptions };

/** A lease as listed. */
export interface SubnetLease {
  key: string;
  /** Its IPv4 subnet (none on an IPv6-only network). */
  subnet?: IPNet;
  /** A dual-stack or IPv6-only node's IPv6 subnet. */
  subnet6?: IPNet;
  attrs: LeaseAttrs;
}

function toLease(key: string, s: LeaseSubnets, value: string): SubnetLease {
  return { key, ...(s.v4 ? { subnet: s.v4 } : {}), ...(s.v6 ? { subnet6: s.v6 } : {}), attrs: decodeLease(value) };
}

/** Leases and config of one network prefix. */
export class LeaseStore {
  private lease: Lease | undefined;

  constructor(
    readonly client: Etcd3,
    readonly prefix: string,
  ) {}

  /** The network config; a clear error when it is missing. */
  async getConfig(): Promise<NetworkConfig> {
    const text = await this.client.get(`${this.prefix}/config`).string();
    if (text === null) {
      throw new CniError(ErrorCode.TryAgainLater, `no network config at ${this.prefix}/config in etcd (put one, e.g. {"Network":"10.244.0.0/16"})`);
    }
    return parseNetworkConfig(text);
  }

  /**
   * Write the network config only if etcd has none (a transaction comparing the key's create
   * revision with 0: never overwrites, also when several nodes try at once); true when this call
   * wrote it.
   */
  async createConfig(text: string): Promise<boolean> {
    const key = Buffer.from(`${this.prefix}/config`);
    // etcd's CompareTarget CREATE = 1, CompareResult EQUAL = 0
    const res = await this.client.kv.txn({
      compare: [{ key, target: 1, result: 0, create_revision: 0 }],
      success: [{ request_put: { key, value: Buffer.from(text) } }],
      failure: [],
    });
    return res.succeeded;
  }

  /** Every lease under the prefix (values that do not parse are skipped). */
  async listLeases(): Promise<SubnetLease[]> {
    return (await this.listLeasesAt()).leases;
  }

  /** Every lease under the prefix and the etcd revision they were read at. */
  async listLeasesAt(): Promise<{ leases: SubnetLease[]; revision: string }> {
    const res = await this.client.getAll().prefix(`${this.prefix}/subnets/`).exec();
    const leases: SubnetLease[] = [];
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      const subnets = subnetsOfKey(this.prefix, key);
      if (!subnets) continue;
      try {
        leases.push(toLease(key, subnets, kv.value.toString()));
      } catch {
        // a foreign or broken value: not a peer we can program
      }
    }
    return { leases, revision: String(res.header.revision) };
  }

  private async etcdLease(ttlSec: number): Promise<string> {
    if (!this.lease) {
      this.lease = this.client.lease(ttlSec, { autoKeepAlive: true });
      this.lease.on("lost", () => {
        this.lease = undefined; // the next write takes a new one
      });
    }
    return await this.lease.grant();
  }

  /**
   * Take the subnets if nobody holds them (compare-and-create); true when they are ours now.
   * With `unchangedSince` (the revision the leases were listed at) it also fails when any lease
   * was written since: a dual-stack key names both subnets, so two nodes picking the same IPv6
   * subnet (or the same IPv4 one) with a different other half would otherwise both succeed.
   */
  async acquire(s: LeaseSubnets, attrs: LeaseAttrs, ttlSec: number, unchangedSince?: string): Promise<boolean> {
    const key = leaseKey(this.prefix, s.v4, s.v6);
    const id = await this.etcdLease(ttlSec);
    // etcd's CompareTarget CREATE = 1, MOD = 2; CompareResult EQUAL = 0, LESS = 2
    const compare: object[] = [{ key: Buffer.from(key), target: 1, result: 0, create_revision: 0 }];
    if (unchangedSince !== undefined) {
      // every key in [<prefix>/subnets/, <prefix>/subnets0) last modified before the listing
      compare.push({
        key: Buffer.from(`${this.prefix}/subnets/`),
        range_end: Buffer.from(`${this.prefix}/subnets0`),
        target: 2,
        result: 2,
        mod_revision: String(BigInt(unchangedSince) + 1n),
      });
    }
    const res = await this.client.kv.txn({
      compare,
      success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(encodeLease(attrs)), lease: id } }],
      failure: [],
    });
    return res.succeeded;
  }

  /** Rewrite our own lease (same subnets) with new attributes and our current etcd lease. */
  async renew(s: LeaseSubnets, attrs: LeaseAttrs, ttlSec: number): Promise<void> {
    const id = await this.etcdLease(ttlSec);
    await this.client.put(leaseKey(this.prefix, s.v4, s.v6)).value(encodeLease(attrs)).lease(id);
  }

  /** Remove a lease key. */
  async remove(key: string): Promise<void> {
    await this.client.delete().key(key);
  }

  /** Watch the leases; returns a function that stops the watch. */
  async watch(handlers: {
    put: (l: SubnetLease) => void;
    del: (s: LeaseSubnets) => void;
    reconnected: () => void;
    /** The server canceled the watch (its revision was compacted away): it is dead, start anew. */
    canceled: (e: Error) => void;
    error: (e: Error) => void;
  }): Promise<() => Promise<void>> {
    const w = await this.client.watch().prefix(`${this.prefix}/subnets/`).create();
    let lost = false;
    w.on("put", (kv) => {
      const key = kv.key.toString();
      const subnets = subnetsOfKey(this.prefix, key);
      if (!subnets) return;
      try {
        handlers.put(toLease(key, subnets, kv.value.toString()));
      } catch (e) {
        handlers.error(e as Error);
      }
    });
    w.on("delete", (kv) => {
      const subnets = subnetsOfKey(this.prefix, kv.key.toString());
      if (subnets) handlers.del(subnets);
    });
    w.on("disconnected", (e) => {
      lost = true;
      handlers.error(e);
    });
    w.on("error", (e) => (/Watcher canceled/i.test(e.message) ? handlers.canceled(e) : handlers.error(e)));
    w.on("connected", () => {
      if (lost) {
        lost = false;
        handlers.reconnected(); // events may have been missed (or compacted): resync from a full read
      }
    });
    return async () => {
      await w.cancel();
    };
  }

  /** Close the client (the etcd lease is left to expire, so a restart can take it back). */
  close(): void {
    this.lease?.release();
    this.client.close();
  }
}

/** "10.244.3.0/24" for a subnet. */
export const subnetString = (s: IPNet): string => formatCIDR(s);
