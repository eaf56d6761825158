/**
 * This node's attachments as the result cache records them (`<cacheDir>/results/`, libcni's
 * `cniCacheV1` files, written by cnikit's runtime and by Go runtimes alike): network, pod (from the
 * `K8S_POD_NAME` / `K8S_POD_NAMESPACE` CNI_ARGS a Kubernetes runtime passes), container, netns,
 * interface, addresses, MAC, the chain's plugin types and the age of the entry (the file's mtime:
 * the cache records no time of its own).
 */

import { statSync } from "node:fs";
import { toCurrentResult, parseResult } from "../spec/result.ts";
import { cacheFile, listCache, type CachedAttachment } from "./cache.ts";

/** One attachment, flattened for display. */
export interface Attachment {
  network: string;
  /** K8S_POD_NAME from the cached CNI_ARGS. */
  podName?: string;
  /** K8S_POD_NAMESPACE from the cached CNI_ARGS. */
  podNamespace?: string;
  containerId: string;
  netns: string;
  ifName: string;
  /** CIDR addresses from the cached result ("10.244.1.5/24"). */
  addresses: string[];
  /** Gateways from the cached result. */
  gateways: string[];
  /** MAC of the container's interface (the result's interface with a sandbox, named ifName). */
  mac?: string;
  /** Host-side interfaces the result names (bridge, host veth). */
  hostInterfaces: string[];
  /** The chain's plugin types, in order. */
  plugins: string[];
  /** The bridge the chain's main plugin names (`bridge`, or an overlay delegate's), if any. */
  bridge?: string;
  /** When the entry was written (ms since the epoch), from the file's mtime. */
  createdMs: number;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** The plugin types and the bridge of a cached config (a conflist, or a single .conf). */
function chainOf(configText: string): { plugins: string[]; bridge?: string } {
  let conf: unknown;
  try {
    conf = JSON.parse(configText);
  } catch {
    return { plugins: [] };
  }
  if (!isObj(conf)) return { plugins: [] };
  const list = Array.isArray(conf.plugins) ? conf.plugins.filter(isObj) : [conf];
  const plugins = list.map((p) => String(p.type ?? "?"));
  let bridge: string | undefined;
  for (const p of list) {
    if (p.type === "bridge") bridge = typeof p.bridge === "string" ? p.bridge : "cni0";
    // overlay delegates to bridge; flannel's default bridge is cni0
    if (p.type === "overlay") bridge = isObj(p.delegate) && typeof p.delegate.bridge === "string" ? p.delegate.bridge : "cni0";
    if (bridge) break;
  }
  return { plugins, ...(bridge ? { bridge } : {}) };
}

/** Flatten one cache entry. */
export function describeAttachment(e: CachedAttachment, createdMs: number): Attachment {
  const args = new Map(e.cniArgs ?? []);
  const out: Attachment = {
    network: e.network,
    containerId: e.containerId,
    netns: e.netns,
    ifName: e.ifName,
    addresses: [],
    gateways: [],
    hostInterfaces: [],
    ...chainOf(e.config),
    createdMs,
  };
  const pod = args.get("K8S_POD_NAME");
  const ns = args.get("K8S_POD_NAMESPACE");
  if (pod) out.podName = pod;
  if (ns) out.podNamespace = ns;
  if (e.result) {
    try {
      const r = toCurrentResult(parseResult(e.result));
      for (const ip of r.ips ?? []) {
        out.addresses.push(ip.address);
        if (ip.gateway) out.gateways.push(ip.gateway);
      }
      const ifaces = r.interfaces ?? [];
      const mine = ifaces.find((i) => i.sandbox && i.name === e.ifName) ?? ifaces.find((i) => i.sandbox);
      if (mine?.mac) out.mac = mine.mac;
      out.hostInterfaces = ifaces.filter((i) => !i.sandbox).map((i) => i.name);
    } catch {
      // a result this version cannot read: the attachment is still listed
    }
  }
  return out;
}

/** Every attachment in the cache directory, oldest first. */
export function listAttachments(cacheDir: string): Attachment[] {
  const out: Attachment[] = [];
  for (const e of listCache(cacheDir)) {
    let createdMs = 0;
    try {
      createdMs = statSync(cacheFile(cacheDir, e)).mtimeMs;
    } catch {
      // removed meanwhile: listed with an unknown age
    }
    out.push(describeAttachment(e, createdMs));
  }
  return out.sort((a, b) => a.createdMs - b.createdMs || a.network.localeCompare(b.network) || a.containerId.localeCompare(b.containerId));
}

/** "5s", "3m", "2h", "4d": an age for tables. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}
