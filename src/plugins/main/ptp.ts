/**
 * ptp: a veth pair per pod and no bridge. The pod end is born inside the pod's namespace and gets
 * the IPAM addresses; the host end gets each IPAM gateway as a /32 (/128) and a host route to the
 * pod's address, so the host routes between pods. Accepts the reference plugin's keys and leaves
 * the same state behind.
 */

import { delegateAdd, delegateCommand } from "../../invoke/delegate.ts";
import { RT_SCOPE_HOST, RT_SCOPE_LINK } from "../../netlink/addr.ts";
import { NetlinkConn } from "../../netlink/conn.ts";
import { hostRtnetlink, releaseRtnetlink } from "../../net/rtnetlink.ts";
import { addAddress, listAddresses } from "../../net/addr.ts";
import { configureIface } from "../../net/ipconfig.ts";
import { findLink, getLink, type Link, setLink } from "../../net/link.ts";
import { addRoute, deleteRoute, listRoutes } from "../../net/route.ts";
import { getSysctl, setSysctl } from "../../net/sysctl.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { UndoStack } from "../../skel/undo.ts";
import { normCIDR } from "../common/link-pod.ts";
import { cleanupAll, createPodVeth, delVethPod, dnsOf, openPodConn, passToIPAM, releasePodConn, undoIpam, undoPodLink } from "../common/veth-pod.ts";
import { addMasq, delMasq, ipMasqShape, masqAddressesOf } from "../common/ipmasq.ts";
import { hasField, mtuCodec } from "../common/conf.ts";
import { pluginConf } from "../../skel/conf.ts";
import { object } from "../../spec/decode.ts";
import { CniError, ErrorCode, toCniError } from "../../spec/error.ts";
import { formatCIDR, formatIP, networkOf, parseCIDR, parseIP } from "../../spec/ip.ts";
import { netConfShape } from "../../spec/netconf.ts";
import type { IPConfig, Result } from "../../spec/result.ts";
import { validateIfName } from "../../spec/validate.ts";
import { CURRENT_VERSION } from "../../spec/version.ts";

/** The ptp plugin's settings, as the reference names them. */
export interface PtpConf {
  mtu?: number;
  /** "" only on DEL, when the config names no IPAM type. */
  ipamType: string;
  ipMasq: boolean;
}

/** The ptp plugin's config as the reference decodes it (its `NetConf`). */
export const ptpCodec = object({ ...netConfShape, ...ipMasqShape, mtu: mtuCodec });

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);
const internal = (msg: string) => new CniError(ErrorCode.Internal, msg);

/**
 * Decode and check the config. On DEL nothing but the keys' types matters (leniently: what does
 * not decode is dropped; no IPAM type means no IPAM DEL), and an `ipMasq` that did not decode
 * counts as on, so that the pod's masquerading still goes.
 */
export function parsePtpConf(args: CmdArgs): PtpConf {
  const forDel = args.command === "DEL";
  const d = pluginConf(args, ptpCodec, "ptp");
  const ipamType = d.ipam?.type ?? "";
  if (!ipamType && !forDel) throw invalid("ptp: 'ipam' with a 'type' is required");
  const out: PtpConf = { ipamType, ipMasq: d.ipMasq ?? (forDel && hasField(ptpCodec, args.config, "ipMasq")) };
  if (d.mtu) out.mtu = d.mtu;
  return out;
}

/** One IPAM address with its gateway, parsed and checked. */
interface PodAddr {
  /** "10.1.2.3/24" as IPAM gave it. */
  cidr: string;
  /** The address alone, "10.1.2.3". */
  ip: string;
  /** The subnet, "10.1.2.0/24". */
  subnet: string;
  /** The gateway, which goes on the host end. */
  gw: string;
  /** 32 or 128. */
  bits: number;
}

