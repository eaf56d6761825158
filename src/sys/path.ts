/**
 * The few path operations plugins need, without `node:path` (which costs a compiled binary
 * ~0.6 ms to load at start). POSIX paths only.
 */

/** Join path parts with "/", collapsing repeated slashes ("a/", "b" -> "a/b"). */
export function joinPath(...parts: string[]): string {
  const joined = parts.filter((p) => p !== "").join("/");
  return joined.replace(/\/{2,}/g, "/") || ".";
}

/** The directory part ("/a/b/c" -> "/a/b", "c" -> ".", "/c" -> "/"). */
export function dirName(path: string): string {
  const p = path.length > 1 ? path.replace(/\/+$/, "") : path;
  const i = p.lastIndexOf("/");
  if (i < 0) return ".";
  return i === 0 ? "/" : p.slice(0, i);
}

/** The last part ("/a/b/c" -> "c", "/a/b/" -> "b"). */
export function baseName(path: string): string {
  const p = path.length > 1 ? path.replace(/\/+$/, "") : path;
  return p.slice(p.lastIndexOf("/") + 1);
}
