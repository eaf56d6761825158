/**
 * static IPAM: the addresses, routes and DNS written in the config, or the addresses a runtime
 * passes (`runtimeConfig.ips`, `args.cni.ips`, `CNI_ARGS` `IP=` and `GATEWAY=`), as the reference.
 */

import { requestedIPs, requestedShape } from "../../ipam/requested.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { loadCniArgs } from "../../spec/args.ts";
import { decode, object, list, str, type Decoded } from "../../spec/decode.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import { containsIP, formatIP, networkOf, parseCIDR, parseIP } from "../../spec/ip.ts";
import { dnsCodec, netConfShape, type NetConf } from "../../spec/netconf.ts";
import type { DNS, IPConfig, Result } from "../../spec/result.ts";
import { optionalIP, routesCodec } from "../common/conf.ts";
import { CURRENT_VERSION } from "../../spec/version.ts";

/**
 * One entry of `addresses` as the reference decodes it (`Address`): `address` (a string, checked
 * as "address/prefix"), `gateway`; Go's untagged `Address` (a `net.IPNet` struct) and `Version`
 * are decoded for their types only.
 */
const addressCodec = object({ address: str, gateway: optionalIP, Address: object({ IP: str, Mask: str }), Version: str });

/** The config static reads (the reference's `Net` and `IPAMConfig`). */
export const staticCodec = object({
  ...netConfShape,
  ipam: object({ name: str, type: str, routes: routesCodec, addresses: list(addressCodec), dns: dnsCodec }),
  ...requestedShape,
});

const bad = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, `static: ${msg}`);

function addressesOf(n: Decoded<typeof staticCodec>): IPConfig[] {
  return (n.ipam?.addresses ?? []).map((a, i) => {
    const where = `ipam.addresses[${i}].address`;
    if (a.address === undefined) throw bad(`"${where}" is missing`);
    if (!parseCIDR(a.address)) throw bad(`"${where}": ${JSON.stringify(a.address)} is not in CIDR notation (address/prefix)`);
    const out: IPConfig = { address: a.address };
    if (a.gateway) out.gateway = a.gateway;
    return out;
  });
}

/** The DNS settings of the `ipam` section, as the result carries them (empty lists left out). */
function dnsOf(d: NonNullable<Decoded<typeof staticCodec>["ipam"]>["dns"]): DNS | undefined {
  if (!d) return undefined;
  const out: DNS = {};
  if (d.nameservers?.length) out.nameservers = d.nameservers;
  if (d.domain) out.domain = d.domain;
  if (d.search?.length) out.search = d.search;
  if (d.options?.length) out.options = d.options;
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The result static gives for a config (decoded with Go's rules) and CNI_ARGS. */
export function staticResult(conf: NetConf, cniArgs: string): Result {
  const n = decode(staticCodec, conf, { where: "static" });
  if (!n.ipam) throw bad("IPAM config missing 'ipam' key");
  let ips = addressesOf(n);
  const requested = requestedIPs(n, cniArgs, ["IP", "GATEWAY"]);
  if (requested.length > 0) {
    const gwArg = loadCniArgs(cniArgs, ["IP", "GATEWAY"]).GATEWAY;
    const gateways = (gwArg ?? "").split(",").filter(Boolean).map((g) => {
      const ip = parseIP(g.trim());
      if (!ip) throw bad(`invalid GATEWAY in CNI_ARGS: ${g}`);
      return ip;
    });
    ips = requested.map((r) => {
      if (r.prefix === undefined) throw bad(`address ${r.text} needs a prefix length (e.g. ${r.text}/24)`);
      const out: IPConfig = { address: `${formatIP(r.ip)}/${r.prefix}` };
      const net = networkOf({ ip: r.ip, prefix: r.prefix });
      const gw = gateways.find((g) => containsIP(net, g));
      if (gw) out.gateway = formatIP(gw);
      return out;
    });
  }
  if (ips.length === 0) throw bad("no addresses given (config 'addresses', runtimeConfig 'ips', args or CNI_ARGS IP)");
  const result: Result = { cniVersion: CURRENT_VERSION, ips };
  if (n.ipam.routes?.length) result.routes = n.ipam.routes;
  const dns = dnsOf(n.ipam.dns);
  if (dns) result.dns = dns;
  return result;
}

function add(args: CmdArgs): Result {
  return staticResult(args.config, args.args);
}

/** The static plugin: DEL, CHECK and GC have nothing to do. */
export const staticIPAM: Plugin = { add, del() {} };
export default staticIPAM;
