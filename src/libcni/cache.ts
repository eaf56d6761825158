/**
 * The result cache, in libcni's exact format and place: `<cacheDir>/results/<net>-<cid>-<ifname>`,
 * a `cniCacheV1` JSON document (config base64-encoded, as Go marshals bytes), directory mode 0700,
 * file mode 0600. Go runtimes and cnikit read each other's entries.
 */

import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { CniError, ErrorCode } from "../spec/error.ts";
import type { AnyResult } from "../spec/result.ts";

/** The cache's on-disk kind marker. */
export const CACHE_KIND = "cniCacheV1";

/** libcni's default cache directory. */
export const DEFAULT_CACHE_DIR = "/var/lib/cni";

/** One cached attachment (what ADD stored). */
export interface CachedAttachment {
  containerId: string;
  network: string;
  ifName: string;
  netns: string;
  /** The network config list as JSON text. */
  config: string;
  cniArgs?: Array<[string, string]>;
  capabilityArgs?: Record<string, unknown>;
  /** The raw result object, in the version it was stored with. */
  result?: Record<string, unknown>;
}

/** The key of an attachment. */
export interface AttachmentKey {
  network: string;
  containerId: string;
  ifName: string;
}

/** Path of the cache file for one attachment. */
export function cacheFile(cacheDir: string, key: AttachmentKey): string {
  if (!key.network || !key.containerId || !key.ifName) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `cache file path requires network name ("${key.network}"), container ID ("${key.containerId}"), and interface name ("${key.ifName}")`,
    );
  }
  return join(cacheDir, "results", `${key.network}-${key.containerId}-${key.ifName}`);
}

/** Store an attachment (atomically: written beside, then renamed). */
export function writeCache(cacheDir: string, entry: CachedAttachment): void {
  const file = cacheFile(cacheDir, { network: entry.network, containerId: entry.containerId, ifName: entry.ifName });
  const doc: Record<string, unknown> = {
    kind: CACHE_KIND,
    containerId: entry.containerId,
    config: Buffer.from(entry.config, "utf8").toString("base64"),
    ifName: entry.ifName,
    networkName: entry.network,
  };
  if (entry.netns) doc.netns = entry.netns;
  if (entry.cniArgs && entry.cniArgs.length > 0) doc.cniArgs = entry.cniArgs;
  if (entry.capabilityArgs && Object.keys(entry.capabilityArgs).length > 0) doc.capabilityArgs = entry.capabilityArgs;
  if (entry.result) doc.result = entry.result;
  const dir = join(cacheDir, "results");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // write in a private folder no reader lists as an entry (libcni skips directories), then move
  // the complete file into place and remove the folder
  const tmpDir = mkdtempSync(join(dir, ".tmp-"));
  try {
    const tmp = join(tmpDir, basename(file));
    writeFileSync(tmp, JSON.stringify(doc), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
  } finally {
    rmSync(tmpDir, { recursive: true, force: true });
  }
}

function decode(text: string, file: string): CachedAttachment {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `failed to unmarshal cached network config ${file}: ${(e as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null) {
    throw new CniError(ErrorCode.DecodingFailure, `cached network config ${file} is not a JSON object`);
  }
  if (doc.kind !== CACHE_KIND) {
    // A legacy cache file holds the bare result.
    if (doc.kind === undefined && ("cniVersion" in doc || "ips" in doc || "ip4" in doc)) {
      return { containerId: "", network: "", ifName: "", netns: "", config: "", result: doc };
    }
    throw new CniError(ErrorCode.DecodingFailure, `cached network config ${file} has wrong kind: ${String(doc.kind)}`);
  }
  const entry: CachedAttachment = {
    containerId: String(doc.containerId ?? ""),
    network: String(doc.networkName ?? ""),
    ifName: String(doc.ifName ?? ""),
    netns: String(doc.netns ?? ""),
    config: typeof doc.config === "string" ? Buffer.from(doc.config, "base64").toString("utf8") : "",
  };
  if (Array.isArray(doc.cniArgs)) entry.cniArgs = doc.cniArgs as Array<[string, string]>;
  if (doc.capabilityArgs && typeof doc.capabilityArgs === "object") entry.capabilityArgs = doc.capabilityArgs as Record<string, unknown>;
  if (doc.result && typeof doc.result === "object") entry.result = doc.result as Record<string, unknown>;
  return entry;
}

/** Read one attachment; undefined when there is no cache file. */
export function readCache(cacheDir: string, key: AttachmentKey): CachedAttachment | undefined {
  const file = cacheFile(cacheDir, key);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  return decode(text, file);
}

/** Remove one attachment's cache file (missing is fine). */
export function deleteCache(cacheDir: string, key: AttachmentKey): void {
  rmSync(cacheFile(cacheDir, key), { force: true });
}

/** Every valid cached attachment, optionally only those of one container, sorted by file name. */
export function listCache(cacheDir: string, containerId?: string): CachedAttachment[] {
  const dir = join(cacheDir, "results");
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  const out: CachedAttachment[] = [];
  for (const name of names) {
    if (containerId && !name.includes(`-${containerId}-`)) continue;
    try {
      const e = decode(readFileSync(join(dir, name), "utf8"), name);
      if (!e.network || !e.ifName) continue;
      if (name !== `${e.network}-${e.containerId}-${e.ifName}`) continue; // not an entry of ours
      if (containerId && e.containerId !== containerId) continue;
      out.push(e);
    } catch {
      // unreadable or foreign files are skipped, as libcni does
    }
  }
  return out;
}

/** The result stored with an attachment, as AnyResult-shaped JSON. */
export function cachedResult(entry: CachedAttachment): AnyResult | undefined {
  return entry.result as AnyResult | undefined;
}
