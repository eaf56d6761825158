/** `cnikit graph`: the picture of the network, as Graphviz DOT or rendered to SVG by `dot`. */

import { writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { listAttachments } from "../libcni/attachments.ts";
import { DEFAULT_CACHE_DIR } from "../libcni/cache.ts";
import { flagString, parseArgs } from "./args.ts";
import { ETCD_FLAGS_USAGE, etcdFromFlags, nodesFromEtcd } from "./etcd-flags.ts";
import { reportError } from "./output.ts";

/** Usage text. */
export const GRAPH_USAGE = `usage: cnikit graph [--svg FILE | --dot] [etcd flags]

Draws the network: the nodes with their subnets, public addresses and backend (from etcd, when
--etcd-endpoints is given), this node's bridges and pods with their addresses (from the result
cache, CNI_CACHE_DIR, default ${DEFAULT_CACHE_DIR}), other nodes' pods as their agents tell them
(when a node's lease names where its agent serves --healthz, not on loopback), and the tunnels or
routes between nodes.

  --svg FILE              render with Graphviz (Debian package graphviz) into FILE ("-": stdout)
  --dot                   print the Graphviz DOT text (the default)
  --no-peers              do not ask other nodes' agents for their pods
${ETCD_FLAGS_USAGE}`;

/** Run `cnikit graph`. */
export async function graphCommand(argv: readonly string[], env = process.env): Promise<number> {
  try {
    const p = parseArgs(argv, ["dot", "no-peers"]);
    if (p.flags.help) {
      process.stdout.write(GRAPH_USAGE);
      return 0;
    }
    const { buildDot, renderSvg } = await import("../agent/graph.ts");
    const attachments = listAttachments(env.CNI_CACHE_DIR || DEFAULT_CACHE_DIR);
    const etcd = etcdFromFlags(p, env, { timeoutMs: 3000 });
    const birdDir = flagString(p, "bird-dir");
    const nodes = etcd ? (await nodesFromEtcd(etcd, birdDir ? { birdDir } : {})).nodes : null;
    if (nodes && !p.flags["no-peers"]) {
      const { fetchPeerAttachments } = await import("../agent/status-data.ts");
      await fetchPeerAttachments(nodes);
    }
    const dot = buildDot({ nodes, attachments, host: hostname() });
    const svgTo = flagString(p, "svg");
    if (svgTo === undefined) {
      process.stdout.write(dot);
      return 0;
    }
    const svg = await renderSvg(dot);
    if (svgTo === "-") process.stdout.write(svg);
    else writeFileSync(svgTo, svg);
    return 0;
  } catch (e) {
    return reportError(e);
  }
}
