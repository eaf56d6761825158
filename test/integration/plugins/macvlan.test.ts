/**
 * cnikit's macvlan (and ipvlan / vlan where the kernel has them) against the real kernel, in a
 * private network namespace. The master is one end of a veth pair made here (no dummy module).
 * Pods on a bridge-mode macvlan talk, private-mode ones cannot; host-local addresses and routes
 * land as the result says; DEL is idempotent; the same conflist through the reference plugin and
 * through cnikit leaves the same state. ipvlan and vlan tests run only when the kernel can create
 * those devices and are reported as skipped otherwise.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertPrivateNetns, must, Namespaces, ping, run, runPrefix, tempDir } from "../../support/netns.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const prefix = runPrefix("mv");
const ns = new Namespaces(prefix);
const tmp = tempDir("macvlan");
const bin = join(tmp.path, "bin");
const confDir = join(tmp.path, "net.d");
const cacheDir = join(tmp.path, "cache");
const ipamDir = join(tmp.path, "ipam");
const master = `${prefix}m0`;
const masterPeer = `${prefix}m1`;

function writeList(name: string, plugin: Record<string, unknown>, dir = confDir, cniVersion = "1.1.0") {
  const list = { cniVersion, name, plugins: [plugin] };
  writeFileSync(join(dir, `${name}.conflist`), JSON.stringify(list));
  return list;
}
const hostLocal = (ranges: unknown, extra: Record<string, unknown> = {}) => ({ type: "host-local", ranges, dataDir: ipamDir, ...extra });

const env = (extra: Record<string, string> = {}) => ({ ...process.env, NETCONFPATH: confDir, CNI_PATH: bin, CNI_CACHE_DIR: cacheDir, ...extra });
const cnikit = (args: string[], extra: Record<string, string> = {}) => run([CNIKIT, ...args], { env: env(extra) });
function addPod(net: string, netns: string, extra: Record<string, string> = {}) {
  const r = cnikit(["add", net, netns], extra);
  if (r.code !== 0) throw new Error(`add ${net} ${netns}: ${r.stdout} ${r.stderr}`);
  return JSON.parse(r.stdout);
}
const inNs = (netns: string, cmd: string[]) => must(["nsenter", `--net=${netns}`, ...cmd]);
const podLink = (netns: string, name = "eth0") => JSON.parse(inNs(netns, ["ip", "-j", "-d", "link", "show", name]))[0] as Record<string, any>;
const podLinks = (netns: string) => (JSON.parse(inNs(netns, ["ip", "-j", "link", "show"])) as Array<{ ifname: string }>).map((l) => l.ifname);
const reservations = (net: string) => {
  try {
    return readdirSync(join(ipamDir, net)).filter((f) => f !== "lock" && !f.startsWith("last_reserved_ip"));
  } catch {
    return [];
  }
};
const ip4 = (r: { ips: Array<{ address: string }> }) => r.ips.find((i) => !i.address.includes(":"))!.address.split("/")[0]!;

/** Whether this kernel can create a device of `kind` on the master (tried here, then removed). */
function kernelCan(kind: string[]): boolean {
  const name = `${prefix}pr`;
  const ok = run(["ip", "link", "add", name, "link", master, "type", ...kind]).code === 0;
  run(["ip", "link", "del", name]);
  return ok;
}

// the master must exist before the probes: made at load time, removed in afterAll
must(["ip", "link", "set", "lo", "up"]);
must(["ip", "link", "add", master, "type", "veth", "peer", "name", masterPeer]);
must(["ip", "link", "set", master, "up"]);
must(["ip", "link", "set", masterPeer, "up"]);
const ipvlanSupported = kernelCan(["ipvlan", "mode", "l2"]);
const vlanSupported = kernelCan(["vlan", "id", "7"]);

beforeAll(() => {
  mkdirSync(confDir, { recursive: true });
  must([CNIKIT, "install", "--bin-dir", bin]);
});

afterAll(() => {
  ns.cleanup();
  run(["ip", "link", "del", master]);
  tmp.remove();
});

