/**
 * The daemon's reconcile of crash leaks: at start, then periodically and soon after a netns file
 * of a recorded attachment goes (src/agent/netns-watch.ts), it reads the attachment records
 * cnikit's plugins write at the start of ADD (src/invoke/records.ts) and releases an
 * attachment completely (each recorded plugin's DEL with the recorded config, newest first) when
 * - the kernel's boot id differs from the one recorded at ADD (the node rebooted: the pod is gone
 *   whatever its netns path now holds, and DEL is sent without a netns), or
 * - no runtime knows of it (no entry in the runtime's result cache), its netns no longer exists,
 *   and no ADD of it can still be running: every record's writer is provably finished (another
 *   process of this pid namespace that is gone, its pid free or taken by a process with another
 *   start time; or this daemon with no request for that container id and ifname in flight), or
 *   else, for records that cannot tell (older ones, written elsewhere), it is older than the
 *   longest ADD deadline,
 * whatever the list's spec version. An attachment whose netns still exists is never touched, nor
 * one recorded in another mount or pid namespace (its netns path cannot be checked from here).
 * Every release is logged and counted (`metricsText`).
 */

import { existsSync } from "node:fs";
import { cacheFile } from "../libcni/cache.ts";
import {
  BOOT_ID_ENV,
  STATE_DIR_ENV,
  groupByAttachment,
  listNetworks,
  listRecords,
  netnsAlive,
  pathView,
  processStart,
  readBootId,
  releaseEnv,
  releaseStdin,
  removeRecord,
  selfWriter,
  type AttachmentId,
  type AttachmentRecord,
} from "../invoke/records.ts";
import { NetnsWatch } from "./netns-watch.ts";
import type { CniReply, CniRequest } from "./protocol.ts";

/** How the reconciler is set up. */
export interface ReconcileOptions {
  /** Where the records are (`<stateDir>/attachments`). */
  stateDir: string;
  /** The runtime's result cache (`<cacheDir>/results`). */
  cacheDir: string;
  /**
   * An attachment younger than this is never released unless the node rebooted or its records'
   * writers are provably finished (the longest ADD deadline).
   */
  graceMs: number;
  /**
   * Whether this process has a request for that attachment in flight (the daemon's, keyed as it
   * serializes calls: container id and ifname). Without it, records this process wrote wait out
   * `graceMs`.
   */
  busy?: (id: AttachmentId) => boolean;
  /**
   * Time between runs (ms); 0: only at start. When periodic, a pass also runs ~250 ms after a
   * netns file goes from a directory that recorded netns paths are in (`NetnsWatch`).
   */
  intervalMs: number;
  /** The boot id file (default the kernel's; tests inject one). */
  bootIdFile?: string;
  /** Attachments released at once (default 8). */
  concurrency?: number;
  /** Runs one DEL (the daemon's serve: same per-attachment serialization as the runtime's calls). */
  release: (req: CniRequest) => Promise<CniReply>;
  log: (entry: Record<string, unknown>) => void;
}

/** Why an attachment was released. */
export type ReleaseReason = "reboot" | "netns-gone";

/** The daemon's reconcile loop. */
export class Reconciler {
  /** Attachments released, by reason. */
  readonly released: Record<ReleaseReason, number> = { reboot: 0, "netns-gone": 0 };
  /** Releases where a plugin's DEL failed (retried on the next run). */
  failures = 0;
  /** Completed runs. */
  runs = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private watch: NetnsWatch | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly view = pathView();
  /** This process as records name their writer (undefined: /proc is another pid namespace's). */
  private readonly self = selfWriter();

  constructor(private readonly opts: ReconcileOptions) {}

  /** Run once now (resolves when done), then every `intervalMs` and soon after a netns file goes. */
  async start(): Promise<void> {
    if (this.opts.intervalMs > 0) this.watch = new NetnsWatch(() => void this.runAfter());
    await this.runOnce();
    if (this.opts.intervalMs > 0 && !this.stopped) {
      this.timer = setInterval(() => void this.runOnce(), this.opts.intervalMs);
    }
  }

  /** The directories watched for netns files going (empty when not periodic). */
  get watching(): string[] {
    return this.watch?.directories ?? [];
  }

  /** Stop the periodic runs (a run in progress finishes). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.watch?.close();
    await this.running;
  }

  /** A pass that starts after the one running, if any (that one may have read the records already). */
  private async runAfter(): Promise<void> {
    await this.running;
    if (!this.stopped) await this.runOnce();
  }

  /** One pass over every record (one at a time: a run still going is joined, not doubled). */
  runOnce(): Promise<void> {
    this.running ??= this.pass()
      .catch((e) => this.opts.log({ level: "error", msg: "reconcile failed", error: (e as Error).message }))
      .finally(() => {
        this.running = undefined;
        this.runs++;
      });
    return this.running;
  }

