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

/**
 * One TCP transfer of `ms` from `from` to `to` with iperf3 (native, so the rate is the data path's,
 * not the sending program's); the received rate in bits/s, the first 300 ms left out. `pin` puts
 * the sender on CPU 0 and the receiver on CPU 1.
 */
export async function iperf3Throughput(from: string, to: string, toIp: string, port: number, ms = 2500, pin = false): Promise<number> {
  const server = Bun.spawn(inNs(to, [...pinTo(pin ? 1 : undefined), "iperf3", "--server", "--one-off", "--forceflush", "--port", String(port)]), { stdout: "pipe", stderr: "pipe" });
  try {
    const reader = server.stdout.getReader();
    const dec = new TextDecoder();
    for (let out = ""; !out.includes("Server listening");) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`iperf3 server died: ${await new Response(server.stderr).text()}`);
      out += dec.decode(value);
    }
    reader.releaseLock();
    const client = run(inNs(from, [...pinTo(pin ? 0 : undefined), "iperf3", "--client", toIp, "--port", String(port), "--time", String(ms / 1000), "--omit", "0.3", "--json"]));
    if (client.code !== 0) throw new Error(`iperf3 client failed: ${client.stdout.slice(-500)} ${client.stderr}`);
    return Number(JSON.parse(client.stdout).end.sum_received.bits_per_second);
  } finally {
    server.kill();
    await server.exited;
  }
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
