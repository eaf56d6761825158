/**
 * Table-driven wrong-type cases for plugin config tests: for a key path and the Go type the
 * reference decodes it into, JSON values of other types, and a way to set them in a config.
 */

import { expect } from "bun:test";
import { CniError, ErrorCode } from "../../../src/spec/error.ts";

/** The Go type a key decodes into, as far as wrong JSON types go. */
export type Kind = "string" | "bool" | "int" | "uint" | "list" | "object";

const WRONG: Record<Kind, unknown[]> = {
  string: [1, true, {}, []],
  bool: ["true", 1, {}],
  int: ["1", 1.5, true, []],
  uint: ["1", -1, 1.5, {}],
  list: [{}, "x", 1],
  object: [[], "x", 1, true],
};

/** Values of the wrong JSON type for a key of `kind`. */
export const wrongValues = (kind: Kind): unknown[] => WRONG[kind];

/** A copy of `base` with the value at `path` ("a.b[0].c") replaced, creating what is missing. */
export function withValue<T>(base: T, path: string, value: unknown): T {
  const out = structuredClone(base) as Record<string, unknown>;
  const parts = [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]!));
  let cur: Record<string | number, unknown> = out;
  parts.forEach((p, i) => {
    if (i === parts.length - 1) {
      cur[p] = value;
      return;
    }
    const next = parts[i + 1]!;
    const have = cur[p];
    const ok = typeof next === "number" ? Array.isArray(have) : typeof have === "object" && have !== null && !Array.isArray(have);
    if (!ok) cur[p] = typeof next === "number" ? [] : {};
    cur = cur[p] as Record<string | number, unknown>;
  });
  return out as T;
}

/** The spec error `fn` throws (fails the test when it throws nothing or something else). */
export function errorOf(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error("expected a spec error");
}

/**
 * Expect every wrong JSON type at every key of `keys` to be refused by `parse` with code 2 and a
 * message naming the key path. A key takes the wrong values of its kind, or the values given.
 */
export function expectWrongTypesRefused<T>(base: T, keys: ReadonlyArray<readonly [string, Kind | readonly unknown[]]>, parse: (conf: T) => unknown): void {
  for (const [path, kind] of keys) {
    for (const v of typeof kind === "string" ? wrongValues(kind) : kind) {
      const e = errorOf(() => parse(withValue(base, path, v)));
      if (e.code !== ErrorCode.UnsupportedField || !e.message.includes(`"${path}"`)) {
        throw new Error(`${path} = ${JSON.stringify(v)}: expected code 2 naming "${path}", got code ${e.code}: ${e.message}`);
      }
    }
  }
}
