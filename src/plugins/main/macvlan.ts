/**
 * macvlan: a macvlan device on a host interface (the master), born inside the pod's namespace
 * (IFLA_NET_NS_FD on create, the parent as IFLA_LINK in the host), named CNI_IFNAME and configured
 * from IPAM. Accepts the reference plugin's keys: master, mode, mtu, mac, linkInContainer,
 * bcqueuelen.
 */

import { delegateAdd, delegateCommand } from "../../invoke/delegate.ts";
import { NetlinkConn } from "../../netlink/conn.ts";
import { encodeLink, type LinkMessage } from "../../netlink/link.ts";
import { MACVLAN_MODE } from "../../netlink/link_kind.ts";
import { findLink, type Link } from "../../net/link.ts";
import { parseMAC } from "../../net/mac.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { checkMasterName, checkPodIface, confString, createInPod, ipamTypeOf, defaultRouteIface, podLinkResult } from "../common/link-pod.ts";
import { delVethPod, openPodConn, passToIPAM, undoAdd } from "../common/veth-pod.ts";
import { loadCniArgs } from "../../spec/args.ts";
import { CniError, ErrorCode, toCniError } from "../../spec/error.ts";
import type { NetConf } from "../../spec/netconf.ts";
import type { Result } from "../../spec/result.ts";
import { validateIfName } from "../../spec/validate.ts";

/** macvlan modes by the names the reference's `mode` key takes. */
export type MacvlanModeName = "bridge" | "private" | "vepa" | "passthru";

/** The macvlan plugin's settings, as the reference names them. */
export interface MacvlanConf {
  /** The parent interface; absent: the interface of the default route. */
  master?: string;
  mode: MacvlanModeName;
  /** 0: the kernel's default (the master's MTU). */
  mtu: number;
  /** Lowercase "aa:bb:cc:dd:ee:ff": from `mac`, CNI_ARGS MAC or runtimeConfig.mac (last wins). */
  mac?: string;
  /** Look the master up inside the pod's namespace and create the device there. */
  linkInContainer: boolean;
  ipamType?: string;
}

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);
const internal = (msg: string) => new CniError(ErrorCode.Internal, msg);

function checkMac(mac: unknown, from: string): string {
  if (typeof mac !== "string" || !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac)) {
    throw invalid(`macvlan: invalid MAC address ${JSON.stringify(mac)} (from ${from})`);
  }
  return mac.toLowerCase();
}

/** Parse and check the config (without looking at the kernel); refuses what cnikit cannot do. */
export function parseMacvlanConf(conf: NetConf, cniArgs = ""): MacvlanConf {
  const master = confString("macvlan", conf, "master");
  if (master !== undefined) checkMasterName("macvlan", master);
  const mode = confString("macvlan", conf, "mode") ?? "bridge";
  if (!Object.hasOwn(MACVLAN_MODE, mode) || mode === "source") {
    throw invalid(`macvlan: unknown macvlan mode: ${JSON.stringify(mode)} (bridge, private, vepa or passthru)`);
  }
  let mtu = 0;
  if (conf.mtu !== undefined && conf.mtu !== null) {
    if (typeof conf.mtu !== "number" || !Number.isInteger(conf.mtu) || conf.mtu < 0 || (conf.mtu > 0 && conf.mtu < 68)) {
      throw invalid(`macvlan: invalid MTU ${JSON.stringify(conf.mtu)}`);
    }
    mtu = conf.mtu;
  }
  const linkInContainer = conf.linkInContainer ?? false;
  if (typeof linkInContainer !== "boolean") throw invalid("macvlan: 'linkInContainer' must be true or false");
  const bcq = conf.bcqueuelen;
  if (bcq !== undefined && bcq !== null) {
    if (typeof bcq !== "number" || !Number.isInteger(bcq) || bcq < 0) throw invalid(`macvlan: invalid bcqueuelen ${JSON.stringify(bcq)}`);
    if (bcq !== 0) {
      throw new CniError(ErrorCode.UnsupportedField, "macvlan: bcqueuelen is not supported yet (cnikit's link encoder has no IFLA_MACVLAN_BC_QUEUE_LEN); leave it out or set 0 for the kernel's default");
    }
  }
  const out: MacvlanConf = { mode: mode as MacvlanModeName, mtu, linkInContainer };
  if (master !== undefined) out.master = master;
  // as the reference: the config's mac, then CNI_ARGS MAC, then runtimeConfig.mac
  let mac: string | undefined;
  const confMac = confString("macvlan", conf, "mac");
  if (confMac !== undefined) mac = checkMac(confMac, "'mac'");
  if (cniArgs) {
    const a = loadCniArgs(cniArgs.includes("IgnoreUnknown") ? cniArgs : `IgnoreUnknown=1;${cniArgs}`, ["MAC"]);
    if (a.MAC) mac = checkMac(a.MAC, "CNI_ARGS");
  }
  const rtMac = conf.runtimeConfig?.mac;
  if (rtMac !== undefined && rtMac !== null && rtMac !== "") mac = checkMac(rtMac, "runtimeConfig");
  if (mac !== undefined) out.mac = mac;
  const ipamType = conf.ipam?.type;
  if (ipamType !== undefined && ipamType !== "") {
    if (typeof ipamType !== "string") throw invalid("macvlan: ipam.type must be a string");
    out.ipamType = ipamType;
  }
  return out;
}

