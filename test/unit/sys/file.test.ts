import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync as nodeWrite, readFileSync as nodeRead } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closeFile, fileStat, listDir, makeDir, openFile, readText, realPath, removeFile, renameFile, writeFd, writeText } from "../../../src/sys/file.ts";
import { SysError } from "../../../src/sys/error.ts";
import { baseName, dirName, joinPath } from "../../../src/sys/path.ts";

const dir = mkdtempSync(join(tmpdir(), "cnikit-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SysError);
    return (e as SysError).code;
  }
  return "no error";
};

describe("sys/file", () => {
  test("write then read text (UTF-8, larger than one read buffer), with the mode asked for", () => {
    const p = join(dir, "a.txt");
    const text = `héllo ${"x".repeat(10_000)} ✓`;
    writeText(p, text, { mode: 0o600 });
    expect(readText(p)).toBe(text);
    expect(nodeRead(p, "utf8")).toBe(text);
    expect(statSync(p).mode & 0o777).toBe(0o600);
    writeText(p, "short");
    expect(readText(p)).toBe("short"); // truncated, not overwritten in place
    expect(readText("/proc/sys/kernel/ostype").trim()).toBe("Linux"); // a file whose size stat does not tell
  });

  test("errors carry the errno name as node's do", () => {
    expect(code(() => readText(join(dir, "missing")))).toBe("ENOENT");
    expect(code(() => writeText(join(dir, "a.txt"), "x", { exclusive: true }))).toBe("EEXIST");
    expect(code(() => makeDir(join(dir, "a.txt")))).toBe("EEXIST");
    expect(code(() => listDir(join(dir, "missing")))).toBe("ENOENT");
    expect(code(() => realPath(join(dir, "missing")))).toBe("ENOENT");
    expect(code(() => renameFile(join(dir, "missing"), join(dir, "b")))).toBe("ENOENT");
  });

  test("makeDir recursive creates parents and accepts an existing directory", () => {
    const deep = join(dir, "x/y/z");
    makeDir(deep, { recursive: true, mode: 0o700 });
    makeDir(deep, { recursive: true });
    expect(fileStat(deep).isDirectory).toBe(true);
    expect(statSync(deep).mode & 0o777).toBe(0o700);
    makeDir(join(dir, "rel-check"), {});
    expect(existsSync(join(dir, "rel-check"))).toBe(true);
  });

  test("listDir, rename, remove (false when already gone), realPath through a link, stat of a path and of a descriptor", () => {
    const d = join(dir, "list");
    makeDir(d);
    for (const n of ["one", "two", "three"]) nodeWrite(join(d, n), n);
    expect(listDir(d).sort()).toEqual(["one", "three", "two"]);
    renameFile(join(d, "one"), join(d, "uno"));
    expect(listDir(d).sort()).toEqual(["three", "two", "uno"]);
    expect(removeFile(join(d, "two"))).toBe(true);
    expect(removeFile(join(d, "two"))).toBe(false);
    symlinkSync(join(d, "uno"), join(dir, "link"));
    expect(realPath(join(dir, "link"))).toBe(realPath(join(d, "uno")));
    const st = fileStat(join(dir, "link"));
    expect(st.isFile).toBe(true);
    expect(st.ino).toBe(BigInt(statSync(join(d, "uno")).ino));
    const fd = openFile(join(d, "uno"), "read");
    try {
      expect(fileStat(fd).ino).toBe(st.ino);
    } finally {
      closeFile(fd);
    }
    expect(existsSync(join(d, "two"))).toBe(false);
  });

  test("append mode creates and appends; writeFd writes everything", () => {
    const p = join(dir, "log");
    for (const part of ["a", "b"]) {
      const fd = openFile(p, "append");
      writeFd(fd, part);
      closeFile(fd);
    }
    expect(readText(p)).toBe("ab");
  });
});

describe("sys/path", () => {
  test("joinPath, dirName, baseName", () => {
    expect(joinPath("/a/", "b", "c.json")).toBe("/a/b/c.json");
    expect(joinPath("a", "", "b")).toBe("a/b");
    expect(dirName("/a/b/c")).toBe("/a/b");
    expect(dirName("/c")).toBe("/");
    expect(dirName("c")).toBe(".");
    expect(baseName("/a/b/c")).toBe("c");
    expect(baseName("/a/b/")).toBe("b");
    expect(baseName("c")).toBe("c");
  });
});
