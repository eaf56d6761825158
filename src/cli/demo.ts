/**
 * `cnikit demo`: cnikit's main job, shown on this machine without touching it. In a private network
 * namespace of its own it installs the plugins into a temporary CNI_PATH, writes a default network
 * (bridge + host-local + portmap), starts a few pods (namespaces), prints which pod got which
 * address, proves they reach each other and that a hostPort reaches a pod, then removes
 * everything, also on Ctrl-C.
 */

import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { builtinTypes } from "../invoke/builtin.ts";
import { CNIConfig, type RuntimeConf } from "../libcni/cni.ts";
import { confListFromObject } from "../libcni/conf.ts";
import { toCniError } from "../spec/error.ts";
import type { Result } from "../spec/result.ts";
import { UndoStack } from "../skel/undo.ts";
import { flagString, parseArgs } from "./args.ts";
import { installInto, isCompiledBinary } from "./install.ts";
import { table } from "./table.ts";
import { CURRENT_VERSION } from "../spec/version.ts";

/** Usage text. */
export const DEMO_USAGE = `usage: cnikit demo [--pods N] [--svg FILE]

Runs cnikit's main job in network namespaces of its own (nothing on this machine changes): sets up
N pods (default 3) on a bridge network, shows their addresses, pings between every pair, reaches a
pod through a hostPort, then removes everything (also on Ctrl-C).

  --svg FILE   also draw the demo's network (as \`cnikit graph\` does, with graphviz) into FILE
`;

/** The demo's steps, for its progress lines. */
const STEPS = 5;

function step(n: number, msg: string): void {
  console.log(`[${n}/${STEPS}] ${msg}`);
}

const REFERENCE_DIR = "/usr/lib/cni";
const NEEDED = ["bridge", "host-local", "portmap"];

function sh(cmd: string[], opts: { quiet?: boolean } = {}): { code: number; out: string } {
  const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  const out = p.stdout.toString() + (opts.quiet ? "" : p.stderr.toString());
  return { code: p.exitCode ?? -1, out };
}

function selfCommand(): string[] {
  return isCompiledBinary() ? [process.execPath] : [process.execPath, process.argv[1]!];
}

function inPrivateNetns(): boolean {
  return process.env.CNIKIT_DEMO_NETNS === String(statSync("/proc/self/ns/net").ino);
}

/** Start the demo in a private network namespace (re-executing under `unshare -n`). */
async function relaunch(argv: readonly string[]): Promise<number> {
  // The child records its own namespace; the parent waits and lets the child handle Ctrl-C.
  const script = `export CNIKIT_DEMO_NETNS=$(stat -L -c %i /proc/self/ns/net); exec "$@"`;
  const proc = Bun.spawn(["unshare", "-n", "sh", "-c", script, "sh", ...selfCommand(), "demo", ...argv], {
    stdio: ["inherit", "inherit", "inherit"],
  });
  // forward signals: the child removes what it made, then exits
  const forward = (sig: NodeJS.Signals) => () => proc.kill(sig);
  process.on("SIGINT", forward("SIGINT"));
  process.on("SIGTERM", forward("SIGTERM"));
  return await proc.exited;
}

interface Pod {
  name: string;
  netns: string;
  ip: string;
  mac: string;
}

