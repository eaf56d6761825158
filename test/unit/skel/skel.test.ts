import { describe, expect, test } from "bun:test";
import { runPlugin, type PluginIO } from "../../../src/skel/skel.ts";
import type { CmdArgs, Plugin } from "../../../src/skel/plugin.ts";
import { CniError, ErrorCode } from "../../../src/spec/error.ts";
import type { Result } from "../../../src/spec/result.ts";
import { SUPPORTED_VERSIONS } from "../../../src/spec/version.ts";

/** What one in-memory run produced. */
interface Run {
  code: number;
  /** Every writeStdout call, in order. */
  writes: string[];
  stderr: string;
  /** Each verb the plugin saw, with its arguments. */
  calls: Array<{ verb: string; args: CmdArgs }>;
  stdinReads: number;
}

type Env = Record<string, string | undefined>;

const FULL_RESULT: Result = {
  cniVersion: "1.1.0",
  interfaces: [
    { name: "cni0", mac: "aa:bb:cc:dd:ee:01" },
    { name: "eth0", mac: "aa:bb:cc:dd:ee:02", mtu: 1450, sandbox: "/run/netns/p1", socketPath: "/s.sock", pciID: "0000:00:01.0" },
  ],
  ips: [
    { interface: 1, address: "10.1.0.5/24", gateway: "10.1.0.1" },
    { interface: 1, address: "fd00::5/64", gateway: "fd00::1" },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "10.1.0.1", mtu: 1400, priority: 10 },
    { dst: "::/0", gw: "fd00::1" },
  ],
  dns: { nameservers: ["10.1.0.1"] },
};

/** A fake plugin recording every call into `calls`; each verb can be overridden. */
function fakePlugin(calls: Run["calls"], over: Partial<Plugin> = {}): Plugin {
  const rec = (verb: string) => (args: CmdArgs) => {
    calls.push({ verb, args });
  };
  const p: Plugin = {
    add: (args) => {
      calls.push({ verb: "ADD", args });
      return structuredClone(FULL_RESULT);
    },
    del: rec("DEL"),
    check: rec("CHECK"),
    gc: rec("GC"),
    status: rec("STATUS"),
  };
  for (const [k, v] of Object.entries(over)) {
    const verb = k.toUpperCase();
    if (typeof v === "function") {
      (p as unknown as Record<string, unknown>)[k] = (args: CmdArgs) => {
        calls.push({ verb, args });
        return (v as (a: CmdArgs) => unknown)(args);
      };
    } else {
      (p as unknown as Record<string, unknown>)[k] = v;
    }
  }
  return p;
}

async function run(env: Env, stdin: string | (() => string | Promise<string>) = "", over: Partial<Plugin> = {}): Promise<Run> {
  const r: Run = { code: -1, writes: [], stderr: "", calls: [], stdinReads: 0 };
  const plugin = fakePlugin(r.calls, over);
  const io: PluginIO = {
    env,
    readStdin: () => {
      r.stdinReads++;
      return typeof stdin === "function" ? stdin() : stdin;
    },
    writeStdout: (s) => {
      r.writes.push(s);
    },
    writeStderr: (s) => {
      r.stderr += s;
    },
  };
  r.code = await runPlugin(plugin, io);
  return r;
}

/** stdout must hold exactly one JSON document (one write, parseable, nothing around it). */
function oneDoc(r: Run): Record<string, unknown> {
  expect(r.writes).toHaveLength(1);
  const text = r.writes[0]!;
  const doc = JSON.parse(text) as Record<string, unknown>;
  expect(typeof doc).toBe("object");
  expect(text.trim().startsWith("{")).toBe(true);
  expect(text.trim().endsWith("}")).toBe(true);
  return doc;
}

/** The run failed with a spec error: exit 1, one error document; returns it. */
function specError(r: Run, code: number): { cniVersion: string; code: number; msg: string; details?: string } {
  expect(r.code).toBe(1);
  const doc = oneDoc(r) as { cniVersion: string; code: number; msg: string; details?: string };
  expect(doc.code).toBe(code);
  expect(typeof doc.msg).toBe("string");
  expect(typeof doc.cniVersion).toBe("string");
  const keys = Object.keys(doc).sort();
  expect(keys.every((k) => ["cniVersion", "code", "details", "msg"].includes(k))).toBe(true);
  return doc;
}

