/**
 * The program on the collect-metadata vxlan device (tc ingress: decapsulated frames from other
 * nodes). A frame for a local pod (endpoint map) gets the pod's and its host veth's Ethernet
 * addresses and goes straight into the pod with `bpf_redirect_peer`; anything else goes on to the
 * host's stack (TC_ACT_OK).
 */

import { Asm } from "../asm.ts";
import { deliverLocal, finish, TC_ACT } from "./common.ts";
import { Stat } from "./layout.ts";

/** The vxlan program (kernel name `cnikit_vxlan`), to be linked with the datapath's maps. */
export function vxlanProgram(): Asm {
  const a = new Asm();
  deliverLocal(a, Stat.tunnelToLocal, "host");
  a.label("host");
  finish(a, Stat.tunnelToHost, TC_ACT.OK);
  return a;
}
