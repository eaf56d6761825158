/**
 * The plugin start path stays free of node:fs, node:path and node:os: in the compiled binary each
 * costs 0.5-1.2 ms to load (a plugin starts in ~6 ms). Plugin-path code uses sys/file.ts and
 * sys/path.ts; only the CLI, libcni and the agent's etcd client (etcd.ts, etcd-protos.ts) may load them.
 */

import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";

const SRC = resolve(import.meta.dir, "../../src");
const ALLOWED = new Set(["cli", "libcni", "agent", "ipam/etcd.ts", "ipam/etcd-protos.ts"].map((p) => join(SRC, p)));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (ALLOWED.has(p)) return [];
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

describe("plugin start path", () => {
  test("no module outside the CLI, libcni and the agent imports node:fs, node:path or node:os", () => {
    const bad = files(SRC).filter((f) => /from "node:(fs|path|os)"|require\("node:(fs|path|os)"\)/.test(readFileSync(f, "utf8")));
    expect(bad.map((f) => relative(SRC, f))).toEqual([]);
  });
});