/** What `buildMacvlanLink` puts in the request. */
export interface MacvlanLinkSpec {
  name: string;
  /** The master's ifindex (in the namespace the request is sent in). */
  parent: number;
  mode: MacvlanModeName;
  mtu?: number;
  mac?: string;
  /** Create the device inside the namespace of this open file. */
  netnsFd?: number;
}

/** The RTM_NEWLINK body (ifinfomsg + attributes) that creates a macvlan device. */
export function buildMacvlanLink(spec: MacvlanLinkSpec): Uint8Array {
  const m: LinkMessage = {
    name: spec.name,
    link: spec.parent,
    info: { kind: "macvlan", macvlan: { mode: MACVLAN_MODE[spec.mode] } },
  };
  if (spec.mtu) m.mtu = spec.mtu;
  if (spec.mac) m.address = parseMAC(spec.mac);
  if (spec.netnsFd !== undefined) m.netnsFd = spec.netnsFd;
  return encodeLink(m);
}


/** The master link: named, or the default route's interface; code 7 when there is none. */
function resolveMaster(conn: NetlinkConn, conf: MacvlanConf, where: string): Link {
  const name = conf.master ?? defaultRouteIface(conn);
  if (!name) throw invalid(`macvlan: no 'master' given and no default route interface found in ${where}`);
  const link = findLink(conn, name);
  if (!link) throw invalid(`macvlan: master "${name}" not found in ${where}`);
  if (conf.mtu > link.mtu) throw invalid(`macvlan: invalid MTU ${conf.mtu}, must be [0, master MTU(${link.mtu})]`);
  return link;
}



async function add(args: CmdArgs): Promise<Result> {
  const conf = parseMacvlanConf(args.config, args.args);
  validateIfName(args.ifName);
  const pod = openPodConn(args.netns);
  const host = conf.linkInContainer ? null : NetlinkConn.open();
  let vethCreated = false;
  let ipamDone = false;
  try {
    const creator = host ?? pod;
    const master = resolveMaster(creator, conf, conf.linkInContainer ? args.netns : "the host namespace");
    if (findLink(pod, args.ifName)) throw internal(`macvlan: interface "${args.ifName}" already exists in ${args.netns}`);
    const link = createInPod({ creator, pod }, { args, inPod: conf.linkInContainer, kind: "macvlan", module: "macvlan", build: (name, netnsFd) =>
      buildMacvlanLink({
        name,
        parent: master.index,
        mode: conf.mode,
        ...(conf.mtu ? { mtu: conf.mtu } : {}),
        ...(conf.mac ? { mac: conf.mac } : {}),
        ...(netnsFd !== undefined ? { netnsFd } : {}),
      }) });
    vethCreated = true;
    let ipam: Result | undefined;
    if (conf.ipamType) {
      ipam = await delegateAdd(conf.ipamType, args, args.stdinData);
      ipamDone = true;
      if (!ipam.ips || ipam.ips.length === 0) throw internal("IPAM plugin returned missing IP config");
    }
    return podLinkResult(pod, link, args, ipam, { notify: true });
  } catch (e) {
    await undoAdd(args, { pod, vethCreated, ipamType: conf.ipamType, ipamDone });
    throw toCniError(e);
  } finally {
    host?.close();
    pod.close();
  }
}

/** IPAM DEL, then the device in the pod; fine when the device or the namespace is gone. */
async function del(args: CmdArgs): Promise<void> {
  await delVethPod(args, ipamTypeOf(args.config));
}


async function check(args: CmdArgs): Promise<void> {
  const conf = parseMacvlanConf(args.config, args.args);
  if (conf.ipamType) await delegateCommand(conf.ipamType, args, "CHECK", args.stdinData);
  const prev = args.prevResult;
  if (!prev) throw invalid("macvlan: required prevResult missing");
  const pod = openPodConn(args.netns);
  const host = conf.linkInContainer ? null : NetlinkConn.open();
  try {
    resolveMaster(host ?? pod, { ...conf, mtu: 0 }, conf.linkInContainer ? args.netns : "the host namespace");
    const link = checkPodIface(pod, args, { prev, kind: "macvlan" });
    const mode = link.raw.info?.macvlan?.mode;
    if (mode !== MACVLAN_MODE[conf.mode]) {
      const have = Object.entries(MACVLAN_MODE).find(([, v]) => v === mode)?.[0] ?? String(mode);
      throw internal(`macvlan: container macvlan mode ${have} does not match expected value: ${conf.mode}`);
    }
  } finally {
    host?.close();
    pod.close();
  }
}

async function gcOrStatus(args: CmdArgs): Promise<void> {
  await passToIPAM(args, ipamTypeOf(args.config));
}

/** The macvlan plugin. */
export const macvlan: Plugin = { add, del, check, gc: gcOrStatus, status: gcOrStatus };
export default macvlan;
