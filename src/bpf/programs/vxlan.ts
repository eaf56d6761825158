/**
 * The program on the collect-metadata vxlan device (tc ingress: decapsulated frames from other
 * nodes). A frame for a local pod (endpoint map) gets the pod's and its host veth's Ethernet
 * addresses and goes straight into the pod with `bpf_redirect_peer`; anything else goes on to the
 * host's stack (TC_ACT_OK).
 */

import { Asm, R0 } from "../asm.ts";
import { deliver, finish, lookup, parseIPv4, TC_ACT } from "./common.ts";
import { MapName, Stat } from "./layout.ts";

/** The vxlan program (kernel name `cnikit_vxlan`), to be linked with the datapath's maps. */
export function vxlanProgram(): Asm {
  const a = new Asm();
  parseIPv4(a, "host");
  lookup(a, MapName.endpoints, -4);
  a.jmp("eq", R0, 0, "host");
  deliver(a, Stat.tunnelToLocal);
  a.label("host");
  finish(a, Stat.tunnelToHost, TC_ACT.OK);
  return a;
}
