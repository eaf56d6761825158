/**
 * The daemon's CNI server: takes plugin calls from `cnikit-shim` on a root-only unix socket and
 * runs built-in types in-process through the skel dispatcher (env, stdin and stdout injected);
 * other types are executed as processes. Calls for the same (container id, ifname) run one after
 * the other, the rest concurrently up to a bound; each has a deadline (spec error 11 when it
 * passes); a malformed, oversized or other-version request is answered on its own connection and
 * disturbs nothing else. Plugins enter network namespaces only synchronously, and nothing here
 * runs JS inside one: timers and socket callbacks run on the event loop, between plugin steps.
 */

import { chmodSync, lstatSync, mkdirSync, statSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { Socket, TCPSocketListener, UnixSocketListener } from "bun";
import { builtinLoader, isShimFile, registerBuiltins, setShimInProcess } from "../invoke/builtin.ts";
import { findInPath, splitPath } from "../invoke/find.ts";
import { BOOT_ID_ENV, STATE_DIR_ENV } from "../invoke/records.ts";
import { NftConn } from "../nft/conn.ts";
import { useNft } from "../nft/handle.ts";
import { runPlugin } from "../skel/skel.ts";
import type { Plugin } from "../skel/plugin.ts";
import { CniError, ErrorCode, toCniError } from "../spec/error.ts";
import { CURRENT_VERSION } from "../spec/version.ts";
import { Counter } from "./counter.ts";
import { Histogram } from "./histogram.ts";
import { BatchRemover } from "./link-remover.ts";
import { useLinkRemover } from "../net/removal.ts";
import { useHostRtnetlink } from "../net/rtnetlink.ts";
import { NetlinkConn } from "../netlink/conn.ts";
import { Reconciler } from "./reconcile.ts";
import {
  decodeRequestBody,
  encodeReply,
  encodeDecline,
  FrameReader,
  MAX_REQUEST_BODY,
  MAX_STDIN,
  PROTOCOL_VERSION,
  SHIM_NAMESPACES,
  type CniReply,
  type CniRequest,
} from "./protocol.ts";

/** How the server is set up. */
export interface CniServerOptions {
  /** The unix socket (its directory is made 0700 when missing; the socket is 0600). */
  socketPath: string;
  /** Requests running at once (default 64); the rest wait. */
  maxConcurrent?: number;
  /** Deadline of a request from its arrival, in milliseconds (default 120 s). */
  timeoutMs?: number;
  /** Structured log sink (default: JSON lines on stderr). */
  log?: (entry: Record<string, unknown>) => void;
  /**
   * Attachment records and their reconcile (src/agent/reconcile.ts): the built-in plugins it runs
   * record each ADD under `stateDir`; at start (before listening) and every `intervalMs` the
   * attachments whose pod is gone are released. None: no records, no reconcile.
   */
  reconcile?: { stateDir: string; cacheDir: string; intervalMs: number; bootIdFile?: string };
  /**
   * Mount namespaces (paths of their ns files, e.g. `/proc/1/ns/mnt` with the host's PIDs) whose
   * shims are served besides those of the daemon's own: the node's, when the daemon runs in a
   * container that mounts every path the CNI configs use (netns, CNI_PATH, state and data
   * directories) at the same place as the host, as deploy/kubernetes/cnikit.yaml does.
   */
  acceptMountNs?: string[];
}

/**
 * Built-in types whose plugin holds a file lock across an await (cluster-ipam: its node cache
 * while it talks to etcd). In one process a second such call would block the only thread in
 * flock(2) for good, so the daemon runs them one at a time.
 */
const ONE_AT_A_TIME = ["cluster-ipam"];

/** The environment variable that marks calls made on behalf of a request being served. */
export const REQUEST_ENV = "CNIKIT_DAEMON_REQUEST";

const enc = new TextEncoder();
const dec = new TextDecoder();
const VERBS = new Set(["ADD", "CHECK", "DEL", "GC", "STATUS", "VERSION"]);
/** How long `stop` keeps taking connections a shim made before the socket went (the listen backlog). */
const BACKLOG_DRAIN_MS = 20;

interface Conn {
  reader: FrameReader;
  /** Bytes still to write. */
  pending: Uint8Array | undefined;
  answered: boolean;
  closed: boolean;
}

/** The config's cniVersion, or the current one, for errors the server itself reports. */
function versionOf(stdin: Uint8Array | string): string {
  try {
    const v = (JSON.parse(typeof stdin === "string" ? stdin : dec.decode(stdin)) as { cniVersion?: unknown }).cniVersion;
    return typeof v === "string" && v ? v : CURRENT_VERSION;
  } catch {
    return CURRENT_VERSION;
  }
}

/** A reply carrying a spec error, as a plugin prints it. */
export function errorReply(e: unknown, cniVersion = CURRENT_VERSION): CniReply {
  const err = toCniError(e);
  err.cniVersion = cniVersion;
  return { exitCode: 1, stdout: enc.encode(`${JSON.stringify(err.toJSON(), null, 4)}\n`) };
}

/** A reply's code for the requests counter: "0", the spec error's code, or "exit". */
export function replyCode(reply: CniReply): string {
  if (reply.exitCode === 0) return "0";
  try {
    const code = (JSON.parse(dec.decode(reply.stdout)) as { code?: unknown }).code;
    if (typeof code === "number" && Number.isInteger(code) && code >= 0) return String(code);
  } catch {
    // not a spec error
  }
  return "exit";
}

/** The key calls are serialized by (and `busy` asks about): container id and ifname. */
function serialKey(containerId: string, ifName: string): string {
  return `${containerId}\u0000${ifName}`;
}

/** A mutual exclusion in promise form. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

/** Wrap a plugin so that its calls run one at a time. */
function oneAtATime(plugin: Plugin): Plugin {
  const m = new Mutex();
  const wrap = <A extends unknown[], R>(f: ((...a: A) => R) | undefined) => (f ? (...a: A) => m.run(async () => f.apply(plugin, a)) : undefined);
  return {
    ...plugin,
    add: wrap(plugin.add)!,
    del: wrap(plugin.del)!,
    ...(plugin.check ? { check: wrap(plugin.check) } : {}),
    ...(plugin.gc ? { gc: wrap(plugin.gc) } : {}),
    ...(plugin.status ? { status: wrap(plugin.status) } : {}),
  } as Plugin;
}

/** The CNI server of `cnikit agent`. */
export class CniServer {
  /** Latency of each call, by plugin type and verb. */
  readonly latency = new Histogram("cnikit_cni_request_duration_seconds", "Time to answer a CNI call through the daemon, by plugin type and verb.", ["plugin", "verb"]);
  /**
   * Calls answered, by plugin type, verb and result: code "0" for success, else the spec error's
   * code ("11" for a missed deadline), "exit" for a failure without a spec error on stdout.
   */
  readonly requests = new Counter("cnikit_cni_requests_total", "CNI calls answered through the daemon, by plugin type, verb and code (0: success, else the CNI error code; exit: a failure without a spec error).", ["plugin", "verb", "code"]);
  /** Calls answered with spec error 11 because their deadline passed. */
  deadlineMisses = 0;
  /** Requests refused before running (malformed, oversized, other protocol version). */
  refused = 0;
  /** Calls declined because the shim runs in another network or mount namespace. */
  declined = 0;
  /** The daemon's network and mount namespaces (inodes, by request entry), read at start. */
  private readonly namespaces = new Map<string, string>();
  /** Other mount namespaces (inodes) whose shims are served (`acceptMountNs`), read at start. */
  private readonly otherMountNs = new Set<string>();
  private listener: UnixSocketListener<Conn> | TCPSocketListener<Conn> | undefined;
  private listening = false;
  private stopping = false;
  private active = 0;
  private readonly waiters: (() => void)[] = [];
  private readonly keys = new Map<string, Promise<void>>();
  /** Replies not yet handed to their connection. */
  private readonly replies = new Set<Promise<void>>();
  /** Connections with reply bytes still to write. */
  private readonly writing = new Set<Socket<Conn>>();
  /** Connections taken whose reply has not been decided yet (their request may still be arriving). */
  private readonly unanswered = new Set<Socket<Conn>>();
  /** Work still running (also after its deadline passed), by request id. */
  private readonly running = new Map<string, Promise<unknown>>();
  /** The ids of the DEL calls among them. */
  private readonly removing = new Set<string>();
  private seq = 0;
  /** Releases attachments whose pod is gone (with `reconcile`). */
  reconciler: Reconciler | undefined;
  private socketIno: number | undefined;
  private readonly log: (e: Record<string, unknown>) => void;
  private readonly maxConcurrent: number;
  private readonly timeoutMs: number;
  /** The daemon's environment without CNI_* and CNIKIT_* (a request brings its own). */
  private readonly baseEnv: Record<string, string> = {};
  /** The nftables connection the in-process plugins share (kept open: warm), and its release. */
  private nft: { conn: NftConn; release: () => void } | undefined;
  /** The rtnetlink connection to the daemon's namespace the in-process plugins share, and its release. */
  private rtnl: { conn: NetlinkConn; release: () => void } | undefined;
  /** Removes the veths that in-process DELs cut off, in batches (src/net/removal.ts), and its release. */
  private remover: { batch: BatchRemover; release: () => void } | undefined;

  constructor(private readonly opts: CniServerOptions) {
    this.log = opts.log ?? ((e) => process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), ...e })}\n`));
    this.maxConcurrent = opts.maxConcurrent ?? 64;
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("CNI_") && !k.startsWith("CNIKIT_")) this.baseEnv[k] = v;
  }

  /** Whether the server takes requests (false while starting and once stopping). */
  get ready(): boolean {
    return this.listening && !this.stopping;
  }

  /** Requests being worked on (including those whose deadline passed). */
  get inFlight(): number {
    return this.running.size;
  }

  /**
   * DEL calls not finished yet (being worked on, waiting for their turn, or still running after
   * their deadline passed), plus the veths answered DELs left to the batched remover (gone within
   * ~100 ms).
   */
  get pendingRemovals(): number {
    return this.removing.size + (this.remover?.batch.pending ?? 0);
  }

  /** Listen on the socket: its directory made 0700 when missing, a stale socket replaced, a live one refused. */
  async start(): Promise<void> {
    const path = this.opts.socketPath;
    const dir = dirname(path);
    try {
      lstatSync(dir);
    } catch {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700); // mkdir's mode is masked by the umask
    }
    let existing: ReturnType<typeof lstatSync> | undefined;
    try {
      existing = lstatSync(path);
    } catch {
      existing = undefined;
    }
    if (existing) {
      if (!existing.isSocket()) throw new Error(`--cni-socket ${path}: exists and is not a socket; not replacing it`);
      if (await isLive(path)) throw new Error(`--cni-socket ${path}: another daemon is serving it`);
      unlinkSync(path); // stale: left by a daemon that died
    }
    // the daemon serves built-in types in-process, also when a plugin delegates through a shim
    setShimInProcess(true);
    this.keepHandlesOpen();
    if (!this.remover) {
      const batch = new BatchRemover(this.log);
      batch.flush(); // what a daemon that died left waiting
      this.remover = { batch, release: useLinkRemover(batch) };
    }
    for (const type of ONE_AT_A_TIME) {
      const load = builtinLoader(type);
      if (!load) continue;
      let wrapped: Promise<Plugin> | undefined;
      registerBuiltins({ [type]: () => (wrapped ??= load().then(oneAtATime)) });
    }
    const rc = this.opts.reconcile;
    if (rc) {
      // crash leaks (and, after a reboot, every older attachment) are released before the first call
      // records this daemon wrote are released at once when no call for them is queued or running
      const busy = (id: { containerId: string; ifName: string }) => this.keys.has(serialKey(id.containerId, id.ifName));
      this.reconciler = new Reconciler({ ...rc, graceMs: this.timeoutMs, busy, release: (req) => this.serve(req), log: this.log });
      await this.reconciler.start();
    }
    const old = process.umask(0o177); // the socket is born 0600: no window where others may connect
    try {
      this.listener = Bun.listen<Conn>({
        unix: path,
        socket: {
          open: (s) => {
            s.data = { reader: new FrameReader(MAX_REQUEST_BODY), pending: undefined, answered: false, closed: false };
            this.unanswered.add(s);
            s.timeout(Math.ceil(this.timeoutMs / 1000)); // a client that sends nothing is dropped
          },
          data: (s, chunk) => this.onData(s, chunk),
          drain: (s) => this.flush(s),
          timeout: (s) => {
            if (!s.data.answered) s.end();
          },
          close: (s) => {
            s.data.closed = true;
            this.writing.delete(s);
            this.unanswered.delete(s);
          },
          error: (s) => {
            s.data.closed = true;
            this.writing.delete(s);
            this.unanswered.delete(s);
          },
        },
      });
    } finally {
      process.umask(old);
    }
    chmodSync(path, 0o600);
    this.socketIno = lstatSync(path).ino;
    for (const [entry, ns] of SHIM_NAMESPACES) this.namespaces.set(entry, String(statSync(`/proc/self/ns/${ns}`).ino));
    for (const p of this.opts.acceptMountNs ?? []) this.otherMountNs.add(String(statSync(p).ino));
    this.listening = true;
    this.log({ level: "info", msg: "serving CNI", socket: path, protocol: PROTOCOL_VERSION, maxConcurrent: this.maxConcurrent, timeoutMs: this.timeoutMs });
  }

  /**
   * Stop taking requests (`ready` turns false at once) and let those already made finish (at most
   * `graceMs`). The socket (if still ours) goes first, so that a shim from then on finds no daemon
   * and runs the standalone binary; a shim that connected before is answered, also when its
   * request was still on its way or its connection still in the listen backlog (closing on it
   * would fail its ADD with "the daemon stopped during ADD").
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const end = Date.now() + graceMs;
    try {
      if (this.socketIno !== undefined && lstatSync(this.opts.socketPath).ino === this.socketIno) unlinkSync(this.opts.socketPath);
    } catch {
      // already gone
    }
    await this.reconciler?.stop();
    // connections still in the backlog are taken while the loop turns; none can join them now
    await Bun.sleep(BACKLOG_DRAIN_MS);
    this.listener?.stop(false);
    // calls in flight finish and their replies go out; then the connections left are closed
    const busy = () => this.running.size > 0 || this.replies.size > 0 || this.writing.size > 0 || this.unanswered.size > 0;
    while (busy() && Date.now() < end) await Bun.sleep(5);
    this.listener?.stop(true);
    this.listening = false;
    this.nft?.release();
    this.nft?.conn.close();
    this.nft = undefined;
    this.rtnl?.release();
    this.rtnl?.conn.close();
    this.rtnl = undefined;
    this.remover?.release();
    this.remover?.batch.flush();
    this.remover = undefined;
  }

  /**
   * One nftables connection and one rtnetlink connection for every in-process plugin (and the
   * agent), opened here in the daemon's own network namespace and kept open; without them, each
   * call opens its own.
   */
  private keepHandlesOpen(): void {
    if (!this.rtnl) {
      const conn = NetlinkConn.open();
      this.rtnl = { conn, release: useHostRtnetlink(conn) };
    }
    if (this.nft) return;
    try {
      const conn = NftConn.open();
      this.nft = { conn, release: useNft(conn) };
    } catch (e) {
      this.log({ level: "warn", msg: "no shared nftables connection: each call opens its own", error: (e as Error).message });
    }
  }

  /** The server's metrics in the text exposition format. */
  metricsText(): string {
    return [
      this.latency.render(),
      this.requests.render(),
      "# HELP cnikit_cni_requests_in_flight CNI calls being worked on.",
      "# TYPE cnikit_cni_requests_in_flight gauge",
      `cnikit_cni_requests_in_flight ${this.running.size}`,
      "# HELP cnikit_cni_deadline_exceeded_total CNI calls answered with error 11 because their deadline passed.",
      "# TYPE cnikit_cni_deadline_exceeded_total counter",
      `cnikit_cni_deadline_exceeded_total ${this.deadlineMisses}`,
      "# HELP cnikit_cni_requests_refused_total Requests refused before running (malformed, too large, other protocol version).",
      "# TYPE cnikit_cni_requests_refused_total counter",
      `cnikit_cni_requests_refused_total ${this.refused}`,
      "# HELP cnikit_cni_requests_declined_total Calls left to the standalone binary because the shim runs in another network or mount namespace.",
      "# TYPE cnikit_cni_requests_declined_total counter",
      `cnikit_cni_requests_declined_total ${this.declined}`,
      "",
    ].join("\n") + (this.reconciler?.metricsText() ?? "");
  }

  private onData(s: Socket<Conn>, chunk: Uint8Array): void {
    const c = s.data;
    if (c.answered) return;
    try {
      if (!c.reader.push(chunk)) return;
    } catch (e) {
      this.refused++;
      this.answer(s, errorReply(new CniError(ErrorCode.DecodingFailure, `cnikit daemon: ${(e as Error).message}`)));
      return;
    }
    s.timeout(0);
    const h = c.reader.header!;
    if (h.version !== PROTOCOL_VERSION) {
      this.refused++;
      this.answer(s, undefined);
      return;
    }
    if (c.reader.oversized) {
      this.refused++;
      this.answer(s, errorReply(new CniError(ErrorCode.InvalidNetworkConfig, `cnikit daemon: request of ${h.length} bytes refused: stdin is limited to ${MAX_STDIN} bytes (1 MiB)`)));
      return;
    }
    let req: CniRequest;
    try {
      req = decodeRequestBody(c.reader.bodyBytes!);
    } catch (e) {
      this.refused++;
      const code = e instanceof RangeError ? ErrorCode.InvalidNetworkConfig : ErrorCode.DecodingFailure;
      this.answer(s, errorReply(new CniError(code, `cnikit daemon: ${(e as Error).message}`)));
      return;
    }
    // a shim in another network namespace is not this node's runtime (the host side of its pods
    // is there, not here), nor one in another mount namespace (its netns and data paths may not
    // be ours, e.g. a runtime with a private /run). It runs the standalone binary instead.
    let foreign = false;
    for (const [entry] of SHIM_NAMESPACES) {
      const theirs = req.env[entry];
      delete req.env[entry];
      if (theirs === undefined || theirs === this.namespaces.get(entry)) continue;
      if (entry === "CNIKIT_SHIM_MNTNS" && this.otherMountNs.has(theirs)) continue;
      foreign = true;
    }
    if (foreign) {
      this.declined++;
      this.answer(s, undefined);
      return;
    }
    const replied = this.serve(req).then((reply) => this.answer(s, reply));
    this.replies.add(replied);
    void replied.finally(() => this.replies.delete(replied));
  }

  /** Send a reply (undefined: the call is declined, the shim runs the standalone binary) and close the connection once it is out. */
  private answer(s: Socket<Conn>, reply: CniReply | undefined): void {
    const c = s.data;
    if (c.answered) return;
    c.answered = true;
    this.unanswered.delete(s);
    if (c.closed) return; // the shim is gone: nobody to tell
    c.pending = reply ? encodeReply(reply) : encodeDecline();
    this.flush(s);
  }

  private flush(s: Socket<Conn>): void {
    const c = s.data;
    if (!c.pending) return;
    const n = s.write(c.pending);
    c.pending = n >= 0 && n < c.pending.length ? c.pending.subarray(n) : undefined; // n < 0: closed
    if (c.pending) {
      this.writing.add(s);
      return;
    }
    this.writing.delete(s);
    if (n >= 0) s.end();
  }

  /** Run one request under its deadline; always resolves to a reply. */
  async serve(req: CniRequest): Promise<CniReply> {
    const t0 = performance.now();
    const verb = VERBS.has(req.env.CNI_COMMAND ?? "") ? req.env.CNI_COMMAND! : "other";
    const id = `${process.pid}-${++this.seq}`;
    // a call made on behalf of a request being served (a delegate exec'd by it that came back
    // through a shim) must not wait for that request's key or slot: it would wait for itself
    const nested = this.running.has(req.env[REQUEST_ENV] ?? "");
    const work = nested ? this.execute(req, id) : this.withKey(req, () => this.withSlot(() => this.execute(req, id)));
    this.running.set(id, work);
    if (verb === "DEL") this.removing.add(id);
    void work
      .finally(() => {
        this.running.delete(id);
        this.removing.delete(id);
      })
      .catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<CniReply>((resolve) => {
      timer = setTimeout(() => {
        this.deadlineMisses++;
        const secs = this.timeoutMs / 1000;
        this.log({ level: "warn", msg: "deadline passed", plugin: req.type, verb, container: req.env.CNI_CONTAINERID, ifname: req.env.CNI_IFNAME, timeoutSec: secs });
        resolve(errorReply(new CniError(ErrorCode.TryAgainLater, `cnikit daemon: ${req.type} ${verb} did not finish within ${secs} s; try again later`), versionOf(req.stdin)));
      }, this.timeoutMs);
    });
    const reply = await Promise.race([work.catch((e) => errorReply(e, versionOf(req.stdin))), deadline]);
    clearTimeout(timer);
    this.latency.observe([req.type, verb], (performance.now() - t0) / 1000);
    this.requests.inc([req.type, verb, replyCode(reply)]);
    return reply;
  }

  /** Run `fn` after the other requests for the same container and ifname. */
  private async withKey<T>(req: CniRequest, fn: () => Promise<T>): Promise<T> {
    const cid = req.env.CNI_CONTAINERID;
    if (!cid) return fn();
    const key = serialKey(cid, req.env.CNI_IFNAME ?? "");
    const prev = this.keys.get(key);
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev ? prev.then(() => mine) : mine;
    this.keys.set(key, tail);
    try {
      if (prev) await prev;
      return await fn();
    } finally {
      release();
      if (this.keys.get(key) === tail) this.keys.delete(key);
    }
  }

  /** Run `fn` in one of the `maxConcurrent` slots. */
  private async withSlot<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active < this.maxConcurrent) this.active++;
    else await new Promise<void>((r) => this.waiters.push(r)); // the slot is handed over as it is
    try {
      return await fn();
    } finally {
      const next = this.waiters.shift();
      if (next) next();
      else this.active--;
    }
  }

  /** The plugin's own run: in-process for a built-in type, else the file CNI_PATH names. */
  private async execute(req: CniRequest, id: string): Promise<CniReply> {
    const env: Record<string, string> = { ...this.baseEnv, ...req.env, [REQUEST_ENV]: id };
    const rc = this.opts.reconcile;
    if (rc) {
      env[STATE_DIR_ENV] = rc.stateDir; // the built-in plugins record their attachments there
      if (rc.bootIdFile) env[BOOT_ID_ENV] = rc.bootIdFile;
    }
    const stdin = dec.decode(req.stdin);
    const load = builtinLoader(req.type);
    if (load) {
      const plugin = await load();
      let out = "";
      let err = "";
      const exitCode = await runPlugin(plugin, {
        env,
        readStdin: () => stdin,
        writeStdout: (s) => {
          out += `${s}\n`; // as pluginMain prints it
        },
        writeStderr: (s) => {
          err += s;
        },
      });
      if (exitCode !== 0) this.log({ level: "warn", msg: "plugin failed", plugin: req.type, verb: req.env.CNI_COMMAND, container: req.env.CNI_CONTAINERID, ifname: req.env.CNI_IFNAME, result: out.trim(), ...(err ? { stderr: err.slice(-4000) } : {}) });
      // the plugin's logs go back with the reply: the shim writes them to the runtime's stderr
      return { exitCode, stdout: enc.encode(out), stderr: enc.encode(err) };
    }
    // not built in: the plugin file in CNI_PATH, as a process (never a shim: it would come back here)
    let file: string;
    try {
      file = await findInPath(req.type, splitPath(req.env.CNI_PATH));
    } catch (e) {
      return errorReply(e, versionOf(stdin));
    }
    if (await isShimFile(file)) {
      return errorReply(new CniError(ErrorCode.InvalidEnvironment, `cnikit daemon: plugin type "${req.type}" is not built into cnikit, and ${file} is a cnikit-shim`), versionOf(stdin));
    }
    const proc = Bun.spawn([file], {
      env,
      stdin: req.stdin,
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).bytes(), new Response(proc.stderr).bytes(), proc.exited]);
    return { exitCode, stdout, stderr };
  }
}

/** Whether a daemon answers on `path`. */
async function isLive(path: string): Promise<boolean> {
  try {
    const s = await Bun.connect({ unix: path, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}
