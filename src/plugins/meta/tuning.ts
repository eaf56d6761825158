/**
 * tuning: per-pod sysctls (only net.*, inside the pod's namespace) and interface settings (mac,
 * mtu, promisc, allmulti, txQLen), the previous values saved in `<dataDir>/<cid>_<ifname>.json`
 * (the reference's file, with cnikit's extra keys) and restored on DEL. A chained plugin: it needs
 * a prevResult and passes it on (with the new MAC).
 */

import { makeDir, readText, removeFile, writeText } from "../../sys/file.ts";
import { openNetns, type NetnsHandle } from "../../sys/netns.ts";
import { joinPath as join } from "../../sys/path.ts";
import { NetlinkConn } from "../../netlink/conn.ts";
import { findLink, setLink, type Link } from "../../net/link.ts";
import { getSysctl, setSysctl } from "../../net/sysctl.ts";
import { pluginConf } from "../../skel/conf.ts";
import type { CmdArgs, Plugin } from "../../skel/plugin.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import { bool, decode, i64, object, record, refine, str, type Decoded } from "../../spec/decode.ts";
import { netConfShape, type NetConf } from "../../spec/netconf.ts";
import { cniArgsMac, hasField, mtuCodec } from "../common/conf.ts";
import type { Result } from "../../spec/result.ts";

/** The reference's defaults. */
export const DEFAULT_DATA_DIR = "/run/cni/tuning";
export const DEFAULT_ALLOWLIST = "/etc/cni/tuning/allowlist.conf";

/** tuning's settings after parsing (args.cni and runtimeConfig applied, as the reference does). */
export interface TuningConf {
  sysctl: Record<string, string>;
  mac?: string;
  mtu?: number;
  promisc: boolean;
  allmulti?: boolean;
  txQLen?: number;
  dataDir: string;
}

/** What ADD found before changing it, restored by DEL. */
interface Saved {
  mac?: string;
  promisc?: boolean;
  mtu?: number;
  allmulti?: boolean;
  txQLen?: number;
  sysctl?: Record<string, string>;
}

const invalid = (msg: string) => new CniError(ErrorCode.InvalidNetworkConfig, msg);
const MAC_RE = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;

/** The sysctl file a key names, refusing anything outside /proc/sys/net. */
export function sysctlKeyPath(key: string, ifName: string): string {
  const k = key.replace("IFNAME", ifName);
  const rel = k.replaceAll(".", "/");
  const parts = rel.split("/");
  if (parts[0] !== "net" || parts.length < 2 || parts.some((p) => p === "" || p === "..") || k.includes("/")) {
    throw invalid(`invalid net sysctl key: "${key}" (only net.* keys of this namespace are allowed)`);
  }
  return rel;
}

/** `txQLen`: a queue length the kernel takes (u32). */
const txQLenCodec = refine(i64, (n) => (n >= 0 && n <= 0xffffffff ? undefined : `txQLen must be from 0 to 4294967295, not ${n}`));

/** tuning's config as the reference decodes it (`TuningConf`, with its `args.cni` overrides, `IPAMArgs`). */
export const tuningCodec = object({
  ...netConfShape,
  dataDir: str,
  sysctl: record(str),
  mac: str,
  promisc: bool,
  mtu: mtuCodec,
  txQLen: txQLenCodec,
  allmulti: bool,
  runtimeConfig: object({ mac: str }),
  args: object({ cni: object({ sysctl: record(str), mac: str, promisc: bool, mtu: mtuCodec, allmulti: bool, txQLen: txQLenCodec }) }),
});

/**
 * Decode the config with Go's rules (wrong types: code 2) and apply the overrides as the reference
 * does: `args.cni.*` over the config's keys, the MAC from CNI_ARGS, then runtimeConfig, then
 * `args.cni.mac`.
 */
export function parseTuningConf(conf: NetConf, cniArgs: string): TuningConf {
  return settingsOf(decode(tuningCodec, conf, { where: "tuning" }), cniArgs);
}

