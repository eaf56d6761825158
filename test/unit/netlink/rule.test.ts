import { describe, expect, test } from "bun:test";
import { decodeRule, encodeRule, FR_ACT_TO_TBL } from "../../../src/netlink/rule.ts";

const le32 = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff];

describe("rule messages (struct fib_rule_hdr + FRA_*)", () => {
  test("from 10.1.2.3/32 lookup 100: the header carries the table, FRA_TABLE too", () => {
    const b = encodeRule({ family: 2, src: Uint8Array.of(10, 1, 2, 3), srcLen: 32, table: 100 });
    expect(Array.from(b)).toEqual([
      2, 0, 32, 0, 100, 0, 0, FR_ACT_TO_TBL, 0, 0, 0, 0, // family, dst_len, src_len, tos, table, res1, res2, action, flags
      8, 0, 2, 0, 10, 1, 2, 3, // FRA_SRC
      8, 0, 15, 0, ...le32(100), // FRA_TABLE
    ]);
  });

  test("a table above 255 lives only in FRA_TABLE; priority is FRA_PRIORITY", () => {
    const b = encodeRule({ family: 10, src: new Uint8Array(16).fill(0xfd, 0, 1), srcLen: 128, table: 4242, priority: 1000 });
    expect(b[4]).toBe(0);
    expect(Array.from(b.subarray(12 + 20, 12 + 28))).toEqual([8, 0, 6, 0, ...le32(1000)]);
    expect(Array.from(b.subarray(12 + 28))).toEqual([8, 0, 15, 0, ...le32(4242)]);
    const d = decodeRule(b);
    expect(d).toMatchObject({ family: 10, srcLen: 128, table: 4242, priority: 1000, action: FR_ACT_TO_TBL });
    expect(d.src![0]).toBe(0xfd);
  });
});
