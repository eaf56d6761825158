/**
 * A pod's DEL on the eBPF datapath without loading the datapath itself (its program builders,
 * tc and the rest cost a plugin's cold start ~0.8 ms): remove the pod from the network's pinned
 * endpoint map and tell whether it was the last. Only then does the caller load datapath.ts for
 * `afterLastPod`.
 */

import { BpfMap } from "./map.ts";
import { EP, endpointKey, MapName, mapSpecs } from "./programs/layout.ts";

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
