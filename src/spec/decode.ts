/**
 * One typed config decoder with Go's `encoding/json` semantics, so cnikit accepts exactly what the
 * reference plugins accept:
 * - an object key matches a field by its exact name first, else case-insensitively (the first
 *   field in declaration order whose folded name matches); when several keys match one field, the
 *   last one in the document wins; unknown keys are ignored;
 * - `null` leaves a field unset;
 * - a value of the wrong JSON type, a fraction or an out-of-range number where an integer is
 *   wanted, is spec error 2 naming the key path and the expected type.
 * Known deviation: JSON.parse has already turned `1.0` and `1e3` into numbers, so an integral
 * value written with a fraction or an exponent is accepted where Go refuses it.
 *
 * Lenient mode (DEL: DEL must not fail on a config that ADD accepted, and should still clean up
 * when it did not) drops a value that does not decode instead of failing, and records a warning.
 */

import { CniError, ErrorCode } from "./error.ts";
import { parseCIDR, parseIP } from "./ip.ts";

/** Decoding state shared by one `decode` call. */
export interface DecodeContext {
  /** Drop values that do not decode (recording a warning) instead of throwing. */
  readonly lenient: boolean;
  /** What lenient mode dropped, one line each. */
  readonly warnings: string[];
}

/** Decodes one JSON value into a `T`. */
export interface Codec<T> {
  /** The expected type, as error messages name it. */
  readonly expected: string;
  /** Decode `v` (never `null`/`undefined`: callers handle those); `path` names it in errors. */
  decode(v: unknown, path: string, ctx: DecodeContext): T;
  /** Go's zero value, for a `null` element of a list. */
  zero(): T;
}

/** Fields of an object codec. */
export type Shape = Record<string, Codec<unknown>>;

/** What a codec decodes to. */
export type Decoded<C> = C extends Codec<infer T> ? T : never;

/** The decoded form of an object with `S`'s fields: every field may be unset. */
export type DecodedObject<S extends Shape> = { -readonly [K in keyof S]?: Decoded<S[K]> };

/** A wrong value: spec error 2 (type) or 7 (a value of the right type that is not valid). */
export class DecodeError extends CniError {
  constructor(
    readonly path: string,
    msg: string,
    code: number = ErrorCode.UnsupportedField,
  ) {
    super(code, msg);
    this.name = "DecodeError";
  }
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === "number") return `number ${v}`;
  return `${typeof v} ${String(v)}`;
}

function where(path: string): string {
  return path === "" ? "the config" : `"${path}"`;
}

/** Throw spec error 2: `v` at `path` is not of the `expected` type. */
export function wrongType(path: string, expected: string, v: unknown): never {
  throw new DecodeError(path, `${where(path)} must be ${expected}, not ${describe(v)}`);
}

/** Throw spec error 7: the value at `path` has the right type but is not valid. */
export function invalidValue(path: string, why: string): never {
  throw new DecodeError(path, `${where(path)}: ${why}`, ErrorCode.InvalidNetworkConfig);
}

function codec<T>(expected: string, zero: () => T, decode: Codec<T>["decode"]): Codec<T> {
  return { expected, zero, decode };
}

/** A JSON string (Go `string`). */
export const str: Codec<string> = codec("a string", () => "", (v, path) =>
  typeof v === "string" ? v : wrongType(path, "a string", v));

/** A JSON boolean (Go `bool`). */
export const bool: Codec<boolean> = codec("true or false", () => false, (v, path) =>
  typeof v === "boolean" ? v : wrongType(path, "true or false", v));

/** Any JSON number (Go `float64`). */
export const num: Codec<number> = codec("a number", () => 0, (v, path) =>
  typeof v === "number" && Number.isFinite(v) ? v : wrongType(path, "a number", v));

/** Anything (Go `interface{}`), kept as parsed. */
export const any: Codec<unknown> = codec("any value", () => null, (v) => v);

/** An integer within [min, max] (Go's sized integer types). */
export function int(min: number, max: number, expected = "an integer"): Codec<number> {
  return codec(expected, () => 0, (v, path) => {
    if (typeof v !== "number" || !Number.isInteger(v)) wrongType(path, expected, v);
    if (v < min || v > max) wrongType(path, `${expected} from ${min} to ${max}`, v);
    return v;
  });
}

/** Go `int` / `int64`. */
export const i64 = int(-(2 ** 63), 2 ** 63 - 1);
/** Go `int32`. */
export const i32 = int(-(2 ** 31), 2 ** 31 - 1);
/** Go `uint` / `uint64`. */
export const u64 = int(0, 2 ** 64 - 1, "a non-negative integer");
/** Go `uint32`. */
export const u32 = int(0, 2 ** 32 - 1, "a non-negative integer");
/** Go `uint16`. */
export const u16 = int(0, 2 ** 16 - 1, "a non-negative integer");
/** Go `uint8`. */
export const u8 = int(0, 255, "a non-negative integer");

/** A JSON list (Go slice); `null` elements decode to the element's zero value. */
export function list<T>(of: Codec<T>): Codec<T[]> {
  const expected = "a list";
  return codec(expected, () => [], (v, path, ctx) => {
    if (!Array.isArray(v)) wrongType(path, expected, v);
    const out: T[] = [];
    v.forEach((e, i) => {
      const p = `${path}[${i}]`;
      if (e === null || e === undefined) {
        out.push(of.zero());
        return;
      }
      const d = attempt(() => of.decode(e, p, ctx), ctx);
      if (d.ok) out.push(d.value);
    });
    return out;
  });
}

