/** Verdicts: what a rule or a verdict map decides (accept, drop, jump to a chain, ...). */

import { type AttrLike, type Attrs, nla } from "../netlink/attr.ts";
import { NFTA_VERDICT, VerdictCode } from "./uapi.ts";
import { be32 } from "./wire.ts";

/** A verdict; `jump` and `goto` name the target chain. */
export type Verdict =
  | { readonly kind: "accept" | "drop" | "return" | "continue" | "break" }
  | { readonly kind: "jump" | "goto"; readonly chain: string };

/** Shorthands for verdicts. */
export const verdict = {
  accept: { kind: "accept" } as Verdict,
  drop: { kind: "drop" } as Verdict,
  return: { kind: "return" } as Verdict,
  continue: { kind: "continue" } as Verdict,
  /** Jump to `chain` (and come back on return). */
  jump: (chain: string): Verdict => ({ kind: "jump", chain }),
  /** Go to `chain` (without coming back). */
  goto: (chain: string): Verdict => ({ kind: "goto", chain }),
};

/** The attributes inside NFTA_DATA_VERDICT for `v`. */
export function verdictAttrs(v: Verdict): AttrLike[] {
  return [
    be32(NFTA_VERDICT.CODE, VerdictCode[v.kind]),
    "chain" in v && nla.str(NFTA_VERDICT.CHAIN, v.chain),
  ];
}

/** Decode the attributes nested in NFTA_DATA_VERDICT. */
export function decodeVerdict(a: Attrs): Verdict {
  const b = a.get(NFTA_VERDICT.CODE);
  const code = b && b.length >= 4 ? new DataView(b.buffer, b.byteOffset, 4).getInt32(0, false) : NaN;
  const kind = (Object.keys(VerdictCode) as (keyof typeof VerdictCode)[]).find((k) => VerdictCode[k] === code);
  if (kind === "jump" || kind === "goto") return { kind, chain: a.str(NFTA_VERDICT.CHAIN) ?? "" };
  if (kind === undefined) throw new RangeError(`unknown verdict code ${code}`);
  return { kind };
}
