/**
 * The eBPF datapath of one network, as plugins and the agent use it: its maps and programs
 * (created, or reopened from their pins so that they outlive the process), local pods attached and
 * detached, other nodes' subnets set and removed, the vxlan device's program, counters, and GC.
 *
 * Typical use (see the README's "eBPF datapath" section):
 *
 *     const dp = Datapath.open({ pinDir: "/sys/fs/bpf/cnikit/mynet" });
 *     dp.attachPod(conn, { ip: "10.244.1.5", ifindex: hostVeth, podMac, hostMac });   // ADD
 *     dp.detachPod(conn, { ip: "10.244.1.5", ifindex: hostVeth });                     // DEL
 *     dp.attachVxlan(conn, vxlanIfindex);                                              // agent
 *     dp.setRemoteSubnet("10.244.3.0/24", "192.168.1.13", 1);                          // per lease
 *     dp.attachUnderlay(conn, underlayIfindex);                                        // DirectRouting
 *     dp.setRemoteSubnet("10.244.4.0/24", "192.168.1.14", 1, { direct: true });        // a peer on our L2
 *     dp.close();
 */

import { type NetlinkConn } from "../netlink/conn.ts";
import { Errno } from "../sys/errno.ts";
import { SysError } from "../sys/error.ts";
import { listDir } from "../sys/file.ts";
import { type Asm } from "./asm.ts";
import { removePinnedEndpoint } from "./endpoint-del.ts";
import { BpfMap, type MapSpec } from "./map.ts";
import { DEFAULT_BPFFS, ensureBpffs, lockPinParent, makePinDir, removePinDir, unpin } from "./pin.ts";
import { BpfProgram, loadProgram } from "./prog.ts";
import {
  Config,
  type Counter,
  decodeCounter,
  decodeEndpoint,
  decodeRemote,
  encodeEndpoint,
  encodeRemote,
  type Endpoint,
  endpointKey,
  MapName,
  mapSpecs,
  type RemoteSubnet,
  remoteKey,
  STAT_NAMES,
} from "./programs/layout.ts";
import { podProgram } from "./programs/pod.ts";
import { underlayProgram } from "./programs/underlay.ts";
import { PROGRAM_VERSIONS } from "./programs/versions.ts";
import { vxlanProgram } from "./programs/vxlan.ts";
import { attachHook, attachTc, detachTc, type Hook, listTc } from "./tc.ts";

/** Options of `Datapath.open`. */
export interface DatapathOptions {
  /**
   * A directory on a bpffs for this network's pins (maps and programs), such as
   * `/sys/fs/bpf/cnikit/<network>`; a bpffs is mounted on /sys/fs/bpf first when the path is under
   * it and none is there. Without it nothing is pinned: the maps live as long as this process or an
   * attached program.
   */
  pinDir?: string;
  /** Size of the endpoint map (default 4096 local pods). */
  maxEndpoints?: number;
  /** Size of the remote subnet map (default 4096 nodes). */
  maxRemotes?: number;
}

/** The programs of the datapath. */
export type ProgramKind = "pod" | "vxlan" | "underlay";
const PROGRAMS: Record<ProgramKind, { build: () => Asm; name: string }> = {
  pod: { build: podProgram, name: "cnikit_pod" },
  vxlan: { build: vxlanProgram, name: "cnikit_vxlan" },
  underlay: { build: underlayProgram, name: "cnikit_underlay" },
};

/**
 * Where the underlay program sits on the node's own device: a priority of its own, so that it
 * never takes the place of another tool's filter at tc's usual first priority (1).
 */
export const UNDERLAY_FILTER = { prio: 0xc1, handle: 0xc1 } as const;

type Maps = Record<keyof typeof MapName, BpfMap>;

