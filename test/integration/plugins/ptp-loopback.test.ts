/**
 * cnikit's ptp (+ host-local) and loopback against the real kernel, in a private network namespace:
 * pods reach the host and the host reaches them over IPv4 and IPv6, pods reach each other through
 * the host, CHECK, idempotent DEL (also with the namespace gone), loopback up/down, and the same
 * conflist through the reference plugins (/usr/lib/cni) and through cnikit leaving the same state.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertPrivateNetns, must, Namespaces, ping, run, runPrefix, tempDir } from "../../support/netns.ts";

assertPrivateNetns();

const ROOT = resolve(import.meta.dir, "../../..");
const CNIKIT = join(ROOT, "dist/cnikit");
const REF = "/usr/lib/cni";
const prefix = runPrefix("pt");
const ns = new Namespaces(prefix);
const tmp = tempDir("ptp");
const bin = join(tmp.path, "bin");
const confDir = join(tmp.path, "net.d");
const cacheDir = join(tmp.path, "cache");
const ipamDir = join(tmp.path, "ipam");

const NET = "ptpnet";
const MTU = 1400;
const ptpList = {
  cniVersion: "1.0.0",
  name: NET,
  plugins: [
    {
      type: "ptp",
      mtu: MTU,
      ipMasq: false,
      dns: { nameservers: ["10.86.0.53"], search: ["pods.test"] },
      ipam: {
        type: "host-local",
        ranges: [[{ subnet: "10.86.0.0/24" }], [{ subnet: "fd86::/64" }]],
        routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }, { dst: "192.168.86.0/24", gw: "10.86.0.1" }],
        dataDir: ipamDir,
      },
    },
  ],
};
const loList = { cniVersion: "1.0.0", name: "lonet", plugins: [{ type: "loopback" }] };

interface Iface {
  name: string;
  mac?: string;
  sandbox?: string;
}
interface IPC {
  interface?: number;
  address: string;
  gateway?: string;
}
interface Res {
  cniVersion: string;
  interfaces: Iface[];
  ips: IPC[];
  routes?: Array<{ dst: string; gw?: string }>;
  dns?: Record<string, unknown>;
}

const env = (extra: Record<string, string> = {}) => ({ ...process.env, NETCONFPATH: confDir, CNI_PATH: bin, CNI_CACHE_DIR: cacheDir, ...extra });
const cnikit = (args: string[], extra: Record<string, string> = {}) => run([CNIKIT, ...args], { env: env(extra) });
function addPod(net: string, netns: string, extra: Record<string, string> = {}): Res {
  const r = cnikit(["add", net, netns], extra);
  if (r.code !== 0) throw new Error(`add ${net} ${netns}: ${r.stdout} ${r.stderr}`);
  return JSON.parse(r.stdout) as Res;
}
/** Run a plugin binary directly, as a runtime would. */
function plugin(path: string, command: string, netns: string, config: unknown, extra: Record<string, string> = {}) {
  return run([path], {
    env: { ...process.env, CNI_COMMAND: command, CNI_CONTAINERID: "ctr-direct", CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: bin, ...extra },
    stdin: JSON.stringify(config),
  });
}
const inNs = (netns: string, cmd: string[]) => must(["nsenter", `--net=${netns}`, ...cmd]);
/** `ip -j` output, loosely typed. */
type J = any;
const ipJ = (netns: string | null, ...args: string[]): J[] => {
  const out = netns ? inNs(netns, ["ip", "-j", ...args]) : must(["ip", "-j", ...args]);
  return out.trim() ? (JSON.parse(out) as J[]) : [];
};
const veths = () => ipJ(null, "link", "show", "type", "veth");

