/**
 * Addresses a runtime asks for: `runtimeConfig.ips` (the `ips` capability), `args.cni.ips`, or
 * `CNI_ARGS` `IP=` (comma-separated), each with or without a prefix length. The JSON sources come
 * decoded (`requestedShape`, Go's rules); their strings are checked here.
 */

import { list, object, str } from "../spec/decode.ts";
import { loadCniArgs } from "../spec/args.ts";
import { CniError, ErrorCode } from "../spec/error.ts";
import { parseCIDR, parseIP, type IPBytes } from "../spec/ip.ts";

/** One requested address and the prefix it came with, if any. */
export interface RequestedIP {
  ip: IPBytes;
  prefix?: number;
  text: string;
}

/**
 * The config keys requested addresses come from, as the reference's IPAM plugins decode them
 * (`runtimeConfig.ips`, `args.cni.ips`); a plugin spreads these into its codec's shape, adding
 * its own keys to `runtimeConfig` where it has some.
 */
export const requestedShape = {
  runtimeConfig: object({ ips: list(str) }),
  args: object({ cni: object({ ips: list(str) }) }),
};

/** The decoded sources `requestedIPs` reads. */
export interface RequestedSources {
  runtimeConfig?: { ips?: string[] };
  args?: { cni?: { ips?: string[] } };
}

function parseOne(s: string, where: string): RequestedIP {
  const cidr = parseCIDR(s);
  if (cidr) return { ip: cidr.ip, prefix: cidr.prefix, text: s };
  const ip = parseIP(s);
  if (!ip) throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid IP in ${where}: ${JSON.stringify(s)}`);
  return { ip, text: s };
}

/** The requested addresses of one invocation (runtimeConfig first, then args, then CNI_ARGS). */
export function requestedIPs(conf: RequestedSources, cniArgs: string, known: readonly string[] = ["IP"]): RequestedIP[] {
  const rc = conf.runtimeConfig?.ips ?? [];
  if (rc.length > 0) return rc.map((s, i) => parseOne(s, `runtimeConfig.ips[${i}]`));
  const cni = conf.args?.cni?.ips ?? [];
  if (cni.length > 0) return cni.map((s, i) => parseOne(s, `args.cni.ips[${i}]`));
  const args = loadCniArgs(cniArgs, known);
  if (args.IP) return args.IP.split(",").filter(Boolean).map((s) => parseOne(s.trim(), "CNI_ARGS IP"));
  return [];
}
