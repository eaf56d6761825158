/**
 * The picture of the network as Graphviz DOT: one cluster per node (its subnets, public address,
 * backend or eBPF datapath), this node's bridges and pods with their addresses (and other nodes'
 * when their agents told them), and the vxlan tunnels or host-gw routes between nodes. Rendered to SVG by Graphviz's `dot` (Debian package
 * `graphviz`), never drawn by hand.
 */

import type { Attachment } from "../libcni/attachments.ts";
import type { NodeInfo, StatusDoc } from "./status-data.ts";

/** What the picture shows. */
export interface GraphInput {
  /** The cluster's nodes (from etcd); empty or absent on a node without etcd. */
  nodes?: NodeInfo[] | null;
  /** This node's attachments. */
  attachments: Attachment[];
  /** This node's name when no lease names it (a node without etcd). */
  host: string;
}

/** A DOT string literal. */
function q(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** How a pod is named in pictures and tables: namespace/name, else the container id (shortened). */
export function podLabel(a: Attachment): string {
  if (a.podName) return a.podNamespace ? `${a.podNamespace}/${a.podName}` : a.podName;
  return a.containerId.length > 20 ? a.containerId.slice(0, 16) : a.containerId;
}

/** Beyond this many nodes, only this node's links to the others are drawn, not the full mesh. */
const FULL_MESH_MAX = 8;

/** The DOT text of the picture. */
export function buildDot(g: GraphInput): string {
  const out = [
    "digraph cnikit {",
    '  graph [rankdir=LR, fontname="Helvetica", fontsize=11, compound=true, nodesep=0.3, ranksep=0.6, bgcolor="transparent"];',
    '  node [fontname="Helvetica", fontsize=10, shape=box, style="rounded,filled", fillcolor="#ffffff", color="#6b7280"];',
    '  edge [fontname="Helvetica", fontsize=9, color="#6b7280", arrowhead=none];',
  ];
  const nodes: NodeInfo[] = g.nodes && g.nodes.length > 0 ? g.nodes : [];
  const self = nodes.find((n) => n.self);
  const selfId = self ? `node:${self.key}` : `node:${g.host}`;
  const clusterOf = (id: string) => `cluster_${id.replace(/[^A-Za-z0-9_]/g, "_")}`;
  const drawNode = (id: string, title: string, lines: string[], isSelf: boolean, body: string[]) => {
    out.push(`  subgraph ${clusterOf(id)} {`);
    out.push(`    label=${q([title, ...lines].join("\n"))}; style="rounded,filled"; fillcolor=${q(isSelf ? "#e0f2fe" : "#f3f4f6")}; color=${q(isSelf ? "#0284c7" : "#9ca3af")};`);
    out.push(`    ${q(id)} [label=${q(isSelf ? `${title} (this node)` : title)}, shape=box3d, fillcolor=${q(isSelf ? "#bae6fd" : "#e5e7eb")}];`);
    out.push(...body.map((l) => `    ${l}`));
    out.push("  }");
  };

  // a node's bridges and pods (ids of another node's start with its own id)
  const podsOf = (nodeId: string, idPrefix: string, attachments: readonly Attachment[]): string[] => {
    const body: string[] = [];
    const bridges = new Map<string, string>();
    for (const a of attachments) {
      if (a.bridge && !bridges.has(a.bridge)) {
        const bid = `${idPrefix}bridge:${a.bridge}`;
        bridges.set(a.bridge, bid);
        body.push(`${q(bid)} [label=${q(`bridge ${a.bridge}`)}, shape=component, fillcolor="#fef3c7"];`);
        body.push(`${q(nodeId)} -> ${q(bid)};`);
      }
    }
    for (const a of attachments) {
      const pid = `${idPrefix}pod:${a.network}:${a.containerId}:${a.ifName}`;
      const lines = [podLabel(a), `${a.ifName} ${a.addresses.map((x) => x.split("/")[0]).join(" ") || "(no address)"}`, `${a.network}: ${a.plugins.join(" > ")}`];
      body.push(`${q(pid)} [label=${q(lines.join("\n"))}, shape=box, fillcolor="#dcfce7", tooltip=${q(`${a.containerId} ${a.netns}`)}];`);
      body.push(`${q(a.bridge ? bridges.get(a.bridge)! : nodeId)} -> ${q(pid)} [label=${q(a.hostInterfaces.find((h) => h !== a.bridge) ?? "")}];`);
    }
    return body;
  };
  // this node's bridges and pods
  const body = podsOf(selfId, "", g.attachments);

  if (nodes.length === 0) {
    drawNode(selfId, g.host, ["no cluster (etcd) configured"], true, body);
  } else {
    for (const n of nodes) {
      const id = `node:${n.key}`;
      const lines = [
        [n.subnet, n.subnet6].filter(Boolean).join(" "),
        [n.publicIP, n.publicIPv6].filter((a) => a && a !== n.name).join(" "),
        `${n.backend}${n.vni !== undefined ? ` VNI ${n.vni}` : ""}${n.datapath ? ` (${n.datapath} datapath)` : ""}${n.bgp ? ` BGP ${n.bgp}` : ""}`,
        n.attachmentsError ? "pods: its agent did not answer" : "",
      ];
      // another node's pods when its agent told them (fetchPeerAttachments)
      drawNode(id, n.name, lines.filter(Boolean), n.self, n.self ? body : podsOf(id, `${id}|`, n.attachments ?? []));
    }
    if (!self) {
      // this machine holds no lease (no agent here): its pods stand on their own
      drawNode(selfId, g.host, ["no lease in etcd"], true, body);
    }
    const links: [NodeInfo, NodeInfo][] = [];
    for (let i = 0; i < nodes.length; i++) {
      for (let j = i + 1; j < nodes.length; j++) {
        const a = nodes[i]!;
        const b = nodes[j]!;
        if (nodes.length > FULL_MESH_MAX && !a.self && !b.self) continue;
        links.push([a, b]);
      }
    }
    for (const [a, b] of links) {
      const how = a.backend === "vxlan" && b.backend === "vxlan" ? `vxlan${a.vni !== undefined ? ` ${a.vni}` : ""}` : a.backend === b.backend ? `${a.backend} routes` : `${a.backend}/${b.backend}`;
      const style = a.backend === "vxlan" ? "dashed" : "solid";
      out.push(`  ${q(`node:${a.key}`)} -> ${q(`node:${b.key}`)} [label=${q(how)}, style=${style}, color="#2563eb", fontcolor="#1d4ed8", dir=both, arrowhead=normal, arrowtail=normal];`);
    }
  }
  out.push("}");
  return `${out.join("\n")}\n`;
}

/** Render DOT to SVG with Graphviz's `dot` (throws naming the package when it is missing). */
export async function renderSvg(dot: string): Promise<string> {
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn(["dot", "-Tsvg"], { stdin: new TextEncoder().encode(dot), stdout: "pipe", stderr: "pipe" });
  } catch {
    throw new Error("graphviz's `dot` is not installed (Debian package graphviz)");
  }
  const [svg, err, code] = await Promise.all([new Response(proc.stdout as ReadableStream).text(), new Response(proc.stderr as ReadableStream).text(), proc.exited]);
  if (code !== 0) throw new Error(`dot -Tsvg failed (${code}): ${err.trim()}`);
  return svg;
}

let lastRender: { dot: string; svg: string } | undefined;

/** The SVG picture of a status document (the status page's); rendered again only when it changed. */
export async function statusSvg(doc: Pick<StatusDoc, "nodes" | "attachments" | "host">): Promise<string> {
  const dot = buildDot(doc);
  if (lastRender?.dot !== dot) lastRender = { dot, svg: await renderSvg(dot) };
  return lastRender.svg;
}
