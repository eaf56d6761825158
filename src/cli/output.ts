/** How `cnikit` reports: results and spec errors as JSON on stdout, a readable line on stderr. */

import { toCniError } from "../spec/error.ts";

/** Print a JSON document on stdout. */
export function printJSON(v: unknown): void {
  console.log(JSON.stringify(v, null, 4));
}

/** Print an error as a spec error JSON on stdout and a readable line on stderr; returns the exit code. */
export function reportError(err: unknown, cniVersion = "1.1.0"): number {
  const e = toCniError(err);
  e.cniVersion = cniVersion;
  printJSON(e.toJSON());
  process.stderr.write(`cnikit: ${e.toString()}\n`);
  return 1;
}
