/** `cnikit version [TYPE...]`: cnikit's own version and spec versions, or those of plugin types. */

import pkg from "../../package.json" with { type: "json" };
import { splitPath } from "../invoke/find.ts";
import { invokeVersion } from "../invoke/invoke.ts";
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from "../spec/version.ts";
import { parseArgs } from "./args.ts";
import { printJSON, reportError } from "./output.ts";

/** Usage text. */
export const VERSION_USAGE = `usage: cnikit version [TYPE...]

Without TYPE: print cnikit's version and the CNI spec versions it supports.
With TYPE: ask each plugin type, found in CNI_PATH, which spec versions it supports.
`;

/** Run `cnikit version`. */
export async function versionCommand(argv: readonly string[], env = process.env): Promise<number> {
  const p = parseArgs(argv);
  if (p.flags.help) {
    process.stdout.write(VERSION_USAGE);
    return 0;
  }
  if (p.positional.length === 0) {
    printJSON({ cnikit: pkg.version, cniVersion: CURRENT_VERSION, supportedVersions: SUPPORTED_VERSIONS });
    return 0;
  }
  try {
    const out: Record<string, unknown> = {};
    for (const type of p.positional) out[type] = await invokeVersion(type, { path: splitPath(env.CNI_PATH).join(":"), baseEnv: env });
    printJSON(out);
    return 0;
  } catch (e) {
    return reportError(e);
  }
}
