/**
 * The SDK's example plugin used for real: the reference bridge plugin delegates IPAM to
 * `examples/fixed-ip.ts`, run as a separate executable from CNI_PATH, driven by `cnikit add`.
 */

import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertPrivateNetns, Namespaces, ping, run, runPrefix, tempDir } from "../../support/netns.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const prefix = runPrefix("ex");
const ns = new Namespaces(prefix);
const tmp = tempDir("example");
const bridge = `${prefix}br`;

afterAll(() => {
  ns.cleanup();
  run(["ip", "link", "del", bridge]);
  tmp.remove();
});

test("the reference bridge runs the fixed-ip example as its IPAM; the pod gets that address", () => {
  run(["ip", "link", "set", "lo", "up"]);
  const bin = join(tmp.path, "bin");
  mkdirSync(bin);
  for (const t of ["bridge"]) symlinkSync(`/usr/lib/cni/${t}`, join(bin, t));
  writeFileSync(join(bin, "fixed-ip"), `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, "examples/fixed-ip.ts")}"\n`);
  chmodSync(join(bin, "fixed-ip"), 0o755);
  const conf = join(tmp.path, "net.d");
  mkdirSync(conf);
  writeFileSync(
    join(conf, "fixed.conflist"),
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "fixed",
      plugins: [{ type: "bridge", bridge, isGateway: true, ipam: { type: "fixed-ip", address: "10.78.0.42/24", gateway: "10.78.0.1" } }],
    }),
  );
  const netns = ns.add("p");
  const env = { ...process.env, NETCONFPATH: conf, CNI_PATH: bin, CNI_CACHE_DIR: join(tmp.path, "cache") };
  const add = run([join(ROOT, "dist/cnikit"), "add", "fixed", netns], { env });
  expect(add.stderr).toBe("");
  expect(add.code).toBe(0);
  expect(JSON.parse(add.stdout).ips[0].address).toBe("10.78.0.42/24");
  const addr = run(["nsenter", `--net=${netns}`, "ip", "-j", "addr", "show", "eth0"]);
  expect(addr.stdout).toContain("10.78.0.42");
  expect(ping(netns, "10.78.0.1")).toBe(true);
  expect(ping("", "10.78.0.42")).toBe(true);
  expect(run([join(ROOT, "dist/cnikit"), "del", "fixed", netns], { env }).code).toBe(0);
  expect(run(["ip", "-j", "link", "show", "type", "veth"]).stdout.trim()).toBe("[]");
});
