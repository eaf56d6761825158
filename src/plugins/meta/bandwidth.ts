/**
 * bandwidth: per-pod rate limits with token buckets, as the reference plugin sets them up.
 * Ingress (traffic to the pod): a TBF qdisc at the root of the pod's host-side veth. Egress
 * (traffic from the pod): an ifb device ("bwp" + hash of network name and container id) with a
 * TBF qdisc, fed by a match-all filter with a mirred redirect on the host veth's ingress qdisc.
 * Rates in bits per second, bursts in bits, from the config or the `bandwidth` capability
 * (runtimeConfig, which wins). A chained plugin: it needs a prevResult and passes it on.
 */

import { NetlinkConn } from "../../netlink/conn.ts";
import { hostRtnetlink, releaseRtnetlink } from "../../net/rtnetlink.ts";
import { IFF_UP } from "../../netlink/link.ts";
import { TC_H_INGRESS, TC_H_ROOT, time2tick, TCA_EGRESS_REDIR, type TbfOptions, type TcObject } from "../../netlink/tc.ts";
import { createLink, deleteLink, findLink, setLink, type Link } from "../../net/link.ts";
import { linkRemover, REMOVAL_GROUP } from "../../net/removal.ts";
import { addIngressQdisc, addRedirectFilter, addTbf, deleteQdisc, INGRESS_HANDLE, listFilters, listQdiscs, pschedClock } from "../../net/qdisc.ts";
import { pluginConf } from "../../skel/conf.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { CniError, ErrorCode, toCniError } from "../../spec/error.ts";
import { decode, list, object, str, u64, type DecodedObject } from "../../spec/decode.ts";
import { netConfShape, type NetConf } from "../../spec/netconf.ts";
import type { Interface, Result } from "../../spec/result.ts";

/** Limits of one pod, bits per second and bits; 0 means "no limit" in that direction. */
export interface BandwidthEntry {
  ingressRate: number;
  ingressBurst: number;
  egressRate: number;
  egressBurst: number;
}

/** The reference's queueing latency for the TBF limit. */
export const LATENCY_MS = 25;
const IFB_PREFIX = "bwp";
const MAX_IFNAME = 15;
const U32_MAX = 0xffffffff;

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);
const internal = (msg: string) => new CniError(ErrorCode.Internal, msg);

/**
 * The reference's `BandwidthEntry` (Go `uint64`s: a string, a fraction or a negative number is
 * code 2; go-cni sends `IngressRate`, ...), with the subnet keys of a reverted reference version,
 * refused unless empty.
 */
const entryShape = {
  ingressRate: u64,
  ingressBurst: u64,
  egressRate: u64,
  egressBurst: u64,
  unshapedSubnets: list(str),
  shapedSubnets: list(str),
};

/** bandwidth's config: the entry's keys at the top and the `bandwidth` capability in runtimeConfig. */
export const bandwidthCodec = object({ ...netConfShape, ...entryShape, runtimeConfig: object({ bandwidth: object(entryShape) }) });

function entryOf(src: DecodedObject<typeof entryShape>, where: string): BandwidthEntry {
  for (const k of ["unshapedSubnets", "shapedSubnets"] as const) {
    if ((src[k]?.length ?? 0) === 0) continue;
    throw new CniError(ErrorCode.UnsupportedField, `bandwidth: ${where}${k} is not supported yet; leave it empty`);
  }
  return {
    ingressRate: src.ingressRate ?? 0,
    ingressBurst: src.ingressBurst ?? 0,
    egressRate: src.egressRate ?? 0,
    egressBurst: src.egressBurst ?? 0,
  };
}

