/**
 * host-device: moves an existing host interface into the pod's namespace under CNI_IFNAME, and
 * back under its original name on DEL. The original name travels with the device in its alias
 * (IFLA_IFALIAS), as the reference plugin records it, so DEL needs no state file and either
 * implementation can undo the other's ADD. Accepts the reference plugin's keys: `device`,
 * `hwaddr`, `kernelpath`, `pciBusID` and `runtimeConfig.deviceID` (taken as a PCI address).
 *
 * As in the reference, the kernel drops a device's addresses and routes when it changes
 * namespace: without IPAM the pod gets the bare (up) interface; with IPAM it gets IPAM's
 * addresses and routes. DEL leaves the device down in the host namespace, as the reference does.
 */

import { listDir, realPath } from "../../sys/file.ts";
import { baseName as basename, joinPath as join } from "../../sys/path.ts";
import { delegateAdd, delegateCommand } from "../../invoke/delegate.ts";
import { NetlinkConn } from "../../netlink/conn.ts";
import { hostRtnetlink, releaseRtnetlink } from "../../net/rtnetlink.ts";
import { isExists } from "../../netlink/error.ts";
import { listAddresses } from "../../net/addr.ts";
import { configureIface } from "../../net/ipconfig.ts";
import { findLink, getLink, type Link, listLinks, setLink } from "../../net/link.ts";
import { moveLink, setLinkAlias } from "../../net/move.ts";
import { listRoutes } from "../../net/route.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { type NetnsHandle, openNetns, THREAD_NETNS_PATH } from "../../sys/netns.ts";
import { cleanupAll, openPodConn, passToIPAM, releasePodConn } from "../common/veth-pod.ts";
import { optionalMac } from "../common/conf.ts";
import { pluginConf } from "../../skel/conf.ts";
import { bool, object, refine, str } from "../../spec/decode.ts";
import { CniError, ErrorCode, toCniError } from "../../spec/error.ts";
import { formatCIDR, formatIP, parseCIDR, parseIP } from "../../spec/ip.ts";
import { netConfShape } from "../../spec/netconf.ts";
import type { Result } from "../../spec/result.ts";
import { validateIfName } from "../../spec/validate.ts";
import { CURRENT_VERSION } from "../../spec/version.ts";

/** Where the kernel lists PCI devices. */
export const SYS_BUS_PCI = "/sys/bus/pci/devices";

/** Drivers that hand a PCI network device to user space (DPDK): no kernel interface to move. */
export const USERSPACE_DRIVERS: readonly string[] = ["vfio-pci", "uio_pci_generic", "igb_uio"];

/** The host-device plugin's settings, as the reference names them. */
export interface HostDeviceConf {
  /** Interface name on the host. */
  device?: string;
  /** MAC address, lowercase "aa:bb:cc:dd:ee:ff". */
  hwaddr?: string;
  /** A sysfs device path under /sys/devices/. */
  kernelpath?: string;
  /** A PCI address ("0000:00:19.0"), from `pciBusID` or `runtimeConfig.deviceID`. */
  pciBusID?: string;
  /** The PCI device is bound to a user-space driver: nothing is moved, only IPAM runs. */
  dpdkMode: boolean;
  ipamType?: string;
}

/** What the plugin reads from sysfs; a fake directory tree stands in for it in unit tests. */
export interface SysfsView {
  /** Entry names of a directory, sorted; null when it cannot be read. */
  list(dir: string): string[] | null;
  /** The path a link resolves to; null when it does not resolve. */
  resolve(path: string): string | null;
}

/** The real sysfs. */
export const realSysfs: SysfsView = {
  list(dir) {
    try {
      return listDir(dir).sort();
    } catch {
      return null;
    }
  },
  resolve(path) {
    try {
      return realPath(path);
    } catch {
      return null;
    }
  },
};

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);
const internal = (msg: string) => new CniError(ErrorCode.Internal, msg);

/** A PCI address key ("0000:00:19.0"); "" leaves it unset; code 7 for anything else. */
const pciAddrCodec = refine(str, (s) => (s === "" || /^[0-9a-fA-F]{4,}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/.test(s) ? undefined : `${JSON.stringify(s)} is not a PCI address (like 0000:00:19.0)`));

/**
 * The host-device plugin's config as the reference decodes it (its `NetConf`; `DPDKMode` is an
 * untagged Go field, so it has a key too).
 */
