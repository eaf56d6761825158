/**
 * host-local IPAM: addresses from range sets, reservations on disk in the reference's layout.
 * Keys as the reference: `ranges`, or the legacy `subnet`/`rangeStart`/`rangeEnd`/`gateway`;
 * `routes`, `dataDir`, `resolvConf`; requested addresses from `runtimeConfig.ips`, `args.cni.ips`
 * or `CNI_ARGS` `IP=`.
 */

import { allocate, describeSet } from "../../ipam/allocator.ts";
import { DEFAULT_DATA_DIR, DiskStore } from "../../ipam/disk-store.ts";
import { parseRangeSet, rangeFor, rangeSetSize, ipToBigInt, type RangeConf, type RangeSet } from "../../ipam/range.ts";
import { requestedIPs } from "../../ipam/requested.ts";
import { readResolvConf } from "../../ipam/resolv.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import { formatIP, parseIP } from "../../spec/ip.ts";
import type { NetConf } from "../../spec/netconf.ts";
import type { IPConfig, Result, Route } from "../../spec/result.ts";
import { validateCIDR, validateIP } from "../../spec/validate.ts";

/** The parsed `ipam` section. */
export interface HostLocalConf {
  name: string;
  rangeSets: RangeSet[];
  routes: Route[];
  dataDir: string;
  resolvConf?: string;
}

const bad = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);

/** Parse and check host-local's config from a plugin config. */
export function parseHostLocal(conf: NetConf): HostLocalConf {
  const ipam = conf.ipam as Record<string, unknown> | undefined;
  if (!ipam || typeof ipam !== "object") throw bad("IPAM config missing 'ipam' key");
  if (!conf.name) throw bad("IPAM config missing network name");
  const sets: RangeConf[][] = [];
  if (ipam.subnet !== undefined) {
    sets.push([{ subnet: ipam.subnet as string, rangeStart: ipam.rangeStart as string, rangeEnd: ipam.rangeEnd as string, gateway: ipam.gateway as string }]);
  }
  if (ipam.ranges !== undefined) {
    if (!Array.isArray(ipam.ranges)) throw bad("'ranges' must be a list of range sets");
    for (const s of ipam.ranges) {
      if (!Array.isArray(s)) throw bad("each entry of 'ranges' must be a list of ranges");
      sets.push(s as RangeConf[]);
    }
  }
  if (sets.length === 0) throw bad("no IP ranges specified");
  const rangeSets = sets.map((s) => parseRangeSet(s));
  for (let i = 0; i < rangeSets.length; i++) {
    for (let j = i + 1; j < rangeSets.length; j++) {
      for (const r of rangeSets[j]!) {
        if (rangeFor(rangeSets[i]!, r.start) || rangeFor(rangeSets[i]!, r.end) ||
            rangeSets[i]!.some((q) => q.start.length === r.start.length && ipToBigInt(q.start) >= ipToBigInt(r.start) && ipToBigInt(q.start) <= ipToBigInt(r.end))) {
          throw bad(`range set ${i} overlaps with ${j}`);
        }
      }
    }
  }
  const routes: Route[] = [];
  if (ipam.routes !== undefined) {
    if (!Array.isArray(ipam.routes)) throw bad("'routes' must be a list");
    for (const [i, r] of (ipam.routes as Array<Record<string, unknown>>).entries()) {
      validateCIDR(r?.dst, `routes[${i}].dst`);
      const route: Route = { dst: r.dst as string };
      if (r.gw !== undefined && r.gw !== "") {
        validateIP(r.gw, `routes[${i}].gw`);
        route.gw = r.gw as string;
      }
      routes.push(route);
    }
  }
  const dataDir = typeof ipam.dataDir === "string" && ipam.dataDir ? ipam.dataDir : DEFAULT_DATA_DIR;
  const out: HostLocalConf = { name: conf.name, rangeSets, routes, dataDir };
  if (typeof ipam.resolvConf === "string" && ipam.resolvConf) out.resolvConf = ipam.resolvConf;
  return out;
}

