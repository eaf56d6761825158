/**
 * `subnet.env`, flannel's file: the subnet the node agent leased, read by the overlay plugin. It
 * lives in the ipam layer so that both the agent and the plugin (a layer above it) can use it.
 */

import { makeDir, readText, renameFile, writeText } from "../sys/file.ts";
import { dirName } from "../sys/path.ts";
import { CniError, ErrorCode } from "../spec/error.ts";
import { parseCIDR } from "../spec/ip.ts";

/** The node's lease as subnet.env carries it. */
export interface SubnetEnv {
  /** FLANNEL_NETWORK: the cluster network. */
  network?: string;
  /** FLANNEL_SUBNET: this node's subnet, with the gateway address (e.g. 10.244.3.1/24). */
  subnet?: string;
  ipv6Network?: string;
  ipv6Subnet?: string;
  /** FLANNEL_MTU */
  mtu?: number;
  /** FLANNEL_IPMASQ: the agent masquerades traffic leaving the cluster network itself. */
  ipMasq: boolean;
  /**
   * CNIKIT_BPF_PIN_DIR (cnikit's, not flannel's): the agent runs the network's eBPF datapath
   * (vxlan backend with `"Datapath": "ebpf"`) with its maps pinned there; the overlay plugin's
   * `"datapath": "ebpf"` attaches pods to those maps.
   */
  bpfPinDir?: string;
  /**
   * CNIKIT_BIG_TCP (cnikit's): the agent enabled IPv4 BIG TCP with this GSO/GRO size on the
   * devices pods' traffic leaves through; the eBPF datapath's pods get it too.
   */
  bigTcp?: number;
}

/** Parse subnet.env text ("KEY=value" lines); a clear error when nothing usable is in it. */
export function parseSubnetEnv(text: string, source = "subnet.env"): SubnetEnv {
  const kv = new Map<string, string>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq > 0) kv.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const out: SubnetEnv = { ipMasq: kv.get("FLANNEL_IPMASQ") === "true" };
  const cidr = (key: string) => {
    const v = kv.get(key);
    if (v === undefined || v === "") return undefined;
    if (!parseCIDR(v)) throw new CniError(ErrorCode.InvalidNetworkConfig, `${source}: ${key}=${v} is not an address/prefix`);
    return v;
  };
  const network = cidr("FLANNEL_NETWORK");
  if (network) out.network = network;
  const subnet = cidr("FLANNEL_SUBNET");
  if (subnet) out.subnet = subnet;
  const n6 = cidr("FLANNEL_IPV6_NETWORK");
  if (n6) out.ipv6Network = n6;
  const s6 = cidr("FLANNEL_IPV6_SUBNET");
  if (s6) out.ipv6Subnet = s6;
  const mtu = kv.get("FLANNEL_MTU");
  if (mtu) {
    const n = Number(mtu);
    if (!Number.isInteger(n) || n < 68) throw new CniError(ErrorCode.InvalidNetworkConfig, `${source}: FLANNEL_MTU=${mtu} is not a valid MTU`);
    out.mtu = n;
  }
  const pins = kv.get("CNIKIT_BPF_PIN_DIR");
  if (pins) out.bpfPinDir = pins;
  const big = kv.get("CNIKIT_BIG_TCP");
  if (big) {
    const n = Number(big);
    if (!Number.isInteger(n) || n < 65536 || n > 524280) throw new CniError(ErrorCode.InvalidNetworkConfig, `${source}: CNIKIT_BIG_TCP=${big} is not a GSO size (65536-524280)`);
    out.bigTcp = n;
  }
  if (!out.subnet && !out.ipv6Subnet) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `${source}: neither FLANNEL_SUBNET nor FLANNEL_IPV6_SUBNET is set`);
  }
  return out;
}

/** subnet.env text for a lease. */
export function formatSubnetEnv(env: SubnetEnv): string {
  const lines: string[] = [];
  if (env.network) lines.push(`FLANNEL_NETWORK=${env.network}`);
  if (env.subnet) lines.push(`FLANNEL_SUBNET=${env.subnet}`);
  if (env.ipv6Network) lines.push(`FLANNEL_IPV6_NETWORK=${env.ipv6Network}`);
  if (env.ipv6Subnet) lines.push(`FLANNEL_IPV6_SUBNET=${env.ipv6Subnet}`);
  if (env.mtu) lines.push(`FLANNEL_MTU=${env.mtu}`);
  lines.push(`FLANNEL_IPMASQ=${env.ipMasq}`);
  if (env.bpfPinDir) lines.push(`CNIKIT_BPF_PIN_DIR=${env.bpfPinDir}`);
  if (env.bigTcp) lines.push(`CNIKIT_BIG_TCP=${env.bigTcp}`);
  return `${lines.join("\n")}\n`;
}

/** Write subnet.env atomically (readers never see half a file). */
export function writeSubnetEnv(path: string, env: SubnetEnv): void {
  makeDir(dirName(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeText(tmp, formatSubnetEnv(env), { mode: 0o644 });
  renameFile(tmp, path);
}

/** Read subnet.env; undefined when the file does not exist (yet). */
export function readSubnetEnv(path: string): SubnetEnv | undefined {
  let text: string;
  try {
    text = readText(path);
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return undefined;
    throw new CniError(ErrorCode.IOFailure, `reading ${path}: ${(e as Error).message}`);
  }
  return parseSubnetEnv(text, path);
}
