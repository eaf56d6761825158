/**
 * Fuzz every built-in plugin with malformed invocations (seeded, bounded in time), as the compiled
 * binary runs them: wrong JSON types for every known key, keys in another case, missing keys,
 * broken JSON, UTF-16, huge values, path traversal in the network name, container id and ifname,
 * garbage prevResults, every verb. Each case must end in one spec error document with cniVersion,
 * or a success; a successful ADD must be undone completely by DEL with the same input, and a failed
 * ADD must leave nothing; a wrong JSON type on ADD must be refused; no call takes over 5 s; nothing
 * is written outside the test's scratch directory.
 *
 * CNIKIT_FUZZ_SEED picks the seed (printed), CNIKIT_FUZZ_MS the time budget.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { assertPrivateNetns, must, Namespaces, run, runPrefix, tempDir } from "../../support/netns.ts";
import { seeded } from "../../support/seeded.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const SEED = Number(process.env.CNIKIT_FUZZ_SEED ?? 20261205);
const BUDGET_MS = Number(process.env.CNIKIT_FUZZ_MS ?? 30_000);
const CALL_LIMIT_MS = 5000;
const P = runPrefix("fz");
const ns = new Namespaces(P);
const tmp = tempDir("fuzz");
const bin = join(tmp.path, "bin");
const scratch = join(tmp.path, "s");
const GUARDED = ["/var/lib/cni", "/run/cni", "/run/flannel", "/etc/cni/net.d/10-cnikit.conflist"];
const guardedBefore = GUARDED.filter((p) => existsSync(p));
let pod = "";

const rand = seeded(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

/** One plugin under test: its base config (valid), the keys never removed (they name host objects or state paths). */
interface Target {
  type: string;
  /** Runs on the fixture's pod interface eth0 (a chained plugin). */
  chained?: boolean;
  conf: () => Obj;
  keep: string[];
  /** ADD of the base config works on this machine (ipvlan/vlan need modules; cluster-ipam needs etcd). */
  baseWorks?: boolean;
}

