/**
 * firewall over nftables, per-pod state as set elements in one long-lived table `inet
 * cnikit_firewall` (forward hook, priority 0, policy accept):
 *   1. connections already established (or related) pass;
 *   2. connections DNATed to a pod (hostPorts) pass;
 *   3. `ingressPolicy: "isolated"`: nothing else may open a connection to the pod;
 *   4. `ingressPolicy: "same-bridge"`: traffic from one same-bridge network's bridge to another's
 *      is dropped (the reference's CNI-ISOLATION stages), per bridge pair;
 *   5. pod traffic is accepted (the reference's CNI-FORWARD accepts).
 * Note on 5: in nftables an accept ends only this table's verdict; a drop in another table still
 * applies. Where iptables' FORWARD chain drops (Docker, kube-proxy hosts),
 * common/firewall-iptables.ts adds one marking chain and one iptables accept per family, removed
 * with the last pod. The per-attachment record `<dataDir>/<network>/<cid>_<ifname>.json` lets DEL
 * and GC find the elements.
 */

import { listDir, makeDir, readText, removeFile, writeText } from "../../sys/file.ts";
import { joinPath as join } from "../../sys/path.ts";
import type { NftClient } from "../../nft/client.ts";
import { ensureTable, removeElements } from "../../nft/ensure.ts";
import { withNft } from "../../nft/handle.ts";
import { CT_ESTABLISHED_RELATED, ctHasAny, IP_FAMILIES, IPS_DST_NAT, loadAddr, nfprotoIs } from "../../nft/match.ts";
import type { Element } from "../../nft/objects.ts";
import { concatRegs, reg32 } from "../../nft/registers.ts";
import { Transaction } from "../../nft/transaction.ts";
import { ifname, ipv4, ipv6 } from "../../nft/value.ts";
import { verdict } from "../../nft/verdict.ts";
import { keyGiven, pluginConf } from "../../skel/conf.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import { object, refine, str } from "../../spec/decode.ts";
import { netConfShape } from "../../spec/netconf.ts";
import type { Result } from "../../spec/result.ts";
import { checkForwardAccept, ensureForwardAccept, releaseForwardAccept } from "../common/firewall-iptables.ts";

/** The table cnikit's firewall lives in, and its default record directory. */
export const FIREWALL_TABLE = "cnikit_firewall";
export const DEFAULT_DATA_DIR = "/var/lib/cni/cnikit-firewall";
const WHERE = { family: "inet", table: FIREWALL_TABLE } as const;

/** The firewall's settings. */
export interface FirewallConf {
  ingressPolicy: "open" | "same-bridge" | "isolated";
  dataDir: string;
}

/** What ADD put in the table for one attachment (the record file holds it as JSON). */
export interface FirewallRecord {
  ips: string[];
  isolated: boolean;
  bridge?: string;
}

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, `firewall: ${msg}`);
const INGRESS_POLICIES = ["open", "same-bridge", "isolated"];
const BACKENDS = ["iptables", "firewalld", "nftables"];

/**
 * The reference's FirewallNetConf (`backend`, `iptablesAdminChainName`, `firewalldZone`,
 * `ingressPolicy`) plus cnikit's `dataDir`, decoded with Go's rules.
 */
export const firewallCodec = object({
  ...netConfShape,
  backend: refine(str, (b) => (b === "" || BACKENDS.includes(b) ? undefined : `invalid backend ${JSON.stringify(b)} (${BACKENDS.join(", ")})`)),
  iptablesAdminChainName: str,
  firewalldZone: str,
  ingressPolicy: refine(str, (p) => (p === "" || INGRESS_POLICIES.includes(p) ? undefined : `invalid ingressPolicy ${JSON.stringify(p)} (open, same-bridge or isolated)`)),
  dataDir: str,
});

/**
 * Parse the config; `backend` is accepted ("iptables", "firewalld", "nftables": cnikit uses
 * nftables). DEL decodes leniently: the record directory is all it needs.
 */
export function parseFirewallConf(args: Pick<CmdArgs, "config" | "command" | "log">): FirewallConf {
  const c = pluginConf(args as CmdArgs, firewallCodec, "firewall");
  // a dataDir given but undecodable (DEL only: ADD refused it) is "": no directory is touched
  const dataDir = c.dataDir || (keyGiven(args.config, firewallCodec, "dataDir") ? "" : DEFAULT_DATA_DIR);
  return { ingressPolicy: (c.ingressPolicy || "open") as FirewallConf["ingressPolicy"], dataDir };
}

const v6 = (ip: string) => ip.includes(":");
const addrOf = (cidr: string) => cidr.split("/")[0]!;
const enc = (ip: string) => (v6(ip) ? ipv6(ip) : ipv4(ip));
const familiesOf = (ips: string[]) => [...new Set(ips.map((ip) => (v6(ip) ? 6 : 4) as 4 | 6))];

