/**
 * The program on the underlay device (tc ingress) when other nodes' subnets are routed natively
 * (flannel's DirectRouting, Cilium's native routing): a frame another node's pod program sent
 * with `bpf_redirect_neigh` arrives here addressed to this node's MAC, from an address in another
 * node's pod subnet (the remotes map) to a local pod (the endpoint map); it gets the pod's and its
 * host veth's Ethernet addresses and goes straight into the pod with `bpf_redirect_peer`, past the
 * host's forwarding. Everything else goes on to the stack untouched and uncounted, since this
 * device carries all of the node's traffic: the node's own traffic, the vxlan datagrams of
 * tunnelled peers, frames for other hosts seen in promiscuous mode, broadcasts, and what another
 * node itself (not one of its pods) sends to our pods. That last one must pass through our
 * stack: its connection tracking has to see the first packet, or the pod's answer (to an address
 * outside the pod network) would be taken for a new connection and masqueraded.
 */

import { Asm, R0, R1, R10, R2, R7, R9 } from "../asm.ts";
import { deliver, lookup, parseIPv4, SKB, TC_ACT } from "./common.ts";
import { MapName, Stat } from "./layout.ts";

/** skb->pkt_type of a frame addressed to this host. */
const PACKET_HOST = 0;
/** Offset of the IPv4 source address in the frame. */
const IPV4_SADDR = 14 + 12;

/** The underlay program (kernel name `cnikit_underlay`), to be linked with the datapath's maps. */
export function underlayProgram(): Asm {
  const a = new Asm();
  a.ldx("w", R2, R1, SKB.pktType);
  a.jmp("ne", R2, PACKET_HOST, "host");
  parseIPv4(a, "host");
  lookup(a, MapName.endpoints, -4);
  a.jmp("eq", R0, 0, "host");
  a.mov64(R9, R0);
  // from another node's pod subnet? LPM key { u32 prefixlen = 32, u32 source address } at fp-8
  a.ldx("w", R1, R7, IPV4_SADDR).stx("w", R10, -4, R1);
  a.st("w", R10, -8, 32);
  lookup(a, MapName.remotes, -8);
  a.jmp("eq", R0, 0, "host");
  a.mov64(R0, R9);
  deliver(a, Stat.directToLocal);
  a.label("host");
  a.mov64(R0, TC_ACT.OK).exit();
  return a;
}
