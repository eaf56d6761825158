/**
 * vxlan (flannel's layout): one device `cnikit.<VNI>` (local = our underlay address, learning off,
 * MTU = underlay MTU - 50) holding our subnet's network address as a /32; for IPv6 a second device
 * (`cnikit-v6.<VNI>`, over the underlay's IPv6 address, MTU - 70, a /128). Per peer, in this order:
 * a permanent neighbour (the peer's subnet address -> its VTEP MAC), an FDB entry (that MAC -> its
 * underlay address) and an onlink route (its subnet via its subnet address on the device); a failed
 * step undoes the ones before it. With DirectRouting, a peer on our underlay subnet gets a plain
 * route through its underlay address instead.
 */

import { isNotFound } from "../netlink/error.ts";
import type { Link } from "../net/link.ts";
import { createLink, deleteLink, findLink, getLink, setLink, setLinkUp } from "../net/link.ts";
import { addAddress, deleteAddress, listAddresses } from "../net/addr.ts";
import { deleteNeighbor, listNeighbors, setNeighbor } from "../net/neigh.ts";
import { CniError, ErrorCode } from "../spec/error.ts";
import { containsIP, formatIP, ipEqual, networkOf, parseCIDR, parseIP, type IPNet } from "../spec/ip.ts";
import type { Backend, BackendOptions, BackendSetup, Peer } from "./backend-types.ts";
import { agentRoutes, deleteAgentRoute, setAgentRoute } from "./peer-routes.ts";

/** What is programmed for one peer. */
interface PeerState {
  publicIP: string;
  /** The VTEP MAC, or undefined for a direct route. */
  mac?: string;
}

