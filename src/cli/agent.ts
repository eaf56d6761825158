/** `cnikit agent`: the node daemon's command line (CNI server; flannel-like flags for the overlay). */

import { DEFAULT_CACHE_DIR } from "../libcni/cache.ts";
import { flagList, flagString, formatHostPort, parseArgs, parseHostPort } from "./args.ts";
import { etcdFromFlags } from "./etcd-flags.ts";
import { reportError } from "./output.ts";

/** Usage text. */
export const AGENT_USAGE = `usage: cnikit agent [flags]

The node daemon. It always serves CNI calls from cnikit-shim on a unix socket, running cnikit's
plugin types in-process. Given etcd flags (--etcd-endpoints), it also leases this node's subnet in
etcd, writes subnet.env for the overlay plugin, and routes to the other nodes' subnets (vxlan or
host-gw, as the network config in etcd says). Runs until SIGTERM/SIGINT.

  --cni-socket PATH       the CNI socket (default $CNIKIT_SOCKET, else /run/cnikit/cni.sock;
                          its directory is made 0700, the socket is 0600)
  --max-requests N        CNI calls run at once (default 64; calls for one container and
                          interface always run one after the other)
  --request-timeout SECS  deadline of a CNI call; past it the shim gets error 11 (default 120)
  --healthz ADDR:PORT     serve /healthz, /readyz, /metrics and the status page /ui there
  --cni-cache-dir DIR     the runtime's result cache the status page lists attachments from
                          and reconcile checks (default $CNI_CACHE_DIR, else /var/lib/cni)
  --state-dir DIR         where the plugins it runs record each attachment at ADD, for
                          reconcile (default /var/lib/cni/cnikit when serving the default
                          socket; none otherwise: no records, no reconcile)
  --reconcile-interval SECS  release attachments whose pod is gone (netns gone, unknown to
                          the runtime's cache, and no ADD of it still running: its writer
                          process is gone, or else older than --request-timeout; after a
                          reboot: every older one) at start, then every SECS (default 5;
                          a pass over 600 records costs ~15-25 ms) and soon after a netns
                          file goes (0: only at start)
  --accept-mount-ns FILE  also serve shims of this mount namespace (e.g. /proc/1/ns/mnt with the
                          host's PIDs): the node's, when the agent runs in a container that mounts
                          every path the CNI configs use where the host has it (the DaemonSet)
  --log-format text|json  log lines on stderr as JSON (default) or as text
  --log-level LEVEL       debug, info (default), warn or error

Overlay (only with --etcd-endpoints):
  --etcd-endpoints URLS   comma-separated, e.g. http://127.0.0.1:2379
  --etcd-cafile FILE      TLS: CA certificate        --etcd-certfile FILE  client certificate
  --etcd-keyfile FILE     TLS: client key            --etcd-username USER / --etcd-password PASS
  --etcd-prefix PREFIX    key prefix (default /coreos.com/network)
  --iface NAME|IP         underlay interface, by name or by one of its addresses
                          (default: the default route's)
  --public-ip IP          address other nodes reach this one at (default: the interface's)
  --public-ipv6 IP        the same for an IPv6 network (default: the interface's global IPv6)
  --subnet-file FILE      where subnet.env goes (default /run/flannel/subnet.env)
  --net-conf FILE         the network config (flannel's net-conf.json) to write into etcd
                          when etcd has none (create-only: an existing one is never replaced)
  --ip-masq               masquerade traffic leaving the cluster network
  --device-prefix NAME    vxlan device is NAME.<VNI> (default cnikit)
  --lease-ttl SECONDS     etcd lease TTL (default 86400)
  --bird-dir DIR          bgp backend: BIRD's config, control socket (bird.ctl) and log
                          (default /run/cnikit/bird)
  --bpf-pin-dir DIR       vxlan with "Datapath": "ebpf": where the eBPF maps and programs are
                          pinned, on a bpffs (default /sys/fs/bpf/cnikit/overlay)
`;

