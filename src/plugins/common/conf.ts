/** Config keys several plugins share, as codecs (`spec/decode`), with one rule each. */

import { cidr, convert, i64, invalidValue, list, mac, object, refine, str, type Codec, type ObjectCodec, type Shape } from "../../spec/decode.ts";
import { parseIP } from "../../spec/ip.ts";
import type { Route } from "../../spec/result.ts";

/** `mtu`: 0 or unset means the default; otherwise at least IPv4's minimum (68) and at most 65535. */
export const mtuCodec = refine(i64, (m) => (m === 0 || (m >= 68 && m <= 65535) ? undefined : `mtu must be 0 (default) or from 68 to 65535, not ${m}`));

/** `args.cni` as the reference reads it: requested addresses and MAC (`args.cni.ips`, `args.cni.mac`). */
export const argsCniCodec = object({ cni: object({ ips: list(str), mac }) });

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
