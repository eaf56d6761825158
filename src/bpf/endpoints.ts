/**
 * A pod's ADD on the eBPF datapath without loading the datapath itself (its program builders and
 * the rest cost a plugin's cold start ~0.8 ms): the pod's entry in the network's pinned endpoint
 * map and the pinned pod program on the pod's host veth as a cls_bpf filter (it goes with the
 * veth). Only when the network has no pinned datapath of this version yet does the caller load
 * datapath.ts. DEL's part is endpoint-del.ts, whose raw `bpf()` pieces this uses too (through
 * BpfMap and the modules behind it the same steps cost an overlay ADD ~0.25 ms more).
 */

import type { NetlinkConn } from "../netlink/conn.ts";
import { closeFile } from "../sys/file.ts";
import { elemCall, endpointKey, endpointValue, getPinned, MAP_DELETE_ELEM, MAP_UPDATE_ELEM, openEndpointMap } from "./endpoint-del.ts";
import { lockPinParent } from "./pin.ts";
import type { Endpoint } from "./programs/layout.ts";
import { PROGRAM_VERSIONS } from "./programs/versions.ts";
import { attachTc } from "./tc.ts";

/** This version's pod program as pinned in `pinDir` (the datapath's `program("pod")` pins it there). */
const podProgramPin = (pinDir: string) => `${pinDir}/prog_pod_${PROGRAM_VERSIONS.pod}`;

/**
 * ADD as `Datapath.attachPod` does it, for a host veth just made (`e.ifindex`, in the namespace of
 * `conn`): the endpoint, then the pinned pod program on the veth's ingress. Returns false, having
 * changed nothing, when the network has no pinned pod program of this version or endpoint map
 * yet: the caller then goes through the datapath. Under the shared pin lock (`lockPinParent`): a
 * last pod's DEL removing the pins meanwhile would leave this pod in maps no later pod shares.
 */
export function attachPinnedPod(conn: NetlinkConn, pinDir: string, e: Endpoint): boolean {
  const key = endpointKey(e.ip);
  const value = endpointValue(e);
  const lock = lockPinParent(pinDir, "shared");
  try {
    const prog = getPinned(podProgramPin(pinDir));
    if (prog === undefined) return false;
    try {
      const map = openEndpointMap(pinDir);
      if (map === undefined) return false;
      try {
        elemCall(MAP_UPDATE_ELEM, map, key, value);
        try {
          attachTc(conn, { ifindex: e.ifindex, direction: "ingress", prog: { fd: prog }, name: "pod" });
        } catch (err) {
          elemCall(MAP_DELETE_ELEM, map, key, null);
          throw err;
        }
        return true;
      } finally {
        closeFile(map);
      }
    } finally {
      closeFile(prog);
    }
  } finally {
    lock?.unlock();
  }
}
