/**
 * overlay: turns this node's lease (the agent's `subnet.env`, flannel's format) into a bridge +
 * host-local configuration and delegates to it, as flannel's CNI plugin does. Keys: `subnetFile`
 * (default /run/flannel/subnet.env), `dataDir` (where the delegate config is kept for DEL),
 * `subnetFileWaitMs` (how long ADD waits for the agent to write the file), `delegate` (keys that
 * win over the generated ones).
 *
 * `"datapath": "ebpf"` (cnikit's): no bridge. The pod gets a veth pair from `ptp` (same host-local
 * ranges, a default route), its gateway as a permanent neighbour (the host veth's MAC), and the
 * eBPF pod program on its host veth with its endpoint in the network's pinned maps (src/bpf): pods
 * of this node reach each other by `bpf_redirect_peer`, other nodes' pods through the agent's
 * collect-metadata vxlan device when the agent runs the eBPF datapath (subnet.env's
 * CNIKIT_BPF_PIN_DIR names its pins), else through the kernel's routes. `bpfPinDir` overrides
 * where the pins are (default: the agent's, else /sys/fs/bpf/cnikit/<network name>). DEL removes
 * the endpoint (the last pod's DEL what only pods used); GC removes endpoints of pods not valid.
 */

import { hostRtnetlink, releaseRtnetlink, withHostRtnetlink } from "../../net/rtnetlink.ts";
import { BIG_TCP_SIZE } from "../../net/big-tcp.ts";
import { findLink, setLink } from "../../net/link.ts";
import type { NetlinkConn } from "../../netlink/conn.ts";
import { setNeighbor } from "../../net/neigh.ts";
import { listDir, makeDir, readText, removeFile, writeText } from "../../sys/file.ts";
import { joinPath as join } from "../../sys/path.ts";
import { delegateAdd, delegateCommand } from "../../invoke/delegate.ts";
import { readSubnetEnv, type SubnetEnv } from "../../ipam/subnet-env.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { pluginConf } from "../../skel/conf.ts";
import { any, bool, i64, object, record, refine, str } from "../../spec/decode.ts";
import { openPodConn, podVethMade, releasePodConn, withPodScope } from "../common/veth-pod.ts";
import { netConfShape } from "../../spec/netconf.ts";
import { hasField } from "../common/conf.ts";
import { CniError, ErrorCode, toCniError } from "../../spec/error.ts";
import { formatCIDR, networkOf, parseCIDR } from "../../spec/ip.ts";
import type { Result } from "../../spec/result.ts";

/** flannel's defaults. */
export const DEFAULT_SUBNET_FILE = "/run/flannel/subnet.env";
export const DEFAULT_DATA_DIR = "/var/lib/cni/overlay";
const DEFAULT_WAIT_MS = 3000;
/** Where a network's eBPF pins go when neither the config nor subnet.env names a place. */
export const DEFAULT_BPF_PIN_ROOT = "/sys/fs/bpf/cnikit";

/** The overlay's settings. */
export interface OverlayConf {
  subnetFile: string;
  /** null only on DEL, when the config's `dataDir` did not decode. */
  dataDir: string | null;
  waitMs: number;
  delegate: Record<string, unknown>;
  /** "kernel" (bridge, the default) or "ebpf" (veth pairs and tc programs, no bridge). */
  datapath: "kernel" | "ebpf";
  /** ebpf: the pin directory the config names ("" : subnet.env's, else the default). */
  bpfPinDir: string;
  /** ebpf: IPv4 BIG TCP for pods: true / false, or undefined to follow subnet.env's CNIKIT_BIG_TCP. */
  bigTCP: boolean | undefined;
}

/**
 * The overlay's config, decoded as flannel's CNI plugin decodes its `NetConf` (`subnetFile`,
 * `dataDir`, `delegate` and `runtimeConfig` as maps), plus cnikit's `subnetFileWaitMs`.
 */