/** Run `cnikit demo`. */
export async function demoCommand(argv: readonly string[]): Promise<number> {
  const p = parseArgs(argv);
  if (p.flags.help) {
    process.stdout.write(DEMO_USAGE);
    return 0;
  }
  if (!inPrivateNetns()) return relaunch(argv);
  const nPods = Math.max(2, Math.min(20, Number(flagString(p, "pods") ?? 3) || 3));
  const svgFile = flagString(p, "svg");
  const tag = `cnd${(process.pid % 46656).toString(36)}`;
  const work = mkdtempSync(join(tmpdir(), "cnikit-demo-"));
  const pods: Pod[] = [];
  // what the demo made, taken back newest first: the echo server, each pod's DEL before its
  // namespace, the work folder last
  const undo = new UndoStack();
  undo.push("the work folder", () => rmSync(work, { recursive: true, force: true }));
  let cleaning: Promise<void> | undefined;
  // one cleanup, however many signals arrive (a terminal's Ctrl-C reaches parent and child)
  const cleanup = () => (cleaning ??= undo.unwind((m) => process.stderr.write(`demo: ${m}\n`)));
  const onSignal = () => {
    process.stdout.write("\ninterrupted: removing the demo's pods and namespaces\n");
    void cleanup().then(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    sh(["ip", "link", "set", "lo", "up"]);
    step(1, "installing the plugins into a temporary CNI_PATH");
    const bin = join(work, "bin");
    // cnikit's own plugins where it has them; the reference's (Debian containernetworking-plugins)
    // for the types cnikit does not have yet
    const builtin = isCompiledBinary() ? builtinTypes() : [];
    if (builtin.length > 0) installInto(bin, { source: process.execPath, types: builtin });
    else mkdirSync(bin, { recursive: true });
    const origin: Record<string, string> = {};
    for (const t of NEEDED) {
      if (builtin.includes(t)) {
        origin[t] = "cnikit";
      } else if (existsSync(join(REFERENCE_DIR, t))) {
        symlinkSync(join(REFERENCE_DIR, t), join(bin, t));
        origin[t] = "reference";
      } else {
        throw new Error(`no ${t} plugin: cnikit has none built in yet and ${REFERENCE_DIR} has none (run scripts/setup.sh)`);
      }
    }
    const anyReference = Object.values(origin).includes("reference");
    const bridge = `${tag}br`;
    const netconf = {
      // the Debian reference plugins (1.1.1) speak up to 1.0.0
      cniVersion: anyReference ? "1.0.0" : CURRENT_VERSION,
      name: "demo",
      plugins: [
        {
          type: "bridge",
          bridge,
          isGateway: true,
          ipam: { type: "host-local", ranges: [[{ subnet: "10.244.7.0/24", gateway: "10.244.7.1" }]], dataDir: join(work, "ipam") },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    };
    const list = confListFromObject(netconf);
    const cni = new CNIConfig({ path: [bin], cacheDir: join(work, "cache") });
    const kind = NEEDED.map((t) => `${t} (${origin[t] === "cnikit" ? "cnikit" : "reference, until cnikit's own"})`).join(", ");
    console.log(`cnikit demo: network "demo" (bridge ${bridge}, 10.244.7.0/24)`);
    console.log(`plugins: ${kind}`);
    console.log(`everything runs in a private network namespace; nothing on this machine changes\n`);

    step(2, `adding ${nPods} pods (ADD: bridge, host-local, portmap)`);
    const t0 = performance.now();
    for (let i = 1; i <= nPods; i++) {
      const name = `${tag}-pod${i}`;
      sh(["ip", "netns", "add", name]);
      undo.push(`namespace ${name}`, () => sh(["ip", "netns", "del", name], { quiet: true }));
      const netns = `/run/netns/${name}`;
      const caps = i === 1 ? { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] } : {};
      const t = performance.now();
      // the pod's name as a Kubernetes runtime passes it (`cnikit status` and the picture show it)
      const args: Array<[string, string]> = [["IgnoreUnknown", "1"], ["K8S_POD_NAMESPACE", "demo"], ["K8S_POD_NAME", `pod${i}`]];
      const result = (await cni.addNetworkList(list, { ...rt(netns, name), args, capabilityArgs: caps })) as Result;
      undo.push(`pod ${name}`, () => cni.delNetworkList(list, rt(netns, name)));
      const eth0 = result.interfaces?.find((x) => x.sandbox);
      pods.push({ name, netns, ip: result.ips![0]!.address, mac: eth0?.mac ?? "" });
      console.log(`      pod ${i}/${nPods} ${name}: ${result.ips![0]!.address} (${(performance.now() - t).toFixed(0)} ms)`);
    }
    const addMs = (performance.now() - t0) / nPods;
    if (process.env.CNIKIT_DEMO_PAUSE) {
      // for the interruption test: wait here until a signal arrives
      console.log("paused after ADD");
      await new Promise(() => setInterval(() => {}, 1 << 30)); // keeps the process alive
    }

    console.log(table(["pod", "netns", "interface", "address", "mac"], pods.map((x) => [x.name, x.netns, "eth0", x.ip, x.mac])));
    console.log(`\n${nPods} pods added, ${addMs.toFixed(0)} ms per ADD on average\n`);
    if (svgFile) {
      const { buildDot, renderSvg } = await import("../agent/graph.ts");
      const { listAttachments } = await import("../libcni/attachments.ts");
      const { hostname } = await import("node:os");
      writeFileSync(resolve(svgFile), await renderSvg(buildDot({ attachments: listAttachments(join(work, "cache")), host: hostname() })));
      console.log(`the network drawn into ${svgFile}\n`);
    }

    step(3, "pinging between every pair of pods");
    console.log("ping matrix (from row to column):");
    const rows: string[][] = [];
    let failures = 0;
    for (const from of pods) {
      const row = [from.name];
      for (const to of pods) {
        if (from === to) {
          row.push("-");
          continue;
        }
        const ok = sh(["nsenter", `--net=${from.netns}`, "ping", "-c", "1", "-W", "2", to.ip.split("/")[0]!], { quiet: true }).code === 0;
        if (!ok) failures++;
        row.push(ok ? "ok" : "FAIL");
      }
      rows.push(row);
    }
    console.log(table(["", ...pods.map((x) => x.name)], rows));

    // a hostPort: the node's 10.244.7.1:8080 reaches port 80 in pod 1
    step(4, `reaching ${pods[0]!.name} through hostPort 8080`);
    const echo = Bun.spawn(["nsenter", `--net=${pods[0]!.netns}`, ...selfCommand(), "__echo-server", "80"], { stdout: "pipe", stderr: "inherit" });
    undo.push("the echo server", () => echo.kill());
    await echo.stdout.getReader().read();
    const reply = await tcpAsk("10.244.7.1", 8080, "hello from the node");
    const portOk = reply.startsWith("echo:");
    if (!portOk) failures++;
    console.log(`\nhostPort 8080 -> ${pods[0]!.name}:80 : ${portOk ? `ok (pod answered "${reply}")` : `FAIL (${reply})`}`);

    step(5, "removing the pods (DEL), their namespaces and reservations");
    await cleanup();
    const leftover = sh(["ip", "-o", "link", "show", "type", "veth"], { quiet: true }).out.trim();
    console.log(`\nremoved ${pods.length} pods, their namespaces and reservations${leftover ? " (veths left!)" : "; no veth left"}`);
    if (leftover) failures++;
    console.log(failures === 0 ? "demo: all checks passed" : `demo: ${failures} check(s) failed`);
    return failures === 0 ? 0 : 1;
  } catch (e) {
    process.stderr.write(`demo failed: ${toCniError(e).toString()}\n`);
    await cleanup();
    return 1;
  }
}

function rt(netns: string, name: string): RuntimeConf {
  return { containerId: name, netns, ifName: "eth0" };
}

async function tcpAsk(host: string, port: number, msg: string): Promise<string> {
  return await new Promise<string>((resolve) => {
    const timer = setTimeout(() => resolve("no answer"), 3000);
    Bun.connect({
      hostname: host,
      port,
      socket: {
        open: (s) => void s.write(msg),
        data: (_s, d) => {
          clearTimeout(timer);
          resolve(String(d));
        },
        error: (_s, e) => resolve(`error: ${e.message}`),
        connectError: (_s, e) => resolve(`error: ${e.message}`),
      },
    }).catch((e) => resolve(`error: ${(e as Error).message}`));
  });
}

/** `cnikit __echo-server PORT`: a tiny TCP echo server the demo starts inside a pod. */
export function echoServer(argv: readonly string[]): Promise<number> {
  const port = Number(argv[0] ?? 80);
  Bun.listen({
    hostname: "0.0.0.0",
    port,
    socket: {
      data(s, d) {
        s.write(`echo:${d}`);
        s.end();
      },
    },
  });
  console.log("ready");
  return new Promise(() => {});
}
