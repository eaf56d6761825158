/** The etcd flags `cnikit nodes` and `cnikit graph` share with `cnikit agent`. */

import type { BgpSessionState } from "../agent/bird.ts";
import type { NodeInfo } from "../agent/status-data.ts";
import type { EtcdOptions } from "../agent/store.ts";
import { flagString, type ParsedArgs } from "./args.ts";

/** Usage lines of the etcd flags. */
export const ETCD_FLAGS_USAGE = `  --etcd-endpoints URLS   comma-separated (default $CNIKIT_ETCD_ENDPOINTS)
  --etcd-cafile FILE      TLS: CA certificate        --etcd-certfile FILE  client certificate
  --etcd-keyfile FILE     TLS: client key            --etcd-username USER / --etcd-password PASS
  --etcd-prefix PREFIX    key prefix (default /coreos.com/network)
  --public-ip IP          this node's public address, to mark it (default: this machine's addresses)
  --bird-dir DIR          bgp backend: the agent's --bird-dir; its BIRD tells the BGP sessions'
                          states (default /run/cnikit/bird)
`;

/** What the etcd flags give: the client's options, the key prefix, this node's public address. */
export interface EtcdFlags {
  options: EtcdOptions;
  prefix: string;
  publicIP?: string;
}

/**
 * The etcd options and prefix the flags give (`cnikit agent`, `nodes`, `graph`); undefined
 * without endpoints. `env` supplies `$CNIKIT_ETCD_ENDPOINTS` when the flag is missing (the agent
 * passes none: its overlay runs only with the flag); `timeoutMs` is the per-call deadline (default:
 * the client's, 5 s).
 */
export function etcdFromFlags(p: ParsedArgs, env: Record<string, string | undefined> = process.env, o: { timeoutMs?: number } = {}): EtcdFlags | undefined {
  const opt = (k: string) => flagString(p, k);
  const endpoints = (opt("etcd-endpoints") ?? env.CNIKIT_ETCD_ENDPOINTS ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  if (endpoints.length === 0) return undefined;
  const options: EtcdOptions = {
    endpoints,
    ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    ...(opt("etcd-cafile") ? { caFile: opt("etcd-cafile")! } : {}),
    ...(opt("etcd-certfile") ? { certFile: opt("etcd-certfile")! } : {}),
    ...(opt("etcd-keyfile") ? { keyFile: opt("etcd-keyfile")! } : {}),
    ...(opt("etcd-username") ? { username: opt("etcd-username")!, password: opt("etcd-password") ?? "" } : {}),
  };
  const publicIP = opt("public-ip");
  return { options, prefix: opt("etcd-prefix") ?? "/coreos.com/network", ...(publicIP ? { publicIP } : {}) };
}

/**
 * The cluster's nodes, read once through a client of their own (closed afterwards). With the bgp
 * backend, the BGP column comes from this node's BIRD (`birdc show protocols` on the control
 * socket in `birdDir`, default the agent's), and `bgpPeers` lists its sessions with peers that are
 * not nodes (route reflectors, external peers); "unknown" when BIRD does not answer.
 */
export async function nodesFromEtcd(etcd: EtcdFlags, o: { birdDir?: string } = {}): Promise<{ nodes: NodeInfo[]; bgpPeers?: BgpSessionState[] }> {
  const { connectEtcd } = await import("../agent/store.ts");
  const { readNodes, withBgpStates } = await import("../agent/status-data.ts");
  const client = await connectEtcd(etcd.options);
  let nodes: NodeInfo[];
  try {
    nodes = await readNodes(client, etcd.prefix, etcd.publicIP ? { selfIP: etcd.publicIP } : {});
  } finally {
    client.close();
  }
  if (!nodes.some((n) => n.backend === "bgp")) return { nodes };
  const { bgpSessions, birdSocketPath, DEFAULT_BIRD_DIR } = await import("../agent/bird.ts");
  const sessions = await bgpSessions(birdSocketPath(o.birdDir ?? DEFAULT_BIRD_DIR)).catch(() => undefined);
  return { nodes, bgpPeers: withBgpStates(nodes, sessions) };
}
