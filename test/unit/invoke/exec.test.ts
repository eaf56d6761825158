import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, closeSync, openSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { execRaw, parseOutput, pluginEnv, type RawOutput } from "../../../src/invoke/exec.ts";
import { CniError, ErrorCode } from "../../../src/spec/error.ts";
import { SCRIPT_ENV, tempRoot, writeScript } from "./scripts.ts";

const tmp = tempRoot("exec");
afterAll(() => tmp.cleanup());

async function rejection(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error("expected a rejection");
}

function thrown(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error("expected an error");
}

describe("pluginEnv", () => {
  const base = {
    PATH: "/usr/bin:/bin",
    HOME: "/root",
    CNI_COMMAND: "DEL",
    CNI_CONTAINERID: "parent-ctr",
    CNI_NETNS: "/run/netns/parent",
    CNI_IFNAME: "parent0",
    CNI_ARGS: "LEAK=1",
    CNI_PATH: "/parent/bin",
    UNSET: undefined,
  };

  test("inherited CNI_* variables are replaced by the invocation's", () => {
    const env = pluginEnv(
      { command: "ADD", containerId: "c1", netns: "/run/netns/p1", ifName: "eth0", args: "K=V", path: "/opt/cni/bin" },
      base,
    );
    expect(env).toEqual({
      PATH: "/usr/bin:/bin",
      HOME: "/root",
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "c1",
      CNI_NETNS: "/run/netns/p1",
      CNI_IFNAME: "eth0",
      CNI_ARGS: "K=V",
      CNI_PATH: "/opt/cni/bin",
    });
  });

  test("inherited CNI_* variables never leak when the invocation leaves them empty", () => {
    const env = pluginEnv({ command: "GC", path: "/opt/cni/bin", args: "", netns: "" }, base);
    expect(env).toEqual({ PATH: "/usr/bin:/bin", HOME: "/root", CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" });
    expect("UNSET" in env).toBe(false);
  });

  test("the base environment defaults to this process's", () => {
    const env = pluginEnv({ command: "VERSION" });
    expect(env.PATH).toBe(process.env.PATH!);
    expect(env.CNI_COMMAND).toBe("VERSION");
  });

  test("the base object is not modified", () => {
    const copy = { ...base };
    pluginEnv({ command: "ADD", containerId: "x" }, base);
    expect(base).toEqual(copy);
  });
});

describe("execRaw", () => {
  const d = tmp.dir("bin");

  test("passes stdin and env, captures stdout, stderr and the exit code", async () => {
    const f = writeScript(d, "echoer", 'echo "cmd=$CNI_COMMAND"; cat; echo "to stderr" >&2; exit 3');
    const out = await execRaw(f, { stdin: '{"a":1}', env: { ...SCRIPT_ENV, CNI_COMMAND: "ADD" } });
    expect(out).toEqual({ stdout: 'cmd=ADD\n{"a":1}', stderr: "to stderr\n", exitCode: 3 });
  });

  test("the plugin sees only the given environment", async () => {
    const f = writeScript(d, "envdump", "env");
    const out = await execRaw(f, { stdin: "", env: { ...SCRIPT_ENV, ONLY_THIS: "1" } });
    const names = out.stdout
      .trim()
      .split("\n")
      .map((l) => l.split("=")[0])
      .filter((n) => n !== "PWD" && n !== "SHLVL" && n !== "_");
    expect(names.sort()).toEqual(["ONLY_THIS", "PATH"]);
  });

  test("a plugin that ignores a large stdin still succeeds", async () => {
    const f = writeScript(d, "ignorer", 'echo \'{"cniVersion":"1.0.0"}\'');
    const out = await execRaw(f, { stdin: "x".repeat(4 * 1024 * 1024), env: SCRIPT_ENV });
    expect(out.exitCode).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ cniVersion: "1.0.0" });
  });

  test("a missing file is an I/O error naming it", async () => {
    const e = await rejection(execRaw(join(d, "nope"), { stdin: "", env: SCRIPT_ENV }));
    expect(e.code).toBe(ErrorCode.IOFailure);
    expect(e.message).toContain(join(d, "nope"));
  });

  test("a file without execute permission is an I/O error", async () => {
    const f = join(d, "noexec");
    writeFileSync(f, "#!/bin/sh\necho hi\n", { mode: 0o644 });
    chmodSync(f, 0o644);
    const e = await rejection(execRaw(f, { stdin: "", env: SCRIPT_ENV }));
    expect(e.code).toBe(ErrorCode.IOFailure);
  });
});

