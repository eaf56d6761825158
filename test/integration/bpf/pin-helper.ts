/**
 * One "agent run" for pinning.test.ts, started as its own process (inside the test's network
 * namespace and a private mount namespace of its own): prints one JSON line of what it found.
 *   setup ROOT  IP IFINDEX PODMAC HOSTMAC   mount a bpffs on ROOT if none, open ROOT/net, attach a pod
 *                                           (the pinned-only path first: it must decline, nothing is pinned)
 *   reopen ROOT IP IFINDEX PODMAC HOSTMAC   attach another pod by the pinned program and map alone, as
 *                                           overlay's ADD does for every pod but a network's first
 *   destroy ROOT IP IFINDEX [IP IFINDEX...] DEL every pod given, the first as overlay's DEL does (its
 *                                           endpoint by the pin, no datapath; its program goes with
 *                                           its host veth, deleted here), the rest in one call; the
 *                                           last one removes the pins
 *   endpoint-del ROOT                       endpoint-del.ts on maps pinned under ROOT/ed (a late DEL,
 *                                           the pod's own, one without a host veth, the last, none
 *                                           pinned, a map of another layout)
 *   race ROOT IP IFINDEX PODMAC HOSTMAC IFINDEX2   (and a pinned-only ADD the kernel refuses: no endpoint left)
 *                                           the pin lock: the last pod's DEL (a child process) waits
 *                                           for an ADD holding it and then keeps the pins for that
 *                                           ADD's pod; an ADD (a child, on IFINDEX2) waits for a last
 *                                           pod's DEL holding it and then finds nothing pinned
 *   last-del ROOT IP IFINDEX                (race's child) overlay's DEL of one pod: endpoint, afterLastPod
 *   pinned-add ROOT IP IFINDEX PODMAC HOSTMAC  (race's child) overlay's pinned-only ADD
 */
import { assertPrivateNetns } from "../../support/netns.ts";
assertPrivateNetns();

