/**
 * A small cluster inside the caller's private network namespace, for the multi-node test and
 * bench: an underlay bridge, a real etcd on it, node namespaces attached to it, a `cnikit agent` in
 * each (run through nsenter, so its PID is ours to stop), and pods added through `overlay`.
 * Everything is named with the caller's prefix and removed by `destroy()`.
 */

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Etcd3 } from "etcd3";
import { must, Namespaces, run, type Ran } from "./netns.ts";

const ROOT = resolve(import.meta.dir, "../..");
export const CNIKIT = join(ROOT, "dist/cnikit");

/** The underlay: 192.168.<net>.0/24; etcd on .254, node i on .i. */
export interface ClusterOptions {
  prefix: string;
  dir: string;
  underlayNet?: number;
  etcdPort?: number;
  /** Give the underlay IPv6 addresses too (fd00:<net>::<i>/64). */
  dualStack?: boolean;
  /**
   * A mount namespace (/proc/<pid>/ns/mnt) agents and plugins run in besides the node's network
   * namespace: the eBPF tests keep their bpffs pins in a private one.
   */
  mountNs?: string;
  /** Extra keys of every node's overlay plugin config (`datapath`, say). */
  overlay?: Record<string, unknown>;
}

/** Wait until etcd answers through `c` (up to ~10 s). */
export async function etcdReady(c: Etcd3): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await c.get("/ping").string();
      return;
    } catch (e) {
      if (i > 100) throw e;
      await Bun.sleep(100);
    }
  }
}

/**
 * A single-member etcd listening on loopback (client port `port`, peer port `port + 1`) with its data
 * under `dir`; returns a connected client and a stop() that closes it and stops etcd by its PID.
 */
export async function loopbackEtcd(dir: string, port: number): Promise<{ etcd: Etcd3; endpoint: string; stop: () => Promise<void> }> {
  const endpoint = `http://127.0.0.1:${port}`;
  const peer = `http://127.0.0.1:${port + 1}`;
  const proc = Bun.spawn(["etcd", "--name", "e", "--data-dir", join(dir, "etcd"), "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", `e=${peer}`, "--log-level", "error"],
  { stdout: "ignore", stderr: "ignore" });
  const { connectEtcd } = await import("../../src/ipam/etcd.ts");
  const etcd = await connectEtcd({ endpoints: [endpoint], timeoutMs: 3000 });
  const stop = async () => {
    etcd.close();
    proc.kill();
    await proc.exited;
  };
  await etcdReady(etcd).catch(async (e) => {
    await stop();
    throw e;
  });
  return { etcd, endpoint, stop };
}

/**
 * Where a node is attached when not on the cluster's own underlay: another bridge (made by the
 * caller) and its 192.168.<underlayNet>.0/24 (a second L2 segment behind a router).
 */
export interface NodeSegment {
  bridge?: string;
  underlayNet?: number;
}

export interface Node {
  name: string;
  ns: string;
  ip: string;
  ip6?: string;
  dev: string;
  subnetFile: string;
  confDir: string;
  agent?: { pid: number; proc: ReturnType<typeof Bun.spawn>; log: string };
}

export class Cluster {
  readonly ns: Namespaces;
  readonly bridge: string;
  readonly etcdIP: string;
  readonly etcdURL: string;
  readonly nodes: Node[] = [];
  readonly bin: string;
  private etcd: ReturnType<typeof Bun.spawn> | undefined;
  private starts = 0;
  /** Set by destroy(): a test body that timed out keeps running and must not start anything more. */
  private destroyed = false;
  private clients: Etcd3[] = [];
  private readonly net: number;
  private readonly port: number;

  constructor(readonly o: ClusterOptions) {
    this.ns = new Namespaces(o.prefix);
    this.bridge = `${o.prefix}u`;
    this.net = o.underlayNet ?? 77;
    this.port = o.etcdPort ?? 23790;
    this.etcdIP = `192.168.${this.net}.254`;
    this.etcdURL = `http://${this.etcdIP}:${this.port}`;
    this.bin = join(o.dir, "bin");
    must(["ip", "link", "set", "lo", "up"]);
    must(["ip", "link", "add", this.bridge, "type", "bridge"]);
    must(["ip", "addr", "add", `${this.etcdIP}/24`, "dev", this.bridge]);
    if (o.dualStack) must(["ip", "addr", "add", `fd00:${this.net}::fe/64`, "dev", this.bridge, "nodad"]);
    must(["ip", "link", "set", this.bridge, "up"]);
    must([CNIKIT, "install", "--bin-dir", this.bin]);
  }

