/**
 * `NetlinkConn`: requests and dumps over one netlink socket. It numbers requests, waits for the
 * kernel's acknowledgement, gathers every part of a dump, and turns kernel errors into
 * `NetlinkError`s.
 */

import { Errno } from "../sys/errno.ts";
import { type NetnsHandle } from "../sys/netns.ts";
import {
  type NetlinkSocket,
  NetlinkProtocol,
  openNetlinkSocket,
  openNetlinkSocketIn,
} from "../sys/socket.ts";
import { NetlinkError, parseAck, parseDone } from "./error.ts";
import {
  encodeMessage,
  type NetlinkMessage,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  parseMessages,
} from "./message.ts";
import { rtmName } from "./rtnl.ts";

/** Options for `NetlinkConn.open`. */
export interface NetlinkConnOptions {
  /** Netlink protocol (default rtnetlink). */
  protocol?: number;
  /** Open the socket inside this network namespace (a path or an open handle). */
  netns?: string | NetnsHandle;
  /** Receive timeout in milliseconds (default 30000, 0: none). */
  recvTimeoutMs?: number;
  /** Names message types in errors (default: rtnetlink names for rtnetlink). */
  typeName?: (type: number) => string;
}

/** Options for one request. */
export interface RequestOptions {
  /** NLM_F_* flags beyond REQUEST and ACK (such as CREATE | EXCL). */
  flags?: number;
}

const MAX_DUMP_TRIES = 5;

/** A request/ack connection to the kernel over one netlink socket. */
export class NetlinkConn {
  private seq: number;
  private readonly sock: NetlinkSocket;
  private readonly typeName: (type: number) => string;
  /**
   * The namespace the socket was opened in (`open`'s `netns`; undefined: the opener's). Calls that
   * act on a namespace's devices by ifindex outside netlink (tcx's `bpf()`) run there.
   */
  readonly netns: string | NetnsHandle | undefined;

  /** Wrap an open socket (a fake one in unit tests). */
  constructor(sock: NetlinkSocket, opts: Pick<NetlinkConnOptions, "typeName" | "netns"> = {}) {
    this.sock = sock;
    this.netns = opts.netns;
    this.typeName = opts.typeName ?? rtmName;
    // Start from a time-derived number, as iproute2 does, so replies to an earlier socket's
    // requests are never taken for ours.
    this.seq = Math.floor(Date.now() / 1000) & 0x7fffffff;
  }

  /** Open a socket (in `opts.netns` when given) and wrap it. */
  static open(opts: NetlinkConnOptions = {}): NetlinkConn {
    const protocol = opts.protocol ?? NetlinkProtocol.ROUTE;
    const sopts = opts.recvTimeoutMs === undefined ? {} : { recvTimeoutMs: opts.recvTimeoutMs };
    const sock = opts.netns !== undefined
      ? openNetlinkSocketIn(opts.netns, protocol, sopts)
      : openNetlinkSocket(protocol, sopts);
    const typeName = opts.typeName ?? (protocol === NetlinkProtocol.ROUTE ? rtmName : (t: number) => `message type ${t}`);
    return new NetlinkConn(sock, { typeName, ...(opts.netns === undefined ? {} : { netns: opts.netns }) });
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    return this.seq;
  }

  /**
   * Send one request and wait for its acknowledgement; returns the replies the kernel sent before
   * the ack (for a GET, the object). Throws `NetlinkError` when the kernel refuses.
   */
  request(type: number, body: Uint8Array, opts: RequestOptions = {}): NetlinkMessage[] {
    const seq = this.nextSeq();
    const flags = NLM_F_REQUEST | NLM_F_ACK | (opts.flags ?? 0);
    this.sock.send(encodeMessage({ type, flags, seq }, body));
    return this.collect(type, seq).messages;
  }

  /** Dump a table: every message of every part, up to NLMSG_DONE. Retries interrupted dumps. */
  dump(type: number, body: Uint8Array): NetlinkMessage[] {
    for (let attempt = 1; ; attempt++) {
      const seq = this.nextSeq();
      this.sock.send(encodeMessage({ type, flags: NLM_F_REQUEST | NLM_F_DUMP, seq }, body));
      const { messages, interrupted } = this.collect(type, seq);
      if (!interrupted) return messages;
      if (attempt >= MAX_DUMP_TRIES) {
        throw new NetlinkError(this.typeName(type), {
          errno: Errno.EINTR,
          message: `dump interrupted by concurrent changes ${attempt} times`,
        });
      }
    }
  }

  private collect(type: number, seq: number): { messages: NetlinkMessage[]; interrupted: boolean } {
    const messages: NetlinkMessage[] = [];
    let interrupted = false;
    for (;;) {
      for (const m of parseMessages(this.sock.recv())) {
        if (m.seq !== seq) continue; // a late reply to an earlier request
        if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
        switch (m.type) {
          case NLMSG_NOOP:
            continue;
          case NLMSG_ERROR: {
            const ack = parseAck(m.body, m.flags);
            if (ack.errno !== 0) throw new NetlinkError(this.typeName(type), ack);
            return { messages, interrupted };
          }
          case NLMSG_DONE: {
            const done = parseDone(m.body, m.flags);
            if (done.errno !== 0) throw new NetlinkError(this.typeName(type), done);
            return { messages, interrupted };
          }
          case NLMSG_OVERRUN:
            throw new NetlinkError(this.typeName(type), { errno: Errno.ENOBUFS, message: "overrun" });
          default:
            messages.push(m);
        }
      }
    }
  }

  /** Close the socket. */
  close(): void {
    this.sock.close();
  }
}
