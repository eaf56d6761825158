/**
 * `cnikit status` without a network: this node's attachments, read from the result cache
 * (`CNI_CACHE_DIR`, default /var/lib/cni), and the node daemon's state when one answers.
 * (`cnikit status NET` is cnitool's STATUS, in network.ts.)
 */

import { formatAge, listAttachments, type Attachment } from "../libcni/attachments.ts";
import type { StatusDoc } from "../agent/status-data.ts";
import { DEFAULT_CACHE_DIR } from "../libcni/cache.ts";
import { flagString, parseArgs } from "./args.ts";
import { networkCommand } from "./network.ts";
import { printJSON, reportError } from "./output.ts";
import { table } from "./table.ts";
import { CURRENT_VERSION } from "../spec/version.ts";

/** Usage text. */
export const STATUS_USAGE = `usage: cnikit status [--json] [--wide] [--agent ADDR:PORT] [--socket PATH]
       cnikit status NET [NETNS]     ask each plugin of network NET whether it is ready

Without NET: this node's attachments (network, pod, container, netns, interface, addresses, MAC,
the chain's plugins, age), read from the result cache that runtimes write, and the state of the
node daemon (cnikit agent) when one answers.

  --json               one JSON document for scripts
  --wide               full container ids
  --agent ADDR:PORT    the agent's --healthz address: its version, requests in flight and
                       pending removals (default $CNIKIT_AGENT)
  --socket PATH        the daemon's CNI socket, asked when no --agent is given
                       (default $CNIKIT_SOCKET, else /run/cnikit/cni.sock)

Environment: CNI_CACHE_DIR  result cache directory (default ${DEFAULT_CACHE_DIR})
`;

/** The daemon's state as `cnikit status` reports it. */
export interface DaemonState {
  running: boolean;
  /** How it was asked: the agent's HTTP address or the CNI socket. */
  via: string;
  /** Why it counts as not running, or what failed. */
  reason?: string;
  version?: string;
  pid?: number;
  ready?: boolean;
  inFlight?: number;
  pendingRemovals?: number;
  /** The protocol version the socket answered with. */
  protocol?: number;
}

/** One CNI-socket round trip (a loopback VERSION call, as the shim makes it); the reply's protocol version. */
async function pingSocket(path: string, timeoutMs: number): Promise<number> {
  const { encodeRequest, decodeReply } = await import("../agent/protocol.ts");
  const req = encodeRequest({ type: "loopback", env: { CNI_COMMAND: "VERSION" }, stdin: new TextEncoder().encode(JSON.stringify({ cniVersion: CURRENT_VERSION })) });
  const chunks: Uint8Array[] = [];
  const bytes = await new Promise<Uint8Array>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const done = (f: () => void) => {
      clearTimeout(timer);
      f();
    };
    Bun.connect({
      unix: path,
      socket: {
        open: (s) => void s.write(req),
        data: (_s, d) => void chunks.push(new Uint8Array(d)),
        close: () => done(() => resolve(Buffer.concat(chunks))),
        error: (_s, e) => done(() => reject(e)),
        connectError: (_s, e) => done(() => reject(e)),
      },
    }).catch((e) => done(() => reject(e)));
  });
  return decodeReply(bytes).version;
}

/**
 * The node daemon's state: from its `/api/status` when `agent` (its --healthz address) is given,
 * else whether its CNI socket answers. `{ running: false, reason: "not running ..." }` when nothing
 * answers.
 */
export async function queryDaemon(opts: { agent?: string; socket: string; timeoutMs?: number }): Promise<DaemonState> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  if (opts.agent) {
    const base = /^https?:\/\//.test(opts.agent) ? opts.agent : `http://${opts.agent}`;
    try {
      const res = await fetch(`${base.replace(/\/$/, "")}/api/status`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) return { running: true, via: base, reason: `/api/status answered ${res.status}` };
      const d = ((await res.json()) as StatusDoc).daemon;
      return { running: true, via: base, version: d.version, pid: d.pid, ready: d.ready, inFlight: d.inFlight, ...(d.pendingRemovals !== undefined ? { pendingRemovals: d.pendingRemovals } : {}) };
    } catch (e) {
      return { running: false, via: base, reason: `not running (no answer at ${base}: ${(e as Error).message})` };
    }
  }
  try {
    const protocol = await pingSocket(opts.socket, timeoutMs);
    return { running: true, via: opts.socket, protocol };
  } catch (e) {
    return { running: false, via: opts.socket, reason: `not running (no answer on ${opts.socket}: ${(e as Error).message})` };
  }
}

/** The daemon line under the table. */
export function describeDaemon(d: DaemonState): string {
  if (!d.running) return `daemon: ${d.reason ?? "not running"}`;
  const parts = [d.version ? `cnikit ${d.version}` : undefined, d.pid ? `pid ${d.pid}` : undefined, d.protocol !== undefined ? `protocol ${d.protocol}` : undefined].filter(Boolean);
  const head = `daemon: up${parts.length ? ` (${parts.join(", ")})` : ""} at ${d.via}`;
  if (d.inFlight === undefined) return `${head}${d.reason ? `; ${d.reason}` : "; give --agent ADDR:PORT for its requests in flight"}`;
  return `${head}, ${d.ready ? "ready" : "not ready"}, ${d.inFlight} request(s) in flight, pending removals: ${d.pendingRemovals ?? "n/a"}`;
}

/** The attachments table. */
export function attachmentsTable(list: readonly Attachment[], now: number, wide = false): string {
  const short = (id: string) => (wide || id.length <= 16 ? id : `${id.slice(0, 13)}...`);
  return table(
    ["NETWORK", "POD", "CONTAINER", "NETNS", "IFNAME", "ADDRESSES", "MAC", "PLUGINS", "AGE"],
    list.map((a) => [
      a.network,
      a.podName ? `${a.podNamespace ? `${a.podNamespace}/` : ""}${a.podName}` : "-",
      short(a.containerId),
      a.netns || "-",
      a.ifName,
      a.addresses.join(",") || "-",
      a.mac ?? "-",
      a.plugins.join(">"),
      a.createdMs ? formatAge(now - a.createdMs) : "?",
    ]),
  );
}

/** Run `cnikit status`: with NET, cnitool's STATUS (network.ts); without, this node's attachments. */
export async function statusCommand(argv: readonly string[], env = process.env): Promise<number> {
  try {
    const p = parseArgs(argv, ["json", "wide"]);
    if (p.positional.length > 0) return await networkCommand("status", argv, env);
    if (p.flags.help) {
      process.stdout.write(STATUS_USAGE);
      return 0;
    }
    const cacheDir = env.CNI_CACHE_DIR || DEFAULT_CACHE_DIR;
    const list = listAttachments(cacheDir);
    const { DEFAULT_SOCKET } = await import("../agent/protocol.ts");
    const agent = flagString(p, "agent") ?? env.CNIKIT_AGENT;
    const daemon = await queryDaemon({ socket: flagString(p, "socket") ?? (env.CNIKIT_SOCKET || DEFAULT_SOCKET), ...(agent ? { agent } : {}) });
    const now = Date.now();
    if (p.flags.json) {
      printJSON({ cacheDir, attachments: list.map((a) => ({ ...a, ageSec: a.createdMs ? Math.floor((now - a.createdMs) / 1000) : null })), daemon });
      return 0;
    }
    const out = list.length > 0 ? attachmentsTable(list, now, p.flags.wide === true) : `no attachments in ${cacheDir}`;
    process.stdout.write(`${out}\n\n${describeDaemon(daemon)}\n`);
    return 0;
  } catch (e) {
    return reportError(e);
  }
}
