/**
 * Run one plugin for one verb, in-process when the type is built into this binary and `CNI_PATH`
 * resolves to it, as a process otherwise; parse its result or its spec error.
 */

import { CniError, ErrorCode } from "../spec/error.ts";
import { convertResult, parseResult, type AnyResult } from "../spec/result.ts";
import { CURRENT_VERSION, normalizeVersion } from "../spec/version.ts";
import { parseVersionInfo, type VersionInfo } from "../spec/version.ts";
import { runPlugin } from "../skel/skel.ts";
import { builtinLoader, runsInProcess } from "./builtin.ts";
import { execRaw, parseOutput, pluginEnv, type InvokeEnv, type RawOutput } from "./exec.ts";
import { findInPath, splitPath } from "./find.ts";

/** Options of one plugin invocation. */
export interface InvokeOptions extends InvokeEnv {
  /** The plugin's config (stdin). */
  stdin: string;
  /** Environment the plugin inherits (CNI_* variables replaced); defaults to this process's. */
  baseEnv?: Readonly<Record<string, string | undefined>>;
  /** Never run in-process (for tests and benchmarks). */
  forceExec?: boolean;
}

async function runInProcess(type: string, env: Record<string, string>, stdin: string): Promise<RawOutput> {
  const plugin = await builtinLoader(type)!();
  let stdout = "";
  let stderr = "";
  const exitCode = await runPlugin(plugin, {
    env,
    readStdin: () => stdin,
    writeStdout: (s) => {
      stdout += s;
    },
    writeStderr: (s) => {
      stderr += s;
    },
  });
  if (stderr) process.stderr.write(stderr);
  return { stdout, stderr: exitCode === 0 ? "" : stderr, exitCode };
}

/** Run the plugin at `file` (or in-process for built-in `type`) and return its parsed JSON output. */
export async function invokeFile(type: string, file: string, opts: InvokeOptions): Promise<unknown> {
  const env = pluginEnv(opts, opts.baseEnv);
  const inProcess = !opts.forceExec && (await runsInProcess(type, file));
  if (env.CNIKIT_DEBUG) process.stderr.write(`cnikit: ${opts.command} ${type}: ${inProcess ? "in-process" : "exec"} ${file}\n`);
  const out = inProcess ? await runInProcess(type, env, opts.stdin) : await execRaw(file, { stdin: opts.stdin, env });
  if (out.stderr && out.exitCode === 0) process.stderr.write(out.stderr);
  return parseOutput(out, file);
}

/** Find `type` in `opts.path` and run it; returns its parsed JSON output (undefined when empty). */
export async function invokePlugin(type: string, opts: InvokeOptions): Promise<unknown> {
  const file = await findInPath(type, splitPath(opts.path));
  return invokeFile(type, file, opts);
}

/**
 * Run an ADD (or another verb that yields a result) and return the result converted to
 * `version` (the config's); a plugin that prints nothing is an error.
 */
export async function invokeWithResult(type: string, version: string, opts: InvokeOptions): Promise<AnyResult> {
  const raw = await invokePlugin(type, opts);
  if (raw === undefined) {
    throw new CniError(ErrorCode.DecodingFailure, `plugin ${type} returned no result`);
  }
  // as libcni's fixupResultVersion: a result that names no version is in the config's version
  const obj = raw as Record<string, unknown>;
  const fixed = typeof obj === "object" && obj !== null && !obj.cniVersion ? { ...obj, cniVersion: normalizeVersion(version) } : raw;
  const result = parseResult(fixed);
  return convertResult(result, normalizeVersion(version));
}

/** Ask a plugin which spec versions it supports. */
export async function invokeVersion(type: string, opts: { path: string; baseEnv?: InvokeOptions["baseEnv"] }): Promise<VersionInfo> {
  const raw = await invokePlugin(type, {
    command: "VERSION",
    path: opts.path,
    stdin: JSON.stringify({ cniVersion: CURRENT_VERSION }),
    ...(opts.baseEnv ? { baseEnv: opts.baseEnv } : {}),
  });
  return parseVersionInfo(raw ?? {});
}
