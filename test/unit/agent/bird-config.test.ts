/**
 * The bgp backend's keys and the BIRD configuration rendered from them: snapshots of the rendered
 * text (fixtures/*.bird.conf; `UPDATE_FIXTURES=1 bun test FILE` writes them again), the sessions
 * each node gets, and BIRD's own parser accepting every snapshot (`bird -p`, where bird2 is
 * installed).
 */

import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { birdSessions, parseBgpBackend, renderBirdConfig, type BirdInput } from "../../../src/agent/bird-config.ts";
import { parseNetworkConfig } from "../../../src/agent/netconfig.ts";

const FIXTURES = join(import.meta.dir, "fixtures");
const hasBird = Bun.spawnSync(["sh", "-c", "command -v bird"]).exitCode === 0;

const base = (bgp: Record<string, unknown>, over: Partial<BirdInput> = {}): BirdInput => ({
  localIP: "192.168.81.2",
  subnet: "10.96.3.0/24",
  network: "10.96.0.0/16",
  underlay: { iface: "eth0", subnet: "192.168.81.0/24" },
  nodes: ["192.168.81.3", "192.168.81.1", "192.168.82.4"],
  bgp: parseBgpBackend({ Type: "bgp", ...bgp }),
  ...over,
});

const CASES: Record<string, BirdInput> = {
  mesh: base({}),
  "mesh-timers": base({ HoldTime: 6, KeepaliveTime: 2, ConnectDelayTime: 0, ConnectRetryTime: 1, GracefulRestartTime: 8, ListenPort: 1790 }),
  "reflector-and-peer": base({
    NodeMesh: false,
    ASNumber: 65001,
    RouteReflectors: [{ PeerIP: "192.168.81.253", NodeSubnet: "192.168.81.0/24" }, { PeerIP: "192.168.82.253", NodeSubnet: "192.168.82.0/24" }],
    Peers: [{ PeerIP: "192.168.81.254", ASNumber: 64600 }, { PeerIP: "198.51.100.1", ASNumber: 64601 }],
  }),
  ipip: base({ Encapsulation: "ipip" }),
};