/** Success of a verb that prints nothing (DEL, CHECK, GC, STATUS). */
function silentOk(r: Run): void {
  expect(r.code).toBe(0);
  expect(r.writes).toEqual([]);
}

const conf = (version: string | undefined, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ ...(version === undefined ? {} : { cniVersion: version }), name: "net1", type: "fake", ...extra });

const fullEnv = (command: string, extra: Env = {}): Env => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: "ctr-1",
  CNI_NETNS: "/var/run/netns/p1",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
  ...extra,
});

describe("skel VERSION", () => {
  test("answers with nothing but CNI_COMMAND set, without reading stdin", async () => {
    const r = await run({ CNI_COMMAND: "VERSION" });
    expect(r.code).toBe(0);
    expect(oneDoc(r)).toEqual({ cniVersion: "1.1.0", supportedVersions: [...SUPPORTED_VERSIONS] });
    expect(r.calls).toEqual([]);
    expect(r.stdinReads).toBe(0);
  });

  test("answers as podman calls it: CNI_NETNS=dummy, empty container id, stdin with cniVersion 1.0.0", async () => {
    const r = await run(
      { CNI_COMMAND: "VERSION", CNI_NETNS: "dummy", CNI_CONTAINERID: "", CNI_IFNAME: "", CNI_PATH: "" },
      '{"cniVersion":"1.0.0"}',
    );
    expect(r.code).toBe(0);
    expect(oneDoc(r)).toEqual({ cniVersion: "1.1.0", supportedVersions: [...SUPPORTED_VERSIONS] });
  });

  test("answers even with an invalid container id or interface name in the environment", async () => {
    const r = await run({ CNI_COMMAND: "VERSION", CNI_CONTAINERID: "bad/id", CNI_IFNAME: "a/b" }, "not json");
    expect(r.code).toBe(0);
    expect(oneDoc(r).supportedVersions).toEqual([...SUPPORTED_VERSIONS]);
  });

  test("reports a plugin's restricted supportedVersions", async () => {
    const r = await run({ CNI_COMMAND: "VERSION" }, "", { supportedVersions: ["0.4.0", "1.0.0"] });
    expect(r.code).toBe(0);
    expect(oneDoc(r)).toEqual({ cniVersion: "1.1.0", supportedVersions: ["0.4.0", "1.0.0"] });
  });
});

describe("skel CNI_COMMAND", () => {
  test("missing CNI_COMMAND is code 4 naming the variable", async () => {
    const r = await run({}, conf("1.0.0"));
    const e = specError(r, ErrorCode.InvalidEnvironment);
    expect(e.msg).toContain("CNI_COMMAND");
    expect(r.calls).toEqual([]);
  });

  test("empty CNI_COMMAND is code 4", async () => {
    specError(await run({ CNI_COMMAND: "" }, conf("1.0.0")), 4);
  });

  test.each(["FOO", "add", "Version", "DELETE"])("unknown command %p is code 4 naming it", async (cmd) => {
    const r = await run(fullEnv(cmd), conf("1.0.0"));
    const e = specError(r, ErrorCode.InvalidEnvironment);
    expect(e.msg).toContain(cmd);
    expect(r.calls).toEqual([]);
  });
});

