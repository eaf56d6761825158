/**
 * CNI results of every spec version and the conversions between them, with libcni's rules:
 * 0.1.0/0.2.0 carry `ip4`/`ip6`; 0.3.x/0.4.0 carry `interfaces`, `ips` (with `version`), `routes`;
 * 1.x drops `version`; 1.1.0 adds interface `mtu`/`socketPath`/`pciID` and route
 * `mtu`/`advmss`/`priority`/`table`/`scope`.
 */

import { CniError, ErrorCode } from "./error.ts";
import { parseCIDR, parseIP } from "./ip.ts";
import { CURRENT_VERSION, normalizeVersion } from "./version.ts";

/** DNS settings, same in every version. */
export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** An interface a plugin created or configured. */
export interface Interface {
  name: string;
  mac?: string;
  /** 1.1.0 */
  mtu?: number;
  sandbox?: string;
  /** 1.1.0 */
  socketPath?: string;
  /** 1.1.0 */
  pciID?: string;
}

/** An address assigned to an interface (1.x form). */
export interface IPConfig {
  /** Index into `interfaces`. */
  interface?: number;
  address: string;
  gateway?: string;
}

/** A route (fields after `gw` are 1.1.0). */
export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/** A result of spec 1.0.0 or 1.1.0: the form plugins work with. */
export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: Route[];
  dns?: DNS;
}

/** An address in 0.3.0 - 0.4.0 form, with its family. */
export interface IPConfig04 extends IPConfig {
  version: "4" | "6";
}

/** A result of spec 0.3.0, 0.3.1 or 0.4.0. */
export interface Result04 {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IPConfig04[];
  routes?: Route[];
  dns?: DNS;
}

/** One family's configuration in a 0.1.0 / 0.2.0 result. */
export interface IPConfig02 {
  ip: string;
  gateway?: string;
  routes?: Array<{ dst: string; gw?: string }>;
}

/** A result of spec 0.1.0 or 0.2.0. */
export interface Result02 {
  cniVersion: string;
  ip4?: IPConfig02;
  ip6?: IPConfig02;
  dns?: DNS;
}

/** A result of any supported version. */
export type AnyResult = Result | Result04 | Result02;

type Family = "02" | "04" | "1";

function familyOf(version: string): Family {
  switch (normalizeVersion(version)) {
    case "0.1.0":
    case "0.2.0":
      return "02";
    case "0.3.0":
    case "0.3.1":
    case "0.4.0":
      return "04";
    case "1.0.0":
    case "1.1.0":
      return "1";
    default:
      throw new CniError(ErrorCode.IncompatibleVersion, `unsupported CNI result version "${version}"`);
  }
}

const decodeErr = (msg: string) => new CniError(ErrorCode.DecodingFailure, `decoding result: ${msg}`);

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkCIDR(v: unknown, what: string): string {
  if (typeof v !== "string" || !parseCIDR(v)) throw decodeErr(`${what} is not an address/prefix: ${JSON.stringify(v)}`);
  return v;
}

function checkIP(v: unknown, what: string): string {
  if (typeof v !== "string" || !parseIP(v)) throw decodeErr(`${what} is not an IP address: ${JSON.stringify(v)}`);
  return v;
}

function optNum(o: Record<string, unknown>, k: string, what: string): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) throw decodeErr(`${what}.${k} is not an integer`);
  return v;
}

function optStr(o: Record<string, unknown>, k: string, what: string): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw decodeErr(`${what}.${k} is not a string`);
  return v;
}

function strList(v: unknown, what: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw decodeErr(`${what} is not a list of strings`);
  return [...v];
}

function parseDNS(v: unknown): DNS | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw decodeErr("dns is not an object");
  const dns: DNS = {};
  const ns = strList(v.nameservers, "dns.nameservers");
  if (ns) dns.nameservers = ns;
  const domain = optStr(v, "domain", "dns");
  if (domain) dns.domain = domain;
  const search = strList(v.search, "dns.search");
  if (search) dns.search = search;
  const options = strList(v.options, "dns.options");
  if (options) dns.options = options;
  return Object.keys(dns).length > 0 ? dns : undefined;
}

function parseRoute(v: unknown, what: string, full: boolean): Route {
  if (!isObj(v)) throw decodeErr(`${what} is not an object`);
  const r: Route = { dst: checkCIDR(v.dst, `${what}.dst`) };
  if (v.gw !== undefined && v.gw !== null && v.gw !== "") r.gw = checkIP(v.gw, `${what}.gw`);
  if (full) {
    for (const k of ["mtu", "advmss", "priority", "table", "scope"] as const) {
      const n = optNum(v, k, what);
      if (n !== undefined) r[k] = n;
    }
  }
  return r;
}