function validatePair(rate: number, burst: number, dir: string): void {
  if (rate !== 0 && burst === 0) throw invalid(`bandwidth: if ${dir}Rate is set, ${dir}Burst must also be set`);
  if (burst !== 0 && rate === 0) throw invalid(`bandwidth: if ${dir}Burst is set, ${dir}Rate must also be set`);
  if (rate === 0) return;
  if (rate < 8) throw invalid(`bandwidth: ${dir}Rate must be at least 8 bits per second`);
  if (burst < 8) throw invalid(`bandwidth: ${dir}Burst must be at least 8 bits`);
  if (Math.floor(burst / 8) >= U32_MAX) throw invalid(`bandwidth: ${dir}Burst cannot be more than 4GB`);
}

/**
 * The limits a config asks for: the `bandwidth` capability (runtimeConfig) when the runtime sent
 * one, else the config's own keys. Both rate and burst of a direction must be set (code 7).
 */
export function parseBandwidth(conf: NetConf): BandwidthEntry {
  const d = decode(bandwidthCodec, conf, { where: "bandwidth" });
  const rc = d.runtimeConfig?.bandwidth;
  const e = rc ? entryOf(rc, "runtimeConfig.bandwidth.") : entryOf(d, "");
  validatePair(e.ingressRate, e.ingressBurst, "ingress");
  validatePair(e.egressRate, e.egressBurst, "egress");
  return e;
}

/** Whether no limit is set. */
export function isUnlimited(e: BandwidthEntry): boolean {
  return e.ingressRate === 0 && e.egressRate === 0;
}

/** The ifb's name, the reference's: "bwp" and the sha512 of network name + container id, 15 bytes. */
export function ifbName(networkName: string, containerId: string): string {
  // Bun's hasher: node:crypto alone costs milliseconds of start-up
  const h = new Bun.CryptoHasher("sha512").update(networkName + containerId).digest("hex");
  return `${IFB_PREFIX}${h}`.slice(0, MAX_IFNAME);
}

/**
 * A TBF's settings for `rateBits` / `burstBits`, computed as the reference does: rate and burst in
 * bytes, the bucket in psched ticks (burst time in whole microseconds, times ticks per
 * microsecond), the queue limit = rate × 25 ms + burst. When the bucket does not fit the u32
 * tick field, the burst is sent too (TCA_TBF_BURST) so the kernel sizes the bucket itself.
 */
export function tbfFor(rateBits: number, burstBits: number): TbfOptions {
  const rate = Math.floor(rateBits / 8);
  const burst = Math.floor(burstBits / 8);
  const usec = Math.min(Math.floor((burst * 1_000_000) / rate), U32_MAX);
  const buffer = time2tick(usec, pschedClock());
  const limit = Math.floor((rate * LATENCY_MS * 1000) / 1_000_000) + burst;
  const out: TbfOptions = { rate, buffer: Math.min(buffer, U32_MAX), limit: Math.min(limit, U32_MAX) };
  if (buffer > U32_MAX) out.burst = burst;
  return out;
}

function openPod(netns: string): NetlinkConn {
  try {
    return NetlinkConn.open({ netns });
  } catch (e) {
    throw new CniError(ErrorCode.UnknownContainer, `failed to open netns "${netns}": ${(e as Error).message}`);
  }
}

/**
 * The pod's host-side veth, as the reference finds it: the peer index of the container interface,
 * which must name an interface of prevResult without a sandbox.
 */
function hostVeth(host: NetlinkConn, args: CmdArgs, prev: Result): Link {
  const ifaces = prev.interfaces ?? [];
  if (ifaces.length === 0) throw internal("bandwidth: no interfaces provided in prevResult");
  const pod = openPod(args.netns);
  let peer: number | undefined;
  try {
    const c = findLink(pod, args.ifName);
    if (!c) throw internal(`bandwidth: container interface ${args.ifName} not found in ${args.netns}`);
    if (c.kind === "veth") peer = c.parent;
  } finally {
    pod.close();
  }
  if (!peer) throw internal(`bandwidth: container interface ${args.ifName} has no veth peer`);
  const link = findLink(host, peer);
  if (!link) throw internal(`bandwidth: veth peer with index ${peer} is not in the host namespace`);
  if (!ifaces.some((i) => !i.sandbox && i.name === link.name)) {
    throw internal(`bandwidth: no veth peer of container interface ${args.ifName} found in prevResult`);
  }
  return link;
}

