/**
 * A cluster on the eBPF datapath for integration tests: a private bpffs (see bpffs.ts), a real
 * etcd with the given network config, `nodes` node namespaces each running `cnikit agent` with its
 * pins under `<bpffs>/<node>/overlay`, pods on the overlay plugin's `"datapath": "ebpf"`, and the
 * datapath read back through `cnikit bpf --json` inside a node. `destroy` removes all of it, also
 * after a failed start.
 */

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Etcd3 } from "etcd3";
import { type PrivateBpffs, privateBpffs } from "./bpffs.ts";
import { Cluster, CNIKIT, type Node } from "./cluster.ts";
import { Namespaces, tempDir } from "./netns.ts";

/** `cnikit bpf --json` as the tests read it. */
export interface BpfReport {
  programs: { ifname: string; name: string; progName: string }[];
  networks: {
    network: string;
    endpoints: { ip: string }[];
    remotes: { subnet: string; remote: string; vni: number; direct?: boolean }[];
    vxlanIfindex: number;
    underlayIfindex: number;
    stats: Record<string, { packets: string }>;
  }[];
}

export interface EbpfClusterOptions {
  prefix: string;
  /** Tag of the temporary directory. */
  tag: string;
  underlayNet: number;
  etcdPort: number;
  /** The etcd prefix of the network (`<key>/config`, `<key>/subnets/...`). */
  key: string;
  /** The network config written to `<key>/config`. */
  config: Record<string, unknown>;
  nodes: number;
}

export class EbpfCluster {
  private constructor(
    readonly c: Cluster,
    readonly etcd: Etcd3,
    readonly bpffs: string,
    readonly tmp: ReturnType<typeof tempDir>,
    private readonly fs: PrivateBpffs,
    private readonly first: Namespaces,
    private readonly key: string,
  ) {}

  /** Start etcd, write the config, start every node's agent and wait for their subnet.env. */
  static async start(o: EbpfClusterOptions): Promise<EbpfCluster> {
    const tmp = tempDir(o.tag);
    const bpffs = join(tmp.path, "bpffs");
    mkdirSync(bpffs);
    // a namespace first, so /run/netns is a shared mount that the bpffs' slave keeps receiving from
    const first = new Namespaces(`${o.prefix}m`);
    first.add("0");
    let fs: PrivateBpffs | undefined;
    let c: Cluster | undefined;
    try {
      fs = await privateBpffs(bpffs);
      c = new Cluster({ prefix: o.prefix, dir: tmp.path, underlayNet: o.underlayNet, etcdPort: o.etcdPort, mountNs: fs.mountNs, overlay: { datapath: "ebpf" } });
      await c.startEtcd();
      const etcd = await c.client();
      await etcd.put(`${o.key}/config`).value(JSON.stringify(o.config));
      const ec = new EbpfCluster(c, etcd, bpffs, tmp, fs, first, o.key);
      for (let i = 1; i <= o.nodes; i++) ec.startAgent(c.addNode(i));
      for (const n of c.nodes) await c.until(`${n.name}'s subnet.env`, () => existsSync(n.subnetFile));
      return ec;
    } catch (err) {
      await c?.destroy();
      await fs?.stop();
      first.cleanup();
      tmp.remove();
      throw err;
    }
  }

  get nodes(): Node[] {
    return this.c.nodes;
  }

  /** Where a node's agent pins its datapath (cnikit bpf's --pin-root, and the network below it). */
  pinRoot(n: Node): string {
    return join(this.bpffs, n.name);
  }
  pinDir(n: Node): string {
    return join(this.pinRoot(n), "overlay");
  }

  startAgent(n: Node): void {
    this.c.startAgent(n, this.key, ["--bpf-pin-dir", this.pinDir(n)]);
  }

  /** Stop a node's agent and start it again (a log file of its own), until it says it is ready. */
  async restartAgent(n: Node): Promise<void> {
    await this.c.stopAgent(n);
    this.startAgent(n);
    await this.c.until(`${n.name}'s agent to be ready again`, () => readFileSync(n.agent!.log, "utf8").includes("agent ready"));
  }

  report(n: Node): BpfReport {
    return JSON.parse(this.c.inNode(n, [CNIKIT, "bpf", "--pin-root", this.pinRoot(n), "--json"]).stdout);
  }

  /** The agent's network ("overlay") of a node's report. */
  net(n: Node): BpfReport["networks"][number] | undefined {
    return this.report(n).networks.find((x) => x.network === "overlay");
  }

  /** One of the datapath's packet counters on a node. */
  counter(n: Node, k: string): bigint {
    return BigInt(this.net(n)?.stats[k]?.packets ?? "0");
  }

  /** A node's pod subnet from its subnet.env ("10.98.3.0/24"). */
  subnetOf(n: Node): string {
    return /FLANNEL_SUBNET=(\S+)/.exec(readFileSync(n.subnetFile, "utf8"))![1]!.replace(/\.1\//, ".0/");
  }

  async destroy(): Promise<void> {
    await this.c.destroy();
    await this.fs.stop();
    this.first.cleanup();
    this.tmp.remove();
  }
}