export const hostDeviceCodec = object({
  ...netConfShape,
  device: str,
  hwaddr: optionalMac,
  DPDKMode: bool,
  kernelpath: refine(str, (s) => (s === "" || s.startsWith("/sys/devices/") ? undefined : `kernel device path ${JSON.stringify(s)} must be absolute and begin with /sys/devices/`)),
  pciBusID: pciAddrCodec,
  runtimeConfig: object({ deviceID: pciAddrCodec }),
});

/** Whether the PCI device at `pciaddr` is bound to a user-space (DPDK) driver. */
export function hasDpdkDriver(pciaddr: string, sysfs: SysfsView = realSysfs): boolean {
  const driver = sysfs.resolve(join(SYS_BUS_PCI, pciaddr, "driver"));
  if (driver === null) {
    throw invalid(`host-device: PCI device ${pciaddr} not found or bound to no driver (${join(SYS_BUS_PCI, pciaddr, "driver")} does not resolve)`);
  }
  return USERSPACE_DRIVERS.includes(basename(driver));
}

/**
 * Decode and check the config. A PCI address is probed for its driver (DPDK mode). On DEL
 * (lenient) nothing is required, and a device that cannot be probed counts as a kernel one: the
 * device is found by CNI_IFNAME and its alias anyway.
 */
export function parseHostDeviceConf(args: CmdArgs, sysfs: SysfsView = realSysfs): HostDeviceConf {
  const forDel = args.command === "DEL";
  const d = pluginConf(args, hostDeviceCodec, "host-device");
  // as the reference, an untagged `DPDKMode` counts unless a PCI device is probed
  const out: HostDeviceConf = { dpdkMode: d.DPDKMode ?? false };
  if (d.device) out.device = d.device;
  if (d.hwaddr) out.hwaddr = d.hwaddr;
  if (d.kernelpath) out.kernelpath = d.kernelpath;
  // the runtime's standard device id wins over the config, as in the reference
  const pci = d.runtimeConfig?.deviceID || d.pciBusID;
  if (pci) out.pciBusID = pci;
  if (d.ipam?.type) out.ipamType = d.ipam.type;
  if (!out.device && !out.hwaddr && !out.kernelpath && !out.pciBusID && !forDel) {
    throw invalid(`host-device: specify either "device", "hwaddr", "kernelpath" or "pciBusID"`);
  }
  if (out.pciBusID) {
    try {
      out.dpdkMode = hasDpdkDriver(out.pciBusID, sysfs);
    } catch (e) {
      // DEL stays possible when the PCI device is gone: then there is nothing in user space either
      if (!forDel) throw e;
      out.dpdkMode = false;
    }
  }
  return out;
}

/**
 * The interface names sysfs lists for a device given by `kernelpath` (its `net/` folder) or by
 * PCI address (`/sys/bus/pci/devices/<addr>/net`, or `virtio*\/net` below it for virtio devices),
 * sorted. Throws a spec error naming the folder when there is none.
 */
export function sysfsNetNames(by: { kernelpath?: string; pciBusID?: string }, sysfs: SysfsView = realSysfs): string[] {
  if (by.kernelpath !== undefined) {
    const dir = join(by.kernelpath, "net");
    const names = sysfs.list(dir);
    if (names === null) throw internal(`host-device: failed to find network devices at ${dir}`);
    return names;
  }
  if (by.pciBusID !== undefined) {
    const devDir = join(SYS_BUS_PCI, by.pciBusID);
    let names = sysfs.list(join(devDir, "net"));
    if (names === null) {
      const virtio = (sysfs.list(devDir) ?? []).filter((n) => n.startsWith("virtio"));
      for (const v of virtio) {
        names = sysfs.list(join(devDir, v, "net"));
        if (names !== null) break;
      }
    }
    if (names === null) throw internal(`host-device: no net directory under PCI device ${by.pciBusID}`);
    if (names.length === 0) throw internal(`host-device: failed to find the interface name of PCI device ${by.pciBusID}`);
    return names;
  }
  throw new TypeError("sysfsNetNames: kernelpath or pciBusID is required");
}

/**
 * Choose the interface the config names, in the reference's order of precedence: `device`, then
 * `hwaddr`, then `kernelpath` (the first interface of its `net/` folder that exists here), then
 * the PCI address (the first interface of its `net/` folder). `links` are this namespace's links.
 */
