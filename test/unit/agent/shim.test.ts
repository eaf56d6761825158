/**
 * cnikit-shim against stand-in daemons in this process (what it sends, what it prints, when it
 * falls back to the standalone binary), and `cnikit install` laying out the binary, the shim and
 * the links. No network namespace needed: only VERSION and host-local (files) run for real.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { decodeRequestBody, encodeReply, FrameReader, HEADER_SIZE, MAX_REQUEST_BODY, type CniRequest } from "../../../src/agent/protocol.ts";
import { CNIKIT, SHIM } from "../../support/daemon.ts";
import { run, tempDir } from "../../support/netns.ts";

const tmp = tempDir("ckd-shim");
const bin = join(tmp.path, "bin");
const enc = new TextEncoder();

beforeAll(() => {
  if (!existsSync(CNIKIT) || !existsSync(SHIM)) throw new Error("dist/cnikit or dist/cnikit-shim is missing: run `npm run build`");
  const r = run([CNIKIT, "install", "--bin-dir", bin]);
  if (r.code !== 0) throw new Error(`install failed: ${r.stdout}${r.stderr}`);
});
afterAll(() => tmp.remove());

type Behaviour = (req: CniRequest, s: { write(b: Uint8Array): number; end(): void }) => void;

/** A stand-in daemon on a socket of its own; `seen` holds the requests it got. */
function fakeDaemon(name: string, behave: Behaviour) {
  const path = join(tmp.path, `${name}.sock`);
  const seen: CniRequest[] = [];
  const l = Bun.listen<{ r: FrameReader }>({
    unix: path,
    socket: {
      open(s) {
        s.data = { r: new FrameReader(MAX_REQUEST_BODY) };
      },
      data(s, d) {
        if (!s.data.r.push(new Uint8Array(d))) return;
        const h = s.data.r.header!;
        const req = h.version === 1 ? decodeRequestBody(s.data.r.bodyBytes!) : { type: "?", env: {}, stdin: new Uint8Array() };
        seen.push(req);
        behave(req, s);
      },
    },
  });
  return { path, seen, stop: () => l.stop(true) };
}

/** Run the shim as plugin `type` (async: the stand-in daemon lives in this process). */
async function shim(type: string, env: Record<string, string>, stdin = "") {
  const p = Bun.spawn([join(bin, type)], { env: { PATH: process.env.PATH!, ...env }, stdin: enc.encode(stdin), stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).bytes(), new Response(p.stderr).text(), p.exited]);
  return { code, out, stdout: new TextDecoder().decode(out), stderr: err };
}

const hlConf = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: "1.0.0", name: "shimnet", type: "host-local", ipam: { type: "host-local", subnet: "10.77.0.0/24", dataDir: join(tmp.path, "ipam") }, ...extra });
const cni = (command: string, cid = "c1") => ({ CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: "/proc/self/ns/net", CNI_IFNAME: "eth0", CNI_PATH: bin });

describe("cnikit install", () => {
  test("copies the binary and the shim (no temp files left), links every type to the shim", () => {
    expect(statSync(join(bin, "cnikit")).mode & 0o777).toBe(0o755);
    expect(statSync(join(bin, "cnikit-shim")).mode & 0o777).toBe(0o755);
    expect(readlinkSync(join(bin, "bridge"))).toBe("cnikit-shim");
    expect(readlinkSync(join(bin, "host-local"))).toBe("cnikit-shim");
    expect(readdirSync(bin).filter((n) => n.startsWith("."))).toEqual([".cnikit-install"]); // the manifest, no temp file
    expect(run([join(bin, "cnikit-shim"), "--version"]).stdout).toBe("cnikit-shim protocol 1\n");
  });

  test("--no-shim links to the binary; installing again switches back; foreign files stay", () => {
    const dir = join(tmp.path, "bin2");
    mkdirSync(dir);
    writeFileSync(join(dir, "ptp"), "#!/bin/sh\n", { mode: 0o755 });
    expect(run([CNIKIT, "install", "--bin-dir", dir, "--no-shim"]).code).toBe(0);
    expect(readlinkSync(join(dir, "bridge"))).toBe("cnikit");
    expect(lstatSync(join(dir, "ptp")).isSymbolicLink()).toBe(false);
    const again = run([CNIKIT, "install", "--bin-dir", dir]);
    expect(again.stdout).toContain("linked to cnikit-shim:");
    expect(readlinkSync(join(dir, "bridge"))).toBe("cnikit-shim");
    expect(lstatSync(join(dir, "ptp")).isSymbolicLink()).toBe(false);
  });
});