describe("macvlan + host-local", () => {
  test("two pods on a bridge-mode macvlan ping each other; result, link and CHECK", () => {
    writeList("mvb", { type: "macvlan", master, ipam: hostLocal([[{ subnet: "10.91.0.0/24" }]]) });
    const a = ns.add("a");
    const b = ns.add("b");
    const ra = addPod("mvb", a);
    const rb = addPod("mvb", b);
    expect(ra.interfaces).toEqual([{ name: "eth0", mac: podLink(a).address, sandbox: a }]);
    expect(ra.ips).toEqual([{ address: "10.91.0.2/24", gateway: "10.91.0.1", interface: 0 }]);
    const l = podLink(a);
    expect(l.linkinfo.info_kind).toBe("macvlan");
    expect(l.linkinfo.info_data.mode).toBe("bridge");
    expect(l.mtu).toBe(1500);
    expect(ping(a, ip4(rb))).toBe(true);
    expect(ping(b, ip4(ra))).toBe(true);
    expect(inNs(a, ["cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"]).trim()).toBe("1");
    expect(cnikit(["check", "mvb", a]).code).toBe(0);
    // CHECK notices a missing address
    inNs(a, ["ip", "addr", "del", `${ip4(ra)}/24`, "dev", "eth0"]);
    const bad = cnikit(["check", "mvb", a]);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout).msg).toContain("lacks address");
    expect(cnikit(["del", "mvb", a]).code).toBe(0);
    expect(cnikit(["del", "mvb", b]).code).toBe(0);
    expect(podLinks(a)).toEqual(["lo"]);
    expect(reservations("mvb")).toEqual([]);
  });

  test("private mode: two pods on the same master cannot reach each other", () => {
    writeList("mvp", { type: "macvlan", master, mode: "private", ipam: hostLocal([[{ subnet: "10.92.0.0/24" }]]) });
    const a = ns.add("pa");
    const b = ns.add("pb");
    const ra = addPod("mvp", a);
    const rb = addPod("mvp", b);
    expect(podLink(a).linkinfo.info_data.mode).toBe("private");
    expect(podLink(a).operstate).not.toBe("DOWN");
    expect(ping(a, ip4(rb))).toBe(false);
    expect(ping(b, ip4(ra))).toBe(false);
    // CHECK compares the mode: the same pod checked against a bridge-mode config fails
    expect(cnikit(["check", "mvp", a]).code).toBe(0);
    writeList("mvp", { type: "macvlan", master, mode: "bridge", ipam: hostLocal([[{ subnet: "10.92.0.0/24" }]]) });
    const bad = cnikit(["check", "mvp", a]);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout).msg).toContain("mode private does not match expected value: bridge");
    expect(cnikit(["del", "mvp", a]).code).toBe(0);
    expect(cnikit(["del", "mvp", b]).code).toBe(0);
  }, 20_000);

  test("host-local addresses (IPv4 and IPv6, no DAD) and routes land as the result says; mtu and MAC from CNI_ARGS", () => {
    writeList("mvr", {
      type: "macvlan", master, mtu: 1400,
      ipam: hostLocal([[{ subnet: "10.93.0.0/24", gateway: "10.93.0.1" }], [{ subnet: "fd93::/64" }]], {
        routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.93.0/24", gw: "10.93.0.254" }],
      }),
    });
    const p = ns.add("r");
    const r = addPod("mvr", p, { CNI_ARGS: "IgnoreUnknown=1;MAC=02:93:00:00:00:02" });
    expect(r.interfaces).toEqual([{ name: "eth0", mac: "02:93:00:00:00:02", sandbox: p }]);
    expect(r.ips).toEqual([
      { address: "10.93.0.2/24", gateway: "10.93.0.1", interface: 0 },
      { address: "fd93::2/64", gateway: "fd93::1", interface: 0 },
    ]);
    expect(r.routes).toEqual([{ dst: "0.0.0.0/0" }, { dst: "192.168.93.0/24", gw: "10.93.0.254" }]);
    const l = podLink(p);
    expect(l.mtu).toBe(1400);
    expect(l.address).toBe("02:93:00:00:00:02");
    const addrs = (JSON.parse(inNs(p, ["ip", "-j", "addr", "show", "eth0"]))[0].addr_info as Array<Record<string, any>>)
      .filter((a) => a.scope === "global");
    expect(addrs.map((a) => `${a.local}/${a.prefixlen}`).sort()).toEqual(["10.93.0.2/24", "fd93::2/64"]);
    expect(addrs.some((a) => a.tentative)).toBe(false);
    expect(inNs(p, ["ip", "route", "show", "default"])).toContain("default via 10.93.0.1 dev eth0");
    expect(inNs(p, ["ip", "route", "show", "192.168.93.0/24"])).toContain("via 10.93.0.254 dev eth0");
    expect(cnikit(["check", "mvr", p]).code).toBe(0);
    expect(cnikit(["del", "mvr", p]).code).toBe(0);
  });

  test("DEL succeeds twice and with the netns gone; nothing is left", () => {
    writeList("mvg", { type: "macvlan", master, ipam: hostLocal([[{ subnet: "10.94.0.0/24" }]]) });
    const p = ns.add("g");
    addPod("mvg", p);
    expect(cnikit(["del", "mvg", p]).code).toBe(0);
    expect(cnikit(["del", "mvg", p]).code).toBe(0);
    expect(podLinks(p)).toEqual(["lo"]);
    const q = ns.add("q");
    addPod("mvg", q);
    must(["ip", "netns", "del", `${prefix}q`]);
    const r = cnikit(["del", "mvg", q]);
    expect(r.stdout).toBe("");
    expect(r.code).toBe(0);
    expect(reservations("mvg")).toEqual([]);
  });

  test("DEL with keys that no longer decode (after a good ADD) removes the device and the reservation", () => {
    writeList("mvb", { type: "macvlan", master, ipam: hostLocal([[{ subnet: "10.94.1.0/24" }]]) });
    const p = ns.add("kb");
    addPod("mvb", p);
    expect(reservations("mvb").length).toBe(1);
    writeList("mvb", { type: "macvlan", master: 5, mode: "l2", mtu: "x", mac: "zz", bcqueuelen: 100, linkInContainer: "no", ipam: hostLocal([[{ subnet: "10.94.1.0/24" }]]) });
    const r = cnikit(["del", "mvb", p], { CNI_ARGS: "IgnoreUnknown=1;MAC=zz" });
    expect(r.stdout).toBe("");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('"master" must be a string');
    expect(podLinks(p)).toEqual(["lo"]);
    expect(reservations("mvb")).toEqual([]);
  });

  test("CNI_IFNAME taken in the host namespace: the device is renamed inside the pod", () => {
    writeList("mvn", { type: "macvlan", master, ipam: hostLocal([[{ subnet: "10.95.0.0/24" }]]) });
    const p = ns.add("n");
    const r = addPod("mvn", p, { CNI_IFNAME: masterPeer });
    expect(r.interfaces[0].name).toBe(masterPeer);
    expect(podLink(p, masterPeer).linkinfo.info_kind).toBe("macvlan");
    expect(JSON.parse(must(["ip", "-j", "-d", "link", "show", masterPeer]))[0].linkinfo.info_kind).toBe("veth");
    expect(cnikit(["del", "mvn", p], { CNI_IFNAME: masterPeer }).code).toBe(0);
    expect(podLinks(p)).toEqual(["lo"]);
  });

  test("refused configs leave no state; no master means the default route's interface", () => {
    const p = ns.add("x");
    for (const [extra, code, msg] of [
      [{}, 7, "no default route interface"],
      [{ master: `${prefix}zz` }, 7, "not found"],
      [{ master, mode: "l2" }, 7, "unknown macvlan mode"],
      [{ master, mtu: 9000 }, 7, "invalid MTU 9000"],
      [{ master, bcqueuelen: 100 }, 2, "bcqueuelen"],
      [{ master, mac: "zz" }, 7, "invalid MAC"],
    ] as const) {
      writeList("mvx", { type: "macvlan", ...extra, ipam: hostLocal([[{ subnet: "10.96.0.0/24" }]]) });
      const r = cnikit(["add", "mvx", p]);
      expect(r.code).toBe(1);
      const err = JSON.parse(r.stdout);
      expect(err.code).toBe(code);
      expect(err.msg).toContain(msg);
      expect(podLinks(p)).toEqual(["lo"]);
    }
    expect(reservations("mvx")).toEqual([]);
    // with a default route out of the master, no 'master' is needed
    must(["ip", "addr", "add", "10.97.0.1/24", "dev", master]);
    must(["ip", "route", "add", "default", "via", "10.97.0.254", "dev", master]);
    try {
      writeList("mvd", { type: "macvlan", ipam: hostLocal([[{ subnet: "10.96.0.0/24" }]]) });
      addPod("mvd", p);
      const masterIndex = JSON.parse(must(["ip", "-j", "link", "show", master]))[0].ifindex;
      expect(podLink(p).link_index).toBe(masterIndex);
      expect(cnikit(["del", "mvd", p]).code).toBe(0);
    } finally {
      run(["ip", "route", "del", "default"]);
      run(["ip", "addr", "del", "10.97.0.1/24", "dev", master]);
    }
  }, 20_000);

  test("linkInContainer: the master is looked up and the device made inside the pod", () => {
    const p = ns.add("c");
    const name = `${prefix}cm`;
    must(["ip", "link", "add", name, "type", "veth", "peer", "name", `${prefix}cp`]);
    must(["ip", "link", "set", name, "netns", `${prefix}c`]);
    inNs(p, ["ip", "link", "set", name, "up"]);
    writeList("mvc", { type: "macvlan", master: name, linkInContainer: true, ipam: hostLocal([[{ subnet: "10.98.0.0/24" }]]) });
    const r = addPod("mvc", p);
    expect(r.ips[0].address).toBe("10.98.0.2/24");
    const l = podLink(p);
    expect(l.linkinfo.info_kind).toBe("macvlan");
    expect(cnikit(["check", "mvc", p]).code).toBe(0);
    expect(cnikit(["del", "mvc", p]).code).toBe(0);
    expect(podLinks(p).sort()).toEqual([name, "lo"].sort());
  });
});

