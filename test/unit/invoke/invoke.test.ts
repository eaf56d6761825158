import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { builtinLoader, builtinTypes, registerBuiltins, runsInProcess } from "../../../src/invoke/builtin.ts";
import { delegateAdd, delegateCommand } from "../../../src/invoke/delegate.ts";
import { invokeFile, invokePlugin, invokeVersion, invokeWithResult } from "../../../src/invoke/invoke.ts";
import type { CmdArgs, Plugin } from "../../../src/skel/plugin.ts";
import { CniError, ErrorCode } from "../../../src/spec/error.ts";
import { SCRIPT_ENV, shq, tempRoot, writeScript } from "./scripts.ts";

const tmp = tempRoot("invoke");
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

function readEnv(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** A script that records env and stdin into `log` files and prints `output` (exit `code`). */
function recorder(dir: string, name: string, log: string, output: string, code = 0): string {
  return writeScript(
    dir,
    name,
    `env > ${shq(`${log}.env`)}\ncat > ${shq(`${log}.stdin`)}\nprintf '%s' ${shq(output)}\nexit ${code}`,
  );
}

describe("invokePlugin (exec)", () => {
  const bin1 = tmp.dir("bin1");
  const bin2 = tmp.dir("bin2");
  const logs = tmp.dir("logs1");
  recorder(bin2, "rec", join(logs, "rec"), '{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}');

  test("finds the type in the path, passes env and stdin, returns parsed JSON", async () => {
    const path = `${bin1}:${bin2}`;
    const out = await invokePlugin("rec", {
      command: "ADD",
      containerId: "c1",
      netns: "/run/netns/p1",
      ifName: "eth0",
      args: "A=B",
      path,
      stdin: '{"cniVersion":"1.0.0","name":"n","type":"rec"}',
      baseEnv: { ...SCRIPT_ENV, CNI_ARGS: "LEAK=1", KEEP: "yes" },
    });
    expect(out).toEqual({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }] });
    const env = readEnv(join(logs, "rec.env"));
    expect(env).toMatchObject({
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "c1",
      CNI_NETNS: "/run/netns/p1",
      CNI_IFNAME: "eth0",
      CNI_ARGS: "A=B",
      CNI_PATH: path,
      KEEP: "yes",
    });
    expect(readFileSync(join(logs, "rec.stdin"), "utf8")).toBe('{"cniVersion":"1.0.0","name":"n","type":"rec"}');
  });

  test("inherited CNI_* variables do not leak into a DEL without netns or args", async () => {
    await invokePlugin("rec", {
      command: "DEL",
      containerId: "c1",
      netns: "",
      ifName: "eth0",
      path: bin2,
      stdin: "{}",
      baseEnv: { ...SCRIPT_ENV, CNI_NETNS: "/run/netns/parent", CNI_ARGS: "LEAK=1" },
    });
    const env = readEnv(join(logs, "rec.env"));
    expect(env.CNI_COMMAND).toBe("DEL");
    expect(env.CNI_NETNS).toBeUndefined();
    expect(env.CNI_ARGS).toBeUndefined();
  });

  test("a type missing from the path is an error naming the dirs", async () => {
    const e = await rejection(invokePlugin("nope", { command: "ADD", path: `${bin1}:${bin2}`, stdin: "{}" }));
    expect(e.message).toContain(bin1);
    expect(e.message).toContain(bin2);
  });

  test("a plugin's spec error is thrown as a CniError", async () => {
    const d = tmp.dir();
    writeScript(d, "bad", `cat >/dev/null; echo '{"code":7,"msg":"bad bridge","details":"d"}'; exit 1`);
    const e = await rejection(invokePlugin("bad", { command: "ADD", path: d, stdin: "{}", baseEnv: SCRIPT_ENV }));
    expect([e.code, e.message, e.details]).toEqual([7, "bad bridge", "d"]);
  });

  test("a silent successful plugin gives undefined", async () => {
    const d = tmp.dir();
    writeScript(d, "quiet", "cat >/dev/null");
    expect(await invokePlugin("quiet", { command: "DEL", path: d, stdin: "{}", baseEnv: SCRIPT_ENV })).toBeUndefined();
  });
});

