import { describe, expect, test } from "bun:test";
import { encodeAttrs, nla } from "../../../src/netlink/attr.ts";
import { ByteWriter } from "../../../src/netlink/bytes.ts";
import {
  isExists,
  isNotFound,
  NetlinkError,
  NLMSGERR_ATTR_MSG,
  NLMSGERR_ATTR_OFFS,
  parseAck,
  parseDone,
} from "../../../src/netlink/error.ts";
import { NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_ERROR, parseMessages } from "../../../src/netlink/message.ts";
import { RTM_GETLINK, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE } from "../../../src/netlink/rtnl.ts";
import { SysError } from "../../../src/sys/error.ts";
import { datagrams } from "./fixture.ts";

function ackOf(name: string) {
  const [m] = parseMessages(datagrams(name)[0]!);
  expect(m!.type).toBe(NLMSG_ERROR);
  return parseAck(m!.body, m!.flags);
}

describe("acks captured from the kernel", () => {
  test("a plain ack is errno 0", () => {
    expect(ackOf("ack_ok")).toMatchObject({ errno: 0, requestType: RTM_NEWLINK, requestSeq: expect.any(Number) });
  });
  test("EEXIST, capped, no extended ack", () => {
    const a = ackOf("err_exists");
    expect(a).toEqual({ errno: 17, requestType: RTM_NEWLINK, requestSeq: a.requestSeq });
  });
  test("ENODEV for a missing link", () => {
    expect(ackOf("err_nodev")).toMatchObject({ errno: 19, requestType: RTM_GETLINK });
  });
  test("extended ack message: unknown device kind", () => {
    expect(ackOf("err_extack_kind")).toMatchObject({ errno: 95, message: "Unknown device type" });
  });
  test("extended ack message: unreachable gateway", () => {
    expect(ackOf("err_extack_gw")).toMatchObject({ errno: 101, requestType: RTM_NEWROUTE, message: "Nexthop has invalid gateway" });
  });
  test("uncapped error: the echoed request is skipped to reach the extended ack", () => {
    const [m] = parseMessages(datagrams("err_uncapped")[0]!);
    expect(m!.flags & NLM_F_CAPPED).toBe(0);
    expect(m!.flags & NLM_F_ACK_TLVS).toBe(NLM_F_ACK_TLVS);
    expect(parseAck(m!.body, m!.flags)).toMatchObject({ errno: 22, requestType: RTM_NEWADDR, message: "ipv4: Invalid prefix length" });
  });
});

describe("synthetic acks", () => {
  test("offset and message after a capped header", () => {
    const w = new ByteWriter();
    w.i32(-22).u32(32).u16(RTM_NEWLINK).u16(5).u32(9).u32(0);
    w.bytes(encodeAttrs([nla.str(NLMSGERR_ATTR_MSG, "bad"), nla.u32(NLMSGERR_ATTR_OFFS, 20)]));
    expect(parseAck(w.finish(), NLM_F_CAPPED | NLM_F_ACK_TLVS)).toEqual({
      errno: 22, requestType: RTM_NEWLINK, requestSeq: 9, message: "bad", offset: 20,
    });
  });
  test("NLMSG_DONE carrying an error", () => {
    const w = new ByteWriter();
    w.i32(-95).bytes(encodeAttrs([nla.str(NLMSGERR_ATTR_MSG, "dump not supported")]));
    expect(parseDone(w.finish(), NLM_F_ACK_TLVS)).toEqual({ errno: 95, message: "dump not supported" });
    expect(parseDone(new ByteWriter().i32(0).finish(), 0)).toEqual({ errno: 0 });
  });
});

describe("NetlinkError and predicates", () => {
  test("message names the request, the errno and the kernel's words", () => {
    const e = new NetlinkError("RTM_NEWLINK", { errno: 95, message: "Unknown device type" });
    expect(e.message).toBe("RTM_NEWLINK: Operation not supported (EOPNOTSUPP): Unknown device type");
    expect(e.code).toBe("EOPNOTSUPP");
    expect(e.kernelMessage).toBe("Unknown device type");
    expect(new NetlinkError("RTM_NEWLINK", { errno: 17 }).message).toBe("RTM_NEWLINK: File exists (EEXIST)");
  });
  test("isExists / isNotFound", () => {
    expect(isExists(new NetlinkError("x", { errno: 17 }))).toBe(true);
    expect(isNotFound(new NetlinkError("x", { errno: 17 }))).toBe(false);
    for (const errno of [2, 3, 19, 99]) expect(isNotFound(new NetlinkError("x", { errno }))).toBe(true);
    expect(isNotFound(new SysError(2, "open"))).toBe(true);
    expect(isNotFound(Object.assign(new Error("fs"), { errno: -2, code: "ENOENT" }))).toBe(true);
    expect(isNotFound(new Error("plain"))).toBe(false);
    expect(isNotFound(undefined)).toBe(false);
    expect(isExists("EEXIST")).toBe(false);
  });
});
