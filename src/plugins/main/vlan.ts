/**
 * vlan: an 802.1Q VLAN device on a host interface (the master), born inside the pod's namespace
 * (IFLA_NET_NS_FD on create, the parent as IFLA_LINK in the host), named CNI_IFNAME and configured
 * from IPAM. Accepts the reference plugin's keys: master, vlanId, mtu, linkInContainer.
 */

import { delegateAdd, delegateCommand } from "../../invoke/delegate.ts";
import { NetlinkConn } from "../../netlink/conn.ts";
import { encodeLink, type LinkMessage } from "../../netlink/link.ts";
import { findLink, type Link } from "../../net/link.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { checkMasterName, checkPodIface, ipamTypeOf, createInPod, podLinkResult } from "../common/link-pod.ts";
import { delVethPod, openPodConn, passToIPAM, undoAdd } from "../common/veth-pod.ts";
import { CniError, ErrorCode, toCniError } from "../../spec/error.ts";
import type { NetConf } from "../../spec/netconf.ts";
import type { Result } from "../../spec/result.ts";
import { validateIfName } from "../../spec/validate.ts";

/** The vlan plugin's settings, as the reference names them. */
export interface VlanConf {
  master: string;
  /** 802.1Q VLAN id, 0-4094. */
  vlanId: number;
  /** 0: the kernel's default (the master's MTU). */
  mtu: number;
  linkInContainer: boolean;
  ipamType: string;
}

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);
const internal = (msg: string) => new CniError(ErrorCode.Internal, msg);

/** Parse and check the config (without looking at the kernel). */
export function parseVlanConf(conf: NetConf): VlanConf {
  const master = conf.master;
  if (master === undefined || master === null || master === "") {
    throw invalid(`vlan: "master" field is required. It specifies the host interface name to create the VLAN for`);
  }
  if (typeof master !== "string") throw invalid(`vlan: 'master' must be a string, not ${JSON.stringify(master)}`);
  checkMasterName("vlan", master);
  const id = conf.vlanId;
  if (id === undefined || id === null) throw invalid("vlan: 'vlanId' is required (0-4094)");
  if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > 4094) {
    throw invalid(`vlan: invalid VLAN ID ${JSON.stringify(id)} (must be between 0 and 4094 inclusive)`);
  }
  let mtu = 0;
  if (conf.mtu !== undefined && conf.mtu !== null) {
    if (typeof conf.mtu !== "number" || !Number.isInteger(conf.mtu) || conf.mtu < 0 || (conf.mtu > 0 && conf.mtu < 68)) {
      throw invalid(`vlan: invalid MTU ${JSON.stringify(conf.mtu)}`);
    }
    mtu = conf.mtu;
  }
  const linkInContainer = conf.linkInContainer ?? false;
  if (typeof linkInContainer !== "boolean") throw invalid("vlan: 'linkInContainer' must be true or false");
  const ipamType = conf.ipam?.type;
  if (typeof ipamType !== "string" || ipamType === "") throw invalid("vlan: 'ipam' with a 'type' is required");
  return { master, vlanId: id, mtu, linkInContainer, ipamType };
}

/** What `buildVlanLink` puts in the request. */
export interface VlanLinkSpec {
  name: string;
  /** The master's ifindex (in the namespace the request is sent in). */
  parent: number;
  vlanId: number;
  mtu?: number;
  /** Create the device inside the namespace of this open file. */
  netnsFd?: number;
}

/** The RTM_NEWLINK body (ifinfomsg + attributes) that creates an 802.1Q device (IFLA_VLAN_ID only, as the reference). */
export function buildVlanLink(spec: VlanLinkSpec): Uint8Array {
  const m: LinkMessage = {
    name: spec.name,
    link: spec.parent,
    info: { kind: "vlan", vlan: { id: spec.vlanId } },
  };
  if (spec.mtu) m.mtu = spec.mtu;
  if (spec.netnsFd !== undefined) m.netnsFd = spec.netnsFd;
  return encodeLink(m);
}

function resolveMaster(conn: NetlinkConn, conf: VlanConf, where: string): Link {
  const link = findLink(conn, conf.master);
  if (!link) throw invalid(`vlan: master "${conf.master}" not found in ${where}`);
  if (conf.mtu > link.mtu) throw invalid(`vlan: invalid MTU ${conf.mtu}, must be [0, master MTU(${link.mtu})]`);
  return link;
}


async function add(args: CmdArgs): Promise<Result> {
  const conf = parseVlanConf(args.config);
  validateIfName(args.ifName);
  const pod = openPodConn(args.netns);
  const host = conf.linkInContainer ? null : NetlinkConn.open();
  let vethCreated = false;
  let ipamDone = false;
  try {
    const creator = host ?? pod;
    const master = resolveMaster(creator, conf, conf.linkInContainer ? args.netns : "the host namespace");
    if (findLink(pod, args.ifName)) throw internal(`vlan: interface "${args.ifName}" already exists in ${args.netns}`);
    const link = createInPod({ creator, pod }, { args, inPod: conf.linkInContainer, kind: "vlan", module: "8021q", build: (name, netnsFd) =>
      buildVlanLink({
        name,
        parent: master.index,
        vlanId: conf.vlanId,
        ...(conf.mtu ? { mtu: conf.mtu } : {}),
        ...(netnsFd !== undefined ? { netnsFd } : {}),
      }) });
    vethCreated = true;
    const ipam = await delegateAdd(conf.ipamType, args, args.stdinData);
    ipamDone = true;
    if (!ipam.ips || ipam.ips.length === 0) throw internal("IPAM plugin returned missing IP config");
    return podLinkResult(pod, link, args, ipam, { notify: false }); // the reference's vlan sets no notification sysctls
  } catch (e) {
    await undoAdd(args, { pod, vethCreated, ipamType: conf.ipamType, ipamDone });
    throw toCniError(e);
  } finally {
    host?.close();
    pod.close();
  }
}

/** IPAM DEL, then the device in the pod; fine when the device, the namespace or the master is gone. */
async function del(args: CmdArgs): Promise<void> {
  await delVethPod(args, ipamTypeOf(args.config));
}


async function check(args: CmdArgs): Promise<void> {
  const conf = parseVlanConf(args.config);
  await delegateCommand(conf.ipamType, args, "CHECK", args.stdinData);
  const prev = args.prevResult;
  if (!prev) throw invalid("vlan: required prevResult missing");
  const pod = openPodConn(args.netns);
  const host = conf.linkInContainer ? null : NetlinkConn.open();
  try {
    resolveMaster(host ?? pod, { ...conf, mtu: 0 }, conf.linkInContainer ? args.netns : "the host namespace");
    const link = checkPodIface(pod, args, { prev, kind: "vlan" });
    const id = link.raw.info?.vlan?.id;
    if (id !== conf.vlanId) throw internal(`vlan: ${args.ifName} has VLAN id ${id}, the config says ${conf.vlanId}`);
    if (conf.mtu && link.mtu !== conf.mtu) throw internal(`vlan: ${args.ifName} has MTU ${link.mtu}, the config says ${conf.mtu}`);
  } finally {
    host?.close();
    pod.close();
  }
}

async function gcOrStatus(args: CmdArgs): Promise<void> {
  await passToIPAM(args, parseVlanConf(args.config).ipamType);
}

/** The vlan plugin. */
export const vlan: Plugin = { add, del, check, gc: gcOrStatus, status: gcOrStatus };
export default vlan;
