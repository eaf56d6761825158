/**
 * A pod's ADD on the eBPF datapath without loading the datapath itself (its program builders and
 * the rest cost a plugin's cold start ~0.8 ms): the pod's entry in the network's pinned endpoint
 * map and the pinned pod program on the pod's host veth as a cls_bpf filter (it goes with the
 * veth). Only when the network has no pinned datapath of this version yet does the caller load
 * datapath.ts. DEL's part is endpoint-del.ts.
 */

import type { NetlinkConn } from "../netlink/conn.ts";
import { closeFd } from "./attr.ts";
import { BpfMap } from "./map.ts";
import { lockPinParent, openPinned } from "./pin.ts";
import { type Endpoint, encodeEndpoint, endpointKey, MapName, mapSpecs } from "./programs/layout.ts";
import { PROGRAM_VERSIONS } from "./programs/versions.ts";
import { attachTc } from "./tc.ts";

/** This version's pod program as pinned in `pinDir` (the datapath's `program("pod")` pins it there). */
const podProgramPin = (pinDir: string) => `${pinDir}/prog_pod_${PROGRAM_VERSIONS.pod}`;

const isAbsent = (err: unknown) => ["ENOENT", "ENOTDIR"].includes((err as { code?: string }).code ?? "");

/**
 * ADD as `Datapath.attachPod` does it, for a host veth just made (`e.ifindex`, in the namespace of
 * `conn`): the endpoint, then the pinned pod program on the veth's ingress. Returns false, having
 * changed nothing, when the network has no pinned pod program of this version or endpoint map
 * yet: the caller then goes through the datapath. Under the shared pin lock (`lockPinParent`): a
 * last pod's DEL removing the pins meanwhile would leave this pod in maps no later pod shares.
 */
export function attachPinnedPod(conn: NetlinkConn, pinDir: string, e: Endpoint): boolean {
  const lock = lockPinParent(pinDir, "shared");
  try {
    return attachLocked(conn, pinDir, e);
  } finally {
    lock?.unlock();
  }
}

function attachLocked(conn: NetlinkConn, pinDir: string, e: Endpoint): boolean {
  let fd: number;
  try {
    fd = openPinned(podProgramPin(pinDir));
  } catch (err) {
    if (isAbsent(err)) return false;
    throw err;
  }
  try {
    const m = BpfMap.reopen(`${pinDir}/${MapName.endpoints}`, mapSpecs().endpoints);
    if (!m) return false;
    const key = endpointKey(e.ip);
    try {
      m.update(key, encodeEndpoint(e));
      try {
        attachTc(conn, { ifindex: e.ifindex, direction: "ingress", prog: { fd }, name: "pod" });
      } catch (err) {
        m.delete(key);
        throw err;
      }
      return true;
    } finally {
      m.close();
    }
  } finally {
    closeFd(fd);
  }
}
