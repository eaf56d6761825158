/**
 * A pod's ADD and DEL on the eBPF datapath without loading the datapath itself (its program
 * builders, tc and the rest cost a plugin's cold start ~0.8 ms): the pod's entry in the network's
 * pinned endpoint map, and on ADD the pinned pod program on the pod's host veth with tcx (it goes
 * with the veth). Only when the network has no pinned datapath of this version yet, the kernel
 * has no tcx, or a DEL finds the last pod gone does the caller load datapath.ts.
 */

import { closeFd } from "./attr.ts";
import { BpfMap } from "./map.ts";
import { openPinned } from "./pin.ts";
import { EP, type Endpoint, encodeEndpoint, endpointKey, MapName, mapSpecs } from "./programs/layout.ts";
import { PROGRAM_VERSIONS } from "./programs/versions.ts";
import { attachTcxFd, isNoTcx } from "./tcx.ts";

/** This version's pod program as pinned in `pinDir` (the datapath's `program("pod")` pins it there). */
const podProgramPin = (pinDir: string) => `${pinDir}/prog_pod_${PROGRAM_VERSIONS.pod}`;

const isAbsent = (err: unknown) => ["ENOENT", "ENOTDIR"].includes((err as { code?: string }).code ?? "");

/** Run `fn` on a descriptor of this version's pinned pod program; undefined when none is pinned. */
function withPodProgram<T>(pinDir: string, fn: (fd: number) => T): T | undefined {
  let fd: number;
  try {
    fd = openPinned(podProgramPin(pinDir));
  } catch (err) {
    if (isAbsent(err)) return undefined;
    throw err;
  }
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

/**
 * ADD as `Datapath.attachPod` does it with tcx, for a host veth just made (`e.ifindex`, in the
 * caller's network namespace): the endpoint, then the pinned pod program on the veth's ingress.
 * Returns false, having changed nothing, when the network has no pinned pod program of this
 * version or endpoint map yet, or the kernel has no tcx: the caller then goes through the datapath.
 */
export function attachPinnedPod(pinDir: string, e: Endpoint): boolean {
  const done = withPodProgram(pinDir, (fd) => {
    const m = BpfMap.reopen(`${pinDir}/${MapName.endpoints}`, mapSpecs().endpoints);
    if (!m) return false;
    const key = endpointKey(e.ip);
    try {
      m.update(key, encodeEndpoint(e));
      try {
        attachTcxFd(e.ifindex, "ingress", fd);
      } catch (err) {
        m.delete(key);
        if (isNoTcx(err)) return false;
        throw err;
      }
      return true;
    } finally {
      m.close();
    }
  });
  return done === true;
}

/** What removing an endpoint found: no pinned datapath, pods left, or none left. */
export type EndpointsLeft = "no-datapath" | "more" | "last";

/** What `removePinnedEndpoint` did and found. */
export interface EndpointRemoval {
  /** Whether the pod's entry was there (naming `hostIfindex`, when given) and went. */
  removed: boolean;
  left: EndpointsLeft;
}

/**
 * Remove `podIP`'s entry from an endpoint map; with `hostIfindex` (the host veth the pod had) only
 * when the entry still names that veth: a late DEL of a pod whose address has since gone to a new
 * pod must not take the new pod's entry. Returns whether an entry went.
 */
export function removeEndpointOf(m: BpfMap, podIP: string, hostIfindex?: number): boolean {
  const key = endpointKey(podIP);
  if (hostIfindex !== undefined) {
    const v = m.lookup(key);
    if (!v || new DataView(v.buffer, v.byteOffset).getUint32(EP.ifindex, true) !== hostIfindex) return false;
  }
  return m.delete(key);
}

/** Remove `podIP` from the endpoint map pinned in `pinDir` (idempotent; `hostIfindex`: see `removeEndpointOf`). */
export function removePinnedEndpoint(pinDir: string, podIP: string, hostIfindex?: number): EndpointRemoval {
  const m = BpfMap.reopen(`${pinDir}/${MapName.endpoints}`, mapSpecs().endpoints);
  if (!m) return { removed: false, left: "no-datapath" };
  try {
    const removed = removeEndpointOf(m, podIP, hostIfindex);
    return { removed, left: m.nextKey() === undefined ? "last" : "more" };
  } finally {
    m.close();
  }
}
