/**
 * The agent's masquerading (FLANNEL_IPMASQ): traffic from the cluster network to anywhere outside
 * it (multicast excluded) leaves from the node's address. One table `inet cnikit_agent`, written
 * whole in one transaction (replaced when the network changes).
 */

import { isNotFound } from "../netlink/error.ts";
import { NftConn } from "../nft/conn.ts";
import type { Expr } from "../nft/expr.ts";
import { Transaction } from "../nft/transaction.ts";
import { verdict } from "../nft/verdict.ts";
import { networkOf, type IPNet } from "../spec/ip.ts";

/** The agent's table. */
export const AGENT_TABLE = "cnikit_agent";

function prefixMask(len: number, prefix: number): Uint8Array {
  const m = new Uint8Array(len);
  for (let bit = 0; bit < prefix; bit++) m[bit >> 3]! |= 0x80 >> (bit & 7);
  return m;
}

/** Load the address at `offset`, mask it with the network's prefix and compare (eq / neq). */
function inNet(net: IPNet, offset: number, op: "eq" | "neq"): Expr[] {
  const len = net.ip.length;
  return [
    { kind: "payload", base: "network", offset, len, dreg: 1 },
    { kind: "bitwise", sreg: 1, dreg: 1, len, mask: prefixMask(len, net.prefix), xor: new Uint8Array(len) },
    { kind: "cmp", op, sreg: 1, data: networkOf(net).ip },
  ];
}

/** Masquerade traffic leaving `networks` (IPv4 and/or IPv6 cluster networks). */
export function installMasquerade(networks: readonly IPNet[]): void {
  const conn = NftConn.open();
  try {
    const tx = new Transaction({ family: "inet", table: AGENT_TABLE });
    if (conn.getTable("inet", AGENT_TABLE)) tx.delete({ kind: "table" });
    tx.add({ kind: "table" });
    tx.add({ kind: "chain", name: "postrouting", type: "nat", hook: "postrouting", priority: 100 });
    for (const net of networks) {
      const v6 = net.ip.length === 16;
      const fam: Expr[] = [
        { kind: "meta", key: "nfproto", dreg: 1 },
        { kind: "cmp", op: "eq", sreg: 1, data: Uint8Array.of(v6 ? 10 : 2) },
      ];
      const [saddr, daddr] = v6 ? [8, 24] : [12, 16];
      const mcast: IPNet = v6 ? { ip: Uint8Array.of(0xff, ...new Array<number>(15).fill(0)), prefix: 8 } : { ip: Uint8Array.of(224, 0, 0, 0), prefix: 4 };
      tx.add({ kind: "rule", chain: "postrouting", exprs: [...fam, ...inNet(mcast, daddr, "eq"), { kind: "immediate", verdict: verdict.return }] });
      tx.add({ kind: "rule", chain: "postrouting", exprs: [...fam, ...inNet(net, saddr, "eq"), ...inNet(net, daddr, "neq"), { kind: "masq" }] });
    }
    conn.apply(tx);
  } finally {
    conn.close();
  }
}

/** Remove the agent's masquerading (missing table is fine). */
export function removeMasquerade(): void {
  const conn = NftConn.open();
  try {
    conn.apply(new Transaction({ family: "inet", table: AGENT_TABLE }).delete({ kind: "table" }));
  } catch (e) {
    if (!isNotFound(e)) throw e;
  } finally {
    conn.close();
  }
}