  /** Start (or restart, keeping its data) etcd and wait until it answers. */
  async startEtcd(): Promise<void> {
    if (this.destroyed) throw new Error("cluster already destroyed");
    const data = join(this.o.dir, "etcd");
    const peer = `http://127.0.0.1:${this.port + 1}`;
    this.etcd = Bun.spawn(
      ["etcd", "--name", "e", "--data-dir", data, "--listen-client-urls", this.etcdURL, "--advertise-client-urls", this.etcdURL,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", `e=${peer}`, "--log-level", "error"],
      { stdout: "ignore", stderr: Bun.file(join(this.o.dir, "etcd.log")), env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.arch === "x64" ? "" : process.arch } },
    );
    await etcdReady(await this.client()).catch((e) => {
      throw new Error(`etcd did not come up: ${(e as Error).message}; ${readFileSync(join(this.o.dir, "etcd.log"), "utf8").slice(-2000)}`);
    });
  }

  /** Stop etcd (SIGTERM, wait for it). */
  async stopEtcd(): Promise<void> {
    if (!this.etcd) return;
    this.etcd.kill("SIGTERM");
    await this.etcd.exited;
    this.etcd = undefined;
  }

  /** An etcd client from the test's own namespace. */
  async client(): Promise<Etcd3> {
    const { Etcd3 } = await import("etcd3");
    const c = new Etcd3({ hosts: [this.etcdURL], dialTimeout: 2000, defaultCallOptions: (ctx: { isStream: boolean }) => (ctx.isStream ? {} : { deadline: Date.now() + 3000 }) } as ConstructorParameters<typeof Etcd3>[0]);
    this.clients.push(c);
    return c;
  }

  /**
   * A node namespace on the underlay with a pod network config for `overlay` (by default with the
   * delegate keys kube-flannel's manifest sets).
   */
  addNode(i: number, delegate: Record<string, unknown> = { hairpinMode: true, isDefaultGateway: true }, at: NodeSegment = {}): Node {
    const bridge = at.bridge ?? this.bridge;
    const net = at.underlayNet ?? this.net;
    const name = `n${i}`;
    const nsPath = this.ns.add(name);
    const nsName = `${this.o.prefix}${name}`;
    const dev = `${this.o.prefix}e${i}`;
    const peer = `${this.o.prefix}h${i}`;
    must(["ip", "link", "add", peer, "type", "veth", "peer", "name", dev, "netns", nsName]);
    must(["ip", "link", "set", peer, "master", bridge, "up"]);
    const ip = `192.168.${net}.${i}`;
    must(["ip", "-n", nsName, "addr", "add", `${ip}/24`, "dev", dev]);
    const ip6 = this.o.dualStack ? `fd00:${net}::${i}` : undefined;
    if (ip6) {
      // a node's underlay has long been up in real life: its link-local address is not tentative
      must(["ip", "netns", "exec", nsName, "sysctl", "-qw", `net.ipv6.conf.${dev}.accept_dad=0`]);
      must(["ip", "-n", nsName, "addr", "add", `${ip6}/64`, "dev", dev, "nodad"]);
    }
    must(["ip", "-n", nsName, "link", "set", dev, "up"]);
    const dir = join(this.o.dir, name);
    const confDir = join(dir, "net.d");
    mkdirSync(confDir, { recursive: true });
    const subnetFile = join(dir, "subnet.env");
    writeFileSync(join(confDir, "10-cluster.conflist"), JSON.stringify({
      cniVersion: "1.1.0",
      name: "cluster",
      plugins: [{
        type: "overlay", subnetFile, dataDir: join(dir, "overlay"), subnetFileWaitMs: 3000, ...this.o.overlay,
        delegate: { bridge: `${this.o.prefix}b`, ...delegate, ipam: { dataDir: join(dir, "ipam") } },
      }],
    }));
    const node: Node = { name, ns: nsPath, ip, ...(ip6 ? { ip6 } : {}), dev, subnetFile, confDir };
    this.nodes.push(node);
    return node;
  }

