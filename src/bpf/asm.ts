/**
 * An eBPF instruction builder, after cilium/ebpf's `asm`: programs are written as a list of
 * instructions in TypeScript (ALU 32/64, jumps to named labels, loads and stores, atomic add,
 * 64-bit immediates, map references, helper calls by name) and assembled into the bytes that
 * `BPF_PROG_LOAD` takes. Labels become jump offsets and map names become `BPF_PSEUDO_MAP_FD`
 * references to descriptors at assembly time, so one program text serves every load.
 *
 * Encoding (struct bpf_insn, 8 bytes, little-endian): u8 opcode, u8 dst_reg:4 | src_reg:4,
 * s16 off, s32 imm; `lddw` takes two slots, the second holding the upper 32 bits of the immediate.
 */

import { HELPERS, type HelperName } from "./helpers.ts";

/** A register, r0 to r10 (r10 is the read-only frame pointer). */
export class Reg {
  constructor(readonly n: number) {}
  toString(): string {
    return `r${this.n}`;
  }
}

export const R0 = new Reg(0);
export const R1 = new Reg(1);
export const R2 = new Reg(2);
export const R3 = new Reg(3);
export const R4 = new Reg(4);
export const R5 = new Reg(5);
export const R6 = new Reg(6);
export const R7 = new Reg(7);
export const R8 = new Reg(8);
export const R9 = new Reg(9);
/** The frame pointer: the stack is the 512 bytes below it. */
export const R10 = new Reg(10);

/** Instruction classes. */
export const Class = { LD: 0x00, LDX: 0x01, ST: 0x02, STX: 0x03, ALU: 0x04, JMP: 0x05, JMP32: 0x06, ALU64: 0x07 } as const;
/** Memory access sizes. */
export const SIZE = { w: 0x00, h: 0x08, b: 0x10, dw: 0x18 } as const;
/** Access size of a load or store: byte, half word, word, double word. */
export type Size = keyof typeof SIZE;
const MODE_IMM = 0x00;
const MODE_MEM = 0x60;
const MODE_ATOMIC = 0xc0;
const SRC_K = 0x00;
const SRC_X = 0x08;

/** ALU operations (the high nibble of the opcode). */
export const ALU = {
  add: 0x00, sub: 0x10, mul: 0x20, div: 0x30, or: 0x40, and: 0x50, lsh: 0x60, rsh: 0x70,
  neg: 0x80, mod: 0x90, xor: 0xa0, mov: 0xb0, arsh: 0xc0,
} as const;
/** An ALU operation's name. */
export type AluOp = keyof typeof ALU;
const ALU_END = 0xd0;

/** Conditional jump operations. */
export const JMP = {
  eq: 0x10, gt: 0x20, ge: 0x30, set: 0x40, ne: 0x50, sgt: 0x60, sge: 0x70,
  lt: 0xa0, le: 0xb0, slt: 0xc0, sle: 0xd0,
} as const;
/** A conditional jump's comparison (unsigned unless prefixed with s). */
export type JmpOp = keyof typeof JMP;
const JMP_JA = 0x00;
const JMP_CALL = 0x80;
const JMP_EXIT = 0x90;

/** `src_reg` of an `lddw` whose immediate is a map descriptor. */
export const BPF_PSEUDO_MAP_FD = 1;
/** Atomic operation `imm`: add (without fetching the old value). */
const ATOMIC_ADD = 0x00;

/** One instruction, before labels and map names are resolved. */
export interface Insn {
  /** The opcode byte. */
  op: number;
  dst: number;
  src: number;
  off: number;
  /** The 32-bit immediate (for `lddw`, the low half of `imm64`). */
  imm: number;
  /** `lddw`: the whole 64-bit immediate (the instruction takes two slots). */
  imm64?: bigint;
  /** A jump to this label (`off` is filled in at assembly). */
  target?: string;
  /** `lddw` of this map's descriptor (`imm` is filled in at assembly). */
  map?: string;
  /** Labels that name this instruction. */
  labels?: string[];
}

/** What `assemble` needs besides the instructions: a descriptor for each map name used. */
export interface Link {
  maps?: Readonly<Record<string, number>>;
}

/** An assembly-time error: an unknown label or map, a jump out of range. */
export class AsmError extends Error {
  override name = "AsmError";
}

function isLddw(i: Insn): boolean {
  return i.op === (Class.LD | SIZE.dw | MODE_IMM);
}

/** Slots (8-byte units) taken by an instruction. */
export function slots(i: Insn): number {
  return isLddw(i) ? 2 : 1;
}

function checkImm(imm: number): number {
  if (!Number.isInteger(imm) || imm < -0x80000000 || imm > 0xffffffff) throw new AsmError(`immediate ${imm} does not fit 32 bits`);
  return imm | 0;
}