function requirePrev(args: CmdArgs): Result {
  if (!args.prevResult) throw invalid("bandwidth: must be called as a chained plugin (prevResult missing)");
  return args.prevResult;
}

async function add(args: CmdArgs): Promise<Result> {
  const bw = parseBandwidth(args.config);
  const prev = requirePrev(args);
  if (isUnlimited(bw)) return prev;
  const host = hostRtnetlink();
  const undo: Array<() => void> = [];
  try {
    const veth = hostVeth(host, args, prev);
    const result = structuredClone(prev);
    if (bw.ingressRate > 0) {
      addTbf(host, veth.index, tbfFor(bw.ingressRate, bw.ingressBurst));
      undo.push(() => deleteQdisc(host, veth.index, TC_H_ROOT));
    }
    if (bw.egressRate > 0) {
      const name = ifbName(String(args.config.name ?? ""), args.containerId);
      const ifb = createLink(host, { name, mtu: veth.mtu, flags: IFF_UP, change: IFF_UP, txQueueLen: 0, info: { kind: "ifb" } });
      undo.push(() => deleteLink(host, ifb.index));
      const iface: Interface = { name: ifb.name, mac: ifb.mac };
      result.interfaces = [...(result.interfaces ?? []), iface];
      addIngressQdisc(host, veth.index);
      undo.push(() => deleteQdisc(host, veth.index, TC_H_INGRESS));
      addRedirectFilter(host, { from: veth.index, to: ifb.index });
      addTbf(host, ifb.index, tbfFor(bw.egressRate, bw.egressBurst));
    }
    return result;
  } catch (e) {
    for (const u of undo.reverse()) {
      try {
        u();
      } catch {
        // best effort: the ADD error is what the caller needs to see
      }
    }
    throw toCniError(e);
  } finally {
    releaseRtnetlink(host);
  }
}

/** Whether a filter on the ingress qdisc of `from` redirects to `to` (the ifb). */
function redirects(host: NetlinkConn, from: number, to: number): boolean {
  return listFilters(host, from, INGRESS_HANDLE).some((f) =>
    (f.actions ?? []).some((a) => "eaction" in a && a.eaction === TCA_EGRESS_REDIR && a.ifindex === to)
  );
}

/**
 * The pod's host-side veth for DEL, best effort: the peer of the container interface when the
 * namespace and the interface are still there, and only if that host link is a veth whose peer is
 * the container interface (the peer index alone could name an unrelated link).
 */
function hostVethForDel(host: NetlinkConn, args: CmdArgs): Link | undefined {
  if (!args.netns) return undefined;
  let pod: NetlinkConn;
  try {
    pod = NetlinkConn.open({ netns: args.netns });
  } catch {
    return undefined; // the namespace is gone, and the veth pair with it
  }
  let c: Link | null;
  try {
    c = findLink(pod, args.ifName);
  } finally {
    pod.close();
  }
  if (!c || c.kind !== "veth" || !c.parent) return undefined;
  const link = findLink(host, c.parent);
  return link && link.kind === "veth" && link.parent === c.index ? link : undefined;
}

/**
 * Delete the ifb. In the daemon (a `LinkRemover` installed) its tbf is deleted, and it is set down,
 * renamed out of the way (an ADD of the same pod may follow at once) and put in `REMOVAL_GROUP`,
 * for the remover's next batch: deleting it here would hold the daemon's only thread for its
 * unregister wait (~20 ms). A step that fails deletes it within the call instead.
 */
