/**
 * cnikit's bandwidth chained after cnikit's bridge + host-local, against the real kernel in a
 * private network namespace: measured TCP throughput to and from a pod lands on the configured
 * limits (and is much higher without them), CHECK, DEL, the runtimeConfig capability (with
 * go-cni's Go field names too), DEL with keys that do not decode, no-limit pass-through, and the same config through the reference plugin leaving the same tc state.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { measureThroughput } from "../../support/tcp.ts";
import { assertPrivateNetns, linksSettled, must, Namespaces, run, runPrefix, tempDir } from "../../support/netns.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const prefix = runPrefix("bw");
const ns = new Namespaces(prefix);
const tmp = tempDir("bandwidth");
const bin = join(tmp.path, "bin");
const refBin = join(tmp.path, "refbin");
const confDir = join(tmp.path, "net.d");
const cacheDir = join(tmp.path, "cache");
const ipamDir = join(tmp.path, "ipam");
const bridges: string[] = [];

const INGRESS = 100_000_000; // bits/s, traffic to the pod
const EGRESS = 50_000_000; // bits/s, traffic from the pod
const LIMITS = { ingressRate: INGRESS, ingressBurst: 1_000_000, egressRate: EGRESS, egressBurst: 500_000 };

/** A conflist: cnikit's bridge + host-local, then `bw` (bandwidth's entry) when given. */
function netconf(name: string, bridge: string, subnet: string, bw?: Record<string, unknown>) {
  bridges.push(bridge);
  const plugins: unknown[] = [{ type: "bridge", bridge, isGateway: true, ipam: { type: "host-local", ranges: [[{ subnet }]], dataDir: ipamDir } }];
  if (bw) plugins.push({ type: "bandwidth", ...bw });
  writeFileSync(join(confDir, `${name}.conflist`), JSON.stringify({ cniVersion: "1.0.0", name, plugins }));
}

const env = (extra: Record<string, string> = {}) => ({ ...process.env, NETCONFPATH: confDir, CNI_PATH: bin, CNI_CACHE_DIR: cacheDir, ...extra });
const cnikit = (args: string[], extra: Record<string, string> = {}) => run([CNIKIT, ...args], { env: env(extra) });
function addPod(net: string, netns: string, extra: Record<string, string> = {}) {
  const r = cnikit(["add", net, netns], extra);
  if (r.code !== 0) throw new Error(`add ${net} ${netns}: ${r.stdout} ${r.stderr}`);
  return JSON.parse(r.stdout);
}
type Json = Record<string, any>;
const qdiscs = (dev?: string) => JSON.parse(must(["tc", "-j", "qdisc", "show", ...(dev ? ["dev", dev] : [])])) as Json[];
const ifbs = () => JSON.parse(must(["ip", "-j", "link", "show", "type", "ifb"])) as Json[];
/** The ifb devices left once DELs have had their second: through the daemon they go in a batch after the reply. */
const ifbsAfterDel = () => linksSettled("ifb");
const shaping = () => qdiscs().filter((q) => q.kind === "tbf" || q.kind === "ingress");

const ipOf = (r: Json) => String(r.ips[0].address).split("/")[0]!;
const hostVethOf = (r: Json) => String(r.interfaces[1].name);

beforeAll(() => {
  must(["ip", "link", "set", "lo", "up"]);
  mkdirSync(confDir, { recursive: true });
  must([CNIKIT, "install", "--bin-dir", bin]);
  // the same set with the reference's bandwidth in place of cnikit's
  must([CNIKIT, "install", "--bin-dir", refBin]);
  rmSync(join(refBin, "bandwidth"), { force: true });
  symlinkSync("/usr/lib/cni/bandwidth", join(refBin, "bandwidth"));
});

afterAll(() => {
  ns.cleanup();
  for (const b of bridges) run(["ip", "link", "del", b]);
  for (const l of ifbs()) run(["ip", "link", "del", String(l.ifname)]);
  tmp.remove();
});

