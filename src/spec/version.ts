/** CNI spec versions: the list cnikit speaks and semver comparison between them. */

import { CniError, ErrorCode } from "./error.ts";

/** The newest spec version cnikit implements. */
export const CURRENT_VERSION = "1.1.0";

/** The first spec version with GC and STATUS. */
export const GC_MIN_VERSION = "1.1.0";

/** Every spec version cnikit reads and writes, oldest first. */
export const SUPPORTED_VERSIONS: readonly string[] = [
  "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/** Parse "a.b.c" into numbers; throws a decoding error on anything else. Empty means 0.1.0. */
export function parseVersion(v: string): [number, number, number] {
  const s = v === "" ? "0.1.0" : v;
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (!m) throw new CniError(ErrorCode.DecodingFailure, `invalid version "${v}": must be of the form a.b.c`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Compare two versions: negative when a < b, 0 when equal, positive when a > b. */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
}

/** Whether version a is at least version b. */
export function versionAtLeast(a: string, b: string): boolean {
  return compareVersions(a, b) >= 0;
}

/** Normalise an empty version to "0.1.0", as the spec says. */
export function normalizeVersion(v: string | undefined): string {
  return v === undefined || v === "" ? "0.1.0" : v;
}

/** Whether cnikit can read and write results of this version. */
export function isSupportedVersion(v: string): boolean {
  return SUPPORTED_VERSIONS.includes(normalizeVersion(v));
}

/** The JSON answer to VERSION. */
export interface VersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}

/** Build the VERSION answer for a plugin supporting `versions`. */
export function versionInfo(versions: readonly string[] = SUPPORTED_VERSIONS): VersionInfo {
  return { cniVersion: CURRENT_VERSION, supportedVersions: [...versions] };
}

/** Parse a plugin's VERSION answer; plugins of spec 0.1.0 answered with nothing useful. */
export function parseVersionInfo(raw: unknown): VersionInfo {
  if (typeof raw !== "object" || raw === null) {
    throw new CniError(ErrorCode.DecodingFailure, "decoding version info: not a JSON object");
  }
  const o = raw as Record<string, unknown>;
  const cniVersion = typeof o.cniVersion === "string" ? o.cniVersion : "";
  if (Array.isArray(o.supportedVersions)) {
    return { cniVersion, supportedVersions: o.supportedVersions.map(String) };
  }
  // 0.1.0 plugins did not report supportedVersions: they support 0.1.0 only.
  if (cniVersion === "" || cniVersion === "0.1.0") return { cniVersion: "0.1.0", supportedVersions: ["0.1.0"] };
  throw new CniError(ErrorCode.DecodingFailure, `decoding version info: missing supportedVersions`);
}
