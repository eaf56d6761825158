/**
 * ipvlan: an ipvlan device on a host interface (the master), born inside the pod's namespace
 * (IFLA_NET_NS_FD on create, the parent as IFLA_LINK in the host), named CNI_IFNAME and configured
 * from IPAM, or, chained after another plugin without IPAM, from the prevResult's IPs (as the
 * reference). Accepts the reference plugin's keys: master, mode, mtu, linkInContainer.
 */

import { NetlinkConn } from "../../netlink/conn.ts";
import { encodeLink, type LinkMessage } from "../../netlink/link.ts";
import { IPVLAN_F, IPVLAN_MODE } from "../../netlink/link_kind.ts";
import { findLink, type Link } from "../../net/link.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { addOnMaster, checkOnMaster, defaultRouteIface, type MasterDevice } from "../common/link-pod.ts";
import { ifNameCodec, mtuCodec } from "../common/conf.ts";
import { pluginConf } from "../../skel/conf.ts";
import { bool, object, refine, str } from "../../spec/decode.ts";
import { delVethPod, passToIPAM } from "../common/veth-pod.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import { netConfShape } from "../../spec/netconf.ts";
import type { Result } from "../../spec/result.ts";
import { validateIfName } from "../../spec/validate.ts";

/** ipvlan modes by the names the reference's `mode` key takes. */
export type IpvlanModeName = keyof typeof IPVLAN_MODE;

/** The ipvlan plugin's settings, as the reference names them. */
export interface IpvlanConf {
  /** The parent interface; absent: the prevResult's single interface when chained, else the default route's. */
  master?: string;
  mode: IpvlanModeName;
  /** 0: the kernel's default (the master's MTU). */
  mtu: number;
  linkInContainer: boolean;
  ipamType?: string;
}

/** The `mode` key: the reference's names ("" is l2); code 7 for any other. */
const modeCodec = refine(str, (m) => (m === "" || Object.hasOwn(IPVLAN_MODE, m) ? undefined : `unknown ipvlan mode: ${JSON.stringify(m)} (l2, l3 or l3s)`));

/** The ipvlan plugin's config as the reference decodes it (its `NetConf`). */
export const ipvlanCodec = object({ ...netConfShape, master: ifNameCodec, mode: modeCodec, mtu: mtuCodec, linkInContainer: bool });

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);
const internal = (msg: string) => new CniError(ErrorCode.Internal, msg);

/** Decode and check the config (without looking at the kernel); on DEL (lenient) only the IPAM type matters. */
export function parseIpvlanConf(args: CmdArgs): IpvlanConf {
  const d = pluginConf(args, ipvlanCodec, "ipvlan");
  const out: IpvlanConf = { mode: (d.mode || "l2") as IpvlanModeName, mtu: d.mtu ?? 0, linkInContainer: d.linkInContainer ?? false };
  if (d.master) out.master = d.master;
  if (d.ipam?.type) out.ipamType = d.ipam.type;
  return out;
}

/** What `buildIpvlanLink` puts in the request. */
export interface IpvlanLinkSpec {
  name: string;
  /** The master's ifindex (in the namespace the request is sent in). */
  parent: number;
  mode: IpvlanModeName;
  mtu?: number;
  /** Create the device inside the namespace of this open file. */
  netnsFd?: number;
}

/**
 * The RTM_NEWLINK body (ifinfomsg + attributes) that creates an ipvlan device: IFLA_IPVLAN_MODE and,
 * as the reference's netlink library sends it, IFLA_IPVLAN_FLAGS 0 (bridge).
 */
export function buildIpvlanLink(spec: IpvlanLinkSpec): Uint8Array {
  const m: LinkMessage = {
    name: spec.name,
    link: spec.parent,
    info: { kind: "ipvlan", ipvlan: { mode: IPVLAN_MODE[spec.mode], flags: IPVLAN_F.bridge } },
  };
  if (spec.mtu) m.mtu = spec.mtu;
  if (spec.netnsFd !== undefined) m.netnsFd = spec.netnsFd;
  return encodeLink(m);
}


/** The master's name: configured, the prevResult's single interface when chained, or the default route's. */
function masterName(conn: NetlinkConn, conf: IpvlanConf, prev: Result | undefined, where: string): string {
  if (conf.master) return conf.master;
  if (prev) {
    const ifs = prev.interfaces ?? [];
    if (ifs.length === 1 && ifs[0]!.name) return ifs[0]!.name;
    throw invalid("ipvlan: chained master failure: no 'master' given and the prevResult lacks a single named interface");
  }
  const name = defaultRouteIface(conn);
  if (!name) throw invalid(`ipvlan: no 'master' given and no default route interface found in ${where}`);
  return name;
}

function resolveMaster(conn: NetlinkConn, conf: IpvlanConf, prev: Result | undefined, where: string): Link {
  const name = masterName(conn, conf, prev, where);
  const link = findLink(conn, name);
  if (!link) throw invalid(`ipvlan: master "${name}" not found in ${where}`);
  if (conf.mtu > link.mtu) throw invalid(`ipvlan: invalid MTU ${conf.mtu}, must be [0, master MTU(${link.mtu})]`);
  return link;
}



/** ipvlan as `addOnMaster` / `checkOnMaster` create and check it; `prev` helps find the master. */
function device(conf: IpvlanConf, prev: Result | undefined): MasterDevice {
  return {
    kind: "ipvlan",
    module: "ipvlan",
    linkInContainer: conf.linkInContainer,
    ...(conf.ipamType ? { ipamType: conf.ipamType } : {}),
    master: (conn, where) => resolveMaster(conn, conf, prev, where),
    build: (name, parent, netnsFd) =>
      buildIpvlanLink({
        name,
        parent,
        mode: conf.mode,
        ...(conf.mtu ? { mtu: conf.mtu } : {}),
        ...(netnsFd !== undefined ? { netnsFd } : {}),
      }),
  };
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseIpvlanConf(args);
  validateIfName(args.ifName);
  const chained = !conf.ipamType && (args.prevResult?.ips?.length ?? 0) > 0;
  if (!conf.ipamType && !chained) {
    throw invalid("ipvlan: 'ipam' with a 'type' is required unless chained after a plugin whose prevResult has IPs");
  }
  return addOnMaster(args, device(conf, args.prevResult), { notify: true, ...(chained ? { chained: args.prevResult! } : {}) });
}

/** IPAM DEL (when configured), then the device in the pod; fine when either is gone. */
async function del(args: CmdArgs): Promise<void> {
  await delVethPod(args, parseIpvlanConf(args).ipamType);
}


async function check(args: CmdArgs): Promise<void> {
  const conf = parseIpvlanConf(args);
  await checkOnMaster(args, device({ ...conf, mtu: 0 }, undefined), {
    checkMaster: Boolean(conf.master),
    verify: (link) => {
      const mode = link.raw.info?.ipvlan?.mode;
      if (mode !== IPVLAN_MODE[conf.mode]) {
        const have = Object.entries(IPVLAN_MODE).find(([, v]) => v === mode)?.[0] ?? String(mode);
        throw internal(`ipvlan: container ipvlan mode ${have} does not match expected value: ${conf.mode}`);
      }
    },
  });
}

async function gcOrStatus(args: CmdArgs): Promise<void> {
  await passToIPAM(args, parseIpvlanConf(args).ipamType);
}

/** The ipvlan plugin. */
export const ipvlan: Plugin = { add, del, check, gc: gcOrStatus, status: gcOrStatus };
export default ipvlan;
