/**
 * A tiny kubelet for the Kubernetes tests (issue 16): "nodes" are network namespaces with a root
 * directory of their own (their /etc/cni/net.d, /opt/cni/bin, /var/lib/cni, /run/flannel,
 * /run/cnikit are directories in a temp folder); a DaemonSet's containers run as a kubelet runs
 * them: in the node's network namespace (hostNetwork), in a mount namespace of their own where a
 * root directory gets the host's system directories, the image (dist/), and the manifest's
 * volumes (hostPath from the node's root, ConfigMap and Secret keys as files) bind-mounted at their
 * mountPaths, then `chroot` and the command, args (with `$(VAR)` expanded) and env (values,
 * `spec.nodeName`, Secret and ConfigMap keys) of the container spec.
 *
 * Nothing is ever mounted in the test's own mount namespace: each node has a mount namespace of
 * its own (a holder process made by `unshare -m --propagation slave`), its runtime's commands run
 * there, and each container in a namespace copied from it; the mounts go with them. The machine's
 * /run/cnikit, /run/flannel, /var/lib/cni and /etc/cni/net.d are never touched.
 */

import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { run, type Ran } from "../../support/netns.ts";

export const ROOT = resolve(import.meta.dir, "../../..");
export const DIST = join(ROOT, "dist");
export const MANIFEST_PATH = join(ROOT, "deploy/kubernetes/cnikit.yaml");

// deno-lint-ignore no-explicit-any
export type Obj = Record<string, any>;

/** The manifest's documents (Bun's YAML parser). */
export function readManifest(path = MANIFEST_PATH): Obj[] {
  const docs = Bun.YAML.parse(readFileSync(path, "utf8")) as unknown;
  return (Array.isArray(docs) ? docs : [docs]).filter((d) => d && typeof d === "object") as Obj[];
}

/** The document of `kind` (and name). */
export function doc(docs: Obj[], kind: string, name?: string): Obj {
  const d = docs.find((x) => x.kind === kind && (name === undefined || x.metadata?.name === name));
  if (!d) throw new Error(`manifest has no ${kind}${name ? ` ${name}` : ""}`);
  return d;
}

const SYSTEM_DIRS = ["usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32"];
const ETC_FILES = ["passwd", "group", "hosts", "nsswitch.conf", "ld.so.cache", "resolv.conf", "protocols", "services"];

