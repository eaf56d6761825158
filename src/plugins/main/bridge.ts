/**
 * bridge: a veth pair per pod, the host end on a Linux bridge, the pod end (born inside the pod's
 * namespace) configured from IPAM. Accepts the reference plugin's keys.
 */

import { delegateAdd, delegateCommand } from "../../invoke/delegate.ts";
import { NetlinkConn } from "../../netlink/conn.ts";
import { hostRtnetlink, releaseRtnetlink } from "../../net/rtnetlink.ts";
import { addAddress, deleteAddress, listAddresses } from "../../net/addr.ts";
import { setBridgePort } from "../../net/bridge-port.ts";
import { ensureBridge } from "../../net/bridge.ts";
import { configureIface } from "../../net/ipconfig.ts";
import { findLink, getLink, setLink, type Link } from "../../net/link.ts";
import { REMOVAL_GROUP } from "../../net/removal.ts";
import { listRoutes } from "../../net/route.ts";
import { setSysctl } from "../../net/sysctl.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { UndoStack } from "../../skel/undo.ts";
import { cleanupAll, createPodVeth, delVethPod, dnsOf, openPodConn, passToIPAM, releasePodConn, undoIpam, undoPodLink } from "../common/veth-pod.ts";
import { addMasq, delMasq, hasMasq, ipMasqShape, masqAddressesOf } from "../common/ipmasq.ts";
import { argsCniCodec, cniArgsMac, hasField, ifNameCodec, mtuCodec, optionalMac } from "../common/conf.ts";
import { pluginConf } from "../../skel/conf.ts";
import { bool, i64, list, object } from "../../spec/decode.ts";
import { netConfShape } from "../../spec/netconf.ts";
import { addMacSpoofCheck, delMacSpoofCheck, hasMacSpoofCheck, sweepMacSpoofChecks } from "../common/macspoof.ts";
import { CniError, ErrorCode, toCniError } from "../../spec/error.ts";
import { containsIP, firstHost, formatIP, networkOf, parseCIDR, parseIP } from "../../spec/ip.ts";
import type { IPConfig, Result, Route } from "../../spec/result.ts";
import { validateIfName } from "../../spec/validate.ts";
import { CURRENT_VERSION } from "../../spec/version.ts";

/** The bridge plugin's settings, as the reference names them. */
export interface BridgeConf {
  bridge: string;
  ipMasq: boolean;
  /** CIDRs whose traffic is not masqueraded (`ipMasqExclude`). */
  ipMasqExclude?: string[];
  macspoofchk: boolean;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  mtu?: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  enabledad: boolean;
  disableContainerInterface: boolean;
  portIsolation: boolean;
  mac?: string;
  ipamType?: string;
}

/** One `vlanTrunk` entry (the reference's `VlanTrunk`). */
const vlanTrunkCodec = object({ minID: i64, maxID: i64, id: i64 });

/** The bridge plugin's config as the reference decodes it (its `NetConf`). */
export const bridgeCodec = object({
  ...netConfShape,
  bridge: ifNameCodec,
  isGateway: bool,
  isDefaultGateway: bool,
  forceAddress: bool,
  ...ipMasqShape,
  mtu: mtuCodec,
  hairpinMode: bool,
  promiscMode: bool,
  vlan: i64,
  vlanTrunk: list(vlanTrunkCodec),
  preserveDefaultVlan: bool,
  macspoofchk: bool,
  enabledad: bool,
  disableContainerInterface: bool,
  portIsolation: bool,
  args: argsCniCodec,
  runtimeConfig: object({ mac: optionalMac }),
});

const unsupported = (msg: string) => new CniError(ErrorCode.UnsupportedField, msg);
const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);

/**
 * Decode and check the config; refuses what cnikit cannot do yet instead of ignoring it. On DEL
 * nothing but the keys' types matters (leniently: what does not decode is dropped), and an
 * `ipMasq` or `macspoofchk` that did not decode counts as on, so that their elements still go.
 */
