/**
 * The table of plugin types built into this binary. Only the entry point fills it; `invoke` uses it
 * to run a type in-process when `CNI_PATH` resolves that type to this very binary.
 */

import { realpathSync } from "node:fs";
import type { Plugin } from "../skel/plugin.ts";

/** Loads a built-in plugin's module lazily, so only the invoked plugin's code is loaded. */
export type PluginLoader = () => Promise<Plugin>;

const table = new Map<string, PluginLoader>();
let selfReal: string | null | undefined;

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

function self(): string | null {
  if (selfReal === undefined) {
    try {
      selfReal = realpathSync(process.execPath);
    } catch {
      selfReal = null;
    }
  }
  return selfReal;
}

/**
 * Whether the plugin file `path` found for `type` is this very binary (after following links)
 * and `type` is built in, so it may run in-process.
 */
export function runsInProcess(type: string, path: string): boolean {
  if (!table.has(type)) return false;
  const me = self();
  if (!me) return false;
  try {
    return realpathSync(path) === me;
  } catch {
    return false;
  }
}
