/** Find a plugin executable by its type in the `CNI_PATH` directories. */

import { statSync } from "node:fs";
import { join } from "node:path";
import { CniError, ErrorCode } from "../spec/error.ts";

/** Split a `CNI_PATH` value into directories (empty entries dropped). */
export function splitPath(path: string | undefined): string[] {
  return (path ?? "").split(":").filter((d) => d !== "");
}

/** The first regular file named `type` in `dirs`; throws a spec error naming the dirs otherwise. */
export function findInPath(type: string, dirs: readonly string[]): string {
  if (!type) throw new CniError(ErrorCode.InvalidNetworkConfig, "no plugin type given");
  if (type.includes("/")) throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid plugin type "${type}": must not contain /`);
  if (dirs.length === 0) throw new CniError(ErrorCode.InvalidEnvironment, `no plugin paths given to find plugin "${type}" (CNI_PATH is empty)`);
  for (const dir of dirs) {
    const p = join(dir, type);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not here; next directory
    }
  }
  throw new CniError(ErrorCode.InvalidEnvironment, `failed to find plugin "${type}" in path [${dirs.join(" ")}]`);
}
