/**
 * What the link plugins that create a device on a master (macvlan, ipvlan, vlan) share: finding
 * the default route's interface, creating the device inside the pod under CNI_IFNAME, the
 * neighbour-notification sysctls, the ADD result, checking a pod interface against prevResult, and
 * the whole ADD and CHECK around them (`addOnMaster`, `checkOnMaster`).
 */

import { NetlinkConn } from "../../netlink/conn.ts";
import { hostRtnetlink, releaseRtnetlink } from "../../net/rtnetlink.ts";
import { NLM_F_CREATE, NLM_F_EXCL } from "../../netlink/message.ts";
import { RTM_NEWLINK } from "../../netlink/rtnl.ts";
import { listAddresses } from "../../net/addr.ts";
import { deleteLink, findLink, getLink, setLink, type Link } from "../../net/link.ts";
import { configureIface } from "../../net/ipconfig.ts";
import { listRoutes } from "../../net/route.ts";
import { setSysctl } from "../../net/sysctl.ts";
import { delegateAdd, delegateCommand } from "../../invoke/delegate.ts";
import type { CmdArgs } from "../../skel/plugin.ts";
import { openNetns } from "../../sys/netns.ts";
import { CniError, ErrorCode, toCniError } from "../../spec/error.ts";
import { formatCIDR, formatIP, parseCIDR, parseIP } from "../../spec/ip.ts";
import type { Result } from "../../spec/result.ts";
import { validateIfName } from "../../spec/validate.ts";
import { UndoStack } from "../../skel/undo.ts";
import { openPodConn, randomVethName, releasePodConn, undoIpam, undoPodLink } from "./veth-pod.ts";
import { CURRENT_VERSION } from "../../spec/version.ts";

const internal = (msg: string) => new CniError(ErrorCode.Internal, msg);

/** The interface of the first default route (IPv4, then IPv6), or null. */
export function defaultRouteIface(conn: NetlinkConn): string | null {
  for (const r of listRoutes(conn)) {
    if ((r.dst === "0.0.0.0/0" || r.dst === "::/0") && r.oif) return getLink(conn, r.oif).name;
  }
  return null;
}

/**
 * Create a device inside the pod under CNI_IFNAME; `build(name, netnsFd)` encodes the request.
 * The kernel looks a new link's name up in the namespace of the request's socket, so when the
 * creating namespace already has CNI_IFNAME (a host's eth0), the device is born under a temporary
 * name and renamed inside the pod. `inPod`: the creator's socket already lives in the pod.
 */
export function createInPod(
  conns: { creator: NetlinkConn; pod: NetlinkConn },
  opts: {
    args: CmdArgs;
    inPod: boolean;
    kind: string;
    /** The kernel module the device kind needs, named in the error when the kernel lacks it. */
    module: string;
    build: (name: string, netnsFd?: number) => Uint8Array;
  },
): Link {
  const { creator, pod } = conns;
  const { args, kind } = opts;
  const direct = opts.inPod || !findLink(creator, args.ifName);
  let name = args.ifName;
  if (!direct) {
    name = randomVethName();
    for (let i = 0; (findLink(creator, name) || findLink(pod, name)) && i < 5; i++) name = randomVethName();
  }
  const ns = opts.inPod ? null : openNetns(args.netns);
  try {
    creator.request(RTM_NEWLINK, opts.build(name, ns?.fd), { flags: NLM_F_CREATE | NLM_F_EXCL });
  } catch (e) {
    const msg = (e as Error).message;
    const hint = /EOPNOTSUPP|Unknown device type/.test(msg) ? ` (does the kernel have the ${opts.module} module?)` : "";
    throw internal(`${kind}: failed to create ${kind}${hint}: ${msg}`);
  } finally {
    ns?.close();
  }
  if (!direct) {
    try {
      setLink(pod, name, { name: args.ifName });
    } catch (e) {
      deleteLink(pod, name);
      throw internal(`${kind}: failed to rename ${kind} to "${args.ifName}": ${(e as Error).message}`);
    }
  }
  return getLink(pod, args.ifName);
}

/** Turn on gratuitous ARP / unsolicited NA on address changes, best effort (as the reference). */
export function notifySysctls(args: CmdArgs): void {
  for (const key of [`net/ipv4/conf/${args.ifName}/arp_notify`, `net/ipv6/conf/${args.ifName}/ndisc_notify`]) {
    try {
      setSysctl(key, "1", { netns: args.netns });
    } catch {
      // IPv6 may be off in the pod
    }
  }
}

/** An address or prefix in canonical text form (as the kernel reports it). */
export function normCIDR(cidr: string): string {
  const net = parseCIDR(cidr);
  return net ? formatCIDR(net) : cidr;
}

/**
 * CHECK's common part: the interface is in prevResult and in the pod, of `kind`, with the MAC,
 * addresses and routes prevResult lists. Returns the pod link for kind-specific checks.
 */
