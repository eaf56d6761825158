/**
 * The node daemon: each plugin run as its own process as a runtime does (cnikit-shim talking to
 * `cnikit agent`), against the reference Go plugins in one run (interleaved):
 *   - plugin start (VERSION) against Go `bridge` VERSION (target 0.4x);
 *   - bridge + host-local ADD and DEL (target 0.5x);
 *   - standalone through the shim (no daemon) against today's standalone binary (target: +2 ms);
 *   - 100 pods ADDed at once, then DELeted at once (target: all networked within 1 s);
 *   - the daemon's RSS with 100 pods attached (target: at most 80 MiB).
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assertPrivate, median, pluginDirs, REFERENCE_DIR, report, runPlugin, startDaemon } from "./lib.ts";

assertPrivate();
const ITER = Number(process.env.BENCH_ITER ?? 20);
const WARMUP = 3;
const PODS = Number(process.env.BENCH_PODS ?? 100);
const standalone = pluginDirs(); // links to the binary: today's standalone runs
const shimmed = pluginDirs({ shim: true }); // links to cnikit-shim
const data = mkdtempSync(join(tmpdir(), "cnikit-bench-daemon-"));
const noDaemon = join(data, "none", "cni.sock");
const tag = `ckb${process.pid % 1000}`;
const bridges = new Set<string>();

function conf(name: string, subnet: string): string {
  const bridge = `${tag}${name}`;
  bridges.add(bridge);
  return JSON.stringify({ cniVersion: "1.0.0", name: `bench-${name}`, type: "bridge", bridge, isGateway: true, ipam: { type: "host-local", ranges: [[{ subnet }]], dataDir: join(data, "ipam", name) } });
}

function env(dir: string, cmd: string, cid: string, netns: string, sock: string): Record<string, string> {
  return { PATH: process.env.PATH!, CNIKIT_SOCKET: sock, CNI_COMMAND: cmd, CNI_CONTAINERID: cid, CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: dir };
}

/** The sides of a comparison: a plugin dir, a socket, a config. */
interface Side {
  dir: string;
  sock: string;
  conf: string;
}

/** VERSION of `bridge` on each side, interleaved. */
async function version(sides: Record<string, Side>): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = Object.fromEntries(Object.keys(sides).map((k) => [k, []]));
  for (let i = 0; i < WARMUP + ITER * 2; i++) {
    const names = Object.keys(sides);
    for (const side of i % 2 ? names.reverse() : names) {
      const s = sides[side]!;
      const r = await runPlugin(join(s.dir, "bridge"), { PATH: process.env.PATH!, CNIKIT_SOCKET: s.sock, CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}');
      if (i >= WARMUP) out[side]!.push(r.ms);
    }
  }
  return out;
}

/** bridge + host-local ADD then DEL of one pod on each side, interleaved. */
async function addDel(sides: Record<string, Side>): Promise<{ add: Record<string, number[]>; del: Record<string, number[]> }> {
  const add: Record<string, number[]> = Object.fromEntries(Object.keys(sides).map((k) => [k, []]));
  const del: Record<string, number[]> = Object.fromEntries(Object.keys(sides).map((k) => [k, []]));
  for (let i = 0; i < WARMUP + ITER; i++) {
    const names = Object.keys(sides);
    for (const side of i % 2 ? names.reverse() : names) {
      const s = sides[side]!;
      const ns = `${tag}-${side.slice(0, 3)}${i}`;
      Bun.spawnSync(["ip", "netns", "add", ns]);
      const netns = `/run/netns/${ns}`;
      try {
        const file = join(s.dir, "bridge");
        const a = await runPlugin(file, env(s.dir, "ADD", ns, netns, s.sock), s.conf);
        const d = await runPlugin(file, env(s.dir, "DEL", ns, netns, s.sock), s.conf);
        if (i >= WARMUP) {
          add[side]!.push(a.ms);
          del[side]!.push(d.ms);
        }
      } finally {
        Bun.spawnSync(["ip", "netns", "del", ns]);
      }
    }
  }
  return { add, del };
}

