/**
 * Interoperability: containerd's CNI library, go-cni (Debian golang-github-containerd-go-cni-dev,
 * over containernetworking/cni's libcni), drives cnikit's plugins as containerd's CRI plugin does
 * for every pod: test/interop/gocni/main.go calls gocni.New with the CRI plugin's options, Load
 * with go-cni's own loopback network and the default conflist, then Setup / Check / Remove with
 * the port mappings and bandwidth as capabilities and the pod's labels as CNI_ARGS. go-cni sends
 * capability arguments with Go field names (`HostPort`, `IngressRate`, ...).
 *
 * The conflist is containerd's default (bridge with isGateway, ipMasq and promiscMode, host-local
 * with one IPv4 and one IPv6 range, portmap) with firewall, bandwidth and tuning added, at
 * cniVersion 1.0.0; every plugin type is a link to dist/cnikit in a temporary bin dir.
 *
 * Isolation: the file runs in a private network namespace (`unshare -n`). go-cni has no cache dir
 * option and libcni reads none from the environment, so the harness runs in a mount namespace of
 * its own (`unshare -m`) where /var/lib is a temporary directory: libcni's result cache
 * (/var/lib/cni/results) lands there. The plugins' own state paths are set to temporary
 * directories too.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertPrivateNetns, linksSettled, must, Namespaces, ping, run, runPrefix, tempDir } from "../../support/netns.ts";
import { installPlugins } from "../../support/plugin-bin.ts";
import { ask, whoamiServer } from "../../support/tcp.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const HARNESS_SRC = join(ROOT, "test/interop/gocni/main.go");
const GOPATH = "/usr/share/gocode";
const TYPES = ["bridge", "host-local", "portmap", "firewall", "bandwidth", "tuning", "loopback"];

const prefix = runPrefix("g"); // "ckg..."
const ns = new Namespaces(prefix);
const tmp = tempDir("gocni");
const T = tmp.path;
const bin = join(T, "bin");
const confDir = join(T, "net.d");
const varLib = join(T, "var-lib"); // /var/lib in the harness's mount namespace
const CACHE = join(varLib, "cni", "results"); // libcni's result cache, as seen from here
const ipamDir = join(T, "ipam");
const firewallDir = join(T, "firewall");
const tuningDir = join(T, "tuning");
const harness = join(T, "gocni");
const BRIDGE = `${prefix}br`;
const NODE_IP = "198.18.88.1"; // the node's own address (on lo here: no dummy module everywhere)
const NET = "containerd-net";
const GW4 = "10.88.0.1";
const GW6 = "fd00:88::1";
const MAX_UINT32 = 4294967295; // the burst containerd sends with every rate (toCNIBandWidth)

// containerd's default conflist (its install-cni script and docs), with firewall, bandwidth and
// tuning, and this test's bridge name, ULA IPv6 range and state paths
const conflist = {
  cniVersion: "1.0.0",
  name: NET,
  plugins: [
    {
      type: "bridge", bridge: BRIDGE, isGateway: true, ipMasq: true, promiscMode: true,
      ipam: {
        type: "host-local",
        ranges: [[{ subnet: "10.88.0.0/16" }], [{ subnet: "fd00:88::/64" }]],
        routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
        dataDir: ipamDir,
      },
    },
    { type: "portmap", capabilities: { portMappings: true } },
    { type: "firewall", dataDir: firewallDir },
    { type: "bandwidth", capabilities: { bandwidth: true } },
    { type: "tuning", sysctl: { "net.core.somaxconn": "1024" }, dataDir: tuningDir },
  ],
};

/** One pod as containerd sees it: sandbox id, netns, labels, port mappings, bandwidth. */
interface Pod {
  id: string;
  netns: string;
  labels: Record<string, string>;
  portMappings: Array<{ HostPort: number; ContainerPort: number; Protocol: string; HostIP: string }>;
  bandwidth: { IngressRate: number; IngressBurst: number; EgressRate: number; EgressBurst: number };
  ip4?: string;
  ip6?: string;
  hostVeth?: string;
}
const pods: Pod[] = [];
let buildError = "";
const servers: Array<{ stop: () => void }> = [];

interface GoCniOut {
  ok: boolean;
  error?: string;
  result?: {
    interfaces: Record<string, { IPConfigs: Array<{ IP: string; Gateway: string }> | null; Mac: string; Sandbox: string }>;
    raw: Array<{ cniVersion: string; interfaces?: Array<{ name: string; sandbox?: string }>; ips?: Array<{ address: string }> }>;
  };
  stderr: string;
}