function setup(): Transaction {
  const tx = new Transaction(WHERE);
  tx.create({ kind: "table" });
  tx.add({ kind: "chain", name: "forward", type: "filter", hook: "forward", priority: 0 });
  for (const f of IP_FAMILIES) {
    tx.add({ kind: "set", name: `pods${f.v}`, key: f.addrType });
    tx.add({ kind: "set", name: `isolated${f.v}`, key: f.addrType });
  }
  tx.add({ kind: "set", name: "crossbridge", key: ["ifname", "ifname"] });
  tx.add({ kind: "set", name: "samebridges", key: "ifname" });
  tx.add({ kind: "rule", chain: "forward", exprs: [...ctHasAny("state", CT_ESTABLISHED_RELATED), { kind: "immediate", verdict: verdict.accept }] });
  tx.add({ kind: "rule", chain: "forward", exprs: [...ctHasAny("status", IPS_DST_NAT), { kind: "immediate", verdict: verdict.accept }] });
  for (const f of IP_FAMILIES) {
    tx.add({
      kind: "rule", chain: "forward",
      exprs: [...nfprotoIs(f), loadAddr(f, "daddr", 1), { kind: "lookup", set: `isolated${f.v}`, sreg: 1 }, { kind: "counter" }, { kind: "immediate", verdict: verdict.drop }],
    });
  }
  const [a, b] = concatRegs(reg32(0), [16, 16]);
  tx.add({
    kind: "rule", chain: "forward",
    exprs: [
      { kind: "meta", key: "iifname", dreg: a! },
      { kind: "meta", key: "oifname", dreg: b! },
      { kind: "lookup", set: "crossbridge", sreg: a! },
      { kind: "counter" },
      { kind: "immediate", verdict: verdict.drop },
    ],
  });
  for (const f of IP_FAMILIES) {
    for (const which of ["saddr", "daddr"] as const) {
      tx.add({
        kind: "rule", chain: "forward",
        exprs: [...nfprotoIs(f), loadAddr(f, which, 1), { kind: "lookup", set: `pods${f.v}`, sreg: 1 }, { kind: "immediate", verdict: verdict.accept }],
      });
    }
  }
  return tx;
}

function recordDir(conf: FirewallConf, network: string): string {
  return join(conf.dataDir, network);
}

function recordFile(conf: FirewallConf, args: CmdArgs): string {
  return join(recordDir(conf, args.config.name ?? ""), `${args.containerId}_${args.ifName}.json`);
}

/** The pod's addresses and bridge from prevResult (the bridge: an interface without sandbox that has no peer role). */
function fromPrev(prev: Result, ifName: string): { ips: string[]; bridge?: string } {
  const ci = (prev.interfaces ?? []).findIndex((i) => i.name === ifName && i.sandbox);
  const ips = (prev.ips ?? []).filter((ip) => ip.interface === undefined || ci < 0 || ip.interface === ci).map((ip) => addrOf(ip.address));
  const ifs = prev.interfaces ?? [];
  // bridge results list [bridge, host veth, pod]: the first interface without a sandbox
  const bridge = ifs.length >= 3 && !ifs[0]!.sandbox ? ifs[0]!.name : undefined;
  return bridge ? { ips, bridge } : { ips };
}

function podElements(rec: FirewallRecord): Element[] {
  const out: Element[] = [];
  for (const ip of rec.ips) {
    const v = v6(ip) ? 6 : 4;
    out.push({ kind: "element", set: `pods${v}`, key: enc(ip) });
    if (rec.isolated) out.push({ kind: "element", set: `isolated${v}`, key: enc(ip) });
  }
  return out;
}

/**
 * ADD's nftables step: the shared table (made once), then the pod's elements in one transaction;
 * with `sameBridge`, also its bridge against every other same-bridge network's bridge, both ways.
 */
export function addPod(nft: NftClient, rec: FirewallRecord, opts: { sameBridge: boolean }): void {
  ensureTable(nft, setup());
  const tx = new Transaction(WHERE);
  for (const el of podElements(rec)) tx.add(el);
  const bridge = rec.bridge;
  if (opts.sameBridge && bridge) {
    const others = nft.listElements("inet", FIREWALL_TABLE, "samebridges")
      .map((e) => new TextDecoder().decode(e.key.subarray(0, 16)).replace(/\0.*$/s, ""))
      .filter((n) => n && n !== bridge);
    for (const o of others) {
      tx.add({ kind: "element", set: "crossbridge", key: [ifname(bridge), ifname(o)] });
      tx.add({ kind: "element", set: "crossbridge", key: [ifname(o), ifname(bridge)] });
    }
    tx.add({ kind: "element", set: "samebridges", key: ifname(bridge) });
  }
  nft.apply(tx);
}

