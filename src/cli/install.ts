/**
 * `cnikit install` and `cnikit uninstall`: put the binary, the shim and a link per plugin type into
 * a bin dir, then a CNI config into a conf dir, every file through a temp file and a rename (a
 * runtime never execs half a binary, kubelet never reads half a config), recording what was written
 * in a manifest (`.cnikit-install`) in each directory, so that a file cnikit did not write is never
 * overwritten (unless --force) and uninstall removes exactly what install wrote.
 */

import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { builtinTypes } from "../invoke/builtin.ts";
import { flagString, parseArgs } from "./args.ts";
import { loopbackConf, modeConfig, modesUsage, MODES } from "./modes.ts";
import { reportError } from "./output.ts";
import { CURRENT_VERSION } from "../spec/version.ts";

/** Usage text. */
export const INSTALL_USAGE = `usage: cnikit install --bin-dir DIR [--conf-dir DIR [--conflist FILE | --mode M --subnet CIDR]
                      [--conf-name NAME]] [--force] [--no-shim]

Copy the cnikit binary to DIR/cnikit and cnikit-shim (from beside the binary) to DIR/cnikit-shim,
each through a temp file and a rename, and link every plugin type (bridge, host-local, ...) to the
shim, so runtimes find cnikit's plugins in DIR (their CNI_PATH). The shim hands each call to the
node daemon (cnikit agent) and runs DIR/cnikit itself when no daemon answers. With --no-shim the
types link to the binary (every call is a standalone run).

Then, with --conf-dir, the CNI config, also through a temp file and a rename, as NAME:
  --conflist FILE         this config list (e.g. a ConfigMap's cni-conf.json)
  --mode M --subnet CIDR  the list of a one-word mode (below)
  (neither)               a default network (bridge cni0, host-local over 10.88.0.0/16), only
                          when the directory holds no configuration yet
  --conf-name NAME        the file's name (default 10-cnikit.conflist)
  --mtu N                 bridge, macvlan, ipvlan: the pods' MTU
  --master IF             macvlan, ipvlan: the parent interface (default: the default route's)
  --non-masquerade-cidr CIDR  bridge: traffic to it is not masqueraded (default 10.0.0.0/8)
  --subnet-len N          the agent's modes: each node's subnet length (default 24)
  --net-conf FILE         the agent's modes: where the network config goes (default
                          /etc/cnikit/net-conf.json; give the same to cnikit agent --net-conf)

Modes (--subnet is the node's pod CIDR for bridge, macvlan and ipvlan, the cluster CIDR for
the others, whose nodes run cnikit agent with etcd):
${modesUsage()}
What was written is recorded in .cnikit-install in each directory. A file cnikit did not write
(a reference plugin of a type's name, another CNI's config, a config edited since) is left
alone unless --force is given. When the first config in lexicographic order (the one kubelet,
containerd and CRI-O use) is not cnikit's, install says which it is.
`;

/** Usage of `cnikit uninstall`. */
export const UNINSTALL_USAGE = `usage: cnikit uninstall [--bin-dir DIR] [--conf-dir DIR] [--net-conf FILE] [--force]

Remove exactly what cnikit install wrote there (as recorded in each directory's .cnikit-install):
the binary, the shim, the plugin links, the CNI config, the network config. A recorded file
changed since (a config edited by hand, a link pointing elsewhere) is kept unless --force.
`;

/** The manifest's file name in each directory install writes to (no config extension: no runtime loads it). */
export const MANIFEST = ".cnikit-install";

/** The config file name install writes by default. */
export const DEFAULT_CONF_NAME = "10-cnikit.conflist";

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
  return { cniVersion: CURRENT_VERSION, name: "cnikit", plugins };
}

/** What a manifest records of one name: a file by content hash, or a link by target. */
type Entry = { sha256: string } | { link: string };

/** A directory's record of what install wrote there. */
interface ManifestData {
  written: Record<string, Entry>;
}

const sha256 = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");