describe("skel required environment", () => {
  const all = ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"];
  const required: Record<string, string[]> = {
    ADD: all,
    CHECK: all,
    DEL: ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
    GC: [],
    STATUS: [],
  };

  for (const [verb, vars] of Object.entries(required)) {
    for (const v of vars) {
      test(`${verb} without ${v} is code 4 naming it`, async () => {
        const env = fullEnv(verb);
        delete env[v];
        const r = await run(env, conf("1.1.0"));
        const e = specError(r, ErrorCode.InvalidEnvironment);
        expect(e.msg).toContain(v);
        for (const other of all.filter((o) => o !== v)) expect(e.msg).not.toContain(other);
        expect(r.calls).toEqual([]);
      });
      test(`${verb} with an empty ${v} is code 4 naming it`, async () => {
        const r = await run(fullEnv(verb, { [v]: "" }), conf("1.1.0"));
        expect(specError(r, 4).msg).toContain(v);
      });
    }
    if (vars.length > 0) {
      test(`${verb} with nothing set names every missing variable`, async () => {
        const r = await run({ CNI_COMMAND: verb }, conf("1.1.0"));
        const e = specError(r, 4);
        for (const v of vars) expect(e.msg).toContain(v);
        for (const v of all.filter((x) => !vars.includes(x))) expect(e.msg).not.toContain(v);
      });
    }
  }

  test("DEL runs without CNI_NETNS (netns empty)", async () => {
    const env = fullEnv("DEL");
    delete env.CNI_NETNS;
    const r = await run(env, conf("1.0.0"));
    silentOk(r);
    expect(r.calls.map((c) => c.verb)).toEqual(["DEL"]);
    expect(r.calls[0]!.args.netns).toBe("");
  });

  test.each(["GC", "STATUS"])("%s runs with no CNI_* variable but the command", async (verb) => {
    const r = await run({ CNI_COMMAND: verb }, conf("1.1.0"));
    silentOk(r);
    expect(r.calls.map((c) => c.verb)).toEqual([verb]);
    expect(r.calls[0]!.args.containerId).toBe("");
    expect(r.calls[0]!.args.ifName).toBe("");
  });
});

describe("skel validation of names", () => {
  test.each(["bad/id", "-leading-dash", ".dot", "sp ace", "semi;colon"])("invalid container id %p is code 4", async (id) => {
    const r = await run(fullEnv("ADD", { CNI_CONTAINERID: id }), conf("1.0.0"));
    specError(r, ErrorCode.InvalidEnvironment);
    expect(r.calls).toEqual([]);
  });

  test.each(["a/b", "a:b", "a b", ".", "..", "thisnameistoolong"])("invalid interface name %p is code 4", async (ifname) => {
    const r = await run(fullEnv("ADD", { CNI_IFNAME: ifname }), conf("1.0.0"));
    specError(r, ErrorCode.InvalidEnvironment);
    expect(r.calls).toEqual([]);
  });

  test("invalid names are refused on DEL too", async () => {
    specError(await run(fullEnv("DEL", { CNI_CONTAINERID: "x/y" }), conf("1.0.0")), 4);
    specError(await run(fullEnv("DEL", { CNI_IFNAME: "x/y" }), conf("1.0.0")), 4);
  });

  test("valid ids with dots, dashes and underscores pass; 15-char ifname passes", async () => {
    const r = await run(fullEnv("ADD", { CNI_CONTAINERID: "A0_b.c-d", CNI_IFNAME: "abcdefghijklmno" }), conf("1.1.0"));
    expect(r.code).toBe(0);
    expect(r.calls[0]!.args.containerId).toBe("A0_b.c-d");
    expect(r.calls[0]!.args.ifName).toBe("abcdefghijklmno");
  });
});

