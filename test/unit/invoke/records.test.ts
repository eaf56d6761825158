/**
 * Attachment records (src/invoke/records.ts): written before a plugin's ADD runs (with netns
 * identity and boot id), completed with the result, removed by a successful DEL, none without a
 * state directory; a plugin's GC releases its own stale records with the recorded config (and the
 * IPAM's recorded addresses as prevResult); cnikit's runtime sends GC below 1.1.0 to cnikit's own
 * plugins only, and the SDK accepts it only when so marked.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { registerBuiltins } from "../../../src/invoke/builtin.ts";
import {
  listRecords,
  netnsAlive,
  netnsIdentity,
  readBootId,
  recordFile,
  releaseEnv,
  releaseStdin,
  withRecords,
  writeRecord,
  type AttachmentRecord,
} from "../../../src/invoke/records.ts";
import { CNIConfig } from "../../../src/libcni/cni.ts";
import { confListFromObject } from "../../../src/libcni/conf.ts";
import { runPlugin } from "../../../src/skel/skel.ts";
import type { CmdArgs, Plugin } from "../../../src/skel/plugin.ts";
import { tempDir } from "../../support/netns.ts";

const tmp = tempDir("ckr-records");
afterAll(() => tmp.remove());

const SELF_NS = "/proc/self/ns/net";

function fakePlugin(calls: { verb: string; args: CmdArgs; recordSeen?: boolean }[], stateDir: string): Plugin {
  return {
    add(args) {
      // the record is on disk before the plugin changes anything
      const seen = existsSync(recordFile(stateDir, { network: "n1", containerId: args.containerId, ifName: args.ifName }, "fake"));
      calls.push({ verb: "ADD", args, recordSeen: seen });
      return { cniVersion: "1.1.0", ips: [{ address: "10.7.0.5/24" }] };
    },
    del(args) {
      calls.push({ verb: "DEL", args });
      if (args.containerId === "faildel") throw new Error("cannot");
    },
    gc(args) {
      calls.push({ verb: "GC", args });
    },
  };
}

async function call(plugin: Plugin, env: Record<string, string>, stdin: unknown) {
  let out = "";
  const code = await runPlugin(plugin, { env, readStdin: () => JSON.stringify(stdin), writeStdout: (s) => (out += s), writeStderr: () => {} });
  return { code, out };
}

const conf = { cniVersion: "1.0.0", name: "n1", type: "fake", secret: "x" };
const envOf = (verb: string, cid: string, extra: Record<string, string> = {}) => ({ CNI_COMMAND: verb, CNI_CONTAINERID: cid, CNI_IFNAME: "eth0", CNI_NETNS: SELF_NS, CNI_PATH: "/opt/cni/bin", ...extra });

describe("records", () => {
  test("ADD records first (netns identity, boot id, writer, config, args), then the result; DEL removes it", async () => {
    const state = join(tmp.path, "s1");
    const boot = join(tmp.path, "boot1");
    writeFileSync(boot, "boot-one\n");
    const calls: { verb: string; args: CmdArgs; recordSeen?: boolean }[] = [];
    const p = withRecords("fake", fakePlugin(calls, state));
    const r = await call(p, envOf("ADD", "c1", { CNIKIT_STATE_DIR: state, CNIKIT_BOOT_ID_FILE: boot, CNI_ARGS: "K=V" }), conf);
    expect(r.code).toBe(0);
    expect(calls[0]!.recordSeen).toBe(true);
    const [rec] = listRecords(state, "n1");
    expect(rec).toMatchObject({ network: "n1", containerId: "c1", ifName: "eth0", type: "fake", netns: SELF_NS, bootId: "boot-one", cniArgs: "K=V", cniPath: "/opt/cni/bin" });
    expect(rec!.netnsId).toBe(netnsIdentity(SELF_NS)!);
    // the writer: this process, by pid and start time (field 22 of /proc/self/stat)
    expect(rec!.writerPid).toBe(process.pid);
    expect(rec!.writerStart).toBe(Number(readFileSync("/proc/self/stat", "utf8").replace(/^.*\) /s, "").split(" ")[19]));
    expect(JSON.parse(rec!.stdin)).toEqual(conf);
    expect(rec!.result?.ips?.[0]?.address).toBe("10.7.0.5/24");
    const dirMode = (await Bun.file(join(state, "attachments", "n1")).stat()).mode & 0o777;
    expect(dirMode).toBe(0o700);
    const file = recordFile(state, rec!, "fake");
    expect((await Bun.file(file).stat()).mode & 0o777).toBe(0o600);
    // a failing DEL keeps it, a good one removes it
    expect((await call(p, envOf("DEL", "c1", { CNIKIT_STATE_DIR: state }), conf)).code).toBe(0);
    expect(existsSync(file)).toBe(false);
  });

  test("without CNIKIT_STATE_DIR nothing is recorded", async () => {
    const calls: { verb: string; args: CmdArgs }[] = [];
    const p = withRecords("fake", fakePlugin(calls, "/nonexistent"));
    expect((await call(p, envOf("ADD", "c1"), conf)).code).toBe(0);
    expect((await call(p, envOf("DEL", "c1"), conf)).code).toBe(0);
    expect(calls.map((c) => c.verb)).toEqual(["ADD", "DEL"]);
  });

  test("GC releases the plugin's own records not in the valid list, with the recorded config and the IPAM's addresses", async () => {
    const state = join(tmp.path, "s2");
    const calls: { verb: string; args: CmdArgs }[] = [];
    const p = withRecords("fake", fakePlugin(calls, state));
    for (const cid of ["keep", "stale", "faildel"]) expect((await call(p, envOf("ADD", cid, { CNIKIT_STATE_DIR: state }), conf)).code).toBe(0);
    // the stale attachment's IPAM recorded an address; fake's own record lost its result (killed mid-ADD)
    const stale = listRecords(state, "n1").find((r) => r.containerId === "stale")!;
    writeRecord(state, { ...stale, result: undefined });
    writeRecord(state, { ...stale, type: "host-local", createdMs: stale.createdMs + 1, result: { cniVersion: "1.1.0", ips: [{ address: "10.7.0.9/24" }] } });
    calls.length = 0;
    const gcConf = { ...conf, cniVersion: "1.1.0", "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }] };
    const r = await call(p, { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin", CNIKIT_STATE_DIR: state }, gcConf);
    expect(r.code).toBe(1); // faildel's DEL failed: reported
    expect(r.out).toContain("faildel");
    expect(calls.map((c) => `${c.verb}:${c.args.containerId}`).sort()).toEqual(["DEL:faildel", "DEL:stale", "GC:"]);
    const del = calls.find((c) => c.args.containerId === "stale")!.args;
    expect(del.config.secret).toBe("x"); // the ADD's config
    expect(del.prevResult?.ips?.[0]?.address).toBe("10.7.0.9/24");
    expect(del.netns).toBe(SELF_NS); // still the recorded namespace
    const left = listRecords(state, "n1").map((x) => `${x.type}:${x.containerId}`).sort();
    expect(left).toEqual(["fake:faildel", "fake:keep", "host-local:stale"]); // host-local's is host-local's GC's
  });

  test("a release goes without the netns once it is not the recorded one", () => {
    const rec: AttachmentRecord = { network: "n", containerId: "c", ifName: "eth0", type: "t", netns: SELF_NS, netnsId: "0:1", bootId: "b", createdMs: 0, stdin: "{}" };
    expect(netnsAlive(rec)).toBe(false);
    expect(releaseEnv(rec, { CNI_NETNS: "/x", CNIKIT_STATE_DIR: "/s" })).toEqual({ CNI_COMMAND: "DEL", CNI_CONTAINERID: "c", CNI_IFNAME: "eth0", CNIKIT_STATE_DIR: "/s" });
    expect(netnsAlive({ ...rec, netns: "/nonexistent/ns" })).toBe(false);
    expect(netnsAlive({ ...rec, netnsId: netnsIdentity(SELF_NS)! })).toBe(true);
    // a config with its own prevResult keeps it
    const withPrev = JSON.stringify({ name: "n", prevResult: { cniVersion: "1.0.0", ips: [] } });
    expect(releaseStdin({ ...rec, stdin: withPrev }, [])).toBe(withPrev);
    expect(readBootId()).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("the SDK takes GC below 1.1.0 only when cnikit's runtime marks it", async () => {
    const calls: { verb: string; args: CmdArgs }[] = [];
    const p = fakePlugin(calls, "/nonexistent");
    const c = { ...conf, "cni.dev/valid-attachments": [] };
    const plain = await call(p, { CNI_COMMAND: "GC", CNI_PATH: "/x" }, c);
    expect(plain.code).toBe(1);
    expect(plain.out).toContain("does not allow GC");
    expect((await call(p, { CNI_COMMAND: "GC", CNI_PATH: "/x", CNIKIT_GC_ANY_VERSION: "1" }, c)).code).toBe(0);
    expect(calls.map((x) => x.verb)).toEqual(["GC"]);
  });

  test("cnikit's runtime sends GC of a 1.0.0 list to its own plugins only", async () => {
    const gcs: string[] = [];
    registerBuiltins({ "ckr-own": async () => ({ add: () => ({ cniVersion: "1.1.0" }), del: () => {}, gc: (a: CmdArgs) => void gcs.push(`${a.cniVersion}:${JSON.stringify(a.validAttachments)}`) }) });
    const bin = join(tmp.path, "bin");
    mkdirSync(bin, { recursive: true });
    symlinkSync(process.execPath, join(bin, "ckr-own")); // this very binary: cnikit's own
    writeFileSync(join(bin, "ckr-foreign"), `#!/bin/sh\necho "$CNI_COMMAND" >> ${join(tmp.path, "foreign.log")}\n`, { mode: 0o755 });
    const list = confListFromObject({ cniVersion: "1.0.0", name: "n1", plugins: [{ type: "ckr-own" }, { type: "ckr-foreign" }] });
    const cni = new CNIConfig({ path: [bin], cacheDir: join(tmp.path, "cache") });
    await cni.gcNetworkList(list, { validAttachments: [{ containerID: "a", ifname: "eth0" }] });
    expect(gcs).toEqual(['1.0.0:[{"containerID":"a","ifname":"eth0"}]']);
    expect(existsSync(join(tmp.path, "foreign.log"))).toBe(false);
    expect(readdirSync(bin).length).toBe(2);
    expect(readFileSync(join(bin, "ckr-foreign"), "utf8")).toContain("CNI_COMMAND");
  });

  test("a DEL without prevResult gets the one recorded at ADD", async () => {
    const state = join(tmp.path, "s3");
    const calls: { verb: string; args: CmdArgs }[] = [];
    const p = withRecords("fake", fakePlugin(calls, state));
    const prev = { cniVersion: "1.0.0", interfaces: [{ name: "eth0", sandbox: SELF_NS }], ips: [{ interface: 0, address: "10.7.0.8/24" }] };
    expect((await call(p, envOf("ADD", "c9", { CNIKIT_STATE_DIR: state }), { ...conf, prevResult: prev })).code).toBe(0);
    expect((await call(p, envOf("DEL", "c9", { CNIKIT_STATE_DIR: state }), conf)).code).toBe(0);
    expect(calls[1]!.args.prevResult?.ips?.[0]?.address).toBe("10.7.0.8/24");
    expect(listRecords(state, "n1")).toEqual([]);
  });
});
