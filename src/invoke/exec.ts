/** Run a plugin executable: environment, stdin, "text file busy" retries, stdout/stderr capture. */

import { CniError, ErrorCode, isCniErrorJson } from "../spec/error.ts";

/** What one plugin run produced. */
export interface RawOutput {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** The CNI_* variables of one invocation. */
export interface InvokeEnv {
  command: string;
  containerId?: string;
  netns?: string;
  ifName?: string;
  args?: string;
  path?: string;
}

const CNI_VARS = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"];

/**
 * The full environment of a plugin run: the base environment without the six spec variables
 * (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH), plus this
 * invocation's (empty ones left out, as libcni does).
 */
export function pluginEnv(
  inv: InvokeEnv,
  base: Readonly<Record<string, string | undefined>> = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v !== undefined && !CNI_VARS.includes(k)) env[k] = v;
  }
  env.CNI_COMMAND = inv.command;
  const set = (k: string, v: string | undefined) => {
    if (v) env[k] = v;
  };
  set("CNI_CONTAINERID", inv.containerId);
  set("CNI_NETNS", inv.netns);
  set("CNI_IFNAME", inv.ifName);
  set("CNI_ARGS", inv.args);
  set("CNI_PATH", inv.path);
  return env;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Execute `file` with `stdin` and `env`; retries while the kernel answers "text file busy". */
export async function execRaw(file: string, opts: { stdin: string; env: Record<string, string> }): Promise<RawOutput> {
  for (let attempt = 0; ; attempt++) {
    try {
      const proc = Bun.spawn([file], {
        env: opts.env,
        stdin: new TextEncoder().encode(opts.stdin),
        stdout: "pipe",
        stderr: "pipe",
      });
      const [stdout, stderr, exitCode] = await Promise.all([
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
        proc.exited,
      ]);
      return { stdout, stderr, exitCode };
    } catch (e) {
      const msg = (e as Error).message ?? String(e);
      const busy = (e as { code?: string }).code === "ETXTBSY" || /text file busy/i.test(msg);
      if (busy && attempt < 10) {
        await sleep(20 * (attempt + 1));
        continue;
      }
      throw new CniError(ErrorCode.IOFailure, `failed to run plugin ${file}: ${msg}`);
    }
  }
}

/**
 * Turn a finished run into its JSON output: the parsed stdout on success, a CniError on failure
 * (the plugin's own spec error, or its stderr when stdout is empty).
 */
export function parseOutput(out: RawOutput, file: string): unknown {
  if (out.exitCode !== 0) {
    const text = out.stdout.trim();
    if (text === "") {
      const msg = out.stderr.trim() || `plugin ${file} exited with code ${out.exitCode}`;
      throw new CniError(ErrorCode.Internal, msg);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new CniError(
        ErrorCode.Internal,
        `netplugin failed but error parsing its diagnostic message "${text}": ${(e as Error).message}`,
      );
    }
    if (!isCniErrorJson(parsed)) {
      throw new CniError(ErrorCode.Internal, `netplugin failed with no error code: ${text}`);
    }
    throw new CniError(parsed.code, String(parsed.msg), parsed.details ? String(parsed.details) : "", parsed.cniVersion);
  }
  const text = out.stdout.trim();
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `failed to parse plugin ${file} output "${text}": ${(e as Error).message}`);
  }
}
