/** A plugin's own config keys, decoded with `spec/decode`'s codecs (Go's rules). */

import { decode, type Codec } from "../spec/decode.ts";
import type { CmdArgs } from "./plugin.ts";

/**
 * Decode the invocation's config with `codec`; errors start with `where` (the plugin type). On DEL
 * the decoding is lenient: a key that does not decode is dropped (and logged), so that DEL never
 * fails on a config ADD accepted and still removes what it finds by container id and ifname.
 */
export function pluginConf<T>(args: CmdArgs, codec: Codec<T>, where: string): T {
  return decode(codec, args.config, { where, lenient: args.command === "DEL", warn: args.log });
}