/** FNV-1a of the program's bytes (maps unlinked): a program's pin names its version. */
export function programVersion(a: Asm): string {
  const bytes = a.assemble({ maps: Object.fromEntries(a.maps().map((m) => [m, 0])) });
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

function isMissing(err: unknown): boolean {
  return (err as SysError).errno === Errno.ENOENT;
}

/** One network's eBPF datapath: open it, use it, close it (pins stay). */
export class Datapath {
  private readonly programs = new Map<ProgramKind, BpfProgram>();
  private readonly opened = new Map<keyof typeof MapName, BpfMap>();
  /**
   * The maps (see programs/layout.ts for their layout), each reopened from its pin (or created and
   * pinned) on first use: a pod's ADD or DEL touches only the endpoint map, and each map costs two
   * bpf() calls to open.
   */
  readonly maps: Maps;
  /** The pin directory is known to exist on a bpffs (made, or found holding our pins). */
  private dirReady = false;

  private constructor(
    private readonly specs: Record<keyof typeof MapName, MapSpec>,
    /** Where the pins are (undefined: not pinned). */
    readonly pinDir: string | undefined,
  ) {
    const maps = {} as Maps;
    for (const name of Object.keys(specs) as (keyof typeof MapName)[]) {
      Object.defineProperty(maps, name, { enumerable: true, get: () => this.map(name) });
    }
    this.maps = maps;
  }

  private map(name: keyof typeof MapName): BpfMap {
    let m = this.opened.get(name);
    if (!m) {
      m = openMap(this.specs[name], this.pinDir && `${this.pinDir}/${name}`, () => this.prepareDir());
      this.opened.set(name, m);
    }
    return m;
  }

  /**
   * Before the first pin is made: a bpffs on /sys/fs/bpf when the pin directory is under it and
   * none is mounted, then the directory itself (EXDEV when it is not on a bpffs). Reopening what is
   * pinned needs neither, which keeps a pod's ADD and DEL to the bpf() calls they need.
   */
  private prepareDir(): void {
    if (!this.pinDir || this.dirReady) return;
    if (this.pinDir === DEFAULT_BPFFS || this.pinDir.startsWith(`${DEFAULT_BPFFS}/`)) ensureBpffs(DEFAULT_BPFFS);
    makePinDir(this.pinDir);
    this.dirReady = true;
  }

  /**
   * Open the datapath. Its maps open when first used: reopened from their pins, or created and
   * pinned (`pinDir` and a bpffs for it are made then).
   */
  static open(opts: DatapathOptions = {}): Datapath {
    return new Datapath(mapSpecs(opts), opts.pinDir?.replace(/\/+$/, ""));
  }

  /**
   * A datapath program, loaded on first use (or reopened from its pin when this very version of
   * it is pinned, found by its written-out version without assembling it; older versions' pins
   * are removed: attached copies keep running until replaced).
   */
  program(kind: ProgramKind): BpfProgram {
    const had = this.programs.get(kind);
    if (had) return had;
    const { build, name } = PROGRAMS[kind];
    let prog: BpfProgram | undefined;
    if (this.pinDir) {
      try {
        prog = BpfProgram.fromPin(`${this.pinDir}/prog_${kind}_${PROGRAM_VERSIONS[kind]}`);
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    }
    if (!prog) {
      const asm = build();
      const pin = this.pinDir && `${this.pinDir}/prog_${kind}_${programVersion(asm)}`;
      const fds = Object.fromEntries(Object.entries(this.maps).map(([k, m]) => [k, m.fd]));
      prog = loadProgram({ insns: asm, link: { maps: fds }, name });
      if (pin && this.pinDir) {
        this.prepareDir();
        for (const old of listDir(this.pinDir)) if (old.startsWith(`prog_${kind}_`)) unpin(`${this.pinDir}/${old}`);
        prog.pin(pin);
      }
    }
    this.programs.set(kind, prog);
    return prog;
  }

  /** Whether the endpoint map is pinned (and then open): a datapath that exists. */
  hasPinnedEndpoints(): boolean {
    if (this.opened.has("endpoints")) return true;
    const m = this.pinDir ? BpfMap.reopen(`${this.pinDir}/${MapName.endpoints}`, this.specs.endpoints) : undefined;
    if (!m) return false;
    this.opened.set("endpoints", m);
    this.dirReady = true;
    return true;
  }

  /** Add or replace a local pod in the endpoint map. */
  setEndpoint(e: Endpoint): void {
    this.maps.endpoints.update(endpointKey(e.ip), encodeEndpoint(e));
  }

  /** Remove a local pod from the endpoint map; false when it was not there. */
  removeEndpoint(ip: string): boolean {
    return this.maps.endpoints.delete(endpointKey(ip));
  }

  /** The local pods, in words. */
  endpoints(): Endpoint[] {
    return [...this.maps.endpoints.entries()].map(([k, v]) => decodeEndpoint(k, v));
  }

  /**
   * ADD: attach the pod program to the ingress of the pod's host-side veth (`e.ifindex`, in the
   * namespace of `conn`) and put the pod in the endpoint map. Other pods reach it from then on.
   * The program goes on as a cls_bpf filter, or with tcx when `hook` asks (see `attachHook`);
   * returns which.
   */
  attachPod(conn: NetlinkConn, e: Endpoint, hook?: Hook): Hook {
    this.setEndpoint(e);
    try {
      return attachHook(conn, { ifindex: e.ifindex, direction: "ingress", prog: this.program("pod"), name: "pod" }, hook);
    } catch (err) {
      this.removeEndpoint(e.ip);
      throw err;
    }
  }

  /**
   * DEL: remove the pod from the endpoint map and, when its host veth still exists
   * (`ifindex` given), cnikit's program from it. Idempotent.
   */
  detachPod(conn: NetlinkConn | undefined, p: { ip: string; ifindex?: number }): void {
    this.removeEndpoint(p.ip);
    if (conn && p.ifindex) {
      try {
        detachTc(conn, p.ifindex);
      } catch (err) {
        if (!isMissing(err) && (err as SysError).errno !== Errno.ENODEV) throw err;
      }
    }
  }

  /** GC: remove every endpoint whose IP is not in `valid`; returns the IPs removed. */
  gcEndpoints(valid: Iterable<string>): string[] {
    const keep = new Set(valid);
    const gone = this.endpoints().filter((e) => !keep.has(e.ip)).map((e) => e.ip);
    for (const ip of gone) this.removeEndpoint(ip);
    return gone;
  }

  /**
   * Route another node's pod subnet through the vxlan device to `remote` with `vni`, or with
   * `direct` natively to `remote` on the underlay device (see `attachUnderlay`).
   */
  setRemoteSubnet(subnet: string, remote: string, vni: number, opts: { direct?: boolean } = {}): void {
    this.maps.remotes.update(remoteKey(subnet), encodeRemote({ remote, vni, direct: opts.direct === true }));
  }

  /** Stop routing a subnet through the tunnel; false when it was not there. */
  removeRemoteSubnet(subnet: string): boolean {
    return this.maps.remotes.delete(remoteKey(subnet));
  }

  /** Other nodes' subnets, in words. */
  remoteSubnets(): RemoteSubnet[] {
    return [...this.maps.remotes.entries()].map(([k, v]) => decodeRemote(k, v));
  }

  /**
   * Use the collect-metadata (`external`) vxlan device `ifindex` for other nodes' subnets: record
   * it for the pod program and attach the vxlan program to its ingress.
   */
  attachVxlan(conn: NetlinkConn, ifindex: number): void {
    attachTc(conn, { ifindex, direction: "ingress", prog: this.program("vxlan"), name: "vxlan" });
    this.maps.config.update(u32(Config.vxlanIfindex), u32(ifindex));
  }

  /** Stop tunnelling: forget the vxlan device and remove cnikit's program from it (when it exists). */
  detachVxlan(conn: NetlinkConn, ifindex: number): void {
    this.maps.config.update(u32(Config.vxlanIfindex), u32(0));
    try {
      detachTc(conn, ifindex);
    } catch (err) {
      if (!isMissing(err) && (err as SysError).errno !== Errno.ENODEV) throw err;
    }
  }

  /** The vxlan device's ifindex recorded for the pod program (0: none). */
  vxlanIfindex(): number {
    return this.configWord(Config.vxlanIfindex);
  }

  /**
   * Route direct subnets natively out of the underlay device `ifindex` (DirectRouting): record it
   * for the pod program and attach the underlay program to its ingress (frames other nodes route
   * to local pods go straight into them). Refuses to take the place of another tool's filter.
   */
  attachUnderlay(conn: NetlinkConn, ifindex: number): void {
    const taken = listTc(conn, { ifindex, all: true }).find((f) => !f.tcx && f.direction === "ingress" && f.prio === UNDERLAY_FILTER.prio && !f.name.startsWith("cnikit-"));
    if (taken) throw new SysError(Errno.EEXIST, "tc", `ifindex ${ifindex} has another tool's filter (${taken.name || "unnamed"}) at priority ${UNDERLAY_FILTER.prio}`);
    attachTc(conn, { ifindex, direction: "ingress", prog: this.program("underlay"), name: "underlay", ...UNDERLAY_FILTER });
    this.maps.config.update(u32(Config.underlayIfindex), u32(ifindex));
  }

  /** Stop routing natively: forget the underlay device and remove cnikit's program from it (when it exists). */
  detachUnderlay(conn: NetlinkConn, ifindex: number): void {
    this.maps.config.update(u32(Config.underlayIfindex), u32(0));
    try {
      detachTc(conn, ifindex, { direction: "ingress" });
    } catch (err) {
      if (!isMissing(err) && (err as SysError).errno !== Errno.ENODEV) throw err;
    }
  }

  /** The underlay device's ifindex recorded for direct routes (0: none). */
  underlayIfindex(): number {
    return this.configWord(Config.underlayIfindex);
  }

  private configWord(i: number): number {
    const v = this.maps.config.lookup(u32(i));
    return v ? new DataView(v.buffer, v.byteOffset).getUint32(0, true) : 0;
  }

  /** The decision counters by name (podToLocal, podToRemote, podToHost, tunnelToLocal, ...). */
  stats(): Record<string, Counter> {
    const out: Record<string, Counter> = {};
    STAT_NAMES.forEach((name, i) => {
      const v = this.maps.stats.lookup(u32(i));
      if (v) out[name] = decodeCounter(v);
    });
    return out;
  }

  /** Close the descriptors (pins, and attached programs, stay). */
  close(): void {
    for (const p of this.programs.values()) p.close();
    this.programs.clear();
    for (const m of this.opened.values()) m.close();
    this.opened.clear();
  }

  /**
   * Close and remove the pins (the last pod of a network is gone and no tunnel is used):
   * programs still attached keep their maps alive until detached.
   */
  destroy(): void {
    this.close();
    if (this.pinDir) removePinDir(this.pinDir);
  }
}

function u32(n: number): Uint8Array {
  return new Uint8Array(new Uint32Array([n]).buffer);
}

/** Reopen the map pinned at `pin`, else create it (and pin it there, `beforePin` first). */
function openMap(spec: MapSpec, pin: string | undefined, beforePin: () => void): BpfMap {
  if (pin) {
    const had = BpfMap.reopen(pin, spec);
    if (had) return had;
    beforePin();
  }
  const m = BpfMap.create(spec);
  if (pin) {
    try {
      m.pin(pin);
    } catch (err) {
      m.close();
      throw err;
    }
  }
  return m;
}

/**
 * Open a network's pinned datapath if there is one (undefined when `pinDir` holds no pinned
 * endpoint map: nothing is created then).
 */
export function openPinnedDatapath(pinDir: string): Datapath | undefined {
  const dp = Datapath.open({ pinDir });
  if (dp.hasPinnedEndpoints()) return dp;
  dp.close();
  return undefined;
}

/** Run `fn` with the datapath at `opts.pinDir` open, closing it afterwards (pins stay). */
export function withDatapath<T>(opts: DatapathOptions & { pinDir: string }, fn: (dp: Datapath) => T): T {
  const dp = Datapath.open(opts);
  try {
    return fn(dp);
  } finally {
    dp.close();
  }
}

/** What a plugin's ADD passes to `attachPodDatapath`. */
export interface PodAttachment {
  /** The network's pin directory, `/sys/fs/bpf/cnikit/<network>`. */
  pinDir: string;
  podIP: string;
  /** ifindex of the host side of the pod's veth (in the namespace of the netlink connection). */
  hostIfindex: number;
  /** The pod interface's MAC. */
  podMac: string;
  /** The host veth's MAC: the MAC of the pod's gateway neighbour entry. */
  hostMac: string;
}

/**
 * ADD in one call: open the network's pinned datapath, attach the pod, close; under the shared
 * pin lock (see `lockPinParent`). Returns how the program went on.
 */
export function attachPodDatapath(conn: NetlinkConn, p: PodAttachment): Hook {
  const lock = lockPinParent(p.pinDir, "shared");
  try {
    return withDatapath({ pinDir: p.pinDir }, (dp) => dp.attachPod(conn, { ip: p.podIP, ifindex: p.hostIfindex, podMac: p.podMac, hostMac: p.hostMac }));
  } finally {
    lock?.unlock();
  }
}

/**
 * DEL in one call: remove the pod's endpoint and (when its host veth still exists) cnikit's
 * program from it. Returns true when the network has no local pod left, in which case the last
 * pod's DEL removes what only pods used (`afterLastPod`).
 */
export function detachPodDatapath(conn: NetlinkConn | undefined, p: { pinDir: string; podIP: string; hostIfindex?: number }): boolean {
  const found = removePinnedEndpoint(p.pinDir, p.podIP).left;
  if (found === "no-datapath") return true;
  if (conn && p.hostIfindex) {
    try {
      detachTc(conn, p.hostIfindex);
    } catch (err) {
      if (!isMissing(err) && (err as SysError).errno !== Errno.ENODEV) throw err;
    }
  }
  if (found === "last") afterLastPod(p.pinDir);
  return found === "last";
}

/**
 * After the last local pod's endpoint went: every pin when no agent uses the datapath (no vxlan
 * or underlay device, no remote subnet recorded), else only the pod program's pin (the agent's
 * maps stay). Nothing when a pod came back meanwhile. Under the exclusive pin lock, so that no
 * ADD is between opening the pins and adding its endpoint meanwhile (see `lockPinParent`).
 */
export function afterLastPod(pinDir: string): void {
  const lock = lockPinParent(pinDir, "exclusive");
  try {
    lastPodGone(pinDir);
  } finally {
    lock?.unlock();
  }
}

function lastPodGone(pinDir: string): void {
  const dp = openPinnedDatapath(pinDir);
  if (!dp) return;
  if (dp.maps.endpoints.nextKey() !== undefined) {
    dp.close();
    return;
  }
  if (dp.vxlanIfindex() === 0 && dp.underlayIfindex() === 0 && dp.remoteSubnets().length === 0) {
    dp.destroy();
    return;
  }
  dp.close();
  for (const n of listDir(pinDir)) if (n.startsWith("prog_pod_")) unpin(`${pinDir}/${n}`);
}