/** Remove a pod's elements (DEL, GC, a failed ADD): those gone already, or a missing table, are fine. */
export function removePod(nft: NftClient, rec: FirewallRecord): void {
  if (nft.getTable("inet", FIREWALL_TABLE)) removeElements(nft, WHERE, podElements(rec));
}

/** CHECK's nftables step: each address accepted in forwarding, and isolated when `rec.isolated`. */
export function checkPod(nft: NftClient, rec: FirewallRecord): void {
  if (!nft.getTable("inet", FIREWALL_TABLE)) throw new CniError(ErrorCode.Internal, "firewall: table inet cnikit_firewall is missing");
  for (const ip of rec.ips) {
    const v = v6(ip) ? 6 : 4;
    const has = (set: string) => nft.listElements("inet", FIREWALL_TABLE, set).some((e) => Buffer.from(e.key).equals(Buffer.from(enc(ip))));
    if (!has(`pods${v}`)) throw new CniError(ErrorCode.Internal, `firewall: ${ip} is not accepted in forwarding`);
    if (rec.isolated && !has(`isolated${v}`)) throw new CniError(ErrorCode.Internal, `firewall: ${ip} is not isolated`);
  }
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseFirewallConf(args);
  const prev = args.prevResult;
  if (!prev) throw invalid("required prevResult missing (firewall is a chained plugin)");
  const { ips, bridge } = fromPrev(prev, args.ifName);
  if (ips.length === 0) throw invalid(`no IP addresses for ${args.ifName} in prevResult`);
  const sameBridge = conf.ingressPolicy === "same-bridge";
  if (sameBridge && !bridge) throw invalid("ingressPolicy same-bridge needs a bridge in prevResult");
  const rec: FirewallRecord = { ips, isolated: conf.ingressPolicy === "isolated", ...(bridge ? { bridge } : {}) };
  withNft((nft) => {
    try {
      addPod(nft, rec, { sameBridge });
      makeDir(recordDir(conf, args.config.name ?? ""), { recursive: true, mode: 0o700 });
      writeText(recordFile(conf, args), JSON.stringify(rec), { mode: 0o600 });
      ensureForwardAccept(nft, { table: FIREWALL_TABLE, dataDir: conf.dataDir, families: familiesOf(ips) });
    } catch (e) {
      removePod(nft, rec);
      removeFile(recordFile(conf, args));
      try {
        releaseForwardAccept(nft, { table: FIREWALL_TABLE, dataDir: conf.dataDir });
      } catch {
        // the ADD's own error is the one to report
      }
      throw e;
    }
  });
  return structuredClone(prev);
}

function readRecord(file: string): FirewallRecord | undefined {
  try {
    return JSON.parse(readText(file)) as FirewallRecord;
  } catch {
    return undefined;
  }
}

async function del(args: CmdArgs): Promise<void> {
  const conf = parseFirewallConf(args);
  const file = conf.dataDir ? recordFile(conf, args) : "";
  const rec = (file ? readRecord(file) : undefined) ?? (args.prevResult ? { ...fromPrev(args.prevResult, args.ifName), isolated: true } : undefined);
  if (rec) {
    withNft((nft) => {
      if (!nft.getTable("inet", FIREWALL_TABLE)) return;
      removePod(nft, rec);
      if (conf.dataDir) releaseForwardAccept(nft, { table: FIREWALL_TABLE, dataDir: conf.dataDir });
    });
  }
  if (file) removeFile(file);
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parseFirewallConf(args);
  if (!args.prevResult) throw invalid("required prevResult missing");
  const { ips } = fromPrev(args.prevResult, args.ifName);
  withNft((nft) => {
    checkPod(nft, { ips, isolated: conf.ingressPolicy === "isolated" });
    checkForwardAccept(nft, { table: FIREWALL_TABLE, dataDir: conf.dataDir, families: familiesOf(ips) });
  });
}

/** GC: drop the elements of this network's attachments that are not in the valid list. */
async function gc(args: CmdArgs): Promise<void> {
  const conf = parseFirewallConf(args);
  const valid = new Set((args.validAttachments ?? []).map((a) => `${a.containerID}_${a.ifname}.json`));
  const dir = recordDir(conf, args.config.name ?? "");
  let names: string[];
  try {
    names = listDir(dir).filter((n) => n.endsWith(".json"));
  } catch {
    return;
  }
  withNft((nft) => {
    const hasTable = Boolean(nft.getTable("inet", FIREWALL_TABLE));
    for (const n of names) {
      if (valid.has(n)) continue;
      const rec = readRecord(join(dir, n));
      if (rec && hasTable) removePod(nft, rec);
      removeFile(join(dir, n));
    }
    if (hasTable) releaseForwardAccept(nft, { table: FIREWALL_TABLE, dataDir: conf.dataDir });
  });
}

/** The firewall plugin. */
export const firewall: Plugin = { add, del, check, gc };
export default firewall;