describe("bandwidth after bridge + host-local", () => {
  test("measured: 100 Mbit/s to the pod and 50 Mbit/s from it, within 15%; unshaped is much faster", async () => {
    netconf("shaped", `${prefix}s`, "10.91.0.0/24", LIMITS);
    netconf("plain", `${prefix}u`, "10.92.0.0/24");
    const p = ns.add("s");
    const u = ns.add("u");
    const r = addPod("shaped", p);
    const ru = addPod("plain", u);
    // the ifb is reported as an interface of the result, as the reference does
    expect(r.interfaces.length).toBe(4);
    expect(r.interfaces[3].name).toMatch(/^bwp[0-9a-f]{12}$/);
    const toPod = await measureThroughput("", p, ipOf(r), 5201);
    const fromPod = await measureThroughput(p, "", "10.91.0.1", 5202);
    const toPlain = await measureThroughput("", u, ipOf(ru), 5203);
    const fromPlain = await measureThroughput(u, "", "10.92.0.1", 5204);
    console.log(JSON.stringify({
      ingress: { mbit: toPod / 1e6, ratio: toPod / INGRESS },
      egress: { mbit: fromPod / 1e6, ratio: fromPod / EGRESS },
      unshaped: { toPodMbit: toPlain / 1e6, fromPodMbit: fromPlain / 1e6 },
    }));
    expect(Math.abs(toPod / INGRESS - 1)).toBeLessThan(0.15);
    expect(Math.abs(fromPod / EGRESS - 1)).toBeLessThan(0.15);
    // without shaping the same transfers are far faster: the measurement can tell
    expect(toPlain).toBeGreaterThan(3 * INGRESS);
    expect(fromPlain).toBeGreaterThan(3 * EGRESS);

    expect(cnikit(["check", "shaped", p]).code).toBe(0);
    // CHECK notices a missing bucket
    must(["tc", "qdisc", "del", "dev", r.interfaces[3].name, "root"]);
    const bad = cnikit(["check", "shaped", p]);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout).msg).toContain("no tbf qdisc");

    // DEL: no ifb, and (the veth gone with bridge's DEL) no qdisc; twice is fine
    expect(cnikit(["del", "shaped", p]).code).toBe(0);
    expect(cnikit(["del", "shaped", p]).code).toBe(0);
    expect(cnikit(["del", "plain", u]).code).toBe(0);
    expect(ifbsAfterDel()).toEqual([]);
    expect(shaping()).toEqual([]);
  }, 60_000);

  test("no limit: ADD passes prevResult through untouched, CHECK passes, nothing is shaped", () => {
    netconf("nolimit", `${prefix}n`, "10.93.0.0/24", {});
    const p = ns.add("n");
    const r = addPod("nolimit", p);
    expect(r.interfaces.length).toBe(3);
    expect(shaping()).toEqual([]);
    expect(ifbsAfterDel()).toEqual([]);
    expect(cnikit(["check", "nolimit", p]).code).toBe(0);
    expect(cnikit(["del", "nolimit", p]).code).toBe(0);
  });

  test("the bandwidth capability (runtimeConfig) wins over the config's keys", () => {
    netconf("cap", `${prefix}c`, "10.94.0.0/24", { capabilities: { bandwidth: true }, ingressRate: 8_000_000, ingressBurst: 80_000 });
    const p = ns.add("c");
    const caps = JSON.stringify({ bandwidth: { egressRate: 16_000_000, egressBurst: 160_000 } });
    const r = addPod("cap", p, { CAP_ARGS: caps });
    // only egress: the host veth has an ingress qdisc and no tbf; the ifb's tbf has 2 MB/s
    const onVeth = qdiscs(hostVethOf(r)).map((q) => q.kind);
    expect(onVeth).toContain("ingress");
    expect(onVeth).not.toContain("tbf");
    const ifb = r.interfaces[3].name;
    expect(qdiscs(ifb).find((q) => q.kind === "tbf")?.options).toEqual({ rate: 2_000_000, burst: 20_000, lat: 25_000 });
    expect(cnikit(["check", "cap", p], { CAP_ARGS: caps }).code).toBe(0);
    expect(cnikit(["del", "cap", p], { CAP_ARGS: caps }).code).toBe(0);
    expect(ifbsAfterDel()).toEqual([]);
  });

  test("go-cni's Go field names shape as the canonical keys; DEL with keys that do not decode removes the ifb and the qdiscs", () => {
    netconf("gocni", `${prefix}g`, "10.97.0.0/24", { capabilities: { bandwidth: true } });
    const p = ns.add("g");
    const caps = JSON.stringify({ bandwidth: { IngressRate: 8_000_000, IngressBurst: 80_000, EgressRate: 16_000_000, EgressBurst: 160_000 } });
    const cid = `${prefix}gocni`;
    const r = addPod("gocni", p, { CAP_ARGS: caps, CNI_CONTAINERID: cid });
    const veth = hostVethOf(r);
    const ifb = r.interfaces[3].name as string;
    expect(qdiscs(veth).find((q) => q.kind === "tbf")?.options).toEqual({ rate: 1_000_000, burst: 10_000, lat: 25_000 });
    expect(qdiscs(ifb).find((q) => q.kind === "tbf")?.options).toEqual({ rate: 2_000_000, burst: 20_000, lat: 25_000 });
    expect(cnikit(["check", "gocni", p], { CAP_ARGS: caps, CNI_CONTAINERID: cid }).code).toBe(0);
    // a wrong type is refused on ADD with code 2 naming the key
    const bad = cnikit(["add", "gocni", ns.add("gx")], { CAP_ARGS: JSON.stringify({ bandwidth: { IngressRate: "8M", IngressBurst: 80_000 } }) });
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 2, msg: expect.stringContaining('"runtimeConfig.bandwidth.IngressRate"') });
    // bandwidth's DEL alone (the veth still there), with a config whose keys do not decode
    const del = run([join(bin, "bandwidth")], {
      env: { PATH: process.env.PATH, CNI_COMMAND: "DEL", CNI_CONTAINERID: cid, CNI_NETNS: p, CNI_IFNAME: "eth0", CNI_PATH: bin },
      stdin: JSON.stringify({ cniVersion: "1.0.0", name: "gocni", type: "bandwidth", ingressRate: "fast", egressBurst: -1, runtimeConfig: { bandwidth: [] }, shapedSubnets: "x" }),
    });
    expect(del.stdout).toBe("");
    expect(del.code).toBe(0);
    expect(ifbsAfterDel()).toEqual([]);
    expect(qdiscs(veth).filter((q) => q.kind === "tbf" || q.kind === "ingress")).toEqual([]);
    expect(cnikit(["del", "gocni", p], { CAP_ARGS: caps, CNI_CONTAINERID: cid }).code).toBe(0);
    expect(shaping()).toEqual([]);
  }, 30_000);

  test("a rate without its burst is refused with code 7 and leaves nothing", () => {
    netconf("half", `${prefix}h`, "10.95.0.0/24", { ingressRate: 1_000_000 });
    const p = ns.add("h");
    const r = cnikit(["add", "half", p]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).code).toBe(7);
    expect(ifbsAfterDel()).toEqual([]);
    expect(shaping()).toEqual([]);
    cnikit(["del", "half", p]);
  });
});

