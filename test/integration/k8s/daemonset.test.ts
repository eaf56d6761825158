/**
 * Issue 16: deploy/kubernetes/cnikit.yaml rolled out on three "nodes", as a kubelet would run it.
 *
 * Each node is a network namespace on an underlay bridge (default route via the bridge, so the
 * agent finds its interface as on a real node) with a root directory of its own
 * (test/integration/k8s/kubelet.ts). The test reads the DaemonSet from the YAML and, per node,
 * runs the init container (its command, args, env and volume mounts), then the main container
 * (the agent) and waits for its readiness probe; etcd runs with TLS and the Secret carries its
 * endpoint and certificates, as a user fills it in. Then containerd's go-cni (test/interop/gocni)
 * creates pods on every node through the installed plugins (shim -> the node's agent) and the
 * pods reach each other across nodes. Upgrade under load: on one node, while pods are added and
 * deleted in a loop, the DaemonSet pod is replaced (agent stopped, init container run again, new
 * agent) and the init container run once more beside a running agent: no ADD or DEL fails and a
 * watcher never sees a half-written binary or config.
 *
 * What the test edits in the manifest, as its "what to edit" comments say a user does: the Secret
 * (endpoint, CA, client certificate and key), and, so that every link it makes carries the run's
 * prefix, the delegate's bridge name in the ConfigMap and the agent's --device-prefix.
 *
 * Isolation: the file runs in a private network namespace (`unshare -n`); nodes and pods are
 * namespaces named "k8<run id>..."; every container and runtime call runs in a mount namespace of
 * its own; state lives in a temp folder.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { assertPrivateNetns, must, Namespaces, ping, run, tempDir } from "../../support/netns.ts";
import { doc, DIST, probe, readManifest, ROOT, SimNode, type Obj } from "./kubelet.ts";

assertPrivateNetns();

const id = `${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
const prefix = `k8${id}`; // every namespace and link of this run
const ns = new Namespaces(prefix);
const tmp = tempDir("k8s-ds");
const T = tmp.path;
const UNDERLAY = `${prefix}u`;
const NET = 93;
const ETCD_IP = `192.168.${NET}.254`;
const ETCD_PORT = 24390;
const procs: ReturnType<typeof Bun.spawn>[] = [];
let finished = false;

interface Node {
  sim: SimNode;
  ip: string;
  agent?: ReturnType<typeof Bun.spawn>;
  agentLog: string;
}
const nodes: Node[] = [];
let docs: Obj[];
let pod: Obj; // the DaemonSet's pod spec
const harnessDir = join(T, "k8s");

function spawn(argv: string[], log: string): ReturnType<typeof Bun.spawn> {
  if (finished) throw new Error("test already finished");
  const p = Bun.spawn(argv, { stdout: Bun.file(`${log}.out`), stderr: Bun.file(log) });
  procs.push(p);
  return p;
}

async function stopProc(p: ReturnType<typeof Bun.spawn> | undefined): Promise<void> {
  if (!p || p.exitCode !== null) return;
  p.kill("SIGTERM");
  const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
  await p.exited;
  clearTimeout(t);
}

/** Run `argv` without blocking the event loop (the watcher and the load run meanwhile). */
async function runAsync(argv: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn(argv, { stdin: stdin !== undefined ? new TextEncoder().encode(stdin) : "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** The init container on `n`, as kubelet runs it (to completion). */
async function runInit(n: Node): Promise<{ code: number; out: string }> {
  const c = pod.initContainers[0];
  const r = await runAsync(n.sim.containerArgv(pod, c, docs));
  return { code: r.code, out: r.stdout + r.stderr };
}

/** The main container (the agent) on `n`, then its readiness probe. */
async function startAgent(n: Node): Promise<void> {
  const c = pod.containers[0];
  n.agentLog = join(T, `${n.sim.name}-agent-${Date.now()}.log`);
  n.agent = spawn(n.sim.containerArgv(pod, c, docs), n.agentLog);
  const end = Date.now() + 30_000;
  while (!probe(n.sim, c.readinessProbe)) {
    if (n.agent.exitCode !== null || Date.now() > end) {
      throw new Error(`${n.sim.name}: agent not ready (exit ${n.agent.exitCode}):\n${readFileSync(n.agentLog, "utf8").slice(-3000)}`);
    }
    await Bun.sleep(200);
  }
  expect(probe(n.sim, c.livenessProbe)).toBe(true);
}

interface GoCniOut {
  ok: boolean;
  error?: string;
  result?: { interfaces: Record<string, { IPConfigs?: { IP: string }[]; Sandbox?: string }> };
}

/** containerd's go-cni on node `n`: /etc/cni/net.d and /opt/cni/bin of the node, its /var/lib/cni cache. */
async function gocni(n: Node, op: "setup" | "remove", podId: string, netns: string): Promise<GoCniOut> {
  const input = { op, confDir: "/etc/cni/net.d", binDir: "/opt/cni/bin", id: podId, netns, timeoutSeconds: 60, labels: { K8S_POD_NAMESPACE: "default", K8S_POD_NAME: podId.slice(0, 12), K8S_POD_INFRA_CONTAINER_ID: podId, IgnoreUnknown: "1" } };
  const r = await runAsync(n.sim.argv(["/k8s/gocni"]), JSON.stringify(input));
  try {
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as GoCniOut;
  } catch {
    return { ok: false, error: `harness exited ${r.code}: ${r.stdout}${r.stderr}` };
  }
}

const podId = (tag: string) => `${prefix}${tag}`.padEnd(64, "0");
const ipOf = (o: GoCniOut) => (o.result?.interfaces.eth0?.IPConfigs ?? []).map((c) => c.IP).find((ip) => !ip.includes(":"));

beforeAll(async () => {
  // the go-cni harness, built in GOPATH mode against Debian's go-cni
  mkdirSync(harnessDir, { recursive: true });
  const b = run(["go", "build", "-o", join(harnessDir, "gocni"), join(ROOT, "test/interop/gocni/main.go")], {
    env: { PATH: process.env.PATH, HOME: T, GOPATH: "/usr/share/gocode", GO111MODULE: "off", GOCACHE: join(T, "go-cache"), GOFLAGS: "" },
  });
  if (b.code !== 0) throw new Error(`go build failed: ${b.stdout}${b.stderr}`);

  // etcd with TLS on the underlay, and the certificates the Secret carries
  must(["ip", "link", "set", "lo", "up"]);
  must(["ip", "link", "add", UNDERLAY, "type", "bridge"]);
  must(["ip", "addr", "add", `${ETCD_IP}/24`, "dev", UNDERLAY]);
  must(["ip", "link", "set", UNDERLAY, "up"]);
  const f = (x: string) => join(T, x);
  const ssl = (args: string[]) => must(["openssl", ...args]);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  ssl(["req", "-x509", ...ec, "-keyout", f("ca.key"), "-out", f("ca.crt"), "-days", "1", "-subj", "/CN=k8-test-ca"]);
  for (const [name, ext] of [["server", `subjectAltName=IP:${ETCD_IP}\nextendedKeyUsage=serverAuth,clientAuth`], ["client", "extendedKeyUsage=clientAuth"]] as const) {
    await Bun.write(f(`${name}.ext`), `${ext}\n`);
    ssl(["req", ...ec, "-keyout", f(`${name}.key`), "-out", f(`${name}.csr`), "-subj", `/CN=${name}`]);
    ssl(["x509", "-req", "-in", f(`${name}.csr`), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f(`${name}.crt`), "-days", "1", "-extfile", f(`${name}.ext`)]);
  }
  const url = `https://${ETCD_IP}:${ETCD_PORT}`;
  const peer = `http://127.0.0.1:${ETCD_PORT + 1}`;
  spawn(["etcd", "--name", "e", "--data-dir", f("etcd"), "--listen-client-urls", url, "--advertise-client-urls", url, "--listen-peer-urls", peer,
    "--initial-advertise-peer-urls", peer, "--initial-cluster", `e=${peer}`, "--log-level", "error",
    "--cert-file", f("server.crt"), "--key-file", f("server.key"), "--client-cert-auth", "--trusted-ca-file", f("ca.crt")], f("etcd.log"));

  // the manifest, edited where its comments say to
  docs = readManifest();
  const secret = doc(docs, "Secret", "cnikit-etcd");
  secret.stringData = { endpoints: url, "ca.crt": readFileSync(f("ca.crt"), "utf8"), "tls.crt": readFileSync(f("client.crt"), "utf8"), "tls.key": readFileSync(f("client.key"), "utf8") };
  const cm = doc(docs, "ConfigMap", "cnikit-config");
  const list = JSON.parse(cm.data["cni-conf.json"]);
  list.plugins[0].delegate.bridge = `${prefix}b`;
  cm.data["cni-conf.json"] = JSON.stringify(list, null, 2);
  pod = doc(docs, "DaemonSet", "cnikit").spec.template.spec;
  pod.containers[0].args.push(`--device-prefix=${prefix}`);

  for (let i = 1; i <= 3; i++) {
    const path = ns.add(`n${i}`);
    const dev = `${prefix}e${i}`;
    must(["ip", "link", "add", `${prefix}h${i}`, "type", "veth", "peer", "name", dev, "netns", `${prefix}n${i}`]);
    must(["ip", "link", "set", `${prefix}h${i}`, "master", UNDERLAY, "up"]);
    must(["ip", "-n", `${prefix}n${i}`, "addr", "add", `192.168.${NET}.${i}/24`, "dev", dev]);
    must(["ip", "-n", `${prefix}n${i}`, "link", "set", dev, "up"]);
    must(["ip", "-n", `${prefix}n${i}`, "route", "add", "default", "via", ETCD_IP]);
    const sim = new SimNode(`node${i}`, path, join(T, `node${i}`), [{ src: harnessDir, dst: "/k8s" }]);
    nodes.push({ sim, ip: `192.168.${NET}.${i}`, agentLog: "" });
    await sim.start();
  }
}, 120_000);

afterAll(async () => {
  finished = true;
  for (const [n, podName] of cleanupPods) await gocni(n, "remove", podId(podName), `/run/netns/${prefix}${podName}`);
  for (const n of nodes) await stopProc(n.agent).catch(() => {});
  for (const p of procs) await stopProc(p).catch(() => {});
  for (const n of nodes) await n.sim.stop().catch(() => {});
  ns.cleanup();
  run(["ip", "link", "del", UNDERLAY]);
  tmp.remove();
});

const cleanupPods: [Node, string][] = [];

describe("the DaemonSet on three nodes", () => {
  test("the manifest: a DaemonSet as the issue asks (host network, privileged, every taint, node-critical, rolling update, probes)", () => {
    const ds = doc(docs, "DaemonSet", "cnikit");
    expect(ds.spec.updateStrategy.type).toBe("RollingUpdate");
    expect(pod.hostNetwork).toBe(true);
    expect(pod.priorityClassName).toBe("system-node-critical");
    expect(pod.tolerations).toContainEqual({ operator: "Exists" });
    expect(pod.hostPID).toBe(true);
    for (const c of [...pod.initContainers, ...pod.containers]) expect(c.securityContext.privileged).toBe(true);
    const agent = pod.containers[0];
    expect(agent.readinessProbe.httpGet.path).toBe("/readyz");
    expect(agent.livenessProbe.httpGet.path).toBe("/healthz");
    expect(agent.env.find((e: Obj) => e.name === "CNIKIT_NODE_NAME").valueFrom.fieldRef.fieldPath).toBe("spec.nodeName");
    const hostPaths = pod.volumes.filter((v: Obj) => v.hostPath).map((v: Obj) => v.hostPath.path);
    for (const p of ["/run/cnikit", "/run/flannel", "/var/lib/cni", "/sys/fs/bpf", "/opt/cni/bin", "/etc/cni/net.d"]) expect(hostPaths).toContain(p);
    expect(JSON.parse(doc(docs, "ConfigMap", "cnikit-config").data["net-conf.json"]).Backend.Type).toBe("vxlan");
  });

  test("roll-out: init container installs on every node, agents become ready, etcd gets the network config from --net-conf", async () => {
    for (const n of nodes) {
      const r = await runInit(n);
      expect(r.out).toContain("wrote /host/etc/cni/net.d/10-cnikit.conflist");
      expect(r.code).toBe(0);
      const root = n.sim.root;
      expect(readlinkSync(join(root, "opt/cni/bin/overlay"))).toBe("cnikit-shim");
      expect(statSync(join(root, "opt/cni/bin/cnikit")).size).toBe(statSync(join(DIST, "cnikit")).size);
      expect(JSON.parse(readFileSync(join(root, "etc/cni/net.d/10-cnikit.conflist"), "utf8")).plugins[0].type).toBe("overlay");
      expect(readdirSync(join(root, "etc/cni/net.d")).sort()).toEqual([".cnikit-install", "10-cnikit.conflist"]);
    }
    for (const n of nodes) await startAgent(n);
    // the first agent wrote the config; the others found it there and left it
    const logs = nodes.map((n) => readFileSync(n.agentLog, "utf8"));
    expect(logs.filter((l) => l.includes("wrote the network config into etcd")).length).toBe(1);
    expect(logs.filter((l) => l.includes("etcd already holds a network config")).length).toBe(2);
    const subnets = nodes.map((n) => readFileSync(join(n.sim.root, "run/flannel/subnet.env"), "utf8").match(/FLANNEL_SUBNET=(\S+)/)?.[1]);
    expect(new Set(subnets).size).toBe(3);
    for (const s of subnets) expect(s).toMatch(/^10\.244\.\d+\.1\/24$/);
    // nothing of the nodes' landed in the machine's own paths
    for (const p of ["/run/cnikit", "/run/flannel", "/var/lib/cni", "/etc/cni/net.d/10-cnikit.conflist"]) {
      if (existsSync(p)) expect(readdirSync(p === "/etc/cni/net.d/10-cnikit.conflist" ? "/etc/cni/net.d" : p).join(" ")).not.toContain(prefix);
    }
  }, 120_000);

  test("go-cni creates a pod on every node through the installed plugins; pods reach each other across nodes", async () => {
    const ips: string[] = [];
    for (const [i, n] of nodes.entries()) {
      const name = `p${i + 1}`;
      const netns = ns.add(name);
      const out = await gocni(n, "setup", podId(name), netns);
      expect(out.error ?? "").toBe("");
      cleanupPods.push([n, name]);
      const ip = ipOf(out);
      const subnet = readFileSync(join(n.sim.root, "run/flannel/subnet.env"), "utf8").match(/FLANNEL_SUBNET=(\d+\.\d+\.\d+)\./)![1]!;
      expect(ip?.startsWith(`${subnet}.`)).toBe(true);
      ips.push(ip!);
    }
    // the calls went through each node's agent (shim -> daemon), although the runtime runs in the
    // node's mount namespace and the agent in its container's (--accept-mount-ns, hostPID)
    for (const n of nodes) {
      const m = run(["nsenter", `--net=${n.sim.netns}`, "curl", "-s", "http://127.0.0.1:9102/metrics"]).stdout;
      const served = Number(m.match(/cnikit_cni_requests_total\{plugin="overlay",verb="ADD",code="0"\} (\d+)/)?.[1] ?? 0);
      const declined = Number(m.match(/cnikit_cni_requests_declined_total (\d+)/)?.[1] ?? -1);
      expect(`${n.sim.name}: overlay ADDs served ${served}, declined ${declined}`).toBe(`${n.sim.name}: overlay ADDs served 1, declined 0`);
    }
    for (let a = 0; a < 3; a++) {
      for (let b = 0; b < 3; b++) {
        if (a === b) continue;
        let ok = false;
        for (let k = 0; k < 3 && !ok; k++) ok = ping(`/run/netns/${prefix}p${a + 1}`, ips[b]!);
        expect(`${a + 1} -> ${b + 1} (${ips[b]}): ${ok}`).toBe(`${a + 1} -> ${b + 1} (${ips[b]}): true`);
      }
    }
  }, 120_000);

  test("upgrade under load: the DaemonSet pod replaced and the init container run again while pods come and go; no call fails, no file is seen half-written", async () => {
    const n = nodes[0]!;
    const root = n.sim.root;
    const confFile = join(root, "etc/cni/net.d/10-cnikit.conflist");
    const wantConf = readFileSync(confFile, "utf8");
    const sizes = { cnikit: statSync(join(DIST, "cnikit")).size, "cnikit-shim": statSync(join(DIST, "cnikit-shim")).size };
    const types = readdirSync(join(root, "opt/cni/bin")).filter((t) => !t.startsWith(".") && !t.startsWith("cnikit"));
    let stop = false;
    const bad: string[] = [];
    let looks = 0;
    // the watcher: what a runtime or kubelet could read at any moment
    const watcher = (async () => {
      while (!stop) {
        looks++;
        for (const f of readdirSync(join(root, "etc/cni/net.d"))) {
          if (!/\.(conf|conflist|json)$/.test(f)) continue;
          let text = "";
          try {
            text = readFileSync(join(root, "etc/cni/net.d", f), "utf8");
          } catch {
            continue; // renamed away between the listing and the read
          }
          if (f === "10-cnikit.conflist" && text !== wantConf) bad.push(`${f}: ${text.length} bytes, not the config`);
          else if (f !== "10-cnikit.conflist") bad.push(`unexpected config file ${f}`);
        }
        for (const [name, size] of Object.entries(sizes)) {
          const s = statSync(join(root, "opt/cni/bin", name), { throwIfNoEntry: false });
          if (!s) bad.push(`${name} missing`);
          else if (s.size !== size) bad.push(`${name}: ${s.size} bytes of ${size}`);
        }
        for (const t of types) {
          try {
            if (!lstatSync(join(root, "opt/cni/bin", t)).isSymbolicLink()) bad.push(`${t} not a link`);
          } catch {
            bad.push(`${t} missing`);
          }
        }
        await Bun.sleep(1);
      }
    })();
    // the load: pods added and deleted one after the other through go-cni
    const failures: string[] = [];
    let calls = 0;
    const load = (async () => {
      for (let k = 0; !stop; k++) {
        const name = `l${k}`;
        const netns = ns.add(name);
        const add = await gocni(n, "setup", podId(name), netns);
        calls++;
        if (!add.ok) failures.push(`ADD ${name}: ${add.error}`);
        await Bun.sleep(0);
        const del = await gocni(n, "remove", podId(name), netns);
        calls++;
        if (!del.ok) failures.push(`DEL ${name}: ${del.error}`);
        run(["ip", "netns", "del", `${prefix}${name}`]);
        await Bun.sleep(0);
      }
    })();
    try {
      await upgrade();
    } finally {
      stop = true;
      await load;
      await watcher;
    }
    console.log(`upgrade under load: ${calls} ADD/DEL calls, ${failures.length} failed; the files looked at ${looks} times, ${bad.length} bad sights`);
    async function upgrade() {
    await Bun.sleep(1500);
    // a rolling update of this node's DaemonSet pod: the old agent goes, the init container runs,
    // the new agent starts and becomes ready
    await stopProc(n.agent);
    const r1 = await runInit(n);
    expect(r1.code).toBe(0);
    await startAgent(n);
    await Bun.sleep(1000);
    // and the init container once more beside a running agent
    const r2 = await runInit(n);
    expect(r2.code).toBe(0);
    await Bun.sleep(1500);
    }
    expect(failures).toEqual([]);
    expect([...new Set(bad)]).toEqual([]);
    expect(calls).toBeGreaterThan(6);
    // no temp file left, and the node's pods still reach the others
    expect(readdirSync(join(root, "opt/cni/bin")).filter((f) => f.includes(".tmp-"))).toEqual([]);
    expect(readdirSync(join(root, "etc/cni/net.d")).filter((f) => f.includes(".tmp-"))).toEqual([]);
    const out = await gocni(nodes[1]!, "setup", podId("after"), ns.add("after"));
    expect(out.error ?? "").toBe("");
    cleanupPods.push([nodes[1]!, "after"]);
    expect(ping(`/run/netns/${prefix}p1`, ipOf(out)!)).toBe(true);
  }, 120_000);

  test("uninstall on a node removes exactly what the init container wrote", async () => {
    const n = nodes[2]!;
    const root = n.sim.root;
    // the node's pod goes first (as kubelet drains a node), then another CNI's config appears beside cnikit's
    expect((await gocni(n, "remove", podId("p3"), `/run/netns/${prefix}p3`)).error ?? "").toBe("");
    cleanupPods.splice(cleanupPods.findIndex(([, p]) => p === "p3"), 1);
    writeFileSync(join(root, "etc/cni/net.d/05-other.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "other", plugins: [{ type: "other" }] }));
    const r = n.sim.exec(["/opt/cni/bin/cnikit", "uninstall", "--bin-dir", "/opt/cni/bin", "--conf-dir", "/etc/cni/net.d"]);
    expect(r.code).toBe(0);
    expect(readdirSync(join(root, "etc/cni/net.d"))).toEqual(["05-other.conflist"]);
    expect(readdirSync(join(root, "opt/cni/bin"))).toEqual([]);
  }, 60_000);
});
