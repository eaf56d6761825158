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
import { pluginConf } from "../../skel/conf.ts";
import { any, i64, object, record, refine, str } from "../../spec/decode.ts";
import { netConfShape } from "../../spec/netconf.ts";
import { hasField } from "../common/conf.ts";
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
  /** null only on DEL, when the config's `dataDir` did not decode. */
  dataDir: string | null;
  waitMs: number;
  delegate: Record<string, unknown>;
}

/**
 * The overlay's config, decoded as flannel's CNI plugin decodes its `NetConf` (`subnetFile`,
 * `dataDir`, `delegate` and `runtimeConfig` as maps), plus cnikit's `subnetFileWaitMs`.
 */
export const overlayCodec = object({
  ...netConfShape,
  subnetFile: str,
  dataDir: str,
  subnetFileWaitMs: refine(i64, (ms) => (ms >= 0 ? undefined : `must not be negative, not ${ms}`)),
  delegate: record(any),
  runtimeConfig: record(any),
});

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, `overlay: ${msg}`);

/**
 * Decode the config; "" means the default for `subnetFile` and `dataDir`. On DEL (lenient) a
 * `dataDir` that did not decode is null: the saved state is then not looked for anywhere else.
 */
export function parseOverlayConf(args: CmdArgs): OverlayConf {
  const d = pluginConf(args, overlayCodec, "overlay");
  const lost = d.dataDir === undefined && hasField(overlayCodec, args.config, "dataDir");
  return {
    subnetFile: d.subnetFile || DEFAULT_SUBNET_FILE,
    dataDir: lost ? null : d.dataDir || DEFAULT_DATA_DIR,
    waitMs: d.subnetFileWaitMs ?? DEFAULT_WAIT_MS,
    delegate: d.delegate ?? {},
  };
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

/** Where ADD keeps the delegate config of this attachment; null when `dataDir` did not decode (DEL). */
function savedFile(conf: OverlayConf, args: CmdArgs): string | null {
  return conf.dataDir === null ? null : join(conf.dataDir, `${args.containerId}-${args.ifName}.json`);
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseOverlayConf(args);
  const env = await waitForSubnetEnv(conf);
  const delegate = delegateConfig({ name: args.config.name ?? "", cniVersion: args.cniVersion }, env, conf.delegate);
  const type = delegate.type;
  if (typeof type !== "string" || !type) throw invalid("delegate 'type' must be a plugin type");
  const text = JSON.stringify(delegate);
  // kept before delegating, so that a DEL after a failed ADD still knows what to undo
  const file = savedFile(conf, args);
  if (conf.dataDir === null || file === null) throw invalid("'dataDir' is not usable"); // strict decoding already refused it
  makeDir(conf.dataDir, { recursive: true, mode: 0o700 });
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

function readSaved(file: string | null): Record<string, unknown> | undefined {
  if (file === null) return undefined;
  try {
    return JSON.parse(readText(file));
  } catch {
    return undefined;
  }
}

async function del(args: CmdArgs): Promise<void> {
  const file = savedFile(parseOverlayConf(args), args);
  // never added, already deleted, or a `dataDir` that did not decode: its state is not looked for elsewhere
  const saved = readSaved(file);
  if (!saved || file === null) return;
  await delegateCommand(String(saved.type), args, "DEL", JSON.stringify({ ...saved, ...(args.config.prevResult ? { prevResult: args.config.prevResult } : {}) }));
  removeFile(file);
}

async function check(args: CmdArgs): Promise<void> {
  const saved = readSaved(savedFile(parseOverlayConf(args), args));
  if (!saved) throw new CniError(ErrorCode.Internal, `overlay: no saved delegate config for ${args.containerId}`);
  await delegateCommand(String(saved.type), args, "CHECK", JSON.stringify({ ...saved, prevResult: args.config.prevResult }));
}

/** The overlay plugin. */
export const overlay: Plugin = { add, del, check };
export default overlay;
