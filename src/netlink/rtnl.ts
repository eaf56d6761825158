/** rtnetlink message types and the address families its messages carry. */

/** Create or change a link (struct ifinfomsg). */
export const RTM_NEWLINK = 16;
/** Delete a link. */
export const RTM_DELLINK = 17;
/** Get one link, or dump all. */
export const RTM_GETLINK = 18;
/** Change a link's flags. */
export const RTM_SETLINK = 19;
/** Add an address (struct ifaddrmsg). */
export const RTM_NEWADDR = 20;
/** Delete an address. */
export const RTM_DELADDR = 21;
/** Dump addresses. */
export const RTM_GETADDR = 22;
/** Add a route (struct rtmsg). */
export const RTM_NEWROUTE = 24;
/** Delete a route. */
export const RTM_DELROUTE = 25;
/** Look a route up, or dump routes. */
export const RTM_GETROUTE = 26;
/** Add a neighbour or FDB entry (struct ndmsg). */
export const RTM_NEWNEIGH = 28;
/** Delete a neighbour or FDB entry. */
export const RTM_DELNEIGH = 29;
/** Dump neighbours or FDB entries. */
export const RTM_GETNEIGH = 30;
/** Add a policy routing rule. */
export const RTM_NEWRULE = 32;
/** Delete a policy routing rule. */
export const RTM_DELRULE = 33;
/** Dump policy routing rules. */
export const RTM_GETRULE = 34;
/** Add a qdisc. */
export const RTM_NEWQDISC = 36;
/** Delete a qdisc. */
export const RTM_DELQDISC = 37;
/** Dump qdiscs. */
export const RTM_GETQDISC = 38;

/** Unspecified address family (all families, or a family-less message). */
export const AF_UNSPEC = 0;
/** IPv4. */
export const AF_INET = 2;
/** Bridge (FDB entries, bridge port attributes). */
export const AF_BRIDGE = 7;
/** IPv6. */
export const AF_INET6 = 10;

const NAMES: Record<number, string> = {
  16: "RTM_NEWLINK",
  17: "RTM_DELLINK",
  18: "RTM_GETLINK",
  19: "RTM_SETLINK",
  20: "RTM_NEWADDR",
  21: "RTM_DELADDR",
  22: "RTM_GETADDR",
  24: "RTM_NEWROUTE",
  25: "RTM_DELROUTE",
  26: "RTM_GETROUTE",
  28: "RTM_NEWNEIGH",
  29: "RTM_DELNEIGH",
  30: "RTM_GETNEIGH",
  32: "RTM_NEWRULE",
  33: "RTM_DELRULE",
  34: "RTM_GETRULE",
  36: "RTM_NEWQDISC",
  37: "RTM_DELQDISC",
  38: "RTM_GETQDISC",
};

/** The name of an rtnetlink message type ("RTM_NEWLINK"), or "message type N". */
export function rtmName(type: number): string {
  return NAMES[type] ?? `message type ${type}`;
}

/** The address family of an IP address given as bytes (4 bytes: IPv4, 16: IPv6). */
export function familyOf(ip: Uint8Array): number {
  if (ip.length === 4) return AF_INET;
  if (ip.length === 16) return AF_INET6;
  throw new RangeError(`not an IP address: ${ip.length} bytes`);
}
