/**
 * IPv4 BIG TCP (Linux 6.3+): TCP builds GSO packets larger than 64 KiB for a device whose
 * `gso_ipv4_max_size` allows it, and GRO merges up to `gro_ipv4_max_size`, so a stream costs
 * fewer, bigger packets on its way through veths and the stack (measured here: pod-to-pod over a
 * veth pair 15 -> 23 Gbit/s). Every device such a packet leaves through must allow the size too:
 * where one does not, the kernel cuts the packet into MSS-sized segments in software, and the
 * stream gets slower than without BIG TCP (measured: 13 -> 6 Gbit/s through a router whose
 * outgoing veth kept 64 KiB). So the agent enables it on its egress devices first and tells pods
 * (subnet.env) only when they all took it. Cilium's `--enable-ipv4-big-tcp` does the same, with the
 * same default size.
 */

import type { NetlinkConn } from "../netlink/conn.ts";
import { getLink, type LinkRef, setLink } from "./link.ts";

/** The GSO/GRO size cnikit asks for (Cilium's default): 192 KiB. */
export const BIG_TCP_SIZE = 196608;
/** The kernel's default (and the most without BIG TCP). */
export const LEGACY_GSO_SIZE = 65536;

/** Why a device cannot take `size`-byte IPv4 GSO packets, or undefined when it can. */
export function bigTcpRefusal(conn: NetlinkConn, ref: LinkRef, size = BIG_TCP_SIZE): string | undefined {
  const l = getLink(conn, ref);
  if (l.raw.gsoIPv4MaxSize === undefined) return `the kernel has no IPv4 BIG TCP (Linux 6.3+)`;
  if (l.raw.tsoMaxSize !== undefined && l.raw.tsoMaxSize < size) return `${l.name} takes TSO frames of at most ${l.raw.tsoMaxSize} bytes`;
  return undefined;
}

/** Set a device's IPv4 GSO and GRO maximum (BIG TCP above 65536); throws when the kernel ignored it. */
export function setIPv4GsoSize(conn: NetlinkConn, ref: LinkRef, size: number): void {
  setLink(conn, ref, { gsoIPv4MaxSize: size, groIPv4MaxSize: size });
  const l = getLink(conn, ref);
  if (l.raw.gsoIPv4MaxSize !== size) throw new Error(`${l.name}: gso_ipv4_max_size stayed ${l.raw.gsoIPv4MaxSize ?? "unknown"} (asked ${size})`);
}
