/**
 * macvlan: a macvlan device on a host interface (the master), born inside the pod's namespace
 * (IFLA_NET_NS_FD on create, the parent as IFLA_LINK in the host), named CNI_IFNAME and configured
 * from IPAM. Accepts the reference plugin's keys: master, mode, mtu, mac, linkInContainer,
 * bcqueuelen.
 */

import { NetlinkConn } from "../../netlink/conn.ts";
import { encodeLink, type LinkMessage } from "../../netlink/link.ts";
import { MACVLAN_MODE } from "../../netlink/link_kind.ts";
import { findLink, type Link } from "../../net/link.ts";
import { parseMAC } from "../../net/mac.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { addOnMaster, checkOnMaster, defaultRouteIface, type MasterDevice } from "../common/link-pod.ts";
import { cniArgsMac, ifNameCodec, mtuCodec, optionalMac } from "../common/conf.ts";
import { pluginConf } from "../../skel/conf.ts";
import { bool, object, refine, str, u32 } from "../../spec/decode.ts";
import { delVethPod, passToIPAM } from "../common/veth-pod.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import { netConfShape } from "../../spec/netconf.ts";
import type { Result } from "../../spec/result.ts";

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

/** The `mode` key: the reference's names ("" is bridge); code 7 for any other. */
const modeCodec = refine(str, (m) => (m === "" || (Object.hasOwn(MACVLAN_MODE, m) && m !== "source") ? undefined : `unknown macvlan mode: ${JSON.stringify(m)} (bridge, private, vepa or passthru)`));

/** The macvlan plugin's config as the reference decodes it (its `NetConf`). */
export const macvlanCodec = object({
  ...netConfShape,
  master: ifNameCodec,
  mode: modeCodec,
  mtu: mtuCodec,
  mac: optionalMac,
  linkInContainer: bool,
  bcqueuelen: u32,
  runtimeConfig: object({ mac: optionalMac }),
});

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);
const internal = (msg: string) => new CniError(ErrorCode.Internal, msg);

/**
 * Decode and check the config (without looking at the kernel); refuses what cnikit cannot do. On
 * DEL (lenient) only the IPAM type matters.
 */
export function parseMacvlanConf(args: CmdArgs): MacvlanConf {
  const d = pluginConf(args, macvlanCodec, "macvlan");
  const out: MacvlanConf = { mode: (d.mode || "bridge") as MacvlanModeName, mtu: d.mtu ?? 0, linkInContainer: d.linkInContainer ?? false };
  if (d.master) out.master = d.master;
  if (d.ipam?.type) out.ipamType = d.ipam.type;
  if (args.command === "DEL") return out;
  if (d.bcqueuelen) {
    throw new CniError(ErrorCode.UnsupportedField, "macvlan: bcqueuelen is not supported yet (cnikit's link encoder has no IFLA_MACVLAN_BC_QUEUE_LEN); leave it out or set 0 for the kernel's default");
  }
  // as the reference: the config's mac, then CNI_ARGS MAC, then runtimeConfig.mac
  const mac = d.runtimeConfig?.mac || cniArgsMac(args.args, "macvlan") || d.mac;
  if (mac) out.mac = mac;
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



/** macvlan as `addOnMaster` / `checkOnMaster` create and check it. */
function device(conf: MacvlanConf): MasterDevice {
  return {
    kind: "macvlan",
    module: "macvlan",
    linkInContainer: conf.linkInContainer,
    ...(conf.ipamType ? { ipamType: conf.ipamType } : {}),
    master: (conn, where) => resolveMaster(conn, conf, where),
    build: (name, parent, netnsFd) =>
      buildMacvlanLink({
        name,
        parent,
        mode: conf.mode,
        ...(conf.mtu ? { mtu: conf.mtu } : {}),
        ...(conf.mac ? { mac: conf.mac } : {}),
        ...(netnsFd !== undefined ? { netnsFd } : {}),
      }),
  };
}

async function add(args: CmdArgs): Promise<Result> {
  return addOnMaster(args, device(parseMacvlanConf(args)), { notify: true });
}

/** IPAM DEL, then the device in the pod; fine when the device or the namespace is gone. */
async function del(args: CmdArgs): Promise<void> {
  await delVethPod(args, parseMacvlanConf(args).ipamType);
}


async function check(args: CmdArgs): Promise<void> {
  const conf = parseMacvlanConf(args);
  await checkOnMaster(args, device({ ...conf, mtu: 0 }), {
    checkMaster: true,
    verify: (link) => {
      const mode = link.raw.info?.macvlan?.mode;
      if (mode !== MACVLAN_MODE[conf.mode]) {
        const have = Object.entries(MACVLAN_MODE).find(([, v]) => v === mode)?.[0] ?? String(mode);
        throw internal(`macvlan: container macvlan mode ${have} does not match expected value: ${conf.mode}`);
      }
    },
  });
}

async function gcOrStatus(args: CmdArgs): Promise<void> {
  await passToIPAM(args, parseMacvlanConf(args).ipamType);
}

/** The macvlan plugin. */
export const macvlan: Plugin = { add, del, check, gc: gcOrStatus, status: gcOrStatus };
export default macvlan;