function removeIfb(host: NetlinkConn, ifb: Link): void {
  const remover = linkRemover();
  if (remover) {
    try {
      if (listQdiscs(host, ifb.index).some((q) => q.parent === TC_H_ROOT && q.kind === "tbf")) deleteQdisc(host, ifb.index, TC_H_ROOT);
      setLink(host, ifb.index, { up: false });
      setLink(host, ifb.index, { name: `cnkdel${ifb.index}`, group: REMOVAL_GROUP });
      remover.queued();
      return;
    } catch {
      // e.g. the name taken: delete it now
    }
  }
  deleteLink(host, ifb.index);
}

/**
 * Remove the ifb, and the tbf and ingress qdiscs this plugin put on the host veth when it is still
 * there (bandwidth's DEL runs before the main plugin deletes the veth). Needs only the network
 * name and the container id: the rest of the config is not checked, so a rate that does not
 * decode does not stop the cleanup.
 */
async function del(args: CmdArgs): Promise<void> {
  pluginConf(args, bandwidthCodec, "bandwidth"); // lenient on DEL: only logs what it drops
  const host = hostRtnetlink();
  try {
    const ifb = findLink(host, ifbName(String(args.config.name ?? ""), args.containerId));
    const veth = hostVethForDel(host, args);
    if (veth) {
      if (listQdiscs(host, veth.index).some((q) => q.parent === TC_H_ROOT && q.kind === "tbf")) deleteQdisc(host, veth.index, TC_H_ROOT);
      if (ifb && redirects(host, veth.index, ifb.index)) deleteQdisc(host, veth.index, TC_H_INGRESS);
    }
    if (ifb) removeIfb(host, ifb);
  } finally {
    releaseRtnetlink(host);
  }
}

function checkTbf(qdiscs: TcObject[], want: TbfOptions, where: string): void {
  const tbf = qdiscs.find((q) => q.parent === TC_H_ROOT && q.kind === "tbf");
  if (!tbf?.tbf) throw internal(`bandwidth: no tbf qdisc on ${where}`);
  const t = tbf.tbf;
  if (t.rateBytes !== want.rate) throw internal(`bandwidth: tbf rate on ${where} is ${t.rateBytes} bytes/s, expected ${want.rate}`);
  if (t.limit !== want.limit) throw internal(`bandwidth: tbf limit on ${where} is ${t.limit}, expected ${want.limit}`);
  // with TCA_TBF_BURST the kernel sized the bucket itself (in nanoseconds): only the rest is exact
  if (want.burst === undefined && t.buffer !== want.buffer) {
    throw internal(`bandwidth: tbf buffer on ${where} is ${t.buffer} ticks, expected ${want.buffer}`);
  }
}

async function check(args: CmdArgs): Promise<void> {
  const bw = parseBandwidth(args.config);
  const prev = requirePrev(args);
  if (isUnlimited(bw)) return; // nothing was set up (the reference crashes here)
  const host = hostRtnetlink();
  try {
    const veth = hostVeth(host, args, prev);
    const onVeth = listQdiscs(host, veth.index);
    if (bw.ingressRate > 0) checkTbf(onVeth, tbfFor(bw.ingressRate, bw.ingressBurst), veth.name);
    if (bw.egressRate > 0) {
      const name = ifbName(String(args.config.name ?? ""), args.containerId);
      const ifb = findLink(host, name);
      if (!ifb) throw internal(`bandwidth: ifb device ${name} not found`);
      checkTbf(listQdiscs(host, ifb.index), tbfFor(bw.egressRate, bw.egressBurst), name);
      if (!onVeth.some((q) => q.parent === TC_H_INGRESS && q.kind === "ingress")) {
        throw internal(`bandwidth: no ingress qdisc on ${veth.name}`);
      }
      if (!redirects(host, veth.index, ifb.index)) throw internal(`bandwidth: no filter on ${veth.name} redirects to ${name}`);
    }
  } catch (e) {
    throw toCniError(e);
  } finally {
    releaseRtnetlink(host);
  }
}

/** The bandwidth plugin. */
export const bandwidth: Plugin = { add, del, check };
export default bandwidth;
