/**
 * One-word modes for `cnikit install --mode M --subnet CIDR`: the CNI config list (and, for the
 * modes the node agent drives, the network config the agent puts into etcd) that each mode means.
 * Pure: no files, no kernel.
 */

import { formatCIDR, networkOf, parseCIDR } from "../spec/ip.ts";

/** A mode's name and what it is, one line. */
export interface ModeInfo {
  name: string;
  /** What `--subnet` is in this mode. */
  subnet: "node" | "cluster";
  /** Whether the node agent (`cnikit agent` with etcd) must run. */
  agent: boolean;
  summary: string;
}

/** Every mode, in the order `--help` lists them. */
export const MODES: readonly ModeInfo[] = [
  { name: "bridge", subnet: "node", agent: false, summary: "kubenet's: bridge cbr0, host-local over the node's pod CIDR, portmap, bandwidth, MTU, non-masquerade CIDR" },
  { name: "vxlan", subnet: "cluster", agent: true, summary: "overlay over a vxlan device; the agent leases each node a subnet of the cluster CIDR" },
  { name: "host-gw", subnet: "cluster", agent: true, summary: "overlay with a route per node via its address (nodes share one L2 segment)" },
  { name: "bgp", subnet: "cluster", agent: true, summary: "overlay with routes exchanged over BGP by BIRD 2, plain (no encapsulation)" },
  { name: "ipip", subnet: "cluster", agent: true, summary: "bgp with IP-in-IP encapsulation to other nodes (tunl0)" },
  { name: "ebpf", subnet: "cluster", agent: true, summary: "vxlan with the eBPF datapath: tc programs on each pod's veth instead of a bridge (bpffs at /sys/fs/bpf)" },
  { name: "macvlan", subnet: "node", agent: false, summary: "pods as macvlan links of --master (bridge mode), host-local over the node's range" },
  { name: "ipvlan", subnet: "node", agent: false, summary: "pods as ipvlan (l2) links of --master, host-local over the node's range" },
];

/** `--help` lines: one per mode. */
export function modesUsage(): string {
  const w = Math.max(...MODES.map((m) => m.name.length));
  return MODES.map((m) => `  ${m.name.padEnd(w)}  ${m.summary}\n`).join("");
}

/** What a mode is given. */
export interface ModeOptions {
  /** The node's pod CIDR (bridge, macvlan, ipvlan) or the cluster CIDR (the agent's modes). */
  subnet: string;
  /** The network's name in the config list (default "cnikit"). */
  name?: string;
  /** Pod interface MTU (bridge, macvlan, ipvlan; the agent's modes take it from subnet.env). */
  mtu?: number;
  /** macvlan / ipvlan parent interface (default: the default route's interface). */
  master?: string;
  /** bridge: traffic to this CIDR is not masqueraded (kubelet's --non-masquerade-cidr, default 10.0.0.0/8). */
  nonMasqueradeCIDR?: string;
  /** The agent's modes: each node's subnet length (default 24). */
  subnetLen?: number;
}

/** The config list and, for the agent's modes, the network config (flannel's net-conf.json). */
export interface ModeConfig {
  conflist: Record<string, unknown>;
  netConf?: Record<string, unknown>;
}

/** The CNI version the modes' lists declare. */
export const MODE_CNI_VERSION = "1.0.0";

function cidr(text: string, what: string): string {
  const n = parseCIDR(text);
  if (!n) throw new Error(`${what} ${JSON.stringify(text)} is not an address/prefix (e.g. 10.244.1.0/24)`);
  return formatCIDR(networkOf(n));
}

/** The config of `mode`; throws naming the problem for an unknown mode or a bad option. */
export function modeConfig(mode: string, o: ModeOptions): ModeConfig {
  const info = MODES.find((m) => m.name === mode);
  if (!info) throw new Error(`unknown mode ${JSON.stringify(mode)} (one of ${MODES.map((m) => m.name).join(", ")})`);
  const subnet = cidr(o.subnet, "--subnet");
  const v6 = subnet.includes(":");
  const name = o.name ?? "cnikit";
  if (o.mtu !== undefined && (!Number.isInteger(o.mtu) || o.mtu < 576 || o.mtu > 65535)) throw new Error(`--mtu ${o.mtu} must be an integer from 576 to 65535`);
  const mtu = o.mtu !== undefined ? { mtu: o.mtu } : {};
  const defaultRoute = { dst: v6 ? "::/0" : "0.0.0.0/0" };
  const portmap = { type: "portmap", capabilities: { portMappings: true }, snat: true };
  const bandwidth = { type: "bandwidth", capabilities: { bandwidth: true } };
  const list = (plugins: Record<string, unknown>[]) => ({ cniVersion: MODE_CNI_VERSION, name, plugins });
  switch (info.name) {
    case "bridge": {
      const nonMasq = cidr(o.nonMasqueradeCIDR ?? (v6 ? "fc00::/7" : "10.0.0.0/8"), "--non-masquerade-cidr");
      return {
        conflist: list([
          {
            type: "bridge",
            bridge: "cbr0",
            ...mtu,
            isGateway: true,
            isDefaultGateway: true,
            hairpinMode: true,
            ipMasq: true,
            ipMasqExclude: [nonMasq],
            ipam: { type: "host-local", ranges: [[{ subnet }]], routes: [defaultRoute] },
          },
          portmap,
          bandwidth,
        ]),
      };
    }
    case "macvlan":
    case "ipvlan":
      return {
        conflist: list([
          {
            type: info.name,
            ...(o.master ? { master: o.master } : {}),
            mode: info.name === "macvlan" ? "bridge" : "l2",
            ...mtu,
            ipam: { type: "host-local", ranges: [[{ subnet }]], routes: [defaultRoute] },
          },
        ]),
      };
    default: {
      const backend: Record<string, unknown> =
        info.name === "bgp" ? { Type: "bgp" }
        : info.name === "ipip" ? { Type: "bgp", Encapsulation: "ipip" }
        : info.name === "ebpf" ? { Type: "vxlan", Datapath: "ebpf" }
        : { Type: info.name };
      const len = o.subnetLen !== undefined ? { [v6 ? "IPv6SubnetLen" : "SubnetLen"]: o.subnetLen } : {};
      const netConf = v6 ? { EnableIPv4: false, IPv6Network: subnet, ...len, Backend: backend } : { Network: subnet, ...len, Backend: backend };
      // ebpf: overlay wires pods with ptp and the tc programs (no bridge, so no bridge keys)
      const overlay = info.name === "ebpf" ? { type: "overlay", datapath: "ebpf" } : { type: "overlay", delegate: { hairpinMode: true, isDefaultGateway: true } };
      return { conflist: list([overlay, portmap, bandwidth]), netConf };
    }
  }
}

/** The loopback config the bridge mode writes beside its list (kubenet's `lo`; as containerd's 99-loopback.conf). */
export function loopbackConf(): Record<string, unknown> {
  return { cniVersion: MODE_CNI_VERSION, name: "cnikit-loopback", type: "loopback" };
}