import { afterLastPod, attachPodDatapath, detachPodDatapath, openPinnedDatapath } from "../../../src/bpf/datapath.ts";
import { removePinnedEndpoint } from "../../../src/bpf/endpoint-del.ts";
import { attachPinnedPod } from "../../../src/bpf/endpoints.ts";
import { BpfMap } from "../../../src/bpf/map.ts";
import { encodeEndpoint, endpointKey, mapSpecs } from "../../../src/bpf/programs/layout.ts";
import { deleteLink } from "../../../src/net/link.ts";
import { ensureBpffs, lockPinParent } from "../../../src/bpf/pin.ts";
import { listTc, removeClsact } from "../../../src/bpf/tc.ts";
import { NetlinkConn } from "../../../src/netlink/conn.ts";
import { listDir, makeDir } from "../../../src/sys/file.ts";

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
  const fast = attachPinnedPod(conn, pinDir, { ip: podIP, ifindex: Number(ifindex), podMac, hostMac });
  // what a declined pinned-only attach left: it must be nothing
  const declined = fast ? null : { pins: pins(), attached: listTc(conn).length };
  if (!fast) attachPodDatapath(conn, { pinDir, podIP, hostIfindex: Number(ifindex), podMac, hostMac });
  const dp = openPinnedDatapath(pinDir)!;
  const progPin = pins().find((p) => p.startsWith("prog_pod_"));
  console.log(JSON.stringify({ mounted, fast, declined, pins: pins(), endpoints: dp.endpoints().map((e) => e.ip).sort(), progId: dp.program("pod").id, progPin, attached: listTc(conn).map((t) => t.progId) }));
  dp.close();
} else if (phase === "destroy") {
  const [ip0, if0] = [rest[0]!, Number(rest[1])];
  const first = removePinnedEndpoint(pinDir, ip0, if0);
  const attachedBefore = listTc(conn).length;
  deleteLink(conn, if0);
  const fastDel = { ...first, again: removePinnedEndpoint(pinDir, ip0, if0).removed, attachedBefore, attachedAfter: listTc(conn).length };
  const last: boolean[] = [first.left === "last"];
  for (let i = 2; i < rest.length; i += 2) last.push(detachPodDatapath(conn, { pinDir, podIP: rest[i]!, hostIfindex: Number(rest[i + 1]) }));
  console.log(JSON.stringify({ fastDel, last, pins: pins(), dirGone: !listDir(root!).includes("net"), attached: listTc(conn).length }));
} else if (phase === "endpoint-del") {
  ensureBpffs(root!);
  const dir = `${root}/ed`;
  makeDir(dir);
  const m = BpfMap.create(mapSpecs({ maxEndpoints: 8 }).endpoints);
  m.pin(`${dir}/endpoints`);
  const put = (ip: string, ifindex: number) => m.update(endpointKey(ip), encodeEndpoint({ ifindex, podMac: "0a:00:00:00:00:01", hostMac: "0e:00:00:00:00:01" }));
  const has = (ip: string) => m.lookup(endpointKey(ip)) !== undefined;
  put("10.82.0.2", 42);
  put("10.82.0.3", 43);
  // a late DEL (its address went to a new pod on host veth 42) leaves the new pod's entry
  const late = { ...removePinnedEndpoint(dir, "10.82.0.2", 41), kept: has("10.82.0.2") };
  const own = { ...removePinnedEndpoint(dir, "10.82.0.2", 42), gone: !has("10.82.0.2") };
  const again = removePinnedEndpoint(dir, "10.82.0.2", 42);
  // what an older cnikit kept names no host veth: the entry goes whatever it names
  const noVeth = { ...removePinnedEndpoint(dir, "10.82.0.3"), gone: !has("10.82.0.3") };
  const none = removePinnedEndpoint(`${root}/none`, "10.82.0.3", 43);
  // a map of another layout under the name: refused, left as it was
  makeDir(`${root}/bad`);
  const bad = BpfMap.create({ ...mapSpecs().endpoints, valueSize: 8, maxEntries: 2, name: "ck_bad" });
  bad.update(endpointKey("10.82.0.4"), new Uint8Array(8));
  bad.pin(`${root}/bad/endpoints`);
  let otherLayout = "";
  try {
    removePinnedEndpoint(`${root}/bad`, "10.82.0.4");
  } catch (err) {
    otherLayout = (err as { code?: string }).code ?? String(err);
  }
  const badKept = bad.lookup(endpointKey("10.82.0.4")) !== undefined;
  console.log(JSON.stringify({ late, own, again, noVeth, none, otherLayout, badKept }));
  m.close();
  bad.close();
} else if (phase === "race") {
  ensureBpffs(root!);
  const [podIP, ifindex, podMac, hostMac, ifindex2] = rest as [string, string, string, string, string];
  attachPodDatapath(conn, { pinDir, podIP, hostIfindex: Number(ifindex), podMac, hostMac });
  /** A child phase, started once it says it is about to take the lock; its JSON line when done. */
  const child = async (args: string[]) => {
    const p = Bun.spawn([process.execPath, import.meta.path, ...args], { stdout: "pipe", stderr: "inherit" });
    const reader = p.stdout.getReader();
    let out = "";
    while (!out.includes("ready\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`child ${args[0]} ended before it was ready: ${out}`);
      out += new TextDecoder().decode(value);
    }
    // a child the lock does not hold back is done well within this
    await Bun.sleep(300);
    const waited = p.exitCode === null;
    return {
      waited,
      done: async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          out += new TextDecoder().decode(value);
        }
        await p.exited;
        return JSON.parse(out.slice(out.indexOf("ready\n") + 6));
      },
    };
  };
  // 1. an ADD holds the lock (it has opened the pins) when the last pod's DEL comes
  const add = lockPinParent(pinDir, "shared")!;
  const del = await child(["last-del", root!, podIP, ifindex]);
  const delWaited = del.waited && pins().length > 0;
  const m = BpfMap.reopen(`${pinDir}/endpoints`, mapSpecs().endpoints);
  if (!m) {
    // the DEL did not wait: the pins went under the ADD
    console.log(JSON.stringify({ delWaited, del: await del.done(), pins: pins() }));
    process.exit(0);
  }
  m.update(endpointKey("10.81.0.9"), encodeEndpoint({ ifindex: Number(ifindex2), podMac, hostMac })); // the ADD's pod
  m.close();
  add.unlock();
  const delOut = await del.done();
  // 2. the last pod's DEL holds the lock (it is removing the pins) when an ADD comes
  const dp = openPinnedDatapath(pinDir)!;
  const afterDel = { pins: pins().length, endpoints: dp.endpoints().map((e) => e.ip) };
  // a pinned-only ADD whose filter the kernel refuses (no such device) takes its endpoint out again
  let failedAdd = "";
  try {
    attachPinnedPod(conn, pinDir, { ip: "10.81.0.11", ifindex: 0x7ffffff0, podMac, hostMac });
  } catch (err) {
    failedAdd = (err as { code?: string }).code ?? String(err);
  }
  const failedAddLeft = dp.endpoints().map((e) => e.ip);
  dp.removeEndpoint("10.81.0.9");
  const last = lockPinParent(pinDir, "exclusive")!;
  const add2 = await child(["pinned-add", root!, "10.81.0.10", ifindex2, podMac, hostMac]);
  const addWaited = add2.waited;
  dp.destroy();
  last.unlock();
  const addOut = await add2.done();
  removeClsact(conn, Number(ifindex));
  console.log(JSON.stringify({ delWaited, del: delOut, afterDel, failedAdd, failedAddLeft, addWaited, add: addOut, pins: pins(), attached: listTc(conn).length }));
} else if (phase === "last-del") {
  const [podIP, ifindex] = rest as [string, string];
  console.log("ready");
  const r = removePinnedEndpoint(pinDir, podIP, Number(ifindex));
  if (r.left === "last") afterLastPod(pinDir);
  console.log(JSON.stringify({ left: r.left }));
} else if (phase === "pinned-add") {
  const [podIP, ifindex, podMac, hostMac] = rest as [string, string, string, string];
  console.log("ready");
  console.log(JSON.stringify({ fast: attachPinnedPod(conn, pinDir, { ip: podIP, ifindex: Number(ifindex), podMac, hostMac }), attached: listTc(conn, { ifindex: Number(ifindex) }).length }));
}
conn.close();
