/**
 * Attachment records: what cnikit's own plugins write before they change anything on the host, so
 * that whatever dies mid-ADD (the runtime, the plugin, the daemon) what a pod left behind can be
 * found again and released. One record per (network, container id, ifname, plugin type), written
 * at the start of ADD (temp + rename) with the ADD's config, CNI_ARGS, CNI_PATH, the netns path and
 * its identity (nsfs device:inode), the kernel's boot id, the writing process (pid and start time)
and the time; the plugin's result is added
 * once ADD returns. A successful DEL removes it.
 *
 * Records are kept only where a state directory is given (`CNIKIT_STATE_DIR`; the node daemon sets
 * it for every call it serves), under `<dir>/attachments/<network>/`. From them:
 * - every plugin implements GC of its own records (`withRecords`): a record of its type whose
 *   attachment is not in `cni.dev/valid-attachments` gets the plugin's own DEL with the recorded
 *   config (and, when that config has no prevResult, the addresses the attachment's IPAM recorded,
 *   so that masquerading and the like are found without the pod's namespace);
 * - the daemon reconciles attachments nobody knows of any more (src/agent/reconcile.ts).
 */

import { runPlugin } from "../skel/skel.ts";
import type { CmdArgs, Plugin } from "../skel/plugin.ts";
import { CniError, ErrorCode, toCniError } from "../spec/error.ts";
import { parseResult, toCurrentResult, type Result } from "../spec/result.ts";
import { fileStat, listDir, makeDir, readText, removeFile, renameFile, writeText } from "../sys/file.ts";
import { CURRENT_VERSION } from "../spec/version.ts";

/** The environment variable naming the state directory (records are kept only when it is set). */
export const STATE_DIR_ENV = "CNIKIT_STATE_DIR";
/** The environment variable naming the boot id file (tests inject one; default the kernel's). */
export const BOOT_ID_ENV = "CNIKIT_BOOT_ID_FILE";
/** The kernel's boot id: a new one at every boot. */
export const DEFAULT_BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id";

/** One plugin's record of one attachment. */
export interface AttachmentRecord {
  network: string;
  containerId: string;
  ifName: string;
  /** The plugin type that wrote it. */
  type: string;
  /** CNI_NETNS at ADD. */
  netns: string;
  /** The netns's identity at ADD ("dev:ino" of the nsfs file), when it could be read. */
  netnsId?: string;
  /** The kernel's boot id at ADD. */
  bootId: string;
  /**
   * The writer's view of paths (its mount and pid namespaces, "dev:ino|dev:ino"): only a reader
   * with the same view can tell from the netns path that the netns is gone.
   */
  view?: string;
  /**
   * The process that wrote it (its pid in the pid namespace of `view`), with that process's start
   * time (`writerStart`): together they name it unambiguously within one boot, so a reader with
   * the same view can tell that the ADD is over (the process is gone). Absent in older records.
   */
  writerPid?: number;
  /** The writer's start time: clock ticks after boot, field 22 of /proc/<pid>/stat. */
  writerStart?: number;
  /** When ADD started (ms since the epoch). */
  createdMs: number;
  cniArgs?: string;
  cniPath?: string;
  /** The ADD's config (stdin), as received. */
  stdin: string;
  /** The plugin's result (current form) once ADD returned. */
  result?: Result;
}

/** The key of an attachment. */
export interface AttachmentId {
  network: string;
  containerId: string;
  ifName: string;
}

const bootIds = new Map<string, string>();

/** The kernel's boot id (read once per file), from `file` or $CNIKIT_BOOT_ID_FILE or the kernel's. */
export function readBootId(file?: string): string {
  const f = file || DEFAULT_BOOT_ID_FILE;
  let id = bootIds.get(f);
  if (id === undefined) {
    try {
      id = readText(f).trim();
    } catch {
      id = "";
    }
    // an injected file (tests) may change while a process runs: read it every time
    if (f === DEFAULT_BOOT_ID_FILE) bootIds.set(f, id);
  }
  return id;
}