export function parseBridgeConf(args: CmdArgs): BridgeConf {
  const forDel = args.command === "DEL";
  const d = pluginConf(args, bridgeCodec, "bridge");
  const undecoded = (key: string) => forDel && hasField(bridgeCodec, args.config, key);
  const out: BridgeConf = {
    bridge: d.bridge ?? "cni0",
    ipMasq: d.ipMasq ?? undecoded("ipMasq"),
    macspoofchk: d.macspoofchk ?? undecoded("macspoofchk"),
    isGateway: (d.isGateway ?? false) || (d.isDefaultGateway ?? false),
    isDefaultGateway: d.isDefaultGateway ?? false,
    forceAddress: d.forceAddress ?? false,
    hairpinMode: d.hairpinMode ?? false,
    promiscMode: d.promiscMode ?? false,
    enabledad: d.enabledad ?? false,
    disableContainerInterface: d.disableContainerInterface ?? false,
    portIsolation: d.portIsolation ?? false,
  };
  if (d.mtu) out.mtu = d.mtu;
  const exclude = (d.ipMasqExclude ?? []).filter((c) => parseCIDR(c) !== undefined);
  if (exclude.length > 0) out.ipMasqExclude = exclude;
  if (d.ipam?.type) out.ipamType = d.ipam.type;
  if (forDel) return out;
  if (out.bridge === "") throw invalid(`bridge: "bridge" must name the bridge, not be empty`);
  const badExclude = (d.ipMasqExclude ?? []).find((c) => parseCIDR(c) === undefined);
  if (badExclude !== undefined) throw invalid(`bridge: ipMasqExclude ${JSON.stringify(badExclude)} is not an address/prefix`);
  if (d.vlan) throw unsupported(`bridge: vlan=${d.vlan} is not supported yet (bridge VLAN filtering)`);
  if (d.vlanTrunk && d.vlanTrunk.length > 0) throw unsupported("bridge: vlanTrunk is not supported yet (bridge VLAN filtering)");
  if (out.ipamType && out.disableContainerInterface) throw invalid("bridge: cannot use IPAM when disableContainerInterface is set");
  // as the reference: CNI_ARGS MAC, then args.cni.mac, then runtimeConfig.mac
  const mac = d.runtimeConfig?.mac || d.args?.cni?.mac || cniArgsMac(args.args, "bridge");
  if (mac) out.mac = mac;
  return out;
}

/** Put `gw/prefix` on the bridge, as the reference's ensureAddr does. */
function ensureGatewayAddr(conn: NetlinkConn, br: Link, cidr: string, force: boolean): void {
  const want = parseCIDR(cidr)!;
  const v6 = want.ip.length === 16;
  for (const a of listAddresses(conn, { link: br.index, family: v6 ? 6 : 4 })) {
    if (a.cidr === cidr) return;
    if (v6 && a.net.ip[0] === 0xfe && (a.net.ip[1]! & 0xc0) === 0x80) continue; // link-local
    if (!v6 || containsIP(networkOf(a.net), want.ip) || containsIP(networkOf(want), a.net.ip)) {
      if (!force) throw new CniError(ErrorCode.Internal, `"${br.name}" already has an IP address different from ${cidr}`);
      deleteAddress(conn, { link: br.index, address: a.cidr });
    }
  }
  addAddress(conn, { link: br.index, address: cidr, nodad: v6 }, { existOk: true });
}

/** The bridge, created when missing and brought up (no DAD on its first start), promiscuous when asked. */
function setUpBridge(host: NetlinkConn, conf: BridgeConf): Link {
  let br = ensureBridge(host, conf.bridge, { ...(conf.mtu ? { mtu: conf.mtu } : {}), up: false });
  if (!br.up) {
    // Before the bridge first comes up: no DAD for its IPv6 link-local address. While that
    // address is tentative the kernel sends no neighbour solicitation for packets it routes into
    // the bridge, so traffic from the host or another node to a new pod waits ~2 s.
    try {
      setSysctl(`net/ipv6/conf/${conf.bridge}/accept_dad`, 0);
    } catch {
      // IPv6 disabled on this host: nothing to wait for
    }
    setLink(host, br.index, { up: true });
    br = getLink(host, br.index);
  }
  if (conf.promiscMode && !br.promisc) setLink(host, br.index, { promisc: true });
  return br;
}

/** The veth pair: the pod end CNI_IFNAME in the pod (code 999 when the name is taken there), the host end in the host. */
function attachVeth(conns: { host: NetlinkConn; pod: NetlinkConn }, args: CmdArgs, conf: BridgeConf): Link {
  const { host, pod } = conns;
  if (findLink(pod, args.ifName)) {
    throw new CniError(ErrorCode.Internal, `container veth name "${args.ifName}" already exists in ${args.netns}`);
  }
  return createPodVeth(host, args, { mtu: conf.mtu, mac: conf.mac });
}

/** Put the host end on the bridge, up, with hairpin mode and port isolation as configured. */
function plugIntoBridge(host: NetlinkConn, conf: BridgeConf, hostEnd: Link, br: Link): void {
  setLink(host, hostEnd.index, { master: br.index, up: true });
  if (conf.hairpinMode || conf.portIsolation) {
    setBridgePort(host, hostEnd.index, {
      ...(conf.hairpinMode ? { hairpin: true } : {}),
      ...(conf.portIsolation ? { isolated: true } : {}),
    });
  }
}

