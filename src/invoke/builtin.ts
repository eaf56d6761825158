/**
 * The table of plugin types built into this binary. Only the entry point fills it; `invoke` uses it
 * to run a type in-process when `CNI_PATH` resolves that type to this very binary.
 */

import type { Plugin } from "../skel/plugin.ts";

/** Loads a built-in plugin's module lazily, so only the invoked plugin's code is loaded. */
export type PluginLoader = () => Promise<Plugin>;

const table = new Map<string, PluginLoader>();
/** This binary's identity (device and inode, links followed), once known. */
let selfId: Promise<string | null> | undefined;

/**
 * Register the built-in plugin types (called once by the entry point). Each is wrapped so that it
 * keeps attachment records where a state directory is set (src/invoke/records.ts): ADD records
 * first, DEL removes the record, GC also releases the network's stale records of its type.
 */
export function registerBuiltins(loaders: Record<string, PluginLoader>): void {
  for (const [type, load] of Object.entries(loaders)) {
    let wrapped: Promise<Plugin> | undefined;
    table.set(type, () => (wrapped ??= Promise.all([load(), import("./records.ts")]).then(([p, r]) => r.withRecords(type, p))));
  }
}

/** The loader for a built-in type, or undefined. */
export function builtinLoader(type: string): PluginLoader | undefined {
  return table.get(type);
}

/** Names of all built-in plugin types. */
export function builtinTypes(): string[] {
  return [...table.keys()];
}

/** A file's identity, links followed (Bun.file().stat(): `node:fs` costs ~1.2 ms to load). */
async function fileId(path: string): Promise<string | null> {
  try {
    const st = await Bun.file(path).stat();
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

/** Whether a plugin file that is a `cnikit-shim` beside this binary also runs in-process. */
let shimInProcess = false;

/**
 * Let `runsInProcess` treat a `cnikit-shim` (a link to it, or a copy) as this binary: set by the
 * daemon (exec'ing the shim there would only send the call back to itself) and by a standalone
 * plugin run (the shim it would exec falls back to this binary anyway). The runtime commands keep
 * exec'ing the shim, so their calls go to the daemon.
 */
export function setShimInProcess(on: boolean): void {
  shimInProcess = on;
}

/** Name of the shim executable, installed beside the binary. */
export const SHIM_NAME = "cnikit-shim";
/** A string only the shim's executable holds (shim/cnikit-shim.c prints it for --version). */
export const SHIM_MARKER = "cnikit-shim protocol ";

const shimFiles = new Map<string, boolean>();

/**
 * Whether `path` (links followed) is a cnikit shim: named `cnikit-shim`, and either beside a
 * `cnikit` that is this very binary (the one it would fall back to) or holding the shim's marker.
 */
export async function isShimFile(path: string): Promise<boolean> {
  const { realPath } = await import("../sys/file.ts");
  let real: string;
  try {
    real = realPath(path);
  } catch {
    return false;
  }
  if (!real.endsWith(`/${SHIM_NAME}`)) return false;
  selfId ??= fileId(process.execPath);
  const me = await selfId;
  if (me !== null && (await fileId(`${real.slice(0, -SHIM_NAME.length)}cnikit`)) === me) return true;
  const id = await fileId(real);
  if (id === null) return false;
  const st = await Bun.file(real).stat();
  const key = `${id}:${st.size}:${st.mtimeMs}`;
  let known = shimFiles.get(key);
  if (known === undefined) {
    // a static shim is well under 2 MiB; anything larger is not one
    known = st.size < 2 << 20 && Buffer.from(await Bun.file(real).arrayBuffer()).includes(SHIM_MARKER);
    if (shimFiles.size > 64) shimFiles.clear();
    shimFiles.set(key, known);
  }
  return known;
}

/**
 * Whether the plugin file `path` found for `type` is this very binary (the same file after
 * following links), or a cnikit shim when `setShimInProcess(true)` was called, and `type` is
 * built in, so it may run in-process. A foreign plugin of the same name is always executed.
 */
export async function runsInProcess(type: string, path: string): Promise<boolean> {
  if (!table.has(type)) return false;
  selfId ??= fileId(process.execPath);
  const me = await selfId;
  if (me !== null && (await fileId(path)) === me) return true;
  return shimInProcess && (await isShimFile(path));
}