describe("the same config through the reference bandwidth and through cnikit's", () => {
  test("leaves the same tc state: qdisc kinds, handles, rates, bursts, latency; a u32 redirect to the ifb", () => {
    netconf("same", `${prefix}x`, "10.96.0.0/24", LIMITS);
    const state = (pluginPath: string, suffix: string) => {
      const p = ns.add(suffix);
      const r = addPod("same", p, { CNI_PATH: pluginPath });
      const veth = hostVethOf(r);
      const ifb = r.interfaces[3].name as string;
      const norm = (dev: string) =>
        qdiscs(dev).map((q) => ({ kind: q.kind, handle: q.handle, root: q.root ?? false, parent: q.parent ?? "", options: q.options }));
      const filters = (JSON.parse(must(["tc", "-j", "filter", "show", "dev", veth, "ingress"])) as Json[])
        .filter((f) => f.options?.match)
        .map((f) => ({
          kind: f.kind,
          protocol: f.protocol,
          pref: f.pref,
          flowid: f.options.flowid,
          match: f.options.match,
          // the reference adds the same redirect twice (a netlink-library quirk); the first decides
          redirect: ((a) => ({ kind: a.kind, action: a.mirred_action, direction: a.direction, toIfb: a.to_dev === ifb, control: a.control_action.type }))(f.options.actions[0]),
        }));
      const ifbLink = (JSON.parse(must(["ip", "-j", "-d", "link", "show", ifb])) as Json[])[0]!;
      const out = {
        veth: norm(veth),
        ifb: norm(ifb),
        filters,
        ifbLink: { kind: ifbLink.linkinfo.info_kind, mtu: ifbLink.mtu, up: (ifbLink.flags as string[]).includes("UP"), qlen: ifbLink.txqlen ?? 0 },
        ifbName: /^bwp[0-9a-f]{12}$/.test(ifb),
      };
      const c = cnikit(["check", "same", p], { CNI_PATH: pluginPath });
      expect(c.stdout + c.stderr).toBe("");
      expect(c.code).toBe(0);
      expect(cnikit(["del", "same", p], { CNI_PATH: pluginPath }).code).toBe(0);
      expect(ifbsAfterDel()).toEqual([]);
      return out;
    };
    const ref = state(refBin, "R");
    const mine = state(bin, "M");
    expect(mine.veth).toEqual([
      { kind: "tbf", handle: "1:", root: true, parent: "", options: { rate: 12_500_000, burst: 125_000, lat: 25_000 } },
      { kind: "ingress", handle: "ffff:", root: false, parent: "ffff:fff1", options: {} },
    ]);
    expect(mine).toEqual(ref);
    expect(shaping()).toEqual([]);
  });
});