let fixtureResult: Obj = {};
const ipamDir = () => join(scratch, "ipam");
const hostLocal = (subnet: string): Obj => ({ type: "host-local", ranges: [[{ subnet }]], routes: [{ dst: "0.0.0.0/0" }], dataDir: ipamDir() });
const staticIpam = (address: string): Obj => ({ type: "static", addresses: [{ address, gateway: address.replace(/\.\d+\//, ".1/").split("/")[0]! }], routes: [{ dst: "0.0.0.0/0" }] });

const TARGETS: Target[] = [
  { type: "bridge", keep: ["bridge", "dataDir", "ipam"], conf: () => ({ bridge: `${P}br`, isGateway: true, isDefaultGateway: false, ipMasq: true, hairpinMode: false, promiscMode: false, forceAddress: false, macspoofchk: true, mtu: 1500, enabledad: false, portIsolation: false, ipam: hostLocal("10.77.0.0/24"), dns: { nameservers: ["10.77.0.1"], search: ["x"] } }) },
  { type: "ptp", keep: ["dataDir", "ipam"], conf: () => ({ mtu: 1400, ipMasq: true, ipam: hostLocal("10.78.0.0/24") }) },
  { type: "macvlan", keep: ["master"], conf: () => ({ master: `${P}m0`, mode: "bridge", mtu: 1400, ipam: staticIpam("10.79.0.5/24") }) },
  { type: "ipvlan", keep: ["master"], conf: () => ({ master: `${P}m1`, mode: "l2", mtu: 1400, ipam: staticIpam("10.80.0.5/24") }) },
  { type: "vlan", keep: ["master"], conf: () => ({ master: `${P}m2`, vlanId: 100, mtu: 1400, ipam: staticIpam("10.81.0.5/24") }) },
  { type: "host-device", keep: ["device"], conf: () => ({ device: `${P}hd` }) },
  { type: "loopback", keep: [], conf: () => ({}) },
  { type: "host-local", keep: ["ipam", "dataDir"], conf: () => ({ ipam: hostLocal("10.82.0.0/24") }) },
  { type: "static", keep: ["ipam"], conf: () => ({ ipam: { ...staticIpam("10.83.0.5/24"), dns: { nameservers: ["10.83.0.1"] } } }) },
  { type: "cluster-ipam", keep: ["ipam", "dataDir", "etcdEndpoints"], conf: () => ({ ipam: { type: "cluster-ipam", etcdEndpoints: ["http://127.0.0.1:1"], subnet: "10.84.0.0/16", dataDir: join(scratch, "cipam") } }) },
  { type: "tuning", chained: true, keep: ["dataDir", "prevResult"], conf: () => ({ sysctl: { "net.ipv4.conf.IFNAME.accept_local": "1" }, mtu: 1400, promisc: true, allmulti: false, txQLen: 500, dataDir: join(scratch, "tuning"), prevResult: fixtureResult }) },
  { type: "sbr", chained: true, keep: ["prevResult"], conf: () => ({ table: 150, prevResult: fixtureResult }) },
  { type: "firewall", chained: true, keep: ["dataDir", "prevResult"], conf: () => ({ ingressPolicy: "same-bridge", backend: "iptables", dataDir: join(scratch, "firewall"), prevResult: fixtureResult }) },
  { type: "bandwidth", chained: true, keep: ["prevResult"], conf: () => ({ ingressRate: 1_000_000, ingressBurst: 100_000, egressRate: 1_000_000, egressBurst: 100_000, prevResult: fixtureResult }) },
  { type: "portmap", chained: true, keep: ["prevResult"], conf: () => ({ snat: true, capabilities: { portMappings: true }, runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: "tcp" }] }, prevResult: fixtureResult }) },
  { type: "overlay", keep: ["subnetFile", "dataDir", "delegate"], conf: () => ({ subnetFile: join(scratch, "subnet.env"), dataDir: join(scratch, "overlay"), subnetFileWaitMs: 0, delegate: { bridge: `${P}ob`, hairpinMode: true, ipam: { dataDir: join(scratch, "ipam") } } }) },
];

function fullConf(t: Target): Obj {
  const c: Obj = { cniVersion: "1.1.0", name: "fz", type: t.type, ...JSON.parse(JSON.stringify(t.conf())) };
  return c;
}

interface Call {
  code: number;
  out: string;
  ms: number;
  signal?: string;
}

function call(type: string, verb: string, stdin: Uint8Array, env: Record<string, string>): Call {
  const t0 = performance.now();
  const p = Bun.spawnSync([join(bin, type)], {
    env: { PATH: process.env.PATH ?? "", CNI_COMMAND: verb, CNI_PATH: bin, CNI_IFNAME: "eth1", CNI_NETNS: pod, ...env },
    stdin,
    stdout: "pipe",
    stderr: "pipe",
    timeout: CALL_LIMIT_MS * 2,
    argv0: type,
  });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), ms: performance.now() - t0, ...(p.signalCode ? { signal: String(p.signalCode) } : {}) };
}

/** What a call printed is one spec error with cniVersion (failure) or a result / nothing (success). */
function outputProblem(verb: string, c: Call): string | undefined {
  if (c.ms > CALL_LIMIT_MS) return `took ${Math.round(c.ms)} ms`;
  if (c.signal) return `killed by ${c.signal}`;
  let doc: Record<string, unknown> | undefined;
  if (c.out.trim() !== "") {
    try {
      doc = JSON.parse(c.out);
    } catch {
      return `stdout is not one JSON document: ${c.out.slice(0, 200)}`;
    }
  }
  if (c.code !== 0) {
    if (!doc || typeof doc.code !== "number" || typeof doc.msg !== "string" || typeof doc.cniVersion !== "string" || doc.cniVersion === "") {
      return `failed (exit ${c.code}) without a spec error carrying cniVersion: ${c.out.slice(0, 200)}`;
    }
    return undefined;
  }
  if (verb === "ADD" || verb === "VERSION") return doc && typeof doc.cniVersion === "string" ? undefined : `success without a result: ${c.out.slice(0, 200)}`;
  return doc === undefined ? undefined : `success printed something: ${c.out.slice(0, 200)}`;
}

