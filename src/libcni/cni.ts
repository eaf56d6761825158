/**
 * The runtime side: run a network configuration list's plugins for ADD / CHECK / DEL / GC / STATUS
 * the way libcni does (name, version, prevResult and declared capabilities injected; results
 * cached), with the fixes cnikit promises: DEL and CHECK reuse the capability arguments cached by
 * ADD when the caller passes none, and a failed ADD is rolled back.
 */

import { CniError, ErrorCode, toCniError } from "../spec/error.ts";
import type { GCAttachment, NetConf } from "../spec/netconf.ts";
import { convertResult, parseResult, type AnyResult } from "../spec/result.ts";
import { validateContainerId, validateIfName, validateNetworkName } from "../spec/validate.ts";
import { GC_MIN_VERSION, type VersionInfo, versionAtLeast } from "../spec/version.ts";
import { formatCniArgs } from "../spec/args.ts";
import { invokePlugin, invokeVersion, invokeWithResult, type InvokeOptions } from "../invoke/invoke.ts";
import { findInPath } from "../invoke/find.ts";
import { builtinTypes, isShimFile, runsInProcess } from "../invoke/builtin.ts";

/** The mark of a GC that cnikit's runtime sends its own plugins for a list below 1.1.0 (see the skel). */
const GC_ANY_VERSION_ENV = "CNIKIT_GC_ANY_VERSION";
import {
  DEFAULT_CACHE_DIR,
  deleteCache,
  listCache,
  readCache,
  writeCache,
  type AttachmentKey,
  type CachedAttachment,
} from "./cache.ts";
import type { NetworkConfigList } from "./conf.ts";

/** Per-attachment arguments of one operation (everything but the config). */
export interface RuntimeConf {
  containerId: string;
  /** Path of the network namespace (may be empty for DEL). */
  netns: string;
  ifName: string;
  /** CNI_ARGS pairs. */
  args?: Array<[string, string]>;
  /** Capability arguments; each plugin sees only the ones it declares in `capabilities`. */
  capabilityArgs?: Record<string, unknown>;
}

/** How the runtime finds and runs plugins. */
export interface CNIOptions {
  /** Plugin directories (CNI_PATH). */
  path: string[];
  /** Cache directory; default `/var/lib/cni`. */
  cacheDir?: string;
  /** Environment plugins inherit; default this process's. */
  baseEnv?: Readonly<Record<string, string | undefined>>;
  /** Run every plugin as a process, never in-process. */
  forceExec?: boolean;
  /** DEL what a failed ADD set up before reporting the error (default true). */
  rollbackFailedAdd?: boolean;
}

/** GC arguments: the attachments that are still in use. */
export interface GCArgs {
  validAttachments?: GCAttachment[];
}

function describe(p: NetConf): string {
  return p.name ? `type="${p.type}" name="${p.name}"` : `type="${p.type}"`;
}

function wrap(err: unknown, p: NetConf, verb: string): CniError {
  const e = toCniError(err);
  return new CniError(e.code, `plugin ${describe(p)} failed (${verb}): ${e.message}`, e.details);
}

/** Build one plugin's stdin: the plugin object with name, version, prevResult and runtimeConfig injected. */
export function buildPluginConfig(
  list: NetworkConfigList,
  plugin: NetConf,
  opts: { prevResult?: AnyResult; capabilityArgs?: Record<string, unknown>; extra?: Record<string, unknown> } = {},
): string {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  if (opts.prevResult) conf.prevResult = opts.prevResult;
  const rc: Record<string, unknown> = {};
  for (const [cap, on] of Object.entries(plugin.capabilities ?? {})) {
    if (on && opts.capabilityArgs && cap in opts.capabilityArgs) rc[cap] = opts.capabilityArgs[cap];
  }
  if (Object.keys(rc).length > 0) conf.runtimeConfig = rc;
  Object.assign(conf, opts.extra ?? {});
  return JSON.stringify(conf);
}