function parseInterface(v: unknown, what: string, full: boolean): Interface {
  if (!isObj(v)) throw decodeErr(`${what} is not an object`);
  const name = optStr(v, "name", what);
  const out: Interface = { name: name ?? "" };
  const mac = optStr(v, "mac", what);
  if (mac) out.mac = mac;
  if (full) {
    const mtu = optNum(v, "mtu", what);
    if (mtu) out.mtu = mtu;
  }
  const sandbox = optStr(v, "sandbox", what);
  if (sandbox) out.sandbox = sandbox;
  if (full) {
    const sp = optStr(v, "socketPath", what);
    if (sp) out.socketPath = sp;
    const pci = optStr(v, "pciID", what);
    if (pci) out.pciID = pci;
  }
  return out;
}

function parseIPConfig(v: unknown, what: string, nIfaces: number): IPConfig {
  if (!isObj(v)) throw decodeErr(`${what} is not an object`);
  const ipc: IPConfig = { address: checkCIDR(v.address, `${what}.address`) };
  const idx = optNum(v, "interface", what);
  if (idx !== undefined) {
    if (idx < 0 || (nIfaces > 0 && idx >= nIfaces)) throw decodeErr(`${what}.interface ${idx} is out of range`);
    ipc.interface = idx;
  }
  if (v.gateway !== undefined && v.gateway !== null && v.gateway !== "") ipc.gateway = checkIP(v.gateway, `${what}.gateway`);
  return ipc;
}

function familyOfAddress(cidr: string): "4" | "6" {
  return cidr.includes(":") ? "6" : "4";
}

function list<T>(v: unknown, what: string, each: (x: unknown, what: string) => T): T[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw decodeErr(`${what} is not a list`);
  return v.map((x, i) => each(x, `${what}[${i}]`));
}

function parse02Family(v: unknown, what: string): IPConfig02 | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw decodeErr(`${what} is not an object`);
  const out: IPConfig02 = { ip: checkCIDR(v.ip, `${what}.ip`) };
  if (v.gateway !== undefined && v.gateway !== null && v.gateway !== "") out.gateway = checkIP(v.gateway, `${what}.gateway`);
  const routes = list(v.routes, `${what}.routes`, (x, w) => parseRoute(x, w, false));
  if (routes) out.routes = routes;
  return out;
}

/**
 * Parse and validate a result object of any supported version (its `cniVersion` decides the
 * form; an empty one means 0.1.0). Unknown fields are dropped.
 */
export function parseResult(raw: unknown): AnyResult {
  if (!isObj(raw)) throw decodeErr("not a JSON object");
  const version = normalizeVersion(typeof raw.cniVersion === "string" ? raw.cniVersion : "");
  const fam = familyOf(version);
  const dns = parseDNS(raw.dns);
  if (fam === "02") {
    const r: Result02 = { cniVersion: version };
    const ip4 = parse02Family(raw.ip4, "ip4");
    if (ip4) r.ip4 = ip4;
    const ip6 = parse02Family(raw.ip6, "ip6");
    if (ip6) r.ip6 = ip6;
    if (dns) r.dns = dns;
    return r;
  }
  const full = version === "1.1.0";
  const interfaces = list(raw.interfaces, "interfaces", (x, w) => parseInterface(x, w, full));
  const n = interfaces?.length ?? 0;
  const ips = list(raw.ips, "ips", (x, w) => parseIPConfig(x, w, n));
  const routes = list(raw.routes, "routes", (x, w) => parseRoute(x, w, full));
  const r: Result = { cniVersion: version };
  if (interfaces) r.interfaces = interfaces;
  if (ips) {
    r.ips =
      fam === "04"
        ? ips.map((ip, i) => {
            const given = (raw.ips as Array<Record<string, unknown>>)[i]!.version;
            const version = given === "4" || given === "6" ? given : familyOfAddress(ip.address);
            return { version, ...ip };
          })
        : ips;
  }
  if (routes) r.routes = routes;
  if (dns) r.dns = dns;
  return r;
}

function cloneDNS(d: DNS | undefined): DNS | undefined {
  return d ? structuredClone(d) : undefined;
}

function stripIface(i: Interface, full: boolean): Interface {
  const o: Interface = { name: i.name };
  if (i.mac) o.mac = i.mac;
  if (full && i.mtu) o.mtu = i.mtu;
  if (i.sandbox) o.sandbox = i.sandbox;
  if (full && i.socketPath) o.socketPath = i.socketPath;
  if (full && i.pciID) o.pciID = i.pciID;
  return o;
}

