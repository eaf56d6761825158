/**
 * Configure an interface from a CNI result: its addresses (IPv6 without duplicate address
 * detection, so ADD never stalls on tentative addresses), then its routes, a route without a
 * gateway using the gateway of its family's address (as the reference's ConfigureIface).
 */

import { type NetlinkConn } from "../netlink/conn.ts";
import { addAddress } from "./addr.ts";
import { setLink, type LinkRef } from "./link.ts";
import { addRoute, type RouteSpec } from "./route.ts";

/** Addresses and routes to put on one interface. */
export interface IfaceConfig {
  ips: ReadonlyArray<{ address: string; gateway?: string }>;
  routes?: ReadonlyArray<{ dst: string; gw?: string; mtu?: number; advmss?: number; priority?: number; table?: number; scope?: number }>;
}

const isV6 = (s: string) => s.includes(":");

/** Bring the link up, add the addresses, then the routes. */
export function configureIface(conn: NetlinkConn, link: LinkRef, cfg: IfaceConfig, opts: { dad?: boolean } = {}): void {
  setLink(conn, link, { up: true });
  for (const ip of cfg.ips) {
    addAddress(conn, { link, address: ip.address, nodad: isV6(ip.address) && !opts.dad }, { existOk: true });
  }
  const gw4 = cfg.ips.find((i) => !isV6(i.address) && i.gateway)?.gateway;
  const gw6 = cfg.ips.find((i) => isV6(i.address) && i.gateway)?.gateway;
  for (const r of cfg.routes ?? []) {
    const gw = r.gw ?? (isV6(r.dst) ? gw6 : gw4);
    const spec: RouteSpec = { dst: r.dst, link };
    if (gw) spec.gateway = gw;
    for (const k of ["mtu", "advmss", "priority", "table", "scope"] as const) if (r[k] !== undefined) spec[k] = r[k];
    addRoute(conn, spec, { existOk: true });
  }
}
