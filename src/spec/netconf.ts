/** Network configuration types: one plugin's config (`.conf`) and a list of them (`.conflist`). */

import type { DNS } from "./result.ts";

/** IPAM section of a plugin config. */
export interface IPAMConf {
  type?: string;
  [key: string]: unknown;
}

/** One plugin's network configuration, as a plugin receives it on stdin. */
export interface NetConf {
  cniVersion?: string;
  /** Only meaningful at the top of a standalone `.conf`: versions it can be run with. */
  cniVersions?: string[];
  name?: string;
  type: string;
  capabilities?: Record<string, boolean>;
  ipam?: IPAMConf;
  dns?: DNS;
  args?: Record<string, unknown>;
  runtimeConfig?: Record<string, unknown>;
  prevResult?: unknown;
  [key: string]: unknown;
}

/** A network configuration list: a network name and the plugins run for it, in order. */
export interface NetConfList {
  cniVersion: string;
  cniVersions?: string[];
  name: string;
  disableCheck?: boolean;
  disableGC?: boolean;
  loadOnlyInlinedPlugins?: boolean;
  plugins: NetConf[];
  [key: string]: unknown;
}

/** A still-valid attachment, as GC receives it in `cni.dev/valid-attachments`. */
export interface GCAttachment {
  containerID: string;
  ifname: string;
}
