// Pinned state outlives the process that made it: one process mounts a bpffs (on a temporary
// directory, in a private mount namespace) and attaches a pod; it exits; a second process attaches
// another pod by the pinned map and program alone (overlay's ADD for all but a network's first
// pod); the two pods then talk through programs and maps no running process holds; `cnikit bpf`
// lists both in words; a third process DELs both (the first by the pin alone, its program going
// with its veth) and the last DEL removes the pins.
// Runs in a private network namespace (npm test: `unshare -n`), names prefixed ckf.
import { assertPrivateNetns, must, Namespaces, run, runPrefix, tempDir } from "../../support/netns.ts";
assertPrivateNetns();

import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { listTc } from "../../../src/bpf/tc.ts";
import { NetlinkConn } from "../../../src/netlink/conn.ts";

const P = runPrefix("fb");
const GW = "169.254.1.1";
const ns = new Namespaces(P);
const conn = NetlinkConn.open();
const tmp = tempDir("ckf-bpffs");
const HELPER = join(import.meta.dir, "pin-helper.ts");
const MAIN = join(import.meta.dir, "../../../src/main.ts");
const pods: Array<{ ns: string; host: string; ip: string; ifindex: number; podMac: string; hostMac: string }> = [];

beforeAll(() => {
  for (const [s, ip] of [["a", "10.81.0.2"], ["b", "10.81.0.3"]] as const) {
    const name = ns.add(s).split("/").pop()!;
    const host = `${P}${s}`;
    must(["ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", name]);
    must(["ip", "link", "set", host, "up"]);
    const h = JSON.parse(must(["ip", "-j", "link", "show", host]))[0];
    must(["ip", "-n", name, "addr", "add", `${ip}/32`, "dev", "eth0"]);
    must(["ip", "-n", name, "link", "set", "eth0", "up"]);
    must(["ip", "-n", name, "route", "add", GW, "dev", "eth0", "scope", "link"]);
    must(["ip", "-n", name, "route", "add", "default", "via", GW, "dev", "eth0"]);
    must(["ip", "-n", name, "neigh", "replace", GW, "lladdr", h.address, "dev", "eth0", "nud", "permanent"]);
    const podMac = JSON.parse(must(["ip", "-n", name, "-j", "link", "show", "eth0"]))[0].address;
    pods.push({ ns: name, host, ip, ifindex: h.ifindex, podMac, hostMac: h.address });
  }
});

afterAll(() => {
  for (const p of pods) run(["ip", "link", "del", p.host]);
  conn.close();
  ns.cleanup();
  tmp.remove();
});

const q = (s: string) => `'${s}'`;

