/**
 * Delegation from a plugin to another (bridge to its IPAM, overlay to bridge), as the reference's
 * `ipam.ExecAdd` / `invoke.DelegateAdd` do: same environment, another command and config.
 */

import type { CmdArgs } from "../skel/plugin.ts";
import type { Result } from "../spec/result.ts";
import { toCurrentResult } from "../spec/result.ts";
import { invokePlugin, invokeWithResult } from "./invoke.ts";

function opts(args: CmdArgs, command: string, stdin: string) {
  return {
    command,
    containerId: args.containerId,
    netns: args.netns,
    ifName: args.ifName,
    args: args.args,
    path: args.path,
    stdin,
    baseEnv: args.env,
  };
}

/** Run `type` with ADD and the given config; the result comes back in the current form. */
export async function delegateAdd(type: string, args: CmdArgs, config: string): Promise<Result> {
  const version = (JSON.parse(config) as { cniVersion?: string }).cniVersion ?? args.cniVersion;
  const res = await invokeWithResult(type, version, opts(args, "ADD", config));
  return toCurrentResult(res);
}

/** Run `type` with `command` (DEL, CHECK, GC, STATUS) and the given config. */
export async function delegateCommand(type: string, args: CmdArgs, command: string, config: string): Promise<void> {
  await invokePlugin(type, opts(args, command, config));
}