describe("skel config decoding", () => {
  test.each(["", "{", "not json", '{"cniVersion":"1.0.0",}'])("bad JSON %p is code 6", async (stdin) => {
    const r = await run(fullEnv("ADD"), stdin);
    specError(r, ErrorCode.DecodingFailure);
    expect(r.calls).toEqual([]);
  });

  test.each(["[]", "3", "null", '"str"'])("non-object JSON %p is code 6", async (stdin) => {
    specError(await run(fullEnv("ADD"), stdin), ErrorCode.DecodingFailure);
  });

  test("a non-string cniVersion is code 2 naming the key", async () => {
    const r = await run(fullEnv("ADD"), JSON.stringify({ cniVersion: 1, name: "n", type: "fake" }));
    expect(specError(r, ErrorCode.UnsupportedField).msg).toBe('fake: "cniVersion" must be a string, not number 1');
  });

  test("a network name that could leave a directory is refused on every verb, before the plugin runs", async () => {
    for (const verb of ["ADD", "CHECK", "DEL", "GC", "STATUS"]) {
      for (const name of ["..", ".", "a/b", "../x", "", "a b"]) {
        const r = await run(fullEnv(verb), JSON.stringify({ cniVersion: "1.1.0", name, type: "fake" }));
        specError(r, ErrorCode.InvalidNetworkConfig);
        expect(r.calls).toEqual([]);
      }
    }
  });

  test("the common keys are matched case-insensitively, as Go does", async () => {
    const r = await run(fullEnv("ADD"), JSON.stringify({ CNIVersion: "0.4.0", NAME: "n", Type: "fake", DNS: { Nameservers: ["10.0.0.1"] } }));
    expect(r.calls[0]!.args.cniVersion).toBe("0.4.0");
    expect(r.calls[0]!.args.config.name).toBe("n");
    expect(r.calls[0]!.args.config.dns).toEqual({ nameservers: ["10.0.0.1"] });
  });

  test("a wrong type is refused on ADD but DEL goes on without the key", async () => {
    const bad = conf("1.1.0", { dns: ["10.0.0.1"] });
    expect(specError(await run(fullEnv("ADD"), bad), ErrorCode.UnsupportedField).msg).toContain('"dns" must be an object');
    const r = await run(fullEnv("DEL"), bad);
    expect(r.code).toBe(0);
    expect(r.calls[0]!.args.config.dns).toBeUndefined();
    expect(r.stderr).toContain("ignored");
  });

  test("an error reading stdin is code 5", async () => {
    const r = await run(fullEnv("ADD"), () => {
      throw new Error("stdin closed");
    });
    expect(specError(r, ErrorCode.IOFailure).msg).toContain("stdin closed");
  });

  test("an async stdin reader is awaited", async () => {
    const r = await run(fullEnv("ADD"), async () => conf("1.0.0"));
    expect(r.code).toBe(0);
    expect(oneDoc(r).cniVersion).toBe("1.0.0");
  });
});

describe("skel version negotiation", () => {
  test.each(["9.9.9", "1.2.0", "0.5.0", "garbage"])("config version %p is code 1", async (v) => {
    const r = await run(fullEnv("ADD"), conf(v));
    specError(r, ErrorCode.IncompatibleVersion);
    expect(r.calls).toEqual([]);
  });

  test("a plugin's own supportedVersions restrict the config versions", async () => {
    const only = { supportedVersions: ["1.0.0", "1.1.0"] };
    const r = await run(fullEnv("ADD"), conf("0.4.0"), only);
    const e = specError(r, ErrorCode.IncompatibleVersion);
    expect(`${e.msg} ${e.details ?? ""}`).toContain("0.4.0");
    expect(r.calls).toEqual([]);
    const ok = await run(fullEnv("ADD"), conf("1.0.0"), only);
    expect(ok.code).toBe(0);
  });

  test("a missing cniVersion means 0.1.0", async () => {
    const r = await run(fullEnv("ADD"), conf(undefined), { supportedVersions: ["1.0.0"] });
    specError(r, ErrorCode.IncompatibleVersion);
    const ok = await run(fullEnv("ADD"), conf(undefined));
    expect(ok.code).toBe(0);
    expect(ok.calls[0]!.args.cniVersion).toBe("0.1.0");
    expect(oneDoc(ok).cniVersion).toBe("0.1.0");
    expect(oneDoc(ok).ip4).toEqual({ ip: "10.1.0.5/24", gateway: "10.1.0.1", routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }] });
  });

  test.each(["0.1.0", "0.2.0", "0.3.0", "0.3.1"])("CHECK with config %p is refused with code 1", async (v) => {
    const r = await run(fullEnv("CHECK"), conf(v));
    specError(r, ErrorCode.IncompatibleVersion);
    expect(r.calls).toEqual([]);
  });

  test.each(["0.4.0", "1.0.0", "1.1.0"])("CHECK with config %p reaches the plugin", async (v) => {
    const r = await run(fullEnv("CHECK"), conf(v));
    silentOk(r);
    expect(r.calls.map((c) => c.verb)).toEqual(["CHECK"]);
  });

  for (const verb of ["GC", "STATUS"]) {
    test.each(["0.4.0", "1.0.0"])(`${verb} with config %p is refused with code 1`, async (v) => {
      const r = await run(fullEnv(verb), conf(v));
      specError(r, ErrorCode.IncompatibleVersion);
      expect(r.calls).toEqual([]);
    });
  }

  test("a refused verb's error carries the config's version", async () => {
    const e = specError(await run(fullEnv("CHECK"), conf("0.3.1")), 1);
    expect(e.cniVersion).toBe("0.3.1");
  });

  test("errors before the config is read are reported as 1.1.0", async () => {
    const e = specError(await run({ CNI_COMMAND: "ADD" }, conf("0.3.1")), 4);
    expect(e.cniVersion).toBe("1.1.0");
  });
});

