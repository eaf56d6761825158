/** The agent's structured logs: JSON or text lines, a minimum level, and what it says it waits for. */

import { describe, expect, test } from "bun:test";
import { createLogger, formatText, logOptions, waitingFor } from "../../../src/agent/log.ts";
import { CniError, ErrorCode } from "../../../src/spec/error.ts";

describe("agent logs", () => {
  test("json lines carry ts, level, msg and fields; lower levels are dropped", () => {
    const lines: string[] = [];
    const log = createLogger({ format: "json", level: "warn", write: (l) => lines.push(l) });
    log({ level: "info", msg: "dropped" });
    log({ level: "warn", msg: "kept", subnet: "10.1.0.0/24" });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith("\n")).toBe(true);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: "warn", msg: "kept", subnet: "10.1.0.0/24" });
  });

  test("text lines: time, level, message, key=value with quoting", () => {
    expect(formatText("T", { level: "warn", msg: "waiting for etcd", error: 'no "x"', n: 3, ok: true, o: { a: 1 } })).toBe('T WARN  waiting for etcd error="no \\"x\\"" n=3 ok=true o="{\\"a\\":1}"');
    const lines: string[] = [];
    createLogger({ format: "text", level: "debug", write: (l) => lines.push(l) })({ level: "debug", msg: "d" });
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+ DEBUG d\n$/);
  });

  test("flag values are checked", () => {
    expect(logOptions(undefined, undefined)).toEqual({ format: "json", level: "info" });
    expect(logOptions("text", "error")).toEqual({ format: "text", level: "error" });
    expect(() => logOptions("xml", undefined)).toThrow("--log-format xml");
    expect(() => logOptions(undefined, "loud")).toThrow("--log-level loud");
  });

  test("what the agent waits for", () => {
    expect(waitingFor("reading the network config", new CniError(ErrorCode.TryAgainLater, "no network config at /p/config in etcd"))).toBe("waiting for the network config in etcd");
    expect(waitingFor("reading the network config", new Error("14 UNAVAILABLE: No connection established"))).toBe("waiting for etcd (reading the network config)");
    // a refused client certificate comes as UNAVAILABLE too, but it is no wait
    expect(waitingFor("reading the network config", new Error("14 UNAVAILABLE: No connection established. Last error: error:10000412:SSL routines:OPENSSL_internal:SSLV3_ALERT_BAD_CERTIFICATE"))).toBe("reading the network config failed (etcd refused the credentials), retrying");
    expect(waitingFor("leasing a subnet", new Error("etcdserver: authentication failed, invalid user ID or password"))).toBe("leasing a subnet failed (etcd refused the credentials), retrying");
    expect(waitingFor("leasing a subnet", new Error("no free subnet"))).toBe("leasing a subnet failed, retrying");
  });
});