  /** nsenter into a node: its network namespace (and the cluster's mount namespace, if any). */
  enter(n: Node): string[] {
    return ["nsenter", ...(this.o.mountNs ? [`--mount=${this.o.mountNs}`] : []), `--net=${n.ns}`];
  }

  /** The node's CNI socket (its agent serves it; never the machine's /run/cnikit). */
  cniSocket(n: Node): string {
    return join(this.o.dir, n.name, "run", "cni.sock");
  }

  /** Start `cnikit agent` in a node (it runs until `stopAgent`). */
  startAgent(n: Node, prefix: string, extra: string[] = []): void {
    if (this.destroyed) throw new Error("cluster already destroyed");
    const log = join(this.o.dir, `${n.name}-agent-${++this.starts}.log`);
    const proc = Bun.spawn(
      [...this.enter(n), CNIKIT, "agent", "--etcd-endpoints", this.etcdURL, "--etcd-prefix", prefix, "--iface", n.dev,
        "--subnet-file", n.subnetFile, "--device-prefix", this.o.prefix, "--ip-masq",
        // each node's daemon serves CNI on a socket of its own, never the machine's /run/cnikit
        "--cni-socket", this.cniSocket(n), ...extra],
      { stdout: "ignore", stderr: Bun.file(log) },
    );
    n.agent = { pid: proc.pid, proc, log };
  }

  /** Stop a node's agent by its PID and wait for it. */
  async stopAgent(n: Node): Promise<void> {
    if (!n.agent) return;
    n.agent.proc.kill("SIGTERM");
    await n.agent.proc.exited;
    n.agent = undefined;
  }

  /** Wait until `fn` is true (polling), or throw naming `what`. */
  async until(what: string, fn: () => boolean | Promise<boolean>, ms = 15000): Promise<void> {
    const end = Date.now() + ms;
    while (!(await fn())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}${this.agentLogTails()}`);
      await Bun.sleep(50);
    }
  }

  /** The last lines of every running agent's log, for a failure message. */
  private agentLogTails(): string {
    let out = "";
    for (const n of this.nodes) {
      if (!n.agent) continue;
      const text = existsSync(n.agent.log) ? readFileSync(n.agent.log, "utf8") : "";
      out += `\n--- ${n.name} agent log (tail):\n${text.split("\n").slice(-15).join("\n")}`;
    }
    return out;
  }

  /** Run `cnikit` in a node with its network config. */
  cnikit(n: Node, args: string[]): Ran {
    return run([...this.enter(n), CNIKIT, ...args], {
      env: {
        ...process.env, NETCONFPATH: n.confDir, CNI_PATH: this.bin, CNI_CACHE_DIR: join(this.o.dir, n.name, "cache"),
        // the suite's second run: a node's plugins go through its own agent (shim + daemon)
        ...(process.env.CNIKIT_TEST_VIA === "daemon" ? { CNIKIT_SOCKET: this.cniSocket(n) } : {}),
      },
    });
  }

  /** A pod on a node through `overlay`; returns its namespace path and addresses. */
  addPod(n: Node, tag: string): { ns: string; ip: string; ip6?: string } {
    const p = this.ns.add(`${n.name}${tag}`);
    const r = this.cnikit(n, ["add", "cluster", p]);
    if (r.code !== 0) throw new Error(`pod ${tag} on ${n.name}: ${r.stdout} ${r.stderr}`);
    const ips = (JSON.parse(r.stdout).ips as { address: string }[]).map((x) => x.address.split("/")[0]!);
    const ip6 = ips.find((x) => x.includes(":"));
    return { ns: p, ip: ips.find((x) => !x.includes(":"))!, ...(ip6 ? { ip6 } : {}) };
  }

  /** Run a command in a node's namespace. */
  inNode(n: Node, cmd: string[]): Ran {
    return run([...this.enter(n), ...cmd]);
  }

  /** Stop every agent and etcd, close clients, remove namespaces and links. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    for (const n of this.nodes) await this.stopAgent(n).catch(() => {});
    for (const c of this.clients) c.close();
    await this.stopEtcd().catch(() => {});
    this.ns.cleanup();
    run(["ip", "link", "del", this.bridge]);
  }
}