export const overlayCodec = object({
  ...netConfShape,
  subnetFile: str,
  dataDir: str,
  subnetFileWaitMs: refine(i64, (ms) => (ms >= 0 ? undefined : `must not be negative, not ${ms}`)),
  delegate: record(any),
  runtimeConfig: record(any),
  datapath: refine(str, (d) => (d === "" || d === "kernel" || d === "ebpf" ? undefined : `must be "kernel" or "ebpf", not ${JSON.stringify(d)}`)),
  bpfPinDir: refine(str, (d) => (d === "" || d.startsWith("/") ? undefined : `must be an absolute path, not ${JSON.stringify(d)}`)),
  bigTCP: bool,
});

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, `overlay: ${msg}`);

/**
 * Decode the config; "" means the default for `subnetFile` and `dataDir`. On DEL (lenient) a
 * `dataDir` that did not decode is null: the saved state is then not looked for anywhere else.
 */
export function parseOverlayConf(args: CmdArgs): OverlayConf {
  const d = pluginConf(args, overlayCodec, "overlay");
  const lost = d.dataDir === undefined && hasField(overlayCodec, args.config, "dataDir");
  return {
    subnetFile: d.subnetFile || DEFAULT_SUBNET_FILE,
    dataDir: lost ? null : d.dataDir || DEFAULT_DATA_DIR,
    waitMs: d.subnetFileWaitMs ?? DEFAULT_WAIT_MS,
    delegate: d.delegate ?? {},
    datapath: d.datapath === "ebpf" ? "ebpf" : "kernel",
    bpfPinDir: d.bpfPinDir ?? "",
    bigTCP: d.bigTCP,
  };
}

/**
 * The delegate config for a lease: bridge with isGateway, ipMasq unless the agent masquerades, the
 * lease's MTU, host-local over the node's subnet with a route to the cluster network; any key of
 * `delegate` wins.
 */
export function delegateConfig(
  args: { name: string; cniVersion: string },
  env: SubnetEnv,
  delegate: Record<string, unknown>,
  datapath: "kernel" | "ebpf" = "kernel",
): Record<string, unknown> {
  const ranges: unknown[] = [];
  const routes: unknown[] = [];
  const netOf = (c: string) => formatCIDR(networkOf(parseCIDR(c)!));
  const ebpf = datapath === "ebpf";
  if (env.subnet) ranges.push([{ subnet: netOf(env.subnet) }]);
  if (env.ipv6Subnet) ranges.push([{ subnet: netOf(env.ipv6Subnet) }]);
  if (env.network) routes.push({ dst: env.network });
  if (env.ipv6Network) routes.push({ dst: env.ipv6Network });
  // ebpf: everything leaves the pod through its one gateway (the host veth), as with Calico and Cilium
  if (ebpf && env.subnet) routes.push({ dst: "0.0.0.0/0" });
  if (ebpf && env.ipv6Subnet) routes.push({ dst: "::/0" });
  const ipam = { type: "host-local", ranges, ...(routes.length > 0 ? { routes } : {}) };
  const out: Record<string, unknown> = {
    ...(ebpf ? { type: "ptp" } : { type: "bridge", isGateway: true }),
    ipMasq: !env.ipMasq,
    ...(env.mtu ? { mtu: env.mtu } : {}),
    ...delegate,
    // a delegate ipam object refines the generated one (dataDir, say) unless it names a type of its own
    ipam: typeof delegate.ipam === "object" && delegate.ipam !== null && !(delegate.ipam as { type?: unknown }).type
      ? { ...ipam, ...(delegate.ipam as Record<string, unknown>) }
      : (delegate.ipam ?? ipam),
  };
  out.name = args.name;
  out.cniVersion = args.cniVersion;
  return out;
}

async function waitForSubnetEnv(conf: OverlayConf): Promise<SubnetEnv> {
  const deadline = Date.now() + conf.waitMs;
  for (;;) {
    const env = readSubnetEnv(conf.subnetFile);
    if (env) return env;
    if (Date.now() >= deadline) {
      throw new CniError(
        ErrorCode.TryAgainLater,
        `overlay: ${conf.subnetFile} does not exist: is the node agent (cnikit agent) running and has it leased a subnet?`,
      );
    }
    await Bun.sleep(50);
  }
}

