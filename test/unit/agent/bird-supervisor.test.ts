/**
 * The BIRD supervisor against a real BIRD 2 (where bird2 is installed) with a configuration that
 * has no kernel or BGP protocol, so it changes nothing and listens nowhere: start, reload, refuse
 * a broken configuration (the running one stays), start again after BIRD dies, stop. And the
 * parsing of `birdc show protocols` into BGP sessions.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { BirdSupervisor, birdc, parseBirdProtocols, sessionsOf } from "../../../src/agent/bird.ts";
import { tempDir } from "../../support/netns.ts";

const hasBird = Bun.spawnSync(["sh", "-c", "command -v bird && command -v birdc"]).exitCode === 0;

const conf = (routes: string[]) =>
  ["router id 10.0.0.1;", "log stderr all;", "protocol device { scan time 10; }", "protocol static ckb_s {", "  ipv4;", ...routes.map((r) => `  route ${r} blackhole;`), "}", ""].join("\n");

const SHOW = `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2024-05-01 08:55:23  
cnikit_kernel4 Kernel master4    up     2024-05-01 08:55:23  
mesh_192_168_81_1 BGP        ---        up     2024-05-01 08:55:24  Established   
mesh_192_168_81_3 BGP        ---        start  2024-05-01 08:55:23  Active        Socket: Connection refused
rr_192_168_81_253 BGP        ---        start  2024-05-01 08:55:23  Connect       
peer_192_168_82_254 BGP      ---        down   2024-05-01 08:55:23  
other_bgp  BGP        ---        up     2024-05-01 08:55:24  Established
`;

describe("birdc show protocols", () => {
  test("protocols and cnikit's BGP sessions with their states", () => {
    const p = parseBirdProtocols(SHOW);
    expect(p.map((x) => x.name)).toEqual(["device1", "cnikit_kernel4", "mesh_192_168_81_1", "mesh_192_168_81_3", "rr_192_168_81_253", "peer_192_168_82_254", "other_bgp"]);
    expect(p[3]).toEqual({ name: "mesh_192_168_81_3", proto: "BGP", state: "start", bgpState: "Active", info: "Active Socket: Connection refused" });
    expect(sessionsOf(p)).toEqual([
      { name: "mesh_192_168_81_1", kind: "mesh", peerIP: "192.168.81.1", state: "Established", up: true },
      { name: "mesh_192_168_81_3", kind: "mesh", peerIP: "192.168.81.3", state: "Active", up: false },
      { name: "rr_192_168_81_253", kind: "rr", peerIP: "192.168.81.253", state: "Connect", up: false },
      { name: "peer_192_168_82_254", kind: "peer", peerIP: "192.168.82.254", state: "Down", up: false },
    ]);
  });
});

describe.skipIf(!hasBird)("supervisor (real BIRD, no kernel or BGP protocol)", () => {
  const tmp = tempDir("ckb-bird");
  const logs: Record<string, unknown>[] = [];
  const sup = new BirdSupervisor({ dir: `${tmp.path}/bird`, log: (e) => logs.push(e) });
  afterAll(async () => {
    await sup.stop();
    tmp.remove();
  });
  const routes = async () => (await birdc(sup.sockPath, ["show", "route"])).match(/10\.\d+\.0\.0\/24/g)?.sort() ?? [];

  test("start, then reload only on a change", async () => {
    expect(await sup.apply(conf(["10.1.0.0/24"]))).toBe("started");
    expect(sup.running()).toBe(true);
    expect(readFileSync(sup.pidPath, "utf8").trim()).toBe(String(sup.pid));
    expect(await routes()).toEqual(["10.1.0.0/24"]);
    expect(await sup.apply(conf(["10.1.0.0/24"]))).toBe("unchanged");
    expect(await sup.apply(conf(["10.1.0.0/24", "10.2.0.0/24"]))).toBe("reloaded");
    expect(await routes()).toEqual(["10.1.0.0/24", "10.2.0.0/24"]);
    expect(existsSync(`${sup.confPath}.tmp`)).toBe(false);
  });

  test("a configuration BIRD refuses is not swapped in; the running one stays", async () => {
    const before = readFileSync(sup.confPath, "utf8");
    await expect(sup.apply("router id nonsense;\n")).rejects.toThrow(/BIRD refused the rendered configuration: .*syntax error/);
    expect(readFileSync(sup.confPath, "utf8")).toBe(before);
    expect(existsSync(`${sup.confPath}.tmp`)).toBe(false);
    expect(await routes()).toEqual(["10.1.0.0/24", "10.2.0.0/24"]);
  });

  test("BIRD killed: started again with the same configuration", async () => {
    const first = sup.pid!;
    process.kill(first, "SIGKILL");
    for (let i = 0; i < 100 && !(sup.running() && sup.pid !== first); i++) await Bun.sleep(50);
    expect(sup.pid).not.toBe(first);
    expect(sup.restarts).toBe(1);
    for (let i = 0; i < 40; i++) {
      if ((await routes().catch(() => [])).length === 2) break;
      await Bun.sleep(50);
    }
    expect(await routes()).toEqual(["10.1.0.0/24", "10.2.0.0/24"]);
    expect(logs.some((l) => l.msg === "BIRD died, starting it again")).toBe(true);
  });

  test("stop ends it (graceful restart) and it stays stopped", async () => {
    const pid = sup.pid!;
    await sup.stop();
    expect(sup.running()).toBe(false);
    expect(existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z")).toBe(false);
    await Bun.sleep(700);
    expect(sup.running()).toBe(false);
    await expect(sup.apply(conf([]))).rejects.toThrow(/stopping/);
  });
});
