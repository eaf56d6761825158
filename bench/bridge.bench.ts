/**
 * bridge + host-local ADD and DEL, each plugin run as its own process as a runtime would, cnikit
 * against the reference in one run (interleaved). Target: cnikit at most 0.5x for both.
 * Also host-local alone (the IPAM step every pod pays).
 */

import { existsSync } from "node:fs";
import { join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { assertPrivate, pluginDirs, report, runPlugin } from "./lib.ts";

assertPrivate();
const ITER = Number(process.env.BENCH_ITER ?? 20);
const WARMUP = 3;
const dirs = pluginDirs();
const data = mkdtempSync(join(tmpdir(), "cnikit-bench-data-"));
const tag = `ckb${process.pid % 1000}`;

function conf(side: string, type: string): string {
  const ipam = { type: "host-local", ranges: [[{ subnet: side === "cnikit" ? "10.123.0.0/16" : "10.124.0.0/16" }]], dataDir: join(data, side) };
  if (type === "host-local") return JSON.stringify({ cniVersion: "1.0.0", name: `bench-${side}`, type: "host-local", ipam });
  return JSON.stringify({ cniVersion: "1.0.0", name: `bench-${side}`, type: "bridge", bridge: `${tag}${side[0]}`, isGateway: true, ipam });
}

function env(dir: string, cmd: string, cid: string, netns: string): Record<string, string> {
  return { PATH: process.env.PATH!, CNI_COMMAND: cmd, CNI_CONTAINERID: cid, CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: dir };
}

async function bench(type: string): Promise<{ add: Record<string, number[]>; del: Record<string, number[]> } | null> {
  const sides: Record<string, string> = { reference: dirs.reference, cnikit: dirs.cnikit };
  if (!existsSync(join(dirs.cnikit, type))) {
    console.log(`\n${type}: not built into cnikit yet, skipped`);
    return null;
  }
  const add: Record<string, number[]> = { reference: [], cnikit: [] };
  const del: Record<string, number[]> = { reference: [], cnikit: [] };
  for (let i = 0; i < WARMUP + ITER; i++) {
    for (const side of i % 2 ? ["cnikit", "reference"] : ["reference", "cnikit"]) {
      const ns = `${tag}-${side[0]}${i}`;
      Bun.spawnSync(["ip", "netns", "add", ns]);
      const netns = `/run/netns/${ns}`;
      try {
        const file = join(sides[side]!, type);
        const a = await runPlugin(file, env(sides[side]!, "ADD", ns, netns), conf(side, type));
        const d = await runPlugin(file, env(sides[side]!, "DEL", ns, netns), conf(side, type));
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

let ok = true;
try {
  for (const [type, target] of [["host-local", undefined], ["bridge", 0.5]] as const) {
    const r = await bench(type);
    if (!r) continue;
    ok = report(`${type}${type === "bridge" ? " + host-local" : ""}: ${ITER} pods, each plugin a process`, [
      { what: `${type} ADD`, cnikit: r.add.cnikit!, reference: r.add.reference!, ...(target ? { target } : {}) },
      { what: `${type} DEL`, cnikit: r.del.cnikit!, reference: r.del.reference!, ...(target ? { target } : {}) },
    ]) && ok;
  }
} finally {
  for (const b of [`${tag}c`, `${tag}r`]) Bun.spawnSync(["ip", "link", "del", b]);
  rmSync(data, { recursive: true, force: true });
  dirs.remove();
}
process.exit(ok ? 0 : 1);
