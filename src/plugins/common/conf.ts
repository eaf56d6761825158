/** Config keys several plugins share, as codecs (`spec/decode`), with one rule each. */

import { cidr, convert, i64, invalidValue, list, mac, object, refine, str, type Codec, type ObjectCodec, type Shape } from "../../spec/decode.ts";
import { parseIP } from "../../spec/ip.ts";
import type { Route } from "../../spec/result.ts";
import { loadCniArgs } from "../../spec/args.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import { validateIfName } from "../../spec/validate.ts";

/** `mtu`: 0 or unset means the default; otherwise at least IPv4's minimum (68) and at most 65535. */
export const mtuCodec = refine(i64, (m) => (m === 0 || (m >= 68 && m <= 65535) ? undefined : `mtu must be 0 (default) or from 68 to 65535, not ${m}`));

/**
 * A MAC address key (Go `string`, parsed by the plugin): "" leaves it unset, anything else must be
 * six hex bytes (code 7); lower case with colons.
 */
export const optionalMac: Codec<string> = { expected: mac.expected, zero: () => "", decode: (v, path, ctx) => (v === "" ? "" : mac.decode(v, path, ctx)) };

/** `args.cni` as the reference reads it: requested addresses and MAC (`args.cni.ips`, `args.cni.mac`). */
export const argsCniCodec = object({ cni: object({ ips: list(str), mac: optionalMac }) });

/**
 * An interface name key (`bridge`, `master`): "" leaves it unset (the plugin's default), anything
 * else must be a name the kernel accepts (code 7).
 */
export const ifNameCodec = refine(str, (s) => {
  if (s === "") return undefined;
  try {
    validateIfName(s);
    return undefined;
  } catch (e) {
    const err = e as CniError;
    return `invalid interface name ${JSON.stringify(s)}: ${err.message}${err.details ? ` (${err.details})` : ""}`;
  }
});

/**
 * The MAC address `CNI_ARGS` asks for (`MAC=...`, unknown keys ignored), lower case with colons;
 * code 7 when it is not one. `where` starts the error message (the plugin type).
 */
export function cniArgsMac(cniArgs: string, where: string): string | undefined {
  if (!cniArgs) return undefined;
  const m = loadCniArgs(cniArgs.includes("IgnoreUnknown") ? cniArgs : `IgnoreUnknown=1;${cniArgs}`, ["MAC"]).MAC;
  if (!m) return undefined;
  try {
    return mac.decode(m, "MAC", { lenient: false, warnings: [] });
  } catch {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `${where}: invalid MAC address ${JSON.stringify(m)} in CNI_ARGS`);
  }
}

/** An IP address or "" (Go `net.IP`: an empty string leaves it unset); kept as written. */
export const optionalIP = refine(str, (s) => (s === "" || parseIP(s) ? undefined : `invalid IP address ${JSON.stringify(s)}`));

/**
 * One route as the reference decodes it (`types.Route`: `dst`, `gw`, `mtu`, `advmss`, `priority`,
 * `table`, `scope`); a route without `dst` is code 7. A `null` entry decodes to `dst: ""`: callers
 * skip it.
 */
export const routeCodec: Codec<Route> = convert(
  object({ dst: cidr, gw: optionalIP, mtu: i64, advmss: i64, priority: i64, table: i64, scope: i64 }),
  (r, path) => {
    if (r.dst === undefined) return invalidValue(`${path}.dst`, "a route needs a destination");
    const out: Route = { dst: r.dst };
    if (r.gw) out.gw = r.gw;
    if (r.mtu) out.mtu = r.mtu;
    if (r.advmss) out.advmss = r.advmss;
    if (r.priority) out.priority = r.priority;
    if (r.table !== undefined) out.table = r.table;
    if (r.scope !== undefined) out.scope = r.scope;
    return out;
  },
  () => ({ dst: "" }),
);

/** `routes` as IPAM plugins list them, `null` entries left out. */
export const routesCodec: Codec<Route[]> = convert(list(routeCodec), (rs) => rs.filter((r) => r.dst !== ""), () => []);

/**
 * Whether the JSON object `raw` gives `field` of `codec` a value (any key that matches it, not
 * null). After a lenient decode (DEL) this tells a key that was dropped from one never written:
 * a state directory that did not decode must not become the default one.
 */
export function hasField(codec: ObjectCodec<Shape>, raw: unknown, field: string): boolean {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return false;
  return Object.entries(raw).some(([k, v]) => v !== null && v !== undefined && codec.fieldFor(k) === field);
}
