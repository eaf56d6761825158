/**
 * `cnikit bpf`: what cnikit's eBPF datapath has on this node, in words: the programs attached to
 * devices (interface, hook, program id and name), and for each network's pinned maps the local
 * pods, the other nodes' subnets, the vxlan device and the decision counters.
 */

import type { Datapath } from "../bpf/datapath.ts";
import type { TcProgram } from "../bpf/tc.ts";
import { flagString, parseArgs } from "./args.ts";
import { printJSON } from "./output.ts";
import { table } from "./table.ts";

/** Default directory of the networks' pins. */
export const DEFAULT_PIN_ROOT = "/sys/fs/bpf/cnikit";

/** Usage text. */
export const BPF_USAGE = `usage: cnikit bpf [--pin-root DIR] [--netns PATH] [--all] [--json]

cnikit's eBPF datapath on this node: the programs it attached to devices (tcx attachments of
programs named cnikit_*, cls_bpf filters named cnikit-*: interface, hook, program id and name)
and, for each network pinned under the pin root,
the contents of its maps in words: local pods (IPv4 -> host veth, pod MAC, gateway MAC), other
nodes' subnets (subnet -> node address, VNI), the vxlan device, and the programs' counters.

  --pin-root DIR   where networks' pins are (default ${DEFAULT_PIN_ROOT}; one directory per network)
  --netns PATH     list the devices of another network namespace (default: this one)
  --all            every program on tc hooks (tcx and cls_bpf), not only cnikit's
  --json           one JSON document for scripts
`;

/** One network's pinned datapath, in words. */
export interface NetworkReport {
  network: string;
  pinDir: string;
  endpoints: Array<{ ip: string; ifindex: number; ifname?: string; podMac: string; hostMac: string }>;
  remotes: Array<{ subnet: string; remote: string; vni: number; direct?: boolean }>;
  vxlanIfindex: number;
  /** The underlay device of direct routes (0: none). */
  underlayIfindex: number;
  stats: Record<string, { packets: string; bytes: string }>;
}

/** A datapath's maps as a report (`names`: ifindex -> interface name). */
export function describeDatapath(network: string, pinDir: string, dp: Datapath, names: ReadonlyMap<number, string>): NetworkReport {
  const stats: NetworkReport["stats"] = {};
  for (const [k, c] of Object.entries(dp.stats())) stats[k] = { packets: String(c.packets), bytes: String(c.bytes) };
  return {
    network,
    pinDir,
    endpoints: dp
      .endpoints()
      .map((e) => ({ ...e, ...(names.has(e.ifindex) ? { ifname: names.get(e.ifindex)! } : {}) }))
      .sort((a, b) => a.ip.localeCompare(b.ip, "en", { numeric: true })),
    remotes: dp.remoteSubnets().sort((a, b) => a.subnet.localeCompare(b.subnet, "en", { numeric: true })),
    vxlanIfindex: dp.vxlanIfindex(),
    underlayIfindex: dp.underlayIfindex(),
    stats,
  };
}

/** A network report as text lines ("10.244.1.5 -> ifindex 7 (veth1), pod mac ..., gateway mac ..."). */
export function formatNetwork(r: NetworkReport, names: ReadonlyMap<number, string>): string[] {
  const dev = (i: number) => `ifindex ${i}${names.has(i) ? ` (${names.get(i)})` : ""}`;
  const out = [`network ${r.network} (pins in ${r.pinDir})`];
  out.push(`  local pods: ${r.endpoints.length}`);
  for (const e of r.endpoints) out.push(`    ${e.ip} -> ${dev(e.ifindex)}, pod mac ${e.podMac}, gateway mac ${e.hostMac}`);
  out.push(`  other nodes' subnets: ${r.remotes.length}`);
  for (const s of r.remotes) out.push(`    ${s.subnet} -> node ${s.remote}, ${s.direct ? "direct (no tunnel)" : `vni ${s.vni}`}`);
  out.push(`  vxlan device: ${r.vxlanIfindex ? dev(r.vxlanIfindex) : "none"}`);
  if (r.underlayIfindex) out.push(`  direct routes out of: ${dev(r.underlayIfindex)}`);
  const counters = Object.entries(r.stats).filter(([, c]) => c.packets !== "0");
  out.push(`  counters: ${counters.length === 0 ? "none yet" : counters.map(([k, c]) => `${k} ${c.packets} packets / ${c.bytes} bytes`).join(", ")}`);
  return out;
}

/** `cnikit bpf`. */
export async function bpfCommand(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, ["json", "all"]);
  if (args.flags.help) {
    process.stdout.write(BPF_USAGE);
    return 0;
  }
  const pinRoot = flagString(args, "pin-root") ?? DEFAULT_PIN_ROOT;
  const netns = flagString(args, "netns");
  const [{ NetlinkConn }, { listTc }, { openPinnedDatapath }, { BpfProgram }, { listDir }, { listLinks }] = await Promise.all([
    import("../netlink/conn.ts"),
    import("../bpf/tc.ts"),
    import("../bpf/datapath.ts"),
    import("../bpf/prog.ts"),
    import("../sys/file.ts"),
    import("../net/link.ts"),
  ]);
  try {
    const conn = NetlinkConn.open(netns ? { netns } : {});
    let attached: TcProgram[];
    let names: Map<number, string>;
    try {
      attached = listTc(conn, { all: args.flags.all === true });
      names = new Map(listLinks(conn).map((l) => [l.index, l.name]));
    } finally {
      conn.close();
    }
    const programs = attached.map((t) => {
      let progName = "";
      if (t.progId !== undefined) {
        try {
          const p = BpfProgram.fromId(t.progId);
          progName = p.name;
          p.close();
        } catch {
          // the program went away meanwhile
        }
      }
      return { ...t, progName };
    });
    let networks: string[] = [];
    try {
      networks = listDir(pinRoot).sort();
    } catch {
      // nothing pinned (or no bpffs)
    }
    const reports: NetworkReport[] = [];
    for (const network of networks) {
      const dir = `${pinRoot}/${network}`;
      const dp = openPinnedDatapath(dir);
      if (!dp) continue;
      try {
        reports.push(describeDatapath(network, dir, dp, names));
      } finally {
        dp.close();
      }
    }
    if (args.flags.json) {
      printJSON({ programs, networks: reports });
      return 0;
    }
    const lines: string[] = [];
    if (programs.length === 0) lines.push("attached programs: none");
    else {
      lines.push("attached programs:");
      lines.push(
        table(
          ["INTERFACE", "HOOK", "FILTER", "PRIO", "PROG ID", "PROG NAME", "TAG"],
          programs.map((p) => [p.ifname ?? `ifindex ${p.ifindex}`, p.direction, p.tcx ? "(tcx)" : p.name, String(p.prio), String(p.progId ?? ""), p.progName, p.tag ?? ""]),
        ),
      );
    }
    lines.push("");
    if (reports.length === 0) lines.push(`pinned networks: none under ${pinRoot}`);
    for (const r of reports) lines.push(...formatNetwork(r, names));
    console.log(lines.join("\n"));
    return 0;
  } catch (err) {
    process.stderr.write(`cnikit bpf: ${(err as Error).message}\n`);
    return 1;
  }
}
