/**
 * The daemon's reconcile (src/agent/reconcile.ts) over records in a temp dir, releases captured:
 * which attachments go (netns gone + no cache entry + older than the deadline; recorded before a
 * reboot, without a netns), which stay (live netns, a cache entry, too young, recorded in another
 * mount or pid namespace), newest plugin
 * first, a failed release retried, the counters.
 */

import { afterAll, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CniRequest } from "../../../src/agent/protocol.ts";
import { Reconciler } from "../../../src/agent/reconcile.ts";
import { listRecords, netnsIdentity, writeRecord, type AttachmentRecord } from "../../../src/invoke/records.ts";
import { tempDir } from "../../support/netns.ts";

const tmp = tempDir("ckr-reconcile");
afterAll(() => tmp.remove());

const SELF_NS = "/proc/self/ns/net";

test("reconcile releases exactly the attachments whose pod is gone", async () => {
  const state = join(tmp.path, "state");
  const cache = join(tmp.path, "cache");
  const boot = join(tmp.path, "boot");
  writeFileSync(boot, "boot-2\n");
  mkdirSync(join(cache, "results"), { recursive: true });
  const old = Date.now() - 60_000;
  const rec = (cid: string, over: Partial<AttachmentRecord> = {}): AttachmentRecord => ({
    network: "n1", containerId: cid, ifName: "eth0", type: "bridge", netns: `/nonexistent/${cid}`, bootId: "boot-2", createdMs: old, stdin: '{"cniVersion":"1.0.0","name":"n1","type":"bridge"}', ...over,
  });
  writeRecord(state, rec("gone"));
  writeRecord(state, rec("gone", { type: "host-local", createdMs: old + 5, result: { cniVersion: "1.1.0", ips: [{ address: "10.1.0.7/24" }] } }));
  writeRecord(state, rec("gone", { type: "portmap", createdMs: old + 10 }));
  writeRecord(state, rec("alive", { netns: SELF_NS, netnsId: netnsIdentity(SELF_NS)! }));
  writeRecord(state, rec("cached"));
  writeFileSync(join(cache, "results", "n1-cached-eth0"), "{}");
  writeRecord(state, rec("young", { createdMs: Date.now() }));
  // before the reboot: released even though the netns path exists now (and sent without it)
  writeRecord(state, rec("rebooted", { bootId: "boot-1", netns: SELF_NS, netnsId: netnsIdentity(SELF_NS)!, createdMs: Date.now() }));
  writeRecord(state, rec("failing"));
  // written in another mount or pid namespace: its netns path means nothing here
  writeRecord(state, rec("elsewhere", { view: "0:1|0:2" }));
  const released: CniRequest[] = [];
  const logs: Record<string, unknown>[] = [];
  let failing = true;
  const r = new Reconciler({
    stateDir: state, cacheDir: cache, graceMs: 10_000, intervalMs: 0, bootIdFile: boot,
    release: async (req) => {
      released.push(req);
      const bad = failing && req.env.CNI_CONTAINERID === "failing";
      return { exitCode: bad ? 1 : 0, stdout: new TextEncoder().encode(bad ? '{"code":11,"msg":"busy"}' : "") };
    },
    log: (e) => logs.push(e),
  });
  await r.start();
  const seen = released.map((q) => `${q.env.CNI_CONTAINERID}:${q.type}`);
  expect(seen.filter((s) => s.startsWith("gone"))).toEqual(["gone:portmap", "gone:host-local", "gone:bridge"]); // newest first
  expect(seen.filter((s) => !s.startsWith("gone")).sort()).toEqual(["failing:bridge", "rebooted:bridge"]);
  for (const q of released) {
    expect(q.env.CNI_COMMAND).toBe("DEL");
    expect(q.env.CNI_NETNS).toBeUndefined();
    expect(q.env.CNIKIT_STATE_DIR).toBe(state);
  }
  // bridge's DEL gets the IPAM's addresses as prevResult
  const bridgeDel = released.find((q) => q.env.CNI_CONTAINERID === "gone" && q.type === "bridge")!;
  expect(JSON.parse(new TextDecoder().decode(bridgeDel.stdin)).prevResult.ips[0].address).toBe("10.1.0.7/24");
  expect(listRecords(state, "n1").map((x) => x.containerId).sort()).toEqual(["alive", "cached", "elsewhere", "failing", "young"]);
  expect(r.released).toEqual({ reboot: 1, "netns-gone": 1 });
  expect(r.failures).toBe(1);
  expect(logs.filter((l) => l.msg === "reconcile: released attachment").map((l) => l.container).sort()).toEqual(["gone", "rebooted"]);
  // the next run retries the failed release
  failing = false;
  await r.runOnce();
  expect(listRecords(state, "n1").map((x) => x.containerId).sort()).toEqual(["alive", "cached", "elsewhere", "young"]);
  expect(r.metricsText()).toContain('cnikit_reconcile_released_total{reason="netns-gone"} 2');
  expect(r.metricsText()).toContain('cnikit_reconcile_released_total{reason="reboot"} 1');
  expect(r.metricsText()).toContain("cnikit_reconcile_failures_total 1");
  await r.stop();
});
