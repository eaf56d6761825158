/** `cnikit nodes`: the cluster's nodes as their subnet leases in etcd describe them. */

import type { BgpSessionState } from "../agent/bird.ts";
import type { NodeInfo } from "../agent/status-data.ts";
import { formatAge } from "../libcni/attachments.ts";
import { flagString, parseArgs } from "./args.ts";
import { ETCD_FLAGS_USAGE, etcdFromFlags, nodesFromEtcd } from "./etcd-flags.ts";
import { printJSON, reportError } from "./output.ts";
import { table } from "./table.ts";

/** Usage text. */
export const NODES_USAGE = `usage: cnikit nodes --etcd-endpoints URLS [flags] [--json]

The cluster's nodes from their subnet leases in etcd (flannel's layout, <prefix>/subnets/): name,
subnet(s), public address, backend, VTEP MAC, time left on the etcd lease, and with the bgp backend
the state of this node's BGP session with each node (BIRD's word: Established, Active, ...; "no
session" through a route reflector), then this node's sessions with peers that are not nodes. This
node is marked with "*".

${ETCD_FLAGS_USAGE}  --json                  one JSON document for scripts
`;

/** The nodes table. */
export function nodesTable(nodes: readonly NodeInfo[]): string {
  return table(
    ["", "NAME", "SUBNET", "PUBLIC-IP", "BACKEND", "VTEP-MAC", "LEASE-LEFT", "BGP"],
    nodes.map((n) => [
      n.self ? "*" : "",
      n.name,
      [n.subnet, n.subnet6].filter(Boolean).join(","),
      [n.publicIP, n.publicIPv6].filter(Boolean).join(","),
      `${n.backend}${n.datapath ? `/${n.datapath}` : ""}`,
      [n.vtepMAC, n.vtepMAC6].filter(Boolean).join(",") || "-",
      n.leaseTtlSec === undefined ? "-" : n.leaseTtlSec < 0 ? "expired" : formatAge(n.leaseTtlSec * 1000),
      n.bgp ?? "-",
    ]),
  );
}

/** This node's BGP sessions with peers that are not nodes (route reflectors, external peers). */
export function bgpPeersTable(peers: readonly BgpSessionState[]): string {
  const kind = (k: string) => (k === "rr" ? "route reflector" : k === "peer" ? "peer" : k);
  return table(["PEER", "KIND", "BGP"], peers.map((s) => [s.peerIP, kind(s.kind), s.state]));
}

/** Run `cnikit nodes`. */
export async function nodesCommand(argv: readonly string[], env = process.env): Promise<number> {
  try {
    const p = parseArgs(argv, ["json"]);
    if (p.flags.help) {
      process.stdout.write(NODES_USAGE);
      return 0;
    }
    const etcd = etcdFromFlags(p, env, { timeoutMs: 3000 });
    if (!etcd) {
      process.stderr.write(`cnikit nodes: no etcd endpoints (--etcd-endpoints or $CNIKIT_ETCD_ENDPOINTS)\n\n${NODES_USAGE}`);
      return 2;
    }
    const birdDir = flagString(p, "bird-dir");
    const { nodes, bgpPeers } = await nodesFromEtcd(etcd, birdDir ? { birdDir } : {});
    if (p.flags.json) printJSON({ prefix: etcd.prefix, nodes, ...(bgpPeers ? { bgpPeers } : {}) });
    else {
      process.stdout.write(nodes.length > 0 ? `${nodesTable(nodes)}\n` : `no node leases under ${etcd.prefix}/subnets/\n`);
      if (bgpPeers && bgpPeers.length > 0) process.stdout.write(`\nBGP peers of this node that are not nodes:\n${bgpPeersTable(bgpPeers)}\n`);
    }
    return 0;
  } catch (e) {
    return reportError(e);
  }
}
