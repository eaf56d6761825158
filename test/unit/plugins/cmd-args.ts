/** What plugin unit tests hand a plugin's config parser: a `CmdArgs` around a config, no kernel. */

import type { CmdArgs } from "../../../src/skel/plugin.ts";
import type { NetConf } from "../../../src/spec/netconf.ts";

/** A `CmdArgs` for `command` (default ADD) with `config` as the parsed config; `log` collects lines. */
export function cmdArgs(config: Record<string, unknown>, opts: { command?: string; cniArgs?: string; log?: string[] } = {}): CmdArgs {
  const conf = { cniVersion: "1.0.0", name: "n", ...config } as NetConf;
  return {
    command: opts.command ?? "ADD",
    containerId: "c",
    netns: "/nonexistent",
    ifName: "eth0",
    args: opts.cniArgs ?? "",
    path: "",
    stdinData: JSON.stringify(conf),
    config: conf,
    cniVersion: "1.0.0",
    env: {},
    log: (msg) => opts.log?.push(msg),
  };
}
