/**
 * How `cnikit agent` reaches etcd: TLS with a client certificate (refused without one), username
 * and password (refused with a wrong one), and waiting with backoff for a network config that is
 * not there yet. A real etcd on loopback of this test's private namespace; the agent's underlay is a
 * veth pair made here.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import type { Etcd3 } from "etcd3";
import { connectEtcd, type EtcdOptions } from "../../../src/agent/store.ts";
import { CNIKIT, etcdReady } from "../../support/cluster.ts";
import { assertPrivateNetns, must, run, runPrefix, tempDir } from "../../support/netns.ts";

assertPrivateNetns();

const prefix = runPrefix("ea");
const tmp = tempDir("etcd-access");
const up = `${prefix}u`;
const procs: ReturnType<typeof Bun.spawn>[] = [];
let finished = false; // a test body that timed out keeps running: it must not start processes after afterAll
const clients: Etcd3[] = [];
const f = (n: string) => join(tmp.path, n);
const CONFIG = JSON.stringify({ Network: "10.71.0.0/16", Backend: { Type: "host-gw" } });

function etcd(name: string, port: number, extra: string[], scheme = "http"): ReturnType<typeof Bun.spawn> {
  if (finished) throw new Error("test already finished");
  const url = `${scheme}://127.0.0.1:${port}`;
  const peer = `http://127.0.0.1:${port + 1}`;
  const p = Bun.spawn(["etcd", "--name", name, "--data-dir", f(`${name}.etcd`), "--listen-client-urls", url, "--advertise-client-urls", url,
    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", `${name}=${peer}`, "--log-level", "error", ...extra],
  { stdout: "ignore", stderr: Bun.file(f(`${name}.log`)) });
  procs.push(p);
  return p;
}

async function client(opts: EtcdOptions): Promise<Etcd3> {
  const c = await connectEtcd({ timeoutMs: 3000, ...opts });
  clients.push(c);
  return c;
}

/** Start an agent with `flags`; returns a handle to wait for subnet.env and stop it by PID. */
function agent(tag: string, flags: string[]) {
  if (finished) throw new Error("test already finished");
  const subnetFile = f(`${tag}.env`);
  const log = f(`${tag}.log`);
  const p = Bun.spawn([CNIKIT, "agent", "--iface", up, "--subnet-file", subnetFile, "--device-prefix", prefix, "--etcd-prefix", "/ea/network", "--cni-socket", f(`${tag}.sock`), ...flags],
    { stdout: "ignore", stderr: Bun.file(log) });
  procs.push(p);
  return {
    subnetFile,
    log: () => (existsSync(log) ? readFileSync(log, "utf8") : ""),
    async waitSubnet(ms: number): Promise<boolean> {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (existsSync(subnetFile)) return true;
        await Bun.sleep(50);
      }
      return false;
    },
    async stop() {
      p.kill("SIGTERM");
      await p.exited;
    },
  };
}

/** Run cluster-ipam ADD as its own process against an etcd reached with `ipamKeys`. */
function clusterIpamAdd(id: string, ipamKeys: Record<string, unknown>) {
  const conf = { cniVersion: "1.1.0", name: "pool", type: "cluster-ipam", ipam: { type: "cluster-ipam", subnet: "10.140.0.0/16", dataDir: f(`ipam-${id}`), ...ipamKeys } };
  const r = run([f("cluster-ipam")], { env: { ...process.env, CNI_COMMAND: "ADD", CNI_CONTAINERID: id, CNI_NETNS: "/proc/self/ns/net", CNI_IFNAME: "eth0", CNI_PATH: "/nonexistent", CNIKIT_NODE_NAME: "n1" }, stdin: JSON.stringify(conf) });
  return { code: r.code, json: r.stdout ? JSON.parse(r.stdout) : undefined };
}

beforeAll(() => {
  must(["ip", "link", "set", "lo", "up"]);
  symlinkSync(CNIKIT, f("cluster-ipam")); // the multicall binary runs the plugin its name says
  must(["ip", "link", "add", up, "type", "veth", "peer", "name", `${prefix}p`]);
  must(["ip", "addr", "add", "192.168.91.1/24", "dev", up]);
  must(["ip", "link", "set", up, "up"]);
  must(["ip", "link", "set", `${prefix}p`, "up"]);
});
afterAll(async () => {
  finished = true;
  for (const c of clients) c.close();
  for (const p of procs) p.kill("SIGKILL");
  await Promise.all(procs.map((p) => p.exited));
  run(["ip", "link", "del", up]);
  tmp.remove();
});

