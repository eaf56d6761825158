/**
 * Issue 16: every one-word mode of `cnikit install --mode M --subnet CIDR` adds two pods that reach
 * each other. Each mode gets a node of its own (a network namespace on an underlay bridge, default
 * route via it, and a root directory of its own: test/integration/k8s/kubelet.ts) into which
 * `cnikit install --mode` writes the binaries, the conflist and, for the agent's modes, the
 * network config; there `cnikit agent --net-conf` (etcd on the underlay, a key prefix per mode)
 * leases the node's subnet, and cnikit's runtime (`cnikit add`, as cnitool) adds two pods through
 * the installed plugins. The ebpf mode's node has a bpffs of its own. Modes whose kernel support
 * is missing here are reported as skipped with the reason.
 *
 * Isolation: a private network namespace (`unshare -n`); namespaces and the underlay links named
 * "k8<run id>..."; the names a mode itself gives links (cbr0, the vxlan device, tunl0) and nft
 * tables exist only inside the mode's node namespace, which goes at the end; state in a temp folder.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { modeConfig, MODES } from "../../../src/cli/modes.ts";
import { assertPrivateNetns, must, Namespaces, ping, run, tempDir } from "../../support/netns.ts";
import { DIST, SimNode } from "./kubelet.ts";

assertPrivateNetns();

const id = `${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
const prefix = `k8${id}m`;
const ns = new Namespaces(prefix);
const tmp = tempDir("k8s-modes");
const T = tmp.path;
const UNDERLAY = `${prefix}u`;
const NET = 94;
const ETCD_IP = `192.168.${NET}.254`;
const ETCD = `http://${ETCD_IP}:24394`;
const CNIKIT = join(DIST, "cnikit");
let etcd: ReturnType<typeof Bun.spawn> | undefined;
const agents: ReturnType<typeof Bun.spawn>[] = [];
const sims: SimNode[] = [];

/** Whether the kernel lets a link of `type` be made (in a throwaway network namespace). */
function kernelHas(type: string, args: string[] = [], parent = false): string | undefined {
  const make = parent ? "ip link add kp type veth peer name kq && ip link add kx link kp" : "ip link add kx";
  const r = run(["unshare", "-n", "sh", "-c", `${make} type ${type} ${args.join(" ")}`]);
  return r.code === 0 ? undefined : `no ${type} links in this kernel (${r.stderr.trim()})`;
}

const SKIP: Record<string, string | undefined> = {
  bridge: kernelHas("bridge"),
  vxlan: kernelHas("vxlan", ["id", "1", "dstport", "8472"]),
  "host-gw": kernelHas("bridge"),
  bgp: existsSync("/usr/sbin/bird") ? kernelHas("bridge") : "BIRD 2 (Debian bird2) is not installed",
  ipip: existsSync("/usr/sbin/bird") ? kernelHas("ipip") : "BIRD 2 (Debian bird2) is not installed",
  ebpf: kernelHas("vxlan", ["external", "dstport", "8472"]),
  macvlan: kernelHas("macvlan", [], true),
  ipvlan: kernelHas("ipvlan", [], true),
};