function checkOff(off: number): number {
  if (!Number.isInteger(off) || off < -0x8000 || off > 0x7fff) throw new AsmError(`offset ${off} does not fit 16 bits`);
  return off;
}

/**
 * A program under construction. Every method appends one instruction (or names the next one, for
 * `label`) and returns the builder, so programs read as a sequence:
 * `new Asm().mov64(R0, 0).exit()`.
 */
export class Asm {
  readonly insns: Insn[] = [];
  private pending: string[] = [];

  /** Append a raw instruction. */
  raw(i: Insn): this {
    if (this.pending.length > 0) {
      i.labels = [...(i.labels ?? []), ...this.pending];
      this.pending = [];
    }
    this.insns.push(i);
    return this;
  }

  /** Name the next instruction, as the target of jumps. */
  label(name: string): this {
    this.pending.push(name);
    return this;
  }

  /** Append every instruction of another builder (its labels come along). */
  append(other: Asm): this {
    for (const i of other.insns) this.raw({ ...i });
    this.pending.push(...other.pending);
    return this;
  }

  private alu(cls: number, op: AluOp, dst: Reg, src: Reg | number): this {
    if (src instanceof Reg) return this.raw({ op: cls | ALU[op] | SRC_X, dst: dst.n, src: src.n, off: 0, imm: 0 });
    return this.raw({ op: cls | ALU[op] | SRC_K, dst: dst.n, src: 0, off: 0, imm: checkImm(src) });
  }
  /** 64-bit `dst op= src` (a register or a 32-bit immediate, sign-extended). */
  alu64(op: AluOp, dst: Reg, src: Reg | number): this {
    return this.alu(Class.ALU64, op, dst, src);
  }
  /** 32-bit `dst op= src`; the upper half of dst is zeroed. */
  alu32(op: AluOp, dst: Reg, src: Reg | number): this {
    return this.alu(Class.ALU, op, dst, src);
  }
  /** `dst = src` (64 bits). */
  mov64(dst: Reg, src: Reg | number): this {
    return this.alu64("mov", dst, src);
  }
  /** `w_dst = src` (32 bits, upper half zeroed). */
  mov32(dst: Reg, src: Reg | number): this {
    return this.alu32("mov", dst, src);
  }
  /** `dst += src` (64 bits). */
  add64(dst: Reg, src: Reg | number): this {
    return this.alu64("add", dst, src);
  }
  /** Byte swap `dst` to big-endian (network order) in `bits` 16, 32 or 64 (from little-endian hosts). */
  be(dst: Reg, bits: 16 | 32 | 64): this {
    return this.raw({ op: Class.ALU | ALU_END | SRC_X, dst: dst.n, src: 0, off: 0, imm: bits });
  }
  /** Convert `dst` to little-endian in `bits` (truncating to that width). */
  le(dst: Reg, bits: 16 | 32 | 64): this {
    return this.raw({ op: Class.ALU | ALU_END | SRC_K, dst: dst.n, src: 0, off: 0, imm: bits });
  }

  private jump(cls: number, op: JmpOp, dst: Reg, src: Reg | number, target: string): this {
    if (src instanceof Reg) return this.raw({ op: cls | JMP[op] | SRC_X, dst: dst.n, src: src.n, off: 0, imm: 0, target });
    return this.raw({ op: cls | JMP[op] | SRC_K, dst: dst.n, src: 0, off: 0, imm: checkImm(src), target });
  }
  /** `if dst op src goto target` (64-bit comparison). */
  jmp(op: JmpOp, dst: Reg, src: Reg | number, target: string): this {
    return this.jump(Class.JMP, op, dst, src, target);
  }
  /** `if w_dst op w_src goto target` (32-bit comparison). */
  jmp32(op: JmpOp, dst: Reg, src: Reg | number, target: string): this {
    return this.jump(Class.JMP32, op, dst, src, target);
  }
  /** `goto target`. */
  ja(target: string): this {
    return this.raw({ op: Class.JMP | JMP_JA, dst: 0, src: 0, off: 0, imm: 0, target });
  }
  /** Call a helper by name (arguments in r1-r5, result in r0; r1-r5 are clobbered). */
  call(helper: HelperName): this {
    const n = HELPERS[helper];
    if (n === undefined) throw new AsmError(`unknown helper ${helper}`);
    return this.raw({ op: Class.JMP | JMP_CALL, dst: 0, src: 0, off: 0, imm: n });
  }
  /** Return r0. */
  exit(): this {
    return this.raw({ op: Class.JMP | JMP_EXIT, dst: 0, src: 0, off: 0, imm: 0 });
  }