/**
 * The pod's addresses (on interface 2 of the result) and routes from IPAM's result: with
 * isGateway a missing gateway is the subnet's first address, with isDefaultGateway a default
 * route per family through it.
 */
function podIPConfig(ipam: Result, conf: BridgeConf): { ips: IPConfig[]; routes: Route[] } {
  const ips = (ipam.ips ?? []).map((ip) => {
    const out = { ...ip, interface: 2 };
    if (!out.gateway && conf.isGateway) {
      out.gateway = formatIP(firstHost(parseCIDR(ip.address)!));
    }
    return out;
  });
  const routes: Route[] = [...(ipam.routes ?? [])];
  if (conf.isDefaultGateway) {
    for (const fam of [4, 6]) {
      const gw = ips.find((i) => (i.address.includes(":") ? 6 : 4) === fam && i.gateway)?.gateway;
      const dst = fam === 4 ? "0.0.0.0/0" : "::/0";
      if (gw && !routes.some((r) => r.dst === dst)) routes.push({ dst, gw });
    }
  }
  return { ips, routes };
}

/** The gateways' addresses on the bridge, forwarding on, and the bridge's MAC pinned. */
function becomeGateway(host: NetlinkConn, conf: BridgeConf, br: Link, ips: readonly IPConfig[]): void {
  for (const ip of ips) {
    if (!ip.gateway) continue;
    const prefix = ip.address.split("/")[1];
    ensureGatewayAddr(host, br, `${ip.gateway}/${prefix}`, conf.forceAddress);
    setSysctl(ip.gateway.includes(":") ? "net.ipv6.conf.all.forwarding" : "net.ipv4.ip_forward", "1");
  }
  // pin the bridge's MAC so it does not follow the lowest port's address as pods come and go
  setLink(host, br.index, { mac: br.mac });
}

/**
 * ADD in named steps; each step that changes the host or the pod pushes its undo, and a failure
 * takes back everything done so far (masquerading, the MAC check, the veth, the reservation).
 */
async function add(args: CmdArgs): Promise<Result> {
  const conf = parseBridgeConf(args);
  validateIfName(args.ifName);
  const host = hostRtnetlink();
  const pod = openPodConn(args.netns);
  const undo = new UndoStack();
  try {
    let br = setUpBridge(host, conf);
    const hostEnd = attachVeth({ host, pod }, args, conf);
    undo.push("the veth pair", undoPodLink(pod, args.ifName));
    // hostEnd as read when made: neither its name nor its MAC changes on the bridge
    plugIntoBridge(host, conf, hostEnd, br);

    let ipam: Result = { cniVersion: CURRENT_VERSION };
    if (conf.ipamType) {
      ipam = await delegateAdd(conf.ipamType, args, args.stdinData);
      undo.push("the IPAM reservation", undoIpam(args, conf.ipamType));
      if (!ipam.ips || ipam.ips.length === 0) throw new CniError(ErrorCode.Internal, "IPAM plugin returned missing IP config");
    }
    const { ips, routes } = podIPConfig(ipam, conf);
    if (!conf.disableContainerInterface) configureIface(pod, args.ifName, { ips, routes }, { dad: conf.enabledad });
    if (conf.isGateway) becomeGateway(host, conf, br, ips);
    if (conf.ipMasq && ips.length > 0) {
      const masq = ips.map((i) => i.address);
      undo.push("masquerading", () => delMasq(masq, conf.ipMasqExclude)); // before: a half-applied addMasq is undone too
      addMasq(masq, conf.ipMasqExclude);
    }
    br = getLink(host, br.index);
    const podLink = getLink(pod, args.ifName);
    if (conf.macspoofchk) {
      undo.push("the MAC spoof check", () => delMacSpoofCheck(hostEnd.name, podLink.mac));
      addMacSpoofCheck(hostEnd.name, podLink.mac);
    }
    const out: Result = {
      cniVersion: CURRENT_VERSION,
      interfaces: [
        { name: br.name, mac: br.mac },
        { name: hostEnd.name, mac: hostEnd.mac },
        { name: args.ifName, mac: podLink.mac, sandbox: args.netns },
      ],
    };
    if (ips.length > 0) out.ips = ips;
    if (routes.length > 0) out.routes = routes;
    const dns = dnsOf(args, ipam);
    if (dns) out.dns = dns;
    return out;
  } catch (e) {
    await undo.unwind(args.log);
    throw toCniError(e);
  } finally {
    releaseRtnetlink(host);
    releasePodConn(pod);
  }
}

/**
 * IPAM DEL and the veth, masquerading and the MAC spoof check: each step runs even when another
 * fails. The pod's addresses (for masquerading) are read before the veth goes.
 */
