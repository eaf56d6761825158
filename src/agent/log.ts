/**
 * The agent's structured logs: entries (`{level, msg, ...fields}`) written as JSON lines or as
 * logfmt-like text lines on stderr, below a minimum level dropped (`--log-format`, `--log-level`).
 */

/** Log levels, least to most severe. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = "json" | "text";

/** A log sink as the agent and the CNI server take it. */
export type LogSink = (entry: Record<string, unknown>) => void;

function textValue(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v) ?? String(v);
  return s === "" || /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

/** One entry as a text line: `TIME LEVEL msg key=value ...`. */
export function formatText(ts: string, entry: Record<string, unknown>): string {
  const { level, msg, ...rest } = entry;
  const fields = Object.entries(rest).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${textValue(v)}`);
  return [ts, String(level ?? "info").toUpperCase().padEnd(5), String(msg ?? ""), ...fields].join(" ");
}

/** A sink writing entries at `level` and above in `format` (default: stderr). */
export function createLogger(opts: { format?: LogFormat; level?: LogLevel; write?: (line: string) => void } = {}): LogSink {
  const min = LOG_LEVELS.indexOf(opts.level ?? "info");
  const write = opts.write ?? ((line: string) => void process.stderr.write(line));
  const text = opts.format === "text";
  return (entry) => {
    const lvl = LOG_LEVELS.indexOf((entry.level as LogLevel) ?? "info");
    if (lvl >= 0 && lvl < min) return;
    const ts = new Date().toISOString();
    write(`${text ? formatText(ts, entry) : JSON.stringify({ ts, ...entry })}\n`);
  };
}

/** Parse `--log-format` / `--log-level` values; throws naming the flag. */
export function logOptions(format: string | undefined, level: string | undefined): { format: LogFormat; level: LogLevel } {
  const f = format ?? "json";
  const l = level ?? "info";
  if (f !== "json" && f !== "text") throw new Error(`--log-format ${f}: want text or json`);
  if (!(LOG_LEVELS as readonly string[]).includes(l)) throw new Error(`--log-level ${l}: want one of ${LOG_LEVELS.join(", ")}`);
  return { format: f, level: l as LogLevel };
}

/**
 * What the agent waits for while a start step fails: the network config (etcd answers, the key is
 * missing) or etcd itself.
 */
export function waitingFor(what: string, err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  if (/no network config at/.test(m)) return "waiting for the network config in etcd";
  // etcd answers but refuses us (a certificate, a password): not a wait, a failure to fix
  if (/CERTIFICATE|SSL|TLS|authenticat|permission denied|invalid auth/i.test(m)) return `${what} failed (etcd refused the credentials), retrying`;
  if (/UNAVAILABLE|ECONNREFUSED|circuit breaker|deadline|timed? ?out|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH/i.test(m)) return `waiting for etcd (${what})`;
  return `${what} failed, retrying`;
}