describe("rendered BIRD configuration (snapshots)", () => {
  for (const [name, input] of Object.entries(CASES)) {
    test(name, () => {
      const text = renderBirdConfig(input);
      const file = join(FIXTURES, `${name}.bird.conf`);
      if (process.env.UPDATE_FIXTURES || !existsSync(file)) writeFileSync(file, text);
      expect(text).toBe(readFileSync(file, "utf8"));
      // pure: the same input gives the same text, whatever the order of the nodes
      expect(renderBirdConfig({ ...input, nodes: [...input.nodes].reverse() })).toBe(text);
    });
  }

  test.skipIf(!hasBird)("BIRD 2 accepts every snapshot (bird -p -c)", () => {
    const dir = mkdtempSync(join(tmpdir(), "cnikit-ckb-birdp-"));
    try {
      for (const name of Object.keys(CASES)) {
        const f = join(dir, `${name}.conf`);
        writeFileSync(f, readFileSync(join(FIXTURES, `${name}.bird.conf`)));
        const r = Bun.spawnSync(["bird", "-p", "-c", f], { stdout: "pipe", stderr: "pipe" });
        expect(`${name}: ${r.exitCode} ${r.stderr.toString()}`).toBe(`${name}: 0 `);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("sessions", () => {
  test("full mesh: one session per other node, the higher address passive, ours skipped", () => {
    const s = birdSessions(base({}, { nodes: ["192.168.81.3", "192.168.81.2", "192.168.81.1", "192.168.81.3"] }));
    expect(s.map((x) => [x.name, x.passive])).toEqual([["mesh_192_168_81_1", true], ["mesh_192_168_81_3", false]]);
    // the other side of each pair agrees: exactly one of the two connects
    const other = birdSessions(base({}, { localIP: "192.168.81.1", nodes: ["192.168.81.2"] }));
    expect(other[0]!.passive).toBe(false);
  });

  test("NodeMesh false: no node sessions; reflectors and peers by NodeSubnet; eBGP off the underlay is multihop", () => {
    const input = CASES["reflector-and-peer"]!;
    expect(birdSessions(input).map((x) => `${x.name} as ${x.asNumber}${x.multihop ? ` multihop ${x.multihop}` : ""}`)).toEqual([
      "rr_192_168_81_253 as 65001",
      "peer_192_168_81_254 as 64600",
      "peer_198_51_100_1 as 64601 multihop 8",
    ]);
    const onB = birdSessions({ ...input, localIP: "192.168.82.4", underlay: { iface: "eth0", subnet: "192.168.82.0/24" } });
    expect(onB.map((x) => x.name)).toEqual(["rr_192_168_82_253", "peer_192_168_81_254", "peer_198_51_100_1"]);
    expect(onB[1]!.multihop).toBe(8);
  });

  test("a node that is also a listed reflector gets one session, as a reflector", () => {
    const s = birdSessions(base({ RouteReflectors: ["192.168.81.3"] }));
    expect(s.map((x) => x.name)).toEqual(["mesh_192_168_81_1", "mesh_192_168_82_4", "rr_192_168_81_3"]);
  });
});

describe("Backend keys", () => {
  test("defaults", () => {
    const c = parseNetworkConfig(JSON.stringify({ Network: "10.96.0.0/16", Backend: { Type: "bgp" } }));
    expect(c.backend.type).toBe("bgp");
    expect(c.backend.bgp).toEqual({
      asNumber: 64512, encapsulation: "none", nodeMesh: true, routeReflectors: [], peers: [],
      holdTime: 90, keepaliveTime: 30, connectDelayTime: 2, connectRetryTime: 5, gracefulRestartTime: 90, port: 179,
    });
  });

  test("every key", () => {
    const c = parseNetworkConfig(JSON.stringify({
      Network: "10.96.0.0/16",
      Backend: {
        Type: "bgp", ASNumber: 65000, Encapsulation: "ipip", NodeMesh: false, HoldTime: 9, KeepaliveTime: 3,
        ConnectDelayTime: 1, ConnectRetryTime: 2, GracefulRestartTime: 12, ListenPort: 1179,
        RouteReflectors: ["10.0.0.1", { PeerIP: "10.0.1.1", NodeSubnet: "192.168.1.7/24" }],
        Peers: [{ PeerIP: "10.0.2.1", ASNumber: 64600, Multihop: 3 }],
      },
    }));
    expect(c.backend.bgp).toEqual({
      asNumber: 65000, encapsulation: "ipip", nodeMesh: false, holdTime: 9, keepaliveTime: 3, connectDelayTime: 1,
      connectRetryTime: 2, gracefulRestartTime: 12, port: 1179,
      routeReflectors: [{ peerIP: "10.0.0.1", asNumber: 65000 }, { peerIP: "10.0.1.1", asNumber: 65000, nodeSubnet: "192.168.1.0/24" }],
      peers: [{ peerIP: "10.0.2.1", asNumber: 64600, multihop: 3 }],
    });
  });

  test("bad values are code 7 naming the key", () => {
    const bad = (b: Record<string, unknown>) => () => parseNetworkConfig(JSON.stringify({ Network: "10.96.0.0/16", Backend: { Type: "bgp", ...b } }));
    expect(bad({ Encapsulation: "vxlan" })).toThrow(/Backend.Encapsulation "vxlan"/);
    expect(bad({ ASNumber: 0 })).toThrow(/Backend.ASNumber 0/);
    expect(bad({ ASNumber: "64512" })).toThrow(/Backend.ASNumber "64512"/);
    expect(bad({ Peers: [{ PeerIP: "nope", ASNumber: 1 }] })).toThrow(/Backend.Peers\[0\].PeerIP "nope"/);
    expect(bad({ RouteReflectors: "10.0.0.1" })).toThrow(/Backend.RouteReflectors must be an array/);
    expect(bad({ NodeMesh: "yes" })).toThrow(/Backend.NodeMesh/);
    expect(bad({ HoldTime: 2 })).toThrow(/Backend.HoldTime 2/);
    expect(bad({ RouteReflectors: [{ PeerIP: "10.0.0.1", NodeSubnet: "x" }] })).toThrow(/NodeSubnet "x"/);
    try {
      bad({ ASNumber: -1 })();
    } catch (e) {
      expect((e as { code: number }).code).toBe(7);
    }
  });
});
