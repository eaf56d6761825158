/**
 * cnikit's host-device against the real kernel, in a private network namespace. The kernel here
 * has no dummy module, so the "host device" is one end of a veth pair made for each test (with
 * its own MTU, MAC and address); the other end stays on the host to ping the pod through.
 * `kernelpath` / `pciBusID` read sysfs, which shows the machine's devices rather than this
 * namespace's: they are covered by unit tests of the pure selection functions over a fake sysfs.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Link } from "../../../src/net/link.ts";
import {
  parseHostDeviceConf,
  selectDevice,
  type SysfsView,
  sysfsNetNames,
} from "../../../src/plugins/main/host-device.ts";
import { assertPrivateNetns, must, Namespaces, ping, run, runPrefix, tempDir } from "../../support/netns.ts";
import { cmdArgs } from "../../unit/plugins/cmd-args.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const prefix = runPrefix("hd");
const ns = new Namespaces(prefix);
const tmp = tempDir("host-device");
const bin = join(tmp.path, "bin");
const confDir = join(tmp.path, "net.d");
const cacheDir = join(tmp.path, "cache");
const made: string[] = [];

const env = (extra: Record<string, string> = {}) => ({ ...process.env, NETCONFPATH: confDir, CNI_PATH: bin, CNI_CACHE_DIR: cacheDir, ...extra });
const cnikit = (args: string[], extra: Record<string, string> = {}) => run([CNIKIT, ...args], { env: env(extra) });
const inNs = (netns: string, cmd: string[]) => must(["nsenter", `--net=${netns}`, ...cmd]);

function writeNet(name: string, plugin: Record<string, unknown>, cniVersion = "1.1.0") {
  writeFileSync(join(confDir, `${name}.conflist`), JSON.stringify({ cniVersion, name, plugins: [{ type: "host-device", ...plugin }] }));
}

/** A veth pair: `<prefix><tag>d` (the device to hand over) and `<prefix><tag>p` (stays here). */
function pair(tag: string, o: { mtu: number; mac: string; addr: string; peerAddr: string }, netnsName?: string) {
  const dev = `${prefix}${tag}d`;
  const peer = `${prefix}${tag}p`;
  const ip = netnsName ? ["ip", "-n", netnsName] : ["ip"];
  must([...ip, "link", "add", dev, "mtu", String(o.mtu), "address", o.mac, "type", "veth", "peer", "name", peer, "address", o.mac.replace(/..$/, "ff")]);
  if (!netnsName) made.push(peer);
  must([...ip, "addr", "add", o.addr, "dev", dev]);
  must([...ip, "addr", "add", o.peerAddr, "dev", peer]);
  must([...ip, "link", "set", dev, "up"]);
  must([...ip, "link", "set", peer, "up"]);
  return { dev, peer };
}

interface IpLink { ifname: string; mtu: number; address: string; flags: string[]; ifalias?: string; addr_info?: Array<{ local: string; prefixlen: number; scope: string }> }
const linkIn = (netns: string, name: string): IpLink | null => {
  const r = run([...(netns ? ["nsenter", `--net=${netns}`] : []), "ip", "-j", "-d", "addr", "show", "dev", name]);
  return r.code === 0 ? (JSON.parse(r.stdout) as IpLink[])[0] ?? null : null;
};
const globalAddrs = (l: IpLink | null) => (l?.addr_info ?? []).filter((a) => a.scope === "global").map((a) => `${a.local}/${a.prefixlen}`);
const podLinkNames = (netns: string) => (JSON.parse(inNs(netns, ["ip", "-j", "link", "show"])) as IpLink[]).map((l) => l.ifname).sort();

beforeAll(() => {
  must(["ip", "link", "set", "lo", "up"]);
  mkdirSync(confDir, { recursive: true });
  must([CNIKIT, "install", "--bin-dir", bin]);
});

afterAll(() => {
  ns.cleanup();
  for (const l of made) run(["ip", "link", "del", l]); // takes the device end with it wherever it is
  tmp.remove();
});

