/**
 * The daemon's reconcile (src/agent/reconcile.ts) over records in a temp dir, releases captured:
 * which attachments go (netns gone + no cache entry + older than the deadline; recorded before a
 * reboot, without a netns), which stay (live netns, a cache entry, too young, recorded in another
 * mount or pid namespace), newest plugin
 * first, a failed release retried, the counters; and when no grace is needed (the records' writer
 * process provably finished: gone, its pid reused, or this daemon with no request in flight).
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CniRequest } from "../../../src/agent/protocol.ts";
import { Reconciler } from "../../../src/agent/reconcile.ts";
import { listRecords, netnsIdentity, pathView, processStart, selfWriter, writeRecord, type AttachmentId, type AttachmentRecord } from "../../../src/invoke/records.ts";
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

describe("without a DEL, the grace is waited out only while an ADD may still be running", () => {
  const cache = join(tmp.path, "cache-w");
  mkdirSync(join(cache, "results"), { recursive: true });
  const GRACE = 60_000;
  const now = Date.now();
  const view = pathView();
  const me = selfWriter()!;
  /** A record of a gone netns, unknown to the cache, made just now (well within the grace). */
  const rec = (over: Partial<AttachmentRecord> = {}): AttachmentRecord => ({
    network: "n1", containerId: "w", ifName: "eth0", type: "bridge", netns: "/nonexistent/w", bootId: "", view, createdMs: now, stdin: "{}", ...over,
  });
  const reconciler = (busy?: (id: AttachmentId) => boolean) =>
    new Reconciler({ stateDir: join(tmp.path, "state-w"), cacheDir: cache, graceMs: GRACE, intervalMs: 0, ...(busy ? { busy } : {}), release: async () => ({ exitCode: 0, stdout: new Uint8Array() }), log: () => {} });
  let alive: ReturnType<typeof Bun.spawn>;
  let dead: { pid: number; start: number };

  beforeAll(async () => {
    alive = Bun.spawn(["sleep", "60"]); // our own child, killed by PID below
    const gone = Bun.spawn(["sleep", "60"]);
    const start = processStart(gone.pid)!;
    gone.kill("SIGKILL");
    await gone.exited; // reaped: its /proc entry is gone
    dead = { pid: gone.pid, start };
  });
  afterAll(async () => {
    alive.kill("SIGKILL");
    await alive.exited;
  });

  test("this process knows itself as a writer", () => {
    expect(me.pid).toBe(process.pid);
    expect(me.start).toBe(processStart("self")!);
    expect(processStart(alive.pid)).toBeGreaterThan(0);
    expect(processStart(dead.pid)).toBeUndefined();
  });

  test("writer alive: not released before the grace, released after it", () => {
    const r = rec({ writerPid: alive.pid, writerStart: processStart(alive.pid)! });
    expect(reconciler().verdict([r], "", now)).toBeUndefined();
    expect(reconciler().verdict([r], "", now + GRACE)).toBe("netns-gone");
  });

  test("writer dead: released at once", () => {
    expect(reconciler().verdict([rec({ writerPid: dead.pid, writerStart: dead.start })], "", now)).toBe("netns-gone");
  });

  test("writer's pid reused (a process with another start time): released at once", () => {
    expect(reconciler().verdict([rec({ writerPid: alive.pid, writerStart: processStart(alive.pid)! - 1 })], "", now)).toBe("netns-gone");
  });

  test("one writer of the attachment alive (a later plugin's ADD running): the grace holds for all", () => {
    const group = [rec({ writerPid: dead.pid, writerStart: dead.start }), rec({ type: "portmap", writerPid: alive.pid, writerStart: processStart(alive.pid)! })];
    expect(reconciler().verdict(group, "", now)).toBeUndefined();
  });

  test("written by this daemon: at once unless a request for that container and ifname is in flight", () => {
    const r = rec({ writerPid: me.pid, writerStart: me.start });
    const asked: AttachmentId[] = [];
    expect(reconciler((id) => (asked.push(id), true)).verdict([r], "", now)).toBeUndefined();
    expect(asked[0]).toMatchObject({ network: "n1", containerId: "w", ifName: "eth0" });
    expect(reconciler(() => false).verdict([r], "", now)).toBe("netns-gone");
    // no busy callback: whether a request is in flight cannot be told
    expect(reconciler().verdict([r], "", now)).toBeUndefined();
    expect(reconciler(() => true).verdict([r], "", now + GRACE)).toBe("netns-gone");
  });

  test("records that do not name their writer, or name it in another view: the grace rule", () => {
    expect(reconciler(() => false).verdict([rec()], "", now)).toBeUndefined();
    expect(reconciler(() => false).verdict([rec()], "", now + GRACE)).toBe("netns-gone");
    expect(reconciler().verdict([rec({ writerPid: dead.pid })], "", now)).toBeUndefined(); // no start time
    expect(reconciler().verdict([rec({ view: undefined, writerPid: dead.pid, writerStart: dead.start })], "", now)).toBeUndefined();
    expect(reconciler().verdict([rec({ writerPid: dead.pid, writerStart: dead.start }), rec({ type: "portmap" })], "", now)).toBeUndefined();
  });

  test("a dead writer's attachment still waits for a live netns or a cache entry", () => {
    const w = { writerPid: dead.pid, writerStart: dead.start };
    expect(reconciler().verdict([rec({ ...w, netns: SELF_NS, netnsId: netnsIdentity(SELF_NS)! })], "", now)).toBeUndefined();
    writeFileSync(join(cache, "results", "n1-cached-eth0"), "{}");
    expect(reconciler().verdict([rec({ ...w, containerId: "cached" })], "", now)).toBeUndefined();
  });
});
