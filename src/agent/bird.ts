/**
 * BIRD 2 run by the agent: its own directory holds the configuration (`bird.conf`), the control
 * socket (`bird.ctl`), the PID file and BIRD's log, so it never touches the machine's /etc/bird
 * or /run/bird. A new configuration is checked (`bird -p -c`), swapped in atomically (temp file +
 * rename) and loaded (`birdc configure`); BIRD runs in the foreground as the agent's child and is
 * started again when it dies (with `-R`, graceful-restart recovery, so the routes it left in the
 * kernel stay until its sessions are back); `stop` shuts it down for a graceful restart (peers
 * keep our routes for the restart time, the kernel keeps theirs), so restarting the agent takes
 * no route away.
 */

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CniError, ErrorCode } from "../spec/error.ts";

/** Where the agent keeps BIRD's files by default (`--bird-dir`). */
export const DEFAULT_BIRD_DIR = "/run/cnikit/bird";

/** The control socket of the BIRD in `dir`. */
export const birdSocketPath = (dir: string): string => join(dir, "bird.ctl");

/** What the supervisor is told. */
export interface BirdOptions {
  /** Directory for the config, socket, PID file and log (made 0700). */
  dir: string;
  /** The binaries (default `bird` and `birdc` from PATH). */
  bird?: string;
  birdc?: string;
  /** Whether to start with graceful-restart recovery: routes of an earlier BIRD are in the kernel. */
  recover?: () => boolean;
  log?: (e: Record<string, unknown>) => void;
}

/** One line of `birdc show protocols`. */
export interface BirdProtocol {
  name: string;
  proto: string;
  state: string;
  /** A BGP session's state ("Established", "Active", "Connect", ...), when it is one. */
  bgpState?: string;
  info: string;
}

const BGP_STATES = /\b(Idle|Connect|Active|OpenSent|OpenConfirm|Established|Close|Down)\b/;

/** Parse the text of `birdc show protocols`. */
export function parseBirdProtocols(text: string): BirdProtocol[] {
  const out: BirdProtocol[] = [];
  for (const line of text.split("\n")) {
    const t = line.trim().split(/\s+/);
    if (t.length < 4 || t[0] === "Name" || /^BIRD\b/.test(line) || !/^[A-Za-z]/.test(t[0]!)) continue;
    const [name, proto, , state] = t;
    // Since is one or two fields (date and time); Info is the rest
    const rest = t.slice(4);
    while (rest.length && /^[\d:.-]+$/.test(rest[0]!)) rest.shift();
    const info = rest.join(" ");
    const bgp = proto === "BGP" ? BGP_STATES.exec(info)?.[1] : undefined;
    out.push({ name: name!, proto: proto!, state: state!, ...(bgp ? { bgpState: bgp } : {}), info });
  }
  return out;
}

/** A BGP session's state, for metrics and for `cnikit nodes`. */
export interface BgpSessionState {
  /** BIRD's protocol name, `mesh_192_168_1_2`. */
  name: string;
  /** "mesh", "rr" or "peer". */
  kind: string;
  peerIP: string;
  /** "Established", "Active", ... ("Down" when the protocol is not running). */
  state: string;
  up: boolean;
}

/** The BGP sessions among parsed protocols (those named by cnikit: `<kind>_<a>_<b>_<c>_<d>`). */
export function sessionsOf(protocols: readonly BirdProtocol[]): BgpSessionState[] {
  const out: BgpSessionState[] = [];
  for (const p of protocols) {
    const m = /^(mesh|rr|peer)_(\d+)_(\d+)_(\d+)_(\d+)$/.exec(p.name);
    if (p.proto !== "BGP" || !m) continue;
    const state = p.state === "up" ? (p.bgpState ?? "Established") : (p.bgpState ?? "Down");
    out.push({ name: p.name, kind: m[1]!, peerIP: m.slice(2, 6).join("."), state, up: p.state === "up" && state === "Established" });
  }
  return out;
}

/** Run birdc against a socket; its output (throws when birdc fails or BIRD does not answer). */
export async function birdc(sock: string, cmd: string[], bin = "birdc", timeoutMs = 5000): Promise<string> {
  const p = Bun.spawn([bin, "-s", sock, ...cmd], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`birdc ${cmd.join(" ")}: ${(err || out).trim() || `exit ${code}`}`);
  return out;
}

/**
 * The BGP sessions of the BIRD behind `sock` (default: the agent's default directory), for
 * commands that show them (`cnikit nodes`).
 */
export async function bgpSessions(sock = birdSocketPath(DEFAULT_BIRD_DIR), bin = "birdc"): Promise<BgpSessionState[]> {
  return sessionsOf(parseBirdProtocols(await birdc(sock, ["show", "protocols"], bin)));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether process `pid` is alive and is a BIRD using control socket `sock`. */
function isOurBird(pid: number, sock: string): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return /(^|\/)bird$/.test(cmd[0] ?? "") && cmd.includes(sock);
  } catch {
    return false;
  }
}

/** Runs and reloads one BIRD. */
export class BirdSupervisor {
  readonly confPath: string;
  readonly sockPath: string;
  readonly pidPath: string;
  readonly logPath: string;
  /** How many times BIRD was started again after it died. */
  restarts = 0;
  private proc: ReturnType<typeof Bun.spawn> | undefined;
  private text: string | undefined;
  private stopping = false;
  private chain: Promise<unknown> = Promise.resolve();
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private backoff = 500;
  private readonly bird: string;
  private readonly birdcBin: string;
  private readonly log: (e: Record<string, unknown>) => void;

