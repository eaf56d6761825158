/**
 * sbr: source-based routing for one pod interface, as the reference does it: for each of its
 * addresses a table of its own (the first from 100 that nothing uses, or the configured `table`
 * for all of them), a rule "from ADDR lookup TABLE", a default route in TABLE (via the address's
 * gateway, or the static one of its family from `gateways`) and a copy
 * of the interface's main-table routes; then those routes leave the main table.
 * A chained plugin: it needs a prevResult and passes it on.
 */

import { NetlinkConn } from "../../netlink/conn.ts";
import { listAddresses } from "../../net/addr.ts";
import { findLink, getLink } from "../../net/link.ts";
import { addRoute, deleteRoute, listRoutes, type Route, type RouteSpec } from "../../net/route.ts";
import { addRule, deleteRule, listRules } from "../../net/rule.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { CniError, ErrorCode, toCniError } from "../../spec/error.ts";
import { bool, decode, i64, list, object, str } from "../../spec/decode.ts";
import { formatIP, parseCIDR, parseIP } from "../../spec/ip.ts";
import { netConfShape, type NetConf } from "../../spec/netconf.ts";
import type { IPConfig, Result } from "../../spec/result.ts";

/** The first table sbr considers, as the reference. */
export const FIRST_TABLE = 100;

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);
const internal = (msg: string) => new CniError(ErrorCode.Internal, msg);

/** The addresses of prevResult that belong to `ifName` (those naming no interface count too). */
export function addressesOf(prev: Result, ifName: string): IPConfig[] {
  return (prev.ips ?? []).filter((ip) => ip.interface === undefined || prev.interfaces?.[ip.interface]?.name === ifName);
}

/** "10.1.2.3/24" -> "10.1.2.3/32" (or /128): a rule matches one source address. */
function hostPrefix(cidr: string): string {
  const n = parseCIDR(cidr)!;
  return `${formatIP(n.ip)}/${n.ip.length * 8}`;
}

function normIP(s: string | undefined): string | undefined {
  if (!s) return undefined;
  const n = parseCIDR(`${s}/0`);
  return n ? formatIP(n.ip) : s;
}

/**
 * sbr's config as the reference decodes it (`PluginConf`): `table`, `gateways` (one static gateway
 * per family, used instead of the addresses' own), `addSourceHints` (refused while cnikit does not
 * have it, code 2).
 */
export const sbrCodec = object({ ...netConfShape, table: i64, gateways: list(str), addSourceHints: bool });

/** sbr's settings after the reference's checks. */
export interface SbrConf {
  /** One table for every address; otherwise a free one from FIRST_TABLE per address. */
  table?: number;
  /** Static gateways by family, canonical text. */
  gateways: { 4?: string; 6?: string };
}

/** Decode sbr's keys with Go's rules (wrong types: code 2) and check them (code 7). */
export function parseSbrConf(conf: NetConf): SbrConf {
  const d = decode(sbrCodec, conf, { where: "sbr" });
  if (d.addSourceHints) throw new CniError(ErrorCode.UnsupportedField, "sbr: 'addSourceHints' is not supported yet; leave it false");
  const out: SbrConf = { gateways: {} };
  const t = d.table;
  if (t !== undefined) {
    if (t < 1 || t > 0xfffffffe || t === 253 || t === 254 || t === 255) throw invalid(`sbr: invalid table ${t} (an unused routing table id)`);
    out.table = t;
  }
  const gws = d.gateways ?? [];
  if (gws.length > 2) throw invalid("sbr: gateways list cannot contain more than 2 entries (one IPv4, one IPv6)");
  for (const g of gws) {
    const ip = parseIP(g.trim());
    if (!ip) throw invalid(`sbr: invalid static gateway IP address: ${g}`);
    const v = ip.length === 4 ? 4 : 6;
    if (out.gateways[v]) throw invalid(`sbr: gateways list contains multiple IPv${v} addresses: ${out.gateways[v]} and ${g}`);
    out.gateways[v] = formatIP(ip);
  }
  return out;
}

/** The gateway of an address's default route: the static one of its family, else its own. */
function gatewayFor(conf: SbrConf, ip: IPConfig): string | undefined {
  return conf.gateways[ip.address.includes(":") ? 6 : 4] ?? ip.gateway;
}

function freeTable(pod: NetlinkConn): number {
  const used = new Set<number>([...listRules(pod).map((r) => r.table), ...listRoutes(pod, { table: 0 }).map((r) => r.table)]);
  let t = FIRST_TABLE;
  while (used.has(t)) t++;
  return t;
}

