/**
 * The program on the collect-metadata vxlan device (tc ingress: decapsulated frames from other
 * nodes). A frame for a local pod (endpoint map) gets the pod's and its host veth's Ethernet
 * addresses and goes straight into the pod with `bpf_redirect_peer`; anything else goes on to the
 * host's stack (TC_ACT_OK). A frame a pod program sent to this node itself (a pod answering the
 * node, say) still carries the sending pod's gateway MAC, which is not this device's: it is made
 * PACKET_HOST (`bpf_skb_change_type`) so that the stack takes it instead of dropping it as
 * another host's.
 */

import { Asm, R1, R2, R6 } from "../asm.ts";
import { deliverLocal, finish, SKB, TC_ACT } from "./common.ts";

/** skb->pkt_type values. */
const PACKET_HOST = 0;
const PACKET_OTHERHOST = 3;
import { Stat } from "./layout.ts";

/** The vxlan program (kernel name `cnikit_vxlan`), to be linked with the datapath's maps. */
export function vxlanProgram(): Asm {
  const a = new Asm();
  deliverLocal(a, Stat.tunnelToLocal, "host");
  a.label("host");
  a.ldx("w", R1, R6, SKB.pktType);
  a.jmp("ne", R1, PACKET_OTHERHOST, "counted");
  a.mov64(R1, R6).mov64(R2, PACKET_HOST).call("skb_change_type");
  a.label("counted");
  finish(a, Stat.tunnelToHost, TC_ACT.OK);
  return a;
}
