/**
 * eBPF maps: create (hash, array, LPM trie, ...), update, lookup, delete, iterate with
 * `BPF_MAP_GET_NEXT_KEY`, pin and reopen from a pin or an id. Keys and values are bytes; the
 * datapath (`datapath.ts`) gives them meaning.
 */

import { adopt, Attr, Cmd, fdById, objInfo, readName } from "./attr.ts";
import { BpfObject } from "./object.ts";
import { openPinned } from "./pin.ts";
import { Errno } from "../sys/errno.ts";
import { SysError } from "../sys/error.ts";

/** Map types cnikit uses (enum bpf_map_type). */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LPM_TRIE: 11,
} as const;

/** Map creation flag: allocate entries on update (required by LPM tries). */
export const BPF_F_NO_PREALLOC = 1;

/** How an update treats an existing key. */
export type UpdateMode = "any" | "create" | "replace";
const UPDATE_FLAGS: Record<UpdateMode, bigint> = { any: 0n, create: 1n, replace: 2n };

/** What a map is: its type, sizes and name. */
export interface MapSpec {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** BPF_F_* creation flags (LPM tries get BPF_F_NO_PREALLOC whatever this says). */
  flags?: number;
  /** Up to 15 characters of [A-Za-z0-9_.]. */
  name?: string;
}

function isMissing(err: unknown): boolean {
  return (err as { code?: string }).code === "ENOENT";
}

/** An open map (a descriptor): close it when done; a pinned or program-held map lives on. */
export class BpfMap extends BpfObject {
  private constructor(
    fd: number,
    /** Type, sizes, flags and name as the kernel reports them. */
    readonly spec: Required<MapSpec>,
    id: number,
  ) {
    super(fd, id);
  }

  /** BPF_MAP_CREATE. */
  static create(spec: MapSpec): BpfMap {
    const flags = (spec.flags ?? 0) | (spec.type === MapType.LPM_TRIE ? BPF_F_NO_PREALLOC : 0);
    const a = new Attr().u32(0, spec.type).u32(4, spec.keySize).u32(8, spec.valueSize).u32(12, spec.maxEntries).u32(16, flags);
    if (spec.name) a.name(28, spec.name);
    const fd = a.call(Cmd.MAP_CREATE, spec.name ?? "");
    return BpfMap.fromFd(fd, spec.name ?? "");
  }

  /** Wrap a map descriptor (taking ownership), reading its spec from the kernel. */
  static fromFd(fd: number, what = ""): BpfMap {
    return adopt(fd, () => {
      // struct bpf_map_info: type, id, key_size, value_size, max_entries, map_flags, name[16]
      const info = new Attr(88);
      objInfo(fd, info, what);
      const spec = {
        type: info.getU32(0),
        keySize: info.getU32(8),
        valueSize: info.getU32(12),
        maxEntries: info.getU32(16),
        flags: info.getU32(20),
        name: readName(info.buf, 24),
      };
      return new BpfMap(fd, spec, info.getU32(4));
    });
  }

  /** Open the map pinned at `path` (BPF_OBJ_GET). */
  static fromPin(path: string): BpfMap {
    return BpfMap.fromFd(openPinned(path), path);
  }

  /**
   * The map pinned at `path` if there is one (undefined when nothing is pinned there, or the
   * directory is missing), checked against `spec`'s layout: type, key and value sizes (the number
   * of entries may differ: it was chosen when the map was made). EEXIST when the layout differs.
   */
  static reopen(path: string, spec: MapSpec): BpfMap | undefined {
    let m: BpfMap;
    try {
      m = BpfMap.fromPin(path);
    } catch (err) {
      if (isMissing(err) || (err as { code?: string }).code === "ENOTDIR") return undefined;
      throw err;
    }
    if (m.spec.type === spec.type && m.spec.keySize === spec.keySize && m.spec.valueSize === spec.valueSize) return m;
    m.close();
    throw new SysError(Errno.EEXIST, "pin", `${path} holds a map of another layout (an older cnikit?): remove it`);
  }

  /** Open the map with kernel id `id`. */
  static fromId(id: number): BpfMap {
    return BpfMap.fromFd(fdById(Cmd.MAP_GET_FD_BY_ID, id, "map"), `map id ${id}`);
  }

  private key(k: Uint8Array): Uint8Array {
    if (k.length !== this.spec.keySize) throw new RangeError(`map ${this.spec.name}: key of ${k.length} bytes, want ${this.spec.keySize}`);
    return k;
  }

  /** The value at `key`, or undefined when there is none. */
  lookup(key: Uint8Array): Uint8Array | undefined {
    const value = new Uint8Array(this.spec.valueSize);
    try {
      new Attr().u32(0, this.fd).ptr(8, this.key(key)).ptr(16, value).call(Cmd.MAP_LOOKUP_ELEM, this.spec.name);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    return value;
  }

  /** Set `key` to `value` ("create": EEXIST when present; "replace": ENOENT when absent). */
  update(key: Uint8Array, value: Uint8Array, mode: UpdateMode = "any"): void {
    if (value.length !== this.spec.valueSize) {
      throw new RangeError(`map ${this.spec.name}: value of ${value.length} bytes, want ${this.spec.valueSize}`);
    }
    new Attr().u32(0, this.fd).ptr(8, this.key(key)).ptr(16, value).u64(24, UPDATE_FLAGS[mode]).call(Cmd.MAP_UPDATE_ELEM, this.spec.name);
  }

  /** Remove `key`; false when it was not there. */
  delete(key: Uint8Array): boolean {
    try {
      new Attr().u32(0, this.fd).ptr(8, this.key(key)).call(Cmd.MAP_DELETE_ELEM, this.spec.name);
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
  }

  /** The key after `key` (the first key without one), or undefined at the end. */
  nextKey(key?: Uint8Array): Uint8Array | undefined {
    const next = new Uint8Array(this.spec.keySize);
    const a = new Attr().u32(0, this.fd).ptr(16, next);
    if (key) a.ptr(8, this.key(key));
    try {
      a.call(Cmd.MAP_GET_NEXT_KEY, this.spec.name);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    return next;
  }

  /** Every key (a hash map's order; entries deleted meanwhile may restart the walk, as in the kernel). */
  *keys(): Generator<Uint8Array> {
    for (let k = this.nextKey(); k; k = this.nextKey(k)) yield k;
  }

  /** Every key with its value (keys deleted during the walk are skipped). */
  *entries(): Generator<[Uint8Array, Uint8Array]> {
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) yield [k, v];
    }
  }
}
