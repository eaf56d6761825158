/**
 * Test and benchmark support for the node daemon: start `cnikit agent` on a socket of its own (a
 * temp path, never /run/cnikit), talk to it as the shim does, stop it by PID.
 */

import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { decodeReply, encodeRequest, type CniReply, type CniRequest } from "../../src/agent/protocol.ts";

const ROOT = resolve(import.meta.dir, "../..");
/** The compiled binary and the shim beside it. */
export const CNIKIT = join(ROOT, "dist/cnikit");
export const SHIM = join(ROOT, "dist/cnikit-shim");

/** Send raw bytes to the socket and collect everything it answers until it closes. */
export async function rawCall(socketPath: string, bytes: Uint8Array): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let rest = bytes;
  const send = (s: { write(b: Uint8Array): number }) => {
    const n = s.write(rest);
    rest = rest.subarray(Math.max(n, 0));
  };
  return await new Promise<Uint8Array>((resolvePromise, reject) => {
    Bun.connect({
      unix: socketPath,
      socket: {
        open: send,
        drain: send,
        data(_s, d) {
          chunks.push(new Uint8Array(d));
        },
        close() {
          resolvePromise(Buffer.concat(chunks));
        },
        error(_s, e) {
          reject(e);
        },
      },
    }).catch(reject);
  });
}

/** One CNI call as the shim makes it; the decoded reply (undefined on another protocol version). */
export async function callDaemon(socketPath: string, req: { type: string; env: Record<string, string>; stdin?: string }, version?: number): Promise<{ version: number; reply?: CniReply; stdout: string }> {
  const r: CniRequest = { type: req.type, env: req.env, stdin: new TextEncoder().encode(req.stdin ?? "") };
  const d = decodeReply(await rawCall(socketPath, encodeRequest(r, version)), version);
  return { ...d, stdout: d.reply ? new TextDecoder().decode(d.reply.stdout) : "" };
}

/** A running daemon started by a test. */
export interface TestDaemon {
  socket: string;
  pid: number;
  proc: ReturnType<typeof Bun.spawn>;
  /** Its log (stderr) so far. */
  log(): string;
  /** SIGTERM, then wait for it to exit. */
  stop(): Promise<void>;
  /** SIGKILL, then wait for it to exit. */
  kill(): Promise<void>;
  /** Its resident set size in KiB (VmRSS). */
  rssKiB(): number;
}

/**
 * Start `cnikit agent` serving CNI on `socket` (extra flags after); resolves once it accepts calls.
 * `wrap` goes before the command, e.g. `nsenter --mount=...` to run it in another mount namespace
 * (a wrapper that execs, so the PID is the daemon's).
 */
export async function startDaemon(socket: string, flags: string[] = [], env: Record<string, string | undefined> = process.env, wrap: string[] = []): Promise<TestDaemon> {
  const logFile = `${dirname(socket)}-daemon-${Date.now()}.log`; // beside the socket's dir (the daemon makes that one)
  const proc = Bun.spawn([...wrap, CNIKIT, "agent", "--cni-socket", socket, ...flags], { env: env as Record<string, string>, stdout: "ignore", stderr: Bun.file(logFile) });
  const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  const end = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`the daemon exited (${proc.exitCode}): ${log()}`);
    if (existsSync(socket)) {
      try {
        const v = await callDaemon(socket, { type: "loopback", env: { CNI_COMMAND: "VERSION" } });
        if (v.reply?.exitCode === 0) break;
      } catch {
        // not accepting yet
      }
    }
    if (Date.now() > end) {
      proc.kill("SIGKILL");
      throw new Error(`the daemon did not serve ${socket} within 10 s: ${log()}`);
    }
    await Bun.sleep(20);
  }
  const signal = async (sig: "SIGTERM" | "SIGKILL") => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    await proc.exited;
  };
  return {
    socket,
    pid: proc.pid,
    proc,
    log,
    stop: () => signal("SIGTERM"),
    kill: () => signal("SIGKILL"),
    rssKiB: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))?.[1] ?? 0),
  };
}

/** A private directory for a daemon's socket (made by the daemon, 0700) and its removal. */
export function socketDir(tag: string): { socket: string; remove: () => void } {
  const base = mkdtempSync(join(tmpdir(), `cnikit-ckd-${tag}-`));
  return { socket: join(base, "run", "cni.sock"), remove: () => rmSync(base, { recursive: true, force: true }) };
}
