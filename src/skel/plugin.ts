/** The plugin side of the spec: what a plugin receives and the object it implements. */

import type { NetConf, GCAttachment } from "../spec/netconf.ts";
import type { Result } from "../spec/result.ts";

/** Everything a plugin gets for one invocation. */
export interface CmdArgs<C extends NetConf = NetConf> {
  /** CNI_COMMAND */
  command: string;
  /** CNI_CONTAINERID */
  containerId: string;
  /** CNI_NETNS (may be empty on DEL) */
  netns: string;
  /** CNI_IFNAME */
  ifName: string;
  /** CNI_ARGS, raw */
  args: string;
  /** CNI_PATH, raw (":"-separated) */
  path: string;
  /** The config as received on stdin, raw. */
  stdinData: string;
  /** The config, parsed. */
  config: C;
  /** The config's spec version (empty normalised to 0.1.0). */
  cniVersion: string;
  /** `prevResult` converted to the current (1.1.0) form, when the config has one. */
  prevResult?: Result;
  /** GC only: the attachments the runtime still considers valid. */
  validAttachments?: GCAttachment[];
  /** The environment the plugin runs in (for delegation to other plugins). */
  env: Readonly<Record<string, string | undefined>>;
  /** Write a log line (never to stdout). */
  log: (msg: string) => void;
}

/**
 * A CNI plugin: `add` returns a result in the current (1.1.0) form, the SDK converts it to the
 * config's version. `check`, `gc` and `status` default to success when a plugin has nothing to do.
 */
export interface Plugin<C extends NetConf = NetConf> {
  /** Spec versions this plugin accepts; defaults to every version cnikit supports. */
  supportedVersions?: readonly string[];
  add(args: CmdArgs<C>): Result | Promise<Result>;
  del(args: CmdArgs<C>): void | Promise<void>;
  check?(args: CmdArgs<C>): void | Promise<void>;
  gc?(args: CmdArgs<C>): void | Promise<void>;
  status?(args: CmdArgs<C>): void | Promise<void>;
}
