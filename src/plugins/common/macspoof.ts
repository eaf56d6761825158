/**
 * macspoofchk for bridge over nftables (bridge family), per-pod state as set elements: one table
 * `bridge cnikit_macspoof` whose prerouting chain (priority -300, as the reference's) lets a
 * checked port's frames through only with the pod's MAC as source. A pod adds its host veth to
 * `checked` and "veth . mac" to `allowed`; DEL removes both.
 */

import { ensureTable, removeElements } from "../../nft/ensure.ts";
import { cleanupWithNft, withNft } from "../../nft/handle.ts";
import { concatRegs, reg32 } from "../../nft/registers.ts";
import { Transaction } from "../../nft/transaction.ts";
import { ifname } from "../../nft/value.ts";
import { verdict } from "../../nft/verdict.ts";
import { parseMAC } from "../../net/mac.ts";

/** The table cnikit's MAC spoof checks live in. */
export const MACSPOOF_TABLE = "cnikit_macspoof";
const WHERE = { family: "bridge", table: MACSPOOF_TABLE } as const;

function setup(): Transaction {
  const [a, b] = concatRegs(reg32(0), [16, 6]);
  const tx = new Transaction(WHERE);
  tx.create({ kind: "table" });
  tx.add({ kind: "chain", name: "prerouting", type: "filter", hook: "prerouting", priority: -300 });
  tx.add({ kind: "set", name: "checked", key: "ifname" });
  tx.add({ kind: "set", name: "allowed", key: ["ifname", "ether_addr"] });
  // a checked port's frame with the pod's own source MAC: on its way
  tx.add({
    kind: "rule", chain: "prerouting",
    exprs: [
      { kind: "meta", key: "iifname", dreg: a! },
      { kind: "payload", base: "link", offset: 6, len: 6, dreg: b! },
      { kind: "lookup", set: "allowed", sreg: a! },
      { kind: "immediate", verdict: verdict.return },
    ],
  });
  // any other frame from a checked port: dropped
  tx.add({
    kind: "rule", chain: "prerouting",
    exprs: [
      { kind: "meta", key: "iifname", dreg: 1 },
      { kind: "lookup", set: "checked", sreg: 1 },
      { kind: "counter" },
      { kind: "immediate", verdict: verdict.drop },
    ],
  });
  return tx;
}

function elements(port: string, mac: string) {
  return [
    { kind: "element" as const, set: "checked", key: ifname(port) },
    { kind: "element" as const, set: "allowed", key: [ifname(port), parseMAC(mac)] },
  ];
}

/** Allow only `mac` as source on bridge port `port` (the pod's host veth). */
export function addMacSpoofCheck(port: string, mac: string): void {
  withNft((nft) => {
    ensureTable(nft, setup());
    const tx = new Transaction(WHERE);
    for (const el of elements(port, mac)) tx.add(el);
    nft.apply(tx);
  });
}

/** Remove a port's check (missing table or elements, or no nftables at all, are fine). */
export function delMacSpoofCheck(port: string, mac: string): void {
  cleanupWithNft((nft) => {
    if (nft.getTable("bridge", MACSPOOF_TABLE)) removeElements(nft, WHERE, elements(port, mac));
  });
}

/** Whether a port is checked with `mac` as its allowed source (for CHECK). */
export function hasMacSpoofCheck(port: string, mac: string): boolean {
  return withNft((nft) => {
    if (!nft.getTable("bridge", MACSPOOF_TABLE)) return false;
    const want = Buffer.from(ifname(port));
    return nft.listElements("bridge", MACSPOOF_TABLE, "checked").some((e) => Buffer.from(e.key).equals(want)) &&
      nft.listElements("bridge", MACSPOOF_TABLE, "allowed").some((e) => Buffer.from(e.key).subarray(0, 16).equals(want) && Buffer.from(e.key).subarray(16, 22).equals(Buffer.from(parseMAC(mac))));
  });
}

/** Remove the checks of ports that no longer exist (a DEL without a cached result leaves them). */
export function sweepMacSpoofChecks(exists: (port: string) => boolean): void {
  cleanupWithNft((nft) => {
    if (!nft.getTable("bridge", MACSPOOF_TABLE)) return;
    const name = (key: Uint8Array) => new TextDecoder().decode(key.subarray(0, 16)).replace(/\0.*$/s, "");
    const gone = (["checked", "allowed"] as const).flatMap((set) =>
      nft.listElements("bridge", MACSPOOF_TABLE, set).filter((e) => !exists(name(e.key))).map((e) => ({ kind: "element" as const, set, key: e.key })));
    removeElements(nft, WHERE, gone);
  });
}
