import { describe, expect, test } from "bun:test";
import { Attrs, encodeAttrs, NLA_F_NESTED, nla } from "../../../src/netlink/attr.ts";
import { fromHex, toHex } from "../../../src/netlink/bytes.ts";
import { MalformedMessageError } from "../../../src/netlink/malformed.ts";

// Expected bytes follow struct nlattr in include/uapi/linux/netlink.h:
// u16 nla_len (header + payload, unpadded), u16 nla_type, payload, padding to 4 bytes.
describe("attribute encoding", () => {
  test("u8 is padded to 4 bytes, length 5", () => {
    expect(toHex(encodeAttrs([nla.u8(7, 1)]))).toBe("0500" + "0700" + "01000000");
  });
  test("u16 and network-order u16", () => {
    expect(toHex(encodeAttrs([nla.u16(1, 0x1234)]))).toBe("0600" + "0100" + "3412" + "0000");
    expect(toHex(encodeAttrs([nla.u16be(15, 4789)]))).toBe("0600" + "0f00" + "12b5" + "0000");
  });
  test("u32 and i32", () => {
    expect(toHex(encodeAttrs([nla.u32(4, 1500)]))).toBe("0800" + "0400" + "dc050000");
    expect(toHex(encodeAttrs([nla.i32(37, -1)]))).toBe("0800" + "2500" + "ffffffff");
  });
  test("u64", () => {
    expect(toHex(encodeAttrs([nla.u64(1, 0x0102030405060708n)]))).toBe("0c00" + "0100" + "0807060504030201");
  });
  test("string is NUL-terminated, then padded", () => {
    // "eth0\0" = 5 bytes: nla_len 9, 3 bytes of padding
    expect(toHex(encodeAttrs([nla.str(3, "eth0")]))).toBe("0900" + "0300" + "6574683000" + "000000");
  });
  test("flag has no payload", () => {
    expect(toHex(encodeAttrs([nla.flag(23)]))).toBe("0400" + "1700");
  });
  test("nested: the outer length covers the padded children; NLA_F_NESTED only when asked", () => {
    const inner = [nla.str(1, "veth"), nla.u8(2, 9)];
    const plain = encodeAttrs([nla.nested(18, inner)]);
    expect(toHex(plain)).toBe("1800" + "1200" + "0900" + "0100" + "7665746800" + "000000" + "0500" + "0200" + "09000000");
    const flagged = encodeAttrs([nla.nested(18, inner, { flag: true })]);
    expect(toHex(flagged.subarray(0, 4))).toBe("1800" + "1280");
  });
  test("falsy entries are skipped", () => {
    expect(encodeAttrs([false, undefined, null, nla.u32(1, 1)]).length).toBe(8);
  });
});

describe("attribute decoding", () => {
  test("round trip of every kind, nested flag reported and masked", () => {
    const buf = encodeAttrs([
      nla.u8(1, 200),
      nla.u16(2, 65000),
      nla.u32(3, 0xdeadbeef),
      nla.i32(4, -5),
      nla.u64(5, 1n << 40n),
      nla.str(6, "bridge"),
      nla.bytes(7, Uint8Array.of(1, 2, 3)),
      nla.u16be(8, 0x8100),
      nla.nested(9, [nla.u32(1, 42), nla.u32(1, 43)], { flag: true }),
    ]);
    const a = Attrs.parse(buf);
    expect(a.u8(1)).toBe(200);
    expect(a.u16(2)).toBe(65000);
    expect(a.u32(3)).toBe(0xdeadbeef);
    expect(a.i32(4)).toBe(-5);
    expect(a.u64(5)).toBe(1n << 40n);
    expect(a.str(6)).toBe("bridge");
    expect(Array.from(a.bytes(7)!)).toEqual([1, 2, 3]);
    expect(a.u16be(8)).toBe(0x8100);
    expect(a.list.find((x) => x.type === 9)!.nested).toBe(true);
    const n = a.nested(9)!;
    expect(n.all(1).length).toBe(2);
    expect(n.u32(1)).toBe(42);
    expect(a.has(10)).toBe(false);
    expect(a.u32(10)).toBeUndefined();
  });
  test("a type with NLA_F_NESTED is found by its plain type", () => {
    const a = Attrs.parse(fromHex("0800" + "0180" + "0400" + "0100"));
    expect(a.has(1)).toBe(true);
    expect(a.list[0]!.type).toBe(1);
    expect(NLA_F_NESTED).toBe(0x8000);
  });
  test("a length past the end is malformed", () => {
    expect(() => Attrs.parse(fromHex("0c00" + "0100" + "00000000"))).toThrow(MalformedMessageError);
  });
  test("a length below the header is malformed", () => {
    expect(() => Attrs.parse(fromHex("0200" + "0100"))).toThrow(MalformedMessageError);
  });
  test("a payload too short for its getter is malformed", () => {
    expect(() => Attrs.parse(encodeAttrs([nla.u8(1, 1)])).u32(1)).toThrow(MalformedMessageError);
  });
});
