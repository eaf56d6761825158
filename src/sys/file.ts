/**
 * Synchronous file access over libc, for the plugin paths: loading `node:fs` alone costs a compiled
 * binary ~1.2 ms at start, a sixth of a plugin's whole start-up. Synchronous, so it is also right
 * inside a network namespace (sysctl files under /proc/sys). Failures are `SysError`s whose `code`
 * is the errno's name ("ENOENT"), as node's are.
 */

import { CString, type Pointer } from "bun:ffi";
import { Errno } from "./errno.ts";
import { SysError } from "./error.ts";
import { check, errno, libc } from "./libc.ts";

const O_RDONLY = 0;
const O_WRONLY = 1;
const O_RDWR = 2;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;
const O_CLOEXEC = 0o2000000;
const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;
const STATX_TYPE = 0x1;
const STATX_INO = 0x100;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o40000;
/** Offset of d_name in glibc's struct dirent on 64-bit Linux. */
const DIRENT_NAME = 19;

const enc = new TextEncoder();
const dec = new TextDecoder();
const cstr = (s: string) => enc.encode(`${s}\0`);

/** How a file is opened by `openFile`. */
export type OpenMode = "read" | "append" | "write" | "create-new";

const FLAGS: Record<OpenMode, number> = {
  read: O_RDONLY,
  append: O_RDWR | O_CREAT | O_APPEND,
  write: O_WRONLY | O_CREAT | O_TRUNC,
  "create-new": O_WRONLY | O_CREAT | O_EXCL,
};

/** Open `path` (close-on-exec); `mode` is the permission bits of a file it creates. */
export function openFile(path: string, how: OpenMode, mode = 0o644): number {
  return check("open", () => libc().open(cstr(path), FLAGS[how] | O_CLOEXEC, mode), path);
}

/** Close a descriptor from `openFile`. */
export function closeFile(fd: number): void {
  libc().close(fd);
}

/** Write all of `text` to `fd`. */
export function writeFd(fd: number, text: string, what = ""): void {
  const buf = enc.encode(text);
  for (let off = 0; off < buf.length; ) {
    off += check("write", () => libc().write(fd, buf.subarray(off), BigInt(buf.length - off)), what);
  }
}

/** The whole file as UTF-8 text. */
export function readText(path: string): string {
  const fd = openFile(path, "read");
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const buf = new Uint8Array(total < 4096 ? 4096 : total);
      const n = check("read", () => libc().read(fd, buf, BigInt(buf.length)), path);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
    }
    if (chunks.length === 1) return dec.decode(chunks[0]);
    const all = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    return dec.decode(all);
  } finally {
    closeFile(fd);
  }
}

/** Write `text` to `path`, created with `mode` or truncated; `exclusive` fails with EEXIST when it exists. */
export function writeText(path: string, text: string, opts: { mode?: number; exclusive?: boolean } = {}): void {
  const fd = openFile(path, opts.exclusive ? "create-new" : "write", opts.mode ?? 0o644);
  try {
    writeFd(fd, text, path);
  } finally {
    closeFile(fd);
  }
}

/** Create a directory and, with `recursive`, its missing parents; an existing directory is fine then. */
export function makeDir(path: string, opts: { recursive?: boolean; mode?: number } = {}): void {
  const mode = opts.mode ?? 0o777;
  const one = (p: string) => {
    if (libc().mkdir(cstr(p), mode) === 0) return;
    const e = errno();
    if (!(opts.recursive && e === Errno.EEXIST && isDir(p))) throw new SysError(e, "mkdir", p);
  };
  if (!opts.recursive) return one(path);
  const parts = path.split("/");
  for (let i = 1; i <= parts.length; i++) {
    const p = parts.slice(0, i).join("/");
    if (p !== "") one(p);
  }
}

/** Rename `from` to `to` (replacing `to`). */
export function renameFile(from: string, to: string): void {
  check("rename", () => libc().rename(cstr(from), cstr(to)), `${from} -> ${to}`);
}

/** Remove a file; false when there was none. */
export function removeFile(path: string): boolean {
  if (libc().unlink(cstr(path)) === 0) return true;
  const e = errno();
  if (e === Errno.ENOENT) return false;
  throw new SysError(e, "unlink", path);
}

/** The names in a directory (without "." and ".."). */
export function listDir(path: string): string[] {
  const dir = libc().opendir(cstr(path));
  if (!dir) throw new SysError(errno(), "opendir", path);
  const names: string[] = [];
  try {
    for (;;) {
      const ent = libc().readdir(dir);
      if (!ent) break;
      const name = new CString((Number(ent) + DIRENT_NAME) as Pointer).toString();
      if (name !== "." && name !== "..") names.push(name);
    }
  } finally {
    libc().closedir(dir);
  }
  return names;
}

/** The canonical absolute path of `path` (links followed). */
export function realPath(path: string): string {
  const p = libc().realpath(cstr(path), null);
  if (!p) throw new SysError(errno(), "realpath", path);
  try {
    return new CString(p).toString();
  } finally {
    libc().free(p);
  }
}

/** What `fileStat` tells. */
export interface FileStat {
  isFile: boolean;
  isDirectory: boolean;
  /** Inode number (with `dev`, a file's identity). */
  ino: bigint;
  dev: string;
}

/** Stat a path (links followed) or an open descriptor. */
export function fileStat(target: string | number): FileStat {
  const buf = new Uint8Array(256); // struct statx
  const [dirfd, path, flags] = typeof target === "number" ? [target, "", AT_EMPTY_PATH] : [AT_FDCWD, target, 0];
  check("statx", () => libc().statx(dirfd, cstr(path), flags, STATX_TYPE | STATX_INO, buf), String(target));
  const v = new DataView(buf.buffer);
  const mode = v.getUint16(28, true) & S_IFMT;
  return { isFile: mode === S_IFREG, isDirectory: mode === S_IFDIR, ino: v.getBigUint64(32, true), dev: `${v.getUint32(136, true)}:${v.getUint32(140, true)}` };
}

function isDir(path: string): boolean {
  try {
    return fileStat(path).isDirectory;
  } catch {
    return false;
  }
}

