import { expect, test } from "bun:test";
import { ByteWriter } from "../../../src/netlink/bytes.ts";

test("ByteWriter keeps every byte when it grows past its capacity, whatever the write", () => {
  const w = new ByteWriter(4);
  w.u32(0x01020304).u16(0x0506).u8(7).u16be(0x0809).i32(-1).u64(0x0a0b0c0d0e0f1011n).bytes(Uint8Array.of(0x12, 0x13)).zeros(3);
  const expected = [4, 3, 2, 1, 6, 5, 7, 8, 9, 0xff, 0xff, 0xff, 0xff, 0x11, 0x10, 0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 0x12, 0x13, 0, 0, 0];
  expect(Array.from(w.finish())).toEqual(expected);
  // a big message: 1000 single bytes through many reallocations
  const big = new ByteWriter(1);
  for (let i = 0; i < 1000; i++) big.u8(i & 0xff);
  expect(Array.from(big.finish())).toEqual(Array.from({ length: 1000 }, (_, i) => i & 0xff));
});
