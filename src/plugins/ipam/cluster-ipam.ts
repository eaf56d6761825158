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
import { requestedIPs, requestedShape } from "../../ipam/requested.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { decode, i64, list, object, str, wrongType, type Codec, type Decoded } from "../../spec/decode.ts";
import { netConfShape } from "../../spec/netconf.ts";
import { hasField, routesCodec } from "../common/conf.ts";
import { lockFile } from "../../sys/flock.ts";
import { CniError, ErrorCode, toCniError } from "../../spec/error.ts";
import { formatIP, parseIP } from "../../spec/ip.ts";
import type { Result, Route } from "../../spec/result.ts";
import { CURRENT_VERSION } from "../../spec/version.ts";

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

/** `etcdEndpoints`: a list of URLs, or one string of comma-separated URLs. */
const ENDPOINTS = "a list of strings or a comma-separated string";
const endpointsCodec: Codec<string[]> = {
  expected: ENDPOINTS,
  zero: () => [],
  decode(v, path, ctx) {
    if (typeof v === "string") return v.split(",");
    if (Array.isArray(v)) return list(str).decode(v, path, ctx);
    return wrongType(path, ENDPOINTS, v);
  },
};

/** The `ipam` section of cluster-ipam (cnikit's own plugin: its keys, with Go's rules as everywhere). */
export const clusterIpamIpamCodec = object({
  type: str,
  etcdEndpoints: endpointsCodec,
  etcdPrefix: str,
  etcdCAFile: str,
  etcdCertFile: str,
  etcdKeyFile: str,
  etcdUsername: str,
  etcdPassword: str,
  subnet: str,
  blockSize: i64,
  gateway: str,
  routes: routesCodec,
  nodeName: str,
  dataDir: str,
});

/** The config cluster-ipam reads: the `ipam` section and the requested addresses. */
export const clusterIpamCodec = object({ ...netConfShape, ipam: clusterIpamIpamCodec, ...requestedShape });

type IpamSection = Decoded<typeof clusterIpamIpamCodec>;

/** Options of `parseClusterIpam`. */
export interface ParseOptions {
  /**
   * DEL: keys that do not decode are dropped (and logged through `warn`), and only what finding a
   * reservation needs is checked (endpoints, prefix, pool subnet): a bad gateway, route, block
   * size or node name does not stop a release.
   */
  lenient?: boolean;
  warn?: (msg: string) => void;
}

const DEFAULT_DATA_DIR = "/var/lib/cni/cluster-ipam";

function settingsOf(ipam: IpamSection | undefined, env: Readonly<Record<string, string | undefined>>, lenient: boolean): ClusterIpamConf {
  if (!ipam) throw bad("the 'ipam' section is missing");
  const endpoints = (ipam.etcdEndpoints ?? []).map((e) => e.trim()).filter(Boolean);
  if (endpoints.length === 0) throw bad("'etcdEndpoints' is required (e.g. [\"https://10.0.0.5:2379\"])");
  for (const e of endpoints) if (!/^https?:\/\/[^/]+$/.test(e)) throw bad(`etcd endpoint ${JSON.stringify(e)} is not http(s)://host:port`);
  const gateway = ipam.gateway || undefined;
  let pool: Pool;
  try {
    pool = parsePool(ipam.subnet, ipam.blockSize, gateway);
  } catch (e) {
    // a release finds its address by handle: only the pool's subnet (its key) matters
    if (!lenient) throw e;
    pool = parsePool(ipam.subnet, undefined);
  }
  const node = ipam.nodeName || env.CNIKIT_NODE_NAME || readText("/proc/sys/kernel/hostname").trim();
  if (!lenient && !/^[A-Za-z0-9._-]{1,253}$/.test(node)) throw bad(`node name ${JSON.stringify(node)} is not a valid name`);
  const etcd: EtcdOptions = { endpoints, timeoutMs: 5000 };
  if (ipam.etcdCAFile) etcd.caFile = ipam.etcdCAFile;
  if (ipam.etcdCertFile) etcd.certFile = ipam.etcdCertFile;
  if (ipam.etcdKeyFile) etcd.keyFile = ipam.etcdKeyFile;
  if (ipam.etcdUsername) {
    etcd.username = ipam.etcdUsername;
    etcd.password = ipam.etcdPassword ?? "";
  }
  const prefix = (ipam.etcdPrefix || "/cnikit/ipam").replace(/\/+$/, "");
  if (!prefix.startsWith("/")) throw bad("'etcdPrefix' must start with /");
  const out: ClusterIpamConf = { etcd, prefix, pool, routes: ipam.routes ?? [], node, dataDir: ipam.dataDir || DEFAULT_DATA_DIR };
  if (gateway && !lenient) out.gateway = gateway;
  return out;
}

/** Decode and check the `ipam` section (wrong types: code 2; bad values: 7). */
export function parseClusterIpam(ipam: Record<string, unknown> | undefined, env: Readonly<Record<string, string | undefined>>, opts: ParseOptions = {}): ClusterIpamConf {
  const lenient = opts.lenient ?? false;
  const d = decode(object({ ipam: clusterIpamIpamCodec }), { ipam }, { where: "cluster-ipam", lenient, ...(opts.warn ? { warn: opts.warn } : {}) });
  return settingsOf(d.ipam, env, lenient);
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

const confOf = (args: CmdArgs) => parseClusterIpam(args.config.ipam, args.env);

async function add(args: CmdArgs): Promise<Result> {
  const c = confOf(args);
  const requested = requestedIPs(decode(clusterIpamCodec, args.config, { where: "cluster-ipam" }), args.args).filter((r) => r.ip.length === c.pool.net.ip.length);
  if (requested.length > 1) throw bad("only one address can be requested from one pool");
  const f = openCache(c);
  try {
    const ip = await withStore(c, (s) =>
      allocate(s, c.pool, f.cache, { containerID: args.containerId, ifname: args.ifName, node: c.node, ...(requested[0] ? { requested: requested[0].ip } : {}) }),
    );
    f.save();
    const result: Result = { cniVersion: CURRENT_VERSION, ips: [{ address: `${formatIP(ip)}/${c.pool.net.prefix}`, ...(c.gateway ? { gateway: c.gateway } : {}) }] };
    if (c.routes.length > 0) result.routes = c.routes;
    return result;
  } finally {
    f.unlock();
  }
}

/**
 * Release the attachment's address. The config is decoded leniently and only what finding the
 * reservation needs is checked; a config without endpoints or pool releases nothing (there is
 * nowhere to look). A `dataDir` that does not decode leaves the node's cache alone (etcd is the
 * truth; the cache is only a hint).
 */
async function del(args: CmdArgs): Promise<void> {
  let c: ClusterIpamConf;
  try {
    c = parseClusterIpam(args.config.ipam, args.env, { lenient: true, warn: args.log });
  } catch (e) {
    if (!(e instanceof CniError) || e.code !== ErrorCode.InvalidNetworkConfig) throw e;
    args.log(`cluster-ipam: DEL releases nothing: ${e.message}`);
    return;
  }
  const raw = args.config.ipam;
  if (hasField(clusterIpamIpamCodec, raw, "dataDir") && decode(object({ dataDir: str }), raw, { lenient: true }).dataDir === undefined) {
    await withStore(c, (s) => release(s, emptyCache(c.node), args.containerId, args.ifName));
    return;
  }
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
