/** `cnikit agent`: the node agent's command line (flannel-like flags). */

import { flagString, parseArgs } from "./args.ts";
import { reportError } from "./output.ts";

/** Usage text. */
export const AGENT_USAGE = `usage: cnikit agent [flags]

Lease this node's subnet in etcd, write subnet.env for the overlay plugin, and route to the other
nodes' subnets (vxlan or host-gw, as the network config in etcd says). Runs until SIGTERM/SIGINT.

  --etcd-endpoints URLS   comma-separated (default http://127.0.0.1:2379)
  --etcd-cafile FILE      TLS: CA certificate        --etcd-certfile FILE  client certificate
  --etcd-keyfile FILE     TLS: client key            --etcd-username USER / --etcd-password PASS
  --etcd-prefix PREFIX    key prefix (default /coreos.com/network)
  --iface NAME|IP         underlay interface, by name or by one of its addresses
                          (default: the default route's)
  --public-ip IP          address other nodes reach this one at (default: the interface's)
  --public-ipv6 IP        the same for an IPv6 network (default: the interface's global IPv6)
  --subnet-file FILE      where subnet.env goes (default /run/flannel/subnet.env)
  --ip-masq               masquerade traffic leaving the cluster network
  --device-prefix NAME    vxlan device is NAME.<VNI> (default cnikit)
  --lease-ttl SECONDS     etcd lease TTL (default 86400)
  --healthz ADDR:PORT     serve /healthz and /metrics there
`;

/** Run `cnikit agent` until a signal arrives. */
export async function agentCommand(argv: readonly string[]): Promise<number> {
  try {
    const p = parseArgs(argv, ["ip-masq"]);
    if (p.flags.help) {
      process.stdout.write(AGENT_USAGE);
      return 0;
    }
    const known = new Set(["help", "ip-masq", "etcd-endpoints", "etcd-cafile", "etcd-certfile", "etcd-keyfile", "etcd-username", "etcd-password", "etcd-prefix", "iface", "public-ip", "public-ipv6", "subnet-file", "lease-ttl", "healthz", "device-prefix"]);
    const unknown = Object.keys(p.flags).filter((k) => !known.has(k));
    if (unknown.length > 0 || p.positional.length > 0) throw new Error(`agent: unknown argument ${unknown.length ? `--${unknown[0]}` : p.positional[0]} (see cnikit agent --help)`);
    const { Agent } = await import("../agent/agent.ts");
    const healthz = flagString(p, "healthz");
    let hz: { host: string; port: number } | undefined;
    if (healthz) {
      const i = healthz.lastIndexOf(":");
      hz = { host: healthz.slice(0, i) || "127.0.0.1", port: Number(healthz.slice(i + 1)) };
      if (!Number.isInteger(hz.port) || hz.port <= 0) throw new Error(`--healthz ${healthz}: want ADDR:PORT`);
    }
    const ttl = Number(flagString(p, "lease-ttl") ?? 86400);
    if (!Number.isInteger(ttl) || ttl < 10) throw new Error("--lease-ttl must be at least 10 seconds");
    const opt = (k: string) => flagString(p, k);
    const agent = new Agent({
      etcd: {
        endpoints: (opt("etcd-endpoints") ?? "http://127.0.0.1:2379").split(",").map((s) => s.trim()).filter(Boolean),
        ...(opt("etcd-cafile") ? { caFile: opt("etcd-cafile")! } : {}),
        ...(opt("etcd-certfile") ? { certFile: opt("etcd-certfile")! } : {}),
        ...(opt("etcd-keyfile") ? { keyFile: opt("etcd-keyfile")! } : {}),
        ...(opt("etcd-username") ? { username: opt("etcd-username")!, password: opt("etcd-password") ?? "" } : {}),
      },
      prefix: opt("etcd-prefix") ?? "/coreos.com/network",
      ...(opt("iface") ? { iface: opt("iface")! } : {}),
      ...(opt("public-ip") ? { publicIP: opt("public-ip")! } : {}),
      ...(opt("public-ipv6") ? { publicIPv6: opt("public-ipv6")! } : {}),
      subnetFile: opt("subnet-file") ?? "/run/flannel/subnet.env",
      ipMasq: p.flags["ip-masq"] === true,
      ttlSec: ttl,
      ...(opt("device-prefix") ? { devicePrefix: opt("device-prefix")! } : {}),
      ...(hz ? { healthz: hz } : {}),
    });
    const signal = new Promise<"signal">((resolve) => {
      process.on("SIGTERM", () => resolve("signal"));
      process.on("SIGINT", () => resolve("signal"));
    });
    // a signal also ends an agent that is still starting (waiting for etcd or its network config);
    // a start that fails for good (a bad flag value, no such interface) is reported as an error
    const started = agent.start().then(() => "started" as const);
    started.catch(() => {});
    if ((await Promise.race([started, signal])) === "started") await signal;
    await agent.stop();
    return 0;
  } catch (e) {
    return reportError(e);
  }
}
