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

/** Register the built-in plugin types (called once by the entry point). */
export function registerBuiltins(loaders: Record<string, PluginLoader>): void {
  for (const [type, load] of Object.entries(loaders)) table.set(type, load);
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

/**
 * Whether the plugin file `path` found for `type` is this very binary (the same file after
 * following links) and `type` is built in, so it may run in-process.
 */
export async function runsInProcess(type: string, path: string): Promise<boolean> {
  if (!table.has(type)) return false;
  selfId ??= fileId(process.execPath);
  const me = await selfId;
  return me !== null && (await fileId(path)) === me;
}
