/**
 * The table of plugin types built into the cnikit binary: the only place that knows it. Each entry
 * loads its plugin module lazily, so a plugin run loads only its own code.
 */

import type { PluginLoader } from "./invoke/builtin.ts";

/** Built-in plugin types and their loaders. */
export const BUILTIN_PLUGINS: Record<string, PluginLoader> = {
  bridge: async () => (await import("./plugins/main/bridge.ts")).default,
  ptp: async () => (await import("./plugins/main/ptp.ts")).default,
  "host-device": async () => (await import("./plugins/main/host-device.ts")).default,
  macvlan: async () => (await import("./plugins/main/macvlan.ts")).default,
  ipvlan: async () => (await import("./plugins/main/ipvlan.ts")).default,
  vlan: async () => (await import("./plugins/main/vlan.ts")).default,
  loopback: async () => (await import("./plugins/main/loopback.ts")).default,
  "host-local": async () => (await import("./plugins/ipam/host-local.ts")).default,
  static: async () => (await import("./plugins/ipam/static.ts")).default,
  "cluster-ipam": async () => (await import("./plugins/ipam/cluster-ipam.ts")).default,
  tuning: async () => (await import("./plugins/meta/tuning.ts")).default,
  sbr: async () => (await import("./plugins/meta/sbr.ts")).default,
  firewall: async () => (await import("./plugins/meta/firewall.ts")).default,
  overlay: async () => (await import("./plugins/main/overlay.ts")).default,
  bandwidth: async () => (await import("./plugins/meta/bandwidth.ts")).default,
  portmap: async () => (await import("./plugins/meta/portmap.ts")).default,
};