/** The identity of a netns file ("dev:ino"), or undefined when it is gone. */
export function netnsIdentity(path: string): string | undefined {
  if (!path) return undefined;
  try {
    const st = fileStat(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** This process's view of paths: its mount and pid namespaces. */
export function pathView(): string {
  return `${netnsIdentity("/proc/self/ns/mnt") ?? "?"}|${netnsIdentity("/proc/self/ns/pid") ?? "?"}`;
}

/**
 * A process's start time (clock ticks after boot, field 22 of `/proc/<pid>/stat`), or undefined
 * when there is no such process (or its stat cannot be read).
 */
export function processStart(pid: number | "self"): number | undefined {
  const fields = procStat(pid);
  return fields ? Number(fields[22]) : undefined;
}

/** The fields of /proc/<pid>/stat, numbered as proc(5) does (index 1 is the pid). */
function procStat(pid: number | "self"): string[] | undefined {
  let text: string;
  try {
    text = readText(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // the command name (field 2) is in parentheses and may hold spaces and parentheses itself
  const close = text.lastIndexOf(")");
  const open = text.indexOf("(");
  if (open < 0 || close < open) return undefined;
  const fields = ["", text.slice(0, open).trim(), text.slice(open + 1, close), ...text.slice(close + 1).trim().split(" ")];
  return fields.length > 22 && /^\d+$/.test(fields[22]!) ? fields : undefined;
}

let self: { pid: number; start: number } | null | undefined;

/**
 * This process as a record names its writer (`writerPid`, `writerStart`), or undefined when
 * /proc is not this process's pid namespace's (a pid from it would mean another process there).
 */
export function selfWriter(): { pid: number; start: number } | undefined {
  if (self === undefined) {
    const fields = procStat("self");
    self = fields && Number(fields[1]) === process.pid ? { pid: process.pid, start: Number(fields[22]) } : null;
  }
  return self ?? undefined;
}

/** Whether the recorded netns still exists (the same namespace, not only the same path). */
export function netnsAlive(rec: Pick<AttachmentRecord, "netns" | "netnsId">): boolean {
  const now = netnsIdentity(rec.netns);
  if (now === undefined) return false;
  return rec.netnsId === undefined || rec.netnsId === now;
}

function hex(s: string): string {
  return Buffer.from(s, "utf8").toString("hex");
}

/** The directory of a network's records. */
export function networkDir(stateDir: string, network: string): string {
  return `${stateDir}/attachments/${network}`;
}

/** The file of one record. */
export function recordFile(stateDir: string, id: AttachmentId, type: string): string {
  return `${networkDir(stateDir, id.network)}/${id.containerId}.${hex(id.ifName)}.${type}.json`;
}

let seq = 0;

/** Write a record atomically (temp + rename), directories 0700, file 0600 (configs may hold secrets). */
export function writeRecord(stateDir: string, rec: AttachmentRecord): void {
  const dir = networkDir(stateDir, rec.network);
  makeDir(dir, { recursive: true, mode: 0o700 });
  const file = recordFile(stateDir, rec, rec.type);
  const tmp = `${file}.tmp-${process.pid}-${++seq}`;
  writeText(tmp, JSON.stringify(rec), { mode: 0o600 });
  renameFile(tmp, file);
}

/** Remove a record; false when there was none. */
export function removeRecord(stateDir: string, id: AttachmentId, type: string): boolean {
  try {
    return removeFile(recordFile(stateDir, id, type));
  } catch {
    return false;
  }
}

/** The networks that have records. */
export function listNetworks(stateDir: string): string[] {
  try {
    return listDir(`${stateDir}/attachments`);
  } catch {
    return [];
  }
}

/** Every record of a network (unreadable or half-written files are skipped; stale temp files removed). */
export function listRecords(stateDir: string, network: string): AttachmentRecord[] {
  const dir = networkDir(stateDir, network);
  let names: string[];
  try {
    names = listDir(dir);
  } catch {
    return [];
  }
  const out: AttachmentRecord[] = [];
  for (const n of names) {
    if (n.includes(".tmp-")) {
      // a writer that died between write and rename (its pid is gone): removed
      try {
        const pid = Number(n.slice(n.lastIndexOf(".tmp-") + 5).split("-")[0]);
        if (pid > 0 && !pidAlive(pid)) removeFile(`${dir}/${n}`);
      } catch {
        // leave it
      }
      continue;
    }
    if (!n.endsWith(".json")) continue;
    try {
      const rec = JSON.parse(readText(`${dir}/${n}`)) as AttachmentRecord;
      if (rec && typeof rec.containerId === "string" && typeof rec.type === "string") out.push(rec);
    } catch {
      // unreadable: skipped
    }
  }
  return out;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM";
  }
}

/** Group records by attachment (network, container id, ifname). */
export function groupByAttachment(recs: readonly AttachmentRecord[]): AttachmentRecord[][] {
  const groups = new Map<string, AttachmentRecord[]>();
  for (const r of recs) {
    const k = `${r.network}\u0000${r.containerId}\u0000${r.ifName}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(r);
  }
  return [...groups.values()];
}

/**
 * The config a release (DEL from a record) sends: the ADD's config, and when it has no prevResult,
 * the result the attachment's IPAM (or any of its plugins) recorded, so that a plugin that looks
 * for the pod's addresses in prevResult (ipMasq) finds them without the pod's namespace.
 */
export function releaseStdin(rec: AttachmentRecord, siblings: readonly AttachmentRecord[]): string {
  let conf: Record<string, unknown>;
  try {
    conf = JSON.parse(rec.stdin) as Record<string, unknown>;
  } catch {
    return rec.stdin;
  }
  const hasPrev = Object.keys(conf).some((k) => k.toLowerCase() === "prevresult" && conf[k] != null);
  if (hasPrev) return rec.stdin;
  const own = rec.result?.ips?.length ? rec.result : undefined;
  const other = siblings.filter((s) => s !== rec && s.result?.ips?.length).sort((a, b) => b.createdMs - a.createdMs)[0]?.result;
  const prev = own ?? other;
  if (!prev) return rec.stdin;
  return JSON.stringify({ ...conf, prevResult: { ...prev, cniVersion: prev.cniVersion || CURRENT_VERSION } });
}

/** The environment of a release (a DEL from a record): the netns only while it is the recorded one. */
export function releaseEnv(rec: AttachmentRecord, base: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && !k.startsWith("CNI_")) env[k] = v;
  env.CNI_COMMAND = "DEL";
  env.CNI_CONTAINERID = rec.containerId;
  env.CNI_IFNAME = rec.ifName;
  if (rec.cniArgs) env.CNI_ARGS = rec.cniArgs;
  const path = rec.cniPath || base.CNI_PATH;
  if (path) env.CNI_PATH = path;
  if (netnsAlive(rec)) env.CNI_NETNS = rec.netns;
  return env;
}

function writerFields(): Pick<AttachmentRecord, "writerPid" | "writerStart"> {
  const w = selfWriter();
  return w ? { writerPid: w.pid, writerStart: w.start } : {};
}

const RECORDED = Symbol("cnikit.records");

/** The prevResult a DEL from this plugin's record would carry (current form), if any. */
function recordedPrevResult(dir: string, id: AttachmentId, type: string): Result | undefined {
  const recs = listRecords(dir, id.network).filter((r) => r.containerId === id.containerId && r.ifName === id.ifName);
  const mine = recs.find((r) => r.type === type);
  if (!mine) return undefined;
  try {
    const conf = JSON.parse(releaseStdin(mine, recs)) as Record<string, unknown>;
    const key = Object.keys(conf).find((k) => k.toLowerCase() === "prevresult");
    const raw = key ? (conf[key] as Record<string, unknown> | null) : null;
    if (!raw || typeof raw !== "object") return undefined;
    const version = typeof raw.cniVersion === "string" && raw.cniVersion ? raw.cniVersion : String(conf.cniVersion ?? CURRENT_VERSION);
    return toCurrentResult(parseResult({ ...raw, cniVersion: version }));
  } catch {
    return undefined; // a prevResult that does not parse: DEL goes on without it
  }
}

/**
 * Wrap a built-in plugin so that its ADD writes a record first (when a state directory is set),
 * its DEL removes the record once it succeeded, and its GC also releases, from its own records,
 * every attachment of the network that is not in the valid list.
 */
export function withRecords(type: string, plugin: Plugin): Plugin {
  if ((plugin as { [RECORDED]?: boolean })[RECORDED]) return plugin; // wrapped already
  const dirOf = (args: CmdArgs) => args.env[STATE_DIR_ENV] || "";
  const idOf = (args: CmdArgs): AttachmentId => ({ network: String(args.config.name ?? ""), containerId: args.containerId, ifName: args.ifName });
  const wrapped: Plugin & { [RECORDED]: boolean } = {
    ...plugin,
    [RECORDED]: true,
    async add(args) {
      const dir = dirOf(args);
      if (!dir) return plugin.add(args);
      const id = idOf(args);
      const netnsId = netnsIdentity(args.netns);
      const rec: AttachmentRecord = {
        ...id,
        type,
        netns: args.netns,
        ...(netnsId ? { netnsId } : {}),
        bootId: readBootId(args.env[BOOT_ID_ENV]),
        view: pathView(),
        ...writerFields(),
        createdMs: Date.now(),
        ...(args.args ? { cniArgs: args.args } : {}),
        ...(args.path ? { cniPath: args.path } : {}),
        stdin: args.stdinData,
      };
      try {
        writeRecord(dir, rec);
      } catch (e) {
        throw new CniError(toCniError(e).code, `cnikit: cannot record the attachment in ${dir}: ${(e as Error).message}`);
      }
      const result = await plugin.add(args);
      try {
        writeRecord(dir, { ...rec, result: { ...result, cniVersion: result.cniVersion || CURRENT_VERSION } });
      } catch (e) {
        args.log(`cnikit: could not add the result to the attachment's record: ${(e as Error).message}`);
      }
      return result;
    },
    async del(args) {
      const dir = dirOf(args);
      // a DEL without prevResult (no cached result: the runtime died mid-ADD, or rolls back a
      // failed ADD) gets the one recorded at ADD, or the attachment's recorded addresses, so that
      // what the plugin made from them (nftables elements by address) is found
      if (dir && !args.prevResult) {
        const prev = recordedPrevResult(dir, idOf(args), type);
        if (prev) args = { ...args, prevResult: prev };
      }
      await plugin.del(args);
      if (dir) removeRecord(dir, idOf(args), type);
    },
    async gc(args) {
      const errors: string[] = [];
      try {
        await plugin.gc?.(args);
      } catch (e) {
        errors.push(toCniError(e).message);
      }
      const dir = dirOf(args);
      const valid = args.validAttachments;
      if (dir && valid) {
        const keep = new Set(valid.map((a) => `${a.containerID}\u0000${a.ifname}`));
        const all = listRecords(dir, String(args.config.name ?? ""));
        for (const rec of all.filter((r) => r.type === type && !keep.has(`${r.containerId}\u0000${r.ifName}`))) {
          const siblings = all.filter((r) => r.containerId === rec.containerId && r.ifName === rec.ifName);
          let out = "";
          const code = await runPlugin(wrapped, {
            env: releaseEnv(rec, args.env),
            readStdin: () => releaseStdin(rec, siblings),
            writeStdout: (s) => {
              out += s;
            },
            writeStderr: (s) => args.log(s),
          });
          if (code === 0) args.log(`${type}: GC released ${rec.containerId} ${rec.ifName} (recorded at ADD, not in the valid attachments)`);
          else errors.push(`release of ${rec.containerId} ${rec.ifName}: ${out.trim()}`);
        }
      }
      if (errors.length > 0) throw new CniError(ErrorCode.TryAgainLater, `${type}: GC: ${errors.join("; ")}`);
    },
  };
  return wrapped;
}
