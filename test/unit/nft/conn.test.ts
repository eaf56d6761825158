import { describe, expect, test } from "bun:test";
import { HOST_LE, viewOf } from "../../../src/netlink/bytes.ts";
import { isExists, isNotFound, NetlinkError } from "../../../src/netlink/error.ts";
import { encodeMessage, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, parseMessages } from "../../../src/netlink/message.ts";
import { encodeNftAttrs, nest, nfgenmsg } from "../../../src/nft/wire.ts";
import { nla } from "../../../src/netlink/attr.ts";
import { applyTransaction, NftConn } from "../../../src/nft/conn.ts";
import { Transaction } from "../../../src/nft/transaction.ts";
import { nftMsgType, NftMsg } from "../../../src/nft/uapi.ts";
import { verdict } from "../../../src/nft/verdict.ts";
import type { NetlinkSocket } from "../../../src/sys/socket.ts";

/** An ack (errno 0) or error for a request header, capped as with NETLINK_CAP_ACK. */
function ack(req: Uint8Array, errno: number): Uint8Array {
  const body = new Uint8Array(4 + 16);
  viewOf(body).setInt32(0, -errno, HOST_LE);
  body.set(req.subarray(0, 16), 4);
  const seq = viewOf(req).getUint32(8, HOST_LE);
  return encodeMessage({ type: NLMSG_ERROR, flags: 0x100, seq }, body);
}

/** A socket that answers each sent datagram with `answer(messages)`. */
class ScriptSocket implements NetlinkSocket {
  readonly portId = 1;
  sent: Uint8Array[] = [];
  private queue: Uint8Array[] = [];
  constructor(private readonly answer: (msgs: Uint8Array[]) => Uint8Array[]) {}
  send(data: Uint8Array): void {
    this.sent.push(data);
    const msgs = parseMessages(data).map((m) => encodeMessage(m, m.body));
    this.queue.push(...this.answer(msgs));
  }
  recv(): Uint8Array {
    const d = this.queue.shift();
    if (!d) throw new Error("nothing to receive");
    return d;
  }
  close(): void {}
}

const T = { family: "inet", table: "t" } as const;
const tx3 = () =>
  new Transaction(T).add({ kind: "table" }).add({ kind: "chain", name: "c" }).add({ kind: "set", name: "s", key: "ipv4_addr" });

describe("NftConn.apply", () => {
  test("waits for an ack per operation (acks may come in one datagram or several)", () => {
    const sock = new ScriptSocket((m) => [ack(m[1]!, 0), concatBytes(ack(m[2]!, 0), ack(m[3]!, 0))]);
    applyTransaction(new NftConn(sock), tx3());
    expect(sock.sent.length).toBe(1);
    expect(parseMessages(sock.sent[0]!).map((m) => m.type)).toEqual([0x10, 0xa00, 0xa03, 0xa09, 0x11]);
  });

  test("reports the first failing operation in transaction order, after all answers", () => {
    const sock = new ScriptSocket((m) => [concatBytes(ack(m[1]!, 0), ack(m[3]!, 17), ack(m[2]!, 2))]);
    const e = (() => {
      try {
        new NftConn(sock).apply(tx3());
      } catch (e) {
        return e;
      }
    })();
    expect(e).toBeInstanceOf(NetlinkError);
    expect(isNotFound(e)).toBe(true);
    expect((e as NetlinkError).op).toBe("NFT_MSG_NEWCHAIN (add chain inet t c)");
  });

  test("a refused batch (error on the begin message) fails at once", () => {
    const sock = new ScriptSocket((m) => [ack(m[0]!, 1)]);
    const conn = new NftConn(sock);
    expect(() => conn.apply(tx3())).toThrow(/NFNL_MSG_BATCH_BEGIN.*EPERM/);
  });

  test("ignores answers to other sequence numbers", () => {
    const sock = new ScriptSocket((m) => {
      const stale = m[1]!.slice();
      viewOf(stale).setUint32(8, 7, HOST_LE);
      return [ack(stale, 17), ack(m[1]!, 0)];
    });
    new NftConn(sock).apply(new Transaction(T).add({ kind: "table" }));
  });

  test("an empty transaction sends nothing", () => {
    const sock = new ScriptSocket(() => []);
    new NftConn(sock).apply(new Transaction(T));
    expect(sock.sent.length).toBe(0);
  });
});

describe("NftConn listing", () => {
  test("getTable: the table, or undefined on ENOENT; other errors throw", () => {
    const table = (seq: number) =>
      encodeMessage({ type: nftMsgType(NftMsg.NEWTABLE), seq }, concatBytes(nfgenmsg(1), encodeNftAttrs([nla.str(1, "t")])));
    let errno = 0;
    const sock = new ScriptSocket((m) => {
      const seq = viewOf(m[0]!).getUint32(8, HOST_LE);
      return errno ? [ack(m[0]!, errno)] : [concatBytes(table(seq), ack(m[0]!, 0))];
    });
    const conn = new NftConn(sock);
    expect(conn.getTable("inet", "t")).toEqual({ family: "inet", name: "t", flags: 0, use: 0 });
    errno = 2;
    expect(conn.getTable("inet", "t")).toBeUndefined();
    errno = 17;
    expect(isExists((() => { try { conn.getTable("inet", "t"); } catch (e) { return e; } })())).toBe(true);
  });

  test("listElements decodes values and verdicts across dump parts", () => {
    const part = (seq: number, elems: Parameters<typeof nest>[1]) =>
      encodeMessage(
        { type: nftMsgType(NftMsg.NEWSETELEM), flags: NLM_F_MULTI, seq },
        concatBytes(nfgenmsg(1), encodeNftAttrs([nla.str(1, "t"), nla.str(2, "m"), nest(3, elems)])),
      );
    const value = (b: number[]) => nest(1, [nla.bytes(1, Uint8Array.from(b))]);
    const sock = new ScriptSocket((m) => {
      const seq = viewOf(m[0]!).getUint32(8, HOST_LE);
      expect(viewOf(m[0]!).getUint16(4, HOST_LE)).toBe(0xa0d);
      return [
        part(seq, [nest(1, [value([10, 0, 0, 1]), nest(2, [nla.bytes(1, Uint8Array.of(1, 1, 1, 1))])])]),
        concatBytes(
          part(seq, [nest(1, [value([10, 0, 0, 2]), nest(2, [nest(2, [nla.bytes(1, Uint8Array.of(0xff, 0xff, 0xff, 0xfd)), nla.str(2, "c")])])])]),
          encodeMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq }, new Uint8Array(4)),
        ),
      ];
    });
    expect(new NftConn(sock).listElements("inet", "t", "m")).toEqual([
      { key: Uint8Array.of(10, 0, 0, 1), data: Uint8Array.of(1, 1, 1, 1), flags: 0 },
      { key: Uint8Array.of(10, 0, 0, 2), verdict: verdict.jump("c"), flags: 0 },
    ]);
  });
});

function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
