/**
 * host-local IPAM: addresses from range sets, reservations on disk in the reference's layout.
 * Keys as the reference, decoded with Go's rules: `ranges`, or the legacy `subnet`/`rangeStart`/
 * `rangeEnd`/`gateway`; `routes`, `dataDir`, `resolvConf`; the `ipRanges` capability (range sets
 * placed before the config's); requested addresses from `runtimeConfig.ips`, `args.cni.ips` or
 * `CNI_ARGS` `IP=`.
 */

import { allocate, describeSet } from "../../ipam/allocator.ts";
import { DEFAULT_DATA_DIR, DiskStore } from "../../ipam/disk-store.ts";
import { parseRangeSet, rangeCodec, rangeFor, rangeSetCodec, rangeSetSize, type RangeConf, type RangeSet } from "../../ipam/range.ts";
import { requestedIPs, requestedShape } from "../../ipam/requested.ts";
import { readResolvConf } from "../../ipam/resolv.ts";
import { pluginConf } from "../../skel/conf.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { decode, list, object, str, type Decoded } from "../../spec/decode.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import { formatIP, ipToBigInt, parseIP } from "../../spec/ip.ts";
import { netConfShape, type NetConf } from "../../spec/netconf.ts";
import type { IPConfig, Result, Route } from "../../spec/result.ts";
import { hasField, routesCodec } from "../common/conf.ts";
import { CURRENT_VERSION } from "../../spec/version.ts";

/** The parsed `ipam` section. */
export interface HostLocalConf {
  name: string;
  rangeSets: RangeSet[];
  routes: Route[];
  dataDir: string;
  resolvConf?: string;
}

/**
 * The `ipam` section as the reference decodes it (`IPAMConfig`): the legacy single range
 * (`subnet`, `rangeStart`, `rangeEnd`, `gateway`, Go's embedded `*Range`), `ranges`, `routes`,
 * `dataDir`, `resolvConf`.
 */
export const hostLocalIpamCodec = object({
  ...rangeCodec.shape,
  name: str,
  type: str,
  routes: routesCodec,
  dataDir: str,
  resolvConf: str,
  ranges: list(rangeSetCodec),
});

/**
 * The config host-local reads (the reference's `Net`): the network name, the `ipam` section, the
 * `ipRanges` and `ips` capabilities and `args.cni.ips`.
 */
export const hostLocalCodec = object({
  ...netConfShape,
  ipam: hostLocalIpamCodec,
  runtimeConfig: object({ ...requestedShape.runtimeConfig.shape, ipRanges: list(rangeSetCodec) }),
  args: requestedShape.args,
});

type HostLocalNet = Decoded<typeof hostLocalCodec>;

const bad = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, `host-local: ${msg}`);

/** host-local's settings from its decoded config, with the reference's checks. */
function settingsOf(n: HostLocalNet): HostLocalConf {
  const ipam = n.ipam;
  if (!ipam) throw bad("IPAM config missing 'ipam' key");
  if (!n.name) throw bad("IPAM config missing network name");
  // as the reference: the ipRanges capability, then the legacy single range, then `ranges`
  const sets: RangeConf[][] = [...(n.runtimeConfig?.ipRanges ?? [])];
  if (ipam.subnet !== undefined) sets.push([{ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }]);
  sets.push(...(ipam.ranges ?? []));
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
  const out: HostLocalConf = { name: n.name, rangeSets, routes: ipam.routes ?? [], dataDir: ipam.dataDir || DEFAULT_DATA_DIR };
  if (ipam.resolvConf) out.resolvConf = ipam.resolvConf;
  return out;
}

/** Decode and check host-local's config from a plugin config (wrong types: code 2; bad values: 7). */
export function parseHostLocal(conf: NetConf): HostLocalConf {
  return settingsOf(decode(hostLocalCodec, conf, { where: "host-local" }));
}

function add(args: CmdArgs): Result {
  const n = decode(hostLocalCodec, args.config, { where: "host-local" });
  const hl = settingsOf(n);
  const requested = requestedIPs(n, args.args);
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
  const result: Result = { cniVersion: CURRENT_VERSION, ips };
  if (hl.routes.length > 0) result.routes = hl.routes;
  if (hl.resolvConf) result.dns = readResolvConf(hl.resolvConf);
  return result;
}

/**
 * Release what the attachment holds. Only the network name (checked by the skel) and `dataDir`
 * matter: the rest of the config is decoded leniently and not checked, so a config ADD accepted,
 * or one whose ranges no longer parse, still releases the reservation. A `dataDir` that does not
 * decode releases nothing (the reservation is not in the default directory).
 */
function del(args: CmdArgs): void {
  const n = pluginConf(args, hostLocalCodec, "host-local");
  if (!n.name || !n.ipam) return; // no ipam section: nothing says where reservations are
  if (n.ipam.dataDir === undefined && hasField(hostLocalIpamCodec, args.config.ipam, "dataDir")) {
    args.log("host-local: DEL releases nothing: ipam.dataDir does not decode");
    return;
  }
  const store = new DiskStore(n.ipam.dataDir || DEFAULT_DATA_DIR, n.name);
  if (store.getByID(args.containerId, args.ifName).length === 0) return; // nothing held: nothing to lock or create
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
