/**
 * Issue 16: the binaries deploy/Containerfile copies into the image need nothing from it but
 * glibc. podman runs a container from a bare root filesystem (`--rootfs`; no registry here to
 * build or pull the Debian image from) holding a static busybox (Debian busybox-static), glibc's
 * shared libraries that `ldd dist/cnikit` names, and nothing else but dist/cnikit and
 * dist/cnikit-shim at /opt/cnikit, as the Containerfile places them. Inside it the init
 * container's command runs (`cnikit install` into a volume at /host/opt/cni/bin, a
 * `--conflist` from a volume into /host/etc/cni/net.d), then the copies answer: `cnikit version`,
 * and a plugin's VERSION through its link to the shim (no daemon: the shim runs the standalone
 * binary), and loopback ADD on the container's own `lo` (libc through FFI, netlink).
 *
 * Isolation: a private network namespace (`unshare -n`); the container has no network
 * (`--network none`); podman runs in a private mount namespace (a holder made by `unshare -m`)
 * where /run and /var/lib are temporary directories, with its storage, config and runroot under a
 * temp folder; cgroups under a prefixed parent, removed at the end.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { assertPrivateNetns, must, run, tempDir, type Ran } from "../../support/netns.ts";
import { DIST } from "./kubelet.ts";

assertPrivateNetns();

const id = `${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
const prefix = `k8${id}i`;
const BUSYBOX = "/bin/busybox";
const CGROUP_PARENT = `/${prefix}`;
const tmp = tempDir("k8s-image");
const T = tmp.path;
const dirs = {
  root: join(T, "storage"),
  runroot: join(T, "storage-run"),
  rootfs: join(T, "rootfs"),
  hostBin: join(T, "host-opt-cni-bin"),
  hostConf: join(T, "host-etc-cni-net.d"),
  config: join(T, "config"),
  engineTmp: join(T, "libpod-tmp"),
  static: join(T, "libpod-static"),
  volumes: join(T, "volumes"),
  run: join(T, "run"),
  varLib: join(T, "var-lib"),
};
let holder: ReturnType<typeof Bun.spawn> | undefined;
let env: Record<string, string> = {};
const GLIBC = /^(libc|libm|libpthread|libdl|librt|ld-linux[-\w.]*)\.so/;
let libs: string[] = [];

/** The shared libraries `ldd` says `bin` needs (paths), and whether each is glibc's. */
function neededLibs(bin: string): string[] {
  const out = must(["ldd", bin]);
  return out.split("\n").map((l) => /(\/\S+)\s+\(0x/.exec(l)?.[1]).filter((p): p is string => !!p);
}

function podman(...args: string[]): Ran {
  if (!holder) throw new Error("mount namespace holder not running");
  return run(["nsenter", `--mount=/proc/${holder.pid}/ns/mnt`, "--", "podman", "--root", dirs.root, "--runroot", dirs.runroot, "--cgroup-manager=cgroupfs", "--events-backend=none", ...args], { env });
}

/** `podman run` of the bare rootfs, privileged as the DaemonSet's containers, with the init container's volumes. */
function inImage(...cmd: string[]): Ran {
  return podman("run", "--rm", "--privileged", "--network", "none", "--cgroups=no-conmon", `--cgroup-parent=${CGROUP_PARENT}`,
    "-v", `${dirs.hostBin}:/host/opt/cni/bin`, "-v", `${dirs.hostConf}:/host/etc/cni/net.d`, "-v", `${dirs.config}:/etc/cnikit:ro`,
    "--rootfs", dirs.rootfs, ...cmd);
}

beforeAll(async () => {
  for (const cmd of ["podman", "runc", "nsenter", "ldd"]) if (run(["sh", "-c", `command -v ${cmd}`]).code !== 0) throw new Error(`${cmd} is missing: run scripts/setup.sh`);
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: install busybox-static (scripts/setup.sh)`);
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  // the rootfs: busybox, glibc's libraries the binary needs, the two binaries; nothing else
  const r = dirs.rootfs;
  for (const d of ["bin", "etc", "proc", "sys", "dev", "tmp", "run", "opt/cnikit"]) mkdirSync(join(r, d), { recursive: true });
  copyFileSync(BUSYBOX, join(r, "bin/busybox"));
  chmodSync(join(r, "bin/busybox"), 0o755);
  for (const a of ["sh", "ls", "cat"]) symlinkSync("busybox", join(r, "bin", a));
  writeFileSync(join(r, "etc/passwd"), "root:x:0:0:root:/:/bin/sh\n");
  writeFileSync(join(r, "etc/group"), "root:x:0:\n");
  libs = neededLibs(join(DIST, "cnikit"));
  for (const lib of libs) {
    mkdirSync(join(r, dirname(lib)), { recursive: true });
    copyFileSync(lib, join(r, lib)); // follows the link: the library itself under the name asked for
  }
  for (const b of ["cnikit", "cnikit-shim"]) {
    copyFileSync(join(DIST, b), join(r, "opt/cnikit", b));
    chmodSync(join(r, "opt/cnikit", b), 0o755);
  }
  writeFileSync(join(dirs.config, "cni-conf.json"), JSON.stringify({ cniVersion: "1.0.0", name: "cnikit", plugins: [{ type: "overlay" }] }));
  writeFileSync(join(T, "containers.conf"), [
    "[containers]", 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]', "",
    "[network]", 'network_backend = "cni"', `network_config_dir = ${JSON.stringify(join(T, "podman-net.d"))}`, "",
    "[engine]", 'runtime = "runc"', 'cgroup_manager = "cgroupfs"', 'events_logger = "none"', 'lock_type = "file"',
    `tmp_dir = ${JSON.stringify(dirs.engineTmp)}`, `static_dir = ${JSON.stringify(dirs.static)}`, `volume_path = ${JSON.stringify(dirs.volumes)}`, "",
  ].join("\n"));
  writeFileSync(join(T, "storage.conf"), ["[storage]", 'driver = "vfs"', `graphroot = ${JSON.stringify(dirs.root)}`, `runroot = ${JSON.stringify(dirs.runroot)}`, ""].join("\n"));
  writeFileSync(join(T, "registries.conf"), "");
  env = { ...(process.env as Record<string, string>), CONTAINERS_CONF: join(T, "containers.conf"), CONTAINERS_STORAGE_CONF: join(T, "storage.conf"), CONTAINERS_REGISTRIES_CONF: join(T, "registries.conf") };
  const script = 'mount --bind "$1" /run && mount --bind "$2" /var/lib && echo ready && exec cat >/dev/null';
  const proc = Bun.spawn(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "holder", dirs.run, dirs.varLib], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  holder = proc;
  const reader = proc.stdout.getReader();
  let out = "";
  while (!out.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`mount namespace holder failed: ${await new Response(proc.stderr).text()}`);
    out += new TextDecoder().decode(value);
  }
  reader.releaseLock();
}, 60_000);

afterAll(async () => {
  if (holder) {
    try {
      (holder.stdin as { end(): void }).end();
    } catch {
      // closed already
    }
    const done = await Promise.race([holder.exited, Bun.sleep(3000).then(() => undefined)]);
    if (done === undefined) holder.kill("SIGKILL");
    await holder.exited;
  }
  for (const top of [join("/sys/fs/cgroup", CGROUP_PARENT), ...(existsSync("/sys/fs/cgroup") ? readdirSync("/sys/fs/cgroup").map((h) => join("/sys/fs/cgroup", h, CGROUP_PARENT)) : [])]) {
    if (!existsSync(top)) continue;
    const sub = (d: string): string[] => readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).flatMap((e) => [...sub(join(d, e.name)), join(d, e.name)]);
    for (const d of [...sub(top), top]) {
      try {
        rmdirSync(d);
      } catch {
        // busy or gone
      }
    }
  }
  tmp.remove();
});

describe("the image's binaries in a bare rootfs with only glibc", () => {
  test("dist/cnikit needs only glibc's libraries; the shim none", () => {
    expect(libs.length).toBeGreaterThan(0);
    expect(libs.map((l) => l.split("/").pop()!).filter((l) => !GLIBC.test(l))).toEqual([]);
    expect(run(["ldd", join(DIST, "cnikit-shim")]).stdout + run(["ldd", join(DIST, "cnikit-shim")]).stderr).toMatch(/not a dynamic executable|statically linked/);
  });

  test("podman runs the init container's install in it; the copies answer cnikit version and a plugin's VERSION", () => {
    const inst = inImage("/opt/cnikit/cnikit", "install", "--bin-dir=/host/opt/cni/bin", "--conf-dir=/host/etc/cni/net.d", "--conflist=/etc/cnikit/cni-conf.json", "--conf-name=10-cnikit.conflist");
    if (inst.code !== 0 && /rootfs|OCI runtime|cgroup/i.test(inst.stderr) && !/cnikit/.test(inst.stdout)) {
      throw new Error(`podman cannot run a --rootfs container here: ${inst.stderr}`);
    }
    expect(inst.stderr).toBe("");
    expect(inst.code).toBe(0);
    expect(inst.stdout).toContain("wrote /host/etc/cni/net.d/10-cnikit.conflist");
    expect(readlinkSync(join(dirs.hostBin, "bridge"))).toBe("cnikit-shim");
    expect(JSON.parse(readFileSync(join(dirs.hostConf, "10-cnikit.conflist"), "utf8")).name).toBe("cnikit");
    // the copies, run in the same bare rootfs
    const v = inImage("/host/opt/cni/bin/cnikit", "version");
    expect(v.stderr).toBe("");
    expect(v.code).toBe(0);
    expect(JSON.parse(v.stdout).cnikit).toMatch(/^\d+\.\d+\.\d+/);
    const pv = inImage("/bin/sh", "-c", "CNI_COMMAND=VERSION CNIKIT_SOCKET=/run/none.sock /host/opt/cni/bin/bridge </dev/null");
    expect(pv.code).toBe(0);
    expect(JSON.parse(pv.stdout).supportedVersions).toContain("1.1.0");
    // and a call that needs libc through FFI (netlink): loopback ADD on the container's own lo
    const conf = JSON.stringify({ cniVersion: "1.0.0", name: "lo", type: "loopback" });
    const add = inImage("/bin/sh", "-c", `echo '${conf}' | CNI_COMMAND=ADD CNI_CONTAINERID=k8image CNI_NETNS=/proc/self/ns/net CNI_IFNAME=lo CNI_PATH=/host/opt/cni/bin CNIKIT_SOCKET=/run/none.sock /host/opt/cni/bin/loopback`);
    expect(add.code === 0 ? "" : add.stdout + add.stderr).toBe("");
    expect(JSON.parse(add.stdout).ips[0].address).toBe("127.0.0.1/8");
  }, 120_000);
});
