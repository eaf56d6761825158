// Maps and programs in the real kernel through bpf(): create, update, lookup, delete and iterate
// hash, array and LPM trie maps; load programs, run them with BPF_PROG_TEST_RUN, and read the
// verifier's log from a refused one. Nothing here touches the network (test runs happen on the
// kernel's private copy of a packet). Needs root: reported as skipped otherwise.
import { afterEach, describe, expect, test } from "bun:test";
import { Asm, R0 } from "../../../src/bpf/asm.ts";
import { BpfMap, MapType } from "../../../src/bpf/map.ts";
import { BpfLoadError, BpfProgram, loadProgram } from "../../../src/bpf/prog.ts";
import { countHit } from "./packets.ts";

const root = process.getuid?.() === 0;
const opened: Array<{ close(): void }> = [];
afterEach(() => {
  for (const o of opened.splice(0)) o.close();
});
function keep<T extends { close(): void }>(o: T): T {
  opened.push(o);
  return o;
}

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const ip = (s: string) => Uint8Array.from(s.split(".").map(Number));
const lpmKey = (prefix: number, addr: string) => {
  const k = new Uint8Array(8);
  new DataView(k.buffer).setUint32(0, prefix, true);
  k.set(ip(addr), 4);
  return k;
};

describe.skipIf(!root)("maps", () => {
  test("hash: create, update, lookup, delete, iterate", () => {
    const m = keep(BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 16, name: "ckf_hash" }));
    expect(m.spec).toMatchObject({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 16, name: "ckf_hash" });
    expect(m.lookup(u32(1))).toBeUndefined();
    m.update(u32(1), new Uint8Array(8).fill(1));
    m.update(u32(2), new Uint8Array(8).fill(2), "create");
    expect(() => m.update(u32(2), new Uint8Array(8), "create")).toThrow(/EEXIST/);
    expect(() => m.update(u32(3), new Uint8Array(8), "replace")).toThrow(/ENOENT/);
    expect([...m.lookup(u32(2))!]).toEqual(new Array(8).fill(2));
    const keys = [...m.keys()].map((k) => new Uint32Array(k.buffer)[0]).sort();
    expect(keys).toEqual([1, 2]);
    expect([...m.entries()].length).toBe(2);
    expect(m.delete(u32(1))).toBe(true);
    expect(m.delete(u32(1))).toBe(false);
    expect([...m.keys()].length).toBe(1);
    expect(() => m.lookup(new Uint8Array(3))).toThrow(RangeError);
  });

  test("array: every index exists, zeroed", () => {
    const m = keep(BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 4, name: "ckf_arr" }));
    expect([...m.lookup(u32(3))!]).toEqual([0, 0, 0, 0]);
    m.update(u32(0), u32(42));
    expect(new Uint32Array(m.lookup(u32(0))!.buffer)[0]).toBe(42);
    expect([...m.keys()].length).toBe(4);
  });

  test("LPM trie: the longest prefix wins", () => {
    const m = keep(BpfMap.create({ type: MapType.LPM_TRIE, keySize: 8, valueSize: 4, maxEntries: 16, name: "ckf_lpm" }));
    m.update(lpmKey(16, "10.244.0.0"), u32(16));
    m.update(lpmKey(24, "10.244.3.0"), u32(24));
    const hit = (a: string) => {
      const v = m.lookup(lpmKey(32, a));
      return v ? new Uint32Array(v.buffer)[0] : undefined;
    };
    expect(hit("10.244.3.7")).toBe(24);
    expect(hit("10.244.9.1")).toBe(16);
    expect(hit("10.245.0.1")).toBeUndefined();
    expect([...m.keys()].length).toBe(2);
    expect(m.delete(lpmKey(24, "10.244.3.0"))).toBe(true);
    expect(hit("10.244.3.7")).toBe(16);
  });

  test("reopen by id: same map", () => {
    const m = keep(BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 4, maxEntries: 4, name: "ckf_id" }));
    m.update(u32(5), u32(6));
    const again = keep(BpfMap.fromId(m.id));
    expect(again.id).toBe(m.id);
    expect(again.spec).toEqual(m.spec);
    expect(new Uint32Array(again.lookup(u32(5))!.buffer)[0]).toBe(6);
  });
});

describe.skipIf(!root)("programs", () => {
  test("load and test-run: the return value", () => {
    const p = keep(loadProgram({ insns: new Asm().mov64(R0, 7).exit(), name: "ckf_ret7" }));
    expect(p.name).toBe("ckf_ret7");
    expect(p.tag).toMatch(/^[0-9a-f]{16}$/);
    const r = p.testRun(new Uint8Array(64));
    expect(r.retval).toBe(7);
    expect(r.data.length).toBe(64);
  });

  test("a program with a map: an atomic counter the test reads back", () => {
    const m = keep(BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1, name: "ckf_cnt" }));
    const prog = countHit(new Asm(), "counter", "out").label("out").mov64(R0, 0).exit();
    const p = keep(loadProgram({ insns: prog, link: { maps: { counter: m.fd } }, name: "ckf_count" }));
    expect(p.mapIds).toEqual([m.id]);
    p.testRun(new Uint8Array(64), { repeat: 5 });
    expect(new BigUint64Array(m.lookup(u32(0))!.buffer)[0]).toBe(5n);
    const again = keep(BpfProgram.fromId(p.id));
    expect(again.tag).toBe(p.tag);
  });

  test("a refused program: the error carries the verifier's log", () => {
    let err: unknown;
    try {
      loadProgram({ insns: new Asm().exit(), name: "ckf_bad" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BpfLoadError);
    const e = err as BpfLoadError;
    expect(e.code).toBe("EACCES");
    expect(e.log).toContain("R0 !read_ok");
    expect(e.message).toContain("ckf_bad");
    expect(e.message).toContain("R0 !read_ok");
  });
});