/** The runtime library: the CNI interface of libcni over a set of plugin directories. */
export class CNIConfig {
  readonly path: string[];
  readonly cacheDir: string;
  private readonly opts: CNIOptions;

  constructor(opts: CNIOptions) {
    this.opts = opts;
    this.path = opts.path;
    this.cacheDir = opts.cacheDir || DEFAULT_CACHE_DIR;
  }

  private invokeOpts(command: string, rt: RuntimeConf | undefined, stdin: string): InvokeOptions {
    const o: InvokeOptions = { command, path: this.path.join(":"), stdin };
    if (rt) {
      o.containerId = rt.containerId;
      o.netns = rt.netns;
      o.ifName = rt.ifName;
      o.args = formatCniArgs(rt.args ?? []);
    }
    if (this.opts.baseEnv) o.baseEnv = this.opts.baseEnv;
    if (this.opts.forceExec) o.forceExec = true;
    return o;
  }

  private key(list: NetworkConfigList, rt: RuntimeConf): AttachmentKey {
    return { network: list.name, containerId: rt.containerId, ifName: rt.ifName };
  }

  private validate(list: NetworkConfigList, rt: RuntimeConf): void {
    validateContainerId(rt.containerId);
    validateNetworkName(list.name);
    validateIfName(rt.ifName);
  }

  /** Run ADD for every plugin in order, chaining results; caches and returns the final result. */
  async addNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<AnyResult> {
    this.validate(list, rt);
    let result: AnyResult | undefined;
    for (let i = 0; i < list.plugins.length; i++) {
      const p = list.plugins[i]!;
      try {
        await findInPath(p.type, this.path);
        const stdin = buildPluginConfig(list, p, {
          ...(result ? { prevResult: result } : {}),
          ...(rt.capabilityArgs ? { capabilityArgs: rt.capabilityArgs } : {}),
        });
        result = await invokeWithResult(p.type, list.cniVersion, this.invokeOpts("ADD", rt, stdin));
      } catch (e) {
        const err = wrap(e, p, "add");
        if (this.opts.rollbackFailedAdd !== false) await this.rollback(list, rt, i);
        throw err;
      }
    }
    if (!result) throw new CniError(ErrorCode.InvalidNetworkConfig, `network ${list.name} has no plugins`);
    try {
      writeCache(this.cacheDir, {
        ...this.key(list, rt),
        netns: rt.netns,
        config: list.bytes,
        ...(rt.args ? { cniArgs: rt.args } : {}),
        ...(rt.capabilityArgs ? { capabilityArgs: rt.capabilityArgs } : {}),
        result: result as unknown as Record<string, unknown>,
      });
    } catch (e) {
      if (this.opts.rollbackFailedAdd !== false) await this.rollback(list, rt, list.plugins.length - 1);
      throw new CniError(ErrorCode.IOFailure, `failed to set network "${list.name}" cached result: ${(e as Error).message}`);
    }
    return result;
  }

  private async rollback(list: NetworkConfigList, rt: RuntimeConf, upTo: number): Promise<void> {
    for (let j = upTo; j >= 0; j--) {
      const p = list.plugins[j]!;
      try {
        const stdin = buildPluginConfig(list, p, rt.capabilityArgs ? { capabilityArgs: rt.capabilityArgs } : {});
        await invokePlugin(p.type, this.invokeOpts("DEL", rt, stdin));
      } catch {
        // best effort: the ADD error is what the caller needs to see
      }
    }
  }

  /** The cached entry of an attachment, if any (a broken entry is reported). */
  getCachedAttachment(list: NetworkConfigList, rt: RuntimeConf): CachedAttachment | undefined {
    return readCache(this.cacheDir, this.key(list, rt));
  }

