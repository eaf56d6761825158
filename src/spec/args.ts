/** `CNI_ARGS`: "K=V;K2=V2" pairs, with the `IgnoreUnknown` convention. */

import { CniError, ErrorCode } from "./error.ts";

/** Split CNI_ARGS into pairs; throws a spec error on a malformed pair. */
export function parseCniArgs(s: string): Array<[string, string]> {
  if (!s) return [];
  const out: Array<[string, string]> = [];
  for (const pair of s.split(";")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new CniError(ErrorCode.InvalidEnvironment, `invalid CNI_ARGS pair "${pair}"`);
    out.push([pair.slice(0, eq), pair.slice(eq + 1)]);
  }
  return out;
}

/** Join pairs back into the CNI_ARGS form. */
export function formatCniArgs(pairs: ReadonlyArray<readonly [string, string]>): string {
  return pairs.map(([k, v]) => `${k}=${v}`).join(";");
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && ["1", "true", "t", "yes"].includes(v.toLowerCase());
}

/**
 * Parse CNI_ARGS into a map, accepting only `known` keys unless the args carry
 * `IgnoreUnknown=1` (or true), as the reference plugins do.
 */
export function loadCniArgs(s: string, known: readonly string[]): Record<string, string> {
  const pairs = parseCniArgs(s);
  const ignore = truthy(pairs.find(([k]) => k === "IgnoreUnknown")?.[1]);
  const out: Record<string, string> = {};
  for (const [k, v] of pairs) {
    if (k === "IgnoreUnknown") continue;
    if (!known.includes(k)) {
      if (ignore) continue;
      throw new CniError(ErrorCode.InvalidEnvironment, `ARGS: unknown args "${k}"`);
    }
    out[k] = v;
  }
  return out;
}
