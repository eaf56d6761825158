/** `cnikit demo` (the README's first command) runs, passes its own checks and leaves nothing behind, also when interrupted. */

import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertPrivateNetns, run } from "../../support/netns.ts";

assertPrivateNetns();
const CNIKIT = join(resolve(import.meta.dir, "../../.."), "dist/cnikit");
const demoNamespaces = () => readdirSync("/run/netns").filter((n) => /^cnd[0-9a-z]+-pod\d+$/.test(n));

test("cnikit demo sets up pods that reach each other and through a hostPort, then cleans up", () => {
  const before = demoNamespaces();
  const r = run([CNIKIT, "demo"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("demo: all checks passed");
  expect(r.stdout).toMatch(/10\.244\.7\.\d+\/24/);
  expect(r.stdout).not.toContain("FAIL");
  expect(demoNamespaces()).toEqual(before);
});

test("an interrupted demo removes its pods and namespaces", async () => {
  const before = demoNamespaces();
  const proc = Bun.spawn([CNIKIT, "demo", "--pods", "2"], { env: { ...process.env, CNIKIT_DEMO_PAUSE: "1" }, stdout: "pipe", stderr: "pipe" });
  const reader = proc.stdout.getReader();
  let out = "";
  const deadline = Date.now() + 20_000;
  while (!out.includes("paused after ADD") && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
  }
  expect(out).toContain("paused after ADD");
  expect(demoNamespaces().length).toBe(before.length + 2);
  proc.kill("SIGINT");
  expect(await proc.exited).toBe(130);
  expect(demoNamespaces()).toEqual(before);
});