/** PODS pods ADDed at once (each reaching its gateway), then DELeted at once; wall times in ms. */
async function many(side: string, s: Side, gateway: string, after?: () => void): Promise<{ add: number; del: number }> {
  const pods = Array.from({ length: PODS }, (_, i) => `${tag}-m${side[0]}${i}`);
  for (const p of pods) Bun.spawnSync(["ip", "netns", "add", p]);
  try {
    const file = join(s.dir, "bridge");
    const t0 = performance.now();
    await Promise.all(pods.map((p) => runPlugin(file, env(s.dir, "ADD", p, `/run/netns/${p}`, s.sock), s.conf)));
    const add = performance.now() - t0;
    const down = pods.filter((p) => Bun.spawnSync(["ip", "netns", "exec", p, "ping", "-c", "1", "-W", "1", gateway]).exitCode !== 0);
    if (down.length > 0) throw new Error(`${side}: ${down.length} pods cannot reach ${gateway}`);
    after?.();
    const t1 = performance.now();
    await Promise.all(pods.map((p) => runPlugin(file, env(s.dir, "DEL", p, `/run/netns/${p}`, s.sock), s.conf)));
    return { add, del: performance.now() - t1 };
  } finally {
    for (const p of pods) Bun.spawnSync(["ip", "netns", "del", p]);
  }
}

let ok = true;
const daemon = await startDaemon(data, shimmed.cnikit).catch((e) => {
  rmSync(data, { recursive: true, force: true });
  standalone.remove();
  shimmed.remove();
  throw e;
});
const socket = daemon.socket;
try {
  const ref: Side = { dir: standalone.reference, sock: noDaemon, conf: conf("r", "10.124.0.0/16") };
  const viaDaemon: Side = { dir: shimmed.cnikit, sock: socket, conf: conf("d", "10.123.0.0/16") };

  const v = await version({ daemon: { ...viaDaemon }, reference: { ...ref, dir: REFERENCE_DIR } });
  const b = await addDel({ daemon: viaDaemon, reference: ref });
  ok = report(`shim + daemon against the reference (${ITER} runs each, each plugin a process)`, [
    { what: "VERSION (Go bridge)", cnikit: v.daemon!, reference: v.reference!, target: 0.4 },
    { what: "bridge + host-local ADD", cnikit: b.add.daemon!, reference: b.add.reference!, target: 0.5 },
    { what: "bridge + host-local DEL", cnikit: b.del.daemon!, reference: b.del.reference!, target: 0.5 },
  ]) && ok;

  // no daemon: the shim execs the standalone binary; against today's standalone (links to the binary)
  const sv = await version({ shim: { dir: shimmed.cnikit, sock: noDaemon, conf: "" }, today: { dir: standalone.cnikit, sock: noDaemon, conf: "" } });
  const sb = await addDel({ shim: { dir: shimmed.cnikit, sock: noDaemon, conf: conf("s", "10.125.0.0/16") }, today: { dir: standalone.cnikit, sock: noDaemon, conf: conf("t", "10.126.0.0/16") } });
  console.log("\nstandalone through the shim (no daemon) against today's standalone (target: at most +2 ms)");
  for (const [what, x] of [["VERSION", sv], ["bridge + host-local ADD", sb.add], ["bridge + host-local DEL", sb.del]] as const) {
    const d = median(x.shim!) - median(x.today!);
    const pass = d <= 2;
    ok &&= pass;
    console.log(`${what.padEnd(28)} ${(d >= 0 ? "+" : "") + d.toFixed(1)} ms  (${median(x.shim!).toFixed(1)} / ${median(x.today!).toFixed(1)})${pass ? "" : "  MISSED"}`);
  }

  let rss = 0;
  const md = await many("daemon", { ...viaDaemon, conf: conf("D", "10.127.0.0/16") }, "10.127.0.1", () => (rss = daemon.rssMiB()));
  const mr = await many("reference", { ...ref, conf: conf("R", "10.128.0.0/16") }, "10.128.0.1");
  console.log(`\n${PODS} pods at once (each plugin a process; wall time, all reaching their gateway)`);
  const addPass = md.add <= 1000;
  ok &&= addPass;
  console.log(`${"ADD all".padEnd(28)} ${(md.add / mr.add).toFixed(2).padStart(6)}x  (${md.add.toFixed(0)} / ${mr.add.toFixed(0)} ms; target: within 1000 ms)${addPass ? "" : "  MISSED"}`);
  console.log(`${"DEL all".padEnd(28)} ${(md.del / mr.del).toFixed(2).padStart(6)}x  (${md.del.toFixed(0)} / ${mr.del.toFixed(0)} ms)`);
  const rssPass = rss <= 80;
  ok &&= rssPass;
  console.log(`daemon RSS with ${PODS} pods attached: ${rss.toFixed(1)} MiB (target: at most 80 MiB)${rssPass ? "" : "  MISSED"}`);
} finally {
  await daemon.stop();
  for (const br of bridges) Bun.spawnSync(["ip", "link", "del", br]);
  rmSync(data, { recursive: true, force: true });
  standalone.remove();
  shimmed.remove();
}
process.exit(ok ? 0 : 1);