/** A JSON object with arbitrary keys, matched exactly (Go `map[string]T`). */
export function record<T>(of: Codec<T>): Codec<Record<string, T>> {
  const expected = "an object";
  return codec(expected, () => ({}), (v, path, ctx) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) wrongType(path, expected, v);
    const out: Record<string, T> = {};
    for (const [k, e] of Object.entries(v)) {
      if (e === null || e === undefined) {
        out[k] = of.zero();
        continue;
      }
      const d = attempt(() => of.decode(e, join(path, k), ctx), ctx);
      if (d.ok) out[k] = d.value;
    }
    return out;
  });
}

/**
 * Fold a key as Go does (`encoding/json`'s foldName): ASCII letters upper-cased, other characters
 * upper(lower(c)), so the Kelvin sign folds to "K" and the long s to "S".
 */
export function foldKey(key: string): string {
  let out = "";
  for (const ch of key) {
    if (ch < "\x80") {
      out += ch.toUpperCase();
      continue;
    }
    const f = ch.toLowerCase().toUpperCase();
    out += [...f].length === 1 ? f : ch;
  }
  return out;
}

/** A JSON object decoded into the fields of `shape` (Go struct, keys as in its json tags). */
export function object<S extends Shape>(shape: S): ObjectCodec<S> {
  const expected = "an object";
  const names = Object.keys(shape);
  const exact = new Set(names);
  const folded = new Map<string, string>();
  for (const n of names) if (!folded.has(foldKey(n))) folded.set(foldKey(n), n);
  const fieldFor = (key: string) => (exact.has(key) ? key : folded.get(foldKey(key)));
  const c = codec(expected, () => ({}) as DecodedObject<S>, (v, path, ctx) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) wrongType(path, expected, v);
    const out: Record<string, unknown> = {};
    for (const [key, e] of Object.entries(v)) {
      const field = fieldFor(key);
      if (field === undefined) continue;
      if (e === null || e === undefined) {
        delete out[field]; // Go: null leaves the field as it is; later keys win over earlier ones
        continue;
      }
      const d = attempt(() => shape[field]!.decode(e, join(path, key), ctx), ctx);
      if (d.ok) out[field] = d.value;
      else delete out[field];
    }
    return out as DecodedObject<S>;
  });
  return { ...c, shape, fieldFor };
}

/** An object codec, with its fields and Go's key matching. */
export interface ObjectCodec<S extends Shape> extends Codec<DecodedObject<S>> {
  readonly shape: S;
  /** The field a JSON key sets (exact name, else case-insensitive), if any. */
  fieldFor(key: string): string | undefined;
}

/** `base`, then `f` on the decoded value (which may throw through `invalidValue`). */
export function convert<T, U>(base: Codec<T>, f: (v: T, path: string) => U, zero: () => U): Codec<U> {
  return codec(base.expected, zero, (v, path, ctx) => f(base.decode(v, path, ctx), path));
}

/** `base` with a check of the decoded value: `check` returns why it is invalid (spec error 7). */
export function refine<T>(base: Codec<T>, check: (v: T) => string | undefined): Codec<T> {
  return convert(base, (v, path) => {
    const why = check(v);
    return why === undefined ? v : invalidValue(path, why);
  }, base.zero);
}

/** A string holding an IP address (Go `net.IP`); kept as written. */
export const ip: Codec<string> = refine(str, (s) => (parseIP(s) ? undefined : `invalid IP address ${JSON.stringify(s)}`));

/** A string holding "address/prefix" (Go `types.IPNet`); kept as written. */
export const cidr: Codec<string> = refine(str, (s) => (parseCIDR(s) ? undefined : `invalid CIDR address ${JSON.stringify(s)}`));

const MAC_RE = /^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/;

/** A string holding a MAC address (six hex bytes, colons or dashes); lower case with colons. */
export const mac: Codec<string> = convert(str, (s, path) =>
  MAC_RE.test(s) ? s.toLowerCase().replaceAll("-", ":") : invalidValue(path, `invalid MAC address ${JSON.stringify(s)}`), () => "");

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

type Attempt<T> = { ok: true; value: T } | { ok: false };

function attempt<T>(f: () => T, ctx: DecodeContext): Attempt<T> {
  if (!ctx.lenient) return { ok: true, value: f() };
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e;
    ctx.warnings.push(`ignored ${e.message}`);
    return { ok: false };
  }
}

/** Options of `decode`. */
export interface DecodeOptions {
  /** Prefix of error messages, e.g. the plugin type. */
  where?: string;
  /** Drop what does not decode (DEL) instead of failing; see `DecodeContext`. */
  lenient?: boolean;
  /** Receives lenient mode's warnings. */
  warn?: (msg: string) => void;
}

/**
 * Decode `v` with `c`; throws a `CniError` (code 2 for a wrong type, 7 for an invalid value) whose
 * message starts with `opts.where`.
 */
export function decode<T>(c: Codec<T>, v: unknown, opts: DecodeOptions = {}): T {
  const ctx: DecodeContext = { lenient: opts.lenient ?? false, warnings: [] };
  const prefix = opts.where ? `${opts.where}: ` : "";
  try {
    if (v === null || v === undefined) return c.zero();
    const out = c.decode(v, "", ctx);
    for (const w of ctx.warnings) opts.warn?.(`${prefix}${w}`);
    return out;
  } catch (e) {
    if (e instanceof DecodeError) {
      if (ctx.lenient) {
        opts.warn?.(`${prefix}ignored ${e.message}`);
        return c.zero();
      }
      throw new CniError(e.code, `${prefix}${e.message}`);
    }
    throw e;
  }
}
