/**
 * A pod's DEL on the eBPF datapath without loading the datapath itself (its program builders,
 * tc and the rest cost a plugin's cold start ~0.8 ms): remove the pod from the network's pinned
 * endpoint map and tell whether it was the last. Only then does the caller load datapath.ts for
 * `afterLastPod`.
 */

import { BpfMap } from "./map.ts";
import { endpointKey, MapName, mapSpecs } from "./programs/layout.ts";

/** What removing an endpoint found: no pinned datapath, pods left, or none left. */
export type EndpointRemoval = "no-datapath" | "more" | "last";

/** Remove `podIP` from the endpoint map pinned in `pinDir` (idempotent). */
export function removePinnedEndpoint(pinDir: string, podIP: string): EndpointRemoval {
  const m = BpfMap.reopen(`${pinDir}/${MapName.endpoints}`, mapSpecs().endpoints);
  if (!m) return "no-datapath";
  try {
    m.delete(endpointKey(podIP));
    return m.nextKey() === undefined ? "last" : "more";
  } finally {
    m.close();
  }
}
