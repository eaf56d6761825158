/**
 * Loading network configurations from files and directories, with libcni's rules: `.conf`,
 * `.conflist` and `.json` files in lexicographic order; a single `.conf` wrapped as a list of one;
 * the highest supported version from `cniVersions`; extra plugins from `<dir>/<network>/*.conf`
 * unless `loadOnlyInlinedPlugins`.
 */

import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { CniError, ErrorCode } from "../spec/error.ts";
import type { NetConf, NetConfList } from "../spec/netconf.ts";
import { validateNetworkName } from "../spec/validate.ts";
import { compareVersions, isSupportedVersion, normalizeVersion } from "../spec/version.ts";

/** A loaded, validated list: the raw plugin objects plus the list's settings. */
export interface NetworkConfigList {
  name: string;
  cniVersion: string;
  disableCheck: boolean;
  disableGC: boolean;
  loadOnlyInlinedPlugins: boolean;
  /** Plugin configs in invocation order (inline first, then from the plugins directory). */
  plugins: NetConf[];
  /** The list as JSON text (what the result cache stores). */
  bytes: string;
  /** The file it came from, when loaded from disk. */
  source?: string;
}

/** File extensions the loader reads, as kubelet does. */
export const CONF_EXTENSIONS = [".conf", ".conflist", ".json"] as const;

const invalid = (msg: string, source?: string) =>
  new CniError(ErrorCode.InvalidNetworkConfig, source ? `${source}: ${msg}` : msg);