/** Everything of the node and the pod that an attachment may change, as comparable text. */
function snapshot(): string {
  const files = (dir: string): string[] =>
    existsSync(dir)
      ? readdirSync(dir).flatMap((n) => {
          const p = join(dir, n);
          if (statSync(p).isDirectory()) return files(p);
          return /^(lock|last_reserved_ip\..*)$/.test(n) ? [] : [relative(scratch, p)];
        })
      : [];
  const links = (pre: string[]) =>
    (JSON.parse(must([...pre, "ip", "-j", "link", "show"])) as Array<{ ifname: string; mtu: number; address?: string; flags: string[] }>)
      .map((l) => `${l.ifname} ${l.mtu} ${l.address ?? ""} ${[...l.flags].sort().join(",")}`)
      .sort();
  const inPod = ["nsenter", `--net=${pod}`];
  return [
    ...links([]),
    must(["ip", "-o", "addr", "show"]),
    must(["ip", "route", "show", "table", "all"]),
    must(["nft", "list", "ruleset"]).replace(/packets \d+ bytes \d+/g, ""),
    must(["tc", "qdisc", "show"]),
    ...links(inPod),
    must([...inPod, "ip", "-o", "addr", "show"]),
    must([...inPod, "ip", "rule", "show"]),
    must([...inPod, "ip", "route", "show", "table", "all"]),
    must([...inPod, "sysctl", "-n", "net.ipv4.conf.eth0.accept_local"]),
    ...files(scratch),
  ]
    .join("\n")
    // a bridge whose last port went loses its carrier: not state an attachment owns
    .replace(/NO-CARRIER,| linkdown/g, "")
    .split("\n")
    // IPv6 link-local addresses and their local routes come and go with the kernel's DAD on its own
    // time (a link made before a case finishes DAD during it); leaked links show in the link list
    .filter((l) => !/\bfe80::/.test(l))
    .sort()
    .join("\n");
}

// -------- mutations

/** Paths of every value in a config, e.g. ["ipam","ranges",0,0,"subnet"]. */
function paths(v: Json, at: Array<string | number> = []): Array<Array<string | number>> {
  if (Array.isArray(v)) return [at, ...v.flatMap((e, i) => paths(e, [...at, i]))];
  if (v !== null && typeof v === "object") return [...(at.length ? [at] : []), ...Object.entries(v).flatMap(([k, e]) => paths(e, [...at, k]))];
  return [at];
}
function getAt(o: Json, p: Array<string | number>): Json {
  return p.reduce<Json>((v, k) => (v as Record<string | number, Json>)[k]!, o);
}
function setAt(o: Json, p: Array<string | number>, val: Json | undefined): void {
  const parent = getAt(o, p.slice(0, -1)) as Record<string | number, Json>;
  if (val === undefined) {
    if (Array.isArray(parent)) parent.splice(Number(p[p.length - 1]), 1);
    else delete parent[p[p.length - 1]!];
  } else parent[p[p.length - 1]!] = val;
}
function kindOf(v: Json): string {
  if (Array.isArray(v)) return "list";
  if (v === null) return "null";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  return typeof v;
}
const OTHERS: Json[] = ["x", 7, 1.5, true, {}, [], -1];
function wrongFor(v: Json): Json {
  const k = kindOf(v);
  const choices = OTHERS.filter((o) => kindOf(o) !== k && !(k === "int" && kindOf(o) === "int") && !(k === "float" && typeof o === "number"));
  return pick(choices);
}
const HUGE: Json[] = [1e308, -1e308, 2 ** 64, 2 ** 53 + 1, -(2 ** 63) - 1e6, "a".repeat(100_000), "\u0000", "\ud800", Array.from({ length: 5000 }, () => "10.0.0.1")];

