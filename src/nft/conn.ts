/**
 * `NftConn`: nftables over a NETLINK_NETFILTER socket. Applies transactions as one batch and
 * matches each message's acknowledgement by sequence number; answers table look-ups and set
 * element dumps.
 */

import { Errno } from "../sys/errno.ts";
import type { NetnsHandle } from "../sys/netns.ts";
import { type NetlinkSocket, NetlinkProtocol, openNetlinkSocket, openNetlinkSocketIn } from "../sys/socket.ts";
import { type Ack, isNotFound, NetlinkError, parseAck, parseDone } from "../netlink/error.ts";
import {
  encodeMessage,
  type NetlinkMessage,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_OVERRUN,
  parseMessages,
} from "../netlink/message.ts";
import { encodeBatch } from "./batch.ts";
import type { NftClient } from "./client.ts";
import {
  type ChainInfo,
  decodeChain,
  decodeElements,
  decodeRule,
  decodeTable,
  type ElementInfo,
  getChainBody,
  getElementsBody,
  getRulesBody,
  getTableBody,
  type RuleInfo,
  type TableInfo,
} from "./list.ts";
import type { Family } from "./objects.ts";
import type { Transaction } from "./transaction.ts";
import { nftMsgName, nftMsgType, NftMsg } from "./uapi.ts";

/** Options for `NftConn.open`. */
export interface NftConnOptions {
  /** Open the socket inside this network namespace. */
  netns?: string | NetnsHandle;
  /** Receive timeout in milliseconds (default 30000). */
  recvTimeoutMs?: number;
}

/** A connection to the kernel's nftables. */
export class NftConn implements NftClient {
  private readonly sock: NetlinkSocket;
  private seq: number;

  /** Wrap an open NETLINK_NETFILTER socket (a scripted one in unit tests). */
  constructor(sock: NetlinkSocket) {
    this.sock = sock;
    this.seq = Math.floor(Date.now() / 1000) & 0x7fffffff;
  }

  /** Open a netfilter netlink socket (in `opts.netns` when given). */
  static open(opts: NftConnOptions = {}): NftConn {
    const sopts = opts.recvTimeoutMs === undefined ? {} : { recvTimeoutMs: opts.recvTimeoutMs };
    const p = NetlinkProtocol.NETFILTER;
    return new NftConn(opts.netns !== undefined ? openNetlinkSocketIn(opts.netns, p, sopts) : openNetlinkSocket(p, sopts));
  }

  /**
   * Send `tx` as one batch and wait for every message's answer. The kernel commits all of it or
   * nothing; the first failing operation (in transaction order) is thrown as a `NetlinkError`
   * whose `op` names the message and the object.
   */
  apply(tx: Transaction): void {
    if (tx.size === 0) return;
    const batch = encodeBatch(tx, this.seq + 1);
    this.seq = (batch.beginSeq + tx.size + 1) >>> 0;
    const pending = new Map(batch.requests.map((r) => [r.seq, r.req]));
    const errors = new Map<number, Ack>();
    this.sock.send(batch.data);
    while (pending.size > 0) {
      for (const m of parseMessages(this.sock.recv())) {
        if (m.type === NLMSG_OVERRUN) throw new NetlinkError("nftables batch", { errno: Errno.ENOBUFS, message: "overrun" });
        if (m.type !== NLMSG_ERROR) continue;
        const ack = parseAck(m.body, m.flags);
        if (m.seq === batch.beginSeq && ack.errno !== 0) throw new NetlinkError("NFNL_MSG_BATCH_BEGIN", ack);
        if (!pending.delete(m.seq)) continue;
        if (ack.errno !== 0) errors.set(m.seq, ack);
      }
    }
    for (const { seq, req } of batch.requests) {
      const ack = errors.get(seq);
      if (ack) throw new NetlinkError(`${nftMsgName(nftMsgType(req.msg))} (${req.what})`, ack);
    }
  }

  /** The table, or undefined when it does not exist. */
  getTable(family: Family, name: string): TableInfo | undefined {
    try {
      const [m] = this.request(NftMsg.GETTABLE, getTableBody(family, name));
      return m ? decodeTable(m.body) : undefined;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** The chain, or undefined when it (or its table) does not exist. */
  getChain(family: Family, table: string, name: string): ChainInfo | undefined {
    try {
      const [m] = this.request(NftMsg.GETCHAIN, getChainBody(family, table, name));
      return m ? decodeChain(m.body) : undefined;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** The rules of a chain in order (a GETRULE dump); empty when the chain does not exist. */
  listRules(family: Family, table: string, chain: string): RuleInfo[] {
    try {
      return this.dump(NftMsg.GETRULE, getRulesBody(family, table, chain))
        .filter((m) => m.type === nftMsgType(NftMsg.NEWRULE))
        .map((m) => decodeRule(m.body));
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
  }

  /** Every element of a set or map (a GETSETELEM dump). */
  listElements(family: Family, table: string, set: string): ElementInfo[] {
    return this.dump(NftMsg.GETSETELEM, getElementsBody(family, table, set))
      .filter((m) => m.type === nftMsgType(NftMsg.NEWSETELEM))
      .flatMap((m) => decodeElements(m.body));
  }

  /** Close the socket. */
  close(): void {
    this.sock.close();
  }

  private request(msg: number, body: Uint8Array): NetlinkMessage[] {
    const seq = (this.seq = (this.seq + 1) >>> 0);
    this.sock.send(encodeMessage({ type: nftMsgType(msg), flags: NLM_F_REQUEST | NLM_F_ACK, seq }, body));
    return this.collect(msg, seq).messages;
  }

  private dump(msg: number, body: Uint8Array): NetlinkMessage[] {
    for (let attempt = 1; ; attempt++) {
      const seq = (this.seq = (this.seq + 1) >>> 0);
      this.sock.send(encodeMessage({ type: nftMsgType(msg), flags: NLM_F_REQUEST | NLM_F_DUMP, seq }, body));
      const r = this.collect(msg, seq);
      if (!r.interrupted) return r.messages;
      if (attempt >= 5) {
        throw new NetlinkError(nftMsgName(nftMsgType(msg)), { errno: Errno.EINTR, message: "dump interrupted 5 times" });
      }
    }
  }

  private collect(msg: number, seq: number): { messages: NetlinkMessage[]; interrupted: boolean } {
    const op = nftMsgName(nftMsgType(msg));
    const messages: NetlinkMessage[] = [];
    let interrupted = false;
    for (;;) {
      for (const m of parseMessages(this.sock.recv())) {
        if (m.seq !== seq) continue;
        if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
        if (m.type === NLMSG_ERROR) {
          const ack = parseAck(m.body, m.flags);
          if (ack.errno !== 0) throw new NetlinkError(op, ack);
          return { messages, interrupted };
        }
        if (m.type === NLMSG_DONE) {
          const done = parseDone(m.body, m.flags);
          if (done.errno !== 0) throw new NetlinkError(op, done);
          return { messages, interrupted };
        }
        if (m.type === NLMSG_OVERRUN) throw new NetlinkError(op, { errno: Errno.ENOBUFS, message: "overrun" });
        messages.push(m);
      }
    }
  }
}

/** Apply `tx` through `client` (the kernel or a fake): all of it, or nothing and the first error. */
export function applyTransaction(client: NftClient, tx: Transaction): void {
  client.apply(tx);
}
