/**
 * Entry point of the multicall binary: started under a plugin type's name (through a link made by
 * `cnikit install`) it runs that plugin; started as `cnikit` it runs the command line.
 * Everything is imported lazily so a plugin run loads only that plugin's code.
 */

import { builtinLoader, registerBuiltins, setShimInProcess } from "./invoke/builtin.ts";
import { baseName } from "./sys/path.ts";
import { BUILTIN_PLUGINS } from "./plugin-table.ts";
import type { Plugin } from "./skel/plugin.ts";

/** Stands in for a built-in plugin when only VERSION is asked. */
const VERSION_ONLY: Plugin = {
  add: () => {
    throw new Error("VERSION_ONLY stands in for VERSION only");
  },
  del: () => {},
};

async function main(): Promise<never> {
  registerBuiltins(BUILTIN_PLUGINS);
  const self = baseName(process.argv0 || "cnikit");
  const load = BUILTIN_PLUGINS[self] ? builtinLoader(self) : undefined; // as registered: keeps attachment records
  if (load) {
    // a delegate that CNI_PATH resolves to a cnikit-shim runs here too: this standalone run is
    // what that shim would exec when no daemon answers
    setShimInProcess(true);
    const { pluginMain } = await import("./skel/skel.ts");
    // VERSION needs nothing of the plugin (every built-in type supports every spec version), so
    // it is answered without loading the plugin's modules (netlink, FFI, ...).
    if (process.env.CNI_COMMAND === "VERSION") return pluginMain(VERSION_ONLY);
    return pluginMain(await load());
  }
  const { cliMain } = await import("./cli/cli.ts");
  process.exit(await cliMain(process.argv.slice(2)));
}

void main();