function settingsOf(d: Decoded<typeof tuningCodec>, cniArgs: string): TuningConf {
  const a = d.args?.cni ?? {};
  const out: TuningConf = { sysctl: { ...d.sysctl, ...a.sysctl }, promisc: a.promisc ?? d.promisc ?? false, dataDir: d.dataDir || DEFAULT_DATA_DIR };
  const allmulti = a.allmulti ?? d.allmulti;
  if (allmulti !== undefined) out.allmulti = allmulti;
  const mtu = a.mtu ?? d.mtu;
  if (mtu) out.mtu = mtu;
  const txq = a.txQLen ?? d.txQLen;
  if (txq !== undefined) out.txQLen = txq;
  let mac = a.mac ?? d.mac ?? "";
  mac = cniArgsMac(cniArgs, "tuning") ?? mac;
  if (d.runtimeConfig?.mac) mac = d.runtimeConfig.mac;
  if (a.mac) mac = a.mac;
  if (mac) {
    if (!MAC_RE.test(mac)) throw invalid(`tuning: invalid MAC address ${JSON.stringify(mac)}`);
    out.mac = mac.toLowerCase();
  }
  return out;
}

/** Refuse sysctls not matched by the allowlist file (one regular expression a line), when it exists. */
export function checkAllowlist(sysctls: readonly string[], file: string): void {
  let text: string;
  try {
    text = readText(file);
  } catch {
    return; // no allowlist: every net.* sysctl is allowed
  }
  const patterns = text.split("\n").map((l) => l.trim()).filter(Boolean).map((p) => new RegExp(p));
  for (const s of sysctls) {
    if (!patterns.some((re) => re.test(s))) {
      throw invalid(`Sysctl ${s} is not allowed. Only the following sysctls are allowed: [${patterns.map((p) => p.source).join(" ")}]`);
    }
  }
}

function backupFile(dataDir: string, args: CmdArgs): string {
  return join(dataDir, `${args.containerId}_${args.ifName}.json`);
}

/** Open something of the pod's namespace; a namespace that cannot be opened is a spec error. */
function inPod<T>(netns: string, open: (netns: string) => T): T {
  try {
    return open(netns);
  } catch (e) {
    throw new CniError(ErrorCode.UnknownContainer, `failed to open netns "${netns}": ${(e as Error).message}`);
  }
}

/** Whether the config changes the link itself (not only sysctls): only then is a netlink socket opened. */
const changesLink = (c: Pick<Saved, "mac" | "mtu" | "promisc" | "allmulti" | "txQLen">) =>
  Boolean(c.mac || c.mtu || c.promisc !== undefined || c.allmulti !== undefined || c.txQLen !== undefined);

function apply(conn: NetlinkConn, link: Link, conf: TuningConf): void {
  if (conf.mac) setLink(conn, link.index, { mac: conf.mac });
  if (conf.promisc) setLink(conn, link.index, { promisc: true });
  if (conf.mtu) setLink(conn, link.index, { mtu: conf.mtu });
  if (conf.allmulti !== undefined) setLink(conn, link.index, { allmulti: conf.allmulti });
  if (conf.txQLen !== undefined) setLink(conn, link.index, { txQueueLen: conf.txQLen });
}

/** Put back what `saved` recorded (best effort per item: a gone interface takes its settings along). */
function restore(ns: NetnsHandle, saved: Saved, args: CmdArgs): void {
  const pod = changesLink(saved) ? NetlinkConn.open({ netns: ns.path }) : undefined;
  try {
    const link = pod && findLink(pod, args.ifName);
    if (pod && link) {
      if (saved.mtu) setLink(pod, link.index, { mtu: saved.mtu });
      if (saved.mac) setLink(pod, link.index, { mac: saved.mac });
      if (saved.promisc !== undefined) setLink(pod, link.index, { promisc: saved.promisc });
      if (saved.allmulti !== undefined) setLink(pod, link.index, { allmulti: saved.allmulti });
      if (saved.txQLen !== undefined) setLink(pod, link.index, { txQueueLen: saved.txQLen });
    }
  } finally {
    pod?.close();
  }
  for (const [rel, value] of Object.entries(saved.sysctl ?? {})) {
    try {
      setSysctl(rel, value, { netns: ns });
    } catch {
      // a per-interface sysctl whose interface is gone
    }
  }
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseTuningConf(args.config, args.args);
  const keys = Object.fromEntries(Object.keys(conf.sysctl).map((k) => [k, sysctlKeyPath(k, args.ifName)]));
  checkAllowlist(Object.keys(conf.sysctl), args.env.CNIKIT_TUNING_ALLOWLIST || DEFAULT_ALLOWLIST);
  if (!args.prevResult) throw invalid("tuning: required prevResult missing (tuning is a chained plugin)");
  const ns = inPod(args.netns, openNetns);
  const linkChanges = changesLink({ ...conf, promisc: conf.promisc || undefined });
  const pod = linkChanges ? NetlinkConn.open({ netns: ns.path }) : undefined;
  const file = backupFile(conf.dataDir, args);
  const saved: Saved = {};
  try {
    const link = pod ? findLink(pod, args.ifName) : null;
    if (linkChanges && !link) throw new CniError(ErrorCode.Internal, `tuning: failed to get "${args.ifName}" in ${args.netns}`);
    // save what is about to change, then change it
    if (link) {
      if (conf.mac) saved.mac = link.mac;
      if (conf.promisc) saved.promisc = link.promisc;
      if (conf.mtu) saved.mtu = link.mtu;
      if (conf.allmulti !== undefined) saved.allmulti = link.allmulti;
      if (conf.txQLen !== undefined) saved.txQLen = link.raw.txQueueLen ?? 0;
    }
    if (Object.keys(keys).length > 0) {
      saved.sysctl = {};
      for (const rel of Object.values(keys)) saved.sysctl[rel] = getSysctl(rel, { netns: ns });
    }
    if (Object.keys(saved).length > 0) {
      makeDir(conf.dataDir, { recursive: true, mode: 0o700 });
      writeText(file, JSON.stringify(saved, null, 1), { mode: 0o600 });
    }
    try {
      for (const [k, rel] of Object.entries(keys)) setSysctl(rel, conf.sysctl[k]!, { netns: ns });
      if (pod && link) apply(pod, link, conf);
    } catch (e) {
      // no half-tuned pod: put back what was changed so far
      restore(ns, saved, args);
      removeFile(file);
      throw e;
    }
  } finally {
    pod?.close();
    ns.close();
  }
  const result = structuredClone(args.prevResult);
  if (conf.mac) for (const i of result.interfaces ?? []) if (i.name === args.ifName) i.mac = conf.mac;
  return result;
}

