/**
 * `cnikit add|check|del|gc|status NET NETNS`: cnitool's commands and environment (NETCONFPATH,
 * CNI_PATH, CNI_IFNAME, CNI_ARGS, CAP_ARGS) plus CNI_CONTAINERID and CNI_CACHE_DIR.
 */

import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { CniError, ErrorCode } from "../spec/error.ts";
import { parseCniArgs } from "../spec/args.ts";
import type { GCAttachment } from "../spec/netconf.ts";
import { splitPath } from "../invoke/find.ts";
import { CNIConfig, type RuntimeConf } from "../libcni/cni.ts";
import { loadConfList } from "../libcni/conf.ts";
import { DEFAULT_CACHE_DIR } from "../libcni/cache.ts";
import { flagList, parseArgs } from "./args.ts";
import { printJSON, reportError } from "./output.ts";
import { CURRENT_VERSION } from "../spec/version.ts";

/** The default config directory, as cnitool's. */
export const DEFAULT_NETCONFPATH = "/etc/cni/net.d";

const HELP: Record<string, string> = {
  add: "Add the container in NETNS to network NET; prints the result.",
  check: "Check the container's attachment to NET against the cached result.",
  del: "Remove the container's attachment to NET (idempotent).",
  gc: "Remove cached attachments of NET not listed with --valid CONTAINERID[/IFNAME], then GC each plugin.",
  status: "Ask each plugin of NET whether it is ready to ADD.",
};

/** Usage text of one network command. */
export function networkUsage(cmd: string): string {
  const extra = cmd === "gc" ? " [--valid CONTAINERID[/IFNAME]]..." : "";
  const netns = cmd === "gc" || cmd === "status" ? "[NETNS]" : "NETNS";
  return `usage: cnikit ${cmd} NET ${netns}${extra}

${HELP[cmd]}

Environment (as cnitool):
  NETCONFPATH      config directory (default ${DEFAULT_NETCONFPATH})
  CNI_PATH         plugin directories, ":"-separated
  CNI_IFNAME       interface name in the container (default eth0)
  CNI_ARGS         extra arguments "K=V;K2=V2"
  CAP_ARGS         capability arguments as JSON, e.g. {"portMappings":[...]}
  CNI_CONTAINERID  container id (default derived from NETNS, as cnitool does)
  CNI_CACHE_DIR    result cache directory (default ${DEFAULT_CACHE_DIR})
`;
}

/** Resolve NETNS: a path (made absolute), or the name of a namespace under /run/netns. */
export function resolveNetns(arg: string): string {
  // a bare name is a namespace under /run/netns (also once it is gone, so DEL finds its attachment)
  if (!arg.includes("/") && !existsSync(arg)) return `/run/netns/${arg}`;
  return isAbsolute(arg) ? arg : resolve(arg);
}

/** cnitool's container id for a namespace path: "cnitool-" and 20 hex digits of its SHA-512. */
export function containerIdFor(netns: string): string {
  return `cnitool-${new Bun.CryptoHasher("sha512").update(netns).digest("hex").slice(0, 20)}`;
}

function parseCapArgs(s: string | undefined): Record<string, unknown> | undefined {
  if (!s) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `CAP_ARGS is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new CniError(ErrorCode.DecodingFailure, "CAP_ARGS must be a JSON object");
  }
  return v as Record<string, unknown>;
}

function parseValid(values: string[], ifName: string): GCAttachment[] {
  return values.map((v) => {
    const [cid, ifn] = v.split("/", 2);
    return { containerID: cid!, ifname: ifn || ifName };
  });
}

/** Run one network command; returns the exit code. */
export async function networkCommand(cmd: string, argv: readonly string[], env = process.env): Promise<number> {
  let version = CURRENT_VERSION;
  try {
    const p = parseArgs(argv);
    if (p.flags.help) {
      process.stdout.write(networkUsage(cmd));
      return 0;
    }
    const needNetns = cmd !== "gc" && cmd !== "status";
    if (p.positional.length < (needNetns ? 2 : 1)) {
      process.stderr.write(networkUsage(cmd));
      return 2;
    }
    const [net, netnsArg] = p.positional as [string, string | undefined];
    const list = loadConfList(env.NETCONFPATH || DEFAULT_NETCONFPATH, net);
    version = list.cniVersion;
    const cni = new CNIConfig({ path: splitPath(env.CNI_PATH), cacheDir: env.CNI_CACHE_DIR || DEFAULT_CACHE_DIR, baseEnv: env });
    const netns = netnsArg ? resolveNetns(netnsArg) : "";
    const ifName = env.CNI_IFNAME ?? "eth0";
    const rt: RuntimeConf = {
      containerId: env.CNI_CONTAINERID || containerIdFor(netns),
      netns,
      ifName,
    };
    if (env.CNI_ARGS) rt.args = parseCniArgs(env.CNI_ARGS);
    const caps = parseCapArgs(env.CAP_ARGS);
    if (caps) rt.capabilityArgs = caps;
    switch (cmd) {
      case "add":
        printJSON(await cni.addNetworkList(list, rt));
        return 0;
      case "check":
        await cni.checkNetworkList(list, rt);
        return 0;
      case "del":
        await cni.delNetworkList(list, rt);
        return 0;
      case "gc":
        await cni.gcNetworkList(list, { validAttachments: parseValid(flagList(p, "valid"), ifName) });
        return 0;
      case "status":
        await cni.getStatusNetworkList(list);
        return 0;
      default:
        throw new CniError(ErrorCode.InvalidEnvironment, `unknown command ${cmd}`);
    }
  } catch (e) {
    return reportError(e, version);
  }
}