function specOf(r: Route, table: number): RouteSpec {
  const s: RouteSpec = { dst: r.dst, table, scope: r.scope, protocol: r.protocol, type: r.type };
  if (r.oif !== undefined) s.link = r.oif;
  if (r.gateway) s.gateway = r.gateway;
  if (r.priority !== undefined) s.priority = r.priority;
  if (r.prefsrc) s.src = r.prefsrc;
  if (r.mtu !== undefined) s.mtu = r.mtu;
  if (r.advmss !== undefined) s.advmss = r.advmss;
  return s;
}

function openPod(netns: string): NetlinkConn {
  try {
    return NetlinkConn.open({ netns });
  } catch (e) {
    throw new CniError(ErrorCode.UnknownContainer, `failed to open netns "${netns}": ${(e as Error).message}`);
  }
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseSbrConf(args.config);
  const prev = args.prevResult;
  if (!prev) throw invalid("sbr: this plugin must be called as a chained plugin (prevResult missing)");
  const ips = addressesOf(prev, args.ifName);
  if (ips.length === 0) throw invalid(`sbr: no IP addresses supplied on interface ${args.ifName}`);
  const pod = openPod(args.netns);
  const rules: Array<{ src: string; table: number }> = [];
  const copied: RouteSpec[] = [];
  const removed: Route[] = [];
  try {
    const link = getLink(pod, args.ifName);
    const main = listRoutes(pod, { link: link.index });
    for (const ip of ips) {
      const table = conf.table ?? freeTable(pod);
      const src = hostPrefix(ip.address);
      addRule(pod, { src, table });
      rules.push({ src, table });
      const gateway = gatewayFor(conf, ip);
      if (gateway) {
        const gw: RouteSpec = { dst: "default", gateway, link: link.index, table };
        addRoute(pod, gw, { replace: true });
        copied.push(gw);
      }
      for (const r of main) {
        // as the reference: copy a route only when its gateway and source fit this address
        if (r.gateway && r.gateway !== normIP(ip.gateway)) continue;
        if (r.prefsrc && r.prefsrc !== normIP(ip.address.split("/")[0])) continue;
        const spec = specOf(r, table);
        addRoute(pod, spec, { replace: true });
        copied.push(spec);
      }
    }
    for (const r of main) {
      deleteRoute(pod, specOf(r, r.table));
      removed.push(r);
    }
  } catch (e) {
    // no half-done routing: rules and copies removed, the main table as it was
    for (const rule of rules) deleteRule(pod, rule);
    for (const spec of copied) {
      try {
        deleteRoute(pod, spec);
      } catch {
        // best effort
      }
    }
    for (const r of removed) {
      try {
        addRoute(pod, specOf(r, r.table), { replace: true });
      } catch {
        // best effort
      }
    }
    throw toCniError(e);
  } finally {
    pod.close();
  }
  return structuredClone(prev);
}

/**
 * Remove the rules of the pod's addresses (from prevResult and the interface). The config is not
 * needed (and not checked), so a config ADD accepted, or one that no longer decodes, still cleans up.
 */
async function del(args: CmdArgs): Promise<void> {
  if (!args.netns) return;
  let pod: NetlinkConn;
  try {
    pod = NetlinkConn.open({ netns: args.netns });
  } catch {
    return; // the namespace is gone, and its rules with it
  }
  try {
    const sources = new Set<string>();
    for (const ip of args.prevResult ? addressesOf(args.prevResult, args.ifName) : []) sources.add(hostPrefix(ip.address));
    const link = findLink(pod, args.ifName);
    if (link) for (const a of listAddresses(pod, { link: link.index })) sources.add(hostPrefix(a.cidr));
    for (const r of listRules(pod)) {
      if (r.src && sources.has(r.src)) deleteRule(pod, { src: r.src, table: r.table });
    }
  } finally {
    pod.close();
  }
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parseSbrConf(args.config);
  const prev = args.prevResult;
  if (!prev) throw invalid("sbr: required prevResult missing");
  const pod = openPod(args.netns);
  try {
    const rules = listRules(pod);
    for (const ip of addressesOf(prev, args.ifName)) {
      const src = hostPrefix(ip.address);
      const rule = rules.find((r) => r.src === src);
      if (!rule) throw internal(`sbr: no rule for source ${src}`);
      const gateway = gatewayFor(conf, ip);
      if (gateway) {
        const routes = listRoutes(pod, { table: rule.table });
        if (!routes.some((r) => (r.dst === "0.0.0.0/0" || r.dst === "::/0") && r.gateway === normIP(gateway))) {
          throw internal(`sbr: table ${rule.table} has no default route via ${gateway}`);
        }
      }
    }
  } finally {
    pod.close();
  }
}

/** The sbr plugin. */
export const sbr: Plugin = { add, del, check };
export default sbr;
