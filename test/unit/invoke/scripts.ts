/** Test support: small fake plugin executables written as shell scripts into temp dirs. */

import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A temp root removed by `cleanup()`; `dir()` makes fresh sub-directories inside it. */
export function tempRoot(prefix: string): { root: string; dir: (name?: string) => string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), `cnikit-${prefix}-`));
  let n = 0;
  return {
    root,
    dir: (name) => {
      const d = join(root, name ?? `d${++n}`);
      mkdirSync(d, { recursive: true });
      return d;
    },
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** Write an executable `#!/bin/sh` script `name` with `body` into `dir`; returns its path. */
export function writeScript(dir: string, name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  chmodSync(file, 0o755);
  return file;
}

/** Quote a string for a POSIX shell (single quotes). */
export function shq(s: string): string {
  return `'${s.replaceAll("'", `'"'"'`)}'`;
}

/** A minimal environment for scripts (they need `cat`, `env`). */
export const SCRIPT_ENV: Record<string, string> = { PATH: "/usr/bin:/bin" };