describe("cnikit-shim", () => {
  test("no daemon (no socket): it runs the standalone binary, stdin passed through (also past a pipe's 64 KiB)", async () => {
    const env = { CNIKIT_SOCKET: join(tmp.path, "none", "cni.sock") };
    const v = await shim("bridge", { ...env, CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}');
    expect(v.code).toBe(0);
    expect(JSON.parse(v.stdout).supportedVersions).toContain("1.1.0");
    const a = await shim("host-local", { ...env, ...cni("ADD") }, hlConf({ pad: "x".repeat(200_000) }));
    expect(a.code).toBe(0);
    expect(JSON.parse(a.stdout).ips[0].address).toBe("10.77.0.2/24");
    expect((await shim("host-local", { ...env, ...cni("DEL") }, hlConf())).code).toBe(0);
  });

  test("a socket nobody listens on (connection refused) falls back too", async () => {
    const d = fakeDaemon("refused", () => {});
    d.stop(); // Bun may leave the socket file: then connect is refused
    const v = await shim("bridge", { CNIKIT_SOCKET: d.path, CNI_COMMAND: "VERSION" });
    expect(JSON.parse(v.stdout).cniVersion).toBe("1.1.0");
  });

  test("it sends the type, the CNI_* and CNIKIT_* environment and stdin; prints the reply's bytes and exit code untouched", async () => {
    const d = fakeDaemon("echo", (_req, s) => {
      s.write(encodeReply({ exitCode: 7, stdout: new Uint8Array([123, 0, 255, 10]), stderr: enc.encode("plugin log\n") }));
      s.end();
    });
    try {
      const r = await shim("ptp", { CNIKIT_SOCKET: d.path, ...cni("ADD", "abc"), CNIKIT_DEBUG: "1", HOME: "/root", CNI_ARGS: "A=b=c" }, "stdin-bytes\u00e9");
      expect(r.code).toBe(7);
      expect([...r.out]).toEqual([123, 0, 255, 10]);
      expect(r.stderr).toBe("plugin log\n");
      const req = d.seen[0]!;
      expect(req.type).toBe("ptp");
      const netns = String(statSync("/proc/self/ns/net").ino); // the shim names its network and mount namespaces
      const mntns = String(statSync("/proc/self/ns/mnt").ino);
      expect(req.env).toEqual({ CNIKIT_SOCKET: d.path, ...cni("ADD", "abc"), CNIKIT_DEBUG: "1", CNI_ARGS: "A=b=c", CNIKIT_SHIM_NETNS: netns, CNIKIT_SHIM_MNTNS: mntns });
      expect(new TextDecoder().decode(req.stdin)).toBe("stdin-bytes\u00e9");
    } finally {
      d.stop();
    }
  });

  test("a daemon of another protocol version: the standalone binary answers", async () => {
    const d = fakeDaemon("v2", (_req, s) => {
      const f = new Uint8Array(HEADER_SIZE);
      f.set(enc.encode("CNIK"));
      new DataView(f.buffer).setUint32(4, 2);
      s.write(f);
      s.end();
    });
    try {
      const r = await shim("host-local", { CNIKIT_SOCKET: d.path, ...cni("ADD", "v2") }, hlConf());
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).ips[0].address).toMatch(/^10\.77\.0\.\d+\/24$/);
      expect(d.seen).toHaveLength(1);
      expect((await shim("host-local", { CNIKIT_SOCKET: join(tmp.path, "none.sock"), ...cni("DEL", "v2") }, hlConf())).code).toBe(0);
    } finally {
      d.stop();
    }
  });

  test("the daemon dies mid-call: ADD is error 11 in the config's version; DEL and the others fall back", async () => {
    const d = fakeDaemon("dies", (_req, s) => s.end());
    try {
      const a = await shim("host-local", { CNIKIT_SOCKET: d.path, ...cni("ADD", "dies") }, hlConf({ cniVersion: "0.4.0" }));
      expect(a.code).toBe(1);
      expect(JSON.parse(a.stdout)).toMatchObject({ cniVersion: "0.4.0", code: 11, msg: expect.stringContaining("stopped during ADD") });
      const del = await shim("host-local", { CNIKIT_SOCKET: d.path, ...cni("DEL", "dies") }, hlConf());
      expect(del.code).toBe(0);
      expect(del.stdout).toBe("");
      const v = await shim("bridge", { CNIKIT_SOCKET: d.path, CNI_COMMAND: "VERSION" });
      expect(JSON.parse(v.stdout).cniVersion).toBe("1.1.0");
      expect(d.seen.map((r) => r.env.CNI_COMMAND)).toEqual(["ADD", "DEL", "VERSION"]);
    } finally {
      d.stop();
    }
  });

  test("no standalone binary beside it either: a spec error, not a crash", async () => {
    const lone = join(tmp.path, "lone");
    mkdirSync(lone);
    require("node:fs").copyFileSync(SHIM, join(lone, "cnikit-shim"));
    require("node:fs").chmodSync(join(lone, "cnikit-shim"), 0o755);
    require("node:fs").symlinkSync("cnikit-shim", join(lone, "bridge"));
    const p = Bun.spawnSync([join(lone, "bridge")], { env: { CNIKIT_SOCKET: join(tmp.path, "none.sock"), CNI_COMMAND: "VERSION" }, stdin: enc.encode('{"cniVersion":"0.3.1"}') });
    expect(p.exitCode).toBe(1);
    expect(JSON.parse(p.stdout.toString())).toMatchObject({ cniVersion: "0.3.1", code: 999, msg: expect.stringContaining("could not be run") });
  });
});
