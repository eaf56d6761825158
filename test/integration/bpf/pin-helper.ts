/**
 * One "agent run" for pinning.test.ts, started as its own process (inside the test's network
 * namespace and a private mount namespace of its own): prints one JSON line of what it found.
 *   setup ROOT  IP IFINDEX PODMAC HOSTMAC   mount a bpffs on ROOT if none, open ROOT/net, attach a pod
 *   reopen ROOT IP IFINDEX PODMAC HOSTMAC   reopen the pinned datapath, attach another pod
 *   destroy ROOT IP IFINDEX [IP IFINDEX...] DEL every pod given; the last one removes the pins
 */
import { assertPrivateNetns } from "../../support/netns.ts";
assertPrivateNetns();

import { attachPodDatapath, detachPodDatapath, openPinnedDatapath } from "../../../src/bpf/datapath.ts";
import { ensureBpffs } from "../../../src/bpf/pin.ts";
import { listTc } from "../../../src/bpf/tc.ts";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { listDir } from "../../../src/sys/file.ts";

const [phase, root, ...rest] = process.argv.slice(2);
const pinDir = `${root}/net`;
const conn = NetlinkConn.open();
const pins = () => {
  try {
    return listDir(pinDir).sort();
  } catch {
    return [];
  }
};

if (phase === "setup" || phase === "reopen") {
  const mounted = ensureBpffs(root!);
  const [podIP, ifindex, podMac, hostMac] = rest as [string, string, string, string];
  attachPodDatapath(conn, { pinDir, podIP, hostIfindex: Number(ifindex), podMac, hostMac });
  const dp = openPinnedDatapath(pinDir)!;
  const progPin = pins().find((p) => p.startsWith("prog_pod_"));
  console.log(JSON.stringify({ mounted, pins: pins(), endpoints: dp.endpoints().map((e) => e.ip).sort(), progId: dp.program("pod").id, progPin, attached: listTc(conn).map((t) => t.progId) }));
  dp.close();
} else if (phase === "destroy") {
  const last: boolean[] = [];
  for (let i = 0; i < rest.length; i += 2) last.push(detachPodDatapath(conn, { pinDir, podIP: rest[i]!, hostIfindex: Number(rest[i + 1]) }));
  console.log(JSON.stringify({ last, pins: pins(), dirGone: !listDir(root!).includes("net"), attached: listTc(conn).length }));
}
conn.close();
