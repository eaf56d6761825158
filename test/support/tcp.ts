/** TCP measurements between namespaces, through test/support/tcptool.ts. */

import { join } from "node:path";
import { run } from "./netns.ts";

const TOOL = join(import.meta.dir, "tcptool.ts");
const inNs = (netns: string, cmd: string[]) => (netns ? ["nsenter", `--net=${netns}`, ...cmd] : cmd);
const pinTo = (cpu: number | undefined) => (cpu === undefined ? [] : ["taskset", "-c", String(cpu)]);

/** Start `tool MODE PORT` in a namespace and wait for its "ready"; returns the process and a reader. */
async function startServer(netns: string, mode: "recv" | "whoami", port: number, cpu?: number) {
  const proc = Bun.spawn(inNs(netns, [...pinTo(cpu), process.execPath, TOOL, mode, String(port)]), { stdout: "pipe", stderr: "pipe" });
  const reader = proc.stdout.getReader();
  const dec = new TextDecoder();
  let out = "";
  while (!out.includes("ready\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${mode} server died: ${await new Response(proc.stderr).text()}`);
    out += dec.decode(value);
  }
  return { proc, reader, dec, rest: out.replace("ready\n", "") };
}

/**
 * Send for `ms` from `from` to `to` (netns paths, "" for this namespace); the received rate in
 * bits/s. `pin` puts the sender on CPU 0 and the receiver on CPU 1 (steadier numbers for benches).
 */
export async function measureThroughput(from: string, to: string, toIp: string, port: number, ms = 2500, pin = false): Promise<number> {
  const s = await startServer(to, "recv", port, pin ? 1 : undefined);
  const send = Bun.spawn(inNs(from, [...pinTo(pin ? 0 : undefined), process.execPath, TOOL, "send", toIp, String(port), String(ms)]), { stdout: "ignore", stderr: "pipe" });
  const sendCode = await send.exited;
  if (sendCode !== 0) {
    s.proc.kill();
    throw new Error(`sender failed: ${await new Response(send.stderr).text()}`);
  }
  let out = s.rest;
  for (;;) {
    const { value, done } = await s.reader.read();
    if (done) break;
    out += s.dec.decode(value);
  }
  await s.proc.exited;
  return Number(out.trim());
}

/** A server in `netns` answering each connection with the source address it saw; stop() kills it. */
export async function whoamiServer(netns: string, port: number): Promise<{ stop: () => void }> {
  const s = await startServer(netns, "whoami", port);
  return { stop: () => s.proc.kill() };
}

/** Connect from `netns` to ip:port and return what the server said ("" when it failed). */
export function ask(netns: string, ip: string, port: number): string {
  return run(inNs(netns, [process.execPath, TOOL, "ask", ip, String(port)])).stdout.trim();
}
