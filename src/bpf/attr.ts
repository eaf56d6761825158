/**
 * `union bpf_attr` and the info structs as bytes: a fixed-size little-endian buffer with setters
 * for the fields the commands use, and the object-info query shared by maps and programs.
 */

import { addressOf, bpfCall } from "../sys/bpf.ts";
import { closeFile } from "../sys/file.ts";

/** bpf() commands. */
export const Cmd = {
  MAP_CREATE: 0,
  MAP_LOOKUP_ELEM: 1,
  MAP_UPDATE_ELEM: 2,
  MAP_DELETE_ELEM: 3,
  MAP_GET_NEXT_KEY: 4,
  PROG_LOAD: 5,
  OBJ_PIN: 6,
  OBJ_GET: 7,
  PROG_ATTACH: 8,
  PROG_DETACH: 9,
  PROG_TEST_RUN: 10,
  PROG_GET_NEXT_ID: 11,
  MAP_GET_NEXT_ID: 12,
  PROG_GET_FD_BY_ID: 13,
  MAP_GET_FD_BY_ID: 14,
  OBJ_GET_INFO_BY_FD: 15,
  PROG_QUERY: 16,
} as const;

/** Size of the attr buffers cnikit passes (the kernel ignores trailing zeros). */
const ATTR_LEN = 128;
/** Object names are at most 15 bytes and a NUL. */
export const OBJ_NAME_LEN = 16;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A bpf_attr (or info struct) under construction; keeps the buffers its pointers point at alive. */
export class Attr {
  readonly buf: Uint8Array;
  private readonly view: DataView;
  private readonly keep: Uint8Array[] = [];

  constructor(len = ATTR_LEN) {
    this.buf = new Uint8Array(len);
    this.view = new DataView(this.buf.buffer);
  }
  u32(off: number, v: number): this {
    this.view.setUint32(off, v >>> 0, true);
    return this;
  }
  u64(off: number, v: bigint): this {
    this.view.setBigUint64(off, v, true);
    return this;
  }
  /** A pointer field at `off` to `b` (kept referenced as long as this attr is). */
  ptr(off: number, b: Uint8Array): this {
    this.keep.push(b);
    return this.u64(off, addressOf(b));
  }
  /** A NUL-padded name of at most 15 bytes. */
  name(off: number, s: string): this {
    this.buf.set(enc.encode(s).subarray(0, OBJ_NAME_LEN - 1), off);
    return this;
  }
  getU32(off: number): number {
    return this.view.getUint32(off, true);
  }
  getU64(off: number): bigint {
    return this.view.getBigUint64(off, true);
  }
  /** Run the command with this attr. */
  call(cmd: number, detail = ""): number {
    return bpfCall(cmd, this.buf, detail);
  }
}

/** A NUL-terminated name from a fixed-size field. */
export function readName(b: Uint8Array, off: number, len = OBJ_NAME_LEN): string {
  const f = b.subarray(off, off + len);
  const nul = f.indexOf(0);
  return dec.decode(nul < 0 ? f : f.subarray(0, nul));
}

/** BPF_OBJ_GET_INFO_BY_FD: fill `info` (a bpf_map_info or bpf_prog_info) for `fd`. */
export function objInfo(fd: number, info: Attr, what: string): void {
  new Attr(16).u32(0, fd).u32(4, info.buf.length).ptr(8, info.buf).call(Cmd.OBJ_GET_INFO_BY_FD, what);
}

/** Close a bpf object descriptor. */
export function closeFd(fd: number): void {
  closeFile(fd);
}

/** Run `read` on a descriptor just obtained, closing it when `read` throws. */
export function adopt<T>(fd: number, read: (fd: number) => T): T {
  try {
    return read(fd);
  } catch (err) {
    closeFd(fd);
    throw err;
  }
}

/** A new descriptor for the map or program with kernel id `id` (`*_GET_FD_BY_ID`). */
export function fdById(cmd: typeof Cmd.MAP_GET_FD_BY_ID | typeof Cmd.PROG_GET_FD_BY_ID, id: number, what: string): number {
  return new Attr(12).u32(0, id).call(cmd, `${what} id ${id}`);
}