beforeAll(async () => {
  must(["ip", "link", "set", "lo", "up"]);
  must(["ip", "link", "add", UNDERLAY, "type", "bridge"]);
  must(["ip", "addr", "add", `${ETCD_IP}/24`, "dev", UNDERLAY]);
  must(["ip", "link", "set", UNDERLAY, "up"]);
  const peer = "http://127.0.0.1:24395";
  etcd = Bun.spawn(["etcd", "--name", "e", "--data-dir", join(T, "etcd"), "--listen-client-urls", ETCD, "--advertise-client-urls", ETCD,
    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", `e=${peer}`, "--log-level", "error"],
  { stdout: "ignore", stderr: Bun.file(join(T, "etcd.log")) });
}, 60_000);

afterAll(async () => {
  for (const a of agents) {
    a.kill("SIGTERM");
    await a.exited;
  }
  for (const s of sims) await s.stop();
  if (etcd) {
    etcd.kill("SIGTERM");
    await etcd.exited;
  }
  ns.cleanup();
  run(["ip", "link", "del", UNDERLAY]);
  tmp.remove();
});

/** A node on the underlay (address .i, default route via the bridge), with a root of its own. */
function makeNode(i: number, mode: string): { sim: SimNode; nsName: string; dev: string } {
  const path = ns.add(`n${i}`);
  const nsName = `${prefix}n${i}`;
  const dev = `${prefix}e${i}`;
  must(["ip", "link", "add", `${prefix}h${i}`, "type", "veth", "peer", "name", dev, "netns", nsName]);
  must(["ip", "link", "set", `${prefix}h${i}`, "master", UNDERLAY, "up"]);
  must(["ip", "-n", nsName, "addr", "add", `192.168.${NET}.${i}/24`, "dev", dev]);
  must(["ip", "-n", nsName, "link", "set", dev, "up"]);
  must(["ip", "-n", nsName, "route", "add", "default", "via", ETCD_IP]);
  const sim = new SimNode(`${mode}-node`, path, join(T, mode));
  sims.push(sim);
  return { sim, nsName, dev };
}

describe("each mode's conflist adds two pods that reach each other", () => {
  for (const [i, m] of MODES.entries()) {
    test.skipIf(SKIP[m.name] !== undefined)(`${m.name}${SKIP[m.name] ? ` (skipped: ${SKIP[m.name]})` : ""}`, async () => {
      const { sim, nsName, dev } = makeNode(i + 1, m.name);
      await sim.start({ bpffs: m.name === "ebpf" });
      const subnet = m.subnet === "node" ? `10.${60 + i}.1.0/24` : `10.${60 + i}.0.0/16`;
      const flags = ["--mode", m.name, "--subnet", subnet, ...(m.name === "macvlan" || m.name === "ipvlan" ? ["--master", dev] : []), ...(m.name === "bridge" ? ["--mtu", "1400"] : [])];
      const inst = run([CNIKIT, "install", "--bin-dir", join(sim.root, "opt/cni/bin"), "--conf-dir", join(sim.root, "etc/cni/net.d"), "--net-conf", join(sim.root, "etc/cnikit/net-conf.json"), ...flags]);
      expect(inst.stderr).toBe("");
      expect(inst.code).toBe(0);
      // what install wrote is what the mode means
      const want = modeConfig(m.name, { subnet, ...(m.name === "macvlan" || m.name === "ipvlan" ? { master: dev } : {}), ...(m.name === "bridge" ? { mtu: 1400 } : {}) });
      expect(JSON.parse(readFileSync(join(sim.root, "etc/cni/net.d/10-cnikit.conflist"), "utf8"))).toEqual(want.conflist);
      if (m.agent) {
        expect(JSON.parse(readFileSync(join(sim.root, "etc/cnikit/net-conf.json"), "utf8"))).toEqual(want.netConf!);
        const log = join(T, `${m.name}-agent.log`);
        const a = Bun.spawn(sim.argv(["/opt/cni/bin/cnikit", "agent", "--etcd-endpoints", ETCD, "--etcd-prefix", `/k8modes/${m.name}`, "--net-conf", "/etc/cnikit/net-conf.json", "--ip-masq"]), { stdout: "ignore", stderr: Bun.file(log) });
        agents.push(a);
        const env = join(sim.root, "run/flannel/subnet.env");
        for (let k = 0; k < 300 && !existsSync(env); k++) {
          if (a.exitCode !== null) break;
          await Bun.sleep(100);
        }
        expect(existsSync(env) ? "" : `no subnet.env; agent log:\n${readFileSync(log, "utf8").slice(-3000)}`).toBe("");
      }
      const pods: string[] = [];
      for (const p of ["a", "b"]) {
        const netns = ns.add(`${i}${p}`);
        const r = sim.exec(["/opt/cni/bin/cnikit", "add", "cnikit", netns], { env: { NETCONFPATH: "/etc/cni/net.d", CNI_PATH: "/opt/cni/bin", CNI_CONTAINERID: `${prefix}${m.name}${p}` } });
        expect(r.code === 0 ? "" : `${r.stdout}${r.stderr}`).toBe("");
        const ip = (JSON.parse(r.stdout).ips as { address: string }[])[0]!.address.split("/")[0]!;
        expect(ip.startsWith(subnet.split(".").slice(0, 2).join("."))).toBe(true);
        pods.push(ip);
      }
      let ok = false;
      for (let k = 0; k < 3 && !ok; k++) ok = ping(`/run/netns/${prefix}${i}a`, pods[1]!);
      expect(ok).toBe(true);
      if (m.name === "bridge") {
        // kubenet's pieces: cbr0 with the MTU, the non-masquerade CIDR among the masquerade exceptions
        expect(must(["ip", "-n", nsName, "link", "show", "cbr0"])).toContain("mtu 1400");
        expect(must(["ip", "netns", "exec", nsName, "nft", "list", "set", "inet", "cnikit_masq", "keep4"])).toContain("10.0.0.0/8");
      }
      if (m.name === "ebpf") {
        // the pods' host veths carry the eBPF pod program (a cls_bpf filter; `cnikit bpf` lists
        // tcx attachments too)
        const shown = sim.exec(["/opt/cni/bin/cnikit", "bpf"]);
        expect(shown.code === 0 ? "" : shown.stderr).toBe("");
        for (const p of pods) expect(shown.stdout).toMatch(new RegExp(`\\b${hostVethOf(nsName, p)[0]}\\s+ingress\\s+\\S+\\s+\\d+\\s+\\d+\\s+cnikit_pod\\b`));
      }
      for (const p of ["a", "b"]) {
        const r = sim.exec(["/opt/cni/bin/cnikit", "del", "cnikit", `/run/netns/${prefix}${i}${p}`], { env: { NETCONFPATH: "/etc/cni/net.d", CNI_PATH: "/opt/cni/bin", CNI_CONTAINERID: `${prefix}${m.name}${p}` } });
        expect(r.code === 0 ? "" : `${r.stdout}${r.stderr}`).toBe("");
      }
    }, 90_000);
  }
});

/** The host-side link a pod's /32 (or subnet) route goes through on the node. */
function hostVethOf(nsName: string, podIP: string): string[] {
  const r = JSON.parse(must(["ip", "-n", nsName, "-j", "route", "get", podIP])) as { dev: string }[];
  return [r[0]!.dev];
}
