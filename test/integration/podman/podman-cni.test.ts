/**
 * Interoperability: a real container runtime, podman 4 with its CNI network backend, drives the CNI
 * plugins found in a plugin directory of our choosing (`pluginDir()` below: the reference Go plugins
 * today, cnikit's own plugins later).
 *
 * Isolation: the file runs in a private network namespace (`unshare -n`), so podman's bridge, veths
 * and iptables rules live there. Every podman command runs in a private mount namespace (a holder
 * process made by `unshare -m`) where `/run` and `/var/lib` are temporary directories: podman's
 * netns files (`/run/netns`), runc's state (`/run/runc`) and libcni's result cache
 * (`/var/lib/cni/results`, not configurable in podman 4) never reach the machine's own. Podman's
 * own state lives under a temporary directory through `--root`/`--runroot` and private
 * `CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF` and `CONTAINERS_REGISTRIES_CONF` files.
 *
 * In the suite's second run (CNIKIT_TEST_VIA=daemon) a daemon of its own runs in podman's mount
 * namespace (the file's daemon declines shims of another mount namespace: their paths are not its
 * own), podman's environment names its socket, and the test checks from the daemon's metrics that
 * podman's calls of cnikit's plugins went through cnikit-shim into it.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { assertPrivateNetns, must, ping, run, runPrefix, tempDir } from "../../support/netns.ts";
import type { Ran } from "../../support/netns.ts";
import { startDaemon, type TestDaemon } from "../../support/daemon.ts";

assertPrivateNetns();

/** cnikit's compiled binary: its bridge and host-local set up the container's network. */
const CNIKIT = join(import.meta.dir, "../../../dist/cnikit");
/** cnikit's plugins in this test; the rest of podman's chain comes from the reference plugins. */
const CNIKIT_TYPES = ["bridge", "host-local", "portmap", "tuning", "loopback"];
const REFERENCE_SOURCE = "/usr/lib/cni";
const REFERENCE_TYPES = ["firewall"];

/**
 * Make `<parent>/plugins` (podman's `cni_plugin_dirs`): cnikit installed there, so bridge and
 * host-local are links to the cnikit binary, and links to the reference for the other types.
 */
function pluginDir(parent: string): string {
  const dir = join(parent, "plugins");
  mkdirSync(dir);
  const r = run([CNIKIT, "install", "--bin-dir", dir]);
  if (r.code !== 0) throw new Error(`cnikit install failed: ${r.stderr || r.stdout}`);
  for (const t of CNIKIT_TYPES) if (!existsSync(join(dir, t))) throw new Error(`cnikit has no built-in ${t}`);
  for (const t of REFERENCE_TYPES) {
    run(["rm", "-f", join(dir, t)]);
    symlinkSync(join(REFERENCE_SOURCE, t), join(dir, t));
  }
  return dir;
}

const BUSYBOX = "/bin/busybox"; // statically linked (Debian busybox-static)
const SUBNET = "10.211.7.0/24";
const GATEWAY = "10.211.7.1";

const prefix = runPrefix("pm");
const NET = `${prefix}net`;
const BRIDGE = `${prefix}br`;
const CTR = `${prefix}c1`;
const CGROUP_PARENT = `/${prefix}`; // runc needs cgroups; cgroupfs makes /sys/fs/cgroup/*/<prefix>, removed in afterAll

/** Machine paths podman uses by default; none may be changed by this file. */
const HOST_PATHS = ["/etc/containers", "/etc/cni", "/var/lib/containers", "/var/lib/cni", "/run/containers", "/run/libpod", "/run/runc", "/run/netns"];