/** Run the go-cni harness (in its own mount namespace, /var/lib = varLib) with one operation. */
function gocni(op: "setup" | "check" | "remove" | "status", pod?: Pod, opts: { noLoopback?: boolean } = {}): GoCniOut {
  const input = { op, confDir, binDir: bin, timeoutSeconds: 60, ...opts, ...(pod ? { id: pod.id, netns: pod.netns, labels: pod.labels, portMappings: pod.portMappings, bandwidth: pod.bandwidth } : {}) };
  const script = 'mount --bind "$1" /var/lib && exec "$2"';
  const r = run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "gocni", varLib, harness], { stdin: JSON.stringify(input) });
  try {
    return { ...(JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as Omit<GoCniOut, "stderr">), stderr: r.stderr };
  } catch {
    return { ok: false, error: `harness exited ${r.code}: ${r.stdout}${r.stderr}`, stderr: r.stderr };
  }
}

/** What a failed call said, for expect() messages. */
const why = (o: GoCniOut) => (o.ok ? "" : `${o.error}\n${o.stderr}`);

function newPod(name: string, hostPort: number): Pod {
  const id = Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, "0")).join("");
  return {
    id,
    netns: ns.add(name),
    // the labels containerd's CRI plugin passes (toCNILabels)
    labels: { K8S_POD_NAMESPACE: "default", K8S_POD_NAME: `${prefix}-${name}`, K8S_POD_INFRA_CONTAINER_ID: id, K8S_POD_UID: crypto.randomUUID(), IgnoreUnknown: "1" },
    portMappings: [{ HostPort: hostPort, ContainerPort: 8080, Protocol: "tcp", HostIP: "" }],
    bandwidth: { IngressRate: 100_000_000, IngressBurst: MAX_UINT32, EgressRate: 100_000_000, EgressBurst: MAX_UINT32 },
  };
}

/** ping with a few tries (IPv6 neighbour discovery may need a moment after setup). */
function pingSoon(netns: string, ip: string): boolean {
  for (let i = 0; i < 3; i++) if (ping(netns, ip)) return true;
  return false;
}

const links = (type: string): string[] => JSON.parse(must(["ip", "-j", "link", "show", "type", type]) || "[]").map((l: { ifname: string }) => l.ifname);
const files = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String) : []);


