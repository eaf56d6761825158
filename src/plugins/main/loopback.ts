/**
 * loopback: brings `lo` up inside the pod's namespace (and down again on DEL), as the reference
 * plugin does. CNI_IFNAME is ignored: this plugin only ever touches `lo`.
 */

import { NetlinkConn } from "../../netlink/conn.ts";
import { listAddresses } from "../../net/addr.ts";
import { getLink, setLink } from "../../net/link.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import type { IPConfig, Result } from "../../spec/result.ts";
import { CURRENT_VERSION } from "../../spec/version.ts";

const LO = "lo";

function openPodConn(netns: string): NetlinkConn {
  try {
    return NetlinkConn.open({ netns });
  } catch (e) {
    throw new CniError(ErrorCode.UnknownContainer, `failed to open netns "${netns}": ${(e as Error).message}`);
  }
}

/** 127.0.0.0/8 or ::1. */
function isLoopbackIP(ip: Uint8Array): boolean {
  if (ip.length === 4) return ip[0] === 127;
  return ip.every((b, i) => b === (i === 15 ? 1 : 0));
}

function add(args: CmdArgs): Result {
  const pod = openPodConn(args.netns);
  const ips: IPConfig[] = [];
  try {
    const lo = getLink(pod, LO);
    setLink(pod, lo.index, { up: true });
    for (const family of [4, 6] as const) {
      // read after bringing lo up: the kernel adds ::1 only then
      const addrs = listAddresses(pod, { link: lo.index, family });
      const odd = addrs.find((a) => !isLoopbackIP(a.net.ip));
      if (odd) throw new CniError(ErrorCode.Internal, `loopback interface found with non-loopback address "${odd.cidr}"`);
      // as the reference: the first address of each family
      if (addrs[0]) ips.push({ interface: 0, address: addrs[0].cidr });
    }
  } finally {
    pod.close();
  }
  // chained after another plugin, the reference passes the previous result through unchanged
  if (args.prevResult) return args.prevResult;
  const result: Result = {
    cniVersion: CURRENT_VERSION,
    // the reference names the interface "lo" whatever CNI_IFNAME says
    interfaces: [{ name: LO, mac: "00:00:00:00:00:00", sandbox: args.netns }],
  };
  if (ips.length > 0) result.ips = ips;
  return result;
}

function del(args: CmdArgs): void {
  if (!args.netns) return;
  let pod: NetlinkConn;
  try {
    pod = NetlinkConn.open({ netns: args.netns });
  } catch {
    return; // the namespace is gone (or was never one): nothing left to set down
  }
  try {
    setLink(pod, LO, { up: false });
  } finally {
    pod.close();
  }
}

function check(args: CmdArgs): void {
  const pod = openPodConn(args.netns);
  try {
    if (!getLink(pod, LO).up) throw new CniError(ErrorCode.Internal, "loopback interface is down");
  } finally {
    pod.close();
  }
}

/** The loopback plugin. */
export const loopback: Plugin = { add, del, check };
export default loopback;
