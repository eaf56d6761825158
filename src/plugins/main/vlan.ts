/**
 * vlan: an 802.1Q VLAN device on a host interface (the master), born inside the pod's namespace
 * (IFLA_NET_NS_FD on create, the parent as IFLA_LINK in the host), named CNI_IFNAME and configured
 * from IPAM. Accepts the reference plugin's keys: master, vlanId, mtu, linkInContainer.
 */

import { NetlinkConn } from "../../netlink/conn.ts";
import { encodeLink, type LinkMessage } from "../../netlink/link.ts";
import { findLink, type Link } from "../../net/link.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { addOnMaster, checkOnMaster, type MasterDevice } from "../common/link-pod.ts";
import { ifNameCodec, mtuCodec } from "../common/conf.ts";
import { pluginConf } from "../../skel/conf.ts";
import { bool, i64, object } from "../../spec/decode.ts";
import { delVethPod, passToIPAM } from "../common/veth-pod.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import { netConfShape } from "../../spec/netconf.ts";
import type { Result } from "../../spec/result.ts";

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


/** vlan as `addOnMaster` / `checkOnMaster` create and check it. */
function device(conf: VlanConf): MasterDevice {
  return {
    kind: "vlan",
    module: "8021q",
    linkInContainer: conf.linkInContainer,
    ipamType: conf.ipamType,
    master: (conn, where) => resolveMaster(conn, conf, where),
    build: (name, parent, netnsFd) =>
      buildVlanLink({
        name,
        parent,
        vlanId: conf.vlanId,
        ...(conf.mtu ? { mtu: conf.mtu } : {}),
        ...(netnsFd !== undefined ? { netnsFd } : {}),
      }),
  };
}

async function add(args: CmdArgs): Promise<Result> {
  // the reference's vlan sets no notification sysctls
  return addOnMaster(args, device(parseVlanConf(args)), { notify: false });
}

/** IPAM DEL, then the device in the pod; fine when the device, the namespace or the master is gone. */
async function del(args: CmdArgs): Promise<void> {
  await delVethPod(args, parseVlanConf(args).ipamType);
}


async function check(args: CmdArgs): Promise<void> {
  const conf = parseVlanConf(args);
  await checkOnMaster(args, device({ ...conf, mtu: 0 }), {
    checkMaster: true,
    verify: (link) => {
      const id = link.raw.info?.vlan?.id;
      if (id !== conf.vlanId) throw internal(`vlan: ${args.ifName} has VLAN id ${id}, the config says ${conf.vlanId}`);
      if (conf.mtu && link.mtu !== conf.mtu) throw internal(`vlan: ${args.ifName} has MTU ${link.mtu}, the config says ${conf.mtu}`);
    },
  });
}

async function gcOrStatus(args: CmdArgs): Promise<void> {
  await passToIPAM(args, parseVlanConf(args).ipamType);
}

/** The vlan plugin. */
export const vlan: Plugin = { add, del, check, gc: gcOrStatus, status: gcOrStatus };
export default vlan;