/** Veths left once DELs have had their second: through the daemon they go in batches (src/net/removal.ts). */
function vethsAfterDel(): unknown[] {
  const end = Date.now() + 1000;
  let v = veths();
  while (v.length > 0 && Date.now() < end) {
    Bun.sleepSync(10);
    v = veths();
  }
  return v;
}
const reservations = () => {
  try {
    return readdirSync(join(ipamDir, NET)).filter((f) => f !== "lock" && !f.startsWith("last_reserved_ip"));
  } catch {
    return [];
  }
};
const ipOf = (r: Res, v6: boolean) => r.ips.find((i) => i.address.includes(":") === v6)!.address.split("/")[0]!;
/** True when `ip` does not answer from inside `netns` within a second. */
const noAnswer = (netns: string, ip: string) => run(["nsenter", `--net=${netns}`, "ping", "-c", "1", "-W", "1", ip]).code !== 0;
const sysctl = (key: string) => must(["cat", `/proc/sys/${key.replaceAll(".", "/")}`]).trim();

async function until(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

/** Pods still attached, so afterAll can DEL them whatever failed. */
const attached = new Map<string, { netns: string; cniPath: string; net: string }>();

beforeAll(() => {
  if (!existsSync(CNIKIT)) throw new Error("dist/cnikit is missing: run `npm run build`");
  must(["ip", "link", "set", "lo", "up"]);
  mkdirSync(confDir, { recursive: true });
  writeFileSync(join(confDir, `10-${NET}.conflist`), JSON.stringify(ptpList));
  writeFileSync(join(confDir, "20-lonet.conflist"), JSON.stringify(loList));
  must([CNIKIT, "install", "--bin-dir", bin]);
});

afterAll(() => {
  for (const p of attached.values()) cnikit(["del", p.net, p.netns], { CNI_PATH: p.cniPath });
  ns.cleanup();
  tmp.remove();
});

describe("ptp + host-local", () => {
  const pods: Record<string, { netns: string; res: Res }> = {};

  test("ADD two pods: the result lists the host veth and the pod end, addresses on interface 1", () => {
    for (const name of ["a", "b"]) {
      const netns = ns.add(name);
      attached.set(name, { netns, cniPath: bin, net: NET });
      const res = addPod(NET, netns);
      pods[name] = { netns, res };
      expect(res.cniVersion).toBe("1.0.0");
      expect(res.interfaces.length).toBe(2);
      expect(res.interfaces[0]!.name).toMatch(/^veth[0-9a-f]{8}$/);
      expect(res.interfaces[0]!.sandbox).toBeUndefined();
      expect(res.interfaces[1]).toMatchObject({ name: "eth0", sandbox: netns });
      expect(res.ips.map((i) => i.interface)).toEqual([1, 1]);
      expect(res.ips.map((i) => i.gateway)).toEqual(["10.86.0.1", "fd86::1"]);
      expect(res.routes).toEqual(ptpList.plugins[0]!.ipam.routes);
      expect(res.dns).toEqual(ptpList.plugins[0]!.dns);
    }
    expect(ipOf(pods.a!.res, false)).not.toBe(ipOf(pods.b!.res, false));
  });

  test("the pod end is a veth with the MTU; the host end carries the gateways and routes to the pod", () => {
    const { netns, res } = pods.a!;
    const [pod] = ipJ(netns, "-d", "link", "show", "eth0");
    expect(pod.linkinfo.info_kind).toBe("veth");
    expect(pod.mtu).toBe(MTU);
    expect(pod.address).toBe(res.interfaces[1]!.mac);
    const hostName = res.interfaces[0]!.name;
    const [host] = ipJ(null, "-d", "link", "show", hostName);
    expect(host.linkinfo.info_kind).toBe("veth");
    expect(host.mtu).toBe(MTU);
    expect(host.flags).toContain("UP");
    expect(host.address).toBe(res.interfaces[0]!.mac);
    const hostAddrs = ipJ(null, "addr", "show", "dev", hostName)[0].addr_info
      .filter((a: J) => a.scope !== "link")
      .map((a: J) => `${a.local}/${a.prefixlen}`);
    expect(hostAddrs.sort()).toEqual(["10.86.0.1/32", "fd86::1/128"]);
    const r4 = ipJ(null, "route", "show", `${ipOf(res, false)}/32`);
    expect(r4).toMatchObject([{ dev: hostName, scope: "host" }]);
    const r6 = ipJ(null, "-6", "route", "show", `${ipOf(res, true)}/128`);
    expect(r6).toMatchObject([{ dev: hostName }]);
    // inside: a link route to the gateway, the subnet via the gateway, the IPAM routes
    const routes = inNs(netns, ["ip", "route", "show"]);
    expect(routes).toContain(`10.86.0.1 dev eth0 scope link src ${ipOf(res, false)}`);
    expect(routes).toContain(`10.86.0.0/24 via 10.86.0.1 dev eth0 src ${ipOf(res, false)}`);
    expect(routes).toContain("default via 10.86.0.1 dev eth0");
    expect(routes).toContain("192.168.86.0/24 via 10.86.0.1 dev eth0");
    expect(routes).not.toContain("proto kernel");
    const routes6 = inNs(netns, ["ip", "-6", "route", "show"]);
    expect(routes6).toContain(`fd86::/64 via fd86::1 dev eth0 src ${ipOf(res, true)}`);
    expect(routes6).toContain("default via fd86::1 dev eth0");
    expect(sysctl("net.ipv4.ip_forward")).toBe("1");
    expect(sysctl("net.ipv6.conf.all.forwarding")).toBe("1");
  });

  test("each pod reaches the host (its gateway) and the host reaches it, IPv4 and IPv6", () => {
    for (const { netns, res } of Object.values(pods)) {
      expect(ping(netns, "10.86.0.1")).toBe(true);
      expect(ping(netns, "fd86::1")).toBe(true);
      expect(ping("", ipOf(res, false))).toBe(true);
      expect(ping("", ipOf(res, true))).toBe(true);
    }
  });

  test("pods reach each other routed through the host (ip_forward), IPv4 and IPv6", () => {
    const { a, b } = pods as Record<"a" | "b", { netns: string; res: Res }>;
    for (const [from, to] of [[a, b], [b, a]] as const) {
      for (const v6 of [false, true]) {
        const r = run(["nsenter", `--net=${from.netns}`, "ping", "-c", "1", "-W", "2", ipOf(to.res, v6)]);
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/ttl=63/); // one hop: the host forwarded it
      }
    }
  });

  test("CHECK passes after ADD and fails once the pod's address is removed by hand", () => {
    const { netns, res } = pods.b!;
    const ok = cnikit(["check", NET, netns]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    must(["ip", "-n", netns.split("/").pop()!, "addr", "del", pods.b!.res.ips[0]!.address, "dev", "eth0"]);
    const bad = cnikit(["check", NET, netns]);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toContain(res.ips[0]!.address);
  });

  test("DEL twice and DEL with the namespace gone succeed and leave no veth, route or reservation", async () => {
    expect(reservations().length).toBe(4);
    for (let i = 0; i < 2; i++) {
      const r = cnikit(["del", NET, pods.a!.netns]);
      expect(r.stdout).toBe("");
      expect(r.code).toBe(0);
    }
    attached.delete("a");
    // b: the runtime removed the namespace first
    must(["ip", "netns", "del", pods.b!.netns.split("/").pop()!]);
    for (let i = 0; i < 2; i++) expect(cnikit(["del", NET, pods.b!.netns]).code).toBe(0);
    attached.delete("b");
    // the kernel tears a removed namespace down asynchronously
    await until("the veths to go", () => veths().length === 0);
    expect(reservations()).toEqual([]);
    expect(must(["ip", "route", "show"])).not.toContain("10.86.");
    expect(must(["ip", "-6", "route", "show"])).not.toContain("fd86::");
    expect(readdirSync(join(cacheDir, "results")).filter((f) => f.startsWith(NET))).toEqual([]);
  });

  test("an ipMasq that is not a boolean is refused with code 2; a gateway-less IPAM result is an error that leaves nothing", () => {
    const netns = ns.add("e");
    const conf = { ...ptpList.plugins[0]!, cniVersion: "1.0.0", name: "errnet", ipMasq: "yes" };
    const r = plugin(join(bin, "ptp"), "ADD", netns, conf);
    expect(r.code).not.toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 2 });
    expect(JSON.parse(r.stdout).msg).toContain('"ipMasq" must be true or false');
    const noGw = {
      cniVersion: "1.0.0",
      name: "errnet",
      type: "ptp",
      ipam: { type: "static", addresses: [{ address: "10.86.9.5/24" }] },
    };
    const r2 = plugin(join(bin, "ptp"), "ADD", netns, noGw);
    expect(r2.code).not.toBe(0);
    expect(JSON.parse(r2.stdout).msg).toContain("gateway");
    expect(vethsAfterDel()).toEqual([]);
    expect(ipJ(netns, "link", "show").map((l: J) => l.ifname)).toEqual(["lo"]);
  });
});