describe("etcd access", () => {
  test("TLS with a client certificate; without one the agent is refused and keeps retrying", async () => {
    const ssl = (args: string[]) => must(["openssl", ...args]);
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    ssl(["req", "-x509", ...ec, "-keyout", f("ca.key"), "-out", f("ca.crt"), "-days", "1", "-subj", "/CN=cnikit-test-ca"]);
    for (const [name, ext] of [["server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"], ["client", "extendedKeyUsage=clientAuth"]] as const) {
      Bun.write(f(`${name}.ext`), `${ext}\n`);
      ssl(["req", ...ec, "-keyout", f(`${name}.key`), "-out", f(`${name}.csr`), "-subj", `/CN=${name}`]);
      ssl(["x509", "-req", "-in", f(`${name}.csr`), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f(`${name}.crt`), "-days", "1", "-extfile", f(`${name}.ext`)]);
    }
    etcd("tls", 24010, ["--cert-file", f("server.crt"), "--key-file", f("server.key"), "--client-cert-auth", "--trusted-ca-file", f("ca.crt")], "https");
    const admin = await client({ endpoints: ["https://127.0.0.1:24010"], caFile: f("ca.crt"), certFile: f("client.crt"), keyFile: f("client.key") });
    await etcdReady(admin);
    await admin.put("/ea/network/config").value(CONFIG);

    const noCert = agent("nocert", ["--etcd-endpoints", "https://127.0.0.1:24010", "--etcd-cafile", f("ca.crt")]);
    expect(await noCert.waitSubnet(3000)).toBe(false);
    expect(noCert.log()).toContain("retrying");
    await noCert.stop();

    const a = agent("tls", ["--etcd-endpoints", "https://127.0.0.1:24010", "--etcd-cafile", f("ca.crt"), "--etcd-certfile", f("client.crt"), "--etcd-keyfile", f("client.key")]);
    expect(await a.waitSubnet(10_000)).toBe(true);
    expect(readFileSync(a.subnetFile, "utf8")).toMatch(/^FLANNEL_NETWORK=10\.71\.0\.0\/16\nFLANNEL_SUBNET=10\.71\.\d+\.1\/24\n/);
    const leases = await admin.getAll().prefix("/ea/network/subnets/").strings();
    expect(Object.values(leases).map((v) => JSON.parse(v).PublicIP)).toEqual(["192.168.91.1"]);
    await a.stop();

    // cluster-ipam (etcd's JSON gateway over fetch) with the same certificates, and without them
    const tls = { etcdEndpoints: ["https://127.0.0.1:24010"], etcdCAFile: f("ca.crt") };
    const ok = clusterIpamAdd("tls1", { ...tls, etcdCertFile: f("client.crt"), etcdKeyFile: f("client.key") });
    expect(ok.code).toBe(0);
    expect(ok.json.ips[0].address).toMatch(/^10\.140\./);
    const refused = clusterIpamAdd("tls2", tls);
    expect(refused.code).toBe(1);
    expect(refused.json.code).toBe(11);
  }, 30_000);

  test("username and password; a wrong password is refused", async () => {
    etcd("auth", 24020, []);
    const admin = await client({ endpoints: ["http://127.0.0.1:24020"] });
    await etcdReady(admin);
    await admin.put("/ea/network/config").value(CONFIG);
    await admin.role("root").create();
    await admin.user("root").create("rootpw");
    await admin.user("root").addRole("root");
    await admin.role("agent").create();
    await admin.role("agent").grant({ permission: "Readwrite", range: admin.range({ prefix: "/ea/network/" }) });
    await admin.user("agent").create("s3cret");
    await admin.user("agent").addRole("agent");
    await admin.role("ipam").create();
    await admin.role("ipam").grant({ permission: "Readwrite", range: admin.range({ prefix: "/ea/ipam/" }) });
    await admin.user("ipam").create("ipam-pw");
    await admin.user("ipam").addRole("ipam");
    await admin.auth.authEnable({});

    const wrong = agent("wrongpw", ["--etcd-endpoints", "http://127.0.0.1:24020", "--etcd-username", "agent", "--etcd-password", "nope"]);
    expect(await wrong.waitSubnet(3000)).toBe(false);
    expect(wrong.log()).toContain("retrying");
    await wrong.stop();

    const a = agent("userpw", ["--etcd-endpoints", "http://127.0.0.1:24020", "--etcd-username", "agent", "--etcd-password", "s3cret"]);
    expect(await a.waitSubnet(10_000)).toBe(true);
    await a.stop();

    // cluster-ipam with a user allowed under its prefix, and with a wrong password
    const keys = { etcdEndpoints: ["http://127.0.0.1:24020"], etcdPrefix: "/ea/ipam", etcdUsername: "ipam" };
    const ok = clusterIpamAdd("pw1", { ...keys, etcdPassword: "ipam-pw" });
    expect(ok.code).toBe(0);
    const wrongIpam = clusterIpamAdd("pw2", { ...keys, etcdPassword: "nope" });
    expect(wrongIpam.code).toBe(1);
    expect(wrongIpam.json.msg).toContain("authentication failed");
  }, 30_000);

  test("no network config yet: the agent waits with backoff and starts once one is written", async () => {
    etcd("late", 24030, []);
    const admin = await client({ endpoints: ["http://127.0.0.1:24030"] });
    await etcdReady(admin);
    // --iface given as an address of the interface, as flannel allows (it comes after agent()'s own)
    const a = agent("late", ["--etcd-endpoints", "http://127.0.0.1:24030", "--iface", "192.168.91.1"]);
    expect(await a.waitSubnet(1500)).toBe(false);
    expect(a.log()).toContain("no network config at /ea/network/config");
    await admin.put("/ea/network/config").value(CONFIG);
    expect(await a.waitSubnet(10_000)).toBe(true);
    const lease = Object.values(await admin.getAll().prefix("/ea/network/subnets/").strings());
    expect(lease.map((v) => JSON.parse(v).PublicIP)).toEqual(["192.168.91.1"]);
    await a.stop();
  }, 30_000);

  test("bad flags are refused with a clear error", () => {
    const r = run([CNIKIT, "agent", "--etcd-endpoint", "http://127.0.0.1:1"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).msg).toContain("unknown argument --etcd-endpoint");
    const h = run([CNIKIT, "agent", "--lease-ttl", "3"]);
    expect(JSON.parse(h.stdout).msg).toContain("--lease-ttl");
    // an --iface address no interface has (etcd and the config from the test before are there)
    const noIf = run([CNIKIT, "agent", "--etcd-endpoints", "http://127.0.0.1:24030", "--etcd-prefix", "/ea/network", "--iface", "10.9.9.9", "--subnet-file", f("noif.env"), "--cni-socket", f("noif.sock")]);
    expect(noIf.code).toBe(1);
    expect(JSON.parse(noIf.stdout)).toMatchObject({ code: 7, msg: "agent: no interface has the address 10.9.9.9 (--iface)" });
  });
});
