/**
 * `--healthz ADDR:PORT`: IPv4, names, `:PORT`, and IPv6 in brackets (the agent used to keep the
 * brackets and fail to listen); the parsed address is served and answers on IPv6 loopback.
 */

import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { serveHealth } from "../../../src/agent/http.ts";
import { formatHostPort, parseHostPort } from "../../../src/cli/args.ts";

describe("parseHostPort", () => {
  test("IPv4, a name, :PORT", () => {
    expect(parseHostPort("127.0.0.1:9102", "--healthz")).toEqual({ host: "127.0.0.1", port: 9102 });
    expect(parseHostPort("localhost:80", "--healthz")).toEqual({ host: "localhost", port: 80 });
    expect(parseHostPort(":9102", "--healthz")).toEqual({ host: "127.0.0.1", port: 9102 });
    expect(parseHostPort(":9102", "--healthz", "0.0.0.0")).toEqual({ host: "0.0.0.0", port: 9102 });
  });

  test("IPv6 in brackets comes back without them", () => {
    expect(parseHostPort("[::1]:9102", "--healthz")).toEqual({ host: "::1", port: 9102 });
    expect(parseHostPort("[::]:1", "--healthz")).toEqual({ host: "::", port: 1 });
    expect(parseHostPort("[fd00:1::5]:65535", "--healthz")).toEqual({ host: "fd00:1::5", port: 65535 });
  });

  test("wrong texts are errors naming the flag", () => {
    expect(() => parseHostPort("::1:9102", "--healthz")).toThrow("--healthz ::1:9102: put an IPv6 address in brackets");
    expect(() => parseHostPort("[::1]9102", "--healthz")).toThrow("--healthz [::1]9102:");
    expect(() => parseHostPort("[127.0.0.1]:80", "--healthz")).toThrow("brackets are for an IPv6 address");
    expect(() => parseHostPort("[]:80", "--healthz")).toThrow("--healthz []:80");
    expect(() => parseHostPort("9102", "--healthz")).toThrow("want ADDR:PORT");
    for (const bad of ["127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x", "127.0.0.1:-1", "127.0.0.1:1.5"]) {
      expect(() => parseHostPort(bad, "--healthz")).toThrow(`--healthz ${bad}:`);
    }
  });

  test("formatHostPort puts an IPv6 host back in brackets", () => {
    expect(formatHostPort({ host: "::1", port: 9102 })).toBe("[::1]:9102");
    expect(formatHostPort({ host: "127.0.0.1", port: 9102 })).toBe("127.0.0.1:9102");
  });

  // the loopback of the namespace the unit tests run in; skipped where it has no IPv6
  const v6lo = existsSync("/proc/net/if_inet6") && /^0{31}1 /m.test(readFileSync("/proc/net/if_inet6", "utf8"));
  test.skipIf(!v6lo)("an agent's endpoints listen on [::1] as parsed", async () => {
    const at = parseHostPort("[::1]:9102", "--healthz");
    const srv = serveHealth({ host: at.host, port: 0 }, { healthy: () => true, ready: () => true, metrics: () => "" });
    try {
      const r = await fetch(`http://${formatHostPort({ host: at.host, port: srv.port! })}/healthz`);
      expect(r.status).toBe(200);
      expect(await r.text()).toBe("ok\n");
    } finally {
      srv.stop(true);
    }
  });
});