  constructor(private readonly o: BirdOptions) {
    this.confPath = join(o.dir, "bird.conf");
    this.sockPath = birdSocketPath(o.dir);
    this.pidPath = join(o.dir, "bird.pid");
    this.logPath = join(o.dir, "bird.log");
    this.bird = o.bird ?? "bird";
    this.birdcBin = o.birdc ?? "birdc";
    this.log = o.log ?? (() => {});
  }

  /** BIRD's PID while it runs. */
  get pid(): number | undefined {
    return this.proc && this.proc.exitCode === null && this.proc.signalCode === null ? this.proc.pid : undefined;
  }

  /** Whether BIRD runs. */
  running(): boolean {
    return this.pid !== undefined;
  }

  /** Check a configuration file with `bird -p`; throws naming BIRD's complaint. */
  check(file: string): void {
    const r = Bun.spawnSync([this.bird, "-p", "-c", file], { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) {
      const msg = `${r.stderr.toString()}${r.stdout.toString()}`.trim();
      throw new CniError(ErrorCode.InvalidNetworkConfig, `bgp: BIRD refused the rendered configuration: ${msg || `exit ${r.exitCode}`}`);
    }
  }

  /**
   * Make `text` BIRD's configuration: check it, swap it in, and reload BIRD (or start it). Calls
   * run one at a time in the order made.
   */
  apply(text: string): Promise<"started" | "reloaded" | "unchanged"> {
    const next = this.chain.then(() => this.applyNow(text));
    this.chain = next.catch(() => {});
    return next;
  }

  private async applyNow(text: string): Promise<"started" | "reloaded" | "unchanged"> {
    if (this.stopping) throw new Error("bgp: BIRD is stopping");
    if (text === this.text && this.running()) return "unchanged";
    mkdirSync(this.o.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.confPath}.tmp`;
    writeFileSync(tmp, text, { mode: 0o600 });
    try {
      this.check(tmp);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
    renameSync(tmp, this.confPath);
    this.text = text;
    if (this.running()) {
      const out = await birdc(this.sockPath, ["configure"], this.birdcBin);
      if (!/Reconfigur/.test(out)) throw new Error(`bgp: birdc configure: ${out.trim()}`);
      return "reloaded";
    }
    await this.start();
    return "started";
  }

  /** Start BIRD on the current configuration and wait until its socket answers. */
  private async start(): Promise<void> {
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    await this.stopOrphan();
    const recover = this.o.recover?.() ?? false;
    const args = [this.bird, "-f", "-c", this.confPath, "-s", this.sockPath, "-P", this.pidPath, ...(recover ? ["-R"] : [])];
    const proc = Bun.spawn(args, { stdin: "ignore", stdout: "ignore", stderr: Bun.file(this.logPath) });
    this.proc = proc;
    this.log({ level: "info", msg: "BIRD started", pid: proc.pid, recover });
    void proc.exited.then((code) => this.exited(proc, code));
    for (let i = 0; ; i++) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`bgp: BIRD exited at start (${proc.exitCode ?? proc.signalCode}): ${this.logTail()}`);
      }
      try {
        await birdc(this.sockPath, ["show", "status"], this.birdcBin, 2000);
        this.backoff = 500;
        return;
      } catch (e) {
        if (i > 100) throw new Error(`bgp: BIRD does not answer on ${this.sockPath}: ${(e as Error).message}`);
        await sleep(50);
      }
    }
  }

  private logTail(): string {
    try {
      return readFileSync(this.logPath, "utf8").trim().split("\n").slice(-5).join("; ");
    } catch {
      return "";
    }
  }

  /** BIRD ended: unless we stopped it, start it again (with a growing pause). */
  private exited(proc: ReturnType<typeof Bun.spawn>, code: number | null): void {
    if (this.proc !== proc || this.stopping) return;
    this.proc = undefined;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 10_000);
    this.log({ level: "warn", msg: "BIRD died, starting it again", exit: code ?? proc.signalCode, retryInMs: delay, log: this.logTail() });
    this.restartTimer = setTimeout(() => {
      const again = this.chain.then(async () => {
        if (this.stopping || this.running()) return;
        this.restarts++;
        await this.start();
      });
      this.chain = again.catch((e) => {
        this.log({ level: "error", msg: "starting BIRD again failed", error: (e as Error).message });
        if (!this.stopping && !this.running()) this.exited(proc, null); // try again later
      });
    }, delay);
  }

  /** A BIRD left by an earlier agent on our socket (the agent was killed): shut it down. */
  private async stopOrphan(): Promise<void> {
    if (!existsSync(this.pidPath)) return;
    const pid = Number(readFileSync(this.pidPath, "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 0 || !isOurBird(pid, this.sockPath)) return;
    this.log({ level: "info", msg: "stopping the BIRD an earlier agent left", pid });
    await birdc(this.sockPath, ["graceful", "restart"], this.birdcBin).catch(() => {});
    for (let i = 0; i < 100 && isOurBird(pid, this.sockPath); i++) await sleep(50);
    if (isOurBird(pid, this.sockPath)) process.kill(pid, "SIGKILL");
  }

  /**
   * Stop BIRD for a graceful restart: sessions close without a notification, so peers keep our
   * routes for the restart time; the kernel keeps the routes BIRD wrote (`persist`).
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    await this.chain.catch(() => {});
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await birdc(this.sockPath, ["graceful", "restart"], this.birdcBin).catch(() => proc.kill("SIGTERM"));
    const done = await Promise.race([proc.exited.then(() => true), sleep(5000).then(() => false)]);
    if (!done) {
      proc.kill("SIGKILL");
      await proc.exited;
    }
    this.proc = undefined;
  }
}
