/**
 * DESIGN.md's layer table, enforced: each folder of src/ imports only the layers the table allows
 * (static and dynamic imports alike), plugins never import each other (only plugins/common), and
 * nothing below the CLI imports a plugin. A wrong arrow fails here, not in review.
 */

import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = resolve(import.meta.dir, "../../src");

/** Which layers each layer may import (its own always; `spec` is the base every layer may use). */
const ALLOWED: Record<string, readonly string[]> = {
  spec: [],
  sys: ["spec"],
  netlink: ["spec", "sys"],
  bpf: ["spec", "sys", "netlink"],
  net: ["spec", "sys", "netlink"],
  nft: ["spec", "sys", "netlink"],
  ipam: ["spec", "sys"],
  skel: ["spec"],
  // DESIGN.md lists "spec, skel"; invoke also needs sys's file access (realpath: a type runs
  // in-process only when CNI_PATH resolves it to this very binary), which the note reports
  invoke: ["spec", "sys", "skel"],
  plugins: ["spec", "sys", "netlink", "bpf", "net", "nft", "ipam", "skel", "invoke"],
  libcni: ["spec", "invoke"],
  agent: ["spec", "sys", "netlink", "bpf", "net", "nft", "ipam", "skel", "invoke", "libcni"],
  cli: ["spec", "sys", "netlink", "bpf", "net", "nft", "ipam", "skel", "invoke", "libcni", "agent", "plugins", "entry"],
  // src/main.ts and src/plugin-table.ts: the entry point, the only place that knows the plugin table
  entry: ["spec", "sys", "netlink", "bpf", "net", "nft", "ipam", "skel", "invoke", "libcni", "agent", "plugins", "cli"],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** The layer of a file under src/: its top folder, or "entry" for the files at the top. */
function layerOf(file: string): string {
  const parts = relative(SRC, file).split("/");
  return parts.length === 1 ? "entry" : parts[0]!;
}

/** plugins/main/bridge.ts -> "main/bridge.ts"; plugins/common/x.ts -> "common". */
function pluginUnit(file: string): string {
  const parts = relative(join(SRC, "plugins"), file).split("/");
  return parts[0] === "common" ? "common" : parts.join("/");
}

/** Relative module specifiers a file imports, statically or with `import()`. */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)"(\.{1,2}\/[^"]+)"/g)) out.push(m[1]!);
  return out;
}

const edges = files(SRC)
  .flatMap((f) => importsOf(readFileSync(f, "utf8")).map((spec) => ({ from: f, to: resolve(dirname(f), spec) })))
  .filter((e) => e.to.startsWith(`${SRC}/`)); // package.json and the like are not layers

/** One cycle per strongly connected group of files (depth-first; each cycle listed from its first file). */
export function cyclesOf(es: ReadonlyArray<{ from: string; to: string }>): string[][] {
  const next = new Map<string, string[]>();
  for (const e of es) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (f: string) => {
    state.set(f, "open");
    stack.push(f);
    for (const t of next.get(f) ?? []) {
      if (state.get(t) === "open") found.push([...stack.slice(stack.indexOf(t)), t]);
      else if (!state.has(t)) visit(t);
    }
    stack.pop();
    state.set(f, "done");
  };
  for (const f of [...next.keys()].sort()) if (!state.has(f)) visit(f);
  return found;
}

describe("DESIGN.md's layer table", () => {
  test("the scan finds imports (so the checks below can fail)", () => {
    expect(edges.length).toBeGreaterThan(300);
    expect(edges.some((e) => layerOf(e.from) === "plugins" && layerOf(e.to) === "net")).toBe(true);
  });

  test("every layer imports only the layers it may", () => {
    const bad = edges
      .filter((e) => layerOf(e.from) !== layerOf(e.to))
      .filter((e) => !(ALLOWED[layerOf(e.from)] ?? []).includes(layerOf(e.to)))
      .map((e) => `${relative(SRC, e.from)} -> ${relative(SRC, e.to)}`);
    expect(bad).toEqual([]);
  });

  test("plugins never import each other, only plugins/common", () => {
    const bad = edges
      .filter((e) => layerOf(e.from) === "plugins" && layerOf(e.to) === "plugins")
      .filter((e) => pluginUnit(e.to) !== "common" && pluginUnit(e.to) !== pluginUnit(e.from))
      .map((e) => `${relative(SRC, e.from)} -> ${relative(SRC, e.to)}`);
    expect(bad).toEqual([]);
  });

  test("every folder of src/ is in the table", () => {
    const folders = readdirSync(SRC).filter((n) => statSync(join(SRC, n)).isDirectory());
    expect(folders.filter((f) => !(f in ALLOWED))).toEqual([]);
  });

  test("no circular imports (type-only ones count too), as DESIGN.md's style asks", () => {
    expect(cyclesOf(edges).map((c) => c.map((f) => relative(SRC, f)).join(" -> "))).toEqual([]);
  });

  test("the cycle finder finds a cycle", () => {
    const e = (from: string, to: string) => ({ from, to });
    expect(cyclesOf([e("a", "b"), e("b", "c"), e("c", "a"), e("c", "d")])).toEqual([["a", "b", "c", "a"]]);
    expect(cyclesOf([e("a", "b"), e("b", "c")])).toEqual([]);
  });

  test("the import scanner sees static, side-effect and dynamic imports", () => {
    expect(importsOf(`import { a } from "../x.ts";\nimport "./y.ts";\nconst m = await import("../plugins/main/bridge.ts");\nimport type { T } from "../t.ts";`)).toEqual([
      "../x.ts", "./y.ts", "../plugins/main/bridge.ts", "../t.ts",
    ]);
  });
});