describe("skel ADD result", () => {
  test("1.1.0 config: the plugin's result unchanged", async () => {
    const r = await run(fullEnv("ADD"), conf("1.1.0"));
    expect(r.code).toBe(0);
    expect(oneDoc(r)).toEqual(FULL_RESULT as unknown as Record<string, unknown>);
  });

  test("1.0.0 config: 1.1.0-only fields dropped", async () => {
    const r = await run(fullEnv("ADD"), conf("1.0.0"));
    expect(r.code).toBe(0);
    expect(oneDoc(r)).toEqual({
      cniVersion: "1.0.0",
      interfaces: [
        { name: "cni0", mac: "aa:bb:cc:dd:ee:01" },
        { name: "eth0", mac: "aa:bb:cc:dd:ee:02", sandbox: "/run/netns/p1" },
      ],
      ips: [
        { interface: 1, address: "10.1.0.5/24", gateway: "10.1.0.1" },
        { interface: 1, address: "fd00::5/64", gateway: "fd00::1" },
      ],
      routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }, { dst: "::/0", gw: "fd00::1" }],
      dns: { nameservers: ["10.1.0.1"] },
    });
  });

  test.each(["0.3.0", "0.3.1", "0.4.0"])("%s config: ips carry their version", async (v) => {
    const r = await run(fullEnv("ADD"), conf(v));
    expect(r.code).toBe(0);
    const doc = oneDoc(r);
    expect(doc.cniVersion).toBe(v);
    expect(doc.ips).toEqual([
      { version: "4", interface: 1, address: "10.1.0.5/24", gateway: "10.1.0.1" },
      { version: "6", interface: 1, address: "fd00::5/64", gateway: "fd00::1" },
    ]);
    expect(doc.routes).toEqual([{ dst: "0.0.0.0/0", gw: "10.1.0.1" }, { dst: "::/0", gw: "fd00::1" }]);
    expect((doc.interfaces as Array<Record<string, unknown>>)[1]).toEqual({ name: "eth0", mac: "aa:bb:cc:dd:ee:02", sandbox: "/run/netns/p1" });
  });

  test("0.2.0 config: ip4/ip6 form", async () => {
    const r = await run(fullEnv("ADD"), conf("0.2.0"));
    expect(r.code).toBe(0);
    expect(oneDoc(r)).toEqual({
      cniVersion: "0.2.0",
      ip4: { ip: "10.1.0.5/24", gateway: "10.1.0.1", routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }] },
      ip6: { ip: "fd00::5/64", gateway: "fd00::1", routes: [{ dst: "::/0", gw: "fd00::1" }] },
      dns: { nameservers: ["10.1.0.1"] },
    });
  });

  test("a result without cniVersion is taken as the current form", async () => {
    const r = await run(fullEnv("ADD"), conf("0.4.0"), {
      add: () => ({ ips: [{ address: "10.9.0.2/16" }] }) as unknown as Result,
    });
    expect(r.code).toBe(0);
    expect(oneDoc(r)).toEqual({ cniVersion: "0.4.0", ips: [{ version: "4", address: "10.9.0.2/16" }] });
  });

  test("an async add is awaited", async () => {
    const r = await run(fullEnv("ADD"), conf("1.0.0"), {
      add: async () => {
        await new Promise((res) => setTimeout(res, 1));
        return { cniVersion: "1.1.0", ips: [{ address: "10.9.0.2/16" }] };
      },
    });
    expect(oneDoc(r)).toEqual({ cniVersion: "1.0.0", ips: [{ address: "10.9.0.2/16" }] });
  });

  test("a result that cannot be expressed in 0.2.0 (no address) is code 1, one document", async () => {
    const r = await run(fullEnv("ADD"), conf("0.2.0"), { add: () => ({ cniVersion: "1.1.0", interfaces: [{ name: "eth0" }] }) });
    expect(specError(r, ErrorCode.IncompatibleVersion).cniVersion).toBe("0.2.0");
  });
});