/** Where ADD keeps the delegate config of this attachment; null when `dataDir` did not decode (DEL). */
function savedFile(conf: OverlayConf, args: CmdArgs): string | null {
  return conf.dataDir === null ? null : join(conf.dataDir, `${args.containerId}-${args.ifName}.json`);
}

/** What an eBPF attachment needs at DEL and GC, kept beside the delegate config. */
interface EbpfAttachment {
  pinDir: string;
  podIP: string;
  hostIfname: string;
  /** The host veth's ifindex (absent in what older versions kept): DEL removes only its entry. */
  hostIfindex?: number;
}

function ebpfFile(dataDir: string, containerId: string, ifName: string): string {
  return join(dataDir, `${containerId}-${ifName}.ebpf.json`);
}

/** The network's pin directory: the config's, else the agent's (subnet.env), else the default. */
export function bpfPinDirOf(conf: OverlayConf, env: SubnetEnv | undefined, network: string): string {
  if (conf.bpfPinDir) return conf.bpfPinDir;
  if (env?.bpfPinDir) return env.bpfPinDir;
  if (!/^[A-Za-z0-9_.-]+$/.test(network) || network === "." || network === "..") throw invalid(`network name ${JSON.stringify(network)} cannot name a pin directory: give 'bpfPinDir'`);
  return `${DEFAULT_BPF_PIN_ROOT}/${network}`;
}

/**
 * The pod's veth as the kernel tells (when ptp ran in another process): the pod end, and the host
 * end's index from the pod end's peer, without a lookup in the host.
 */
function vethOf(pod: NetlinkConn, host: NetlinkConn, ifName: string, hostName: string): { podIndex: number; hostIndex: number } {
  const podLink = findLink(pod, ifName);
  if (!podLink) throw new CniError(ErrorCode.Internal, `overlay: the pod's ${ifName} is gone`);
  const peer = podLink.kind === "veth" && podLink.linkNetnsId !== undefined ? podLink.parent : undefined;
  const hostIndex = peer ?? findLink(host, hostName)?.index;
  if (hostIndex === undefined) throw new CniError(ErrorCode.Internal, `overlay: host veth ${hostName} is gone`);
  return { podIndex: podLink.index, hostIndex };
}

/** The eBPF datapath's modules, loaded only by an ebpf network's calls (the bridge path never pays for them). */
const bpf = () => import("../../bpf/datapath.ts");

/**
 * ebpf ADD, after ptp's: the gateway as a permanent neighbour in the pod (no ARP ever needed), the
 * pod program on the host veth and the pod's endpoint in the maps; with BIG TCP (`bigTcp`, the GSO
 * size) both ends of the veth take packets that big. Returns what DEL needs (undefined for a pod
 * without IPv4: the kernel routes it).
 */
async function attachEbpf(args: CmdArgs, pinDir: string, result: Result, file: string, bigTcp: number | undefined): Promise<EbpfAttachment | undefined> {
  const ifaces = result.interfaces ?? [];
  const v4 = (result.ips ?? []).find((i) => !i.address.includes(":"));
  const hostIf = ifaces.find((i) => !i.sandbox);
  const podIf = ifaces.find((i) => i.sandbox && i.name === args.ifName);
  if (!v4) return undefined;
  if (!hostIf?.mac || !podIf?.mac || !v4.gateway) throw new CniError(ErrorCode.Internal, "overlay: the ptp result lacks the host veth, the pod's MAC or the gateway");
  const host = hostRtnetlink();
  try {
    const pod = openPodConn(args.netns);
    let att: EbpfAttachment;
    try {
      const { podIndex, hostIndex } = podVethMade(args.netns, args.ifName, hostIf.name) ?? vethOf(pod, host, args.ifName, hostIf.name);
      // kept first, so that a DEL after a failure below still finds the endpoint to remove
      att = { pinDir, podIP: v4.address.split("/")[0]!, hostIfname: hostIf.name, hostIfindex: hostIndex };
      writeText(file, JSON.stringify(att), { mode: 0o600 });
      setNeighbor(pod, { link: podIndex, ip: v4.gateway, mac: hostIf.mac });
      if (bigTcp) setLink(pod, podIndex, { gsoIPv4MaxSize: bigTcp, groIPv4MaxSize: bigTcp });
    } finally {
      releasePodConn(pod);
    }
    const hostIfindex = att.hostIfindex!;
    if (bigTcp) setLink(host, hostIfindex, { gsoIPv4MaxSize: bigTcp, groIPv4MaxSize: bigTcp });
    const ep = { ip: att.podIP, ifindex: hostIfindex, podMac: podIf.mac, hostMac: hostIf.mac };
    // the pinned program and map alone where they are (every pod but a network's first), else the datapath
    const { attachPinnedPod } = await import("../../bpf/endpoints.ts");
    if (!attachPinnedPod(host, pinDir, ep)) (await bpf()).attachPodDatapath(host, { pinDir, podIP: ep.ip, hostIfindex, podMac: ep.podMac, hostMac: ep.hostMac });
    return att;
  } finally {
    releaseRtnetlink(host);
  }
}

