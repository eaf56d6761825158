/**
 * nftables registers: the verdict register, the four legacy 128-bit registers and the sixteen
 * 32-bit ones, and how a concatenation is packed into consecutive 32-bit registers.
 */

/** The verdict register (immediate verdicts go here). */
export const NFT_REG_VERDICT = 0;
/** The first legacy 128-bit register (NFT_REG_1 .. NFT_REG_4 are 1 .. 4). */
export const NFT_REG_1 = 1;
/** The first 32-bit register (NFT_REG32_00 .. NFT_REG32_15 are 8 .. 23). */
export const NFT_REG32_00 = 8;
/** Number of 32-bit registers. */
export const NFT_REG32_COUNT = 16;

/** The 32-bit register number `i` (0..15). */
export function reg32(i: number): number {
  if (!Number.isInteger(i) || i < 0 || i >= NFT_REG32_COUNT) throw new RangeError(`no 32-bit register ${i}`);
  return NFT_REG32_00 + i;
}

/**
 * The registers the components of a concatenation are loaded into, starting at 32-bit register
 * `first`: each component takes as many 32-bit registers as its length needs (an IPv4 address
 * one, a port one, an IPv6 address four). The lookup then reads the key from the first one.
 */
export function concatRegs(first: number, lens: readonly number[]): number[] {
  const out: number[] = [];
  let r = first;
  for (const len of lens) {
    out.push(r);
    r += Math.max(1, Math.ceil(len / 4));
  }
  if (r - NFT_REG32_00 > NFT_REG32_COUNT) throw new RangeError("concatenation does not fit in the registers");
  return out;
}