const tmp = tempDir("podman");
const T = tmp.path;
const dirs = {
  root: join(T, "storage"),
  runroot: join(T, "storage-run"),
  netConf: join(T, "net.d"),
  ipam: join(T, "ipam"),
  rootfs: join(T, "rootfs"),
  engineTmp: join(T, "libpod-tmp"),
  static: join(T, "libpod-static"),
  volumes: join(T, "volumes"),
  run: join(T, "run"), // /run in podman's mount namespace
  varLib: join(T, "var-lib"), // /var/lib in podman's mount namespace
};
/** libcni's result cache as seen from here (podman 4 uses the fixed /var/lib/cni/results). */
const CNI_CACHE = join(dirs.varLib, "cni", "results");
const MARKER = join(T, "marker");

let holder: Bun.Subprocess<"pipe", "pipe", "pipe"> | undefined;
/** The daemon in podman's mount namespace (second run only). */
let podDaemon: TestDaemon | undefined;
const VIA_DAEMON = process.env.CNIKIT_TEST_VIA === "daemon";
const METRICS_PORT = 19371; // on this file's private namespace's loopback
let env: Record<string, string> = {};
let hostBefore = new Map<string, boolean>();

/** Run podman in the private mount namespace with this file's configuration. */
function podman(...args: string[]): Ran {
  if (!holder) throw new Error("mount namespace holder not running");
  return run(
    [
      "nsenter",
      `--mount=/proc/${holder.pid}/ns/mnt`,
      "--",
      "podman",
      "--root",
      dirs.root,
      "--runroot",
      dirs.runroot,
      "--cgroup-manager=cgroupfs",
      "--events-backend=none",
      ...args,
    ],
    { env },
  );
}

