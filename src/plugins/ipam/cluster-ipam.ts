/**
 * cluster-ipam: addresses from one cluster-wide pool kept in etcd, for networks that span nodes
 * without a subnet per node. The pool is cut into blocks that nodes claim (affinity), so a node
 * usually allocates from its own blocks in one etcd transaction; reservations are keyed by
 * container id and ifname; DEL releases; GC releases this node's reservations the runtime no longer
 * knows; STATUS fails when etcd is unreachable or the pool is exhausted.
 *
 * Config (`ipam`): `etcdEndpoints` (list or comma string), `etcdPrefix` (default `/cnikit/ipam`),
 * `etcdCAFile` / `etcdCertFile` / `etcdKeyFile`, `etcdUsername` / `etcdPassword`, `subnet` (the
 * pool), `blockSize` (block prefix length, default 26 for IPv4, 122 for IPv6; a block holds at
 * most 2^16 addresses; every node of a pool must use the same one, which the first block claim
 * records in etcd), `gateway`, `routes`, `nodeName` (default `$CNIKIT_NODE_NAME`, else the host
 * name), `dataDir` (the node's cache, default `/var/lib/cni/cluster-ipam`). Requested addresses as
 * host-local takes them. Blocks stay claimed by their node when they empty.
 */

import { makeDir, readText, renameFile, writeText } from "../../sys/file.ts";
import { joinPath as join } from "../../sys/path.ts";
import { allocate, emptyCache, release, type NodeCache } from "../../ipam/cluster/allocate.ts";
import { parsePool, poolCapacity, poolKey, type Pool } from "../../ipam/cluster/pool.ts";
import { EtcdGateway } from "../../ipam/cluster/gateway.ts";
import { EtcdClusterStore, poolRecord, type ClusterStore } from "../../ipam/cluster/store.ts";
import type { EtcdOptions } from "../../ipam/etcd.ts";
import { requestedIPs } from "../../ipam/requested.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { lockFile } from "../../sys/flock.ts";
import { CniError, ErrorCode, toCniError } from "../../spec/error.ts";
import { formatIP, parseIP } from "../../spec/ip.ts";
import type { Result, Route } from "../../spec/result.ts";
import { validateCIDR, validateIP } from "../../spec/validate.ts";

/** The parsed `ipam` section. */
export interface ClusterIpamConf {
  etcd: EtcdOptions;
  prefix: string;
  pool: Pool;
  gateway?: string;
  routes: Route[];
  node: string;
  dataDir: string;
}

const bad = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, `cluster-ipam: ${msg}`);
const str = (v: unknown, key: string): string | undefined => {
  if (v === undefined || v === "") return undefined;
  if (typeof v !== "string") throw bad(`'${key}' must be a string`);
  return v;
};

/** Parse and check the config. */
export function parseClusterIpam(ipam: Record<string, unknown> | undefined, env: Readonly<Record<string, string | undefined>>): ClusterIpamConf {
  if (!ipam || typeof ipam !== "object") throw bad("the 'ipam' section is missing");
  const ep = ipam.etcdEndpoints;
  const endpoints = (Array.isArray(ep) ? ep : typeof ep === "string" ? ep.split(",") : []).map((e) => String(e).trim()).filter(Boolean);
  if (endpoints.length === 0) throw bad("'etcdEndpoints' is required (e.g. [\"https://10.0.0.5:2379\"])");
  for (const e of endpoints) if (!/^https?:\/\/[^/]+$/.test(e)) throw bad(`etcd endpoint ${JSON.stringify(e)} is not http(s)://host:port`);
  const pool = parsePool(ipam.subnet, ipam.blockSize, ipam.gateway);
  const routes: Route[] = [];
  if (ipam.routes !== undefined) {
    if (!Array.isArray(ipam.routes)) throw bad("'routes' must be a list");
    for (const [i, r] of (ipam.routes as Array<Record<string, unknown>>).entries()) {
      validateCIDR(r?.dst, `routes[${i}].dst`);
      if (r.gw !== undefined) validateIP(r.gw, `routes[${i}].gw`);
      routes.push({ dst: r.dst as string, ...(r.gw ? { gw: r.gw as string } : {}) });
    }
  }
  const node = str(ipam.nodeName, "nodeName") ?? env.CNIKIT_NODE_NAME ?? readText("/proc/sys/kernel/hostname").trim();
  if (!/^[A-Za-z0-9._-]{1,253}$/.test(node)) throw bad(`node name ${JSON.stringify(node)} is not a valid name`);
  const etcd: EtcdOptions = { endpoints, timeoutMs: 5000 };
  const ca = str(ipam.etcdCAFile, "etcdCAFile");
  const cert = str(ipam.etcdCertFile, "etcdCertFile");
  const key = str(ipam.etcdKeyFile, "etcdKeyFile");
  const user = str(ipam.etcdUsername, "etcdUsername");
  if (ca) etcd.caFile = ca;
  if (cert) etcd.certFile = cert;
  if (key) etcd.keyFile = key;
  if (user) {
    etcd.username = user;
    etcd.password = str(ipam.etcdPassword, "etcdPassword") ?? "";
  }
  const prefix = (str(ipam.etcdPrefix, "etcdPrefix") ?? "/cnikit/ipam").replace(/\/+$/, "");
  if (!prefix.startsWith("/")) throw bad("'etcdPrefix' must start with /");
  const out: ClusterIpamConf = { etcd, prefix, pool, routes, node, dataDir: str(ipam.dataDir, "dataDir") ?? "/var/lib/cni/cluster-ipam" };
  const gw = str(ipam.gateway, "gateway");
  if (gw) out.gateway = gw;
  return out;
}

