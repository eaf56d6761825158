/**
 * The program on the host side of a pod's veth (tc ingress: what the pod sends). For an IPv4
 * destination that is
 * - a local pod (endpoint map): rewrite the Ethernet addresses and `bpf_redirect_peer` straight
 *   into that pod's interface, with no bridge and no pass through the host's stack;
 * - in another node's pod subnet (remotes LPM map): set the tunnel key (VNI, remote node IPv4,
 *   TTL 64, zero UDP checksum) and `bpf_redirect` to the collect-metadata vxlan device named in
 *   the config map; or, for a subnet routed directly (`REMOTE_DIRECT`), `bpf_redirect_neigh` out
 *   of the underlay device named in the config map with the node's address as the next hop (the
 *   kernel fills in the Ethernet header from its neighbour table; no tunnel, no pass through the
 *   host's forwarding);
 * - anything else (the node, the outside world, ARP, IPv6): TC_ACT_OK, to the host's stack as
 *   without the program (routing, masquerading by the existing nftables rules).
 *
 * What it expects from the pod's set-up: the pod sends everything to one gateway whose MAC is the
 * host veth's (a permanent neighbour entry in the pod, as Calico and Cilium do), so no ARP for
 * the gateway needs answering; the host routes each local pod's /32 to its host veth, for traffic
 * from the node.
 */

import { Asm, R0, R1, R10, R2, R3, R4, R6, R9 } from "../asm.ts";
import { count, deliverLocal, finish, lookup, TC_ACT } from "./common.ts";
import { Config, MapName, REMOTE, REMOTE_DIRECT, Stat } from "./layout.ts";

/** bpf_skb_set_tunnel_key flag: send the outer UDP datagram with a zero checksum. */
const BPF_F_ZERO_CSUM_TX = 1 << 1;
/** sizeof(struct bpf_tunnel_key). */
const TUNNEL_KEY_LEN = 44;
/** The tunnel key's place on the stack (and that of struct bpf_redir_neigh for direct routes). */
const KEY = -56;
/** sizeof(struct bpf_redir_neigh): u32 nh_family, then the next hop (IPv4 in the first 4 of 16 bytes). */
const REDIR_NEIGH_LEN = 20;
const AF_INET = 2;

/** r9 = the ifindex at `index` of the config map; to "host" when there is none (0). */
function configIfindex(a: Asm, index: number): void {
  a.st("w", R10, -4, index);
  lookup(a, MapName.config, -4);
  a.jmp("eq", R0, 0, "host");
  a.ldx("w", R9, R0, 0);
  a.jmp("eq", R9, 0, "host");
}

/** The pod program (kernel name `cnikit_pod`), to be linked with the datapath's maps. */
export function podProgram(): Asm {
  const a = new Asm();
  deliverLocal(a, Stat.podToLocal, "remote");

  a.label("remote");
  // LPM key { u32 prefixlen = 32, u32 address } at fp-8 (the address is already at fp-4)
  a.st("w", R10, -8, 32);
  lookup(a, MapName.remotes, -8);
  a.jmp("eq", R0, 0, "host");
  a.mov64(R9, R0);
  a.ldx("w", R1, R9, REMOTE.vni);
  a.jmp32("set", R1, REMOTE_DIRECT, "direct");
  // struct bpf_tunnel_key at fp-56, zeroed: tunnel_id @0, remote_ipv4 @4, tos @20, ttl @21
  for (let off = KEY; off < KEY + 48; off += 8) a.st("dw", R10, off, 0);
  a.ldx("w", R1, R9, REMOTE.vni).stx("w", R10, KEY, R1); // no flag: the word is the VNI
  a.ldx("w", R1, R9, REMOTE.ip).stx("w", R10, KEY + 4, R1);
  a.st("b", R10, KEY + 21, 64);
  a.mov64(R1, R6);
  a.mov64(R2, R10).add64(R2, KEY).mov64(R3, TUNNEL_KEY_LEN).mov64(R4, BPF_F_ZERO_CSUM_TX);
  a.call("skb_set_tunnel_key");
  a.jmp("ne", R0, 0, "error");
  configIfindex(a, Config.vxlanIfindex);
  count(a, Stat.podToRemote);
  a.mov64(R1, R9).mov64(R2, 0).call("redirect").exit();

  a.label("direct");
  // struct bpf_redir_neigh at fp-56: { AF_INET, the node's IPv4 in network order }
  for (let off = KEY; off < KEY + 24; off += 8) a.st("dw", R10, off, 0);
  a.st("w", R10, KEY, AF_INET);
  a.ldx("w", R1, R9, REMOTE.ip).be(R1, 32).stx("w", R10, KEY + 4, R1);
  configIfindex(a, Config.underlayIfindex);
  count(a, Stat.podToRemoteDirect);
  a.mov64(R1, R9).mov64(R2, R10).add64(R2, KEY).mov64(R3, REDIR_NEIGH_LEN).mov64(R4, 0);
  a.call("redirect_neigh").exit();

  a.label("error");
  finish(a, Stat.errors, TC_ACT.SHOT);
  a.label("host");
  finish(a, Stat.podToHost, TC_ACT.OK);
  return a;
}
