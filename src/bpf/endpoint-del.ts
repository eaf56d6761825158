/**
 * A pod's DEL on the eBPF datapath: its entry leaves the network's pinned endpoint map (only while
 * it still names the pod's host veth) and whether any pod is left is told. Only then, for the
 * last pod, does the caller load the datapath (`afterLastPod`). Its pieces (a pin opened, the
 * endpoint map opened and checked, an element call) serve ADD's endpoints.ts too.
 *
 * Written flat on purpose (a few functions over raw `bpf()` attrs, the layout's few numbers kept
 * here and checked against programs/layout.ts by a unit test): a plugin's DEL runs this cold and
 * once, and there each function called for the first time costs it ~10-20 us. The same steps
 * through BpfMap and the modules behind it cost ~0.9 ms of an overlay DEL (medians of 30, loading
 * included); this way ~0.55 ms (loading 0.15, the removal 0.4; medians of 60).
 */

import { parseIP } from "../spec/ip.ts";
import { addressOf, bpfCall } from "../sys/bpf.ts";
import { Errno } from "../sys/errno.ts";
import { SysError } from "../sys/error.ts";
import { closeFile } from "../sys/file.ts";

/**
 * The endpoint map as programs/layout.ts makes it: a hash from IPv4 (4 bytes) to a 16-byte value,
 * the host veth's ifindex (u32) at 0, the pod's MAC at 4 and the host veth's at 10.
 */
export const ENDPOINT_MAP = { file: "endpoints", type: 1, keySize: 4, valueSize: 16, ifindexAt: 0, podMacAt: 4, hostMacAt: 10 } as const;

/** bpf() commands (attr.ts's Cmd). */
const OBJ_GET = 7;
const OBJ_GET_INFO_BY_FD = 15;
const MAP_LOOKUP_ELEM = 1;
export const MAP_UPDATE_ELEM = 2;
export const MAP_DELETE_ELEM = 3;
const MAP_GET_NEXT_KEY = 4;

/** What removing an endpoint found: no pinned datapath, pods left, or none left. */
export type EndpointsLeft = "no-datapath" | "more" | "last";

/** What `removePinnedEndpoint` did and found. */
export interface EndpointRemoval {
  /** Whether the pod's entry was there (naming `hostIfindex`, when given) and went. */
  removed: boolean;
  left: EndpointsLeft;
}

const errnoOf = (err: unknown) => (err instanceof SysError ? err.errno : undefined);

/** "aa:bb:cc:dd:ee:ff" into `out` at `at`; throws on anything else. */
function putMac(out: Uint8Array, at: number, mac: string): void {
  const parts = mac.split(":");
  const bytes = parts.map((p) => (p.length === 2 ? Number(`0x${p}`) : Number.NaN));
  if (bytes.length !== 6 || bytes.some((b) => !(b >= 0 && b <= 255))) throw new TypeError(`not a MAC address: ${JSON.stringify(mac)}`);
  out.set(bytes, at);
}

/** The endpoint map's value: the host veth's ifindex, the pod's MAC, the host veth's MAC (programs/layout.ts's `encodeEndpoint`). */
export function endpointValue(e: { ifindex: number; podMac: string; hostMac: string }): Uint8Array {
  const v = new Uint8Array(ENDPOINT_MAP.valueSize);
  new DataView(v.buffer).setUint32(ENDPOINT_MAP.ifindexAt, e.ifindex, true);
  putMac(v, ENDPOINT_MAP.podMacAt, e.podMac);
  putMac(v, ENDPOINT_MAP.hostMacAt, e.hostMac);
  return v;
}

/** The endpoint map's key: the pod's IPv4 address, 4 bytes (programs/layout.ts's `endpointKey`); throws on anything else. */
export function endpointKey(podIP: string): Uint8Array {
  const key = parseIP(podIP);
  if (!key || key.length !== ENDPOINT_MAP.keySize) throw new TypeError(`endpoint: not an IPv4 address: ${JSON.stringify(podIP)}`);
  return key.slice();
}