function add(args: CmdArgs): Result {
  const hl = parseHostLocal(args.config);
  const requested = requestedIPs(args.config, args.args);
  const store = new DiskStore(hl.dataDir, hl.name);
  const ips: IPConfig[] = [];
  const unlock = store.lock();
  try {
    const used = new Set<number>();
    for (const [i, set] of hl.rangeSets.entries()) {
      // a requested address goes to the range set that holds it
      const ri = requested.findIndex((r, k) => !used.has(k) && rangeFor(set, r.ip));
      if (ri >= 0) used.add(ri);
      const alloc = allocate(store, {
        set,
        index: i,
        containerId: args.containerId,
        ifName: args.ifName,
        ...(ri >= 0 ? { requested: requested[ri]!.ip } : {}),
      });
      ips.push({ address: `${formatIP(alloc.ip)}/${alloc.range.subnet.prefix}`, gateway: formatIP(alloc.range.gateway) });
    }
    const unused = requested.filter((_, k) => !used.has(k));
    if (unused.length > 0) {
      throw bad(`could not allocate IP ${unused.map((r) => r.text).join(", ")}: not in any range set (${hl.rangeSets.map(describeSet).join("; ")})`);
    }
  } catch (e) {
    // nothing half-done: release what this attachment got in this call
    store.releaseByID(args.containerId, args.ifName);
    throw e;
  } finally {
    unlock();
  }
  const result: Result = { cniVersion: "1.1.0", ips };
  if (hl.routes.length > 0) result.routes = hl.routes;
  if (hl.resolvConf) result.dns = readResolvConf(hl.resolvConf);
  return result;
}

function del(args: CmdArgs): void {
  const hl = parseHostLocal(args.config);
  const store = new DiskStore(hl.dataDir, hl.name);
  const unlock = store.lock();
  try {
    store.releaseByID(args.containerId, args.ifName);
  } finally {
    unlock();
  }
}

function check(args: CmdArgs): void {
  const hl = parseHostLocal(args.config);
  const store = new DiskStore(hl.dataDir, hl.name);
  const held = store.getByID(args.containerId, args.ifName);
  if (held.length === 0) throw new CniError(ErrorCode.Internal, `host-local: failed to find address added by container ${args.containerId}`);
  // every address of the cached result must still be reserved for this attachment
  for (const ip of args.prevResult?.ips ?? []) {
    const addr = formatIP(parseIP(ip.address.split("/")[0]!)!);
    if (hl.rangeSets.some((s) => rangeFor(s, parseIP(addr)!)) && !held.includes(addr)) {
      throw new CniError(ErrorCode.Internal, `host-local: address ${addr} is not reserved for container ${args.containerId}`);
    }
  }
}

function gc(args: CmdArgs): void {
  const hl = parseHostLocal(args.config);
  const valid = new Set((args.validAttachments ?? []).map((a) => `${a.containerID}\u0000${a.ifname}`));
  const store = new DiskStore(hl.dataDir, hl.name);
  const unlock = store.lock();
  try {
    for (const r of store.list()) {
      const keep = valid.has(`${r.containerId}\u0000${r.ifName}`) || (r.ifName === "" && [...valid].some((v) => v.startsWith(`${r.containerId}\u0000`)));
      if (!keep) store.release(r.ip);
    }
  } finally {
    unlock();
  }
}

function status(args: CmdArgs): void {
  const hl = parseHostLocal(args.config);
  const store = new DiskStore(hl.dataDir, hl.name);
  const reserved = store.list().map((r) => parseIP(r.ip)!);
  for (const set of hl.rangeSets) {
    const used = BigInt(reserved.filter((ip) => { const r = rangeFor(set, ip); return r && ipToBigInt(ip) !== ipToBigInt(r.gateway); }).length);
    if (used >= rangeSetSize(set)) {
      throw new CniError(ErrorCode.PluginNotAvailable, `host-local: range set ${describeSet(set)} is exhausted (${used} addresses reserved)`);
    }
  }
}

/** The host-local plugin. */
export const hostLocal: Plugin = { add, del, check, gc, status };
export default hostLocal;
