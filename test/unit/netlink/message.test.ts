import { describe, expect, test } from "bun:test";
import { fromHex, toHex } from "../../../src/netlink/bytes.ts";
import { MalformedMessageError } from "../../../src/netlink/malformed.ts";
import {
  encodeMessage,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  NLMSG_DONE,
  parseMessages,
} from "../../../src/netlink/message.ts";
import { datagrams } from "./fixture.ts";

describe("nlmsghdr", () => {
  test("encodes length, type, flags, seq and pid in host order, body padded", () => {
    // struct nlmsghdr: u32 len, u16 type, u16 flags, u32 seq, u32 pid (include/uapi/linux/netlink.h)
    const m = encodeMessage({ type: 18, flags: NLM_F_REQUEST | NLM_F_DUMP, seq: 7, pid: 0 }, Uint8Array.of(0, 0, 0, 0, 9));
    expect(toHex(m)).toBe("15000000" + "1200" + "0103" + "07000000" + "00000000" + "0000000009" + "000000");
  });
  test("flag values match the UAPI", () => {
    expect([NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP]).toEqual([1, 2, 4, 0x300]);
  });
  test("splits a datagram of several messages", () => {
    const a = encodeMessage({ type: 16, seq: 1 }, Uint8Array.of(1));
    const b = encodeMessage({ type: 3, seq: 2 }, Uint8Array.of(0, 0, 0, 0));
    const buf = new Uint8Array(a.length + b.length);
    buf.set(a);
    buf.set(b, a.length);
    const msgs = parseMessages(buf);
    expect(msgs.map((m) => [m.type, m.seq, m.body.length])).toEqual([[16, 1, 1], [3, 2, 4]]);
  });
  test("rejects a length beyond the datagram", () => {
    expect(() => parseMessages(fromHex("20000000" + "1000" + "0000" + "00000000" + "00000000"))).toThrow(
      MalformedMessageError,
    );
  });
  test("a captured multi-part dump: every part flagged NLM_F_MULTI, ended by NLMSG_DONE", () => {
    const parts = datagrams("link_dump");
    expect(parts.length).toBeGreaterThan(2); // the capture spans several datagrams
    const msgs = parts.flatMap((d) => parseMessages(d));
    expect(msgs.every((m) => m.flags & NLM_F_MULTI)).toBe(true);
    expect(msgs.at(-1)!.type).toBe(NLMSG_DONE);
    expect(msgs.filter((m) => m.type === NLMSG_DONE).length).toBe(1);
    expect(new Set(msgs.map((m) => m.seq)).size).toBe(1);
  });
});