describe("skel plugin arguments", () => {
  test("CmdArgs carries the environment, raw stdin and parsed config", async () => {
    const stdin = conf("1.0.0", { bridge: "cni0", ipam: { type: "host-local" } });
    const env = fullEnv("ADD", { CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=p", OTHER: "x" });
    const r = await run(env, stdin);
    expect(r.code).toBe(0);
    const a = r.calls[0]!.args;
    expect(a.command).toBe("ADD");
    expect(a.containerId).toBe("ctr-1");
    expect(a.netns).toBe("/var/run/netns/p1");
    expect(a.ifName).toBe("eth0");
    expect(a.args).toBe("IgnoreUnknown=1;K8S_POD_NAME=p");
    expect(a.path).toBe("/opt/cni/bin:/usr/lib/cni");
    expect(a.stdinData).toBe(stdin);
    expect(a.config).toEqual(JSON.parse(stdin));
    expect(a.cniVersion).toBe("1.0.0");
    expect(a.env.OTHER).toBe("x");
    expect(a.prevResult).toBeUndefined();
    expect(a.validAttachments).toBeUndefined();
  });

  test("log goes to stderr with a newline, never to stdout", async () => {
    const r = await run(fullEnv("DEL"), conf("1.0.0"), {
      del: (a: CmdArgs) => {
        a.log("first");
        a.log("second\n");
      },
    });
    silentOk(r);
    expect(r.stderr).toBe("first\nsecond\n");
  });

  test("prevResult of a 0.4.0 config is handed over in 1.1.0 form", async () => {
    const prev = {
      cniVersion: "0.4.0",
      interfaces: [{ name: "eth0", sandbox: "/run/netns/p1" }],
      ips: [{ version: "4", interface: 0, address: "10.1.0.5/24", gateway: "10.1.0.1" }],
      routes: [{ dst: "0.0.0.0/0" }],
    };
    const r = await run(fullEnv("ADD"), conf("0.4.0", { prevResult: prev }));
    expect(r.code).toBe(0);
    expect(r.calls[0]!.args.prevResult).toEqual({
      cniVersion: "1.1.0",
      interfaces: [{ name: "eth0", sandbox: "/run/netns/p1" }],
      ips: [{ interface: 0, address: "10.1.0.5/24", gateway: "10.1.0.1" }],
      routes: [{ dst: "0.0.0.0/0" }],
    });
    // the raw config is left untouched
    expect(r.calls[0]!.args.config.prevResult).toEqual(prev);
  });

  test("prevResult of a 1.1.0 config keeps its 1.1.0-only fields", async () => {
    const r = await run(fullEnv("ADD"), conf("1.1.0", { prevResult: FULL_RESULT }));
    expect(r.code).toBe(0);
    expect(r.calls[0]!.args.prevResult).toEqual(FULL_RESULT);
  });

  test("prevResult of a 0.2.0 config (ip4 form) becomes ips", async () => {
    const prev = { cniVersion: "0.2.0", ip4: { ip: "10.1.0.5/24", gateway: "10.1.0.1" } };
    const r = await run(fullEnv("ADD"), conf("0.2.0", { prevResult: prev }));
    expect(r.code).toBe(0);
    expect(r.calls[0]!.args.prevResult).toEqual({
      cniVersion: "1.1.0",
      ips: [{ address: "10.1.0.5/24", gateway: "10.1.0.1" }],
    });
  });

  test("prevResult without a cniVersion takes the config's", async () => {
    const prev = { ips: [{ version: "4", address: "10.1.0.5/24" }] };
    const r = await run(fullEnv("CHECK"), conf("0.4.0", { prevResult: prev }));
    silentOk(r);
    expect(r.calls[0]!.args.prevResult).toEqual({ cniVersion: "1.1.0", ips: [{ address: "10.1.0.5/24" }] });
  });

  test("prevResult is given to DEL and CHECK too", async () => {
    const prev = { cniVersion: "1.0.0", ips: [{ address: "10.1.0.5/24" }] };
    for (const verb of ["DEL", "CHECK"]) {
      const r = await run(fullEnv(verb), conf("1.0.0", { prevResult: prev }));
      silentOk(r);
      expect(r.calls[0]!.args.prevResult).toEqual({ cniVersion: "1.1.0", ips: [{ address: "10.1.0.5/24" }] });
    }
  });

  test("an invalid prevResult is code 6", async () => {
    const r = await run(fullEnv("ADD"), conf("1.0.0", { prevResult: { cniVersion: "1.0.0", ips: [{ address: "not-an-ip" }] } }));
    specError(r, ErrorCode.DecodingFailure);
    expect(r.calls).toEqual([]);
  });

  test("a null prevResult is ignored", async () => {
    const r = await run(fullEnv("ADD"), conf("1.0.0", { prevResult: null }));
    expect(r.code).toBe(0);
    expect(r.calls[0]!.args.prevResult).toBeUndefined();
  });

  test("GC gets validAttachments from cni.dev/valid-attachments", async () => {
    const valid = [
      { containerID: "c1", ifname: "eth0" },
      { containerID: "c2", ifname: "net1" },
    ];
    const r = await run({ CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" }, conf("1.1.0", { "cni.dev/valid-attachments": valid }));
    silentOk(r);
    expect(r.calls[0]!.args.validAttachments).toEqual(valid);
  });

  test("GC falls back to cni.dev/attachments", async () => {
    const valid = [{ containerID: "c1", ifname: "eth0" }];
    const r = await run({ CNI_COMMAND: "GC" }, conf("1.1.0", { "cni.dev/attachments": valid }));
    silentOk(r);
    expect(r.calls[0]!.args.validAttachments).toEqual(valid);
  });

  test("GC with an empty list gets an empty list; without the key, undefined", async () => {
    const r = await run({ CNI_COMMAND: "GC" }, conf("1.1.0", { "cni.dev/valid-attachments": [] }));
    expect(r.calls[0]!.args.validAttachments).toEqual([]);
    const r2 = await run({ CNI_COMMAND: "GC" }, conf("1.1.0"));
    expect(r2.calls[0]!.args.validAttachments).toBeUndefined();
  });

  test("GC with a non-list cni.dev/valid-attachments is code 2", async () => {
    const r = await run({ CNI_COMMAND: "GC" }, conf("1.1.0", { "cni.dev/valid-attachments": "c1" }));
    specError(r, ErrorCode.UnsupportedField);
    expect(r.calls).toEqual([]);
  });

  test("validAttachments is only set for GC", async () => {
    const r = await run(fullEnv("DEL"), conf("1.1.0", { "cni.dev/valid-attachments": [] }));
    expect(r.calls[0]!.args.validAttachments).toBeUndefined();
  });

  test("a plugin without check/gc/status succeeds silently for them", async () => {
    for (const verb of ["CHECK", "GC", "STATUS"]) {
      const r = await run(fullEnv(verb), conf("1.1.0"), { check: undefined, gc: undefined, status: undefined });
      silentOk(r);
      expect(r.calls).toEqual([]);
    }
  });
});

describe("skel errors from the plugin", () => {
  test("a plain Error becomes code 999 with its message, in the config's version", async () => {
    const r = await run(fullEnv("ADD"), conf("0.4.0"), {
      add: () => {
        throw new Error("bridge cni0 exploded");
      },
    });
    const e = specError(r, ErrorCode.Internal);
    expect(e.msg).toBe("bridge cni0 exploded");
    expect(e.cniVersion).toBe("0.4.0");
    expect(e.details).toBeUndefined();
    expect(r.writes[0]).not.toContain("at ");
  });

  test("a thrown non-Error value becomes code 999", async () => {
    const r = await run(fullEnv("DEL"), conf("1.0.0"), {
      del: () => {
        throw "just a string";
      },
    });
    expect(specError(r, 999).msg).toBe("just a string");
  });

  test("a rejected promise becomes a spec error", async () => {
    const r = await run(fullEnv("DEL"), conf("1.0.0"), {
      del: async () => {
        throw new Error("async failure");
      },
    });
    expect(specError(r, 999).msg).toBe("async failure");
  });

  test.each([
    ["ADD", "add"],
    ["DEL", "del"],
    ["CHECK", "check"],
    ["GC", "gc"],
    ["STATUS", "status"],
  ])("a CniError thrown by %s keeps its code, message and details", async (verb, method) => {
    const r = await run(fullEnv(verb), conf("1.1.0"), {
      [method]: () => {
        throw new CniError(ErrorCode.PluginNotAvailable, "not ready", "waiting for etcd");
      },
    });
    const e = specError(r, ErrorCode.PluginNotAvailable);
    expect(e).toEqual({ cniVersion: "1.1.0", code: 50, msg: "not ready", details: "waiting for etcd" });
  });

  test("a CniError's own cniVersion is replaced by the config's", async () => {
    const r = await run(fullEnv("ADD"), conf("1.0.0"), {
      add: () => {
        throw new CniError(ErrorCode.TryAgainLater, "busy", "", "0.1.0");
      },
    });
    expect(specError(r, 11).cniVersion).toBe("1.0.0");
  });

  test("the stack goes to stderr only with CNIKIT_DEBUG", async () => {
    const boom = () => {
      throw new Error("kaboom");
    };
    const quiet = await run(fullEnv("DEL"), conf("1.0.0"), { del: boom });
    expect(quiet.stderr).toBe("");
    const loud = await run(fullEnv("DEL", { CNIKIT_DEBUG: "1" }), conf("1.0.0"), { del: boom });
    expect(loud.stderr).toContain("kaboom");
    expect(specError(loud, 999).msg).toBe("kaboom");
  });
});

describe("skel stdout discipline", () => {
  // Every kind of run: stdout holds exactly one JSON document (ADD, VERSION, errors) or nothing
  // (successful DEL, CHECK, GC, STATUS).
  const cases: Array<[string, Env, string, Partial<Plugin>, "doc" | "silent"]> = [
    ["VERSION", { CNI_COMMAND: "VERSION" }, "", {}, "doc"],
    ["ADD ok", fullEnv("ADD"), conf("1.0.0"), {}, "doc"],
    ["ADD 0.2.0", fullEnv("ADD"), conf("0.2.0"), {}, "doc"],
    ["DEL ok", fullEnv("DEL"), conf("1.0.0"), {}, "silent"],
    ["CHECK ok", fullEnv("CHECK"), conf("1.0.0"), {}, "silent"],
    ["GC ok", fullEnv("GC"), conf("1.1.0"), {}, "silent"],
    ["STATUS ok", fullEnv("STATUS"), conf("1.1.0"), {}, "silent"],
    ["missing command", {}, conf("1.0.0"), {}, "doc"],
    ["missing env", { CNI_COMMAND: "ADD" }, conf("1.0.0"), {}, "doc"],
    ["bad json", fullEnv("ADD"), "{{", {}, "doc"],
    ["bad version", fullEnv("ADD"), conf("7.0.0"), {}, "doc"],
    ["plugin throws", fullEnv("ADD"), conf("1.0.0"), { add: () => { throw new Error("x"); } }, "doc"],
    ["del throws", fullEnv("DEL"), conf("1.0.0"), { del: () => { throw new CniError(7, "y"); } }, "doc"],
  ];
  for (const [name, env, stdin, over, want] of cases) {
    test(name, async () => {
      const r = await run(env, stdin, over);
      if (want === "silent") {
        silentOk(r);
      } else {
        oneDoc(r);
        expect([0, 1]).toContain(r.code);
        const isErr = "code" in oneDoc(r);
        expect(r.code).toBe(isErr ? 1 : 0);
      }
    });
  }
});
