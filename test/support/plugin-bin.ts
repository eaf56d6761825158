/** A temporary CNI bin dir holding cnikit's plugins, for integration tests. */

import { symlinkSync } from "node:fs";
import { join } from "node:path";
import { must } from "./netns.ts";

/**
 * Put plugin `types` into `bin`: links to the cnikit binary; in the suite's second run
 * (CNIKIT_TEST_VIA=daemon) `cnikit install`'s links to cnikit-shim instead, so that the calls go
 * through the daemon that run started in this namespace.
 */
export function installPlugins(cnikit: string, bin: string, types: readonly string[]): void {
  if (process.env.CNIKIT_TEST_VIA === "daemon") {
    must([cnikit, "install", "--bin-dir", bin]);
    return;
  }
  for (const t of types) symlinkSync(cnikit, join(bin, t));
}
