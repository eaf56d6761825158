/** Network configuration types: one plugin's config (`.conf`) and a list of them (`.conflist`). */

import { any, bool, list, object, record, str, type Shape } from "./decode.ts";
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

/** DNS settings as the reference decodes them (`types.DNS`). */
export const dnsCodec = object({ nameservers: list(str), domain: str, search: list(str), options: list(str) });

/** One still-valid attachment in a GC request. */
export const gcAttachmentCodec = object({ containerID: str, ifname: str });

/**
 * The fields every plugin's config has (the reference's `types.NetConf`); a plugin's own codec
 * spreads these and adds its keys.
 */
export const netConfShape = {
  cniVersion: str,
  name: str,
  type: str,
  capabilities: record(bool),
  ipam: object({ type: str }),
  dns: dnsCodec,
  prevResult: record(any),
  "cni.dev/valid-attachments": list(gcAttachmentCodec),
  /** The key's name in drafts of spec 1.1.0. */
  "cni.dev/attachments": list(gcAttachmentCodec),
} satisfies Shape;

/** The common fields alone, as the skel checks them on every verb. */
export const netConfCodec = object(netConfShape);