function podAddrs(ips: readonly IPConfig[]): PodAddr[] {
  return ips.map((ipc) => {
    const net = parseCIDR(ipc.address);
    if (!net) throw internal(`ptp: IPAM returned an invalid address ${JSON.stringify(ipc.address)}`);
    const gw = ipc.gateway === undefined ? null : parseIP(ipc.gateway);
    if (!gw) throw internal(`ptp: IPAM returned no gateway for ${ipc.address}; ptp puts the gateway on the host end of the veth, so it needs one`);
    if (gw.length !== net.ip.length) throw internal(`ptp: gateway ${ipc.gateway} and address ${ipc.address} are of different families`);
    return {
      cidr: ipc.address,
      ip: formatIP(net.ip),
      subnet: formatCIDR(networkOf(net)),
      gw: formatIP(gw),
      bits: net.ip.length * 8,
    };
  });
}

/** Turn forwarding on for each family in use, writing only when it is off. */
function enableForwarding(addrs: readonly PodAddr[]): void {
  const keys = new Set(addrs.map((a) => (a.bits === 32 ? "net.ipv4.ip_forward" : "net.ipv6.conf.all.forwarding")));
  for (const key of keys) {
    if (getSysctl(key) !== "1") setSysctl(key, "1");
  }
}

/**
 * Inside the pod: the IPAM addresses and routes, then (as the reference) the kernel's prefix route
 * replaced by a link route to the gateway and a route to the subnet via the gateway, so every
 * packet goes through the host end.
 */
function configurePod(pod: NetlinkConn, ifName: string, addrs: readonly PodAddr[], ipam: Result): Link {
  const link = getLink(pod, ifName);
  const ips = addrs.map((a) => ({ address: a.cidr, gateway: a.gw }));
  configureIface(pod, link.index, { ips, routes: ipam.routes ?? [] });
  for (const a of addrs) {
    deleteRoute(pod, { dst: a.subnet, link: link.index }); // gone already (a /32) is fine
    addRoute(pod, { dst: `${a.gw}/${a.bits}`, link: link.index, scope: RT_SCOPE_LINK, src: a.ip }, { existOk: true });
    addRoute(pod, { dst: a.subnet, gateway: a.gw, link: link.index, src: a.ip }, { existOk: true });
  }
  return link;
}

/** On the host: the gateway addresses on the host end and a host route to each pod address. */
function configureHost(host: NetlinkConn, index: number, addrs: readonly PodAddr[]): void {
  for (const a of addrs) {
    addAddress(host, { link: index, address: `${a.gw}/${a.bits}`, nodad: a.bits === 128 }, { existOk: true });
    addRoute(host, { dst: `${a.ip}/${a.bits}`, link: index, scope: RT_SCOPE_HOST }, { existOk: true });
  }
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parsePtpConf(args);
  validateIfName(args.ifName);
  const pod = openPodConn(args.netns);
  const host = hostRtnetlink();
  const undo = new UndoStack();
  try {
    if (findLink(pod, args.ifName)) {
      throw internal(`container veth name "${args.ifName}" already exists in ${args.netns}`);
    }
    const ipam = await delegateAdd(conf.ipamType, args, args.stdinData);
    undo.push("the IPAM reservation", undoIpam(args, conf.ipamType));
    if (!ipam.ips || ipam.ips.length === 0) throw internal("IPAM plugin returned missing IP config");
    const addrs = podAddrs(ipam.ips);
    enableForwarding(addrs);

    const hostEnd = createPodVeth(host, args, { mtu: conf.mtu });
    undo.push("the veth pair", undoPodLink(pod, args.ifName));
    setLink(host, hostEnd.index, { up: true });
    // the links as read when made: neither name nor MAC changes after
    const podLink = configurePod(pod, args.ifName, addrs, ipam);
    configureHost(host, hostEnd.index, addrs);

    const out: Result = {
      cniVersion: CURRENT_VERSION,
      interfaces: [
        { name: hostEnd.name, mac: hostEnd.mac },
        { name: args.ifName, mac: podLink.mac, sandbox: args.netns },
      ],
      ips: ipam.ips.map((ip) => ({ ...ip, interface: 1 })),
    };
    if (ipam.routes && ipam.routes.length > 0) out.routes = ipam.routes;
    if (conf.ipMasq) {
      const masq = ipam.ips.map((i) => i.address);
      undo.push("masquerading", () => delMasq(masq)); // before: a half-applied addMasq is undone too
      addMasq(masq);
    }
    const dns = dnsOf(args, ipam);
    if (dns) out.dns = dns;
    return out;
  } catch (e) {
    // leave nothing half-done: masquerading, the pod end (the host end goes with it), the reservation
    await undo.unwind(args.log);
    throw toCniError(e);
  } finally {
    releaseRtnetlink(host);
    releasePodConn(pod);
  }
}