/** What a pod's set-up leaves, with what varies between runs left out. */
function podSnapshot(podNs: string) {
  const links = (JSON.parse(inNs(podNs, ["ip", "-j", "-d", "link", "show"])) as Array<Record<string, any>>)
    .filter((l) => l.ifname !== "lo")
    .map((l) => ({
      name: l.ifname,
      kind: l.linkinfo?.info_kind ?? "",
      mode: l.linkinfo?.info_data?.mode ?? "",
      mtu: l.mtu,
      up: (l.flags as string[]).includes("UP"),
      parent: l.link_index ?? 0,
    }));
  const addrs = (JSON.parse(inNs(podNs, ["ip", "-j", "addr", "show"])) as Array<Record<string, any>>)
    .flatMap((l) => (l.addr_info as Array<Record<string, any>>).filter((a) => a.scope !== "link" && a.scope !== "host").map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`))
    .sort();
  const routes = (fam: string) =>
    (JSON.parse(inNs(podNs, ["ip", "-j", fam, "route", "show"])) as Array<Record<string, any>>)
      .filter((r) => !String(r.dst).startsWith("fe80"))
      .map((r) => `${r.dst} ${r.gateway ?? ""} ${r.dev} ${r.scope ?? ""} ${r.protocol ?? ""}`)
      .sort();
  const sysctl = (k: string) => inNs(podNs, ["cat", `/proc/sys/${k}`]).trim();
  return { links, addrs, routes4: routes("-4"), routes6: routes("-6"), arpNotify: sysctl("net/ipv4/conf/eth0/arp_notify") };
}

describe("the same macvlan conflist through the reference and through cnikit", () => {
  test("leaves the same state and equivalent results", () => {
    const out: Record<string, { snap: ReturnType<typeof podSnapshot>; result: any }> = {};
    for (const [side, pluginPath] of [["reference", "/usr/lib/cni"], ["cnikit", bin]] as const) {
      // the same list; only host-local's state directory differs, so both allocate from scratch
      const dir = join(tmp.path, `same-${side}.d`);
      mkdirSync(dir);
      writeList("same", {
        type: "macvlan", master, mode: "vepa", mtu: 1450,
        ipam: { type: "host-local", ranges: [[{ subnet: "10.99.0.0/24" }], [{ subnet: "fd99::/64" }]], routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.99.0/24", gw: "10.99.0.254" }], dataDir: join(tmp.path, `ipam-${side}`) },
      }, dir, "1.0.0"); // the reference (1.1.1) speaks up to 1.0.0
      const pod = ns.add(`S${side[0]}`);
      const e = { ...process.env, NETCONFPATH: dir, CNI_PATH: pluginPath, CNI_CACHE_DIR: join(tmp.path, `cache-${side}`) };
      const r = run([CNIKIT, "add", "same", pod], { env: e });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      out[side] = { snap: podSnapshot(pod), result: JSON.parse(r.stdout) };
      expect(out[side]!.result.interfaces[0].mac).toBe(podLink(pod).address);
      expect(run([CNIKIT, "check", "same", pod], { env: e }).code).toBe(0);
      const d1 = run([CNIKIT, "del", "same", pod], { env: e });
      expect(d1.code).toBe(0);
      expect(run([CNIKIT, "del", "same", pod], { env: e }).code).toBe(0);
      expect(podLinks(pod)).toEqual(["lo"]);
    }
    expect(out.cnikit!.snap).toEqual(out.reference!.snap);
    const shape = (r: any) => ({
      cniVersion: r.cniVersion,
      interfaces: r.interfaces.map((i: any) => ({ name: i.name, sandbox: i.sandbox ? "pod" : "", mac: /^[0-9a-f:]{17}$/.test(i.mac) })),
      ips: r.ips,
      routes: r.routes,
      dns: r.dns,
    });
    expect(shape(out.cnikit!.result)).toEqual(shape(out.reference!.result));
  }, 20_000);
});

describe("ipvlan (only where the kernel has it)", () => {
  test.skipIf(!ipvlanSupported)("two pods on an l2 ipvlan ping each other; CHECK; DEL twice", () => {
    writeList("ipv", { type: "ipvlan", master, ipam: hostLocal([[{ subnet: "10.101.0.0/24" }]]) });
    const a = ns.add("ia");
    const b = ns.add("ib");
    const ra = addPod("ipv", a);
    const rb = addPod("ipv", b);
    expect(ra.ips).toEqual([{ address: "10.101.0.2/24", gateway: "10.101.0.1", interface: 0 }]);
    expect(podLink(a).linkinfo.info_kind).toBe("ipvlan");
    expect(ping(a, ip4(rb))).toBe(true);
    expect(cnikit(["check", "ipv", a]).code).toBe(0);
    for (const p of [a, b, a]) expect(cnikit(["del", "ipv", p]).code).toBe(0);
    expect(podLinks(a)).toEqual(["lo"]);
    expect(reservations("ipv")).toEqual([]);
  });
});

describe("vlan (only where the kernel has 8021q)", () => {
  test.skipIf(!vlanSupported)("a pod on VLAN 100 gets its address; CHECK; DEL twice", () => {
    writeList("vl", { type: "vlan", master, vlanId: 100, mtu: 1400, ipam: hostLocal([[{ subnet: "10.102.0.0/24" }]]) });
    const p = ns.add("v");
    const r = addPod("vl", p);
    expect(r.ips).toEqual([{ address: "10.102.0.2/24", gateway: "10.102.0.1", interface: 0 }]);
    const l = podLink(p);
    expect(l.linkinfo.info_kind).toBe("vlan");
    expect(l.linkinfo.info_data.id).toBe(100);
    expect(l.mtu).toBe(1400);
    expect(cnikit(["check", "vl", p]).code).toBe(0);
    expect(cnikit(["del", "vl", p]).code).toBe(0);
    expect(cnikit(["del", "vl", p]).code).toBe(0);
    expect(podLinks(p)).toEqual(["lo"]);
  });
});

describe("ipvlan and vlan where the kernel lacks them", () => {
  for (const [type, supported, extra, hint] of [
    ["ipvlan", ipvlanSupported, {}, "ipvlan module"],
    ["vlan", vlanSupported, { vlanId: 100 }, "8021q module"],
  ] as const) {
    test.skipIf(supported)(`${type}: ADD fails with a clear error and leaves neither a device nor a reservation`, () => {
      writeList(`no${type}`, { type, master, ...extra, ipam: hostLocal([[{ subnet: "10.103.0.0/24" }]]) });
      const p = ns.add(`u${type[0]}`);
      const r = cnikit(["add", `no${type}`, p]);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout).msg).toContain(hint);
      expect(podLinks(p)).toEqual(["lo"]);
      expect(reservations(`no${type}`)).toEqual([]);
      expect(cnikit(["del", `no${type}`, p]).code).toBe(0);
    });
  }
});