/** The node's cache file for a pool, locked while an invocation uses it. */
function openCache(c: ClusterIpamConf) {
  makeDir(c.dataDir, { recursive: true, mode: 0o755 });
  const file = join(c.dataDir, `${poolKey(c.pool)}.json`);
  const lock = lockFile(`${file}.lock`);
  let cache: NodeCache;
  try {
    cache = JSON.parse(readText(file)) as NodeCache;
    if (cache.node !== c.node || !Array.isArray(cache.blocks)) cache = emptyCache(c.node);
  } catch {
    cache = emptyCache(c.node); // none yet, or unreadable: it is only a hint
  }
  return {
    cache,
    save() {
      const tmp = `${file}.tmp-${process.pid}`;
      writeText(tmp, JSON.stringify(cache));
      renameFile(tmp, file);
    },
    unlock: () => lock.unlock(),
  };
}

async function withStore<T>(c: ClusterIpamConf, fn: (s: ClusterStore) => Promise<T>): Promise<T> {
  let store: ClusterStore | undefined;
  try {
    store = new EtcdClusterStore(new EtcdGateway(c.etcd), `${c.prefix}/${poolKey(c.pool)}`, poolRecord(c.pool.blockLen));
    return await fn(store);
  } catch (e) {
    if (e instanceof CniError) throw e;
    const msg = (e as Error).message;
    throw new CniError(ErrorCode.TryAgainLater, `cluster-ipam: etcd (${c.etcd.endpoints.join(",")}): ${msg}`);
  } finally {
    store?.close();
  }
}

const confOf = (args: CmdArgs) => parseClusterIpam(args.config.ipam as Record<string, unknown> | undefined, args.env);

async function add(args: CmdArgs): Promise<Result> {
  const c = confOf(args);
  const requested = requestedIPs(args.config, args.args).filter((r) => r.ip.length === c.pool.net.ip.length);
  if (requested.length > 1) throw bad("only one address can be requested from one pool");
  const f = openCache(c);
  try {
    const ip = await withStore(c, (s) =>
      allocate(s, c.pool, f.cache, { containerID: args.containerId, ifname: args.ifName, node: c.node, ...(requested[0] ? { requested: requested[0].ip } : {}) }),
    );
    f.save();
    const result: Result = { cniVersion: "1.1.0", ips: [{ address: `${formatIP(ip)}/${c.pool.net.prefix}`, ...(c.gateway ? { gateway: c.gateway } : {}) }] };
    if (c.routes.length > 0) result.routes = c.routes;
    return result;
  } finally {
    f.unlock();
  }
}

async function del(args: CmdArgs): Promise<void> {
  const c = confOf(args);
  const f = openCache(c);
  try {
    await withStore(c, (s) => release(s, f.cache, args.containerId, args.ifName));
    f.save();
  } finally {
    f.unlock();
  }
}

async function check(args: CmdArgs): Promise<void> {
  const c = confOf(args);
  const held = await withStore(c, (s) => s.handle(args.containerId, args.ifName));
  if (!held) throw new CniError(ErrorCode.Internal, `cluster-ipam: no address is reserved for ${args.containerId}/${args.ifName}`);
  const ip = held.split("/")[1]!;
  for (const r of args.prevResult?.ips ?? []) {
    const a = parseIP(r.address.split("/")[0]!);
    if (a && a.length === c.pool.net.ip.length && formatIP(a) !== ip) {
      throw new CniError(ErrorCode.Internal, `cluster-ipam: ${args.containerId}/${args.ifName} holds ${ip}, not ${formatIP(a)}`);
    }
  }
}

async function gc(args: CmdArgs): Promise<void> {
  const c = confOf(args);
  const valid = new Set((args.validAttachments ?? []).map((a) => `${a.containerID}/${a.ifname}`));
  const f = openCache(c);
  try {
    await withStore(c, async (s) => {
      for (const r of await s.ips()) {
        if (r.node !== c.node || valid.has(`${r.containerID}/${r.ifname}`)) continue; // only this node's
        await release(s, f.cache, r.containerID, r.ifname);
      }
    });
    f.save();
  } finally {
    f.unlock();
  }
}

async function status(args: CmdArgs): Promise<void> {
  const c = confOf(args);
  let used: number;
  try {
    used = await withStore(c, (s) => s.countIPs());
  } catch (e) {
    throw new CniError(ErrorCode.PluginNotAvailable, toCniError(e).message);
  }
  if (BigInt(used) >= poolCapacity(c.pool)) throw new CniError(ErrorCode.PluginNotAvailable, `cluster-ipam: pool ${poolKey(c.pool)} is exhausted (${used} addresses reserved)`);
}

/** The cluster-ipam plugin. */
export const clusterIpam: Plugin = { add, del, check, gc, status };
export default clusterIpam;