/**
 * ebpf DEL, before the delegate's: the pod's endpoint, so that nothing is redirected into the pod
 * any more (the last pod's DEL also removes what only pods used). The program on the host veth, a
 * cls_bpf filter or (an ADD by an older cnikit) a tcx attachment, goes with the veth, which the
 * delegate deletes next: taking it off first only made DEL dearer (a clsact removal ~0.35 ms, a tcx
 * detach ~0.2 ms; the veth's unregister waits for RCU either way).
 */
async function detachEbpf(att: EbpfAttachment): Promise<void> {
  const { removePinnedEndpoint } = await import("../../bpf/endpoint-del.ts");
  if (removePinnedEndpoint(att.pinDir, att.podIP, att.hostIfindex).left === "last") (await bpf()).afterLastPod(att.pinDir);
}

/** The pods' IPv4 GSO size: the config's choice, else what the agent enabled (subnet.env). */
function bigTcpOf(conf: OverlayConf, env: SubnetEnv): number | undefined {
  if (conf.bigTCP === false) return undefined;
  return conf.bigTCP === true ? (env.bigTcp ?? BIG_TCP_SIZE) : env.bigTcp;
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseOverlayConf(args);
  const env = await waitForSubnetEnv(conf);
  const delegate = delegateConfig({ name: args.config.name ?? "", cniVersion: args.cniVersion }, env, conf.delegate, conf.datapath);
  const type = delegate.type;
  if (typeof type !== "string" || !type) throw invalid("delegate 'type' must be a plugin type");
  if (conf.datapath === "ebpf" && type !== "ptp") throw invalid(`"datapath": "ebpf" wires pods with ptp, not with delegate type ${JSON.stringify(type)}`);
  const pinDir = conf.datapath === "ebpf" ? bpfPinDirOf(conf, env, args.config.name ?? "") : "";
  const text = JSON.stringify(delegate);
  // kept before delegating, so that a DEL after a failed ADD still knows what to undo
  const file = savedFile(conf, args);
  if (conf.dataDir === null || file === null) throw invalid("'dataDir' is not usable"); // strict decoding already refused it
  makeDir(conf.dataDir, { recursive: true, mode: 0o700 });
  writeText(file, text, { mode: 0o600 });
  const side = ebpfFile(conf.dataDir, args.containerId, args.ifName);
  try {
    const result = await delegateAdd(type, args, text);
    if (pinDir) await attachEbpf(args, pinDir, result, side, bigTcpOf(conf, env));
    return result;
  } catch (e) {
    const att = readSaved(side) as EbpfAttachment | undefined;
    try {
      if (att) await detachEbpf(att);
    } catch {
      // best effort
    }
    try {
      await delegateCommand(type, args, "DEL", text);
    } catch {
      // best effort
    }
    removeFile(side);
    removeFile(file);
    throw toCniError(e);
  }
}

function readSaved(file: string | null): Record<string, unknown> | undefined {
  if (file === null) return undefined;
  try {
    return JSON.parse(readText(file));
  } catch {
    return undefined;
  }
}