  /** Why this attachment is to be released now, or undefined to leave it. */
  verdict(group: readonly AttachmentRecord[], bootId: string, now: number): ReleaseReason | undefined {
    if (bootId && group.some((r) => r.bootId && r.bootId !== bootId)) return "reboot";
    // written where paths mean something else (another mount or pid namespace): whether its
    // netns is gone cannot be told from here, so it is left alone
    if (group.some((r) => r.view !== undefined && r.view !== this.view)) return undefined;
    if (group.some((r) => netnsAlive(r))) return undefined;
    const r0 = group[0]!;
    if (existsSync(cacheFile(this.opts.cacheDir, { network: r0.network, containerId: r0.containerId, ifName: r0.ifName }))) return undefined;
    if (group.every((r) => this.writerFinished(r))) return "netns-gone"; // no ADD to race: no grace
    const newest = Math.max(...group.map((r) => r.createdMs));
    if (now - newest < this.opts.graceMs) return undefined;
    return "netns-gone";
  }

  /**
   * Whether the ADD that wrote `rec` provably ended: its writer is this process with no request
   * for the attachment in flight, or another process of this view that is gone (no such pid, or
   * one started at another time). False when the record does not say (older records) or its pids
   * mean nothing here.
   */
  private writerFinished(rec: AttachmentRecord): boolean {
    if (rec.writerPid === undefined || rec.writerStart === undefined || rec.view !== this.view || this.view.includes("?") || !this.self) return false;
    if (rec.writerPid === this.self.pid && rec.writerStart === this.self.start) return this.opts.busy !== undefined && !this.opts.busy(rec);
    return processStart(rec.writerPid) !== rec.writerStart;
  }

  private async pass(): Promise<void> {
    const bootId = readBootId(this.opts.bootIdFile);
    const todo: { group: AttachmentRecord[]; reason: ReleaseReason }[] = [];
    const netnsPaths = new Set<string>();
    for (const network of listNetworks(this.opts.stateDir)) {
      for (const group of groupByAttachment(listRecords(this.opts.stateDir, network))) {
        const reason = this.verdict(group, bootId, Date.now());
        if (reason) todo.push({ group, reason });
        else for (const r of group) if (r.view === undefined || r.view === this.view) netnsPaths.add(r.netns);
      }
    }
    this.watch?.add(netnsPaths);
    // several attachments at once (the plugins of one attachment in order)
    let next = 0;
    const width = Math.max(1, this.opts.concurrency ?? 8);
    await Promise.all(Array.from({ length: Math.min(width, todo.length) }, async () => {
      while (next < todo.length && !this.stopped) {
        const t = todo[next++]!;
        await this.releaseAttachment(t.group, t.reason);
      }
    }));
  }

  private async releaseAttachment(group: readonly AttachmentRecord[], reason: ReleaseReason): Promise<void> {
    const r0 = group[0]!;
    const failed: string[] = [];
    const base: Record<string, string> = { [STATE_DIR_ENV]: this.opts.stateDir };
    if (this.opts.bootIdFile) base[BOOT_ID_ENV] = this.opts.bootIdFile;
    // newest first: the meta plugins before the main plugin, the IPAM last
    for (const rec of [...group].sort((a, b) => b.createdMs - a.createdMs)) {
      const env = releaseEnv(rec, base);
      if (reason === "reboot") delete env.CNI_NETNS; // whatever is at that path now is another pod's
      const reply = await this.opts.release({ type: rec.type, env, stdin: new TextEncoder().encode(releaseStdin(rec, group)) });
      if (reply.exitCode === 0) removeRecord(this.opts.stateDir, rec, rec.type);
      else failed.push(`${rec.type}: ${new TextDecoder().decode(reply.stdout).trim().slice(0, 500)}`);
    }
    const entry = { network: r0.network, container: r0.containerId, ifname: r0.ifName, reason, plugins: group.map((r) => r.type) };
    if (failed.length > 0) {
      this.failures++;
      this.opts.log({ level: "warn", msg: "reconcile: release failed, retried on the next run", ...entry, errors: failed });
      return;
    }
    this.released[reason]++;
    this.opts.log({ level: "info", msg: "reconcile: released attachment", ...entry });
  }

  /** Counters in the text exposition format. */
  metricsText(): string {
    return [
      "# HELP cnikit_reconcile_released_total Attachments the daemon released because their pod is gone (netns gone and no runtime knows of them, or recorded before a reboot).",
      "# TYPE cnikit_reconcile_released_total counter",
      `cnikit_reconcile_released_total{reason="netns-gone"} ${this.released["netns-gone"]}`,
      `cnikit_reconcile_released_total{reason="reboot"} ${this.released.reboot}`,
      "# HELP cnikit_reconcile_failures_total Releases where a plugin's DEL failed (retried on the next run).",
      "# TYPE cnikit_reconcile_failures_total counter",
      `cnikit_reconcile_failures_total ${this.failures}`,
      "# HELP cnikit_reconcile_runs_total Reconcile passes over the attachment records.",
      "# TYPE cnikit_reconcile_runs_total counter",
      `cnikit_reconcile_runs_total ${this.runs}`,
      "",
    ].join("\n");
  }
}