async function del(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConf(args);
  const masq = conf.ipMasq ? masqAddressesOf(args) : [];
  await cleanupAll(args, [
    () => delVethPod(args, conf.ipamType),
    () => delMasq(masq, conf.ipMasqExclude),
    () => {
      if (!conf.macspoofchk) return;
      const ifs = args.prevResult?.interfaces ?? [];
      const hostEnd = ifs.find((i, k) => k > 0 && !i.sandbox && i.name !== conf.bridge);
      const podEnd = ifs.find((i) => i.sandbox && i.name === args.ifName);
      if (hostEnd && podEnd?.mac) delMacSpoofCheck(hostEnd.name, podEnd.mac);
      // and any check whose port is gone (a DEL without a cached result)
      const host = hostRtnetlink();
      try {
        // a port waiting for the daemon's batched removal (src/net/removal.ts) counts as gone
        sweepMacSpoofChecks((port) => {
          const l = findLink(host, port);
          return l !== null && l.raw.group !== REMOVAL_GROUP;
        });
      } finally {
        releaseRtnetlink(host);
      }
    },
  ]);
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConf(args);
  const prev = args.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, "bridge: required prevResult missing");
  if (conf.ipamType) await delegateCommand(conf.ipamType, args, "CHECK", args.stdinData);
  const host = hostRtnetlink();
  const pod = openPodConn(args.netns);
  try {
    const ifaces = prev.interfaces ?? [];
    const ci = ifaces.findIndex((i) => i.name === args.ifName && i.sandbox === args.netns);
    if (ci < 0) throw new CniError(ErrorCode.Internal, `bridge: interface ${args.ifName} in ${args.netns} not found in prevResult`);
    const br = findLink(host, conf.bridge);
    if (!br || br.kind !== "bridge") throw new CniError(ErrorCode.Internal, `bridge: ${conf.bridge} is missing or not a bridge`);
    const podLink = findLink(pod, args.ifName);
    if (!podLink) throw new CniError(ErrorCode.Internal, `bridge: container interface ${args.ifName} not found`);
    const want = ifaces[ci]!;
    if (want.mac && podLink.mac !== want.mac.toLowerCase()) {
      throw new CniError(ErrorCode.Internal, `bridge: ${args.ifName} has MAC ${podLink.mac}, expected ${want.mac}`);
    }
    const hostWant = ifaces.find((i, k) => k !== ci && !i.sandbox && i.name !== conf.bridge);
    if (hostWant) {
      const hv = findLink(host, hostWant.name);
      if (!hv || hv.master !== br.index) throw new CniError(ErrorCode.Internal, `bridge: host veth ${hostWant.name} is missing or not on ${conf.bridge}`);
    }
    const have = listAddresses(pod, { link: podLink.index }).map((a) => a.cidr);
    for (const ip of prev.ips ?? []) {
      if (ip.interface !== undefined && ip.interface !== ci) continue;
      const norm = `${formatIP(parseIP(ip.address.split("/")[0]!)!)}/${ip.address.split("/")[1]}`;
      if (!have.includes(norm)) throw new CniError(ErrorCode.Internal, `bridge: ${args.ifName} lacks address ${ip.address}`);
    }
    // any table: a later plugin (sbr) may have moved the routes out of main
    const routes = listRoutes(pod, { table: 0 });
    for (const r of prev.routes ?? []) {
      const found = routes.some((x) => x.dst === r.dst && (!r.gw || x.gateway === r.gw));
      if (!found) throw new CniError(ErrorCode.Internal, `bridge: route to ${r.dst}${r.gw ? ` via ${r.gw}` : ""} is missing in ${args.netns}`);
    }
    if (conf.macspoofchk && hostWant && want.mac && !hasMacSpoofCheck(hostWant.name, want.mac.toLowerCase())) {
      throw new CniError(ErrorCode.Internal, `bridge: no MAC spoof check for ${hostWant.name} (macspoofchk)`);
    }
    if (conf.ipMasq) {
      for (const ip of prev.ips ?? []) {
        if ((ip.interface === undefined || ip.interface === ci) && !hasMasq(ip.address)) {
          throw new CniError(ErrorCode.Internal, `bridge: ${ip.address} is not masqueraded (ipMasq)`);
        }
      }
    }
  } finally {
    releaseRtnetlink(host);
    releasePodConn(pod);
  }
}

async function gcOrStatus(args: CmdArgs): Promise<void> {
  await passToIPAM(args, parseBridgeConf(args).ipamType);
}

/** The bridge plugin. */
export const bridge: Plugin = { add, del, check, gc: gcOrStatus, status: gcOrStatus };
export default bridge;