  /** The cached result of an attachment converted to the list's version, if any. */
  getCachedResult(list: NetworkConfigList, rt: RuntimeConf): AnyResult | undefined {
    const entry = this.getCachedAttachment(list, rt);
    if (!entry?.result) return undefined;
    try {
      return convertResult(parseResult(entry.result), list.cniVersion);
    } catch (e) {
      throw new CniError(
        toCniError(e).code,
        `failed to convert cached result to config version "${list.cniVersion}": ${(e as Error).message}`,
      );
    }
  }

  private capsFor(list: NetworkConfigList, rt: RuntimeConf): Record<string, unknown> | undefined {
    if (rt.capabilityArgs && Object.keys(rt.capabilityArgs).length > 0) return rt.capabilityArgs;
    try {
      return this.getCachedAttachment(list, rt)?.capabilityArgs;
    } catch {
      return undefined;
    }
  }

  /** Run CHECK for every plugin with the cached result (skipped with `disableCheck`; needs 0.4.0+). */
  async checkNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    if (!versionAtLeast(list.cniVersion, "0.4.0")) {
      throw new CniError(ErrorCode.IncompatibleVersion, `configuration version "${list.cniVersion}" does not support the CHECK command`);
    }
    if (list.disableCheck) return;
    this.validate(list, rt);
    const cached = this.getCachedResult(list, rt);
    if (!cached) {
      throw new CniError(
        ErrorCode.UnknownContainer,
        `no cached result for network "${list.name}", container "${rt.containerId}", interface "${rt.ifName}": was it added?`,
      );
    }
    const caps = this.capsFor(list, rt);
    for (const p of list.plugins) {
      try {
        const stdin = buildPluginConfig(list, p, { prevResult: cached, ...(caps ? { capabilityArgs: caps } : {}) });
        await invokePlugin(p.type, this.invokeOpts("CHECK", rt, stdin));
      } catch (e) {
        throw wrap(e, p, "check");
      }
    }
  }

  /** Run DEL for every plugin in reverse order with the cached result, then drop the cache entry. */
  async delNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    this.validate(list, rt);
    let cached: AnyResult | undefined;
    if (versionAtLeast(list.cniVersion, "0.4.0")) {
      try {
        cached = this.getCachedResult(list, rt);
      } catch {
        deleteCache(this.cacheDir, this.key(list, rt));
        cached = undefined;
      }
    }
    const caps = this.capsFor(list, rt);
    // Every plugin gets its DEL even when an earlier one failed, so one broken plugin does not
    // leak the others' state; the cache entry stays until a DEL succeeds for all of them.
    const errors: CniError[] = [];
    for (let i = list.plugins.length - 1; i >= 0; i--) {
      const p = list.plugins[i]!;
      try {
        const stdin = buildPluginConfig(list, p, {
          ...(cached ? { prevResult: cached } : {}),
          ...(caps ? { capabilityArgs: caps } : {}),
        });
        await invokePlugin(p.type, this.invokeOpts("DEL", rt, stdin));
      } catch (e) {
        errors.push(wrap(e, p, "delete"));
      }
    }
    if (errors.length > 0) {
      const [first, ...rest] = errors;
      throw new CniError(first!.code, first!.message, [first!.details, ...rest.map((e) => e.message)].filter(Boolean).join("; "));
    }
    deleteCache(this.cacheDir, this.key(list, rt));
  }

  /** Cached attachments, all or those of one container. */
  getCachedAttachments(containerId?: string): CachedAttachment[] {
    return listCache(this.cacheDir, containerId);
  }

  /**
   * GC as libcni does it: DEL every cached attachment of this network that is not in the valid
   * list, then (1.1.0+) send GC to each plugin with `cni.dev/valid-attachments` (and the older
   * `cni.dev/attachments`). Errors are collected; the first one is thrown with the rest as details.
   */
  async gcNetworkList(list: NetworkConfigList, args: GCArgs = {}): Promise<void> {
    if (list.disableGC) return;
    const valid = args.validAttachments ?? [];
    const keep = new Set(valid.map((a) => `${a.containerID}\u0000${a.ifname}`));
    const errors: CniError[] = [];
    for (const a of this.getCachedAttachments()) {
      if (a.network !== list.name || keep.has(`${a.containerId}\u0000${a.ifName}`)) continue;
      const rt: RuntimeConf = { containerId: a.containerId, netns: a.netns, ifName: a.ifName };
      if (a.cniArgs) rt.args = a.cniArgs;
      if (a.capabilityArgs) rt.capabilityArgs = a.capabilityArgs;
      try {
        await this.delNetworkList(list, rt);
      } catch (e) {
        errors.push(new CniError(toCniError(e).code, `failed to delete stale attachment ${a.containerId} ${a.ifName}: ${(e as Error).message}`));
      }
    }
    // GC is a 1.1.0 verb; below it only cnikit's own plugins get it (marked so that their SDK
    // accepts it): they release what they recorded themselves, whatever the list's version
    const spec = versionAtLeast(list.cniVersion, GC_MIN_VERSION);
    for (const p of list.plugins) {
      try {
        const opts = this.invokeOpts("GC", undefined, buildPluginConfig(list, p, {
          extra: { "cni.dev/valid-attachments": valid, "cni.dev/attachments": valid },
        }));
        if (!spec) {
          if (!(await this.isOwnPlugin(p.type))) continue;
          opts.baseEnv = { ...(opts.baseEnv ?? process.env), [GC_ANY_VERSION_ENV]: "1" };
        }
        await invokePlugin(p.type, opts);
      } catch (e) {
        errors.push(wrap(e, p, "gc"));
      }
    }
    if (errors.length > 0) {
      const [first, ...rest] = errors;
      throw new CniError(first!.code, first!.message, rest.map((e) => e.message).join("; "));
    }
  }

  /** Whether `type` resolves in CNI_PATH to cnikit itself (this binary, or a cnikit-shim). */
  private async isOwnPlugin(type: string): Promise<boolean> {
    let file: string;
    try {
      file = await findInPath(type, this.path);
    } catch {
      return false;
    }
    if (!this.opts.forceExec && (await runsInProcess(type, file))) return true;
    return builtinTypes().includes(type) && (await isShimFile(file));
  }

  /** STATUS for every plugin (1.1.0+; older lists are reported ready); the first failure is thrown. */
  async getStatusNetworkList(list: NetworkConfigList): Promise<void> {
    if (!versionAtLeast(list.cniVersion, GC_MIN_VERSION)) return;
    for (const p of list.plugins) {
      try {
        await invokePlugin(p.type, this.invokeOpts("STATUS", undefined, buildPluginConfig(list, p)));
      } catch (e) {
        throw wrap(e, p, "status");
      }
    }
  }

  /** The versions a plugin type supports. */
  async getVersionInfo(type: string): Promise<VersionInfo> {
    const o: { path: string; baseEnv?: InvokeOptions["baseEnv"] } = { path: this.path.join(":") };
    if (this.opts.baseEnv) o.baseEnv = this.opts.baseEnv;
    return invokeVersion(type, o);
  }

  /**
   * Check that every plugin of a list exists and supports the list's version; returns the
   * capabilities the list declares.
   */
  async validateNetworkList(list: NetworkConfigList): Promise<string[]> {
    const caps = new Set<string>();
    const errors: string[] = [];
    for (const p of list.plugins) {
      try {
        const vi = await this.getVersionInfo(p.type);
        if (!vi.supportedVersions.includes(list.cniVersion)) {
          errors.push(`plugin ${p.type} does not support config version "${list.cniVersion}"`);
        }
      } catch (e) {
        errors.push(toCniError(e).message);
      }
      for (const [c, on] of Object.entries(p.capabilities ?? {})) if (on) caps.add(c);
    }
    if (errors.length > 0) throw new CniError(ErrorCode.InvalidNetworkConfig, errors.join("; "));
    return [...caps];
  }
}
