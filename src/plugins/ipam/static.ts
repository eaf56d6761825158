/**
 * static IPAM: the addresses, routes and DNS written in the config, or the addresses a runtime
 * passes (`runtimeConfig.ips`, `args.cni.ips`, `CNI_ARGS` `IP=` and `GATEWAY=`), as the reference.
 */

import { requestedIPs } from "../../ipam/requested.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { loadCniArgs } from "../../spec/args.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import { containsIP, formatIP, networkOf, parseCIDR, parseIP } from "../../spec/ip.ts";
import type { DNS, IPConfig, Result, Route } from "../../spec/result.ts";
import { validateCIDR, validateIP } from "../../spec/validate.ts";

const bad = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);

function parseAddresses(list: unknown): IPConfig[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw bad("'addresses' must be a list");
  return list.map((a, i) => {
    validateCIDR(a?.address, `addresses[${i}].address`);
    const out: IPConfig = { address: a.address };
    if (a.gateway !== undefined && a.gateway !== "") {
      validateIP(a.gateway, `addresses[${i}].gateway`);
      out.gateway = a.gateway;
    }
    return out;
  });
}

function add(args: CmdArgs): Result {
  const ipam = (args.config.ipam ?? {}) as Record<string, unknown>;
  let ips = parseAddresses(ipam.addresses);
  const requested = requestedIPs(args.config, args.args, ["IP", "GATEWAY"]);
  if (requested.length > 0) {
    const gwArg = loadCniArgs(args.args, ["IP", "GATEWAY"]).GATEWAY;
    const gateways = (gwArg ?? "").split(",").filter(Boolean).map((g) => {
      const ip = parseIP(g.trim());
      if (!ip) throw bad(`invalid GATEWAY in CNI_ARGS: ${g}`);
      return ip;
    });
    ips = requested.map((r) => {
      if (r.prefix === undefined) throw bad(`static: address ${r.text} needs a prefix length (e.g. ${r.text}/24)`);
      const out: IPConfig = { address: `${formatIP(r.ip)}/${r.prefix}` };
      const net = networkOf({ ip: r.ip, prefix: r.prefix });
      const gw = gateways.find((g) => containsIP(net, g));
      if (gw) out.gateway = formatIP(gw);
      return out;
    });
  }
  if (ips.length === 0) throw bad("static: no addresses given (config 'addresses', runtimeConfig 'ips', args or CNI_ARGS IP)");
  const result: Result = { cniVersion: "1.1.0", ips };
  if (ipam.routes !== undefined) {
    if (!Array.isArray(ipam.routes)) throw bad("'routes' must be a list");
    result.routes = (ipam.routes as Array<Record<string, unknown>>).map((r, i) => {
      validateCIDR(r?.dst, `routes[${i}].dst`);
      const route: Route = { dst: r.dst as string };
      if (r.gw !== undefined && r.gw !== "") {
        validateIP(r.gw, `routes[${i}].gw`);
        route.gw = r.gw as string;
      }
      return route;
    });
  }
  if (ipam.dns !== undefined) result.dns = ipam.dns as DNS;
  for (const ip of ips) if (!parseCIDR(ip.address)) throw bad(`invalid address ${ip.address}`);
  return result;
}

/** The static plugin: DEL, CHECK and GC have nothing to do. */
export const staticIPAM: Plugin = { add, del() {} };
export default staticIPAM;