export function checkPodIface(pod: NetlinkConn, args: CmdArgs, opts: { prev: Result; kind: string }): Link {
  const { prev, kind } = opts;
  const ifaces = prev.interfaces ?? [];
  const ci = ifaces.findIndex((i) => i.name === args.ifName && i.sandbox === args.netns);
  if (ci < 0) throw internal(`${kind}: interface ${args.ifName} in ${args.netns} not found in prevResult`);
  const link = findLink(pod, args.ifName);
  if (!link) throw internal(`${kind}: container interface ${args.ifName} not found in ${args.netns}`);
  if (link.kind !== kind) throw internal(`${kind}: container interface ${args.ifName} is not of type ${kind}`);
  const want = ifaces[ci]!;
  if (want.mac && link.mac !== want.mac.toLowerCase()) {
    throw internal(`${kind}: interface ${args.ifName} has MAC ${link.mac}, prevResult says ${want.mac}`);
  }
  const have = listAddresses(pod, { link: link.index }).map((a) => a.cidr);
  for (const ip of prev.ips ?? []) {
    if (ip.interface !== undefined && ip.interface !== ci) continue;
    if (!have.includes(normCIDR(ip.address))) throw internal(`${kind}: ${args.ifName} lacks address ${ip.address}`);
  }
  const routes = listRoutes(pod, { table: 0 }) // any table: sbr may have moved them;
  for (const r of prev.routes ?? []) {
    const dst = normCIDR(r.dst);
    const gw = r.gw ? formatIP(parseIP(r.gw) ?? new Uint8Array()) : undefined;
    if (!routes.some((x) => x.dst === dst && (!gw || x.gateway === gw))) {
      throw internal(`${kind}: route to ${r.dst}${r.gw ? ` via ${r.gw}` : ""} is missing in ${args.netns}`);
    }
  }
  return link;
}

/**
 * Finish a link plugin's ADD: the result names the pod interface; with an IPAM result its
 * addresses (on interface 0) and routes go on the interface (after the neighbour-notification
 * sysctls when `notify`), without one the interface is only brought up; DNS comes from the config
 * only, as the reference does.
 */
export function podLinkResult(pod: NetlinkConn, link: Link, args: CmdArgs, ipam: Result | undefined, opts: { notify: boolean }): Result {
  const out: Result = { cniVersion: CURRENT_VERSION, interfaces: [{ name: args.ifName, mac: link.mac, sandbox: args.netns }] };
  if (ipam) {
    out.ips = (ipam.ips ?? []).map((ip) => ({ ...ip, interface: 0 }));
    if (ipam.routes && ipam.routes.length > 0) out.routes = ipam.routes;
    if (opts.notify) notifySysctls(args);
    configureIface(pod, link.index, { ips: out.ips, routes: ipam.routes ?? [] });
  } else {
    setLink(pod, link.index, { up: true });
  }
  const dns = args.config.dns;
  if (dns && Object.keys(dns).length > 0) out.dns = dns;
  return out;
}

/** A device on a master, as macvlan, ipvlan and vlan describe theirs to `addOnMaster` / `checkOnMaster`. */
export interface MasterDevice {
  /** The link kind ("macvlan"), also the prefix of error messages. */
  kind: string;
  /** The kernel module the kind needs, named when the kernel lacks it. */
  module: string;
  /** Create the device in the pod's namespace on a master found there (`linkInContainer`). */
  linkInContainer: boolean;
  /** The IPAM plugin, when the config names one. */
  ipamType?: string;
  /** The master link in `conn`'s namespace (described as `where`); a spec error when unusable. */
  master(conn: NetlinkConn, where: string): Link;
  /** The create request for the device `name` on the master `parent` (born in `netnsFd` when given). */
  build(name: string, parent: number, netnsFd?: number): Uint8Array;
}

/** The namespace a master is looked up in, as error messages name it. */
const masterWhere = (dev: MasterDevice, args: CmdArgs) => (dev.linkInContainer ? args.netns : "the host namespace");

/**
 * ADD of a device on a master: the master, the device in the pod under CNI_IFNAME, its addresses
 * from IPAM (or from `chained`, a prevResult whose IPs the device takes instead), the result. On
 * failure the device and the IPAM reservation are undone before the error is returned.
 */
export async function addOnMaster(args: CmdArgs, dev: MasterDevice, opts: { chained?: Result; notify: boolean }): Promise<Result> {
  validateIfName(args.ifName);
  const pod = openPodConn(args.netns);
  const host = dev.linkInContainer ? null : hostRtnetlink();
  const undo = new UndoStack();
  try {
    const creator = host ?? pod;
    const master = dev.master(creator, masterWhere(dev, args));
    if (findLink(pod, args.ifName)) throw internal(`${dev.kind}: interface "${args.ifName}" already exists in ${args.netns}`);
    const link = createInPod({ creator, pod }, {
      args,
      inPod: dev.linkInContainer,
      kind: dev.kind,
      module: dev.module,
      build: (name, netnsFd) => dev.build(name, master.index, netnsFd),
    });
    undo.push(`the ${dev.kind} device`, undoPodLink(pod, args.ifName));
    let ipam = opts.chained;
    if (!ipam && dev.ipamType) {
      ipam = await delegateAdd(dev.ipamType, args, args.stdinData);
      undo.push("the IPAM reservation", undoIpam(args, dev.ipamType));
      if (!ipam.ips || ipam.ips.length === 0) throw internal("IPAM plugin returned missing IP config");
    }
    return podLinkResult(pod, link, args, ipam, { notify: opts.notify });
  } catch (e) {
    await undo.unwind(args.log);
    throw toCniError(e);
  } finally {
    releaseRtnetlink(host);
    releasePodConn(pod);
  }
}

/**
 * CHECK of a device on a master: IPAM's CHECK, the master still there (unless `checkMaster` is
 * false), the pod interface as prevResult lists it, then `verify` for what only the kind knows.
 */
export async function checkOnMaster(args: CmdArgs, dev: MasterDevice, opts: { checkMaster: boolean; verify: (link: Link) => void }): Promise<void> {
  if (dev.ipamType) await delegateCommand(dev.ipamType, args, "CHECK", args.stdinData);
  const prev = args.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, `${dev.kind}: required prevResult missing`);
  const pod = openPodConn(args.netns);
  const host = dev.linkInContainer ? null : hostRtnetlink();
  try {
    if (opts.checkMaster) dev.master(host ?? pod, masterWhere(dev, args));
    opts.verify(checkPodIface(pod, args, { prev, kind: dev.kind }));
  } finally {
    releaseRtnetlink(host);
    releasePodConn(pod);
  }
}
