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
  subnet: IPNet;
  /** A dual-stack node's IPv6 subnet. */
  subnet6?: IPNet;
  attrs: LeaseAttrs;
}

function toLease(key: string, s: LeaseSubnets, value: string): SubnetLease {
  return { key, subnet: s.v4, ...(s.v6 ? { subnet6: s.v6 } : {}), attrs: decodeLease(value) };
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

  /** Every lease under the prefix (values that do not parse are skipped). */
  async listLeases(): Promise<SubnetLease[]> {
    const all = await this.client.getAll().prefix(`${this.prefix}/subnets/`).strings();
    const out: SubnetLease[] = [];
    for (const [key, value] of Object.entries(all)) {
      const subnets = subnetsOfKey(this.prefix, key);
      if (!subnets) continue;
      try {
        out.push(toLease(key, subnets, value));
      } catch {
        // a foreign or broken value: not a peer we can program
      }
    }
    return out;
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

  /** Take the subnets if nobody holds them (compare-and-create); true when they are ours now. */
  async acquire(s: LeaseSubnets, attrs: LeaseAttrs, ttlSec: number): Promise<boolean> {
    const key = leaseKey(this.prefix, s.v4, s.v6);
    const id = await this.etcdLease(ttlSec);
    const res = await this.client.if(key, "Create", "==", 0).then(this.client.put(key).value(encodeLease(attrs)).lease(id)).commit();
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