/** IPAM DEL, the veth and masquerading, each even when another fails; addresses read before the veth goes. */
async function del(args: CmdArgs): Promise<void> {
  const conf = parsePtpConf(args);
  const masq = conf.ipMasq ? masqAddressesOf(args) : [];
  await cleanupAll(args, [() => delVethPod(args, conf.ipamType), () => delMasq(masq)]);
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parsePtpConf(args);
  const pod = openPodConn(args.netns);
  const host = hostRtnetlink();
  try {
    await delegateCommand(conf.ipamType, args, "CHECK", args.stdinData);
    const prev = args.prevResult;
    if (!prev) throw invalid("ptp: required prevResult missing");
    const ifaces = prev.interfaces ?? [];
    const ci = ifaces.findIndex((i) => i.name === args.ifName && i.sandbox === args.netns);
    if (ci < 0) throw internal(`ptp: interface ${args.ifName} in ${args.netns} not found in prevResult`);
    const want = ifaces[ci]!;
    const podLink = findLink(pod, args.ifName);
    if (!podLink) throw internal(`ptp: container interface ${args.ifName} not found in ${args.netns}`);
    if (podLink.kind !== "veth") throw internal(`ptp: container interface ${args.ifName} is not a veth`);
    if (want.mac && podLink.mac !== want.mac.toLowerCase()) {
      throw internal(`ptp: interface ${args.ifName} has MAC ${podLink.mac}, prevResult says ${want.mac}`);
    }
    const have = listAddresses(pod, { link: podLink.index }).map((a) => a.cidr);
    for (const ip of prev.ips ?? []) {
      if (ip.interface !== undefined && ip.interface !== ci) continue;
      if (!have.includes(normCIDR(ip.address))) throw internal(`ptp: ${args.ifName} lacks address ${ip.address}`);
    }
    const routes = listRoutes(pod, { table: 0 }) // any table: sbr may have moved them;
    for (const r of prev.routes ?? []) {
      const dst = normCIDR(r.dst);
      const gw = r.gw ? formatIP(parseIP(r.gw) ?? new Uint8Array()) : undefined;
      if (!routes.some((x) => x.dst === dst && (!gw || x.gateway === gw))) {
        throw internal(`ptp: route to ${r.dst}${r.gw ? ` via ${r.gw}` : ""} is missing in ${args.netns}`);
      }
    }
    // the host end: a veth carrying each gateway
    const hostWant = ifaces.find((i, k) => k !== ci && !i.sandbox);
    if (hostWant) {
      const hv = findLink(host, hostWant.name);
      if (!hv || hv.kind !== "veth") throw internal(`ptp: host veth ${hostWant.name} is missing or not a veth`);
      const onHost = listAddresses(host, { link: hv.index }).map((a) => a.cidr);
      for (const ip of prev.ips ?? []) {
        if (!ip.gateway || (ip.interface !== undefined && ip.interface !== ci)) continue;
        const gw = parseIP(ip.gateway);
        if (!gw) continue;
        const cidr = `${formatIP(gw)}/${gw.length * 8}`;
        if (!onHost.includes(cidr)) throw internal(`ptp: host veth ${hv.name} lacks the gateway address ${cidr}`);
      }
    }
  } finally {
    releaseRtnetlink(host);
    releasePodConn(pod);
  }
}

async function gcOrStatus(args: CmdArgs): Promise<void> {
  await passToIPAM(args, parsePtpConf(args).ipamType);
}

/** The ptp plugin. */
export const ptp: Plugin = { add, del, check, gc: gcOrStatus, status: gcOrStatus };
export default ptp;
