/**
 * Pinning under a bpf filesystem: `BPF_OBJ_PIN` gives a map or program a path so that it outlives
 * the process that made it, `BPF_OBJ_GET` opens it again, unlinking the path unpins it. A bpffs
 * is mounted where none is.
 */

import { Errno } from "../sys/errno.ts";
import { isBpffs, mountBpffs, removeDir } from "../sys/bpf.ts";
import { SysError } from "../sys/error.ts";
import { listDir, makeDir, removeFile } from "../sys/file.ts";
import { type FileLock, lockFile } from "../sys/flock.ts";
import { dirName } from "../sys/path.ts";
import { Attr, Cmd } from "./attr.ts";

/** Where bpffs is mounted on most systems. */
export const DEFAULT_BPFFS = "/sys/fs/bpf";

const enc = new TextEncoder();

/** BPF_OBJ_PIN: give the object behind `fd` the path `path` (on a bpffs; EEXIST when taken). */
export function pinObject(fd: number, path: string): void {
  new Attr().ptr(0, enc.encode(`${path}\0`)).u32(8, fd).call(Cmd.OBJ_PIN, path);
}

/** BPF_OBJ_GET: a new descriptor for the object pinned at `path`. */
export function openPinned(path: string): number {
  return new Attr().ptr(0, enc.encode(`${path}\0`)).call(Cmd.OBJ_GET, path);
}

/** Unpin: remove the path (the object goes when nothing else holds it); false when there was none. */
export function unpin(path: string): boolean {
  return removeFile(path);
}

/**
 * Make sure `dir` is on a bpf filesystem: when it is not, create it and mount a bpffs there.
 * Returns true when it mounted one.
 */
export function ensureBpffs(dir: string = DEFAULT_BPFFS): boolean {
  if (isBpffs(dir)) return false;
  makeDir(dir, { recursive: true, mode: 0o700 });
  if (isBpffs(dir)) return false; // the parent was a bpffs after all
  mountBpffs(dir);
  return true;
}

/** Create `dir` (and its parents) inside a bpffs; fails with EXDEV when it would not be on one. */
export function makePinDir(dir: string): void {
  makeDir(dir, { recursive: true, mode: 0o700 });
  if (!isBpffs(dir)) throw new SysError(Errno.EXDEV, "pin", `${dir} is not on a bpf filesystem`);
}

/** Remove every pin in `dir` and then `dir` itself (a pin directory holds only pins); false when absent. */
export function removePinDir(dir: string): boolean {
  let names: string[];
  try {
    names = listDir(dir);
  } catch (err) {
    if ((err as SysError).errno === Errno.ENOENT) return false;
    throw err;
  }
  for (const n of names) unpin(`${dir}/${n}`);
  return removeDir(dir);
}

/**
 * Lock the directory a network's pin directory is in (flock on the bpffs directory itself, which
 * every mount namespace sees as one): shared while an ADD puts a pod on the network's pins,
 * exclusive while the last pod's DEL decides whether to remove them. Without it an ADD that had
 * opened the pins could put its pod into maps a concurrent last-pod DEL had just unpinned, and
 * later pods would get a datapath that does not know it. Undefined when that directory does not
 * exist yet (nothing is pinned there: nothing to race with).
 */
export function lockPinParent(pinDir: string, mode: "shared" | "exclusive"): FileLock | undefined {
  try {
    return lockFile(dirName(pinDir), { dir: true, shared: mode === "shared" });
  } catch (err) {
    if ((err as SysError).errno === Errno.ENOENT) return undefined;
    throw err;
  }
}