describe("ptp DEL with keys that no longer decode", () => {
  test("after a good ADD (no cached result: the addresses are read from the pod), it removes the veth, the host routes, the reservation and the masquerading", () => {
    const netns = ns.add("k");
    const net = "ptpbad";
    const good = { ...ptpList.plugins[0]!, cniVersion: "1.0.0", name: net, ipMasq: true, ipam: { ...ptpList.plugins[0]!.ipam, ranges: [[{ subnet: "10.87.0.0/24" }]], routes: [] } };
    const r = plugin(join(bin, "ptp"), "ADD", netns, good);
    expect(r.code).toBe(0);
    const ip = (JSON.parse(r.stdout) as Res).ips[0]!.address.split("/")[0]!;
    const masq = () => run(["nft", "-j", "list", "set", "inet", "cnikit_masq", "masq4"]).stdout;
    expect(masq()).toContain(ip);
    const bad = { ...good, ipMasq: "yes", mtu: "abc", ipMasqBackend: 5, dns: { nameservers: "10.0.0.1" } };
    expect(plugin(join(bin, "ptp"), "ADD", ns.add("k2"), bad).code).not.toBe(0); // ADD refuses it
    const d = plugin(join(bin, "ptp"), "DEL", netns, bad);
    expect(d.stdout).toBe("");
    expect(d.code).toBe(0);
    expect(d.stderr).toContain('"mtu" must be an integer');
    expect(vethsAfterDel()).toEqual([]);
    expect(ipJ(netns, "link", "show").map((l: J) => l.ifname)).toEqual(["lo"]);
    expect(must(["ip", "route", "show"])).not.toContain("10.87.");
    expect(readdirSync(join(ipamDir, net)).filter((f) => f !== "lock" && !f.startsWith("last_reserved_ip"))).toEqual([]);
    expect(masq()).not.toContain(ip);
  });
});

