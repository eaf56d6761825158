/** How `cnikit` reports: results and spec errors as JSON on stdout, a readable line on stderr. */

import { toCniError } from "../spec/error.ts";
import { CURRENT_VERSION } from "../spec/version.ts";

/** Print a JSON document on stdout. */
export function printJSON(v: unknown): void {
  console.log(JSON.stringify(v, null, 4));
}

/** Print an error as a spec error JSON on stdout and a readable line on stderr; returns the exit code. */
export function reportError(err: unknown, cniVersion = CURRENT_VERSION): number {
  const e = toCniError(err);
  e.cniVersion = cniVersion;
  printJSON(e.toJSON());
  process.stderr.write(`cnikit: ${e.toString()}\n`);
  return 1;
}