describe("invokeWithResult", () => {
  const d = tmp.dir("withresult");
  const print = (name: string, json: string) => writeScript(d, name, `cat >/dev/null; printf '%s' ${shq(json)}`);
  print(
    "r110",
    JSON.stringify({
      cniVersion: "1.1.0",
      interfaces: [{ name: "eth0", mtu: 1400 }],
      ips: [{ interface: 0, address: "10.0.0.2/24", gateway: "10.0.0.1" }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1", table: 5 }],
    }),
  );
  print("noversion", JSON.stringify({ ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1" }] }));
  print("badresult", JSON.stringify({ cniVersion: "1.0.0", ips: [{ address: "nonsense" }] }));
  writeScript(d, "silent", "cat >/dev/null");
  const opts = { command: "ADD", containerId: "c", netns: "/n", ifName: "eth0", path: d, stdin: "{}", baseEnv: SCRIPT_ENV };

  test("converts the plugin's result to the config's version", async () => {
    expect(await invokeWithResult("r110", "0.4.0", opts)).toEqual({
      cniVersion: "0.4.0",
      interfaces: [{ name: "eth0" }],
      ips: [{ version: "4", interface: 0, address: "10.0.0.2/24", gateway: "10.0.0.1" }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1" }],
    });
    expect(await invokeWithResult("r110", "0.2.0", opts)).toEqual({
      cniVersion: "0.2.0",
      ip4: { ip: "10.0.0.2/24", gateway: "10.0.0.1", routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1" }] },
    });
  });

  test("an empty version means 0.1.0", async () => {
    expect((await invokeWithResult("r110", "", opts)).cniVersion).toBe("0.1.0");
  });

  test("a plugin printing nothing is code 6 naming the type", async () => {
    const e = await rejection(invokeWithResult("silent", "1.0.0", opts));
    expect(e.code).toBe(ErrorCode.DecodingFailure);
    expect(e.message).toContain("silent");
  });

  test("an invalid result is code 6", async () => {
    expect((await rejection(invokeWithResult("badresult", "1.0.0", opts))).code).toBe(ErrorCode.DecodingFailure);
  });

  // libcni (invoke.ExecPluginWithResult -> fixupResultVersion) takes a result without cniVersion
  // in the version of the config it was given; plugins are not required to set it.
  test("BUG: a result without cniVersion is read in the config's version, not as 0.1.0", async () => {
    const res = await invokeWithResult("noversion", "1.0.0", {
      ...opts,
      stdin: JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "noversion" }),
    });
    expect(res).toEqual({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1" }] });
  });
});

describe("invokeVersion", () => {
  const d = tmp.dir("version");
  const logs = tmp.dir("vlogs");
  recorder(d, "modern", join(logs, "modern"), '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}');
  writeScript(d, "ancient", "cat >/dev/null");
  writeScript(d, "broken", `cat >/dev/null; echo '{"code":4,"msg":"nope"}'; exit 1`);

  test("asks VERSION with a 1.1.0 config on stdin and no other CNI_* variables", async () => {
    const vi = await invokeVersion("modern", { path: d, baseEnv: { ...SCRIPT_ENV, CNI_CONTAINERID: "leak" } });
    expect(vi).toEqual({ cniVersion: "1.1.0", supportedVersions: ["0.4.0", "1.0.0", "1.1.0"] });
    const env = readEnv(join(logs, "modern.env"));
    expect(env.CNI_COMMAND).toBe("VERSION");
    expect(env.CNI_PATH).toBe(d);
    expect(env.CNI_CONTAINERID).toBeUndefined();
    expect(env.CNI_NETNS).toBeUndefined();
    expect(JSON.parse(readFileSync(join(logs, "modern.stdin"), "utf8"))).toEqual({ cniVersion: "1.1.0" });
  });

  test("a plugin answering nothing is taken as a 0.1.0 plugin", async () => {
    expect(await invokeVersion("ancient", { path: d, baseEnv: SCRIPT_ENV })).toEqual({
      cniVersion: "0.1.0",
      supportedVersions: ["0.1.0"],
    });
  });

  test("a failing VERSION is thrown", async () => {
    expect((await rejection(invokeVersion("broken", { path: d, baseEnv: SCRIPT_ENV }))).code).toBe(4);
  });
});

describe("built-in plugins in-process", () => {
  const TYPE = `cnikit-unit-builtin-${process.pid}`;
  const calls: Array<{ verb: string; args: CmdArgs }> = [];
  const plugin: Plugin = {
    supportedVersions: ["1.0.0", "1.1.0"],
    add: (args) => {
      calls.push({ verb: "ADD", args });
      return { cniVersion: "1.1.0", ips: [{ address: "10.5.0.2/16" }] };
    },
    del: (args) => {
      calls.push({ verb: "DEL", args });
      if (args.containerId === "fail") throw new CniError(ErrorCode.TryAgainLater, "locked", "retry");
    },
  };
  let loads = 0;
  registerBuiltins({
    [TYPE]: async () => {
      loads++;
      return plugin;
    },
  });
  const self = tmp.dir("self");
  symlinkSync(process.execPath, join(self, TYPE));
  const foreign = tmp.dir("foreign");
  writeScript(foreign, TYPE, `cat >/dev/null; echo '{"cniVersion":"1.1.0","ips":[{"address":"10.99.0.9/8"}]}'`);

  test("registration is visible", () => {
    expect(builtinTypes()).toContain(TYPE);
    expect(builtinLoader(TYPE)).toBeDefined();
    expect(builtinLoader("not-registered")).toBeUndefined();
  });

  test("runsInProcess only when the found file is this very binary and the type is built in", async () => {
    expect(await runsInProcess(TYPE, join(self, TYPE))).toBe(true);
    expect(await runsInProcess(TYPE, process.execPath)).toBe(true);
    expect(await runsInProcess(TYPE, join(foreign, TYPE))).toBe(false);
    expect(await runsInProcess("not-registered", process.execPath)).toBe(false);
    expect(await runsInProcess(TYPE, join(self, "missing"))).toBe(false);
  });

  test("a type resolving to this binary runs in-process with the invocation's env and stdin", async () => {
    calls.length = 0;
    const stdin = JSON.stringify({ cniVersion: "1.0.0", name: "n", type: TYPE });
    const res = await invokeWithResult(TYPE, "1.0.0", {
      command: "ADD",
      containerId: "c1",
      netns: "/run/netns/p1",
      ifName: "eth1",
      args: "X=1",
      path: `${self}:${foreign}`,
      stdin,
      baseEnv: { ...SCRIPT_ENV, CNI_COMMAND: "DEL" },
    });
    expect(res).toEqual({ cniVersion: "1.0.0", ips: [{ address: "10.5.0.2/16" }] });
    expect(calls).toHaveLength(1);
    const a = calls[0]!.args;
    expect([a.command, a.containerId, a.netns, a.ifName, a.args, a.path, a.stdinData]).toEqual([
      "ADD", "c1", "/run/netns/p1", "eth1", "X=1", `${self}:${foreign}`, stdin,
    ]);
    expect(a.env.CNI_COMMAND).toBe("ADD");
    expect(loads).toBeGreaterThanOrEqual(1);
  });

  test("an in-process spec error comes back as a CniError", async () => {
    const e = await rejection(
      invokePlugin(TYPE, {
        command: "DEL",
        containerId: "fail",
        ifName: "eth0",
        path: self,
        stdin: JSON.stringify({ cniVersion: "1.1.0", name: "n", type: TYPE }),
        baseEnv: SCRIPT_ENV,
      }),
    );
    expect([e.code, e.message, e.details]).toEqual([11, "locked", "retry"]);
  });

  test("an in-process VERSION answers the plugin's versions", async () => {
    expect(await invokeVersion(TYPE, { path: self, baseEnv: SCRIPT_ENV })).toEqual({
      cniVersion: "1.1.0",
      supportedVersions: ["1.0.0", "1.1.0"],
    });
  });

  test("a foreign file of the same name is executed, never run in-process", async () => {
    calls.length = 0;
    const res = await invokeWithResult(TYPE, "1.1.0", {
      command: "ADD", containerId: "c1", netns: "/n", ifName: "eth0", path: `${foreign}:${self}`, stdin: "{}", baseEnv: SCRIPT_ENV,
    });
    expect(res).toEqual({ cniVersion: "1.1.0", ips: [{ address: "10.99.0.9/8" }] });
    expect(calls).toEqual([]);
  });

  test("forceExec executes even this very binary (which is not a plugin under bun test)", async () => {
    calls.length = 0;
    const e = await rejection(
      invokeFile(TYPE, join(self, TYPE), {
        command: "ADD", containerId: "c1", netns: "/n", ifName: "eth0", path: self, stdin: "{}", baseEnv: SCRIPT_ENV, forceExec: true,
      }),
    );
    expect(e.code).toBe(ErrorCode.DecodingFailure);
    expect(calls).toEqual([]);
  });
});

describe("delegation", () => {
  const d = tmp.dir("delegate");
  const logs = tmp.dir("dlogs");
  recorder(d, "ipam", join(logs, "ipam"), '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.7.0.3/24","gateway":"10.7.0.1"}]}');

  const parent = (): CmdArgs => ({
    command: "ADD",
    containerId: "ctr",
    netns: "/run/netns/p",
    ifName: "eth0",
    args: "K8S_POD_NAME=x",
    path: d,
    stdinData: "{}",
    config: { type: "bridge", cniVersion: "1.0.0" },
    cniVersion: "1.0.0",
    env: { ...SCRIPT_ENV, CNI_COMMAND: "ADD", CNI_CONTAINERID: "ctr", CNI_IFNAME: "eth0", PARENT: "1" },
    log: () => {},
  });

  test("delegateAdd runs the type with the parent's env and returns the current form", async () => {
    const cfg = JSON.stringify({ cniVersion: "0.4.0", name: "n", type: "ipam" });
    const res = await delegateAdd("ipam", parent(), cfg);
    expect(res).toEqual({ cniVersion: "1.1.0", ips: [{ address: "10.7.0.3/24", gateway: "10.7.0.1" }] });
    const env = readEnv(join(logs, "ipam.env"));
    expect(env).toMatchObject({
      CNI_COMMAND: "ADD", CNI_CONTAINERID: "ctr", CNI_NETNS: "/run/netns/p", CNI_IFNAME: "eth0", CNI_ARGS: "K8S_POD_NAME=x", CNI_PATH: d, PARENT: "1",
    });
    expect(readFileSync(join(logs, "ipam.stdin"), "utf8")).toBe(cfg);
  });

  test("delegateCommand runs another verb with the same env", async () => {
    await delegateCommand("ipam", parent(), "DEL", '{"cniVersion":"1.0.0","type":"ipam"}');
    const env = readEnv(join(logs, "ipam.env"));
    expect(env.CNI_COMMAND).toBe("DEL");
    expect(env.CNI_CONTAINERID).toBe("ctr");
  });
});
