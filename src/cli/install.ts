/**
 * `cnikit install --bin-dir DIR [--conf-dir DIR] [--force] [--no-shim]`: copy this binary to
 * DIR/cnikit and the shim beside it to DIR/cnikit-shim, and link every built-in plugin type to the
 * shim (to the binary with --no-shim); a foreign file of the same name is kept unless --force.
 */

import { copyFileSync, chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { builtinTypes } from "../invoke/builtin.ts";
import { flagString, parseArgs } from "./args.ts";
import { reportError } from "./output.ts";

/** Usage text. */
export const INSTALL_USAGE = `usage: cnikit install --bin-dir DIR [--conf-dir DIR] [--force] [--no-shim]

Copy the cnikit binary to DIR/cnikit and cnikit-shim (from beside the binary) to DIR/cnikit-shim,
each through a temp file and a rename, and link every plugin type (bridge, host-local, ...) to the
shim, so runtimes find cnikit's plugins in DIR (their CNI_PATH). The shim hands each call to the
node daemon (cnikit agent) and runs DIR/cnikit itself when no daemon answers. With --no-shim the
types link to the binary (every call is a standalone run).
A file of a plugin's name that is not a link to cnikit or the shim (e.g. a reference plugin) is
left alone unless --force is given.
With --conf-dir, also write a default network (10-cnikit.conflist: bridge cni0 with host-local
over 10.88.0.0/16) there when the directory holds no network configuration yet.
`;

/** The default network `install --conf-dir` writes. */
export function defaultNetwork(types: readonly string[]): Record<string, unknown> {
  const plugins: Record<string, unknown>[] = [
    {
      type: "bridge",
      bridge: "cni0",
      isGateway: true,
      isDefaultGateway: true,
      hairpinMode: true,
      ipam: { type: "host-local", ranges: [[{ subnet: "10.88.0.0/16" }]], routes: [{ dst: "0.0.0.0/0" }] },
    },
  ];
  if (types.includes("portmap")) plugins.push({ type: "portmap", capabilities: { portMappings: true } });
  return { cniVersion: "1.1.0", name: "cnikit", plugins };
}

/** Write the default network into `confDir` unless it already holds a configuration; returns the file written. */
export function writeDefaultConf(confDir: string, types: readonly string[]): string | undefined {
  mkdirSync(confDir, { recursive: true, mode: 0o755 });
  const existing = readdirSync(confDir).filter((n) => /\.(conf|conflist|json)$/.test(n));
  if (existing.length > 0) return undefined;
  const file = join(confDir, "10-cnikit.conflist");
  writeFileSync(file, `${JSON.stringify(defaultNetwork(types), null, 2)}\n`, { mode: 0o644 });
  return file;
}

/** Whether this process is the compiled binary (not `bun src/main.ts`). */
export function isCompiledBinary(): boolean {
  return (process.argv[1] ?? "").startsWith("/$bunfs/");
}

/** What happened to each name in the bin dir. */
export interface InstallReport {
  binary: string;
  /** The shim's path (absent with --no-shim). */
  shim?: string;
  linked: string[];
  kept: string[];
  replaced: string[];
}

/** Copy `source` to `target` through a temp file beside it and a rename (never half a file). */
function copyAtomic(source: string, target: string): void {
  const tmp = join(dirname(target), `.${target.slice(dirname(target).length + 1)}.tmp-${process.pid}`);
  try {
    copyFileSync(source, tmp);
    chmodSync(tmp, 0o755);
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Install `source` (the compiled binary) into `binDir` with a link per plugin type: to `shim`
 * (copied beside as cnikit-shim) when given, else to the binary.
 */
export function installInto(binDir: string, opts: { source: string; shim?: string; types: string[]; force?: boolean }): InstallReport {
  mkdirSync(binDir, { recursive: true, mode: 0o755 });
  const target = join(binDir, "cnikit");
  // copy beside, then rename: replacing a binary that is running is fine this way
  copyAtomic(opts.source, target);
  const report: InstallReport = { binary: target, linked: [], kept: [], replaced: [] };
  if (opts.shim) {
    report.shim = join(binDir, "cnikit-shim");
    copyAtomic(opts.shim, report.shim);
  }
  const to = opts.shim ? "cnikit-shim" : "cnikit";
  for (const type of opts.types) {
    const link = join(binDir, type);
    let existing: "none" | "ours" | "other-ours" | "foreign" = "none";
    try {
      const st = lstatSync(link);
      const dest = st.isSymbolicLink() ? readlinkSync(link) : "";
      existing = dest === to ? "ours" : dest === "cnikit" || dest === "cnikit-shim" ? "other-ours" : "foreign";
    } catch {
      existing = "none";
    }
    if (existing === "ours") {
      report.linked.push(type);
      continue;
    }
    if (existing === "foreign") {
      if (!opts.force) {
        report.kept.push(type);
        continue;
      }
      report.replaced.push(type);
    }
    // a new link under a temp name, renamed over the old one: the type is never missing
    const tmp = join(binDir, `.${type}.tmp-${process.pid}`);
    rmSync(tmp, { force: true });
    symlinkSync(to, tmp);
    renameSync(tmp, link);
    report.linked.push(type);
  }
  return report;
}

/** Run `cnikit install`. */
export async function installCommand(argv: readonly string[]): Promise<number> {
  try {
    const p = parseArgs(argv, ["force", "no-shim"]);
    if (p.flags.help) {
      process.stdout.write(INSTALL_USAGE);
      return 0;
    }
    const binDir = flagString(p, "bin-dir");
    if (!binDir) {
      process.stderr.write(INSTALL_USAGE);
      return 2;
    }
    if (!isCompiledBinary()) {
      throw new Error("install copies the compiled binary: run `npm run build` and use dist/cnikit");
    }
    const noShim = p.flags["no-shim"] === true;
    const shim = join(dirname(process.execPath), "cnikit-shim");
    if (!noShim && !existsSync(shim)) throw new Error(`install: ${shim} is missing (npm run build makes it beside dist/cnikit); or give --no-shim`);
    const r = installInto(binDir, { source: process.execPath, ...(noShim ? {} : { shim }), types: builtinTypes().sort(), force: p.flags.force === true });
    process.stdout.write(`installed ${r.binary}${r.shim ? ` and ${r.shim}` : ""}\n`);
    if (r.linked.length) process.stdout.write(`linked to ${r.shim ? "cnikit-shim" : "cnikit"}: ${r.linked.join(" ")}\n`);
    if (r.replaced.length) process.stdout.write(`replaced (--force): ${r.replaced.join(" ")}\n`);
    if (r.kept.length) process.stdout.write(`kept foreign files (use --force to replace): ${r.kept.join(" ")}\n`);
    const confDir = flagString(p, "conf-dir");
    if (confDir) {
      const written = writeDefaultConf(confDir, builtinTypes());
      process.stdout.write(written ? `wrote ${written}\n` : `${confDir} already holds a network configuration; left as it is\n`);
    }
    return 0;
  } catch (e) {
    return reportError(e);
  }
}
