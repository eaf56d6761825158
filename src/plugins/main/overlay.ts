/**
 * overlay: turns this node's lease (the agent's `subnet.env`, flannel's format) into a bridge +
 * host-local configuration and delegates to it, as flannel's CNI plugin does. Keys: `subnetFile`
 * (default /run/flannel/subnet.env), `dataDir` (where the delegate config is kept for DEL),
 * `subnetFileWaitMs` (how long ADD waits for the agent to write the file), `delegate` (keys that
 * win over the generated ones).
 */

import { makeDir, readText, removeFile, writeText } from "../../sys/file.ts";
import { joinPath as join } from "../../sys/path.ts";
import { delegateAdd, delegateCommand } from "../../invoke/delegate.ts";
import { readSubnetEnv, type SubnetEnv } from "../../ipam/subnet-env.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { CniError, ErrorCode, toCniError } from "../../spec/error.ts";
import { formatCIDR, networkOf, parseCIDR } from "../../spec/ip.ts";
import type { Result } from "../../spec/result.ts";

/** flannel's defaults. */
export const DEFAULT_SUBNET_FILE = "/run/flannel/subnet.env";
export const DEFAULT_DATA_DIR = "/var/lib/cni/overlay";
const DEFAULT_WAIT_MS = 3000;

/** The overlay's settings. */
export interface OverlayConf {
  subnetFile: string;
  dataDir: string;
  waitMs: number;
  delegate: Record<string, unknown>;
}

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, `overlay: ${msg}`);

/** Parse the config. */
export function parseOverlayConf(conf: Record<string, unknown>): OverlayConf {
  const str = (k: string, d: string) => {
    const v = conf[k];
    if (v === undefined || v === null || v === "") return d;
    if (typeof v !== "string") throw invalid(`'${k}' must be a string`);
    return v;
  };
  const wait = conf.subnetFileWaitMs ?? DEFAULT_WAIT_MS;
  if (typeof wait !== "number" || !Number.isInteger(wait) || wait < 0) throw invalid("'subnetFileWaitMs' must be a non-negative integer");
  const delegate = conf.delegate ?? {};
  if (typeof delegate !== "object" || delegate === null || Array.isArray(delegate)) throw invalid("'delegate' must be an object");
  return { subnetFile: str("subnetFile", DEFAULT_SUBNET_FILE), dataDir: str("dataDir", DEFAULT_DATA_DIR), waitMs: wait, delegate: delegate as Record<string, unknown> };
}

/**
 * The delegate config for a lease: bridge with isGateway, ipMasq unless the agent masquerades, the
 * lease's MTU, host-local over the node's subnet with a route to the cluster network; any key of
 * `delegate` wins.
 */
export function delegateConfig(args: { name: string; cniVersion: string }, env: SubnetEnv, delegate: Record<string, unknown>): Record<string, unknown> {
  const ranges: unknown[] = [];
  const routes: unknown[] = [];
  const netOf = (c: string) => formatCIDR(networkOf(parseCIDR(c)!));
  if (env.subnet) ranges.push([{ subnet: netOf(env.subnet) }]);
  if (env.ipv6Subnet) ranges.push([{ subnet: netOf(env.ipv6Subnet) }]);
  if (env.network) routes.push({ dst: env.network });
  if (env.ipv6Network) routes.push({ dst: env.ipv6Network });
  const ipam = { type: "host-local", ranges, ...(routes.length > 0 ? { routes } : {}) };
  const out: Record<string, unknown> = {
    type: "bridge",
    isGateway: true,
    ipMasq: !env.ipMasq,
    ...(env.mtu ? { mtu: env.mtu } : {}),
    ...delegate,
    // a delegate ipam object refines the generated one (dataDir, say) unless it names a type of its own
    ipam: typeof delegate.ipam === "object" && delegate.ipam !== null && !(delegate.ipam as { type?: unknown }).type
      ? { ...ipam, ...(delegate.ipam as Record<string, unknown>) }
      : (delegate.ipam ?? ipam),
  };
  out.name = args.name;
  out.cniVersion = args.cniVersion;
  return out;
}

async function waitForSubnetEnv(conf: OverlayConf): Promise<SubnetEnv> {
  const deadline = Date.now() + conf.waitMs;
  for (;;) {
    const env = readSubnetEnv(conf.subnetFile);
    if (env) return env;
    if (Date.now() >= deadline) {
      throw new CniError(
        ErrorCode.TryAgainLater,
        `overlay: ${conf.subnetFile} does not exist: is the node agent (cnikit agent) running and has it leased a subnet?`,
      );
    }
    await Bun.sleep(50);
  }
}

function savedFile(conf: OverlayConf, args: CmdArgs): string {
  return join(conf.dataDir, `${args.containerId}-${args.ifName}.json`);
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseOverlayConf(args.config);
  const env = await waitForSubnetEnv(conf);
  const delegate = delegateConfig({ name: args.config.name ?? "", cniVersion: args.cniVersion }, env, conf.delegate);
  const type = delegate.type;
  if (typeof type !== "string" || !type) throw invalid("delegate 'type' must be a plugin type");
  const text = JSON.stringify(delegate);
  // kept before delegating, so that a DEL after a failed ADD still knows what to undo
  makeDir(conf.dataDir, { recursive: true, mode: 0o700 });
  const file = savedFile(conf, args);
  writeText(file, text, { mode: 0o600 });
  try {
    return await delegateAdd(type, args, text);
  } catch (e) {
    try {
      await delegateCommand(type, args, "DEL", text);
    } catch {
      // best effort
    }
    removeFile(file);
    throw toCniError(e);
  }
}

function readSaved(conf: OverlayConf, args: CmdArgs): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readText(savedFile(conf, args)));
  } catch {
    return undefined;
  }
}

async function del(args: CmdArgs): Promise<void> {
  const conf = parseOverlayConf(args.config);
  const saved = readSaved(conf, args);
  if (!saved) return; // never added, or already deleted
  await delegateCommand(String(saved.type), args, "DEL", JSON.stringify({ ...saved, ...(args.config.prevResult ? { prevResult: args.config.prevResult } : {}) }));
  removeFile(savedFile(conf, args));
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parseOverlayConf(args.config);
  const saved = readSaved(conf, args);
  if (!saved) throw new CniError(ErrorCode.Internal, `overlay: no saved delegate config for ${args.containerId}`);
  await delegateCommand(String(saved.type), args, "CHECK", JSON.stringify({ ...saved, prevResult: args.config.prevResult }));
}

/** The overlay plugin. */
export const overlay: Plugin = { add, del, check };
export default overlay;