/** A root directory skeleton: mount points (or the host's symlinks) for the system dirs, a small /etc. */
export function makeRoot(root: string): void {
  for (const d of SYSTEM_DIRS) {
    const host = `/${d}`;
    if (!existsSync(host)) continue;
    const st = lstatSync(host);
    const at = join(root, d);
    if (existsSync(at) || isLink(at)) continue;
    mkdirSync(root, { recursive: true });
    if (st.isSymbolicLink()) symlinkSync(readlinkSync(host), at);
    else mkdirSync(at);
  }
  for (const d of ["proc", "sys", "dev", "tmp", "run/netns", "etc", "var/lib", "opt"]) mkdirSync(join(root, d), { recursive: true });
  for (const f of ETC_FILES) {
    try {
      copyFileSync(`/etc/${f}`, join(root, "etc", f));
    } catch {
      // not on this machine: not needed
    }
  }
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** One bind mount of the plan. */
export interface Bind {
  src: string;
  /** Path inside the root. */
  dst: string;
  ro?: boolean;
  /** Receive mounts made later on the host side (HostToContainer; /run/netns). */
  slave?: boolean;
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** Binds every root gets: system dirs, /proc, /sys, /dev, and the machine's /run/netns (pods' namespaces). */
function systemBinds(root: string): Bind[] {
  const out: Bind[] = [];
  for (const d of SYSTEM_DIRS) if (existsSync(`/${d}`) && !lstatSync(`/${d}`).isSymbolicLink()) out.push({ src: `/${d}`, dst: `/${d}`, ro: true });
  out.push({ src: "/proc", dst: "/proc" }, { src: "/sys", dst: "/sys" }, { src: "/dev", dst: "/dev" }, { src: "/run/netns", dst: "/run/netns", slave: true });
  void root;
  return out;
}

/** Shell lines that make the binds inside `root`. */
function mountLines(root: string, binds: Bind[]): string[] {
  const lines: string[] = [];
  for (const b of binds) {
    const dst = join(root, b.dst);
    lines.push(`mount --rbind ${q(b.src)} ${q(dst)}`);
    if (b.ro) lines.push(`mount -o remount,bind,ro ${q(dst)} 2>/dev/null || true`);
    if (b.slave) lines.push(`mount --make-rslave ${q(dst)}`);
  }
  return lines;
}

/** The shell script that makes the binds inside `root`, then chroots and execs `argv` with exactly `env`. */
function script(root: string, binds: Bind[], argv: string[], env: Record<string, string>): string {
  const lines = ["set -e", ...mountLines(root, binds)];
  const envArgs = Object.entries(env).map(([k, v]) => q(`${k}=${v}`));
  lines.push(`exec chroot ${q(root)} /usr/bin/env -i ${envArgs.join(" ")} ${argv.map(q).join(" ")}`);
  return lines.join("\n");
}

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** A node: a network namespace and a root directory holding its own host paths. */
export class SimNode {
  readonly root: string;
  private containers = 0;

  constructor(
    readonly name: string,
    /** Its network namespace's path. */
    readonly netns: string,
    /** A directory of its own. */
    readonly dir: string,
    /** Extra binds into the node's root (e.g. a runtime's binary). */
    readonly extra: Bind[] = [],
  ) {
    this.root = join(dir, "root");
    makeRoot(this.root);
    for (const d of ["etc/cni/net.d", "opt/cni/bin", "var/lib/cni", "run/flannel", "run/cnikit"]) mkdirSync(join(this.root, d), { recursive: true });
    for (const b of extra) mkdirSync(join(this.root, b.dst), { recursive: true });
  }

  /**
   * Where a hostPath of the manifest lives for this node: the node's root, except pods' namespaces
   * and the kernel's modules (the machine's, when it has them), and /sys/fs/bpf (a directory of
   * the node's own).
   */
  hostPath(p: string): string {
    if (p === "/run/netns") return p;
    const top = p.split("/")[1] ?? "";
    // the machine's system directories are the node's too (read them, never create in them)
    if (SYSTEM_DIRS.includes(top)) return existsSync(p) ? p : join(this.dir, "hostpath", p);
    if (top === "sys" || top === "proc" || top === "dev") return join(this.dir, "hostpath", p);
    return join(this.root, p);
  }

  /** The process holding the node's own mount namespace ("the host's" for its runtime and containers). */
  private holder: ReturnType<typeof Bun.spawn> | undefined;

  /**
   * Start the node: a holder process keeps a mount namespace of the node's own, with the system
   * directories, the machine's /run/netns and the extra binds mounted into the node's root (and,
   * with `bpffs`, a bpffs of its own at /sys/fs/bpf, so the eBPF datapath never pins on the
   * machine's). The node's runtime runs in that namespace (chrooted into the root), containers in
   * namespaces copied from it, as on a real node. `stop()` ends the holder (by its PID).
   */
  async start(o: { bpffs?: boolean } = {}): Promise<void> {
    const binds = [...systemBinds(this.root), ...this.extra];
    const lines = [];
    if (o.bpffs) {
      const dir = join(this.dir, "bpffs");
      mkdirSync(dir, { recursive: true });
      lines.push(`mount -t bpf bpf ${q(dir)}`);
      binds.push({ src: dir, dst: "/sys/fs/bpf" });
    }
    lines.push(...mountLines(this.root, binds), "echo ready", "exec sleep 100000");
    const proc = Bun.spawn(["nsenter", `--net=${this.netns}`, "unshare", "--mount", "--propagation", "slave", "--", "sh", "-c", ["set -e", ...lines].join("\n")], { stdout: "pipe", stderr: "pipe" });
    this.holder = proc;
    const reader = proc.stdout.getReader();
    let out = "";
    while (!out.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`node ${this.name} did not start: ${await new Response(proc.stderr).text()}`);
      out += new TextDecoder().decode(value);
    }
    reader.releaseLock();
  }

  /** The node's mount namespace file (its "host" mount namespace). */
  get mountNs(): string {
    if (!this.holder) throw new Error(`node ${this.name} not started`);
    return `/proc/${this.holder.pid}/ns/mnt`;
  }

  /** The holder's PID: the node's "PID 1" for a hostPID pod's /proc/1 paths. */
  get hostPid(): number {
    if (!this.holder) throw new Error(`node ${this.name} not started`);
    return this.holder.pid;
  }

  /** End the node's holder (by its PID). */
  async stop(): Promise<void> {
    if (!this.holder) return;
    this.holder.kill();
    await this.holder.exited;
    this.holder = undefined;
  }

  /** The argv that runs `argv` as a process on this node (its network and mount namespaces, chrooted into its root), with `env`. */
  argv(argv: string[], env: Record<string, string> = {}): string[] {
    const envArgs = Object.entries({ PATH, ...env }).map(([k, v]) => `${k}=${v}`);
    return ["nsenter", `--mount=${this.mountNs}`, `--net=${this.netns}`, "chroot", this.root, "/usr/bin/env", "-i", ...envArgs, ...argv];
  }

  /** Run a command on the node (as root in the node's root directory); never throws. */
  exec(argv: string[], o: { env?: Record<string, string>; stdin?: string } = {}): Ran {
    return run(this.argv(argv, o.env), o.stdin !== undefined ? { stdin: o.stdin } : {});
  }

  /** A container's argv: a mount namespace copied from the node's, the binds, chroot, exec. */
  private wrap(root: string, binds: Bind[], argv: string[], env: Record<string, string>): string[] {
    return ["nsenter", `--mount=${this.mountNs}`, `--net=${this.netns}`, "unshare", "--mount", "--propagation", "slave", "--", "sh", "-c", script(root, binds, argv, env)];
  }

  /**
   * The argv that runs a container of a pod spec on this node as a kubelet would: its root with
   * the image at `imageDir`'s place (/opt/cnikit), its volumes, env and $(VAR)-expanded args.
   */
  containerArgv(pod: Obj, container: Obj, docs: Obj[], o: { image?: string } = {}): string[] {
    const cdir = join(this.dir, "containers", `${container.name}-${++this.containers}`);
    const root = join(cdir, "rootfs");
    makeRoot(root);
    const binds: Bind[] = [...systemBinds(root)];
    // the image: what deploy/Containerfile copies (dist/cnikit, dist/cnikit-shim) at /opt/cnikit
    mkdirSync(join(root, "opt/cnikit"), { recursive: true });
    binds.push({ src: o.image ?? DIST, dst: "/opt/cnikit", ro: true });
    for (const vm of (container.volumeMounts ?? []) as Obj[]) {
      const vol = ((pod.volumes ?? []) as Obj[]).find((v) => v.name === vm.name);
      if (!vol) throw new Error(`container ${container.name}: no volume ${vm.name}`);
      let src: string;
      if (vol.hostPath) {
        src = this.hostPath(vol.hostPath.path);
        const type = vol.hostPath.type ?? "";
        if (!existsSync(src)) {
          if (type === "FileOrCreate") {
            mkdirSync(dirname(src), { recursive: true });
            writeFileSync(src, "");
          } else if (type === "DirectoryOrCreate" || type === "") mkdirSync(src, { recursive: true }); // no type: the runtime makes a directory
          else throw new Error(`hostPath ${vol.hostPath.path} (${src}) does not exist`);
        }
      } else if (vol.configMap || vol.secret) {
        const kind = vol.configMap ? "ConfigMap" : "Secret";
        const d = doc(docs, kind, vol.configMap?.name ?? vol.secret.secretName);
        src = join(cdir, "volumes", vm.name);
        mkdirSync(src, { recursive: true });
        for (const [k, v] of Object.entries(keysOf(d))) writeFileSync(join(src, k), v, { mode: kind === "Secret" ? 0o400 : 0o644 });
      } else {
        throw new Error(`volume ${vm.name}: only hostPath, configMap and secret are simulated`);
      }
      const dst = join(root, vm.mountPath);
      if (SYSTEM_DIRS.includes(String(vm.mountPath).split("/")[1] ?? "")) {
        // inside the machine's /usr (bound read-only): a mount point only where the machine has
        // one (here /lib/modules may be missing: then there is nothing to see there anyway)
        if (!existsSync(vm.mountPath)) continue;
        binds.push({ src, dst: vm.mountPath, ro: true });
        continue;
      }
      if (lstatSync(src).isDirectory()) mkdirSync(dst, { recursive: true });
      else {
        mkdirSync(dirname(dst), { recursive: true });
        if (!existsSync(dst)) writeFileSync(dst, "");
      }
      binds.push({ src, dst: vm.mountPath, ...(vm.readOnly ? { ro: true } : {}), ...(vm.mountPropagation === "HostToContainer" || vm.mountPropagation === "Bidirectional" ? { slave: true } : {}) });
    }
    const env: Record<string, string> = { PATH, HOSTNAME: this.name };
    for (const e of (container.env ?? []) as Obj[]) env[e.name] = envValue(e, docs, this.name);
    const expand = (s: string) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, k: string) => env[k] ?? m);
    // hostPID: the pod sees the node's processes; the node's "PID 1" is its holder here
    const hostPid = (a: string) => (pod.hostPID ? a.replaceAll("/proc/1/", `/proc/${this.hostPid}/`) : a);
    const argv = [...((container.command ?? []) as string[]), ...((container.args ?? []) as string[])].map(expand).map(hostPid);
    if (argv.length === 0) throw new Error(`container ${container.name}: no command (the image's entrypoint is not simulated)`);
    return this.wrap(root, binds, argv, env);
  }
}