interface Case {
  target: Target;
  kind: string;
  detail: string;
  stdin: Uint8Array;
  env: Record<string, string>;
  /** ADD must be refused (a wrong JSON type of a known key). */
  mustRefuse: boolean;
  /** ADD must succeed (only a key's case changed on a config that works). */
  mustSucceed: boolean;
}

const enc = (s: string) => new TextEncoder().encode(s);

function makeCase(n: number): Case {
  const target = TARGETS[n % TARGETS.length]!;
  const conf = fullConf(target) as Json;
  const env: Record<string, string> = { CNI_CONTAINERID: `fz${n}`, ...(target.chained ? { CNI_IFNAME: "eth0" } : {}) };
  const fieldPaths = paths(conf).filter((p) => p.length > 0 && !["cniVersion", "type", "prevResult"].includes(String(p[0])) && !(p[0] === "ipam" && p[1] === "type"));
  const top = (p: Array<string | number>) => String(p[0]);
  const kind = pick(["wrongType", "wrongType", "wrongType", "case", "missing", "broken", "utf16", "huge", "traversal", "prevResult", "env"]);
  let detail = "";
  let mustRefuse = false;
  let mustSucceed = false;
  let text: string | Uint8Array | undefined;
  switch (kind) {
    case "wrongType": {
      const p = pick(fieldPaths);
      const before = getAt(conf, p);
      const val = wrongFor(before);
      setAt(conf, p, val);
      detail = `${p.join(".")}: ${JSON.stringify(before)?.slice(0, 40)} -> ${JSON.stringify(val)}`;
      // a different JSON type (or a fraction for an integer) of a key the reference knows
      mustRefuse = !(kindOf(before) === "list" && Array.isArray(val)) && typeof p[p.length - 1] === "string" && !(target.type === "tuning" && p[0] === "sysctl" && p.length === 2 && typeof val === "string");
      break;
    }
    case "case": {
      // map keys (Go maps: sysctl, capabilities, overlay's delegate) are matched exactly, as in Go
      const p = pick(fieldPaths.filter((q) => typeof q[q.length - 1] === "string" && !(["sysctl", "capabilities", "delegate"].includes(String(q[0])) && q.length >= 2)));
      if (!p) break;
      const key = String(p[p.length - 1]);
      const parent = getAt(conf, p.slice(0, -1)) as Obj;
      const val = parent[key]!;
      delete parent[key];
      const other = rand() < 0.5 ? key.toUpperCase() : key[0]!.toUpperCase() + key.slice(1);
      parent[other] = val;
      detail = `${p.join(".")} as ${other}`;
      mustSucceed = target.baseWorks === true;
      break;
    }
    case "missing": {
      const p = pick(fieldPaths.filter((q) => !target.keep.includes(top(q)) && !(q[0] === "ipam" && q[q.length - 1] === "dataDir") && q[0] !== "name"));
      if (!p) break;
      setAt(conf, p, undefined);
      detail = p.join(".");
      break;
    }
    case "broken": {
      const s = JSON.stringify(conf);
      text = pick([s.slice(0, Math.floor(rand() * s.length)), `${s}}`, s.replace(/"/, ""), "", "null", "[]", "42", "\"x\"", `${s}${s}`]);
      detail = JSON.stringify(text).slice(0, 60);
      break;
    }
    case "utf16": {
      const s = JSON.stringify(conf);
      const b = new Uint8Array(2 + s.length * 2);
      b[0] = 0xff;
      b[1] = 0xfe;
      for (let i = 0; i < s.length; i++) b[2 + 2 * i] = s.charCodeAt(i) & 0xff;
      text = b;
      detail = "UTF-16LE with BOM";
      break;
    }
    case "huge": {
      const p = pick(fieldPaths);
      const val = pick(HUGE);
      setAt(conf, p, val);
      detail = `${p.join(".")} = ${JSON.stringify(val).slice(0, 30)}`;
      break;
    }
    case "traversal": {
      const where = pick(["name", "CNI_CONTAINERID", "CNI_IFNAME"]);
      const val = pick(["..", ".", "../../x", "a/../../b", "x/..", "/etc", "a b"]);
      if (where === "name") (conf as Obj).name = val;
      else env[where] = val;
      detail = `${where} = ${JSON.stringify(val)}`;
      break;
    }
    case "prevResult": {
      const val = pick<Json>(["x", 5, [], { ips: "x" }, { interfaces: [{ name: 5 }] }, { cniVersion: "9.9.9" }, { ips: [{ address: "300.1.1.1/24" }] }, { ips: [{ address: "10.0.0.9/24", interface: 99 }] }]);
      (conf as Obj).prevResult = val;
      detail = JSON.stringify(val);
      break;
    }
    case "env": {
      const which = pick(["CNI_NETNS", "CNI_NETNS_GONE", "CNI_PATH", "CNI_IFNAME_LONG"]);
      if (which === "CNI_NETNS") env.CNI_NETNS = "";
      if (which === "CNI_NETNS_GONE") env.CNI_NETNS = `/run/netns/${P}gone`;
      if (which === "CNI_PATH") env.CNI_PATH = "";
      if (which === "CNI_IFNAME_LONG") env.CNI_IFNAME = "eth0123456789abcdef";
      detail = which;
      break;
    }
  }
  const stdin = text instanceof Uint8Array ? text : enc(text ?? JSON.stringify(conf));
  return { target, kind, detail, stdin, env, mustRefuse, mustSucceed };
}

// -------- set-up

beforeAll(() => {
  must(["ip", "link", "set", "lo", "up"]);
  mkdirSync(scratch, { recursive: true });
  must([CNIKIT, "install", "--bin-dir", bin]);
  pod = ns.add("pod");
  // no dummy module on these machines: veth pairs stand in for the masters and the host device
  for (const m of ["m0", "m1", "m2", "hd"]) must(["ip", "link", "add", `${P}${m}`, "type", "veth", "peer", "name", `${P}${m}p`]);
  for (const m of ["m0", "m1", "m2"]) must(["ip", "link", "set", `${P}${m}`, "up"]);
  writeFileSync(join(scratch, "subnet.env"), "FLANNEL_NETWORK=10.90.0.0/16\nFLANNEL_SUBNET=10.90.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n");
  // a real pod interface for the chained plugins (their prevResult), on a subnet and an IPAM
  // directory of its own: a GC case releases what the cases' directory holds for no valid
  // attachment, and a case's pod given the fixture's address would take its masquerade elements
  const base = { ...fullConf(TARGETS[0]!), ipam: { ...hostLocal("10.76.0.0/24"), dataDir: join(scratch, "ipam-fixture") } };
  const r = call("bridge", "ADD", enc(JSON.stringify(base)), { CNI_CONTAINERID: "fixture", CNI_IFNAME: "eth0" });
  if (r.code !== 0) throw new Error(`fixture ADD failed: ${r.out}`);
  fixtureResult = JSON.parse(r.out);
  // warm-up: the base config of each target once (ADD + DEL), so shared objects exist before snapshots
  for (const t of TARGETS) {
    const stdin = enc(JSON.stringify(fullConf(t)));
    const env = { CNI_CONTAINERID: `warm${t.type.replace(/-/g, "")}`, ...(t.chained ? { CNI_IFNAME: "eth0" } : {}) };
    const add = call(t.type, "ADD", stdin, env);
    t.baseWorks = add.code === 0;
    call(t.type, "DEL", stdin, env);
    console.log(`fuzz: ${t.type} base config ${t.baseWorks ? "works" : `fails here (${add.out.replace(/\s+/g, " ").slice(0, 160)})`}`);
  }
}, 120_000);

afterAll(() => {
  ns.cleanup();
  // a private netns: every link a case may have left goes (the failures were reported)
  for (const l of JSON.parse(run(["ip", "-j", "link", "show"]).stdout || "[]") as Array<{ ifname: string }>) {
    if (l.ifname !== "lo") run(["ip", "link", "del", l.ifname]);
  }
  tmp.remove();
});

test("malformed invocations of every built-in plugin end in a spec error or a success that DEL undoes", () => {
  const problems: string[] = [];
  const counts = new Map<string, number>();
  const t0 = performance.now();
  let n = 0;
  const verbs = ["CHECK", "DEL", "GC", "STATUS", "VERSION"];
  for (; performance.now() - t0 < BUDGET_MS; n++) {
    const c = makeCase(n);
    const label = `case ${n} ${c.target.type} ${c.kind} ${c.detail}`;
    const doAdd = rand() < 0.6;
    const count = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
    if (doAdd) {
      const before = snapshot();
      const add = call(c.target.type, "ADD", c.stdin, c.env);
      const p = outputProblem("ADD", add);
      if (p) problems.push(`${label}: ADD ${p}`);
      if (c.mustRefuse && add.code === 0) problems.push(`${label}: ADD accepted a wrong JSON type`);
      if (c.mustSucceed && add.code !== 0) problems.push(`${label}: ADD refused a key in another case: ${add.out.slice(0, 200)}`);
      if (add.code === 0) {
        const del = call(c.target.type, "DEL", c.stdin, c.env);
        if (del.code !== 0) problems.push(`${label}: DEL after a successful ADD failed: ${del.out.slice(0, 200)}`);
        if (snapshot() !== before) problems.push(`${label}: ADD + DEL left state behind:\n${diff(before, snapshot())}`);
        count(`${c.target.type} ADD ok`);
      } else {
        if (snapshot() !== before) problems.push(`${label}: a failed ADD left state behind:\n${diff(before, snapshot())}`);
        call(c.target.type, "DEL", c.stdin, c.env); // as a runtime does after a failed ADD
        count(`${c.target.type} ADD refused`);
      }
    } else {
      const verb = pick(verbs);
      const r = call(c.target.type, verb, c.stdin, c.env);
      const p = outputProblem(verb, r);
      if (p) problems.push(`${label}: ${verb} ${p}`);
      count(`${c.target.type} ${verb} ${r.code === 0 ? "ok" : "refused"}`);
    }
    if (problems.length > 20) break;
  }
  for (const g of GUARDED) {
    if (!existsSync(g) || guardedBefore.includes(g)) continue;
    problems.push(`a plugin wrote ${g}, outside the scratch directory`);
    rmSync(g, { recursive: true, force: true }); // reported; the machine keeps nothing of it
  }
  const outside = readdirSync(tmp.path).filter((f) => !["s", "bin"].includes(f));
  if (outside.length > 0) problems.push(`written beside the scratch directory: ${outside.join(", ")}`);
  console.log(`fuzz: seed ${SEED}, ${n} cases in ${Math.round(performance.now() - t0)} ms`);
  console.log([...counts.entries()].sort().map(([k, v]) => `  ${k}: ${v}`).join("\n"));
  expect(problems).toEqual([]);
  // cases go round the plugins in turn: every plugin had at least two, whatever the machine's speed
  expect(n).toBeGreaterThanOrEqual(TARGETS.length * 2);
}, BUDGET_MS + 120_000);

function diff(a: string, b: string): string {
  const A = new Set(a.split("\n"));
  const B = new Set(b.split("\n"));
  return [...[...A].filter((l) => !B.has(l)).map((l) => `- ${l}`), ...[...B].filter((l) => !A.has(l)).map((l) => `+ ${l}`)].join("\n").slice(0, 1500);
}
