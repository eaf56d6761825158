/**
 * The chain a pod typically gets (bridge + host-local with ipMasq, portmap, firewall, bandwidth,
 * tuning), each plugin run as its own process as a runtime does, cnikit against the reference in
 * one run (interleaved); then 50 pods ADDed at once and DELeted at once (two rounds per side, the
 * time until all are done). Target (issue 4): 0.3x.
 */

import { join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { CNIConfig } from "../src/libcni/cni.ts";
import { confListFromObject } from "../src/libcni/conf.ts";
import { assertPrivate, pluginDirs, report } from "./lib.ts";

assertPrivate();
const ITER = Number(process.env.BENCH_ITER ?? 15);
const WARMUP = 2;
const dirs = pluginDirs();
const data = mkdtempSync(join(tmpdir(), "cnikit-bench-chain-"));
const tag = `ckc${process.pid % 1000}`;

function list(side: string) {
  return confListFromObject({
    cniVersion: "1.0.0",
    name: `chain-${side}`,
    plugins: [
      { type: "bridge", bridge: `${tag}${side[0]}`, isGateway: true, ipMasq: true, hairpinMode: true,
        ipam: { type: "host-local", ranges: [[{ subnet: side === "cnikit" ? "10.125.0.0/16" : "10.126.0.0/16" }]], dataDir: join(data, side) } },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
      { type: "firewall", backend: "iptables", dataDir: join(data, `firewall-${side}`) },
      { type: "bandwidth", ingressRate: 100_000_000, ingressBurst: 1_000_000, egressRate: 100_000_000, egressBurst: 1_000_000 },
      { type: "tuning", sysctl: { "net.ipv4.conf.IFNAME.rp_filter": "0" }, dataDir: join(data, `tuning-${side}`) },
    ],
  });
}

const add: Record<string, number[]> = { reference: [], cnikit: [] };
const del: Record<string, number[]> = { reference: [], cnikit: [] };
const burstAdd: Record<string, number[]> = { reference: [], cnikit: [] };
const burstDel: Record<string, number[]> = { reference: [], cnikit: [] };
const BURST = Number(process.env.BENCH_BURST ?? 50);
try {
  const sides = {
    reference: new CNIConfig({ path: [dirs.reference], cacheDir: join(data, "cache-ref"), forceExec: true }),
    cnikit: new CNIConfig({ path: [dirs.cnikit], cacheDir: join(data, "cache-ck"), forceExec: true }),
  };

  /** BURST pods ADDed at once (each chain as processes, as a runtime starting many pods), then DELeted at once. */
  const burst = async (side: keyof typeof sides, round: number) => {
    const pods = Array.from({ length: BURST }, (_, i) => {
      const ns = `${tag}-b${side[0]}${round}-${i}`;
      Bun.spawnSync(["ip", "netns", "add", ns]);
      return { containerId: ns, netns: `/run/netns/${ns}`, ifName: "eth0", capabilityArgs: { portMappings: [{ hostPort: 30000 + i, containerPort: 80, protocol: "tcp" }] } };
    });
    try {
      const l = list(side);
      const t0 = performance.now();
      await Promise.all(pods.map((rt) => sides[side].addNetworkList(l, rt)));
      const t1 = performance.now();
      await Promise.all(pods.map((rt) => sides[side].delNetworkList(l, rt)));
      burstAdd[side]!.push(t1 - t0);
      burstDel[side]!.push(performance.now() - t1);
    } finally {
      for (const p of pods) Bun.spawnSync(["ip", "netns", "del", p.containerId]);
    }
  };
  for (const [round, order] of [["reference", "cnikit"], ["cnikit", "reference"]].entries()) {
    for (const side of order as Array<keyof typeof sides>) await burst(side, round);
  }

  for (let i = 0; i < WARMUP + ITER; i++) {
    for (const side of (i % 2 ? ["cnikit", "reference"] : ["reference", "cnikit"]) as Array<keyof typeof sides>) {
      const ns = `${tag}-${side[0]}${i}`;
      Bun.spawnSync(["ip", "netns", "add", ns]);
      const rt = {
        containerId: ns,
        netns: `/run/netns/${ns}`,
        ifName: "eth0",
        capabilityArgs: { portMappings: [{ hostPort: 20000 + i, containerPort: 80, protocol: "tcp" }] },
      };
      try {
        const l = list(side);
        const t0 = performance.now();
        await sides[side].addNetworkList(l, rt);
        const t1 = performance.now();
        await sides[side].delNetworkList(l, rt);
        const t2 = performance.now();
        if (i >= WARMUP) {
          add[side]!.push(t1 - t0);
          del[side]!.push(t2 - t1);
        }
      } finally {
        Bun.spawnSync(["ip", "netns", "del", ns]);
      }
    }
  }
} finally {
  for (const b of [`${tag}c`, `${tag}r`]) Bun.spawnSync(["ip", "link", "del", b]);
  rmSync(data, { recursive: true, force: true });
  dirs.remove();
}
const ok = report(`bridge(ipMasq) + host-local, portmap, firewall, bandwidth, tuning: ${ITER} pods, each plugin a process`, [
  { what: "chain ADD", cnikit: add.cnikit!, reference: add.reference!, target: 0.3 },
  { what: "chain DEL", cnikit: del.cnikit!, reference: del.reference!, target: 0.3 },
  { what: `${BURST} pods at once ADD`, cnikit: burstAdd.cnikit!, reference: burstAdd.reference!, target: 0.3 },
  { what: `${BURST} pods at once DEL`, cnikit: burstDel.cnikit!, reference: burstDel.reference!, target: 0.3 },
]);
process.exit(ok ? 0 : 1);