const OVERLAY_FLAGS = ["etcd-cafile", "etcd-certfile", "etcd-keyfile", "etcd-username", "etcd-password", "etcd-prefix", "iface", "public-ip", "public-ipv6", "subnet-file", "lease-ttl", "device-prefix", "ip-masq", "bird-dir", "net-conf", "bpf-pin-dir"];

/** Run `cnikit agent` until a signal arrives. */
export async function agentCommand(argv: readonly string[]): Promise<number> {
  try {
    const p = parseArgs(argv, ["ip-masq"]);
    if (p.flags.help) {
      process.stdout.write(AGENT_USAGE);
      return 0;
    }
    const known = new Set(["help", "etcd-endpoints", "healthz", "cni-cache-dir", "log-format", "log-level", "cni-socket", "max-requests", "request-timeout", "state-dir", "reconcile-interval", "accept-mount-ns", ...OVERLAY_FLAGS]);
    const unknown = Object.keys(p.flags).filter((k) => !known.has(k));
    if (unknown.length > 0 || p.positional.length > 0) throw new Error(`agent: unknown argument ${unknown.length ? `--${unknown[0]}` : p.positional[0]} (see cnikit agent --help)`);
    const opt = (k: string) => flagString(p, k);
    const healthz = opt("healthz");
    const hz = healthz ? parseHostPort(healthz, "--healthz") : undefined;
    const ttl = Number(opt("lease-ttl") ?? 86400);
    if (!Number.isInteger(ttl) || ttl < 10) throw new Error("--lease-ttl must be at least 10 seconds");
    const maxRequests = Number(opt("max-requests") ?? 64);
    if (!Number.isInteger(maxRequests) || maxRequests < 1) throw new Error("--max-requests must be a positive integer");
    const timeoutSec = Number(opt("request-timeout") ?? 120);
    if (!(timeoutSec > 0)) throw new Error("--request-timeout must be a positive number of seconds");
    // the overlay runs only with --etcd-endpoints (not $CNIKIT_ETCD_ENDPOINTS, which nodes and graph read)
    const etcd = etcdFromFlags(p, {});
    const overlay = etcd !== undefined;
    const stray = OVERLAY_FLAGS.filter((k) => p.flags[k] !== undefined);
    if (!overlay && stray.length > 0) throw new Error(`agent: --${stray[0]} needs --etcd-endpoints (the overlay runs only with etcd)`);

    // the network config is checked here, before anything starts: a bad file is an error now,
    // not a config in etcd that every node then refuses
    let netConf: string | undefined;
    if (opt("net-conf")) {
      const { readFileSync } = await import("node:fs");
      const { parseNetworkConfig } = await import("../agent/netconfig.ts");
      netConf = readFileSync(opt("net-conf")!, "utf8");
      try {
        parseNetworkConfig(netConf);
      } catch (e) {
        throw new Error(`--net-conf ${opt("net-conf")}: ${(e as Error).message}`);
      }
    }
    const { createLogger, logOptions } = await import("../agent/log.ts");
    const log = createLogger(logOptions(opt("log-format"), opt("log-level")));
    const { CniServer } = await import("../agent/cni-server.ts");
    const { DEFAULT_SOCKET } = await import("../agent/protocol.ts");
    const socketPath = opt("cni-socket") || process.env.CNIKIT_SOCKET || DEFAULT_SOCKET;
    // records and reconcile: on by default only for the machine's own socket (tests use others)
    const stateDir = opt("state-dir") ?? (socketPath === DEFAULT_SOCKET ? "/var/lib/cni/cnikit" : undefined);
    const reconcileSec = Number(opt("reconcile-interval") ?? 5);
    if (!(reconcileSec >= 0)) throw new Error("--reconcile-interval must be a number of seconds (0: only at start)");
    const reconcile = stateDir
      ? { stateDir, cacheDir: opt("cni-cache-dir") ?? (process.env.CNI_CACHE_DIR || DEFAULT_CACHE_DIR), intervalMs: reconcileSec * 1000, ...(process.env.CNIKIT_BOOT_ID_FILE ? { bootIdFile: process.env.CNIKIT_BOOT_ID_FILE } : {}) }
      : undefined;
    const acceptMountNs = flagList(p, "accept-mount-ns");
    const cni = new CniServer({ socketPath, maxConcurrent: maxRequests, timeoutMs: timeoutSec * 1000, log, ...(reconcile ? { reconcile } : {}), ...(acceptMountNs.length ? { acceptMountNs } : {}) });
    let agent: import("../agent/agent.ts").Agent | undefined;
    if (etcd) {
      const { Agent } = await import("../agent/agent.ts");
      agent = new Agent({
        etcd: etcd.options,
        prefix: etcd.prefix,
        ...(opt("iface") ? { iface: opt("iface")! } : {}),
        ...(etcd.publicIP ? { publicIP: etcd.publicIP } : {}),
        ...(opt("public-ipv6") ? { publicIPv6: opt("public-ipv6")! } : {}),
        subnetFile: opt("subnet-file") ?? "/run/flannel/subnet.env",
        ipMasq: p.flags["ip-masq"] === true,
        ttlSec: ttl,
        log,
        ...(opt("device-prefix") ? { devicePrefix: opt("device-prefix")! } : {}),
        ...(opt("bird-dir") ? { birdDir: opt("bird-dir")! } : {}),
        ...(opt("bpf-pin-dir") ? { bpfPinDir: opt("bpf-pin-dir")! } : {}),
        ...(netConf !== undefined ? { netConf } : {}),
        ...(hz ? { statusAt: hz } : {}),
      });
    }
    const signal = new Promise<"signal">((resolve) => {
      process.on("SIGTERM", () => resolve("signal"));
      process.on("SIGINT", () => resolve("signal"));
    });
    let agentStarted = !agent;
    let http: ReturnType<typeof import("../agent/http.ts").serveHealth> | undefined;
    let statusSource: import("../agent/status-data.ts").StatusSource | undefined;
    if (hz) {
      const { serveHealth } = await import("../agent/http.ts");
      const metrics = () => cni.metricsText() + (agent ? agent.metricsText() : "");
      // the status page (/ui, /api/status): this node's attachments from the runtime's result
      // cache, the nodes from etcd, latency from the metrics above
      const { StatusSource } = await import("../agent/status-data.ts");
      const { statusSvg } = await import("../agent/graph.ts");
      statusSource = new StatusSource({
        cacheDir: opt("cni-cache-dir") ?? (process.env.CNI_CACHE_DIR || DEFAULT_CACHE_DIR),
        daemon: () => ({ ready: cni.ready, inFlight: cni.inFlight, pendingRemovals: cni.pendingRemovals }),
        metrics,
        ...(etcd ? { etcd } : {}),
        bgpSessions: () => agent?.bgpSessions(),
      });
      const src = statusSource;
      http = serveHealth(hz, {
        healthy: () => cni.ready && (!agent || agent.healthy()),
        ready: () => cni.ready && agentStarted,
        metrics,
        ui: { status: () => src.snapshot(), graphSvg: async () => statusSvg(await src.snapshot()), attachments: () => src.attachments() },
      });
      log({ level: "info", msg: "serving the status page", url: `http://${formatHostPort(hz)}/ui` });
    }
    try {
      await cni.start();
      // a signal also ends an agent that is still starting (waiting for etcd or its network config);
      // a start that fails for good (a bad flag value, no such interface) is reported as an error
      const started = agent ? agent.start().then(() => "started" as const) : Promise.resolve("started" as const);
      started.catch(() => {});
      if ((await Promise.race([started, signal])) === "started") {
        agentStarted = true;
        await signal;
      }
    } finally {
      // not ready from here on; the socket goes, then calls already made finish
      await cni.stop();
      await agent?.stop();
      http?.stop(true);
      await statusSource?.close();
    }
    return 0;
  } catch (e) {
    return reportError(e);
  }
}
