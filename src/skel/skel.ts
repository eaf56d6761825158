/**
 * The plugin dispatcher: reads CNI_* variables and the config, checks what each verb requires,
 * negotiates the spec version, calls the plugin, and prints the result (converted to the config's
 * version) or a spec error on stdout. All I/O is injected so it runs in-process and in tests.
 */

import { CniError, ErrorCode, toCniError } from "../spec/error.ts";
import { decode } from "../spec/decode.ts";
import { netConfCodec, type NetConf } from "../spec/netconf.ts";
import { convertResult, parseResult, toCurrentResult } from "../spec/result.ts";
import { validateContainerId, validateIfName, validateNetworkName } from "../spec/validate.ts";
import { CURRENT_VERSION, GC_MIN_VERSION, normalizeVersion, SUPPORTED_VERSIONS, versionAtLeast, versionInfo } from "../spec/version.ts";
import type { CmdArgs, Plugin } from "./plugin.ts";

/** The process around a plugin, injectable for in-process runs and tests. */
export interface PluginIO {
  env: Readonly<Record<string, string | undefined>>;
  /** The whole config from stdin. */
  readStdin: () => string | Promise<string>;
  /** Receives everything meant for stdout (one result or error document). */
  writeStdout: (s: string) => void;
  /** Receives log output. */
  writeStderr: (s: string) => void;
}

/** Set to "1" by cnikit's runtime on a GC it sends to cnikit's own plugins for a list below 1.1.0. */
export const GC_ANY_VERSION_ENV = "CNIKIT_GC_ANY_VERSION";

const VERBS = ["ADD", "CHECK", "DEL", "GC", "STATUS", "VERSION"] as const;
type Verb = (typeof VERBS)[number];

const REQUIRED: Record<string, Verb[]> = {
  CNI_CONTAINERID: ["ADD", "CHECK", "DEL"],
  CNI_NETNS: ["ADD", "CHECK"],
  CNI_IFNAME: ["ADD", "CHECK", "DEL"],
  CNI_PATH: ["ADD", "CHECK", "DEL"],
};

function requireEnv(env: PluginIO["env"], verb: Verb): void {
  const missing = Object.entries(REQUIRED)
    .filter(([name, verbs]) => verbs.includes(verb) && !env[name])
    .map(([name]) => name);
  if (missing.length > 0) {
    throw new CniError(ErrorCode.InvalidEnvironment, `required env variables [${missing.join(",")}] missing`);
  }
}

