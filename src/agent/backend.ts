/**
 * How the agent reaches other nodes' subnets. A backend sets up what this node needs once
 * (`setup`), then programs and removes one peer (another node's lease) at a time. Every route a
 * backend adds carries the protocol `RTPROT_CNIKIT` (peer-routes.ts), so after a restart it finds what it
 * programmed before and a resync can remove peers whose lease went away meanwhile.
 */

import { CniError, ErrorCode } from "../spec/error.ts";
import { BgpBackend } from "./backend-bgp.ts";
import { EbpfVxlanBackend } from "./backend-ebpf.ts";
import { HostGwBackend } from "./backend-hostgw.ts";
import type { Backend, BackendOptions } from "./backend-types.ts";
import { VxlanBackend } from "./backend-vxlan.ts";

export type { Backend, BackendOptions, BackendSetup, BgpBackendOptions, Peer } from "./backend-types.ts";

/** Build the backend a network config names. */
export function createBackend(type: string, o: BackendOptions): Backend {
  if (type === "vxlan") return o.datapath === "ebpf" ? new EbpfVxlanBackend(o) : new VxlanBackend(o);
  if (type === "host-gw") return new HostGwBackend(o);
  if (type === "bgp") return new BgpBackend(o);
  throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: backend type ${JSON.stringify(type)} is not supported (vxlan, host-gw, bgp)`);
}