test("maps and programs pinned by one process serve pods after it exits, and the last DEL unpins", () => {
  const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]];
  const bun = q(process.execPath);
  const h = q(HELPER);
  const root = q(join(tmp.path, "fs"));
  const out = (f: string) => q(join(tmp.path, f));
  const script = [
    `${bun} ${h} setup ${root} ${a.ip} ${a.ifindex} ${a.podMac} ${a.hostMac}`,
    `${bun} ${h} reopen ${root} ${b.ip} ${b.ifindex} ${b.podMac} ${b.hostMac}`,
    `ip netns exec ${a.ns} ping -c 2 -i 0.2 -W 2 ${b.ip} >/dev/null && echo '{"ping":true}' || echo '{"ping":false}'`,
    `${bun} ${q(MAIN)} bpf --pin-root ${root} > ${out("cli.txt")}`,
    `${bun} ${q(MAIN)} bpf --pin-root ${root} --json > ${out("cli.json")}`,
    `${bun} ${h} destroy ${root} ${a.ip} ${a.ifindex} ${b.ip} ${b.ifindex}`,
  ].join(" && ");
  const r = run(["unshare", "-m", "--propagation", "private", "sh", "-c", script]);
  expect(r.stderr).toBe("");
  const [setup, reopen, ping, destroy] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  expect(setup.mounted).toBe(true);
  // with nothing pinned the pinned-only ADD declines and leaves nothing; the datapath then pins
  expect(setup.fast).toBe(false);
  expect(setup.declined).toEqual({ pins: [], attached: 0 });
  expect(setup.pins).toEqual(["config", "endpoints", setup.progPin, "remotes", "stats"]);
  expect(setup.endpoints).toEqual([a.ip]);
  // the second run mounts nothing, reopens the same program and sees the first run's endpoint
  expect(reopen.mounted).toBe(false);
  // every later pod goes on by the pinned program and map alone (overlay's ADD), without the datapath
  expect(reopen.fast).toBe(true);
  expect(reopen.progId).toBe(setup.progId);
  expect(reopen.endpoints).toEqual([a.ip, b.ip]);
  expect(reopen.attached).toEqual([setup.progId, setup.progId]);
  expect(ping).toEqual({ ping: true });
  // the first DEL by the pin: its endpoint went (once), its program with its veth; the other pod's stayed
  expect(destroy.fastDel).toEqual({ removed: true, left: "more", again: false, attachedBefore: 2, attachedAfter: 1 });
  expect(destroy).toMatchObject({ last: [false, true], pins: [], dirGone: true, attached: 0 });
  expect(listTc(conn, { all: true })).toEqual([]);

  // `cnikit bpf` while both pods were attached: programs and map contents in words
  const text = readFileSync(join(tmp.path, "cli.txt"), "utf8");
  for (const p of [a, b]) {
    expect(text).toMatch(new RegExp(`${p.host}\\s+ingress\\s+cnikit-pod\\s+1\\s+${setup.progId}\\s+cnikit_pod`));
    expect(text).toContain(`${p.ip} -> ifindex ${p.ifindex} (${p.host}), pod mac ${p.podMac}, gateway mac ${p.hostMac}`);
  }
  expect(text).toContain("network net (pins in");
  expect(text).toMatch(/counters: podToLocal [1-9]\d* packets/);
  const doc = JSON.parse(readFileSync(join(tmp.path, "cli.json"), "utf8"));
  expect(doc.programs.map((p: { progName: string }) => p.progName)).toEqual(["cnikit_pod", "cnikit_pod"]);
  expect(doc.networks[0].endpoints.map((e: { ip: string }) => e.ip)).toEqual([a.ip, b.ip]);
});

test("the pin lock: a last pod's DEL and an ADD on the same pins wait for each other", () => {
  // two host veths of their own (the first test deleted pod a's)
  must(["ip", "link", "add", `${P}r`, "type", "veth", "peer", "name", `${P}s`]);
  const [r1, r2] = [`${P}r`, `${P}s`].map((n) => JSON.parse(must(["ip", "-j", "link", "show", n]))[0]);
  const root = q(join(tmp.path, "fs3"));
  const mac = r1.address;
  const r = run(["unshare", "-m", "--propagation", "private", "sh", "-c", `${q(process.execPath)} ${q(HELPER)} race ${root} 10.81.0.8 ${r1.ifindex} ${mac} ${mac} ${r2.ifindex}`]);
  run(["ip", "link", "del", `${P}r`]);
  expect(r.stderr).toBe("");
  expect(JSON.parse(r.stdout.trim())).toEqual({
    // the DEL of the network's only pod waited for the ADD holding the lock, then saw its pod: pins kept
    delWaited: true,
    del: { left: "last" },
    afterDel: { pins: 5, endpoints: ["10.81.0.9"] },
    // a pinned-only ADD the kernel refused left no endpoint
    failedAdd: "ENODEV",
    failedAddLeft: ["10.81.0.9"],
    // the ADD waited for the DEL removing the pins, then found none: declined, nothing attached
    addWaited: true,
    add: { fast: false, attached: 0 },
    pins: [],
    attached: 0,
  });
});

test("DEL's endpoint removal (endpoint-del.ts) on pinned maps: only the pod's own entry, the last told, another layout refused", () => {
  const root = q(join(tmp.path, "fs2"));
  const r = run(["unshare", "-m", "--propagation", "private", "sh", "-c", `${q(process.execPath)} ${q(HELPER)} endpoint-del ${root}`]);
  expect(r.stderr).toBe("");
  expect(JSON.parse(r.stdout.trim())).toEqual({
    late: { removed: false, left: "more", kept: true },
    own: { removed: true, left: "more", gone: true },
    again: { removed: false, left: "more" },
    noVeth: { removed: true, left: "last", gone: true },
    none: { removed: false, left: "no-datapath" },
    otherLayout: "EEXIST",
    badKept: true,
  });
});
