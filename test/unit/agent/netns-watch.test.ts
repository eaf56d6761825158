/**
 * The watch that starts a reconcile pass soon after a netns file goes (src/agent/netns-watch.ts):
 * a file removed calls back once per burst, a file added does not, the directories of the paths
 * given are watched until closed (/proc skipped); and a periodic Reconciler releases a dead writer's attachment ~250 ms
 * after its netns file goes, long before its next periodic pass.
 */

import { afterAll, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NetnsWatch } from "../../../src/agent/netns-watch.ts";
import { Reconciler } from "../../../src/agent/reconcile.ts";
import { listRecords, netnsIdentity, pathView, processStart, writeRecord } from "../../../src/invoke/records.ts";
import { tempDir } from "../../support/netns.ts";

const tmp = tempDir("ckr-nswatch");
afterAll(() => tmp.remove());

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (cond()) return true;
    await Bun.sleep(20);
  }
  return cond();
}

test("a netns file removed calls back once per burst; one added does not", async () => {
  const dir = join(tmp.path, "netns");
  const other = join(tmp.path, "other");
  mkdirSync(dir, { recursive: true });
  mkdirSync(other, { recursive: true });
  for (const n of ["a", "b", "c"]) writeFileSync(join(dir, n), "");
  let calls = 0;
  const w = new NetnsWatch(() => calls++, 100);
  w.add([join(dir, "a"), join(dir, "b"), join(other, "x"), "/proc/123/ns/net", ""]);
  expect(w.directories.sort()).toEqual([dir, other].sort());
  writeFileSync(join(dir, "d"), "");
  await Bun.sleep(300);
  expect(calls).toBe(0);
  rmSync(join(dir, "a"));
  rmSync(join(dir, "b"));
  expect(await until(() => calls > 0, 2_000)).toBe(true);
  await Bun.sleep(300);
  expect(calls).toBe(1); // both in one burst
  w.add([join(dir, "c")]);
  expect(w.directories.sort()).toEqual([dir, other].sort());
  w.close();
  rmSync(join(dir, "c"));
  await Bun.sleep(300);
  expect(calls).toBe(1);
  expect(w.directories).toEqual([]);
});

test("a periodic reconcile releases a finished ADD's attachment soon after its netns file goes", async () => {
  const state = join(tmp.path, "state");
  const cache = join(tmp.path, "cache");
  const nsDir = join(tmp.path, "run-netns");
  mkdirSync(join(cache, "results"), { recursive: true });
  mkdirSync(nsDir, { recursive: true });
  const netns = join(nsDir, "pod1"); // stands in for a netns file: its identity is its dev:ino
  const gone = Bun.spawn(["true"]);
  const start = processStart(gone.pid) ?? 1;
  await gone.exited;
  // a finished ADD's record (its writer gone) of a netns file that exists now
  const record = (containerId: string, path: string) => {
    writeFileSync(path, "");
    writeRecord(state, {
      network: "n1", containerId, ifName: "eth0", type: "bridge", netns: path, netnsId: netnsIdentity(path)!, bootId: "", view: pathView(),
      writerPid: gone.pid, writerStart: start, createdMs: Date.now(), stdin: '{"cniVersion":"1.0.0","name":"n1","type":"bridge"}',
    });
  };
  record("p1", netns);
  const released: string[] = [];
  const r = new Reconciler({
    stateDir: state, cacheDir: cache, graceMs: 120_000, intervalMs: 60_000,
    release: async (req) => (released.push(req.env.CNI_CONTAINERID!), { exitCode: 0, stdout: new Uint8Array() }),
    log: () => {},
  });
  await r.start();
  expect(released).toEqual([]); // its netns is there
  expect(r.watching).toEqual([nsDir]);
  const t0 = Date.now();
  rmSync(netns);
  expect(await until(() => released.length > 0, 3_000)).toBe(true);
  const ms = Date.now() - t0;
  expect(released).toEqual(["p1"]);
  expect(ms).toBeLessThan(3_000);
  expect(listRecords(state, "n1")).toEqual([]);
  // a pod made and gone before the next periodic pass: seen too (the directory stays watched)
  record("p2", join(nsDir, "pod2"));
  rmSync(join(nsDir, "pod2"));
  expect(await until(() => released.length > 1, 3_000)).toBe(true);
  expect(released).toEqual(["p1", "p2"]);
  await r.stop();
  expect(r.watching).toEqual([]);
});
