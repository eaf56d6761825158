/**
 * Addresses a runtime asks for: `runtimeConfig.ips` (the `ips` capability), `args.cni.ips`, or
 * `CNI_ARGS` `IP=` (comma-separated), each with or without a prefix length.
 */

import { loadCniArgs } from "../spec/args.ts";
import { CniError, ErrorCode } from "../spec/error.ts";
import { parseCIDR, parseIP, type IPBytes } from "../spec/ip.ts";
import type { NetConf } from "../spec/netconf.ts";

/** One requested address and the prefix it came with, if any. */
export interface RequestedIP {
  ip: IPBytes;
  prefix?: number;
  text: string;
}

function parseOne(s: unknown, where: string): RequestedIP {
  if (typeof s !== "string") throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid IP in ${where}: ${JSON.stringify(s)}`);
  const cidr = parseCIDR(s);
  if (cidr) return { ip: cidr.ip, prefix: cidr.prefix, text: s };
  const ip = parseIP(s);
  if (!ip) throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid IP in ${where}: ${JSON.stringify(s)}`);
  return { ip, text: s };
}

/** The requested addresses of one invocation (runtimeConfig first, then args, then CNI_ARGS). */
export function requestedIPs(conf: NetConf, cniArgs: string, known: readonly string[] = ["IP"]): RequestedIP[] {
  const rc = conf.runtimeConfig?.ips;
  if (Array.isArray(rc) && rc.length > 0) return rc.map((s) => parseOne(s, "runtimeConfig.ips"));
  const cni = (conf.args as { cni?: { ips?: unknown } } | undefined)?.cni?.ips;
  if (Array.isArray(cni) && cni.length > 0) return cni.map((s) => parseOne(s, "args.cni.ips"));
  const args = loadCniArgs(cniArgs, known);
  if (args.IP) return args.IP.split(",").filter(Boolean).map((s) => parseOne(s.trim(), "CNI_ARGS IP"));
  return [];
}
