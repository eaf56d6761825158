/** A plugin's own config keys, decoded with `spec/decode`'s codecs (Go's rules). */

import { decode, type Codec, type ObjectCodec, type Shape } from "../spec/decode.ts";
import type { CmdArgs } from "./plugin.ts";

/**
 * Decode the invocation's config with `codec`; errors start with `where` (the plugin type). On DEL
 * the decoding is lenient: a key that does not decode is dropped (and logged), so that DEL never
 * fails on a config ADD accepted and still removes what it finds by container id and ifname.
 */
export function pluginConf<T>(args: CmdArgs, codec: Codec<T>, where: string): T {
  return decode(codec, args.config, { where, lenient: args.command === "DEL", warn: args.log });
}

/**
 * Whether the config sets `field` of `codec` (any key Go would match to it, not null), whatever
 * its value. DEL uses it to tell "dataDir not given" (use the default) from "dataDir given but
 * undecodable" (ADD refused it: touch no directory at all, not even the default one).
 */
export function keyGiven(config: object, codec: Pick<ObjectCodec<Shape>, "fieldFor">, field: string): boolean {
  return Object.entries(config).some(([k, v]) => v !== null && v !== undefined && codec.fieldFor(k) === field);
}
