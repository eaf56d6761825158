/** A small argument parser for the `cnikit` commands: `--flag value`, `--flag=value`, booleans. */

/** Parsed arguments: positionals and flag values (repeated flags collect into arrays). */
export interface ParsedArgs {
  positional: string[];
  flags: Record<string, string | boolean | string[]>;
}

/** Parse argv; `booleans` lists the flags that take no value. */
export function parseArgs(argv: readonly string[], booleans: readonly string[] = []): ParsedArgs {
  const out: ParsedArgs = { positional: [], flags: {} };
  const set = (k: string, v: string | boolean) => {
    const prev = out.flags[k];
    if (prev === undefined || typeof v === "boolean") out.flags[k] = v;
    else out.flags[k] = Array.isArray(prev) ? [...prev, v] : [String(prev), v];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      out.positional.push(...argv.slice(i + 1));
      break;
    }
    if (a === "-h") {
      set("help", true);
      continue;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (eq > 0) set(key, a.slice(eq + 1));
      else if (booleans.includes(key) || key === "help") set(key, true);
      else if (i + 1 < argv.length) set(key, argv[++i]!);
      else throw new Error(`flag --${key} needs a value`);
      continue;
    }
    out.positional.push(a);
  }
  return out;
}

/** The last value of a string flag. */
export function flagString(p: ParsedArgs, key: string): string | undefined {
  const v = p.flags[key];
  if (v === undefined || typeof v === "boolean") return undefined;
  return Array.isArray(v) ? v.at(-1) : v;
}

/** Every value of a repeatable string flag. */
export function flagList(p: ParsedArgs, key: string): string[] {
  const v = p.flags[key];
  if (v === undefined || typeof v === "boolean") return [];
  return Array.isArray(v) ? v : [v];
}

/**
 * A listen address `HOST:PORT` as flags take it (`--healthz`): an IPv4 address or name, an IPv6
 * address in brackets (`[::1]:9102`, as in a URL), or `:PORT` for `defaultHost`. The host comes
 * back without brackets, as `Bun.serve` wants it; throws naming the flag when the text is no such
 * address (an IPv6 address without brackets is ambiguous).
 */
export function parseHostPort(text: string, flag: string, defaultHost = "127.0.0.1"): { host: string; port: number } {
  const bad = (why: string) => new Error(`${flag} ${text}: ${why}`);
  let host: string;
  let port: string;
  const m = /^\[([^\]]*)\]:(.*)$/.exec(text);
  if (m) {
    [, host, port] = m as unknown as [string, string, string];
    if (!host.includes(":")) throw bad("brackets are for an IPv6 address");
  } else {
    const i = text.lastIndexOf(":");
    if (i < 0) throw bad("want ADDR:PORT");
    host = text.slice(0, i);
    port = text.slice(i + 1);
    if (host.includes(":") || host.includes("[") || host.includes("]")) throw bad("put an IPv6 address in brackets, [ADDR]:PORT");
    host ||= defaultHost;
  }
  if (!host) throw bad("want ADDR:PORT");
  const n = /^\d+$/.test(port) ? Number(port) : NaN;
  if (!Number.isInteger(n) || n <= 0 || n > 65535) throw bad("want ADDR:PORT with a port from 1 to 65535");
  return { host, port: n };
}

/** `host:port` as a URL's authority: an IPv6 host in brackets. */
export function formatHostPort(at: { host: string; port: number }): string {
  return `${at.host.includes(":") ? `[${at.host}]` : at.host}:${at.port}`;
}
