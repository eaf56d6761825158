/** Netlink sockets over libc: open (in this or another network namespace), send, receive, close. */

import { Errno } from "./errno.ts";
import { SysError } from "./error.ts";
import { check, errno, libc } from "./libc.ts";
import { withNetns, type NetnsHandle } from "./netns.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const MSG_PEEK = 2;
const MSG_TRUNC = 0x20;
const SOCKADDR_NL_LEN = 12;

/** Netlink protocol numbers for `openNetlinkSocket`. */
export const NetlinkProtocol = {
  /** rtnetlink: links, addresses, routes, neighbours, qdiscs. */
  ROUTE: 0,
  /** nfnetlink: nftables and conntrack. */
  NETFILTER: 12,
  /** generic netlink. */
  GENERIC: 16,
} as const;

/** A netlink socket bound to the kernel: what the netlink transport needs from the system. */
export interface NetlinkSocket {
  /** The socket's port id (`nl_pid`), as assigned by the kernel at bind time. */
  readonly portId: number;
  /** Send one datagram (one or more netlink messages) to the kernel. */
  send(data: Uint8Array): void;
  /** Receive one datagram, whatever its size. */
  recv(): Uint8Array;
  /** Close the socket (safe to call twice). */
  close(): void;
}

/** Options for `openNetlinkSocket`. */
export interface NetlinkSocketOptions {
  /** Give up on a receive after this many milliseconds (0: wait forever). Default 30000. */
  recvTimeoutMs?: number;
  /** Ask the kernel not to echo the request in error replies (default true). */
  capAck?: boolean;
}

function sockaddrNl(): Uint8Array {
  const sa = new Uint8Array(SOCKADDR_NL_LEN);
  new DataView(sa.buffer).setUint16(0, AF_NETLINK, true);
  return sa;
}

function setIntOpt(fd: number, level: number, name: number, value: number): boolean {
  const v = new Int32Array([value]);
  if (libc().setsockopt(fd, level, name, v, 4) === 0) return true;
  const e = errno();
  if (e === Errno.ENOPROTOOPT) return false; // an older kernel: the option is a nicety
  throw new SysError(e, "setsockopt");
}

/**
 * Open a netlink socket of `protocol` (see `NetlinkProtocol`) in the calling thread's network
 * namespace, bound to the kernel, with extended acks on and (unless `capAck: false`) error replies capped to the request header.
 */
export function openNetlinkSocket(protocol: number, opts: NetlinkSocketOptions = {}): NetlinkSocket {
  const c = libc();
  const fd = check("socket", () => c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
  let portId = 0;
  try {
    setIntOpt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
    if (opts.capAck ?? true) setIntOpt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
    const timeout = opts.recvTimeoutMs ?? 30000;
    if (timeout > 0) {
      const tv = new BigInt64Array([BigInt(Math.floor(timeout / 1000)), BigInt((timeout % 1000) * 1000)]);
      check("setsockopt", () => c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16));
    }
    const sa = sockaddrNl();
    check("bind", () => c.bind(fd, sa, SOCKADDR_NL_LEN));
    const len = new Uint32Array([SOCKADDR_NL_LEN]);
    check("getsockname", () => c.getsockname(fd, sa, len));
    portId = new DataView(sa.buffer).getUint32(4, true);
  } catch (err) {
    c.close(fd);
    throw err;
  }

  const kernel = sockaddrNl();
  let buf = new Uint8Array(32768);
  let closed = false;
  const live = () => {
    if (closed) throw new SysError(Errno.EBADF, "netlink", "socket is closed");
  };
  return {
    portId,
    send(data) {
      live();
      const n = check("sendto", () => c.sendto(fd, data, data.length, 0, kernel, SOCKADDR_NL_LEN));
      if (n !== data.length) throw new SysError(Errno.EMSGSIZE, "sendto", `sent ${n} of ${data.length} bytes`);
    },
    recv() {
      live();
      // Peek at the datagram's real size first so that no message is ever cut short.
      // (A zero-length peek copies nothing; MSG_TRUNC makes it return the datagram's full size.)
      const size = check("recvfrom", () => c.recvfrom(fd, buf, 0, MSG_PEEK | MSG_TRUNC, null, null));
      if (size > buf.length) buf = new Uint8Array(size);
      const n = check("recvfrom", () => c.recvfrom(fd, buf, buf.length, 0, null, null));
      return buf.slice(0, n);
    },
    close() {
      if (closed) return;
      closed = true;
      c.close(fd);
    },
  };
}

/**
 * Open a netlink socket inside the network namespace at `ns` and step back out: the socket stays
 * bound to that namespace for its whole life.
 */
export function openNetlinkSocketIn(
  ns: string | NetnsHandle,
  protocol: number,
  opts: NetlinkSocketOptions = {},
): NetlinkSocket {
  return withNetns(ns, () => openNetlinkSocket(protocol, opts));
}
