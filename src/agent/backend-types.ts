/**
 * The types every backend shares (a peer, the setup result, the backend interface and its
 * options). Backends import only this file; backend.ts builds them: imports run one way.
 */

import type { NetlinkConn } from "../netlink/conn.ts";
import type { BgpSessionState } from "./bird.ts";
import type { BgpConfig } from "./bird-config.ts";

/** Another node, as its lease describes it. */
export interface Peer {
  /** Its subnet, "10.244.3.0/24". */
  subnet: string;
  /** The address it is reached at on the underlay. */
  publicIP: string;
  /** vxlan: its VTEP's MAC. */
  vtepMAC?: string;
}

/** What `setup` hands back: data for our own lease, and the MTU pods should use. */
export interface BackendSetup {
  backendData: Record<string, unknown>;
  mtu: number;
  /** ebpf with BigTCP: the IPv4 GSO/GRO size pods may use (every egress device took it). */
  bigTcp?: number;
  /** What did not work out but does not stop the agent (logged as warnings). */
  warnings?: string[];
}

/** A backend. */
export interface Backend {
  readonly type: "vxlan" | "host-gw" | "bgp";
  /** Prepare this node (idempotent; keeps what an earlier run set up when it still fits). */
  setup(): BackendSetup;
  /**
   * Program (or re-program, when its lease changed) a peer; rolled back when a step fails. May
   * return a warning about the peer for the log (once per peer).
   */
  addPeer(p: Peer): string | void;
  /** Remove a peer's routes and entries (only its subnet is needed). */
  removePeer(p: Pick<Peer, "subnet">): void;
  /** Subnets currently programmed. */
  programmedSubnets(): string[];
  /**
   * Called after each full sync, when every peer has been added (bgp: loads BIRD's configuration,
   * resolving once it is loaded; the first sync runs before this node's lease is written, so that
   * peers find BIRD listening when they see the lease). Never rejects.
   */
  afterSync?(): void | Promise<void>;
  /** Extra Prometheus lines for /metrics (bgp: the sessions' states). */
  metricsText?(): string;
  /** bgp: the BGP sessions as last read from BIRD (undefined while it does not answer). */
  sessions?(): BgpSessionState[] | undefined;
  /** Release what runs beside the agent when it exits (bgp: BIRD, stopped for a graceful restart). */
  stop?(): Promise<void>;
}

/** What a backend is built from. */
export interface BackendOptions {
  conn: NetlinkConn;
  /** This node's subnet, "10.244.1.0/24". */
  localSubnet: string;
  /** This node's underlay address. */
  publicIP: string;
  /** The underlay interface. */
  underlay: string;
  /** Which family this backend carries (default 4); a dual-stack node runs one of each. */
  family?: 4 | 6;
  /** vxlan: VNI (default 1), UDP port (default 8472), device MTU (default underlay MTU - 50, or - 70 over IPv6). */
  vni?: number;
  port?: number;
  mtu?: number;
  /** vxlan: plain routes to peers on the same underlay subnet. */
  directRouting?: boolean;
  /** vxlan: device name (default `cnikit.<VNI>`). */
  deviceName?: string;
  /** vxlan: "ebpf" for a collect-metadata device and the eBPF datapath's maps (IPv4), default the kernel's. */
  datapath?: "kernel" | "ebpf";
  /** vxlan, ebpf: where the datapath's maps and programs are pinned (default /sys/fs/bpf/cnikit/overlay). */
  bpfPinDir?: string;
  /** vxlan, ebpf with directRouting: IPv4 BIG TCP on the underlay, then offered to pods. */
  bigTcp?: boolean;
  /** bgp: its settings, the cluster network and BIRD's directory. */
  bgp?: BgpBackendOptions;
}

/** bgp: what its backend is built from. */
export interface BgpBackendOptions {
  config: BgpConfig;
  /** The cluster network, "10.244.0.0/16". */
  network: string;
  /** BIRD's directory (default /run/cnikit/bird). */
  dir?: string;
  /** The IPIP device (default tunl0). */
  tunnel?: string;
  /** How often the sessions' states are read for /metrics (ms, default 2000). */
  pollMs?: number;
  log?: (e: Record<string, unknown>) => void;
}