describe("execRaw: text file busy", () => {
  const d = tmp.dir("busy");

  /** Create an executable script and return the fd it is still open for writing on. */
  function openForWriting(name: string): { file: string; fd: number } {
    const file = join(d, name);
    const fd = openSync(file, "w", 0o755);
    writeSync(fd, '#!/bin/sh\ncat >/dev/null\necho \'{"cniVersion":"1.1.0"}\'\n');
    chmodSync(file, 0o755);
    return { file, fd };
  }

  /** Precondition: while the fd is open, exec really fails with ETXTBSY on this machine. */
  function expectBusy(file: string): void {
    let code: string | undefined;
    try {
      const p = Bun.spawnSync([file], { env: SCRIPT_ENV });
      code = `ran with exit ${p.exitCode}`;
    } catch (e) {
      code = (e as { code?: string }).code;
    }
    expect(code).toBe("ETXTBSY");
  }

  test("retries until the writer closes the file", async () => {
    const { file, fd } = openForWriting("held");
    expectBusy(file);
    let closed = false;
    const timer = setTimeout(() => {
      closeSync(fd);
      closed = true;
    }, 30);
    try {
      const start = performance.now();
      const out = await execRaw(file, { stdin: "{}", env: SCRIPT_ENV });
      expect(closed).toBe(true);
      expect(out.exitCode).toBe(0);
      expect(JSON.parse(out.stdout)).toEqual({ cniVersion: "1.1.0" });
      expect(performance.now() - start).toBeGreaterThanOrEqual(25);
    } finally {
      clearTimeout(timer);
      if (!closed) closeSync(fd);
    }
  });

  test("gives up with an I/O error when the file stays busy", async () => {
    const { file, fd } = openForWriting("stuck");
    try {
      expectBusy(file);
      const e = await rejection(execRaw(file, { stdin: "{}", env: SCRIPT_ENV }));
      expect(e.code).toBe(ErrorCode.IOFailure);
      expect(e.message.toLowerCase()).toMatch(/busy|etxtbsy/);
      expect(e.message).toContain(file);
    } finally {
      closeSync(fd);
    }
  });
});