describe("host-device", () => {
  test("ADD by `device` with IPAM moves it into the pod as eth0, pingable; CHECK; DEL restores it; DEL twice", () => {
    const { dev, peer } = pair("a", { mtu: 1400, mac: "02:4a:00:00:00:01", addr: "10.91.0.2/24", peerAddr: "10.91.0.1/24" });
    writeNet("dev", { device: dev, ipam: { type: "static", addresses: [{ address: "10.91.0.2/24", gateway: "10.91.0.1" }], routes: [{ dst: "10.95.0.0/16" }] } });
    const p = ns.add("a");
    const r = cnikit(["add", "dev", p]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.interfaces).toEqual([{ name: "eth0", mac: "02:4a:00:00:00:01", sandbox: p }]);
    expect(res.ips).toEqual([{ address: "10.91.0.2/24", gateway: "10.91.0.1", interface: 0 }]);
    expect(res.routes).toEqual([{ dst: "10.95.0.0/16" }]);
    expect(linkIn("", dev)).toBeNull();
    const eth0 = linkIn(p, "eth0")!;
    expect(eth0.mtu).toBe(1400);
    expect(eth0.address).toBe("02:4a:00:00:00:01");
    expect(eth0.ifalias).toBe(dev);
    expect(eth0.flags).toContain("UP");
    expect(globalAddrs(eth0)).toEqual(["10.91.0.2/24"]);
    expect(inNs(p, ["ip", "route", "show", "10.95.0.0/16"])).toContain("via 10.91.0.1 dev eth0");
    expect(ping("", "10.91.0.2")).toBe(true);
    expect(ping(p, "10.91.0.1")).toBe(true);
    expect(cnikit(["check", "dev", p]).code).toBe(0);
    // CHECK notices a missing address
    inNs(p, ["ip", "addr", "del", "10.91.0.2/24", "dev", "eth0"]);
    const bad = cnikit(["check", "dev", p]);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout).msg).toContain("lacks address");

    expect(cnikit(["del", "dev", p]).code).toBe(0);
    expect(podLinkNames(p)).toEqual(["lo"]);
    const back = linkIn("", dev)!;
    expect(back.mtu).toBe(1400);
    expect(back.address).toBe("02:4a:00:00:00:01");
    expect(back.flags).not.toContain("UP"); // as the reference leaves it
    const again = cnikit(["del", "dev", p]);
    expect(again.stdout).toBe("");
    expect(again.code).toBe(0);
    expect(linkIn("", dev)!.address).toBe("02:4a:00:00:00:01");
    // the peer did not move
    expect(linkIn("", peer)).not.toBeNull();
  });

  test("ADD by `hwaddr` without IPAM, CNI_IFNAME=net1: moved bare (its addresses dropped, as the reference); DEL restores it", () => {
    const { dev } = pair("b", { mtu: 1280, mac: "02:4b:00:00:00:02", addr: "10.92.0.2/24", peerAddr: "10.92.0.1/24" });
    writeNet("hw", { hwaddr: "02:4B:00:00:00:02" });
    const p = ns.add("b");
    const r = cnikit(["add", "hw", p], { CNI_IFNAME: "net1" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.interfaces).toEqual([{ name: "net1", mac: "02:4b:00:00:00:02", sandbox: p }]);
    expect(res.ips).toBeUndefined();
    const net1 = linkIn(p, "net1")!;
    expect(net1.mtu).toBe(1280);
    expect(net1.flags).toContain("UP");
    expect(globalAddrs(net1)).toEqual([]);
    expect(cnikit(["check", "hw", p], { CNI_IFNAME: "net1" }).code).toBe(0);
    // the interface works: give it its address back by hand and ping through the peer
    inNs(p, ["ip", "addr", "add", "10.92.0.2/24", "dev", "net1"]);
    expect(ping("", "10.92.0.2")).toBe(true);
    expect(cnikit(["del", "hw", p], { CNI_IFNAME: "net1" }).code).toBe(0);
    const back = linkIn("", dev)!;
    expect([back.mtu, back.address]).toEqual([1280, "02:4b:00:00:00:02"]);
    expect(podLinkNames(p)).toEqual(["lo"]);
  });

  test("DEL with the pod namespace gone succeeds (a veth end is destroyed with the namespace)", async () => {
    const { dev, peer } = pair("c", { mtu: 1500, mac: "02:4c:00:00:00:03", addr: "10.96.0.2/24", peerAddr: "10.96.0.1/24" });
    writeNet("gone", { device: dev });
    const p = ns.add("c");
    expect(cnikit(["add", "gone", p]).code).toBe(0);
    must(["ip", "netns", "del", `${prefix}c`]);
    const r = cnikit(["del", "gone", p]);
    expect(r.stdout).toBe("");
    expect(r.code).toBe(0);
    // namespace teardown is asynchronous: the veth (both ends) goes shortly after
    for (let i = 0; i < 50 && linkIn("", peer); i++) await Bun.sleep(100);
    expect(linkIn("", peer)).toBeNull();
    expect(linkIn("", dev)).toBeNull();
  });

  test("DEL with keys that no longer decode (after a good ADD) moves the device back and releases the reservation", () => {
    const { dev } = pair("k", { mtu: 1500, mac: "02:4d:00:00:00:07", addr: "10.98.0.2/24", peerAddr: "10.98.0.1/24" });
    const ipamDir = join(tmp.path, "ipam");
    const ipam = { type: "host-local", ranges: [[{ subnet: "10.98.1.0/24" }]], dataDir: ipamDir };
    writeNet("baddel", { device: dev, ipam });
    const p = ns.add("k");
    expect(cnikit(["add", "baddel", p]).code).toBe(0);
    expect(readdirSync(join(ipamDir, "baddel")).filter((f) => f.startsWith("10."))).toHaveLength(1);
    writeNet("baddel", { device: 5, hwaddr: "zz", kernelpath: "/dev/x", pciBusID: [], DPDKMode: "no", ipam });
    const r = cnikit(["del", "baddel", p]);
    expect(r.stdout).toBe("");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('"device" must be a string');
    expect(podLinkNames(p)).toEqual(["lo"]);
    expect(linkIn("", dev)?.address).toBe("02:4d:00:00:00:07");
    expect(readdirSync(join(ipamDir, "baddel")).filter((f) => f.startsWith("10."))).toEqual([]);
  });

  test("refused ADDs leave no state: a missing device, no selector, a taken CNI_IFNAME, a failing IPAM", () => {
    const { dev } = pair("e", { mtu: 1450, mac: "02:4e:00:00:00:05", addr: "10.97.0.2/24", peerAddr: "10.97.0.1/24" });
    const p = ns.add("e");
    writeNet("missing", { device: `${prefix}zz` });
    let r = cnikit(["add", "missing", p]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).code).toBe(999);
    expect(JSON.parse(r.stdout).msg).toContain(`host-device: no interface named "${prefix}zz" in the host namespace`);
    writeNet("nohw", { hwaddr: "02:00:00:00:00:99" });
    r = cnikit(["add", "nohw", p]);
    expect(JSON.parse(r.stdout).msg).toContain("no interface with MAC address 02:00:00:00:00:99");
    writeNet("none", {});
    r = cnikit(["add", "none", p]);
    expect(JSON.parse(r.stdout).code).toBe(7);
    expect(JSON.parse(r.stdout).msg).toContain(`host-device: specify either "device", "hwaddr", "kernelpath" or "pciBusID"`);
    writeNet("kp", { kernelpath: "/foo" });
    expect(JSON.parse(cnikit(["add", "kp", p]).stdout).code).toBe(7);
    expect(podLinkNames(p)).toEqual(["lo"]);

    // the pod already has eth0: refused before anything moves
    inNs(p, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other"]);
    writeNet("taken", { device: dev });
    r = cnikit(["add", "taken", p]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).msg).toContain(`"eth0" already exists`);
    expect(linkIn("", dev)).not.toBeNull();
    inNs(p, ["ip", "link", "del", "eth0"]);

    // IPAM fails after the move: the device comes back, up again, with its name, MTU and MAC
    writeNet("badipam", { device: dev, ipam: { type: "no-such-ipam" } });
    r = cnikit(["add", "badipam", p]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).msg).toContain("no-such-ipam");
    expect(podLinkNames(p)).toEqual(["lo"]);
    const back = linkIn("", dev)!;
    expect([back.mtu, back.address, back.flags.includes("UP")]).toEqual([1450, "02:4e:00:00:00:05", true]);
    expect(back.ifalias ?? "").toBe("");
  });
});

