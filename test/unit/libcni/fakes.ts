/**
 * Test support for libcni: fake plugins as shell scripts that record every call (type, env,
 * stdin) into a log directory and print a fixed result; failures are switched on per type and
 * verb with marker files, so one set of scripts serves every test.
 */

import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** One recorded plugin call. */
export interface Call {
  type: string;
  command: string;
  env: Record<string, string>;
  /** The config the plugin got, parsed. */
  stdin: Record<string, unknown>;
}

export interface FakeWorld {
  /** Plugin directory (CNI_PATH). */
  bin: string;
  /** Cache directory for CNIConfig. */
  cache: string;
  /** Minimal environment plugins run with (plus leak-bait CNI_* variables). */
  baseEnv: Record<string, string>;
  /** Add a fake plugin `type` printing `result` on ADD and `versions` on VERSION. */
  plugin: (type: string, opts?: { result?: unknown; versions?: string[] }) => void;
  /** Make `type` fail `command` with a spec error (or only a stderr message when `stderrOnly`). */
  fail: (type: string, command: string, err?: { code: number; msg: string; details?: string }, stderrOnly?: string) => void;
  /** Undo `fail`. */
  heal: (type: string, command: string) => void;
  /** Every call so far, in order (VERSION calls are not recorded). */
  calls: () => Call[];
  /** Forget the calls so far. */
  reset: () => void;
}

const roots: string[] = [];

/** Remove every world made so far. */
export function cleanupWorlds(): void {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
}

/** A fresh set of directories for one test. */
export function makeWorld(): FakeWorld {
  const root = mkdtempSync(join(tmpdir(), "cnikit-libcni-"));
  roots.push(root);
  const bin = join(root, "bin");
  const log = join(root, "log");
  const ctl = join(root, "ctl");
  const cache = join(root, "cache");
  for (const d of [bin, log, ctl]) mkdirSync(d, { recursive: true });
  let next = 0;

  const plugin: FakeWorld["plugin"] = (type, opts = {}) => {
    const result = JSON.stringify(opts.result ?? { cniVersion: "1.1.0", ips: [{ address: "10.0.0.2/24" }] });
    const versions = JSON.stringify({ cniVersion: "1.1.0", supportedVersions: opts.versions ?? ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] });
    for (const s of [result, versions, type, log, ctl]) if (s.includes("'")) throw new Error("no single quotes in fake plugin data");
    const body = `#!/bin/sh
LOG='${log}'
CTL='${ctl}'
TYPE='${type}'
if [ "$CNI_COMMAND" = VERSION ]; then
  cat >/dev/null
  printf '%s' '${versions}'
  exit 0
fi
n=$(cat "$LOG/counter" 2>/dev/null || echo 0)
n=$((n+1))
echo "$n" > "$LOG/counter"
cat > "$LOG/$n.stdin"
env > "$LOG/$n.env"
printf '%s' "$TYPE" > "$LOG/$n.type"
if [ -f "$CTL/stderr-$TYPE-$CNI_COMMAND" ]; then
  cat "$CTL/stderr-$TYPE-$CNI_COMMAND" >&2
  exit 1
fi
if [ -f "$CTL/fail-$TYPE-$CNI_COMMAND" ]; then
  cat "$CTL/fail-$TYPE-$CNI_COMMAND"
  exit 1
fi
if [ "$CNI_COMMAND" = ADD ]; then
  printf '%s' '${result}'
fi
exit 0
`;
    const file = join(bin, type);
    writeFileSync(file, body, { mode: 0o755 });
    chmodSync(file, 0o755);
  };

  const fail: FakeWorld["fail"] = (type, command, err, stderrOnly) => {
    if (stderrOnly !== undefined) {
      writeFileSync(join(ctl, `stderr-${type}-${command}`), stderrOnly);
      return;
    }
    writeFileSync(join(ctl, `fail-${type}-${command}`), JSON.stringify({ cniVersion: "1.0.0", ...(err ?? { code: 999, msg: `${type} ${command} failed` }) }));
  };

  const heal: FakeWorld["heal"] = (type, command) => {
    rmSync(join(ctl, `fail-${type}-${command}`), { force: true });
    rmSync(join(ctl, `stderr-${type}-${command}`), { force: true });
  };

  const calls = (): Call[] => {
    const total = existsSync(join(log, "counter")) ? Number(readFileSync(join(log, "counter"), "utf8").trim()) : 0;
    const out: Call[] = [];
    for (let i = next + 1; i <= total; i++) {
      const env: Record<string, string> = {};
      for (const line of readFileSync(join(log, `${i}.env`), "utf8").split("\n")) {
        const eq = line.indexOf("=");
        if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
      }
      const text = readFileSync(join(log, `${i}.stdin`), "utf8");
      out.push({
        type: readFileSync(join(log, `${i}.type`), "utf8"),
        command: env.CNI_COMMAND ?? "",
        env,
        stdin: JSON.parse(text) as Record<string, unknown>,
      });
    }
    return out;
  };

  const reset = () => {
    next = existsSync(join(log, "counter")) ? Number(readFileSync(join(log, "counter"), "utf8").trim()) : 0;
  };

  return {
    bin,
    cache,
    baseEnv: { PATH: "/usr/bin:/bin", CNI_ARGS: "LEAKED=1", CNI_NETNS: "/leaked", CNI_CONTAINERID: "leaked", MARKER: "base" },
    plugin,
    fail,
    heal,
    calls,
    reset,
  };
}
