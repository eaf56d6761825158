/** The agent's routes to other nodes' subnets, told apart from everything else by their protocol. */

import type { NetlinkConn } from "../netlink/conn.ts";
import { addRoute, deleteRoute, listRoutes, type Route, type RouteSpec } from "../net/route.ts";

/** Route protocol of the agent's routes (not used by any routing daemon iproute2 knows). */
export const RTPROT_CNIKIT = 210;

/** The agent's routes of one family in the main table, by destination. */
export function agentRoutes(conn: NetlinkConn, family: 4 | 6 = 4): Map<string, Route> {
  const out = new Map<string, Route>();
  for (const r of listRoutes(conn, { family })) if (r.protocol === RTPROT_CNIKIT) out.set(r.dst, r);
  return out;
}

/** Add or replace a route of the agent's. */
export function setAgentRoute(conn: NetlinkConn, spec: Omit<RouteSpec, "protocol">): void {
  addRoute(conn, { ...spec, protocol: RTPROT_CNIKIT }, { replace: true });
}

/**
 * Remove the agent's route to `dst` (the kernel matches the protocol, so no other route to `dst` is
 * touched and no dump is needed); false when there was none.
 */
export function deleteAgentRoute(conn: NetlinkConn, dst: string): boolean {
  return deleteRoute(conn, { dst, protocol: RTPROT_CNIKIT });
}