const netAddr = (subnet: string): string => {
  const n = parseCIDR(subnet);
  if (!n) throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: bad subnet ${subnet}`);
  return formatIP(networkOf(n).ip);
};

export class VxlanBackend implements Backend {
  readonly type = "vxlan" as const;
  readonly vni: number;
  readonly port: number;
  readonly name: string;
  readonly family: 4 | 6;
  private readonly peers = new Map<string, PeerState>();
  private dev!: Link;
  private underlayIndex = 0;
  private underlayNets: IPNet[] = [];

  constructor(private readonly o: BackendOptions) {
    this.vni = o.vni ?? 1;
    this.port = o.port ?? 8472;
    this.family = o.family ?? 4;
    this.name = o.deviceName ?? (this.family === 6 ? `cnikit-v6.${this.vni}` : `cnikit.${this.vni}`);
    if (this.name.length > 15) throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: device name ${this.name} is longer than 15 characters`);
  }

  /** True when an existing device already has the settings we would give it. */
  private fits(l: Link, local: Uint8Array): boolean {
    const v = l.raw.info?.vxlan;
    return l.kind === "vxlan" && !!v && !v.external && v.id === this.vni && (v.port ?? 8472) === this.port && v.link === this.underlayIndex && !!v.local && ipEqual(v.local, local);
  }

  setup(): BackendSetup {
    const { conn } = this.o;
    const underlay = getLink(conn, this.o.underlay);
    this.underlayIndex = underlay.index;
    const fam = this.family;
    this.underlayNets = listAddresses(conn, { link: underlay.index, family: fam }).filter((a) => a.scope === 0).map((a) => parseCIDR(a.cidr)!).filter(Boolean);
    const local = parseIP(this.o.publicIP);
    if (!local || local.length !== (fam === 6 ? 16 : 4)) throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: public IP ${this.o.publicIP} is not an IPv${fam} address`);
    const mtu = this.o.mtu ?? underlay.mtu - (fam === 6 ? 70 : 50);
    let dev = findLink(conn, this.name);
    if (dev && !this.fits(dev, local)) {
      // a device from another configuration: its MAC is in nobody's lease any more, start afresh
      deleteLink(conn, dev.index);
      dev = null;
    }
    if (!dev) {
      dev = createLink(conn, {
        name: this.name,
        mtu,
        info: { kind: "vxlan", vxlan: { id: this.vni, local, link: underlay.index, port: this.port, learning: false, udpCsum: false } },
      });
    } else if (dev.mtu !== mtu) {
      setLink(conn, dev.index, { mtu });
    }
    // our subnet's network address as a host address; any other global one is from an older lease
    const want = `${netAddr(this.o.localSubnet)}/${fam === 6 ? 128 : 32}`;
    for (const a of listAddresses(conn, { link: dev.index, family: fam })) {
      if (a.scope === 0 && a.cidr !== want) deleteAddress(conn, { link: dev.index, address: a.cidr });
    }
    addAddress(conn, { link: dev.index, address: want, ...(fam === 6 ? { nodad: true } : {}) }, { existOk: true });
    setLinkUp(conn, dev.index);
    this.dev = getLink(conn, dev.index);
    this.recover();
    return { backendData: { VNI: this.vni, VtepMAC: this.dev.mac }, mtu };
  }

  /** Learn what an earlier run programmed (its routes, neighbours and FDB entries). */
  private recover(): void {
    const { conn } = this.o;
    const neigh = new Map(listNeighbors(conn, { link: this.dev.index }).filter((n) => n.ip).map((n) => [n.ip!, n.mac]));
    const fdb = new Map(listNeighbors(conn, { link: this.dev.index, fdb: true }).filter((n) => n.ip).map((n) => [n.mac, n.ip!]));
    for (const [dst, r] of agentRoutes(conn, this.family)) {
      if (r.oif === this.dev.index) {
        const mac = neigh.get(netAddr(dst));
        this.peers.set(dst, { publicIP: (mac && fdb.get(mac)) || "", ...(mac ? { mac } : {}) });
      } else if (r.oif === this.underlayIndex && r.gateway) {
        this.peers.set(dst, { publicIP: r.gateway });
      }
    }
  }

  private direct(publicIP: string): boolean {
    if (!this.o.directRouting) return false;
    const ip = parseIP(publicIP);
    return !!ip && this.underlayNets.some((n) => containsIP(n, ip));
  }

  /** Undo a peer's neighbour and FDB entries (its route is replaced or deleted separately). */
  private dropEntries(subnet: string, s: PeerState): void {
    if (!s.mac) return;
    const { conn } = this.o;
    const link = this.dev.index;
    deleteNeighbor(conn, { link, ip: netAddr(subnet), mac: s.mac });
    if (s.publicIP) deleteNeighbor(conn, { link, fdb: true, mac: s.mac, ip: s.publicIP });
  }

  addPeer(p: Peer): void {
    const { conn } = this.o;
    const prev = this.peers.get(p.subnet);
    if (this.direct(p.publicIP)) {
      setAgentRoute(conn, { dst: p.subnet, gateway: p.publicIP, link: this.underlayIndex });
      if (prev) this.dropEntries(p.subnet, prev);
      this.peers.set(p.subnet, { publicIP: p.publicIP });
      return;
    }
    if (!p.vtepMAC) throw new CniError(ErrorCode.InvalidNetworkConfig, `agent: the lease of ${p.subnet} has no VtepMAC`);
    const link = this.dev.index;
    const gw = netAddr(p.subnet);
    const undo: (() => void)[] = [];
    try {
      setNeighbor(conn, { link, ip: gw, mac: p.vtepMAC });
      undo.push(() => deleteNeighbor(conn, { link, ip: gw, mac: p.vtepMAC! }));
      setNeighbor(conn, { link, fdb: true, mac: p.vtepMAC, ip: p.publicIP });
      undo.push(() => deleteNeighbor(conn, { link, fdb: true, mac: p.vtepMAC!, ip: p.publicIP }));
      setAgentRoute(conn, { dst: p.subnet, gateway: gw, link, onlink: true });
    } catch (e) {
      for (const u of undo.reverse()) {
        try {
          u();
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
      throw e;
    }
    // a restarted peer with a new VTEP MAC or address: its old FDB entry points nowhere now
    if (prev?.mac && (prev.mac !== p.vtepMAC || prev.publicIP !== p.publicIP)) {
      deleteNeighbor(conn, { link, fdb: true, mac: prev.mac, ip: prev.publicIP || p.publicIP });
    }
    this.peers.set(p.subnet, { publicIP: p.publicIP, mac: p.vtepMAC });
  }

  removePeer(p: Pick<Peer, "subnet">): void {
    const s = this.peers.get(p.subnet);
    deleteAgentRoute(this.o.conn, p.subnet);
    if (s) this.dropEntries(p.subnet, s);
    this.peers.delete(p.subnet);
  }

  programmedSubnets(): string[] {
    return [...this.peers.keys()];
  }
}
