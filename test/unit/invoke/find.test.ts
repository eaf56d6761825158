import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { findInPath, splitPath } from "../../../src/invoke/find.ts";
import { CniError, ErrorCode } from "../../../src/spec/error.ts";
import { tempRoot, writeScript } from "./scripts.ts";

const tmp = tempRoot("find");
afterAll(() => tmp.cleanup());

async function err(fn: () => Promise<unknown>): Promise<CniError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error("expected an error");
}

describe("splitPath", () => {
  test("splits on ':' and drops empty entries", async () => {
    expect(splitPath("/a:/b")).toEqual(["/a", "/b"]);
    expect(splitPath("/a::/b:")).toEqual(["/a", "/b"]);
    expect(splitPath(":")).toEqual([]);
    expect(splitPath("")).toEqual([]);
    expect(splitPath(undefined)).toEqual([]);
  });
});

describe("findInPath", () => {
  const d1 = tmp.dir("one");
  const d2 = tmp.dir("two");
  const d3 = tmp.dir("three");
  writeScript(d1, "bridge", "echo one");
  writeScript(d2, "bridge", "echo two");
  writeScript(d2, "host-local", "echo two");
  mkdirSync(join(d1, "ptp"));
  writeScript(d2, "ptp", "echo two");
  symlinkSync(join(d2, "host-local"), join(d3, "linked"));

  test("the first directory holding the type wins", async () => {
    expect(await findInPath("bridge", [d1, d2])).toBe(join(d1, "bridge"));
    expect(await findInPath("bridge", [d2, d1])).toBe(join(d2, "bridge"));
  });

  test("later directories are searched when earlier ones lack the type", async () => {
    expect(await findInPath("host-local", [d1, d3, d2])).toBe(join(d2, "host-local"));
  });

  test("a directory of the type's name is not a plugin", async () => {
    expect(await findInPath("ptp", [d1, d2])).toBe(join(d2, "ptp"));
  });

  test("a symlink to a file is found (path kept as the link)", async () => {
    expect(await findInPath("linked", [d1, d3])).toBe(join(d3, "linked"));
  });

  test("a missing type is an error naming the type and every directory", async () => {
    const e = await err(() => findInPath("macvlan", [d1, d2, "/nonexistent/dir"]));
    expect(e.code).toBe(ErrorCode.InvalidEnvironment);
    expect(e.message).toContain('"macvlan"');
    expect(e.message).toContain(d1);
    expect(e.message).toContain(d2);
    expect(e.message).toContain("/nonexistent/dir");
  });

  test.each(["../bin/sh", "/bin/sh", "sub/bridge", "bridge/"])("type %p with a slash is refused", async (t) => {
    const e = await err(() => findInPath(t, [d1, d2, "/"]));
    expect(e.code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(e.message).toContain(t);
  });

  test("an empty type is refused", async () => {
    expect((await err(() => findInPath("", [d1]))).code).toBe(ErrorCode.InvalidNetworkConfig);
  });

  test("no directories at all is an error mentioning CNI_PATH", async () => {
    const e = await err(() => findInPath("bridge", []));
    expect(e.code).toBe(ErrorCode.InvalidEnvironment);
    expect(e.message).toContain("CNI_PATH");
  });
});
