/**
 * The agent's masquerading (FLANNEL_IPMASQ): traffic from the cluster network to anywhere outside
 * it (multicast excluded) leaves from the node's address. One table `inet cnikit_agent`, written
 * whole in one transaction (replaced when the network changes).
 */

import { isNotFound } from "../netlink/error.ts";
import { withNft } from "../nft/handle.ts";
import { addrInNet, ipFamily, nfprotoIs } from "../nft/match.ts";
import { Transaction } from "../nft/transaction.ts";
import { verdict } from "../nft/verdict.ts";
import type { IPNet } from "../spec/ip.ts";

/** The agent's table. */
export const AGENT_TABLE = "cnikit_agent";

/** Masquerade traffic leaving `networks` (IPv4 and/or IPv6 cluster networks). */
export function installMasquerade(networks: readonly IPNet[]): void {
  withNft((nft) => {
    const tx = new Transaction({ family: "inet", table: AGENT_TABLE });
    if (nft.getTable("inet", AGENT_TABLE)) tx.delete({ kind: "table" });
    tx.add({ kind: "table" });
    tx.add({ kind: "chain", name: "postrouting", type: "nat", hook: "postrouting", priority: 100 });
    for (const net of networks) {
      const f = ipFamily(net.ip);
      tx.add({ kind: "rule", chain: "postrouting", exprs: [...nfprotoIs(f), ...addrInNet(f.multicast, "daddr"), { kind: "immediate", verdict: verdict.return }] });
      tx.add({ kind: "rule", chain: "postrouting", exprs: [...nfprotoIs(f), ...addrInNet(net, "saddr"), ...addrInNet(net, "daddr", "neq"), { kind: "masq" }] });
    }
    nft.apply(tx);
  });
}

/** Remove the agent's masquerading (missing table is fine). */
export function removeMasquerade(): void {
  withNft((nft) => {
    try {
      nft.apply(new Transaction({ family: "inet", table: AGENT_TABLE }).delete({ kind: "table" }));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  });
}
