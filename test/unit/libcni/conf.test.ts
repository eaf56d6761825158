import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  confFiles,
  confFromBytes,
  confListFromBytes,
  confListFromConf,
  confListFromFile,
  confListFromObject,
  defaultConfList,
  loadConfList,
  loadConfLists,
  pickVersion,
} from "../../../src/libcni/conf.ts";
import { CniError, ErrorCode } from "../../../src/spec/error.ts";

const root = mkdtempSync(join(tmpdir(), "cnikit-conf-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A fresh config directory holding `files` (name -> object or raw text). */
function confDir(files: Record<string, unknown>): string {
  const dir = join(root, `d${++n}`);
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const p = join(dir, name);
    mkdirSync(join(p, ".."), { recursive: true });
    writeFileSync(p, typeof content === "string" ? content : JSON.stringify(content, null, 2));
  }
  return dir;
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

const list = (name: string, extra: Record<string, unknown> = {}) => ({
  cniVersion: "1.0.0",
  name,
  plugins: [{ type: "bridge", bridge: "cni0" }, { type: "portmap", capabilities: { portMappings: true } }],
  ...extra,
});
const single = (name: string, extra: Record<string, unknown> = {}) => ({ cniVersion: "0.4.0", name, type: "bridge", ...extra });

describe("confFiles and ordering", () => {
  test("only .conf, .conflist and .json files, lexicographically sorted, directories skipped", () => {
    const dir = confDir({
      "99-last.conflist": list("last"),
      "10-mid.conf": single("mid"),
      "05-first.json": list("first"),
      "20-ignored.txt": "x",
      "30-ignored.conf.bak": "x",
      "50-json.json": list("json"),
    });
    mkdirSync(join(dir, "40-dir.conf"));
    expect(confFiles(dir).map((p) => p.slice(dir.length + 1))).toEqual([
      "05-first.json",
      "10-mid.conf",
      "50-json.json",
      "99-last.conflist",
    ]);
  });

  test("order is lexicographic, not numeric", () => {
    const dir = confDir({ "9-b.conflist": list("b"), "10-a.conflist": list("a") });
    expect(loadConfLists(dir).lists.map((l) => l.name)).toEqual(["a", "b"]);
    expect(defaultConfList(dir).name).toBe("a");
  });

  test("a missing directory has no files", () => {
    expect(confFiles(join(root, "missing-dir"))).toEqual([]);
  });

  test("the default network is the first valid file", () => {
    const dir = confDir({ "00-broken.conflist": "{nope", "10-b.conf": single("b"), "20-a.conflist": list("a") });
    const d = defaultConfList(dir);
    expect(d.name).toBe("b");
    expect(d.source).toBe(join(dir, "10-b.conf"));
  });

  test("no valid network: code 7 naming the directory and the broken files", () => {
    const dir = confDir({ "00-broken.conflist": "{nope" });
    const e = thrown(() => defaultConfList(dir));
    expect(e.code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(e.message).toContain(dir);
    expect(e.message).toContain("00-broken.conflist");
    expect(thrown(() => defaultConfList(confDir({}))).code).toBe(ErrorCode.InvalidNetworkConfig);
  });
});

describe("file kinds", () => {
  test(".conflist is a list; bytes are the file text", () => {
    const text = JSON.stringify(list("net1", { disableCheck: true }), null, 2);
    const dir = confDir({ "10-net1.conflist": text });
    const l = confListFromFile(join(dir, "10-net1.conflist"));
    expect(l.name).toBe("net1");
    expect(l.cniVersion).toBe("1.0.0");
    expect(l.plugins.map((p) => p.type)).toEqual(["bridge", "portmap"]);
    expect(l.plugins[1]!.capabilities).toEqual({ portMappings: true });
    expect(l.disableCheck).toBe(true);
    expect(l.disableGC).toBe(false);
    expect(l.loadOnlyInlinedPlugins).toBe(false);
    expect(l.bytes).toBe(text);
    expect(l.source).toBe(join(dir, "10-net1.conflist"));
  });

  test(".conf is wrapped as a list of one", () => {
    const dir = confDir({ "10-one.conf": single("one", { bridge: "br0", ipam: { type: "host-local" } }) });
    const l = confListFromFile(join(dir, "10-one.conf"));
    expect(l.name).toBe("one");
    expect(l.cniVersion).toBe("0.4.0");
    expect(l.plugins).toHaveLength(1);
    expect(l.plugins[0]).toEqual(single("one", { bridge: "br0", ipam: { type: "host-local" } }));
    expect(l.disableCheck).toBe(false);
    expect(l.disableGC).toBe(false);
    expect(JSON.parse(l.bytes)).toEqual({ cniVersion: "0.4.0", name: "one", plugins: [l.plugins[0]] });
  });

  test(".json holding a list is a list; .json holding one plugin is wrapped", () => {
    const dir = confDir({ "a.json": list("jl"), "b.json": single("js") });
    const { lists, errors } = loadConfLists(dir);
    expect(errors).toEqual([]);
    expect(lists.map((l) => [l.name, l.plugins.length])).toEqual([
      ["jl", 2],
      ["js", 1],
    ]);
  });

  test("a .conf without cniVersion runs as 0.1.0", () => {
    const l = confListFromConf(confFromBytes(JSON.stringify({ name: "old", type: "bridge" })));
    expect(l.cniVersion).toBe("0.1.0");
  });

  test("confListFromObject handles lists and single configs", () => {
    expect(confListFromObject(list("o1")).plugins).toHaveLength(2);
    const one = confListFromObject(single("o2"));
    expect([one.name, one.plugins.length, one.cniVersion]).toEqual(["o2", 1, "0.4.0"]);
  });
});

describe("cniVersions", () => {
  test("picks the highest supported version, ignoring unknown ones", () => {
    const l = confListFromBytes(JSON.stringify(list("v", { cniVersion: "0.4.0", cniVersions: ["0.3.1", "1.1.0", "1.0.0", "2.0.0"] })));
    expect(l.cniVersion).toBe("1.1.0");
  });

  test("compares versions numerically, not as strings", () => {
    expect(pickVersion({ cniVersions: ["0.10.0", "0.4.0", "0.3.1"] })).toBe("0.4.0");
    expect(pickVersion({ cniVersions: ["0.3.0", "0.3.1"] })).toBe("0.3.1");
  });

  test("a .conf's cniVersions works too and is dropped from the plugin object", () => {
    const l = confListFromConf(confFromBytes(JSON.stringify(single("s", { cniVersions: ["0.4.0", "1.0.0"] }))));
    expect(l.cniVersion).toBe("1.0.0");
    expect(l.plugins[0]!.cniVersions).toBeUndefined();
  });

  test("only unsupported cniVersions and no cniVersion: code 1", () => {
    const e = thrown(() => confListFromBytes(JSON.stringify(list("v", { cniVersion: undefined, cniVersions: ["2.0.0", "9.9.9"] })), { source: "/x/v.conflist" }));
    expect(e.code).toBe(ErrorCode.IncompatibleVersion);
    expect(e.message).toContain("/x/v.conflist");
  });

  test("the list's own cniVersion is a candidate too, as in libcni", () => {
    expect(confListFromBytes(JSON.stringify(list("v", { cniVersion: "1.0.0", cniVersions: ["2.0.0"] }))).cniVersion).toBe("1.0.0");
    expect(confListFromBytes(JSON.stringify(list("v", { cniVersion: "0.4.0", cniVersions: ["1.1.0"] }))).cniVersion).toBe("1.1.0");
  });

  test("an unsupported cniVersion: code 1", () => {
    expect(thrown(() => confListFromBytes(JSON.stringify(list("v", { cniVersion: "3.0.0" })))).code).toBe(1);
  });

  test("cniVersions not a list of strings: code 7", () => {
    expect(thrown(() => confListFromBytes(JSON.stringify(list("v", { cniVersions: "1.0.0" })))).code).toBe(7);
    expect(thrown(() => confListFromBytes(JSON.stringify(list("v", { cniVersions: [1] })))).code).toBe(7);
  });

  test("an empty cniVersions falls back to cniVersion", () => {
    expect(confListFromBytes(JSON.stringify(list("v", { cniVersion: "0.3.1", cniVersions: [] }))).cniVersion).toBe("0.3.1");
  });
});

describe("invalid files", () => {
  test("bad JSON: code 6 naming the file", () => {
    const dir = confDir({ "10-bad.conflist": '{"cniVersion": "1.0.0", "name": ' });
    const file = join(dir, "10-bad.conflist");
    const e = thrown(() => confListFromFile(file));
    expect(e.code).toBe(ErrorCode.DecodingFailure);
    expect(e.message).toContain(file);
    const { lists, errors } = loadConfLists(dir);
    expect(lists).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe(6);
    expect(errors[0]!.message).toContain("10-bad.conflist");
  });

  test("a JSON array is code 6", () => {
    expect(thrown(() => confListFromBytes("[]")).code).toBe(ErrorCode.DecodingFailure);
  });

  test("a plugin without type: code 7 naming the file", () => {
    const dir = confDir({
      "10-list.conflist": { cniVersion: "1.0.0", name: "l", plugins: [{ type: "bridge" }, { bridge: "x" }] },
      "20-single.conf": { cniVersion: "1.0.0", name: "s" },
      "30-empty.conflist": { cniVersion: "1.0.0", name: "e", plugins: [{ type: "" }] },
    });
    for (const f of ["10-list.conflist", "20-single.conf", "30-empty.conflist"]) {
      const e = thrown(() => confListFromFile(join(dir, f)));
      expect(e.code).toBe(ErrorCode.InvalidNetworkConfig);
      expect(e.message).toContain(f);
      expect(e.message).toContain("type");
    }
  });

  test("a missing or invalid name: code 7", () => {
    const dir = confDir({
      "10-noname.conflist": { cniVersion: "1.0.0", plugins: [{ type: "bridge" }] },
      "20-noname.conf": { cniVersion: "1.0.0", type: "bridge" },
      "30-badname.conflist": { cniVersion: "1.0.0", name: "bad/name", plugins: [{ type: "bridge" }] },
      "40-badname.conf": { cniVersion: "1.0.0", name: "-bad", type: "bridge" },
    });
    for (const f of ["10-noname.conflist", "20-noname.conf", "30-badname.conflist", "40-badname.conf"]) {
      const e = thrown(() => confListFromFile(join(dir, f)));
      expect(e.code).toBe(ErrorCode.InvalidNetworkConfig);
      expect(e.message).toContain(f);
    }
  });

  test("no plugins: code 7", () => {
    const dir = confDir({
      "10-empty.conflist": { cniVersion: "1.0.0", name: "empty", plugins: [] },
      "20-nokey.conflist": { cniVersion: "1.0.0", name: "nokey" },
      "30-notlist.conflist": { cniVersion: "1.0.0", name: "notlist", plugins: { type: "bridge" } },
    });
    for (const f of ["10-empty.conflist", "20-nokey.conflist", "30-notlist.conflist"]) {
      const e = thrown(() => confListFromFile(join(dir, f)));
      expect(e.code).toBe(ErrorCode.InvalidNetworkConfig);
      expect(e.message).toContain("plugins");
    }
  });
});

describe("duplicate names", () => {
  test("the first file wins; later ones are reported", () => {
    const dir = confDir({
      "10-a.conflist": list("dup", { cniVersion: "1.0.0" }),
      "20-b.conf": single("dup"),
      "30-c.conflist": list("other"),
    });
    const { lists, errors } = loadConfLists(dir);
    expect(lists.map((l) => [l.name, l.source])).toEqual([
      ["dup", join(dir, "10-a.conflist")],
      ["other", join(dir, "30-c.conflist")],
    ]);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toContain("20-b.conf");
    expect(errors[0]!.message).toContain("10-a.conflist");
    expect(errors[0]!.message).toContain("dup");
    expect(loadConfList(dir, "dup").cniVersion).toBe("1.0.0");
  });
});

describe("plugins from <dir>/<network>/*.conf", () => {
  test("appended after the inline plugins, in file order, only .conf files", () => {
    const dir = confDir({
      "10-net.conflist": list("net"),
      "net/20-second.conf": { type: "tuning" },
      "net/10-first.conf": { type: "bandwidth", capabilities: { bandwidth: true } },
      "net/30-skip.json": { type: "firewall" },
    });
    const l = loadConfList(dir, "net");
    expect(l.plugins.map((p) => p.type)).toEqual(["bridge", "portmap", "bandwidth", "tuning"]);
  });

  test("a list with no inline plugins is fine when the directory has some", () => {
    const dir = confDir({
      "10-net.conflist": { cniVersion: "1.0.0", name: "net" },
      "net/10-a.conf": { type: "bridge" },
    });
    expect(loadConfList(dir, "net").plugins.map((p) => p.type)).toEqual(["bridge"]);
  });

  test("not loaded with loadOnlyInlinedPlugins (bool or string)", () => {
    for (const v of [true, "true", "TRUE"]) {
      const dir = confDir({
        "10-net.conflist": list("net", { loadOnlyInlinedPlugins: v }),
        "net/10-a.conf": { type: "tuning" },
      });
      const l = loadConfList(dir, "net");
      expect(l.loadOnlyInlinedPlugins).toBe(true);
      expect(l.plugins.map((p) => p.type)).toEqual(["bridge", "portmap"]);
    }
  });

  test("an invalid plugin file there makes the network invalid", () => {
    const dir = confDir({ "10-net.conflist": list("net"), "net/10-a.conf": { bridge: "x" } });
    const e = thrown(() => loadConfList(dir, "net"));
    expect(e.message).toContain("10-a.conf");
  });

  test("a single .conf never loads extra plugins", () => {
    const dir = confDir({ "10-one.conf": single("one"), "one/10-a.conf": { type: "tuning" } });
    expect(loadConfList(dir, "one").plugins.map((p) => p.type)).toEqual(["bridge"]);
  });
});

describe("disableCheck / disableGC", () => {
  const cases: Array<[unknown, boolean]> = [
    [true, true],
    [false, false],
    ["true", true],
    ["false", false],
    ["True", true],
    ["FALSE", false],
    [undefined, false],
  ];
  for (const [v, want] of cases) {
    test(`${JSON.stringify(v)} -> ${want}`, () => {
      const l = confListFromBytes(JSON.stringify(list("f", { disableCheck: v, disableGC: v })));
      expect(l.disableCheck).toBe(want);
      expect(l.disableGC).toBe(want);
    });
  }

  test.each([["yes"], [1], [{}], ["1"]])("invalid value %p is code 7 naming the key", (v) => {
    const e1 = thrown(() => confListFromBytes(JSON.stringify(list("f", { disableCheck: v }))));
    expect(e1.code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(e1.message).toContain("disableCheck");
    const e2 = thrown(() => confListFromBytes(JSON.stringify(list("f", { disableGC: v }))));
    expect(e2.message).toContain("disableGC");
  });
});

describe("loadConfList", () => {
  test("finds a network by name in any file", () => {
    const dir = confDir({ "10-a.conflist": list("a"), "20-b.conf": single("b") });
    expect(loadConfList(dir, "b").source).toBe(join(dir, "20-b.conf"));
    expect(loadConfList(dir, "a").source).toBe(join(dir, "10-a.conflist"));
  });

  test("a missing network: code 7 naming the network, the dir and the skipped invalid files", () => {
    const dir = confDir({
      "10-a.conflist": list("a"),
      "20-broken.conflist": "{",
      "30-notype.conf": { cniVersion: "1.0.0", name: "wanted" },
      "40-dup.conflist": list("a"),
    });
    const e = thrown(() => loadConfList(dir, "wanted"));
    expect(e.code).toBe(ErrorCode.InvalidNetworkConfig);
    expect(e.message).toContain('"wanted"');
    expect(e.message).toContain(dir);
    expect(e.message).toContain("20-broken.conflist");
    expect(e.message).toContain("30-notype.conf");
    // duplicates are not "invalid files"
    expect(e.message).not.toContain("40-dup.conflist");
  });

  test("a missing network in a clean directory has no 'skipped' part", () => {
    const dir = confDir({ "10-a.conflist": list("a") });
    const e = thrown(() => loadConfList(dir, "zzz"));
    expect(e.message).not.toContain("skipped");
  });
});
