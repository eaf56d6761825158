/**
 * The compiled multicall binary: dispatch on the name it is started as, in-process runs of built-in
 * types only when CNI_PATH resolves to this very binary, and cnitool-compatible CLI behaviour.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, chmodSync, existsSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { run, tempDir } from "../../support/netns.ts";

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const tmp = tempDir("multicall");

beforeAll(() => {
  if (!existsSync(CNIKIT)) throw new Error("dist/cnikit is missing: run `npm run build`");
});
afterAll(() => tmp.remove());

function writeConf(dir: string, name: string, version = "1.0.0") {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, `${name}.conflist`),
    JSON.stringify({ cniVersion: version, name, plugins: [{ type: "host-local", ipam: { type: "host-local", ranges: [[{ subnet: "10.9.0.0/24" }]], dataDir: join(tmp.path, "ipam") } }] }),
  );
}

describe("multicall binary", () => {
  test("started as a plugin type it runs that plugin; as cnikit the CLI", () => {
    const dir = join(tmp.path, "names");
    mkdirSync(dir);
    symlinkSync(CNIKIT, join(dir, "static"));
    const v = run([join(dir, "static")], { env: { CNI_COMMAND: "VERSION" }, stdin: "{}" });
    expect(JSON.parse(v.stdout).supportedVersions).toContain("1.1.0");
    const e = run([join(dir, "static")], { env: {}, stdin: "{}" });
    expect(e.code).toBe(1);
    expect(JSON.parse(e.stdout)).toMatchObject({ code: 4, msg: expect.stringContaining("CNI_COMMAND") });
    const cli = run([CNIKIT, "--help"]);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toContain("usage: cnikit COMMAND");
    for (const cmd of ["add", "check", "del", "gc", "status", "version", "install", "demo"]) {
      const h = run([CNIKIT, cmd, "--help"]);
      expect(h.code).toBe(0);
      expect(h.stdout).toContain(`cnikit ${cmd}`);
    }
    expect(run([CNIKIT, "frobnicate"]).code).toBe(2);
  });

  test("a built-in type runs in-process only when CNI_PATH resolves to this binary", () => {
    const confDir = join(tmp.path, "conf1");
    writeConf(confDir, "inproc");
    const ours = join(tmp.path, "ours");
    mkdirSync(ours);
    symlinkSync(CNIKIT, join(ours, "host-local"));
    const env = { PATH: process.env.PATH, NETCONFPATH: confDir, CNI_PATH: ours, CNI_CACHE_DIR: join(tmp.path, "cache"), CNIKIT_DEBUG: "1" };
    const r = run([CNIKIT, "add", "inproc", "/proc/self/ns/net"], { env });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("ADD host-local: in-process");
    expect(JSON.parse(r.stdout).ips[0].address).toBe("10.9.0.2/24");
    expect(run([CNIKIT, "del", "inproc", "/proc/self/ns/net"], { env }).code).toBe(0);

    // a copy of the binary is a different file: executed, not run in-process
    const copy = join(tmp.path, "copy");
    mkdirSync(copy);
    copyFileSync(CNIKIT, join(copy, "host-local"));
    chmodSync(join(copy, "host-local"), 0o755);
    const r2 = run([CNIKIT, "add", "inproc", "/proc/self/ns/net"], { env: { ...env, CNI_PATH: copy } });
    expect(r2.code).toBe(0);
    expect(r2.stderr).toContain("ADD host-local: exec");
    expect(run([CNIKIT, "del", "inproc", "/proc/self/ns/net"], { env: { ...env, CNI_PATH: copy } }).code).toBe(0);

    // a foreign plugin of the same name is always executed
    const foreign = join(tmp.path, "foreign");
    mkdirSync(foreign);
    writeFileSync(join(foreign, "host-local"), `#!/bin/sh\necho '{"cniVersion":"1.0.0","ips":[{"address":"10.99.99.99/32"}]}'\n`);
    chmodSync(join(foreign, "host-local"), 0o755);
    const r3 = run([CNIKIT, "add", "inproc", "/proc/self/ns/net"], { env: { ...env, CNI_PATH: foreign, CNI_CONTAINERID: "f1" } });
    expect(r3.stderr).toContain("ADD host-local: exec");
    expect(JSON.parse(r3.stdout).ips[0].address).toBe("10.99.99.99/32");
  });

  test("cnitool's container id, netns names, errors as spec JSON", () => {
    const confDir = join(tmp.path, "conf2");
    writeConf(confDir, "cli");
    const ours = join(tmp.path, "ours2");
    mkdirSync(ours);
    symlinkSync(CNIKIT, join(ours, "host-local"));
    const cache = join(tmp.path, "cache2");
    const env = { PATH: process.env.PATH, NETCONFPATH: confDir, CNI_PATH: ours, CNI_CACHE_DIR: cache };
    expect(run([CNIKIT, "add", "cli", "/var/run/netns/x"], { env }).code).toBe(0);
    // cnitool: "cnitool-" + the first 10 bytes of sha512(netns path) in hex
    const expected = `cnitool-${new Bun.CryptoHasher("sha512").update("/var/run/netns/x").digest("hex").slice(0, 20)}`;
    expect(readdirSync(join(cache, "results"))).toEqual([`cli-${expected}-eth0`]);
    const missing = run([CNIKIT, "add", "nosuchnet", "/x"], { env });
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining("nosuchnet") });
    const badCaps = run([CNIKIT, "add", "cli", "/x"], { env: { ...env, CAP_ARGS: "{nope" } });
    expect(JSON.parse(badCaps.stdout).code).toBe(6);
    const usage = run([CNIKIT, "add", "cli"], { env });
    expect(usage.code).toBe(2);
    // gc with nothing valid removes the attachment (cnitool's gc), then the reservation is gone
    expect(run([CNIKIT, "gc", "cli"], { env }).code).toBe(0);
    expect(readdirSync(join(cache, "results"))).toEqual([]);
    expect(readdirSync(join(tmp.path, "ipam", "cli")).filter((f) => f.startsWith("10."))).toEqual([]);
  });

  test("install copies the binary, links every type and keeps foreign files unless --force", () => {
    const dir = join(tmp.path, "bin");
    mkdirSync(dir);
    writeFileSync(join(dir, "static"), "#!/bin/sh\n", { mode: 0o755 });
    const r = run([CNIKIT, "install", "--bin-dir", dir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("kept foreign files");
    expect(readlinkSync(join(dir, "host-local"))).toBe("cnikit-shim"); // the shim by default (test/unit/agent/shim.test.ts)
    expect(run([join(dir, "static")], { env: { CNI_COMMAND: "VERSION" } }).stdout).toBe("");
    const f = run([CNIKIT, "install", "--bin-dir", dir, "--force", "--no-shim"]);
    expect(f.stdout).toContain("replaced (--force): static");
    expect(readlinkSync(join(dir, "static"))).toBe("cnikit");
    expect(JSON.parse(run([join(dir, "static")], { env: { CNI_COMMAND: "VERSION" } }).stdout).cniVersion).toBe("1.1.0");
    // --conf-dir writes a default network only where no other configuration is
    const conf = join(tmp.path, "conf-default");
    const c1 = run([CNIKIT, "install", "--bin-dir", dir, "--conf-dir", conf]);
    expect(c1.stdout).toContain("wrote");
    const list = JSON.parse(require("node:fs").readFileSync(join(conf, "10-cnikit.conflist"), "utf8"));
    expect(list.plugins[0].type).toBe("bridge");
    expect(list.plugins[0].ipam.type).toBe("host-local");
    // a re-run refreshes its own default (recorded in the manifest); another's config keeps it out
    const c2 = run([CNIKIT, "install", "--bin-dir", dir, "--conf-dir", conf]);
    expect(c2.stdout).toContain("wrote");
    require("node:fs").writeFileSync(join(conf, "05-other.conf"), "{}");
    const c3 = run([CNIKIT, "install", "--bin-dir", dir, "--conf-dir", conf]);
    expect(c3.stdout).toContain("left as it is");
  }, 60_000); // several runs of the binary and copies of it (115 MB): slow on a loaded machine
});