describe("interoperability with the reference (the original name in the alias)", () => {
  test("cnikit's ADD undone by the reference's DEL, and the reference's ADD by cnikit's DEL", () => {
    const { dev } = pair("i", { mtu: 1360, mac: "02:4f:00:00:00:06", addr: "10.90.0.2/24", peerAddr: "10.90.0.1/24" });
    writeNet("mix", { device: dev }, "1.0.0");
    const p = ns.add("i");
    for (const [addPath, delPath] of [[bin, "/usr/lib/cni"], ["/usr/lib/cni", bin]]) {
      const r = cnikit(["add", "mix", p], { CNI_PATH: addPath! });
      expect(r.code).toBe(0);
      expect(linkIn(p, "eth0")!.ifalias).toBe(dev);
      const d = cnikit(["del", "mix", p], { CNI_PATH: delPath! });
      expect(d.stdout).toBe("");
      expect(d.code).toBe(0);
      const back = linkIn("", dev)!;
      expect([back.mtu, back.address]).toEqual([1360, "02:4f:00:00:00:06"]);
      expect(podLinkNames(p)).toEqual(["lo"]);
    }
  });
});

/** Links, addresses and routes of a namespace, for comparing the two implementations. */
function snapshot(netns: string) {
  const links = (JSON.parse(inNs(netns, ["ip", "-j", "-d", "addr", "show"])) as IpLink[])
    .filter((l) => l.ifname !== "lo")
    .map((l) => ({ name: l.ifname, mtu: l.mtu, mac: l.address, up: l.flags.includes("UP"), alias: l.ifalias ?? "", addrs: globalAddrs(l) }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const routes = (JSON.parse(inNs(netns, ["ip", "-j", "-4", "route", "show"])) as Array<Record<string, unknown>>)
    .map((r) => `${r.dst} ${r.gateway ?? ""} ${r.dev} ${r.scope ?? ""}`)
    .sort();
  return { links, routes };
}

describe("the same conflist through the reference and through cnikit", () => {
  for (const [what, extra] of [
    ["without IPAM", {}],
    ["with static IPAM", { ipam: { type: "static", addresses: [{ address: "10.98.0.2/24", gateway: "10.98.0.1" }], routes: [{ dst: "10.99.0.0/16", gw: "10.98.0.1" }] } }],
  ] as const) {
    test(`leaves the same state and equivalent results, ${what}`, () => {
      const out: Record<string, { add: unknown; result: Record<string, unknown>; del: unknown }> = {};
      for (const [side, pluginPath] of [["reference", "/usr/lib/cni"], ["cnikit", bin]] as const) {
        // each side in a "host" namespace of its own, so names and the conflist are identical
        const dir = join(tmp.path, `same-${side}-${what.length}.d`);
        mkdirSync(dir, { recursive: true });
        const tag = `${side[0]}${what.length % 10}`;
        const host = ns.add(`H${tag}`);
        const pod = ns.add(`P${tag}`);
        const hostName = `${prefix}H${tag}`;
        must(["ip", "-n", hostName, "link", "set", "lo", "up"]);
        const { dev } = pair("s", { mtu: 1420, mac: "02:5a:00:00:00:07", addr: "10.98.0.2/24", peerAddr: "10.98.0.1/24" }, hostName);
        writeFileSync(join(dir, "same.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "same", plugins: [{ type: "host-device", device: dev, ...extra }] }));
        const e = { ...process.env, NETCONFPATH: dir, CNI_PATH: pluginPath, CNI_CACHE_DIR: join(tmp.path, `cache-${side}-${what.length}`) };
        const r = run(["nsenter", `--net=${host}`, CNIKIT, "add", "same", pod], { env: e });
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const add = { host: snapshot(host), pod: snapshot(pod) };
        const c = run(["nsenter", `--net=${host}`, CNIKIT, "check", "same", pod], { env: e });
        expect(`${side} ${c.stdout}`).toBe(`${side} `);
        const d = run(["nsenter", `--net=${host}`, CNIKIT, "del", "same", pod], { env: e });
        expect(d.code).toBe(0);
        out[side] = { add, result: JSON.parse(r.stdout), del: { host: snapshot(host), pod: snapshot(pod) } };
      }
      expect(out.cnikit!.add).toEqual(out.reference!.add as never);
      expect(out.cnikit!.del).toEqual(out.reference!.del as never);
      // the pod paths differ between the sides; everything else is the same
      const shape = (r: Record<string, unknown>) => ({
        cniVersion: r.cniVersion,
        interfaces: (r.interfaces as Array<Record<string, unknown>>).map((i) => ({ ...i, sandbox: String(i.sandbox).startsWith("/run/netns/") })),
        ips: r.ips,
        routes: r.routes,
      });
      expect(shape(out.cnikit!.result)).toEqual(shape(out.reference!.result));
    });
  }
});

describe("selection by kernelpath and PCI address (over a fake sysfs)", () => {
  const fake = (tree: Record<string, string[]>, links: Record<string, string> = {}): SysfsView => ({
    list: (dir) => tree[dir]?.slice().sort() ?? null,
    resolve: (path) => links[path] ?? null,
  });
  const link = (name: string, mac = "02:00:00:00:00:01"): Link => ({ index: 1, name, mtu: 1500, flags: 0, up: false, promisc: false, allmulti: false, mac, raw: {} });
  const host = [link("lo", "00:00:00:00:00:00"), link("eno1"), link("eno2", "02:00:00:00:00:02")];

  test("kernelpath: the first interface in its net/ folder that exists here", () => {
    const sys = fake({ "/sys/devices/pci0000:00/0000:00:19.0/net": ["zz9", "eno2"] });
    const conf = parseHostDeviceConf(cmdArgs({ type: "host-device", kernelpath: "/sys/devices/pci0000:00/0000:00:19.0" }), sys);
    expect(sysfsNetNames(conf, sys)).toEqual(["eno2", "zz9"]);
    expect(selectDevice(conf, host, sys).name).toBe("eno2");
    const none = parseHostDeviceConf(cmdArgs({ type: "host-device", kernelpath: "/sys/devices/x" }), sys);
    expect(() => selectDevice(none, host, sys)).toThrow("failed to find network devices at /sys/devices/x/net");
    expect(() => parseHostDeviceConf(cmdArgs({ type: "host-device", kernelpath: "/dev/x" }), sys)).toThrow("must be absolute and begin with /sys/devices/");
  });

  test("pciBusID and runtimeConfig.deviceID: net/ or virtio*/net, and DPDK drivers", () => {
    const sys = fake(
      {
        "/sys/bus/pci/devices/0000:00:03.0/net": ["eno1"],
        "/sys/bus/pci/devices/0000:00:04.0": ["driver", "virtio1"],
        "/sys/bus/pci/devices/0000:00:04.0/virtio1/net": ["eno2"],
      },
      {
        "/sys/bus/pci/devices/0000:00:03.0/driver": "/sys/bus/pci/drivers/e1000e",
        "/sys/bus/pci/devices/0000:00:04.0/driver": "/sys/bus/pci/drivers/virtio-pci",
        "/sys/bus/pci/devices/0000:00:05.0/driver": "/sys/bus/pci/drivers/vfio-pci",
      },
    );
    const a = parseHostDeviceConf(cmdArgs({ type: "host-device", pciBusID: "0000:00:03.0" }), sys);
    expect(a.dpdkMode).toBe(false);
    expect(selectDevice(a, host, sys).name).toBe("eno1");
    const b = parseHostDeviceConf(cmdArgs({ type: "host-device", runtimeConfig: { deviceID: "0000:00:04.0" } }), sys);
    expect(b.pciBusID).toBe("0000:00:04.0");
    expect(selectDevice(b, host, sys).name).toBe("eno2");
    expect(parseHostDeviceConf(cmdArgs({ type: "host-device", pciBusID: "0000:00:05.0" }), sys).dpdkMode).toBe(true);
    expect(() => parseHostDeviceConf(cmdArgs({ type: "host-device", pciBusID: "0000:00:06.0" }), sys)).toThrow("not found or bound to no driver");
    expect(parseHostDeviceConf(cmdArgs({ type: "host-device", pciBusID: "0000:00:06.0" }, { command: "DEL" }), sys).dpdkMode).toBe(false);
    expect(() => parseHostDeviceConf(cmdArgs({ type: "host-device", pciBusID: "eth0" }), sys)).toThrow("is not a PCI address");
  });

  test("device wins over hwaddr; hwaddr accepts upper case and dashes", () => {
    const c = parseHostDeviceConf(cmdArgs({ type: "host-device", device: "eno1", hwaddr: "02-00-00-00-00-02" }));
    expect(c.hwaddr).toBe("02:00:00:00:00:02");
    expect(selectDevice(c, host).name).toBe("eno1");
    delete c.device;
    expect(selectDevice(c, host).name).toBe("eno2");
  });
});