/** A ConfigMap's or Secret's keys as text (Secret `data` is base64). */
export function keysOf(d: Obj): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((d.data ?? {}) as Record<string, string>)) out[k] = d.kind === "Secret" ? Buffer.from(v, "base64").toString() : v;
  for (const [k, v] of Object.entries((d.stringData ?? {}) as Record<string, string>)) out[k] = v;
  return out;
}

function envValue(e: Obj, docs: Obj[], nodeName: string): string {
  if (e.value !== undefined) return String(e.value);
  const from = e.valueFrom ?? {};
  if (from.fieldRef) {
    if (from.fieldRef.fieldPath === "spec.nodeName") return nodeName;
    throw new Error(`env ${e.name}: fieldRef ${from.fieldRef.fieldPath} is not simulated`);
  }
  if (from.secretKeyRef) return keysOf(doc(docs, "Secret", from.secretKeyRef.name))[from.secretKeyRef.key] ?? "";
  if (from.configMapKeyRef) return keysOf(doc(docs, "ConfigMap", from.configMapKeyRef.name))[from.configMapKeyRef.key] ?? "";
  throw new Error(`env ${e.name}: no value`);
}

/** Ask an HTTP probe of the manifest (httpGet on the node's network), as kubelet does; true on 2xx/3xx. */
export function probe(node: SimNode, p: Obj): boolean {
  const g = p.httpGet;
  const r = run(["nsenter", `--net=${node.netns}`, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", `http://${g.host ?? "127.0.0.1"}:${g.port}${g.path}`]);
  const code = Number(r.stdout);
  return code >= 200 && code < 400;
}