export function selectDevice(conf: HostDeviceConf, links: readonly Link[], sysfs: SysfsView = realSysfs): Link {
  if (conf.device) {
    const l = links.find((x) => x.name === conf.device);
    if (!l) throw internal(`host-device: no interface named "${conf.device}" in the host namespace`);
    return l;
  }
  if (conf.hwaddr) {
    const l = links.find((x) => x.mac === conf.hwaddr);
    if (!l) throw internal(`host-device: no interface with MAC address ${conf.hwaddr} in the host namespace`);
    return l;
  }
  if (conf.kernelpath) {
    for (const n of sysfsNetNames({ kernelpath: conf.kernelpath }, sysfs)) {
      const l = links.find((x) => x.name === n);
      if (l) return l;
    }
    throw internal(`host-device: none of the interfaces under ${conf.kernelpath}/net is in the host namespace`);
  }
  if (conf.pciBusID) {
    const first = sysfsNetNames({ pciBusID: conf.pciBusID }, sysfs)[0]!;
    const l = links.find((x) => x.name === first);
    if (!l) throw internal(`host-device: interface "${first}" of PCI device ${conf.pciBusID} is not in the host namespace`);
    return l;
  }
  throw internal("host-device: failed to find physical interface");
}

/** Move the device out of the pod: down, renamed to `name` and into `hostNs` in one request. */
function moveOut(pod: NetlinkConn, index: number, hostNs: NetnsHandle, name: string): void {
  setLink(pod, index, { up: false });
  try {
    moveLink(pod, index, hostNs, { name });
  } catch (e) {
    if (isExists(e)) throw internal(`host-device: cannot move the device back: the host already has an interface named "${name}"`);
    throw e;
  }
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseHostDeviceConf(args);
  validateIfName(args.ifName);
  const pod = openPodConn(args.netns);
  const host = hostRtnetlink();
  const hostNs = openNetns(THREAD_NETNS_PATH);
  let moved: { index: number; name: string; alias: string; up: boolean } | null = null;
  let ipamDone = false;
  try {
    const out: Result = { cniVersion: CURRENT_VERSION };
    if (!conf.dpdkMode) {
      const dev = selectDevice(conf, listLinks(host));
      if (findLink(pod, args.ifName)) {
        throw internal(`host-device: interface name "${args.ifName}" already exists in ${args.netns}`);
      }
      // the original name travels with the device, for DEL (the reference keeps it there too)
      const oldAlias = dev.raw.alias ?? "";
      setLinkAlias(host, dev.index, dev.name);
      try {
        moveLink(host, dev.index, args.netns, { name: args.ifName });
      } catch (e) {
        try {
          setLinkAlias(host, dev.index, oldAlias);
        } catch {
          // best effort
        }
        throw internal(`host-device: failed to move "${dev.name}" into ${args.netns} as "${args.ifName}": ${(e as Error).message}`);
      }
      const podLink = getLink(pod, args.ifName);
      moved = { index: podLink.index, name: dev.name, alias: oldAlias, up: dev.up };
      setLink(pod, podLink.index, { up: true });
      const now = getLink(pod, podLink.index);
      out.interfaces = [{ name: now.name, mac: now.mac, sandbox: args.netns }];
    }
    if (conf.ipamType) {
      const ipam = await delegateAdd(conf.ipamType, args, args.stdinData);
      ipamDone = true;
      if (!ipam.ips || ipam.ips.length === 0) throw internal("host-device: IPAM plugin returned missing IP config");
      out.ips = ipam.ips.map((ip) => ({ ...ip, interface: 0 }));
      if (ipam.routes && ipam.routes.length > 0) out.routes = ipam.routes;
      if (!conf.dpdkMode) configureIface(pod, args.ifName, { ips: out.ips, routes: ipam.routes ?? [] });
    }
    // as the reference: the config's DNS, never IPAM's
    const dns = args.config.dns;
    if (dns && Object.keys(dns).length > 0) out.dns = dns;
    return out;
  } catch (e) {
    // leave nothing half-done: the device back on the host as it was, the reservation released
    if (ipamDone && conf.ipamType) {
      try {
        await delegateCommand(conf.ipamType, args, "DEL", args.stdinData);
      } catch {
        // best effort: the ADD error is what the caller needs to see
      }
    }
    if (moved) {
      try {
        moveOut(pod, moved.index, hostNs, moved.name);
        setLinkAlias(host, moved.name, moved.alias);
        if (moved.up) setLink(host, moved.name, { up: true });
      } catch {
        // best effort
      }
    }
    throw toCniError(e);
  } finally {
    hostNs.close();
    releaseRtnetlink(host);
    releasePodConn(pod);
  }
}