/** Like `podman` but throw with podman's output on failure; returns stdout. */
function mustPodman(...args: string[]): string {
  const r = podman(...args);
  if (r.code !== 0) throw new Error(`podman ${args.join(" ")} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** A minimal busybox root filesystem for `--rootfs` (no image pulls: there is no registry to pull from). */
function buildRootfs(dir: string): void {
  for (const d of ["bin", "etc", "proc", "sys", "dev", "tmp", "run"]) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(BUSYBOX, join(dir, "bin", "busybox"));
  chmodSync(join(dir, "bin", "busybox"), 0o755);
  for (const applet of ["sh", "sleep", "ping", "ip", "cat", "ls"]) symlinkSync("busybox", join(dir, "bin", applet));
  writeFileSync(join(dir, "etc", "passwd"), "root:x:0:0:root:/:/bin/sh\n");
  writeFileSync(join(dir, "etc", "group"), "root:x:0:\n");
}

function writeConfig(plugins: string): void {
  writeFileSync(
    join(T, "containers.conf"),
    [
      "[containers]",
      // podman's default (nofile=1048576 for root) is above this machine's hard limit: runc fails
      // with "error setting rlimit type 7: operation not permitted"
      'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
      "",
      "[network]",
      'network_backend = "cni"',
      `cni_plugin_dirs = [${JSON.stringify(plugins)}]`,
      `network_config_dir = ${JSON.stringify(dirs.netConf)}`,
      // so that podman never synthesizes its own "podman" network (bridge cni-podman0)
      `default_network = ${JSON.stringify(NET)}`,
      "",
      "[engine]",
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "none"',
      // "shm" would put podman's locks in /dev/shm/libpod_lock, shared with any other podman
      'lock_type = "file"',
      `tmp_dir = ${JSON.stringify(dirs.engineTmp)}`,
      `static_dir = ${JSON.stringify(dirs.static)}`,
      `volume_path = ${JSON.stringify(dirs.volumes)}`,
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(T, "storage.conf"),
    ["[storage]", 'driver = "vfs"', `graphroot = ${JSON.stringify(dirs.root)}`, `runroot = ${JSON.stringify(dirs.runroot)}`, ""].join("\n"),
  );
  writeFileSync(join(T, "registries.conf"), "");
  // the chain podman 4 generates for its own networks (bridge, portmap, firewall, tuning), with
  // our bridge name and host-local's reservations inside the temporary directory
  const conflist = {
    cniVersion: "1.0.0",
    name: NET,
    plugins: [
      {
        type: "bridge",
        bridge: BRIDGE,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          dataDir: dirs.ipam,
          ranges: [[{ subnet: SUBNET, gateway: GATEWAY }]],
          routes: [{ dst: "0.0.0.0/0" }],
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
      { type: "firewall", backend: "iptables" },
      { type: "tuning" },
    ],
  };
  writeFileSync(join(dirs.netConf, `${NET}.conflist`), JSON.stringify(conflist, null, 2));
}

/** Start the process whose mount namespace podman runs in: `/run` and `/var/lib` are ours there. */
async function startHolder(): Promise<void> {
  const script = 'mount --bind "$1" /run && mount --bind "$2" /var/lib && echo ready && exec cat >/dev/null';
  const proc = Bun.spawn(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "holder", dirs.run, dirs.varLib], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  holder = proc;
  const reader = proc.stdout.getReader();
  let out = "";
  while (!out.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`mount namespace holder failed: ${await new Response(proc.stderr).text()}`);
    out += new TextDecoder().decode(value);
  }
  reader.releaseLock();
}

async function stopHolder(): Promise<void> {
  const proc = holder;
  if (!proc) return;
  try {
    proc.stdin.end(); // cat exits on end of input
  } catch {
    // already closed
  }
  const exited = await Promise.race([proc.exited, Bun.sleep(3000).then(() => undefined)]);
  if (exited === undefined) proc.kill("SIGKILL");
  await proc.exited;
  holder = undefined;
}

/** Remove the cgroup directories made under CGROUP_PARENT in every hierarchy (deepest first). */
function removeCgroups(): void {
  let roots: string[] = [];
  try {
    roots = readdirSync("/sys/fs/cgroup").map((h) => join("/sys/fs/cgroup", h, CGROUP_PARENT));
  } catch {
    return;
  }
  for (const top of [join("/sys/fs/cgroup", CGROUP_PARENT), ...roots]) {
    if (!existsSync(top)) continue;
    const subdirs = (dir: string): string[] => {
      const out: string[] = [];
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) out.push(...subdirs(join(dir, e.name)), join(dir, e.name));
      return out;
    };
    for (const d of [...subdirs(top), top]) {
      try {
        rmdirSync(d);
      } catch {
        // busy or gone: best effort
      }
    }
  }
}

/** Veth links of this (private) network namespace. */
function veths(): { ifname: string; master?: string }[] {
  return JSON.parse(must(["ip", "-j", "link", "show", "type", "veth"]) || "[]") as { ifname: string; master?: string }[];
}

/** host-local's reservations (file name = address) for NET. */
function reservations(): string[] {
  const dir = join(dirs.ipam, NET);
  return existsSync(dir) ? readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : [];
}

/** libcni cache entries for NET (`<network>-<containerID>-<ifname>`). */
function cacheEntries(): string[] {
  return existsSync(CNI_CACHE) ? readdirSync(CNI_CACHE).filter((f) => f.startsWith(`${NET}-`)) : [];
}

/** Host paths that podman changed (newer than the marker), or that appeared, since beforeAll. */
function hostChanges(): string[] {
  const changed: string[] = [];
  for (const p of HOST_PATHS) {
    const existed = hostBefore.get(p) ?? false;
    if (!existsSync(p)) continue;
    if (!existed) {
      changed.push(`${p} (created)`);
      continue;
    }
    // /run/netns is shared with other suites' namespaces: only podman's own names count there
    const r = run(["find", p, "-newer", MARKER, ...(p === "/run/netns" ? ["-name", "netns-*"] : [])]);
    changed.push(...r.stdout.split("\n").filter((l) => l !== ""));
  }
  for (const leaked of [join("/var/lib/cni/networks", NET), join("/var/lib/cni/results")]) {
    if (existsSync(leaked) && readdirSync(leaked).some((f) => f.includes(prefix))) changed.push(leaked);
  }
  return changed;
}

let containerId = "";
let containerIp = "";

describe("podman (CNI backend) drives the plugins in our plugin directory", () => {
  beforeAll(async () => {
    for (const cmd of ["podman", "runc", "nsenter", "iptables"]) {
      if (run(["sh", "-c", `command -v ${cmd}`]).code !== 0) throw new Error(`${cmd} is missing: run scripts/setup.sh`);
    }
    if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: install busybox-static (scripts/setup.sh)`);
    writeFileSync(MARKER, "");
    await Bun.sleep(20); // let the marker's mtime be strictly older than anything podman writes
    hostBefore = new Map(HOST_PATHS.map((p) => [p, existsSync(p)]));
    for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
    mkdirSync(join(dirs.varLib, "cni"), { recursive: true });
    buildRootfs(dirs.rootfs);
    writeConfig(pluginDir(T));
    env = {
      ...(process.env as Record<string, string>),
      CONTAINERS_CONF: join(T, "containers.conf"),
      CONTAINERS_STORAGE_CONF: join(T, "storage.conf"),
      CONTAINERS_REGISTRIES_CONF: join(T, "registries.conf"),
    };
    await startHolder();
    if (VIA_DAEMON) {
      must(["ip", "link", "set", "lo", "up"]); // this file's namespace: the metrics are read over its loopback
      // the default path as podman's mount namespace sees it (/run/cnikit/cni.sock there, this
      // file's directory here): podman hands its environment to the plugins it runs itself, but
      // the teardown that conmon's exit command (`podman container cleanup`) may do first gets
      // conmon's short environment, without CNIKIT_SOCKET, and found no daemon in about 1 run of 3
      const socket = join(dirs.run, "cnikit", "cni.sock");
      podDaemon = await startDaemon(socket, ["--healthz", `127.0.0.1:${METRICS_PORT}`], env, ["nsenter", `--mount=/proc/${holder!.pid}/ns/mnt`, "--"]);
      env.CNIKIT_SOCKET = socket; // libcni passes its environment on to the plugins (the shims)
    }
  });

  afterAll(async () => {
    try {
      if (holder) {
        podman("rm", "--force", "--time", "0", CTR); // by name; fine when already gone
        run(["ip", "link", "del", BRIDGE]);
      }
    } finally {
      await podDaemon?.stop();
      await stopHolder();
      removeCgroups();
      tmp.remove();
    }
  });

  test("podman uses the CNI backend, our network config and plugin directory", () => {
    expect(mustPodman("info", "--format", "{{.Host.NetworkBackend}}").trim()).toBe("cni");
    const nets = JSON.parse(mustPodman("network", "inspect", NET)) as { name: string; driver: string; network_interface: string }[];
    expect(nets[0]?.name).toBe(NET);
    expect(nets[0]?.driver).toBe("bridge");
    expect(nets[0]?.network_interface).toBe(BRIDGE);
    // only our network: podman did not synthesize its default "podman" network
    expect(mustPodman("network", "ls", "--format", "{{.Name}}").trim().split("\n")).toEqual([NET]);
  });

  test("a container gets its address from host-local and reaches the bridge's gateway", () => {
    containerId = mustPodman(
      "run",
      "--detach",
      "--name",
      CTR,
      "--network",
      NET,
      "--cgroups=no-conmon",
      `--cgroup-parent=${CGROUP_PARENT}`,
      "--rootfs",
      dirs.rootfs,
      "sleep",
      "300",
    ).trim();
    expect(containerId).toMatch(/^[0-9a-f]{64}$/);

    // the container's address, as the container sees it
    const addr = mustPodman("exec", CTR, "ip", "-o", "-4", "addr", "show", "dev", "eth0");
    const m = /inet (\d+\.\d+\.\d+\.\d+)\/24/.exec(addr);
    expect(m).not.toBeNull();
    containerIp = m![1]!;
    expect(containerIp.startsWith("10.211.7.")).toBe(true);
    expect(containerIp).not.toBe(GATEWAY);

    // host-local's reservation: one file named for the address, holding the container id
    expect(reservations()).toEqual([containerIp]);
    expect(readFileSync(join(dirs.ipam, NET, containerIp), "utf8").split(/\r?\n/)[0]).toBe(containerId);

    // the bridge plugin's work in this namespace: the bridge with the gateway, one veth on it
    const br = JSON.parse(must(["ip", "-j", "addr", "show", "dev", BRIDGE])) as { addr_info: { family: string; local: string; prefixlen: number }[] }[];
    expect(br[0]?.addr_info.some((a) => a.family === "inet" && a.local === GATEWAY && a.prefixlen === 24)).toBe(true);
    const links = veths();
    expect(links.length).toBe(1);
    expect(links[0]?.master).toBe(BRIDGE);

    // libcni's result cache, written by podman
    const entry = `${NET}-${containerId}-eth0`;
    expect(cacheEntries()).toEqual([entry]);
    const cached = JSON.parse(readFileSync(join(CNI_CACHE, entry), "utf8")) as {
      kind: string;
      containerId: string;
      ifName: string;
      networkName: string;
      result: { ips: { address: string; gateway?: string }[] };
    };
    expect(cached.kind).toBe("cniCacheV1");
    expect(cached.containerId).toBe(containerId);
    expect(cached.ifName).toBe("eth0");
    expect(cached.networkName).toBe(NET);
    expect(cached.result.ips[0]?.address).toBe(`${containerIp}/24`);
    expect(cached.result.ips[0]?.gateway).toBe(GATEWAY);

    // connectivity both ways
    const pinged = podman("exec", CTR, "ping", "-c", "1", "-W", "2", GATEWAY);
    expect(pinged.stdout).toContain("1 packets received");
    expect(pinged.code).toBe(0);
    expect(ping("", containerIp)).toBe(true);
  });

  test("podman rm removes the veth, the reservation and the cache entry", () => {
    expect(containerId).not.toBe("");
    mustPodman("rm", "--force", "--time", "0", CTR);
    expect(podman("container", "exists", CTR).code).toBe(1);
    // through the daemon the veth goes in a batch, within a second of the DEL's reply
    for (const end = Date.now() + 1000; veths().length > 0 && Date.now() < end; ) Bun.sleepSync(10);
    expect(veths()).toEqual([]);
    expect(reservations()).toEqual([]);
    expect(cacheEntries()).toEqual([]);
    // podman's netns file and runc's state went too (in podman's private /run)
    expect(readdirSync(join(dirs.run, "netns"))).toEqual([]);
    expect(existsSync(join(dirs.run, "runc", containerId))).toBe(false);
    // the bridge stays (shared host object), without ports
    expect(run(["ip", "link", "show", "dev", BRIDGE]).code).toBe(0);
  });

  // only in the second run (defined there, not skipped here)
  if (VIA_DAEMON) test("second run: podman's calls of cnikit's plugins went through cnikit-shim into the daemon", async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`)).text();
    const served = (plugin: string, verb: string) =>
      Number(new RegExp(`cnikit_cni_requests_total\\{plugin="${plugin}",verb="${verb}",code="0"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    for (const plugin of ["bridge", "portmap", "tuning"]) {
      expect(`${plugin} ADD ${served(plugin, "ADD")}`).toBe(`${plugin} ADD 1`);
      expect(served(plugin, "DEL")).toBeGreaterThanOrEqual(1);
    }
    expect(/cnikit_cni_requests_declined_total (\d+)/.exec(metrics)?.[1]).toBe("0");
  });

  test("nothing of the machine's podman or CNI state was touched", () => {
    expect(hostChanges()).toEqual([]);
  });
});
