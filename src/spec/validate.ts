/** Validation of the names the spec constrains, with the reference's rules and clear errors. */

import { CniError, ErrorCode } from "./error.ts";
import { parseCIDR, parseIP } from "./ip.ts";

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Longest interface name the kernel accepts (IFNAMSIZ - 1). */
export const MAX_IFNAME_LEN = 15;

/** Throw unless `id` is a valid container id (alphanumeric start, then `[a-zA-Z0-9_.-]`). */
export function validateContainerId(id: string): void {
  if (!id) throw new CniError(ErrorCode.InvalidEnvironment, "missing containerID");
  if (!NAME_RE.test(id)) {
    throw new CniError(ErrorCode.InvalidEnvironment, "invalid characters in containerID", id);
  }
}

/** Throw unless `name` is a valid network name (same alphabet as container ids). */
export function validateNetworkName(name: string): void {
  if (!name) throw new CniError(ErrorCode.InvalidNetworkConfig, "missing network name");
  if (!NAME_RE.test(name)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, "invalid characters found in network name", name);
  }
}

/** Throw unless `name` is a usable Linux interface name. */
export function validateIfName(name: string): void {
  if (!name) throw new CniError(ErrorCode.InvalidEnvironment, "interface name is empty");
  if (new TextEncoder().encode(name).length > MAX_IFNAME_LEN) {
    throw new CniError(ErrorCode.InvalidEnvironment, "interface name is too long", `interface name should be less than ${MAX_IFNAME_LEN + 1} characters`);
  }
  if (name === "." || name === "..") {
    throw new CniError(ErrorCode.InvalidEnvironment, "interface name is . or ..");
  }
  for (const ch of name) {
    if (ch === "/" || ch === ":" || /\s/.test(ch)) {
      throw new CniError(ErrorCode.InvalidEnvironment, "interface name contains / or : or whitespace characters", name);
    }
  }
}

/** Throw a config error unless `s` is an IP address; `what` names the field. */
export function validateIP(s: unknown, what: string): void {
  if (typeof s !== "string" || !parseIP(s)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid IP address in ${what}: ${JSON.stringify(s)}`);
  }
}

/** Throw a config error unless `s` is an "address/prefix"; `what` names the field. */
export function validateCIDR(s: unknown, what: string): void {
  if (typeof s !== "string" || !parseCIDR(s)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid CIDR in ${what}: ${JSON.stringify(s)}`);
  }
}