/** IPAM DEL, and the device back to the host under its original name: the one even when the other fails. */
async function del(args: CmdArgs): Promise<void> {
  const conf = parseHostDeviceConf(args);
  await cleanupAll(args, [
    () => (conf.ipamType ? delegateCommand(conf.ipamType, args, "DEL", args.stdinData) : undefined),
    () => (conf.dpdkMode ? undefined : moveBack(args)),
  ]);
}

/** The pod's CNI_IFNAME back to the host namespace under the name its alias records; fine when it or the namespace is gone. */
function moveBack(args: CmdArgs): void {
  if (!args.netns) return;
  let pod: NetlinkConn;
  try {
    pod = NetlinkConn.open({ netns: args.netns });
  } catch {
    // The namespace is gone. The kernel returned a physical device to the initial namespace
    // (under its own name, or devN when taken); a virtual one such as a veth end went with it.
    return;
  }
  const hostNs = openNetns(THREAD_NETNS_PATH);
  try {
    const dev = findLink(pod, args.ifName);
    if (!dev) return; // moved out before, or never moved in
    const orig = dev.raw.alias;
    if (!orig) {
      throw internal(`host-device: ${args.ifName} in ${args.netns} has no alias naming its host interface; it was not moved there by host-device`);
    }
    moveOut(pod, dev.index, hostNs, orig);
  } finally {
    hostNs.close();
    pod.close();
  }
}

const normCIDR = (cidr: string): string => {
  const net = parseCIDR(cidr);
  return net ? formatCIDR(net) : cidr;
};

async function check(args: CmdArgs): Promise<void> {
  const conf = parseHostDeviceConf(args);
  const pod = openPodConn(args.netns);
  try {
    if (conf.ipamType) await delegateCommand(conf.ipamType, args, "CHECK", args.stdinData);
    const prev = args.prevResult;
    if (!prev) throw invalid("host-device: required prevResult missing");
    if (conf.dpdkMode) return;
    const ifaces = prev.interfaces ?? [];
    const ci = ifaces.findIndex((i) => i.name === args.ifName && i.sandbox === args.netns);
    if (ci < 0) throw internal(`host-device: interface ${args.ifName} in ${args.netns} not found in prevResult`);
    const want = ifaces[ci]!;
    const link = findLink(pod, args.ifName);
    if (!link) throw internal(`host-device: container interface ${args.ifName} not found in ${args.netns}`);
    if (want.mac && link.mac !== want.mac.toLowerCase()) {
      throw internal(`host-device: interface ${args.ifName} has MAC ${link.mac}, prevResult says ${want.mac}`);
    }
    const have = listAddresses(pod, { link: link.index }).map((a) => a.cidr);
    for (const ip of prev.ips ?? []) {
      if (ip.interface !== undefined && ip.interface !== ci) continue;
      if (!have.includes(normCIDR(ip.address))) throw internal(`host-device: ${args.ifName} lacks address ${ip.address}`);
    }
    const routes = listRoutes(pod, { table: 0 }) // any table: sbr may have moved them;
    for (const r of prev.routes ?? []) {
      const dst = normCIDR(r.dst);
      const gw = r.gw ? formatIP(parseIP(r.gw) ?? new Uint8Array()) : undefined;
      if (!routes.some((x) => x.dst === dst && (!gw || x.gateway === gw))) {
        throw internal(`host-device: route to ${r.dst}${r.gw ? ` via ${r.gw}` : ""} is missing in ${args.netns}`);
      }
    }
  } finally {
    releasePodConn(pod);
  }
}

async function gcOrStatus(args: CmdArgs): Promise<void> {
  await passToIPAM(args, parseHostDeviceConf(args).ipamType);
}

/** The host-device plugin. */
export const hostDevice: Plugin = { add, del, check, gc: gcOrStatus, status: gcOrStatus };
export default hostDevice;