async function del(args: CmdArgs): Promise<void> {
  const conf = parseOverlayConf(args);
  const file = savedFile(conf, args);
  // never added, already deleted, or a `dataDir` that did not decode: its state is not looked for elsewhere
  const saved = readSaved(file);
  if (!saved || file === null || conf.dataDir === null) return;
  const side = ebpfFile(conf.dataDir, args.containerId, args.ifName);
  const att = readSaved(side) as EbpfAttachment | undefined;
  let failed: unknown;
  try {
    // first: from here on nothing is redirected into the pod
    if (att) await detachEbpf(att);
  } catch (e) {
    failed = e;
  }
  await delegateCommand(String(saved.type), args, "DEL", JSON.stringify({ ...saved, ...(args.config.prevResult ? { prevResult: args.config.prevResult } : {}) }));
  if (failed) throw toCniError(failed);
  removeFile(side);
  removeFile(file);
}

/**
 * GC (ebpf): remove the endpoints of pods that are not among the valid attachments (their IPs are
 * read from what ADD kept) and what ADD kept for the others of this network (same pin directory),
 * then pass GC to ptp (and so to host-local) with a config from the lease.
 */
async function gc(args: CmdArgs): Promise<void> {
  const conf = parseOverlayConf(args);
  if (conf.datapath !== "ebpf" || conf.dataDir === null) return;
  const env = readSubnetEnv(conf.subnetFile) ?? undefined;
  const pinDir = bpfPinDirOf(conf, env, args.config.name ?? "");
  const valid: string[] = [];
  const validFiles = new Set<string>();
  for (const a of args.validAttachments ?? []) {
    const file = ebpfFile(conf.dataDir, a.containerID, a.ifname);
    validFiles.add(file);
    const att = readSaved(file) as EbpfAttachment | undefined;
    if (att?.podIP) valid.push(att.podIP);
  }
  // what ADD kept for attachments of this network (same pins) that are no longer valid
  let names: string[] = [];
  try {
    names = listDir(conf.dataDir);
  } catch {
    // no dataDir: nothing kept
  }
  for (const name of names) {
    if (!name.endsWith(".ebpf.json")) continue;
    const file = join(conf.dataDir, name);
    if (validFiles.has(file) || (readSaved(file) as EbpfAttachment | undefined)?.pinDir !== pinDir) continue;
    removeFile(file);
    removeFile(join(conf.dataDir, `${name.slice(0, -".ebpf.json".length)}.json`));
  }
  const dp = (await bpf()).openPinnedDatapath(pinDir);
  if (dp) {
    try {
      const gone = dp.gcEndpoints(valid);
      if (gone.length > 0) args.log(`overlay: GC removed the eBPF endpoints of ${gone.join(", ")}`);
    } finally {
      dp.close();
    }
  }
  if (env) {
    const delegate = delegateConfig({ name: args.config.name ?? "", cniVersion: args.cniVersion }, env, conf.delegate, conf.datapath);
    // ptp hands its config to host-local, which releases what no valid attachment holds
    const raw = args.config as Record<string, unknown>;
    const text = JSON.stringify({ ...delegate, "cni.dev/valid-attachments": args.validAttachments ?? [], ...(raw["cni.dev/attachments"] !== undefined ? { "cni.dev/attachments": raw["cni.dev/attachments"] } : {}) });
    await delegateCommand(String(delegate.type), args, "GC", text);
  }
}

async function check(args: CmdArgs): Promise<void> {
  const saved = readSaved(savedFile(parseOverlayConf(args), args));
  if (!saved) throw new CniError(ErrorCode.Internal, `overlay: no saved delegate config for ${args.containerId}`);
  await delegateCommand(String(saved.type), args, "CHECK", JSON.stringify({ ...saved, prevResult: args.config.prevResult }));
}

/** The overlay plugin. */
export const overlay: Plugin = {
  // one host connection for overlay and the delegate it runs in-process
  // and one pod connection (with what ptp made in the pod) when the delegate runs in-process
  add: (args) => withHostRtnetlink(() => withPodScope(args.netns, () => add(args))),
  del: (args) => withHostRtnetlink(() => del(args)),
  check,
  gc,
};
export default overlay;