describe("loopback", () => {
  test("ADD brings lo up in a fresh namespace (127.0.0.1 answers); CHECK; DEL sets it down", () => {
    const netns = ns.add("lo");
    const name = netns.split("/").pop()!;
    must(["ip", "-n", name, "link", "set", "lo", "down"]); // as a new namespace has it
    expect(noAnswer(netns, "127.0.0.1")).toBe(true);
    attached.set("lo", { netns, cniPath: bin, net: "lonet" });
    const res = addPod("lonet", netns);
    expect(res.interfaces).toEqual([{ name: "lo", mac: "00:00:00:00:00:00", sandbox: netns }]);
    expect(res.ips[0]).toEqual({ interface: 0, address: "127.0.0.1/8" });
    expect(res.ips.map((i) => i.address)).toContain("::1/128");
    expect(ipJ(netns, "link", "show", "lo")[0].flags).toContain("UP");
    expect(ping(netns, "127.0.0.1")).toBe(true);
    expect(ping(netns, "::1")).toBe(true);
    expect(cnikit(["check", "lonet", netns]).code).toBe(0);

    expect(cnikit(["del", "lonet", netns]).code).toBe(0);
    expect(ipJ(netns, "link", "show", "lo")[0].flags).not.toContain("UP");
    expect(noAnswer(netns, "127.0.0.1")).toBe(true);
    // CHECK of a lo that is down fails (run directly: the cached result is gone after DEL)
    const chk = plugin(join(bin, "loopback"), "CHECK", netns, { cniVersion: "1.0.0", name: "lonet", type: "loopback", prevResult: res });
    expect(chk.code).not.toBe(0);
    expect(chk.stdout).toContain("down");
    // DEL again, with no namespace, and with the namespace gone
    expect(cnikit(["del", "lonet", netns]).code).toBe(0);
    expect(plugin(join(bin, "loopback"), "DEL", "", { cniVersion: "1.0.0", name: "lonet", type: "loopback" }).code).toBe(0);
    must(["ip", "netns", "del", name]);
    expect(cnikit(["del", "lonet", netns]).code).toBe(0);
    attached.delete("lo");
  }, 20_000);

  test("gives the reference's result; chained after another plugin it passes prevResult through", () => {
    const conf = { cniVersion: "1.0.0", name: "lonet", type: "loopback" };
    const mine = ns.add("lom");
    const theirs = ns.add("lor");
    const a = plugin(join(bin, "loopback"), "ADD", mine, conf, { CNI_IFNAME: "lo" });
    const b = plugin(join(REF, "loopback"), "ADD", theirs, conf, { CNI_IFNAME: "lo", CNI_PATH: REF });
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    const norm = (s: string, netns: string) => {
      const r = JSON.parse(s) as Res;
      expect(r.interfaces[0]!.sandbox).toBe(netns);
      r.interfaces[0]!.sandbox = "NETNS";
      if (r.dns && Object.keys(r.dns).length === 0) delete r.dns; // Go prints an empty dns object
      return r;
    };
    expect(norm(a.stdout, mine)).toEqual(norm(b.stdout, theirs));

    const prevResult = {
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", mac: "0a:58:0a:56:00:07", sandbox: mine }],
      ips: [{ interface: 0, address: "10.86.0.7/24", gateway: "10.86.0.1" }],
      routes: [{ dst: "0.0.0.0/0" }],
    };
    const c = plugin(join(bin, "loopback"), "ADD", mine, { ...conf, prevResult }, { CNI_IFNAME: "lo" });
    expect(c.code).toBe(0);
    expect(JSON.parse(c.stdout)).toEqual(prevResult);
  });
});