function stripRoute(r: Route, full: boolean): Route {
  if (full) return { ...r };
  const o: Route = { dst: r.dst };
  if (r.gw) o.gw = r.gw;
  return o;
}

function stripIP(ip: IPConfig): IPConfig {
  const o = {} as IPConfig;
  if (ip.interface !== undefined) o.interface = ip.interface;
  o.address = ip.address;
  if (ip.gateway) o.gateway = ip.gateway;
  return o;
}

/** 1.x or 0.4.x-like body to any version of the 1.x / 0.4 families, dropping what `to` lacks. */
function to04or1(src: Result | Result04, to: string): AnyResult {
  const fam = familyOf(to);
  const full = to === "1.1.0";
  const out: Result = { cniVersion: to };
  if (src.interfaces) out.interfaces = src.interfaces.map((i) => stripIface(i, full));
  if (src.ips) {
    out.ips = src.ips.map((ip) => {
      const base = stripIP(ip);
      return fam === "04" ? ({ version: familyOfAddress(ip.address), ...base } as IPConfig04) : base;
    });
  }
  if (src.routes) out.routes = src.routes.map((r) => stripRoute(r, full));
  const dns = cloneDNS(src.dns);
  if (dns) out.dns = dns;
  return out;
}

/** 0.4.x/1.x to 0.1.0/0.2.0: the first address of each family, routes by family of their dst. */
function to02(src: Result | Result04, to: string): Result02 {
  const out: Result02 = { cniVersion: to };
  for (const ip of src.ips ?? []) {
    const fam = familyOfAddress(ip.address);
    const cfg: IPConfig02 = { ip: ip.address };
    if (ip.gateway) cfg.gateway = ip.gateway;
    if (fam === "4" && !out.ip4) out.ip4 = cfg;
    else if (fam === "6" && !out.ip6) out.ip6 = cfg;
    if (out.ip4 && out.ip6) break;
  }
  for (const r of src.routes ?? []) {
    const target = familyOfAddress(r.dst) === "4" ? out.ip4 : out.ip6;
    if (!target) continue;
    const route: { dst: string; gw?: string } = { dst: r.dst };
    if (r.gw) route.gw = r.gw;
    (target.routes ??= []).push(route);
  }
  if (!out.ip4 && !out.ip6) {
    throw new CniError(ErrorCode.IncompatibleVersion, `cannot convert result to version ${to}: no valid IP addresses`);
  }
  const dns = cloneDNS(src.dns);
  if (dns) out.dns = dns;
  return out;
}

/** 0.1.0/0.2.0 to the 0.4.0 form. */
function from02(src: Result02): Result04 {
  const out: Result04 = { cniVersion: "0.4.0", ips: [], routes: [] };
  for (const [fam, cfg] of [["4", src.ip4], ["6", src.ip6]] as const) {
    if (!cfg) continue;
    const ip: IPConfig04 = { version: fam, address: cfg.ip };
    if (cfg.gateway) ip.gateway = cfg.gateway;
    out.ips!.push(ip);
    for (const r of cfg.routes ?? []) out.routes!.push(r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst });
  }
  if (out.ips!.length === 0) delete out.ips;
  if (out.routes!.length === 0) delete out.routes;
  const dns = cloneDNS(src.dns);
  if (dns) out.dns = dns;
  return out;
}

/**
 * Convert a result to another spec version, in every direction libcni supports: within a family
 * by relabelling (dropping fields the target lacks), up from 0.1.0/0.2.0 through 0.4.0, and down
 * to 0.1.0/0.2.0 keeping the first IPv4 and first IPv6 address (failing when there is none).
 */
export function convertResult(result: AnyResult, to: string): AnyResult {
  const target = normalizeVersion(to);
  const from = normalizeVersion(result.cniVersion);
  const ff = familyOf(from);
  const tf = familyOf(target);
  if (ff === "02") {
    const r = result as Result02;
    if (tf === "02") return { ...structuredClone(r), cniVersion: target };
    return to04or1(from02(r), target);
  }
  const r = result as Result | Result04;
  if (tf === "02") return to02(r, target);
  return to04or1(r, target);
}

/** Convert any result to the current (1.1.0) form plugins work with. */
export function toCurrentResult(result: AnyResult): Result {
  return convertResult(result, CURRENT_VERSION) as Result;
}

/** Parse a raw result and convert it to `version`. */
export function resultAsVersion(raw: unknown, version: string): AnyResult {
  return convertResult(parseResult(raw), version);
}