function parseConfig(stdin: string): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `error parsing network config: ${(e as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new CniError(ErrorCode.DecodingFailure, "error parsing network config: not a JSON object");
  }
  return raw as NetConf;
}

async function dispatch(plugin: Plugin, io: PluginIO, state: { version: string }): Promise<void> {
  const env = io.env;
  const command = env.CNI_COMMAND ?? "";
  if (!command) throw new CniError(ErrorCode.InvalidEnvironment, "required env variables [CNI_COMMAND] missing");
  if (!(VERBS as readonly string[]).includes(command)) {
    throw new CniError(ErrorCode.InvalidEnvironment, `unknown CNI_COMMAND: ${command}`);
  }
  const verb = command as Verb;
  const supported = plugin.supportedVersions ?? SUPPORTED_VERSIONS;
  if (verb === "VERSION") {
    io.writeStdout(JSON.stringify(versionInfo(supported)));
    return;
  }
  requireEnv(env, verb);
  if (env.CNI_CONTAINERID) validateContainerId(env.CNI_CONTAINERID);
  if (env.CNI_IFNAME) validateIfName(env.CNI_IFNAME);

  let stdin: string;
  try {
    stdin = await io.readStdin();
  } catch (e) {
    throw new CniError(ErrorCode.IOFailure, `error reading from stdin: ${(e as Error).message}`);
  }
  const raw = parseConfig(stdin);
  // The fields every config has, decoded as Go decodes them (DEL: leniently, so that a config ADD
  // accepted is never refused and cleanup goes on); the plugin decodes its own keys.
  const base = decode(netConfCodec, raw, { where: raw.type === undefined ? "config" : String(raw.type), lenient: verb === "DEL", warn: (m) => io.writeStderr(`${m}\n`) });
  const config = { ...raw } as NetConf;
  let rawIpam: unknown;
  for (const k of Object.keys(raw)) {
    const field = netConfCodec.fieldFor(k);
    if (field === "ipam") rawIpam = raw[k];
    if (field !== undefined) delete config[k];
  }
  Object.assign(config, base, { type: base.type ?? "" });
  // the ipam section belongs to the IPAM plugin: keep its keys, with `type` decoded
  if (base.ipam) config.ipam = { ...(rawIpam as object), ...base.ipam };
  validateNetworkName(base.name ?? "");
  const version = normalizeVersion(base.cniVersion);
  if (!supported.includes(version)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      "incompatible CNI versions",
      `config is "${version}", plugin supports ${JSON.stringify(supported)}`,
    );
  }
  state.version = version; // errors from here on are reported in the config's version
  if (verb === "CHECK" && !versionAtLeast(version, "0.4.0")) {
    throw new CniError(ErrorCode.IncompatibleVersion, `config version "${version}" does not allow CHECK`);
  }
  // cnikit's own runtime (libcni) also collects lists below 1.1.0 (containerd's default conflist
  // is 1.0.0, flannel's 0.3.1): it marks such a GC, and sends it only to cnikit's own plugins
  const gcAnyVersion = verb === "GC" && env[GC_ANY_VERSION_ENV] === "1";
  if ((verb === "GC" || verb === "STATUS") && !gcAnyVersion && !versionAtLeast(version, GC_MIN_VERSION)) {
    throw new CniError(ErrorCode.IncompatibleVersion, `config version "${version}" does not allow ${verb}`);
  }

  const args: CmdArgs = {
    command: verb,
    containerId: env.CNI_CONTAINERID ?? "",
    netns: env.CNI_NETNS ?? "",
    ifName: env.CNI_IFNAME ?? "",
    args: env.CNI_ARGS ?? "",
    path: env.CNI_PATH ?? "",
    stdinData: stdin,
    config,
    cniVersion: version,
    env,
    log: (msg) => io.writeStderr(msg.endsWith("\n") ? msg : `${msg}\n`),
  };
  if (config.prevResult !== undefined && config.prevResult !== null) {
    try {
      // prevResult is in the config's version; hand plugins the current form.
      const raw = config.prevResult as Record<string, unknown>;
      const prev = parseResult({ ...raw, cniVersion: typeof raw.cniVersion === "string" && raw.cniVersion ? raw.cniVersion : version });
      args.prevResult = toCurrentResult(prev);
    } catch (e) {
      const msg = `could not parse prevResult: ${(e as Error).message}`;
      if (verb !== "DEL") throw new CniError(ErrorCode.DecodingFailure, msg);
      io.writeStderr(`${msg} (ignored: DEL goes on without it)\n`);
    }
  }
  if (verb === "GC") {
    args.validAttachments = (base["cni.dev/valid-attachments"] ?? base["cni.dev/attachments"])?.map((a) => ({ containerID: a.containerID ?? "", ifname: a.ifname ?? "" }));
  }

  switch (verb) {
    case "ADD": {
      const result = await plugin.add(args);
      const out = convertResult({ ...result, cniVersion: result.cniVersion || CURRENT_VERSION }, version);
      io.writeStdout(JSON.stringify(out, null, 4));
      return;
    }
    case "DEL":
      await plugin.del(args);
      return;
    case "CHECK":
      await plugin.check?.(args);
      return;
    case "GC":
      await plugin.gc?.(args);
      return;
    case "STATUS":
      await plugin.status?.(args);
      return;
  }
}

/**
 * Run one plugin invocation over `io`; returns the exit code (0 on success, 1 after printing a
 * spec error). Never throws and never writes anything but the result or the error to stdout.
 */
export async function runPlugin(plugin: Plugin, io: PluginIO): Promise<number> {
  const state = { version: "" };
  try {
    await dispatch(plugin, io, state);
    return 0;
  } catch (e) {
    const err = toCniError(e);
    err.cniVersion = state.version || CURRENT_VERSION;
    io.writeStdout(JSON.stringify(err.toJSON(), null, 4));
    if (!(e instanceof CniError) && e instanceof Error && e.stack && io.env.CNIKIT_DEBUG) {
      io.writeStderr(`${e.stack}\n`);
    }
    return 1;
  }
}

/** Run a plugin as the main program of this process: real env, stdin and stdout; exits. */
export async function pluginMain(plugin: Plugin): Promise<never> {
  let out = "";
  const code = await runPlugin(plugin, {
    env: process.env,
    readStdin: () => Bun.stdin.text(),
    writeStdout: (s) => {
      out += `${s}\n`;
    },
    writeStderr: (s) => {
      process.stderr.write(s);
    },
  });
  if (out) await Bun.write(Bun.stdout, out);
  process.exit(code);
}
