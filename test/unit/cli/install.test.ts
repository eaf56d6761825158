/**
 * `cnikit install` / `uninstall` (issue 16): the one-word modes' configs, atomic writes recorded in
 * a manifest, files cnikit did not write left alone (unless --force), the config kubelet picks
 * named when it is not cnikit's, and uninstall removing exactly what install wrote. The command
 * runs of the compiled binary need dist/cnikit (npm run build).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseNetworkConfig } from "../../../src/agent/netconfig.ts";
import { checkConfText, configFiles, installInto, MANIFEST, uninstallFrom, writeConfFiles, writeDefaultConf } from "../../../src/cli/install.ts";
import { MODES, modeConfig, modesUsage } from "../../../src/cli/modes.ts";
import { parseBridgeConf } from "../../../src/plugins/main/bridge.ts";
import { run, tempDir } from "../../support/netns.ts";

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const tmp = tempDir("install-unit");
afterAll(() => tmp.remove());
let n = 0;
const fresh = (tag: string) => {
  const d = join(tmp.path, `${tag}-${++n}`);
  mkdirSync(d, { recursive: true });
  return d;
};

describe("modes", () => {
  test("every mode has a config list whose plugins have types, and --help lists each on one line", () => {
    const usage = modesUsage();
    for (const m of MODES) {
      const subnet = m.subnet === "node" ? "10.244.1.0/24" : "10.244.0.0/16";
      const c = modeConfig(m.name, { subnet });
      checkConfText(JSON.stringify(c.conflist), "10-cnikit.conflist", m.name);
      expect(usage.split("\n").filter((l) => l.trimStart().startsWith(`${m.name} `)).length).toBe(1);
      expect(c.netConf !== undefined).toBe(m.agent);
      // the agent's modes: the network config parses as the agent parses it
      if (c.netConf) expect(parseNetworkConfig(JSON.stringify(c.netConf)).v4?.network.prefix).toBe(16);
    }
    expect(() => modeConfig("flannel", { subnet: "10.0.0.0/8" })).toThrow(/unknown mode "flannel"/);
    expect(() => modeConfig("bridge", { subnet: "10.0.0.0/33" })).toThrow(/--subnet/);
    expect(() => modeConfig("bridge", { subnet: "10.1.0.0/24", mtu: 10 })).toThrow(/--mtu/);
  });

  test("bridge is kubenet's: cbr0, host-local over the pod CIDR, portmap, bandwidth, MTU, non-masquerade CIDR", () => {
    const c = modeConfig("bridge", { subnet: "10.244.7.9/24", mtu: 1450, nonMasqueradeCIDR: "10.0.0.0/8" }).conflist as { plugins: Record<string, unknown>[] };
    expect(c.plugins.map((p) => p.type)).toEqual(["bridge", "portmap", "bandwidth"]);
    const br = c.plugins[0]!;
    expect(br).toMatchObject({ bridge: "cbr0", mtu: 1450, isGateway: true, ipMasq: true, ipMasqExclude: ["10.0.0.0/8"], ipam: { type: "host-local", ranges: [[{ subnet: "10.244.7.0/24" }]] } });
    // the bridge plugin decodes it (ipMasqExclude included)
    const conf = parseBridgeConf({ command: "ADD", containerId: "c", netns: "/x", ifName: "eth0", args: "", path: "", config: { cniVersion: "1.0.0", name: "cnikit", ...br } } as never);
    expect(conf).toMatchObject({ bridge: "cbr0", ipMasq: true, ipMasqExclude: ["10.0.0.0/8"], mtu: 1450 });
  });

  test("the agent's modes: overlay in the list, the backend in the network config", () => {
    const backend = (m: string) => modeConfig(m, { subnet: "10.96.0.0/12" }).netConf!.Backend;
    expect(backend("vxlan")).toEqual({ Type: "vxlan" });
    expect(backend("host-gw")).toEqual({ Type: "host-gw" });
    expect(backend("bgp")).toEqual({ Type: "bgp" });
    expect(backend("ipip")).toEqual({ Type: "bgp", Encapsulation: "ipip" });
    expect(backend("ebpf")).toEqual({ Type: "vxlan", Datapath: "ebpf" });
    expect((modeConfig("vxlan", { subnet: "10.96.0.0/12" }).conflist.plugins as { type: string }[])[0]!.type).toBe("overlay");
    expect(modeConfig("vxlan", { subnet: "10.96.0.0/12", subnetLen: 26 }).netConf).toMatchObject({ Network: "10.96.0.0/12", SubnetLen: 26 });
    expect(modeConfig("macvlan", { subnet: "192.168.5.0/24", master: "eth1" }).conflist.plugins).toMatchObject([{ type: "macvlan", master: "eth1", mode: "bridge" }]);
  });
});

describe("atomic install with a manifest", () => {
  test("binaries and links are recorded; a foreign plugin of a type's name is kept unless force", () => {
    const bin = fresh("bin");
    const src = join(tmp.path, "fake-cnikit");
    writeFileSync(src, "#!/bin/sh\necho cnikit\n");
    writeFileSync(join(bin, "bridge"), "reference bridge");
    const r = installInto(bin, { source: src, types: ["bridge", "host-local"] });
    expect(r.kept).toEqual(["bridge"]);
    expect(readFileSync(join(bin, "bridge"), "utf8")).toBe("reference bridge");
    expect(readlinkSync(join(bin, "host-local"))).toBe("cnikit");
    const m = JSON.parse(readFileSync(join(bin, MANIFEST), "utf8"));
    expect(Object.keys(m.written).sort()).toEqual(["cnikit", "host-local"]);
    // no temp file left behind
    expect(readdirSync(bin).filter((f) => f.includes(".tmp-"))).toEqual([]);
    const r2 = installInto(bin, { source: src, types: ["bridge", "host-local"], force: true });
    expect(r2.replaced).toEqual(["bridge"]);
    expect(readlinkSync(join(bin, "bridge"))).toBe("cnikit");
  });

  test("config files: written when absent, ours or identical; another's kept unless force; changed since counts as another's", () => {
    const conf = fresh("conf");
    writeFileSync(join(conf, "10-cnikit.conflist"), "someone else's\n");
    let r = writeConfFiles(conf, [{ name: "10-cnikit.conflist", content: "A\n" }]);
    expect(r).toEqual({ written: [], kept: ["10-cnikit.conflist"], replaced: [] });
    expect(readFileSync(join(conf, "10-cnikit.conflist"), "utf8")).toBe("someone else's\n");
    r = writeConfFiles(conf, [{ name: "10-cnikit.conflist", content: "A\n" }], { force: true });
    expect(r.replaced).toEqual(["10-cnikit.conflist"]);
    // ours now: a new content replaces it without force (an upgrade)
    r = writeConfFiles(conf, [{ name: "10-cnikit.conflist", content: "B\n" }]);
    expect(r.written).toEqual(["10-cnikit.conflist"]);
    expect(readFileSync(join(conf, "10-cnikit.conflist"), "utf8")).toBe("B\n");
    // edited by hand since: not ours any more
    writeFileSync(join(conf, "10-cnikit.conflist"), "edited\n");
    r = writeConfFiles(conf, [{ name: "10-cnikit.conflist", content: "C\n" }]);
    expect(r.kept).toEqual(["10-cnikit.conflist"]);
    // a file that already holds exactly what would be written is taken as ours
    writeFileSync(join(conf, "20-x.conf"), "same\n");
    expect(writeConfFiles(conf, [{ name: "20-x.conf", content: "same\n" }]).written).toEqual(["20-x.conf"]);
  });

  test("the config kubelet picks: the first .conf/.conflist/.json in byte order; the default network only into an empty dir", () => {
    const conf = fresh("order");
    for (const f of ["10-cnikit.conflist", "05-calico.conflist", "99-loopback.conf", "00-README.md", "Z.json", ".hidden"]) writeFileSync(join(conf, f), "{}");
    expect(configFiles(conf)).toEqual(["05-calico.conflist", "10-cnikit.conflist", "99-loopback.conf", "Z.json"]);
    expect(writeDefaultConf(conf, ["bridge"])).toBeUndefined();
    const empty = fresh("empty");
    expect(writeDefaultConf(empty, ["bridge"])).toBe(join(empty, "10-cnikit.conflist"));
    // its own default again (a re-run): rewritten, not "already holds a configuration"
    expect(writeDefaultConf(empty, ["bridge"])).toBe(join(empty, "10-cnikit.conflist"));
  });

  test("uninstall removes exactly what the manifest records, keeps what changed since (unless force), then the manifest", () => {
    const conf = fresh("un");
    writeFileSync(join(conf, "05-other.conflist"), "{}");
    writeConfFiles(conf, [{ name: "10-cnikit.conflist", content: "A\n" }, { name: "99-loopback.conf", content: "L\n" }]);
    writeFileSync(join(conf, "99-loopback.conf"), "edited\n");
    let r = uninstallFrom(conf);
    expect(r).toEqual({ removed: ["10-cnikit.conflist"], kept: ["99-loopback.conf"] });
    expect(existsSync(join(conf, "05-other.conflist"))).toBe(true);
    expect(existsSync(join(conf, MANIFEST))).toBe(true);
    r = uninstallFrom(conf, { force: true });
    expect(r.removed).toEqual(["99-loopback.conf"]);
    expect(readdirSync(conf)).toEqual(["05-other.conflist"]);
    // links: one re-pointed elsewhere since is kept
    const bin = fresh("unbin");
    const src = join(tmp.path, "fake-cnikit2");
    writeFileSync(src, "x");
    installInto(bin, { source: src, types: ["bridge", "ptp"] });
    const { rmSync } = require("node:fs");
    rmSync(join(bin, "ptp"));
    symlinkSync("/usr/lib/cni/ptp", join(bin, "ptp"));
    r = uninstallFrom(bin);
    expect(r.removed.sort()).toEqual(["bridge", "cnikit"]);
    expect(r.kept).toEqual(["ptp"]);
    expect(lstatSync(join(bin, "ptp")).isSymbolicLink()).toBe(true);
  });

  test("checkConfText refuses what a runtime could not load", () => {
    expect(() => checkConfText("{", "a.conflist", "f")).toThrow(/not JSON/);
    expect(() => checkConfText(`{"name":"x"}`, "a.conflist", "f")).toThrow(/plugins/);
    expect(() => checkConfText(`{"name":"x","plugins":[{}]}`, "a.conflist", "f")).toThrow(/type/);
    expect(() => checkConfText(`{"plugins":[{"type":"bridge"}]}`, "a.conflist", "f")).toThrow(/name/);
    expect(() => checkConfText(`{"name":"x","type":"bridge"}`, "a.conf", "f")).not.toThrow();
  });
});

describe("the compiled binary", () => {
  test("install --mode writes list and network config, names the config kubelet picks, uninstall undoes it", () => {
    if (!existsSync(CNIKIT)) throw new Error("dist/cnikit is missing: run `npm run build`");
    const d = fresh("cmd");
    const [bin, conf, netConf] = [join(d, "bin"), join(d, "net.d"), join(d, "etc", "net-conf.json")];
    mkdirSync(conf);
    writeFileSync(join(conf, "05-flannel.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "flannel", plugins: [{ type: "flannel" }] }));
    const r = run([CNIKIT, "install", "--bin-dir", bin, "--conf-dir", conf, "--mode", "vxlan", "--subnet", "10.244.0.0/16", "--net-conf", netConf]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`note: kubelet, containerd and CRI-O use the first config in lexicographic order, ${join(conf, "05-flannel.conflist")}`);
    expect(JSON.parse(readFileSync(netConf, "utf8"))).toEqual({ Network: "10.244.0.0/16", Backend: { Type: "vxlan" } });
    expect(JSON.parse(readFileSync(join(conf, "10-cnikit.conflist"), "utf8")).plugins[0].type).toBe("overlay");
    // the config kubelet picks is ours: no note
    const r2 = run([CNIKIT, "install", "--bin-dir", bin, "--conf-dir", conf, "--mode", "vxlan", "--subnet", "10.244.0.0/16", "--net-conf", netConf, "--conf-name", "00-cnikit.conflist"]);
    expect(r2.code).toBe(0);
    expect(r2.stdout).not.toContain("note:");
    // a bad flag changes nothing
    const before = readdirSync(conf).sort();
    expect(run([CNIKIT, "install", "--bin-dir", bin, "--conf-dir", conf, "--mode", "nope", "--subnet", "10.0.0.0/8"]).code).not.toBe(0);
    expect(run([CNIKIT, "install", "--bin-dir", bin, "--conf-dir", conf, "--conf-name", "../x.conflist", "--mode", "bridge", "--subnet", "10.0.0.0/24"]).code).not.toBe(0);
    expect(readdirSync(conf).sort()).toEqual(before);
    const u = run([CNIKIT, "uninstall", "--bin-dir", bin, "--conf-dir", conf, "--net-conf", netConf]);
    expect(u.code).toBe(0);
    expect(readdirSync(conf)).toEqual(["05-flannel.conflist"]);
    expect(readdirSync(bin)).toEqual([]);
    expect(existsSync(netConf)).toBe(false);
    expect(run([CNIKIT, "install", "--help"]).stdout).toContain("ipvlan ");
  }, 60_000); // several runs of the binary and copies of it (115 MB): slow on a loaded machine

  test("a foreign config of cnikit's name: install keeps it and exits non-zero; --force replaces it", () => {
    const d = fresh("foreign");
    const [bin, conf, list] = [join(d, "bin"), join(d, "net.d"), join(d, "cni-conf.json")];
    mkdirSync(conf);
    writeFileSync(join(conf, "10-cnikit.conflist"), "theirs");
    writeFileSync(list, JSON.stringify({ cniVersion: "1.0.0", name: "cnikit", plugins: [{ type: "bridge" }] }));
    const r = run([CNIKIT, "install", "--bin-dir", bin, "--conf-dir", conf, "--conflist", list]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("not written by cnikit");
    expect(readFileSync(join(conf, "10-cnikit.conflist"), "utf8")).toBe("theirs");
    expect(run([CNIKIT, "install", "--bin-dir", bin, "--conf-dir", conf, "--conflist", list, "--force"]).code).toBe(0);
    expect(JSON.parse(readFileSync(join(conf, "10-cnikit.conflist"), "utf8")).name).toBe("cnikit");
  });
});