function parseJSONObject(text: string, what: string, source?: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `${source ? `${source}: ` : ""}error parsing ${what}: ${(e as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new CniError(ErrorCode.DecodingFailure, `${source ? `${source}: ` : ""}error parsing ${what}: not a JSON object`);
  }
  return raw as Record<string, unknown>;
}

function checkPlugin(p: unknown, where: string, source?: string): NetConf {
  if (typeof p !== "object" || p === null || Array.isArray(p)) throw invalid(`${where}: plugin is not a JSON object`, source);
  const t = (p as Record<string, unknown>).type;
  if (typeof t !== "string" || t === "") throw invalid(`${where}: missing 'type'`, source);
  return p as NetConf;
}

function flag(v: unknown, key: string, source?: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === "boolean") return v;
  if (typeof v === "string" && ["true", "false"].includes(v.toLowerCase())) return v.toLowerCase() === "true";
  throw invalid(`invalid value for '${key}': ${JSON.stringify(v)} (want true or false)`, source);
}

/** Pick the version a config runs with: the highest supported one of `cniVersions`, else `cniVersion`. */
export function pickVersion(raw: Record<string, unknown>, source?: string): string {
  const versions = raw.cniVersions;
  if (versions !== undefined) {
    if (!Array.isArray(versions) || !versions.every((v) => typeof v === "string")) {
      throw invalid("'cniVersions' must be a list of strings", source);
    }
    // as libcni: the list's own cniVersion is one more candidate
    const candidates = [...(versions as string[]), ...(typeof raw.cniVersion === "string" && raw.cniVersion ? [raw.cniVersion] : [])];
    const ok = candidates.filter((v) => /^\d+\.\d+\.\d+$/.test(v) && isSupportedVersion(v));
    if (ok.length > 0) return ok.sort(compareVersions).at(-1)!;
    if (versions.length > 0) {
      throw new CniError(ErrorCode.IncompatibleVersion, `${source ? `${source}: ` : ""}none of cniVersions ${JSON.stringify(versions)} is supported`);
    }
  }
  const v = raw.cniVersion;
  if (v !== undefined && typeof v !== "string") throw invalid("'cniVersion' must be a string", source);
  const version = normalizeVersion(v as string | undefined);
  if (!isSupportedVersion(version)) {
    throw new CniError(ErrorCode.IncompatibleVersion, `${source ? `${source}: ` : ""}unsupported cniVersion "${version}"`);
  }
  return version;
}

/** Parse one plugin's config (`.conf`); it must name a `type`. */
export function confFromBytes(text: string, source?: string): NetConf {
  const raw = parseJSONObject(text, "configuration", source);
  return checkPlugin(raw, "configuration", source);
}

/** Wrap a single plugin config as a list of one, as libcni's ConfListFromConf does. */
export function confListFromConf(conf: NetConf, source?: string): NetworkConfigList {
  const name = typeof conf.name === "string" ? conf.name : "";
  validateListName(name, source);
  const cniVersion = pickVersion(conf, source);
  const plugin: NetConf = { ...conf };
  delete plugin.cniVersions;
  const listObj = { cniVersion, name, plugins: [plugin] };
  return {
    name,
    cniVersion,
    disableCheck: false,
    disableGC: false,
    loadOnlyInlinedPlugins: true,
    plugins: [plugin],
    bytes: JSON.stringify(listObj),
    ...(source ? { source } : {}),
  };
}

function validateListName(name: string, source?: string): void {
  try {
    validateNetworkName(name);
  } catch (e) {
    throw invalid((e as CniError).toString(), source);
  }
}

/** Parse a network configuration list (`.conflist`); `extraPlugins` come after the inline ones. */
export function confListFromBytes(text: string, opts: { source?: string; extraPlugins?: NetConf[] } = {}): NetworkConfigList {
  const { source } = opts;
  const raw = parseJSONObject(text, "configuration list", source);
  if (typeof raw.name !== "string" || raw.name === "") throw invalid("error parsing configuration list: no name", source);
  validateListName(raw.name, source);
  const cniVersion = pickVersion(raw, source);
  const inline = raw.plugins;
  if (inline !== undefined && !Array.isArray(inline)) throw invalid("error parsing configuration list: 'plugins' is not a list", source);
  const loadOnlyInlinedPlugins = flag(raw.loadOnlyInlinedPlugins, "loadOnlyInlinedPlugins", source);
  const plugins = ((inline as unknown[] | undefined) ?? []).map((p, i) => checkPlugin(p, `plugin ${i}`, source));
  if (!loadOnlyInlinedPlugins) plugins.push(...(opts.extraPlugins ?? []));
  if (plugins.length === 0) {
    throw invalid(inline === undefined ? "error parsing configuration list: no 'plugins' key" : "error parsing configuration list: no plugins in list", source);
  }
  return {
    name: raw.name,
    cniVersion,
    disableCheck: flag(raw.disableCheck, "disableCheck", source),
    disableGC: flag(raw.disableGC, "disableGC", source),
    loadOnlyInlinedPlugins,
    plugins,
    bytes: text,
    ...(source ? { source } : {}),
  };
}

/** Build a list from an object (for runtimes that hold configs in memory). */
export function confListFromObject(list: NetConfList | NetConf): NetworkConfigList {
  const text = JSON.stringify(list);
  return "plugins" in list ? confListFromBytes(text) : confListFromConf(confFromBytes(text));
}

/** Files in `dir` with one of `extensions`, sorted by name; missing dir gives none. */
export function confFiles(dir: string, extensions: readonly string[] = CONF_EXTENSIONS): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return [];
    throw new CniError(ErrorCode.IOFailure, `reading config directory ${dir}: ${(e as Error).message}`);
  }
  return names
    .filter((n) => extensions.some((ext) => n.endsWith(ext)))
    .sort()
    .map((n) => join(dir, n))
    .filter((p) => {
      try {
        return statSync(p).isFile();
      } catch {
        return false;
      }
    });
}

function pluginsFromDir(dir: string, name: string): NetConf[] {
  return confFiles(join(dir, name), [".conf"]).map((f) => confFromBytes(readFileSync(f, "utf8"), f));
}

/**
 * Load one file as a list: `.conflist` (or any file with a `plugins` key) as a list, otherwise a
 * single config wrapped as a list of one.
 */
export function confListFromFile(file: string): NetworkConfigList {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new CniError(ErrorCode.IOFailure, `reading ${file}: ${(e as Error).message}`);
  }
  const raw = parseJSONObject(text, "configuration", file);
  if (file.endsWith(".conflist") || "plugins" in raw) {
    const name = typeof raw.name === "string" ? raw.name : "";
    const extra = name && !flag(raw.loadOnlyInlinedPlugins, "loadOnlyInlinedPlugins", file) && /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)
      ? pluginsFromDir(dirname(file), name)
      : [];
    return confListFromBytes(text, { source: file, extraPlugins: extra });
  }
  return confListFromConf(checkPlugin(raw, "configuration", file), file);
}

/** Every network in `dir`, in file order; invalid files are reported, and a later duplicate name is skipped. */
export function loadConfLists(dir: string): { lists: NetworkConfigList[]; errors: CniError[] } {
  const lists: NetworkConfigList[] = [];
  const errors: CniError[] = [];
  const seen = new Map<string, string>();
  for (const file of confFiles(dir)) {
    try {
      const l = confListFromFile(file);
      const first = seen.get(l.name);
      if (first) {
        errors.push(invalid(`duplicate network name "${l.name}" (already defined in ${basename(first)}); ignored`, file));
        continue;
      }
      seen.set(l.name, file);
      lists.push(l);
    } catch (e) {
      errors.push(e instanceof CniError ? e : new CniError(ErrorCode.InvalidNetworkConfig, `${file}: ${(e as Error).message}`));
    }
  }
  return { lists, errors };
}

/** The network named `name` in `dir` (the first file defining it); a clear error when absent. */
export function loadConfList(dir: string, name: string): NetworkConfigList {
  const { lists, errors } = loadConfLists(dir);
  const found = lists.find((l) => l.name === name);
  if (found) return found;
  const skipped = errors.filter((e) => !e.message.includes("duplicate network name"));
  const why = skipped.length > 0 ? `; invalid files skipped: ${skipped.map((e) => e.toString()).join("; ")}` : "";
  throw new CniError(ErrorCode.InvalidNetworkConfig, `no net configuration with name "${name}" in ${dir}${why}`);
}

/** The default network: the first valid one in lexicographic file order, as kubelet picks it. */
export function defaultConfList(dir: string): NetworkConfigList {
  const { lists, errors } = loadConfLists(dir);
  if (lists.length > 0) return lists[0]!;
  const why = errors.length > 0 ? `: ${errors.map((e) => e.toString()).join("; ")}` : "";
  throw new CniError(ErrorCode.InvalidNetworkConfig, `no valid network configuration found in ${dir}${why}`);
}