describe("parseOutput", () => {
  const raw = (stdout: string, exitCode = 0, stderr = ""): RawOutput => ({ stdout, stderr, exitCode });

  test("success: the parsed JSON", () => {
    expect(parseOutput(raw('\n{"cniVersion":"1.0.0","ips":[]}\n'), "/bin/p")).toEqual({ cniVersion: "1.0.0", ips: [] });
  });

  test("success with empty (or blank) stdout: undefined", () => {
    expect(parseOutput(raw(""), "/bin/p")).toBeUndefined();
    expect(parseOutput(raw(" \n"), "/bin/p")).toBeUndefined();
  });

  test("success with garbage stdout: code 6 naming the plugin and the text", () => {
    const e = thrown(() => parseOutput(raw("hello there", 0, ""), "/bin/p"));
    expect(e.code).toBe(ErrorCode.DecodingFailure);
    expect(e.message).toContain("/bin/p");
    expect(e.message).toContain("hello there");
  });

  test("failure with a spec error: code, msg, details and version kept", () => {
    const e = thrown(() =>
      parseOutput(raw('{"cniVersion":"0.4.0","code":7,"msg":"bad config","details":"no bridge"}', 1, "noise"), "/bin/p"),
    );
    expect(e.code).toBe(7);
    expect(e.message).toBe("bad config");
    expect(e.details).toBe("no bridge");
    expect(e.cniVersion).toBe("0.4.0");
  });

  test("failure with a spec error without details", () => {
    const e = thrown(() => parseOutput(raw('{"code":11,"msg":"try later"}', 2), "/bin/p"));
    expect(e.code).toBe(11);
    expect(e.message).toBe("try later");
    expect(e.details).toBe("");
  });

  test("failure with empty stdout: code 999 with stderr as the message", () => {
    const e = thrown(() => parseOutput(raw("", 1, "  something broke\n"), "/bin/p"));
    expect(e.code).toBe(ErrorCode.Internal);
    expect(e.message).toBe("something broke");
  });

  test("failure with nothing at all: code 999 naming the plugin and exit code", () => {
    const e = thrown(() => parseOutput(raw("", 42, ""), "/bin/p"));
    expect(e.code).toBe(999);
    expect(e.message).toContain("/bin/p");
    expect(e.message).toContain("42");
  });

  test("failure with garbage stdout: code 999 quoting it", () => {
    const e = thrown(() => parseOutput(raw("panic: oops", 2, "stack"), "/bin/p"));
    expect(e.code).toBe(999);
    expect(e.message).toContain("panic: oops");
  });

  test("failure with JSON that is not a spec error: code 999", () => {
    expect(thrown(() => parseOutput(raw('{"cniVersion":"1.0.0"}', 1), "/bin/p")).code).toBe(999);
    expect(thrown(() => parseOutput(raw('{"code":0,"msg":"zero"}', 1), "/bin/p")).code).toBe(999);
  });
});

describe("execRaw + parseOutput with fake plugins", () => {
  const d = tmp.dir("fakes");
  const run = async (body: string, stdin = "{}") => {
    const f = writeScript(d, `p${Math.random().toString(36).slice(2)}`, body);
    return { f, out: await execRaw(f, { stdin, env: SCRIPT_ENV }) };
  };

  test("success JSON", async () => {
    const { f, out } = await run(`cat >/dev/null; echo '{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}'`);
    expect(parseOutput(out, f)).toEqual({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }] });
  });

  test("spec error on stdout with a non-zero exit", async () => {
    const { f, out } = await run(
      `cat >/dev/null; echo '{"cniVersion":"1.0.0","code":7,"msg":"invalid config","details":"bridge name too long"}'; echo log >&2; exit 1`,
    );
    const e = thrown(() => parseOutput(out, f));
    expect([e.code, e.message, e.details]).toEqual([7, "invalid config", "bridge name too long"]);
  });

  test("empty stdout and a stderr message: code 999 with the stderr text", async () => {
    const { f, out } = await run(`cat >/dev/null; echo "fatal: cannot open netns" >&2; exit 2`);
    const e = thrown(() => parseOutput(out, f));
    expect(e.code).toBe(999);
    expect(e.message).toBe("fatal: cannot open netns");
  });

  test("garbage stdout, exit 0: code 6", async () => {
    const { f, out } = await run(`cat >/dev/null; echo "Usage: plugin [options]"`);
    expect(thrown(() => parseOutput(out, f)).code).toBe(ErrorCode.DecodingFailure);
  });

  test("garbage stdout, exit 1: code 999", async () => {
    const { f, out } = await run(`cat >/dev/null; echo "segfault"; exit 1`);
    const e = thrown(() => parseOutput(out, f));
    expect(e.code).toBe(999);
    expect(e.message).toContain("segfault");
  });

  test("the plugin received the config on stdin", async () => {
    const { f, out } = await run(`cat`, '{"cniVersion":"1.1.0","name":"n","type":"t"}');
    expect(parseOutput(out, f)).toEqual({ cniVersion: "1.1.0", name: "n", type: "t" });
  });
});
