/** Read a resolv.conf-style file into the result's DNS section (host-local's `resolvConf`). */

import { readText } from "../sys/file.ts";
import { CniError, ErrorCode } from "../spec/error.ts";
import type { DNS } from "../spec/result.ts";

/** Parse resolv.conf text: nameserver, domain, search and options lines. */
export function parseResolvConf(text: string): DNS {
  const dns: DNS = {};
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    if (!line) continue;
    const [key, ...vals] = line.split(/\s+/);
    if (key === "nameserver" && vals[0]) (dns.nameservers ??= []).push(vals[0]);
    else if (key === "domain" && vals[0]) dns.domain = vals[0];
    else if (key === "search") dns.search = [...(dns.search ?? []), ...vals];
    else if (key === "options") dns.options = [...(dns.options ?? []), ...vals];
  }
  return dns;
}

/** Read and parse a resolv.conf file; a clear I/O error when it cannot be read. */
export function readResolvConf(path: string): DNS {
  try {
    return parseResolvConf(readText(path));
  } catch (e) {
    throw new CniError(ErrorCode.IOFailure, `reading resolvConf ${path}: ${(e as Error).message}`);
  }
}
