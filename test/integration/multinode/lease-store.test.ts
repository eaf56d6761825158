/**
 * The agent's lease store against a real etcd (on loopback of this test's private namespace): a
 * dual-stack lease is taken only when no lease was written since the leases were listed, so two
 * nodes cannot end up with the same IPv6 (or IPv4) subnet under keys that differ in the other half.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Etcd3 } from "etcd3";
import { leaseKey, type LeaseAttrs } from "../../../src/agent/lease.ts";
import { LeaseStore } from "../../../src/agent/store.ts";
import { parseCIDR } from "../../../src/spec/ip.ts";
import { loopbackEtcd } from "../../support/cluster.ts";
import { assertPrivateNetns, must, runPrefix, tempDir } from "../../support/netns.ts";

assertPrivateNetns();

const prefix = `/${runPrefix("ls")}/network`;
const tmp = tempDir("lease-store");
let etcd: Etcd3;
let stopEtcd: (() => Promise<void>) | undefined;
let store: LeaseStore;

const attrs = (ip: string): LeaseAttrs => ({ publicIP: ip, backendType: "host-gw" });
const net = (cidr: string) => parseCIDR(cidr)!;
const s = (v4: string, v6: string) => ({ v4: net(v4), v6: net(v6) });

beforeAll(async () => {
  must(["ip", "link", "set", "lo", "up"]);
  ({ etcd, stop: stopEtcd } = await loopbackEtcd(tmp.path, 24330));
  store = new LeaseStore(etcd, prefix);
}, 30_000);
afterAll(async () => {
  await stopEtcd?.();
  tmp.remove();
});

describe("lease store", () => {
  test("a node that listed before another took the same IPv6 subnet (other IPv4 subnet) does not get it; after a new listing it gets a free one", async () => {
    const seen = await store.listLeasesAt();
    expect(seen.leases).toEqual([]);
    // another node wins the race for fd96:0:0:5::/64 with 10.96.1.0/24
    expect(await store.acquire(s("10.96.1.0/24", "fd96:0:0:5::/64"), attrs("192.168.1.1"), 60, seen.revision)).toBe(true);
    // our pick from the old listing: same IPv6 subnet, another IPv4 one, so another key
    const ours = s("10.96.2.0/24", "fd96:0:0:5::/64");
    expect(leaseKey(prefix, ours.v4, ours.v6)).not.toBe(leaseKey(prefix, net("10.96.1.0/24"), net("fd96:0:0:5::/64")));
    expect(await store.acquire(ours, attrs("192.168.1.2"), 60, seen.revision)).toBe(false);
    const now = await store.listLeasesAt();
    expect(now.leases.map((l) => l.attrs.publicIP)).toEqual(["192.168.1.1"]);
    expect(await store.acquire(s("10.96.2.0/24", "fd96:0:0:6::/64"), attrs("192.168.1.2"), 60, now.revision)).toBe(true);
    const after = await store.listLeasesAt();
    expect(after.leases.map((l) => `${l.attrs.publicIP} ${l.key.slice(prefix.length)}`).sort()).toEqual([
      "192.168.1.1 /subnets/10.96.1.0-24&fd96:0:0:5::-64",
      "192.168.1.2 /subnets/10.96.2.0-24&fd96:0:0:6::-64",
    ]);
  });

  test("the same for IPv4: a lease taken since the listing with the same IPv4 subnet (other IPv6 one) blocks ours", async () => {
    const seen = await store.listLeasesAt();
    expect(await store.acquire(s("10.96.3.0/24", "fd96:0:0:7::/64"), attrs("192.168.1.3"), 60, seen.revision)).toBe(true);
    expect(await store.acquire(s("10.96.3.0/24", "fd96:0:0:8::/64"), attrs("192.168.1.4"), 60, seen.revision)).toBe(false);
  });

  test("a key that exists is never taken over, with or without the guard; a change outside the subnets does not block", async () => {
    const taken = s("10.96.1.0/24", "fd96:0:0:5::/64");
    expect(await store.acquire(taken, attrs("192.168.1.9"), 60)).toBe(false);
    expect(await store.acquire(taken, attrs("192.168.1.9"), 60, (await store.listLeasesAt()).revision)).toBe(false);
    const seen = await store.listLeasesAt();
    await etcd.put(`${prefix}/config`).value("{}");
    await etcd.put(`${prefix}/subnets0`).value("x"); // just past the range the guard covers
    expect(await store.acquire(s("10.96.9.0/24", "fd96:0:0:9::/64"), attrs("192.168.1.5"), 60, seen.revision)).toBe(true);
  });
});
