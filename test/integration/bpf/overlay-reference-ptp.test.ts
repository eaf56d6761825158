// overlay's "datapath": "ebpf" when its delegate is the reference ptp (Go, from Debian's
// containernetworking-plugins) first in CNI_PATH: ptp then runs as a process of its own, so overlay
// learns the veth from the kernel instead of from what ptp made in-process. Two pods on one node
// get the gateway as a permanent neighbour and cnikit's filter on their host veths, reach each
// other through the program, and DEL leaves nothing behind.
// Runs in a private network namespace (npm test: `unshare -n`), names prefixed ckf; the pins on a
// bpffs in a private mount namespace.
import { assertPrivateNetns, must, Namespaces, run, runPrefix, tempDir } from "../../support/netns.ts";
assertPrivateNetns();

import { afterAll, beforeAll, expect, test } from "bun:test";
import { symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { privateBpffs, type PrivateBpffs } from "../../support/bpffs.ts";

const ROOT = join(import.meta.dir, "../../..");
const REFERENCE = "/usr/lib/cni";
const P = runPrefix("fr");
const ns = new Namespaces(P);
const tmp = tempDir("ckf-ovref");
const bin = join(tmp.path, "bin");
const pinDir = join(tmp.path, "bpffs", "net");
let fs: PrivateBpffs;
const pods: Array<{ ns: string; ip: string; host: string }> = [];

const conf = JSON.stringify({
  cniVersion: "1.0.0",
  name: `${P}net`,
  type: "overlay",
  subnetFile: join(tmp.path, "subnet.env"),
  dataDir: join(tmp.path, "data"),
  datapath: "ebpf",
  bpfPinDir: pinDir,
  delegate: { ipam: { dataDir: join(tmp.path, "ipam") } },
});

function overlay(command: string, id: string, netns: string): { code: number; out: string } {
  const env = { PATH: process.env.PATH!, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: bin };
  const r = Bun.spawnSync(["nsenter", `--mount=${fs.mountNs}`, join(bin, "overlay")], { env, stdin: new TextEncoder().encode(conf), stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString() + r.stderr.toString() };
}

beforeAll(async () => {
  must(["mkdir", "-p", bin, join(tmp.path, "bpffs")]);
  must([join(ROOT, "dist/cnikit"), "install", "--bin-dir", bin, "--no-shim"]);
  // the reference's ptp and host-local in place of cnikit's: overlay runs them as processes
  for (const t of ["ptp", "host-local"]) {
    must(["rm", "-f", join(bin, t)]);
    symlinkSync(join(REFERENCE, t), join(bin, t));
  }
  writeFileSync(join(tmp.path, "subnet.env"), "FLANNEL_NETWORK=10.88.0.0/16\nFLANNEL_SUBNET=10.88.4.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n");
  const first = ns.add("a");
  fs = await privateBpffs(join(tmp.path, "bpffs"));
  for (const [s, path] of [["a", first], ["b", ns.add("b")]] as const) {
    const r = overlay("ADD", `${P}${s}`, path);
    expect(r.code === 0 ? "" : r.out).toBe("");
    const res = JSON.parse(r.out);
    pods.push({ ns: path, ip: res.ips[0].address.split("/")[0], host: res.interfaces[0].name });
  }
});

afterAll(async () => {
  for (const [i, p] of pods.entries()) overlay("DEL", `${P}${"ab"[i]}`, p.ns);
  await fs?.stop();
  ns.cleanup();
  tmp.remove();
});

test("the reference ptp as overlay's delegate: gateway neighbour, cnikit's filter, pods talk through the program", () => {
  for (const p of pods) {
    expect(run(["nsenter", `--net=${p.ns}`, "ip", "neigh", "show", "dev", "eth0"]).stdout).toMatch(/^10\.88\.4\.1 lladdr \S+ PERMANENT/m);
    expect(must(["tc", "filter", "show", "dev", p.host, "ingress"])).toContain("cnikit-pod");
  }
  const shown = () => must(["nsenter", `--mount=${fs.mountNs}`, join(ROOT, "dist/cnikit"), "bpf", "--pin-root", join(tmp.path, "bpffs"), "--json"]);
  const counter = () => BigInt(JSON.parse(shown()).networks[0].stats.podToLocal.packets);
  const before = counter();
  expect(run(["nsenter", `--net=${pods[0]!.ns}`, "ping", "-c", "2", "-i", "0.2", "-W", "2", pods[1]!.ip]).code).toBe(0);
  expect(counter() - before).toBeGreaterThanOrEqual(4n);
  expect(JSON.parse(shown()).networks[0].endpoints.map((e: { ip: string; ifindex: number }) => e.ip).sort()).toEqual(pods.map((p) => p.ip).sort());
});

test("DEL: the pods' veths, endpoints and the pins go", () => {
  for (const [i, p] of pods.entries()) {
    const r = overlay("DEL", `${P}${"ab"[i]}`, p.ns);
    expect(r.code === 0 ? "" : r.out).toBe("");
    expect(run(["ip", "link", "show", p.host]).code).not.toBe(0);
  }
  // the network's pin directory went with the last pod (the bpffs's own *.debug files stay)
  expect(must(["nsenter", `--mount=${fs.mountNs}`, "ls", "-A", join(tmp.path, "bpffs")]).split("\n")).not.toContain("net");
  expect(must(["nsenter", `--mount=${fs.mountNs}`, "ls", "-A", join(tmp.path, "bpffs")])).toContain("progs.debug");
});