function readManifest(dir: string): ManifestData {
  try {
    const m = JSON.parse(readFileSync(join(dir, MANIFEST), "utf8")) as ManifestData;
    if (m && typeof m.written === "object" && m.written) return m;
  } catch {
    // none yet (or unreadable: treated as none, so nothing present counts as ours by record)
  }
  return { written: {} };
}

/** Write `data` as `dir/name` through a temp file beside it and a rename (never half a file). */
export function writeAtomic(dir: string, name: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = join(dir, `.${name}.tmp-${process.pid}`);
  try {
    writeFileSync(tmp, data, { mode });
    chmodSync(tmp, mode);
    renameSync(tmp, join(dir, name));
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

function writeManifest(dir: string, m: ManifestData): void {
  if (Object.keys(m.written).length === 0) {
    rmSync(join(dir, MANIFEST), { force: true });
    return;
  }
  const sorted = Object.fromEntries(Object.entries(m.written).sort(([a], [b]) => (a < b ? -1 : 1)));
  writeAtomic(dir, MANIFEST, `${JSON.stringify({ written: sorted }, null, 2)}\n`);
}

/** What is at `dir/name` now, in the manifest's terms; undefined when nothing is there. */
function current(dir: string, name: string): Entry | undefined {
  const p = join(dir, name);
  let st;
  try {
    st = lstatSync(p);
  } catch {
    return undefined;
  }
  if (st.isSymbolicLink()) return { link: readlinkSync(p) };
  if (!st.isFile()) return { sha256: "not a regular file" };
  return { sha256: sha256(readFileSync(p)) };
}

const sameEntry = (a: Entry | undefined, b: Entry | undefined) => !!a && !!b && JSON.stringify(a) === JSON.stringify(b);

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
 * (copied beside as cnikit-shim) when given, else to the binary. Records what it wrote in
 * `binDir/.cnikit-install`.
 */
export function installInto(binDir: string, opts: { source: string; shim?: string; types: string[]; force?: boolean }): InstallReport {
  mkdirSync(binDir, { recursive: true, mode: 0o755 });
  const manifest = readManifest(binDir);
  const target = join(binDir, "cnikit");
  // copy beside, then rename: replacing a binary that is running is fine this way
  copyAtomic(opts.source, target);
  manifest.written.cnikit = { sha256: sha256(readFileSync(target)) };
  const report: InstallReport = { binary: target, linked: [], kept: [], replaced: [] };
  if (opts.shim) {
    report.shim = join(binDir, "cnikit-shim");
    copyAtomic(opts.shim, report.shim);
    manifest.written["cnikit-shim"] = { sha256: sha256(readFileSync(report.shim)) };
  }
  const to = opts.shim ? "cnikit-shim" : "cnikit";
  for (const type of opts.types) {
    const link = join(binDir, type);
    const now = current(binDir, type);
    const ours = now && "link" in now && (now.link === "cnikit" || now.link === "cnikit-shim");
    if (ours && now.link === to) {
      manifest.written[type] = { link: to };
      report.linked.push(type);
      continue;
    }
    if (now && !ours) {
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
    manifest.written[type] = { link: to };
    report.linked.push(type);
  }
  writeManifest(binDir, manifest);
  return report;
}

/** One config file to write. */
export interface ConfFile {
  name: string;
  content: string;
}

/** What became of the config files. */
export interface ConfReport {
  written: string[];
  /** Present, not written by cnikit (or changed since): left alone. */
  kept: string[];
  /** Present, not cnikit's, overwritten because of --force. */
  replaced: string[];
}

/**
 * Write config files into `dir` (each temp file + rename), recording them in `dir/.cnikit-install`.
 * A file already there is replaced only when it is what cnikit wrote last (its hash as recorded),
 * holds the very content to write, or `force` is set.
 */
export function writeConfFiles(dir: string, files: readonly ConfFile[], o: { force?: boolean } = {}): ConfReport {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const manifest = readManifest(dir);
  const report: ConfReport = { written: [], kept: [], replaced: [] };
  for (const f of files) {
    const want: Entry = { sha256: sha256(f.content) };
    const now = current(dir, f.name);
    const ours = !now || sameEntry(now, manifest.written[f.name]) || sameEntry(now, want);
    if (!ours) {
      if (!o.force) {
        report.kept.push(f.name);
        continue;
      }
      report.replaced.push(f.name);
    }
    // record before the rename: a crash between the two leaves a record of a file that is
    // either the old one (hash differs: kept by uninstall) or ours
    manifest.written[f.name] = want;
    writeManifest(dir, manifest);
    if (!sameEntry(now, want)) writeAtomic(dir, f.name, f.content);
    report.written.push(f.name);
  }
  return report;
}

/** Config files as libcni (kubelet, containerd, CRI-O) lists them: `.conf`, `.conflist`, `.json`, in byte order. */
export function configFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => /\.(conf|conflist|json)$/.test(n)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Write the default network into `confDir` unless it already holds a configuration (other than its own); returns the file written. */
export function writeDefaultConf(confDir: string, types: readonly string[]): string | undefined {
  const ours = readManifest(confDir).written[DEFAULT_CONF_NAME];
  const existing = configFiles(confDir).filter((n) => !(n === DEFAULT_CONF_NAME && ours));
  if (existing.length > 0) return undefined;
  const r = writeConfFiles(confDir, [{ name: DEFAULT_CONF_NAME, content: `${JSON.stringify(defaultNetwork(types), null, 2)}\n` }]);
  return r.written.length ? join(confDir, DEFAULT_CONF_NAME) : undefined;
}

/** Check a config (list) text for what a runtime needs before it lands in the conf dir. */
export function checkConfText(text: string, name: string, from: string): void {
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(text);
  } catch (e) {
    throw new Error(`${from}: not JSON: ${(e as Error).message}`);
  }
  if (typeof c !== "object" || c === null || Array.isArray(c)) throw new Error(`${from}: not a JSON object`);
  if (typeof c.name !== "string" || c.name === "") throw new Error(`${from}: "name" is missing`);
  if (name.endsWith(".conflist")) {
    if (!Array.isArray(c.plugins) || c.plugins.length === 0) throw new Error(`${from}: a .conflist needs a non-empty "plugins" list`);
    for (const [i, p] of (c.plugins as unknown[]).entries()) {
      if (typeof p !== "object" || p === null || typeof (p as { type?: unknown }).type !== "string") throw new Error(`${from}: plugins[${i}] has no "type"`);
    }
  } else if (!Array.isArray(c.plugins) && typeof c.type !== "string") {
    throw new Error(`${from}: a .conf needs a "type"`);
  }
}

function checkConfName(name: string): void {
  if (name.includes("/") || name.startsWith(".") || !/\.(conf|conflist|json)$/.test(name)) {
    throw new Error(`--conf-name ${JSON.stringify(name)} must be a file name ending in .conf, .conflist or .json`);
  }
}

/** Run `cnikit install`. */
export async function installCommand(argv: readonly string[]): Promise<number> {
  try {
    const p = parseArgs(argv, ["force", "no-shim"]);
    if (p.flags.help) {
      process.stdout.write(INSTALL_USAGE);
      return 0;
    }
    const known = new Set(["help", "bin-dir", "conf-dir", "conflist", "conf-name", "mode", "subnet", "mtu", "master", "non-masquerade-cidr", "subnet-len", "net-conf", "force", "no-shim"]);
    const unknown = Object.keys(p.flags).find((k) => !known.has(k));
    if (unknown || p.positional.length) throw new Error(`install: unknown argument ${unknown ? `--${unknown}` : p.positional[0]} (see cnikit install --help)`);
    const opt = (k: string) => flagString(p, k);
    const binDir = opt("bin-dir");
    if (!binDir) {
      process.stderr.write(INSTALL_USAGE);
      return 2;
    }
    const confDir = opt("conf-dir");
    const confName = opt("conf-name") ?? DEFAULT_CONF_NAME;
    checkConfName(confName);
    const mode = opt("mode");
    const conflistFile = opt("conflist");
    if (mode && conflistFile) throw new Error("install: give --mode or --conflist, not both");
    if ((mode || conflistFile || opt("conf-name")) && !confDir) throw new Error("install: --mode, --conflist and --conf-name need --conf-dir");
    const force = p.flags.force === true;
    // everything about the config is worked out before any file is touched: a bad flag changes nothing
    const confFiles: ConfFile[] = [];
    let netConf: { path: string; content: string } | undefined;
    if (conflistFile) {
      const text = readFileSync(conflistFile, "utf8");
      checkConfText(text, confName, conflistFile);
      confFiles.push({ name: confName, content: text.endsWith("\n") ? text : `${text}\n` });
    } else if (mode) {
      const subnet = opt("subnet");
      if (!subnet) throw new Error(`install: --mode ${mode} needs --subnet CIDR`);
      const num = (k: string) => (opt(k) === undefined ? undefined : Number(opt(k)));
      const mc = modeConfig(mode, {
        subnet,
        ...(num("mtu") !== undefined ? { mtu: num("mtu")! } : {}),
        ...(opt("master") ? { master: opt("master")! } : {}),
        ...(opt("non-masquerade-cidr") ? { nonMasqueradeCIDR: opt("non-masquerade-cidr")! } : {}),
        ...(num("subnet-len") !== undefined ? { subnetLen: num("subnet-len")! } : {}),
      });
      confFiles.push({ name: confName, content: `${JSON.stringify(mc.conflist, null, 2)}\n` });
      if (mode === "bridge") confFiles.push({ name: "99-loopback.conf", content: `${JSON.stringify(loopbackConf(), null, 2)}\n` });
      if (mc.netConf) netConf = { path: opt("net-conf") ?? "/etc/cnikit/net-conf.json", content: `${JSON.stringify(mc.netConf, null, 2)}\n` };
    }
    if (!isCompiledBinary()) {
      throw new Error("install copies the compiled binary: run `npm run build` and use dist/cnikit");
    }
    const noShim = p.flags["no-shim"] === true;
    const shim = join(dirname(process.execPath), "cnikit-shim");
    if (!noShim && !existsSync(shim)) throw new Error(`install: ${shim} is missing (npm run build makes it beside dist/cnikit); or give --no-shim`);
    // binaries first: the config that makes runtimes call them comes last
    const r = installInto(binDir, { source: process.execPath, ...(noShim ? {} : { shim }), types: builtinTypes().sort(), force });
    process.stdout.write(`installed ${r.binary}${r.shim ? ` and ${r.shim}` : ""}\n`);
    if (r.linked.length) process.stdout.write(`linked to ${r.shim ? "cnikit-shim" : "cnikit"}: ${r.linked.join(" ")}\n`);
    if (r.replaced.length) process.stdout.write(`replaced (--force): ${r.replaced.join(" ")}\n`);
    if (r.kept.length) process.stdout.write(`kept foreign files (use --force to replace): ${r.kept.join(" ")}\n`);
    let kept = false;
    if (netConf) {
      const d = dirname(netConf.path);
      const name = netConf.path.slice(d.length + 1);
      const nr = writeConfFiles(d, [{ name, content: netConf.content }], { force });
      if (nr.written.length) process.stdout.write(`wrote ${netConf.path} (the network config: give it to cnikit agent --net-conf)\n`);
      else {
        kept = true;
        process.stdout.write(`${netConf.path} exists and was not written by cnikit (or was changed since): left as it is (use --force to replace)\n`);
      }
    }
    if (confDir) {
      if (confFiles.length === 0) {
        const written = writeDefaultConf(confDir, builtinTypes());
        process.stdout.write(written ? `wrote ${written}\n` : `${confDir} already holds a network configuration; left as it is\n`);
      } else {
        const cr = writeConfFiles(confDir, confFiles, { force });
        for (const n of cr.written) process.stdout.write(`wrote ${join(confDir, n)}${cr.replaced.includes(n) ? " (replaced, --force)" : ""}\n`);
        for (const n of cr.kept) process.stdout.write(`${join(confDir, n)} exists and was not written by cnikit (or was changed since): left as it is (use --force to replace)\n`);
        if (cr.kept.includes(confName)) kept = true;
      }
      const first = configFiles(confDir)[0];
      const ours = readManifest(confDir).written;
      if (first && !(first in ours && sameEntry(current(confDir, first), ours[first]))) {
        process.stdout.write(
          `note: kubelet, containerd and CRI-O use the first config in lexicographic order, ${join(confDir, first)}, which is not cnikit's` +
            ` (cnikit's is ${confName}): remove or rename that file, or install with --conf-name 00-cnikit.conflist\n`,
        );
      }
    }
    return kept ? 1 : 0;
  } catch (e) {
    return reportError(e);
  }
}

/** What uninstall did in one directory. */
export interface UninstallReport {
  removed: string[];
  /** Recorded, but changed since (or not a file any more): left alone. */
  kept: string[];
}

/** Remove what the manifest in `dir` records (as recorded, or anything of those names with `force`), then the manifest. */
export function uninstallFrom(dir: string, o: { force?: boolean; only?: string } = {}): UninstallReport {
  const m = readManifest(dir);
  const out: UninstallReport = { removed: [], kept: [] };
  for (const [name, entry] of Object.entries(m.written)) {
    if (o.only !== undefined && name !== o.only) continue;
    const now = current(dir, name);
    if (now && !sameEntry(now, entry) && !o.force) {
      out.kept.push(name);
      continue;
    }
    if (now) {
      rmSync(join(dir, name), { force: true });
      out.removed.push(name);
    }
    delete m.written[name];
  }
  if (existsSync(join(dir, MANIFEST))) writeManifest(dir, m);
  return out;
}

/** Run `cnikit uninstall`. */
export async function uninstallCommand(argv: readonly string[]): Promise<number> {
  try {
    const p = parseArgs(argv, ["force"]);
    if (p.flags.help) {
      process.stdout.write(UNINSTALL_USAGE);
      return 0;
    }
    const known = new Set(["help", "bin-dir", "conf-dir", "net-conf", "force"]);
    const unknown = Object.keys(p.flags).find((k) => !known.has(k));
    if (unknown || p.positional.length) throw new Error(`uninstall: unknown argument ${unknown ? `--${unknown}` : p.positional[0]} (see cnikit uninstall --help)`);
    const force = p.flags.force === true;
    const targets: { dir: string; only?: string }[] = [];
    // the config first, the binaries last: a runtime never finds a config without its plugins
    if (flagString(p, "conf-dir")) targets.push({ dir: flagString(p, "conf-dir")! });
    const nc = flagString(p, "net-conf");
    if (nc) targets.push({ dir: dirname(nc), only: nc.slice(dirname(nc).length + 1) });
    if (flagString(p, "bin-dir")) targets.push({ dir: flagString(p, "bin-dir")! });
    if (targets.length === 0) {
      process.stderr.write(UNINSTALL_USAGE);
      return 2;
    }
    let kept = 0;
    for (const t of targets) {
      const r = uninstallFrom(t.dir, { force, ...(t.only ? { only: t.only } : {}) });
      if (r.removed.length) process.stdout.write(`removed from ${t.dir}: ${r.removed.join(" ")}\n`);
      if (r.kept.length) process.stdout.write(`kept in ${t.dir} (changed since install; --force removes them): ${r.kept.join(" ")}\n`);
      if (!r.removed.length && !r.kept.length) process.stdout.write(`nothing of cnikit's recorded in ${t.dir}\n`);
      kept += r.kept.length;
    }
    return kept ? 1 : 0;
  } catch (e) {
    return reportError(e);
  }
}

/** The mode names (for completion and tests). */
export const MODE_NAMES = MODES.map((m) => m.name);
