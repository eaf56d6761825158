import { describe, expect, test } from "bun:test";
import { HOST_LE, viewOf } from "../../../src/netlink/bytes.ts";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { NetlinkError } from "../../../src/netlink/error.ts";
import { decodeLink, encodeLink } from "../../../src/netlink/link.ts";
import {
  decodeHeader,
  encodeMessage,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_EXCL,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  NLMSG_DONE,
  parseMessages,
} from "../../../src/netlink/message.ts";
import { RTM_GETLINK, RTM_NEWLINK } from "../../../src/netlink/rtnl.ts";
import type { NetlinkSocket } from "../../../src/sys/socket.ts";
import { datagrams } from "./fixture.ts";

/** Rewrite every message's seq in a datagram (a copy). */
function withSeq(d: Uint8Array, seq: number, extraFlags = 0): Uint8Array {
  const out = d.slice();
  const v = viewOf(out);
  for (let off = 0; off < out.length; ) {
    const len = v.getUint32(off, HOST_LE);
    v.setUint32(off + 8, seq, HOST_LE);
    v.setUint16(off + 6, v.getUint16(off + 6, HOST_LE) | extraFlags, HOST_LE);
    off += (len + 3) & ~3;
  }
  return out;
}

/** A socket that answers each request with a script of datagrams, seq patched to match. */
class FakeSocket implements NetlinkSocket {
  readonly portId = 4242;
  sent: Uint8Array[] = [];
  closed = false;
  private queue: Uint8Array[] = [];
  constructor(private readonly answers: ((seq: number) => Uint8Array[])[]) {}
  send(data: Uint8Array): void {
    this.sent.push(data.slice());
    const seq = decodeHeader(data).seq;
    const next = this.answers.shift();
    if (!next) throw new Error("unexpected request");
    this.queue.push(...next(seq));
  }
  recv(): Uint8Array {
    const d = this.queue.shift();
    if (!d) throw new Error("recv with nothing queued: the connection would block forever");
    return d;
  }
  close(): void {
    this.closed = true;
  }
}

const replay = (name: string, extraFlags = 0) => (seq: number) => datagrams(name).map((d) => withSeq(d, seq, extraFlags));

describe("NetlinkConn", () => {
  test("dump gathers every part of a multi-datagram dump, and sends a DUMP request", () => {
    const sock = new FakeSocket([replay("link_dump")]);
    const conn = new NetlinkConn(sock);
    const msgs = conn.dump(RTM_GETLINK, encodeLink({}));
    const names = msgs.map((m) => decodeLink(m.body).name);
    expect(names.length).toBe(34);
    expect(names).toContain("lo");
    expect(names).toContain("filler23");
    const hdr = decodeHeader(sock.sent[0]!);
    expect(hdr.type).toBe(RTM_GETLINK);
    expect(hdr.flags).toBe(NLM_F_REQUEST | NLM_F_DUMP);
  });
  test("request returns the replies before the ack (GETLINK by name)", () => {
    const sock = new FakeSocket([replay("getlink_one")]);
    const msgs = new NetlinkConn(sock).request(RTM_GETLINK, encodeLink({ name: "lo" }));
    expect(msgs.map((m) => decodeLink(m.body).name)).toEqual(["lo"]);
    expect(decodeHeader(sock.sent[0]!).flags).toBe(NLM_F_REQUEST | NLM_F_ACK);
  });
  test("request with a plain ack returns nothing; extra flags are sent", () => {
    const sock = new FakeSocket([replay("ack_ok")]);
    expect(new NetlinkConn(sock).request(RTM_NEWLINK, encodeLink({ index: 5, mtu: 1450 }), { flags: NLM_F_CREATE })).toEqual([]);
    expect(decodeHeader(sock.sent[0]!).flags).toBe(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
  });
  test("kernel errors become NetlinkError with errno and extended-ack message", () => {
    const conn = new NetlinkConn(new FakeSocket([replay("err_exists"), replay("err_extack_kind")]));
    const body = encodeLink({ name: "x", info: { kind: "dummy" } });
    let err: unknown;
    try {
      conn.request(RTM_NEWLINK, body, { flags: NLM_F_CREATE | NLM_F_EXCL });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetlinkError);
    expect((err as NetlinkError).errno).toBe(17);
    expect(() => conn.request(RTM_NEWLINK, body)).toThrow("RTM_NEWLINK: Operation not supported (EOPNOTSUPP): Unknown device type");
  });
  test("replies to an earlier sequence number are skipped", () => {
    const sock = new FakeSocket([(seq) => [...replay("err_nodev")(seq - 1), ...replay("ack_ok")(seq)]]);
    expect(new NetlinkConn(sock).request(RTM_NEWLINK, encodeLink({ index: 1 }))).toEqual([]);
  });
  test("an interrupted dump is retried", () => {
    const sock = new FakeSocket([replay("addr_dump", NLM_F_DUMP_INTR), replay("addr_dump")]);
    const msgs = new NetlinkConn(sock).dump(22, new Uint8Array(8));
    expect(msgs.length).toBeGreaterThan(0);
    expect(sock.sent.length).toBe(2);
    expect(decodeHeader(sock.sent[0]!).seq).not.toBe(decodeHeader(sock.sent[1]!).seq);
  });
  test("a dump that keeps being interrupted fails with EINTR", () => {
    const sock = new FakeSocket(Array.from({ length: 5 }, () => replay("addr_dump", NLM_F_DUMP_INTR)));
    expect(() => new NetlinkConn(sock).dump(22, new Uint8Array(8))).toThrow(NetlinkError);
  });
  test("an error in NLMSG_DONE fails the dump", () => {
    const done = (seq: number) => {
      const body = new Uint8Array(4);
      viewOf(body).setInt32(0, -95, HOST_LE);
      return [encodeMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq }, body)];
    };
    expect(() => new NetlinkConn(new FakeSocket([done])).dump(RTM_GETLINK, encodeLink({}))).toThrow("EOPNOTSUPP");
  });
  test("sequence numbers increase and close closes the socket", () => {
    const sock = new FakeSocket([replay("ack_ok"), replay("ack_ok")]);
    const conn = new NetlinkConn(sock);
    conn.request(RTM_NEWLINK, encodeLink({}));
    conn.request(RTM_NEWLINK, encodeLink({}));
    const [a, b] = sock.sent.map((d) => parseMessages(d)[0]!.seq);
    expect(b).toBe(a! + 1);
    conn.close();
    expect(sock.closed).toBe(true);
  });
});
