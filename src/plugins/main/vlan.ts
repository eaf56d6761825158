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
import { checkPodIface, createInPod, podLinkResult } from "../common/link-pod.ts";
import { ifNameCodec, mtuCodec } from "../common/conf.ts";
import { pluginConf } from "../../skel/conf.ts";
import { bool, i64, object } from "../../spec/decode.ts";
import { delVethPod, openPodConn, passToIPAM, undoAdd } from "../common/veth-pod.ts";
import { CniError, ErrorCode, toCniError } from "../../spec/error.ts";
import { netConfShape } from "../../spec/netconf.ts";
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

/** The vlan plugin's config as the reference decodes it (its `NetConf`). */
export const vlanCodec = object({ ...netConfShape, master: ifNameCodec, vlanId: i64, mtu: mtuCodec, linkInContainer: bool });

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);
const internal = (msg: string) => new CniError(ErrorCode.Internal, msg);

/**
 * Decode and check the config (without looking at the kernel). As the reference, a missing
 * `vlanId` is VLAN 0. On DEL (lenient) only the IPAM type matters: nothing is required.
 */
export function parseVlanConf(args: CmdArgs): VlanConf {
  const d = pluginConf(args, vlanCodec, "vlan");
  const out: VlanConf = { master: d.master ?? "", vlanId: d.vlanId ?? 0, mtu: d.mtu ?? 0, linkInContainer: d.linkInContainer ?? false, ipamType: d.ipam?.type ?? "" };
  if (args.command === "DEL") return out;
  if (!out.master) throw invalid(`vlan: "master" field is required. It specifies the host interface name to create the VLAN for`);
  if (out.vlanId < 0 || out.vlanId > 4094) throw invalid(`vlan: invalid VLAN ID ${out.vlanId} (must be between 0 and 4094 inclusive)`);
  if (!out.ipamType) throw invalid("vlan: 'ipam' with a 'type' is required");
  return out;
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
  const conf = parseVlanConf(args);
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
  await delVethPod(args, parseVlanConf(args).ipamType);
}


async function check(args: CmdArgs): Promise<void> {
  const conf = parseVlanConf(args);
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
  await passToIPAM(args, parseVlanConf(args).ipamType);
}

/** The vlan plugin. */
export const vlan: Plugin = { add, del, check, gc: gcOrStatus, status: gcOrStatus };
export default vlan;
