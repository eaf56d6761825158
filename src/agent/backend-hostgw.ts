/**
 * host-gw: every other node's subnet is routed through that node's underlay address, which must be
 * on the same L2 segment (flannel's host-gw). Nothing to set up but the routes.
 */

import { getLink } from "../net/link.ts";
import type { Backend, BackendOptions, BackendSetup, Peer } from "./backend-types.ts";
import { agentRoutes, deleteAgentRoute, setAgentRoute } from "./peer-routes.ts";

export class HostGwBackend implements Backend {
  readonly type = "host-gw" as const;
  private readonly programmed = new Map<string, string>();
  private underlayIndex = 0;

  constructor(private readonly o: BackendOptions) {}

  setup(): BackendSetup {
    const link = getLink(this.o.conn, this.o.underlay);
    this.underlayIndex = link.index;
    // routes an earlier run left: known, so a resync removes those whose lease is gone
    for (const [dst, r] of agentRoutes(this.o.conn, this.o.family ?? 4)) if (r.gateway && r.oif === link.index) this.programmed.set(dst, r.gateway);
    return { backendData: {}, mtu: link.mtu };
  }

  addPeer(p: Peer): void {
    setAgentRoute(this.o.conn, { dst: p.subnet, gateway: p.publicIP, link: this.underlayIndex });
    this.programmed.set(p.subnet, p.publicIP);
  }

  removePeer(p: Pick<Peer, "subnet">): void {
    deleteAgentRoute(this.o.conn, p.subnet);
    this.programmed.delete(p.subnet);
  }

  programmedSubnets(): string[] {
    return [...this.programmed.keys()];
  }
}