  /** `dst = *(size *)(src + off)`. */
  ldx(size: Size, dst: Reg, src: Reg, off: number): this {
    return this.raw({ op: Class.LDX | SIZE[size] | MODE_MEM, dst: dst.n, src: src.n, off: checkOff(off), imm: 0 });
  }
  /** `*(size *)(dst + off) = src`. */
  stx(size: Size, dst: Reg, off: number, src: Reg): this {
    return this.raw({ op: Class.STX | SIZE[size] | MODE_MEM, dst: dst.n, src: src.n, off: checkOff(off), imm: 0 });
  }
  /** `*(size *)(dst + off) = imm`. */
  st(size: Size, dst: Reg, off: number, imm: number): this {
    return this.raw({ op: Class.ST | SIZE[size] | MODE_MEM, dst: dst.n, src: 0, off: checkOff(off), imm: checkImm(imm) });
  }
  /** Atomically `*(size *)(dst + off) += src` (size w or dw). */
  atomicAdd(size: "w" | "dw", dst: Reg, off: number, src: Reg): this {
    return this.raw({ op: Class.STX | SIZE[size] | MODE_ATOMIC, dst: dst.n, src: src.n, off: checkOff(off), imm: ATOMIC_ADD });
  }
  /** `dst = imm64` (lddw: two slots). */
  lddw(dst: Reg, imm64: bigint): this {
    const v = BigInt.asUintN(64, imm64);
    return this.raw({ op: Class.LD | SIZE.dw | MODE_IMM, dst: dst.n, src: 0, off: 0, imm: Number(BigInt.asIntN(32, v)), imm64: v });
  }
  /** `dst = &map` for the map named `name` (a `BPF_PSEUDO_MAP_FD` lddw, resolved at assembly). */
  ldMap(dst: Reg, name: string): this {
    return this.raw({ op: Class.LD | SIZE.dw | MODE_IMM, dst: dst.n, src: BPF_PSEUDO_MAP_FD, off: 0, imm: 0, imm64: 0n, map: name });
  }

  /** The names of the maps the program refers to, in order of first use. */
  maps(): string[] {
    return [...new Set(this.insns.flatMap((i) => (i.map ? [i.map] : [])))];
  }

  /** Resolve labels and map names, and encode: the bytes for `BPF_PROG_LOAD`. */
  assemble(link: Link = {}): Uint8Array {
    if (this.pending.length > 0) throw new AsmError(`label ${this.pending[0]} names no instruction`);
    const at = new Map<string, number>();
    let pc = 0;
    for (const i of this.insns) {
      for (const l of i.labels ?? []) {
        if (at.has(l)) throw new AsmError(`label ${l} defined twice`);
        at.set(l, pc);
      }
      pc += slots(i);
    }
    const out = new Uint8Array(pc * 8);
    const v = new DataView(out.buffer);
    pc = 0;
    for (const i of this.insns) {
      let { off, imm } = i;
      let imm64 = i.imm64;
      if (i.target !== undefined) {
        const to = at.get(i.target);
        if (to === undefined) throw new AsmError(`jump to unknown label ${i.target}`);
        off = checkOff(to - (pc + 1));
      }
      if (i.map !== undefined) {
        const fd = link.maps?.[i.map];
        if (fd === undefined) throw new AsmError(`no descriptor for map ${i.map}`);
        imm64 = BigInt(fd);
        imm = fd;
      }
      const o = pc * 8;
      v.setUint8(o, i.op);
      v.setUint8(o + 1, ((i.src & 0xf) << 4) | (i.dst & 0xf));
      v.setInt16(o + 2, off, true);
      v.setInt32(o + 4, imm | 0, true);
      if (imm64 !== undefined) {
        v.setInt32(o + 4, Number(BigInt.asIntN(32, imm64)), true);
        v.setInt32(o + 12, Number(BigInt.asIntN(32, imm64 >> 32n)), true);
      }
      pc += slots(i);
    }
    return out;
  }
}

/** Decode program bytes back into instructions (no labels; `lddw` with `imm64`). */
export function decode(bytes: Uint8Array): Insn[] {
  if (bytes.length % 8 !== 0) throw new AsmError(`program of ${bytes.length} bytes is not a whole number of instructions`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Insn[] = [];
  for (let o = 0; o < bytes.length; o += 8) {
    const regs = v.getUint8(o + 1);
    const i: Insn = { op: v.getUint8(o), dst: regs & 0xf, src: regs >> 4, off: v.getInt16(o + 2, true), imm: v.getInt32(o + 4, true) };
    if (isLddw(i)) {
      if (o + 16 > bytes.length) throw new AsmError(`lddw at ${o / 8} is missing its second half`);
      i.imm64 = (BigInt(v.getUint32(o + 12, true)) << 32n) | BigInt(v.getUint32(o + 4, true));
      o += 8;
    }
    out.push(i);
  }
  return out;
}