/**
 * Restore what ADD saved. Only `dataDir` matters (the file is found by container id and ifname):
 * the rest of the config is decoded leniently and not checked, so a sysctl, MTU or MAC that does
 * not decode does not stop the restore. A `dataDir` that does not decode restores nothing (the
 * saved file is not in the default directory).
 */
async function del(args: CmdArgs): Promise<void> {
  const d = pluginConf(args, tuningCodec, "tuning");
  if (d.dataDir === undefined && hasField(tuningCodec, args.config, "dataDir")) {
    args.log("tuning: DEL restores nothing: dataDir does not decode");
    return;
  }
  const file = backupFile(d.dataDir || DEFAULT_DATA_DIR, args);
  let saved: Saved;
  try {
    saved = JSON.parse(readText(file));
  } catch {
    return; // nothing saved: nothing to restore
  }
  let ns: NetnsHandle | undefined;
  try {
    ns = args.netns ? openNetns(args.netns) : undefined;
  } catch {
    ns = undefined; // the namespace is gone, and with it everything tuning changed
  }
  if (ns) {
    try {
      restore(ns, saved, args);
    } finally {
      ns.close();
    }
  }
  removeFile(file);
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parseTuningConf(args.config, args.args);
  if (!args.prevResult) throw invalid("tuning: required prevResult missing");
  const fail = (msg: string) => new CniError(ErrorCode.Internal, `tuning: ${msg}`);
  for (const [k, v] of Object.entries(conf.sysctl)) {
    const cur = getSysctl(sysctlKeyPath(k, args.ifName), { netns: args.netns });
    if (cur !== v) throw fail(`configured value of ${k} is ${v}, current value is ${cur}`);
  }
  const pod = inPod(args.netns, (netns) => NetlinkConn.open({ netns }));
  try {
    const link = findLink(pod, args.ifName);
    if (!link) throw fail(`cannot find container link ${args.ifName}`);
    if (conf.mac && link.mac !== conf.mac) throw fail(`configured MAC of ${args.ifName} is ${conf.mac}, current value is ${link.mac}`);
    if (link.promisc !== conf.promisc) throw fail(`configured promisc of ${args.ifName} is ${conf.promisc}`);
    if (conf.mtu && link.mtu !== conf.mtu) throw fail(`configured MTU of ${args.ifName} is ${conf.mtu}, current value is ${link.mtu}`);
    if (conf.allmulti !== undefined && link.allmulti !== conf.allmulti) throw fail(`configured allmulti of ${args.ifName} is ${conf.allmulti}`);
    if (conf.txQLen !== undefined && (link.raw.txQueueLen ?? 0) !== conf.txQLen) throw fail(`configured txQLen of ${args.ifName} is ${conf.txQLen}, current value is ${link.raw.txQueueLen}`);
  } finally {
    pod.close();
  }
}

/** The tuning plugin. */
export const tuning: Plugin = { add, del, check };
export default tuning;
