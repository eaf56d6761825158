/**
 * What the link plugins that create a device on a master (macvlan, ipvlan, vlan) share: finding
 * the default route's interface, creating the device inside the pod under CNI_IFNAME, the
 * neighbour-notification sysctls, the ADD result, and checking a pod interface against prevResult.
 */

import { NetlinkConn } from "../../netlink/conn.ts";
import { NLM_F_CREATE, NLM_F_EXCL } from "../../netlink/message.ts";
import { RTM_NEWLINK } from "../../netlink/rtnl.ts";
import { listAddresses } from "../../net/addr.ts";
import { deleteLink, findLink, getLink, setLink, type Link } from "../../net/link.ts";
import { configureIface } from "../../net/ipconfig.ts";
import { listRoutes } from "../../net/route.ts";
import { setSysctl } from "../../net/sysctl.ts";
import type { CmdArgs } from "../../skel/plugin.ts";
import { openNetns } from "../../sys/netns.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import { formatCIDR, formatIP, parseCIDR, parseIP } from "../../spec/ip.ts";
import type { Result } from "../../spec/result.ts";
import { randomVethName } from "./veth-pod.ts";

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
  const out: Result = { cniVersion: "1.1.0", interfaces: [{ name: args.ifName, mac: link.mac, sandbox: args.netns }] };
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
