/** Load the kernel captures in ./fixtures (written by fixtures/capture.ts). */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fromHex } from "../../../src/netlink/bytes.ts";
import { type NetlinkMessage, NLMSG_DONE, NLMSG_ERROR, parseMessages } from "../../../src/netlink/message.ts";

/** One capture: the request sent, every datagram received, and iproute2's view. */
export interface Fixture {
  name: string;
  note: string;
  kernel: string;
  request: string;
  replies: string[];
  ip?: any;
}

/** Read fixture `name`. */
export function loadFixture(name: string): Fixture {
  return JSON.parse(readFileSync(join(import.meta.dir, "fixtures", `${name}.json`), "utf8")) as Fixture;
}

/** The received datagrams of fixture `name`, as bytes. */
export function datagrams(name: string): Uint8Array[] {
  return loadFixture(name).replies.map(fromHex);
}

/** The data messages of fixture `name` (NLMSG_DONE and NLMSG_ERROR left out). */
export function dataMessages(name: string): NetlinkMessage[] {
  return datagrams(name)
    .flatMap((d) => parseMessages(d))
    .filter((m) => m.type !== NLMSG_DONE && m.type !== NLMSG_ERROR);
}

/** Format bytes as a MAC address. */
export function mac(b: Uint8Array | undefined): string | undefined {
  return b && Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":");
}