/** BPF_OBJ_GET: a descriptor for what is pinned at `path`, or undefined when nothing is. */
export function getPinned(path: string): number | undefined {
  const name = new TextEncoder().encode(`${path}\0`);
  const attr = new Uint8Array(16);
  new DataView(attr.buffer).setBigUint64(0, addressOf(name), true);
  try {
    return bpfCall(OBJ_GET, attr, path);
  } catch (err) {
    if (errnoOf(err) === Errno.ENOENT || errnoOf(err) === Errno.ENOTDIR) return undefined;
    throw err;
  }
}

/**
 * The endpoint map pinned in `pinDir`, or undefined when none is. A map of another layout (an
 * older cnikit's) is refused with EEXIST and left as it is, as `BpfMap.reopen` does.
 */
export function openEndpointMap(pinDir: string): number | undefined {
  const path = `${pinDir}/${ENDPOINT_MAP.file}`;
  const fd = getPinned(path);
  if (fd === undefined) return undefined;
  try {
    // struct bpf_map_info: type @0, key_size @8, value_size @12
    const info = new Uint8Array(88);
    const attr = new Uint8Array(16);
    const a = new DataView(attr.buffer);
    a.setUint32(0, fd, true);
    a.setUint32(4, info.length, true);
    a.setBigUint64(8, addressOf(info), true);
    bpfCall(OBJ_GET_INFO_BY_FD, attr, path);
    const m = new DataView(info.buffer);
    if (m.getUint32(0, true) !== ENDPOINT_MAP.type || m.getUint32(8, true) !== ENDPOINT_MAP.keySize || m.getUint32(12, true) !== ENDPOINT_MAP.valueSize) {
      throw new SysError(Errno.EEXIST, "pin", `${path} holds a map of another layout (an older cnikit?): remove it`);
    }
    return fd;
  } catch (err) {
    closeFile(fd);
    throw err;
  }
}

/**
 * One element call on map `fd` (attr: map_fd @0, key @8, value or next key @16, flags @24);
 * false when the kernel answers ENOENT. `key` null: the map's first key (GET_NEXT_KEY).
 */
export function elemCall(cmd: number, fd: number, key: Uint8Array | null, value: Uint8Array | null, flags = 0): boolean {
  const attr = new Uint8Array(32);
  const a = new DataView(attr.buffer);
  a.setUint32(0, fd, true);
  if (key) a.setBigUint64(8, addressOf(key), true);
  if (value) a.setBigUint64(16, addressOf(value), true);
  a.setBigUint64(24, BigInt(flags), true);
  try {
    bpfCall(cmd, attr, "endpoints");
    return true;
  } catch (err) {
    if (errnoOf(err) === Errno.ENOENT) return false;
    throw err;
  }
}

/**
 * Remove `podIP` from the endpoint map pinned in `pinDir` (idempotent). With `hostIfindex` (the
 * host veth the pod had) only when the entry still names that veth: a late DEL of a pod whose
 * address has since gone to a new pod must not take the new pod's entry. A map of another layout
 * is refused (`openEndpointMap`).
 */
export function removePinnedEndpoint(pinDir: string, podIP: string, hostIfindex?: number): EndpointRemoval {
  const key = endpointKey(podIP);
  const fd = openEndpointMap(pinDir);
  if (fd === undefined) return { removed: false, left: "no-datapath" };
  try {
    const value = new Uint8Array(ENDPOINT_MAP.valueSize);
    let removed = false;
    if (hostIfindex === undefined || (elemCall(MAP_LOOKUP_ELEM, fd, key, value) && new DataView(value.buffer).getUint32(ENDPOINT_MAP.ifindexAt, true) === hostIfindex)) {
      removed = elemCall(MAP_DELETE_ELEM, fd, key, null); // DELETE takes nothing past the key (EINVAL otherwise)
    }
    // the first key of the map: none left when there is none
    return { removed, left: elemCall(MAP_GET_NEXT_KEY, fd, null, value) ? "more" : "last" };
  } finally {
    closeFile(fd);
  }
}