describe("side by side with the reference ptp", () => {
  const sides = {} as Record<"ref" | "mine", { netns: string; res: Res; forwarding: string[] }>;

  test("the same conflist through /usr/lib/cni/ptp and through cnikit's ptp", () => {
    for (const [side, cniPath] of [["ref", REF], ["mine", bin]] as const) {
      // forwarding off first, so each plugin has to turn it on itself
      must(["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward; echo 0 > /proc/sys/net/ipv6/conf/all/forwarding"]);
      const netns = ns.add(side);
      attached.set(side, { netns, cniPath, net: NET });
      const res = addPod(NET, netns, { CNI_PATH: cniPath });
      sides[side] = { netns, res, forwarding: [sysctl("net.ipv4.ip_forward"), sysctl("net.ipv6.conf.all.forwarding")] };
    }
    expect(sides.ref.forwarding).toEqual(["1", "1"]);
    expect(sides.mine.forwarding).toEqual(["1", "1"]);
  });

  /** Replace what differs only by allocation or chance (addresses, names, MACs) by placeholders. */
  function normalizer(res: Res, netns: string) {
    const map = new Map<string, string>([
      [ipOf(res, false), "POD4"],
      [ipOf(res, true), "POD6"],
      [res.interfaces[0]!.name, "HOSTVETH"],
      [netns, "NETNS"],
    ]);
    for (const i of res.interfaces) if (i.mac) map.set(i.mac, "MAC");
    const norm = (v: unknown): unknown => {
      if (typeof v === "string") {
        const slash = v.indexOf("/");
        if (slash > 0 && map.has(v.slice(0, slash))) return `${map.get(v.slice(0, slash))}${v.slice(slash)}`;
        return map.get(v) ?? v;
      }
      if (Array.isArray(v)) return v.map(norm);
      if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
      return v;
    };
    return norm;
  }

  function state(side: "ref" | "mine") {
    const { netns, res } = sides[side];
    const norm = normalizer(res, netns);
    const hostName = res.interfaces[0]!.name;
    const link = (l: J) => ({ kind: l.linkinfo?.info_kind, mtu: l.mtu, up: l.flags.includes("UP") });
    const addrs = (l: J) =>
      (l.addr_info as J[])
        .filter((a) => a.scope !== "link")
        .map((a) => norm({ family: a.family, local: a.local, prefixlen: a.prefixlen, scope: a.scope }))
        .sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
    const routes = (rs: J[]) =>
      rs
        .map((r) => norm({ dst: r.dst, gateway: r.gateway, dev: r.dev, scope: r.scope, prefsrc: r.prefsrc, metric: r.metric, protocol: r.protocol, flags: r.flags }))
        .map((r) => JSON.stringify(r))
        .sort();
    return {
      podLinks: ipJ(netns, "-d", "link", "show").map((l: J) => ({ name: l.ifname, ...link(l) })),
      podAddrs: addrs(ipJ(netns, "addr", "show", "dev", "eth0")[0]),
      podRoutes: routes([...ipJ(netns, "route", "show"), ...ipJ(netns, "-6", "route", "show")]),
      hostLink: link(ipJ(null, "-d", "link", "show", hostName)[0]),
      hostAddrs: addrs(ipJ(null, "addr", "show", "dev", hostName)[0]),
      hostRoutes: routes([...ipJ(null, "route", "show", "dev", hostName), ...ipJ(null, "-6", "route", "show", "dev", hostName)]),
      result: norm(res),
    };
  }

  test("equivalent state: link kinds, MTU, addresses, routes in the pod and on the host, results", () => {
    const ref = state("ref");
    const mine = state("mine");
    expect(mine.podLinks).toEqual(ref.podLinks);
    expect(mine.podAddrs).toEqual(ref.podAddrs);
    expect(mine.podRoutes).toEqual(ref.podRoutes);
    expect(mine.hostLink).toEqual(ref.hostLink);
    expect(mine.hostAddrs).toEqual(ref.hostAddrs);
    expect(mine.hostRoutes).toEqual(ref.hostRoutes);
    expect(mine.result).toEqual(ref.result);
    // and they are what ptp is about
    expect(mine.hostLink).toMatchObject({ kind: "veth", mtu: MTU, up: true });
    expect(mine.podAddrs.length).toBe(2);
    expect(mine.hostRoutes.length).toBeGreaterThanOrEqual(2);
  });

  test("each side's attachment passes CHECK and DEL by the other's plugin (drop-in both ways)", async () => {
    for (const [side, other] of [["ref", bin], ["mine", REF]] as const) {
      const { netns } = sides[side];
      const chk = cnikit(["check", NET, netns], { CNI_PATH: other });
      expect(chk.stdout + chk.stderr).toBe("");
      expect(chk.code).toBe(0);
    }
    for (const [side, other] of [["ref", bin], ["mine", REF]] as const) {
      const { netns } = sides[side];
      expect(cnikit(["del", NET, netns], { CNI_PATH: other }).code).toBe(0);
      attached.delete(side);
    }
    await until("the veths to go", () => veths().length === 0);
    expect(reservations()).toEqual([]);
  });
});