beforeAll(() => {
  must(["ip", "link", "set", "lo", "up"]);
  for (const d of [bin, confDir, varLib]) mkdirSync(d, { recursive: true });
  // the harness, built once per run in GOPATH mode against Debian's go-cni and libcni
  const b = run(["go", "build", "-o", harness, HARNESS_SRC], {
    env: { PATH: process.env.PATH, HOME: T, GOPATH, GO111MODULE: "off", GOCACHE: join(T, "go-cache"), GOFLAGS: "" },
  });
  if (b.code !== 0) buildError = `go build failed (${b.code}):\n${b.stdout}${b.stderr}`;
  installPlugins(CNIKIT, bin, TYPES);
  writeFileSync(join(confDir, "10-containerd-net.conflist"), JSON.stringify(conflist, null, 2));
  must(["ip", "addr", "add", `${NODE_IP}/32`, "dev", "lo"]);
  // containerd runs on a node that forwards (kubelet requires it); inside this netns only
  must(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  must(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
}, 120_000); // the Go build may take a while on a busy machine

afterAll(() => {
  for (const s of servers) s.stop();
  // pods still attached after a failure: Remove through go-cni, then whatever is left
  if (!buildError) for (const p of pods) gocni("remove", p);
  ns.cleanup();
  run(["ip", "addr", "del", `${NODE_IP}/32`, "dev", "lo"]);
  for (const l of [BRIDGE, ...links("ifb").filter((n) => n.startsWith("bwp") || n.startsWith("ck"))]) run(["ip", "link", "del", l]);
  for (const t of ["cnikit_portmap", "cnikit_firewall", "cnikit_masq"]) run(["nft", "delete", "table", "inet", t]);
  tmp.remove();
});

describe("containerd's go-cni drives cnikit's plugins", () => {
  test("the harness builds against Debian's go-cni; Status after Load", () => {
    expect(buildError).toBe("");
    const s = gocni("status");
    expect(why(s)).toBe("");
    expect(s.ok).toBe(true);
  });

  test("Setup of two pods with port mappings and bandwidth as capabilities (Go field names)", () => {
    expect(buildError).toBe("");
    for (const [name, port] of [["a", 18080], ["b", 18081]] as const) {
      const pod = newPod(name, port);
      pods.push(pod);
      const out = gocni("setup", pod);
      expect(why(out)).toBe("");
      const eth0 = out.result!.interfaces.eth0!;
      const ips = (eth0.IPConfigs ?? []).map((c) => c.IP);
      pod.ip4 = ips.find((ip) => !ip.includes(":"));
      pod.ip6 = ips.find((ip) => ip.includes(":"));
      expect(pod.ip4).toMatch(/^10\.88\./);
      expect(pod.ip6).toMatch(/^fd00:88::/);
      expect(eth0.Sandbox).toBe(pod.netns);
      // go-cni's loopback network gave the pod "lo" (its own 0.3.1 list), ours eth0
      expect(Object.keys(out.result!.interfaces)).toContain("lo");
      const ours = out.result!.raw.find((r) => r.interfaces?.some((i) => i.name === BRIDGE));
      expect(ours?.cniVersion).toBe("1.0.0");
      pod.hostVeth = ours?.interfaces?.find((i) => !i.sandbox && i.name !== BRIDGE)?.name;
      expect(pod.hostVeth).toBeDefined();
    }
    // libcni cached both networks of both pods under the scratch /var/lib
    expect(files(CACHE).sort()).toEqual(pods.flatMap((p) => [`cni-loopback-${p.id}-lo`, `${NET}-${p.id}-eth0`]).sort());
    // the labels arrived as CNI_ARGS (IgnoreUnknown=1 among them) and nothing refused them
    expect(must(["nsenter", `--net=${pods[0]!.netns}`, "cat", "/proc/sys/net/core/somaxconn"]).trim()).toBe("1024");
    // promiscMode: the bridge is promiscuous
    expect(must(["ip", "link", "show", BRIDGE])).toContain("PROMISC");
  }, 60_000);

  test("pods reach each other and the gateway over IPv4 and IPv6", () => {
    const [a, b] = pods;
    expect(a?.ip4 && b?.ip4).toBeTruthy();
    expect(pingSoon(a!.netns, b!.ip4!)).toBe(true);
    expect(pingSoon(b!.netns, a!.ip4!)).toBe(true);
    expect(pingSoon(a!.netns, b!.ip6!)).toBe(true);
    expect(pingSoon(b!.netns, a!.ip6!)).toBe(true);
    expect(pingSoon(a!.netns, GW4)).toBe(true);
    expect(pingSoon(a!.netns, GW6)).toBe(true);
    expect(pingSoon(a!.netns, NODE_IP)).toBe(true);
  });

  test("a hostPort reaches pod a from the node's 127.0.0.1, from its own address and from pod b", async () => {
    const [a, b] = pods;
    expect(a?.ip4).toBeTruthy();
    servers.push(await whoamiServer(a!.netns, 8080));
    // masqueraded: pod a sees the bridge's address, and answers through the node
    expect(ask("", "127.0.0.1", 18080)).toBe(GW4); // the node, through localhost (route_localnet)
    expect(ask("", NODE_IP, 18080)).not.toBe(""); // the node, through its own address
    expect(ask(b!.netns, NODE_IP, 18080)).toBe(GW4); // pod b through the node's address (hairpin)
    expect(ask(b!.netns, a!.ip4!, 8080)).toBe(b!.ip4!); // and directly, unmasqueraded
    expect(ask("", "127.0.0.1", 18081)).toBe(""); // pod b's hostPort: nothing listens there
  }, 30_000);

  test("bandwidth shapes both directions: tbf on the host veth, an ifb device for egress", () => {
    for (const p of pods) {
      expect(p.hostVeth).toBeDefined();
      expect(must(["tc", "qdisc", "show", "dev", p.hostVeth!])).toContain("tbf");
    }
    expect(links("ifb").length).toBe(pods.length);
    for (const ifb of links("ifb")) expect(must(["tc", "qdisc", "show", "dev", ifb])).toContain("tbf");
  });

  test("Check passes for both pods", () => {
    for (const p of pods) {
      // as containerd calls it: libcni refuses CHECK on lists below 0.4.0 and go-cni's own loopback
      // list is 0.3.1, so go-cni's Check over WithLoNetwork may fail on that network only
      const c = gocni("check", p);
      if (!c.ok) expect(c.error).toMatch(/configuration version "0\.3\.1" does not support the CHECK command/);
      // the pod network alone: every plugin of the chain checks the pod
      const own = gocni("check", p, { noLoopback: true });
      expect(why(own)).toBe("");
    }
  });

  test("Remove twice succeeds and leaves nothing behind", () => {
    expect(pods.length).toBe(2);
    const addrs = pods.flatMap((p) => [p.ip4, p.ip6]).filter((x): x is string => Boolean(x));
    for (const p of pods) {
      for (let i = 0; i < 2; i++) {
        const r = gocni("remove", p);
        expect(why(r)).toBe("");
      }
    }
    // through the daemon, veths and ifb devices go in a batch within a second of the reply
    expect(linksSettled("veth").map((l) => l.ifname)).toEqual([]);
    expect(linksSettled("ifb").map((l) => l.ifname)).toEqual([]);
    expect(files(join(ipamDir, NET)).filter((f) => /^[0-9a-f.:]+$/.test(f))).toEqual([]);
    expect(files(CACHE)).toEqual([]);
    expect(files(join(firewallDir, NET))).toEqual([]);
    for (const p of pods) expect(files(tuningDir).filter((f) => f.includes(p.id))).toEqual([]);
    const ruleset = must(["nft", "list", "ruleset"]);
    for (const ip of addrs) expect(ruleset).not.toContain(ip);
    expect(ruleset).not.toMatch(/\b1808[01]\b/); // no port mapping left
    expect(ask("", "127.0.0.1", 18080)).toBe("");
    pods.length = 0;
  }, 60_000);
});
