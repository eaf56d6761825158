/**
 * What the veth-based main plugins (bridge, ptp) share: naming the host end, opening the pod's
 * namespace, undoing a failed ADD, and the idempotent DEL. Not a plugin: plugins import it, and
 * it imports only the layers below them.
 */

import { delegateCommand } from "../../invoke/delegate.ts";
import { NetlinkConn } from "../../netlink/conn.ts";
import { hostRtnetlink, releaseRtnetlink } from "../../net/rtnetlink.ts";
import { deleteAddress, listAddresses } from "../../net/addr.ts";
import { deleteLink, findLink, setLink, type Link } from "../../net/link.ts";
import { linkRemover, REMOVAL_GROUP } from "../../net/removal.ts";
import { createVeth } from "../../net/veth.ts";
import type { CmdArgs } from "../../skel/plugin.ts";
import { CniError, ErrorCode } from "../../spec/error.ts";
import type { DNS, Result } from "../../spec/result.ts";

/** A host-side veth name as the reference makes them: "veth" and 8 random hex digits. */
export function randomVethName(): string {
  const b = crypto.getRandomValues(new Uint8Array(4));
  return `veth${Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * A veth pair for a pod: the pod end CNI_IFNAME born in the pod's namespace (with `mac` when
 * given), the host end under a free random name; both with `mtu` when given. Returns the host end.
 */
export function createPodVeth(host: NetlinkConn, args: CmdArgs, opts: { mtu?: number | undefined; mac?: string | undefined }): Link {
  let hostName = randomVethName();
  for (let i = 0; findLink(host, hostName) && i < 5; i++) hostName = randomVethName();
  const { link, peerIndex } = createVeth(host, {
    txQueueLen: 0, // as the reference creates them
    name: hostName,
    peerName: args.ifName,
    peerNetns: args.netns,
    ...(opts.mtu ? { mtu: opts.mtu } : {}),
    ...(opts.mac ? { peerMac: opts.mac } : {}),
  });
  podScopes.get(args.netns)?.veths.set(args.ifName, { hostName: link.name, hostIndex: link.index, podIndex: peerIndex });
  return link;
}

/** A pod namespace's scope (`withPodScope`): its one connection and the veths made in it. */
interface PodScope {
  conn?: NetlinkConn;
  veths: Map<string, PodVeth>;
  users: number;
}
const podScopes = new Map<string, PodScope>();

/** A veth pair made in a scope: the host end's name and ifindex, and the pod end's ifindex (in the pod's namespace). */
export interface PodVeth {
  hostName: string;
  hostIndex: number;
  podIndex: number;
}

/**
 * Run `fn` with one scope for the pod namespace `netns` for everything it runs in-process (overlay
 * and the delegate it runs in the same process, as `withHostRtnetlink` for the host): every
 * `openPodConn(netns)` gets the same connection, opened at the first and closed when the last
 * scope on `netns` ends, and `podVethMade` tells what `createPodVeth` made there. Concurrent calls
 * (the daemon) on one namespace share it: each request waits for its answer.
 */
export async function withPodScope<T>(netns: string, fn: () => Promise<T>): Promise<T> {
  let scope = podScopes.get(netns);
  if (!scope) podScopes.set(netns, (scope = { veths: new Map(), users: 0 }));
  scope.users++;
  try {
    return await fn();
  } finally {
    if (--scope.users === 0) {
      podScopes.delete(netns);
      scope.conn?.close();
    }
  }
}

/** The veth pair `createPodVeth` made for `ifName` (with host end `hostName`) in the scope on `netns`, if it did. */
export function podVethMade(netns: string, ifName: string, hostName: string): PodVeth | undefined {
  const v = podScopes.get(netns)?.veths.get(ifName);
  return v?.hostName === hostName ? v : undefined;
}

/**
 * An rtnetlink connection inside the pod's namespace (code 3 when it cannot be opened): the
 * scope's (`withPodScope`), else a new one. Give it back with `releasePodConn`.
 */
export function openPodConn(netns: string): NetlinkConn {
  const scope = podScopes.get(netns);
  if (scope?.conn) return scope.conn;
  let conn: NetlinkConn;
  try {
    conn = NetlinkConn.open({ netns });
  } catch (e) {
    throw new CniError(ErrorCode.UnknownContainer, `failed to open netns "${netns}": ${(e as Error).message}`);
  }
  if (scope) scope.conn = conn;
  return conn;
}

/** Give back a connection from `openPodConn`: closed unless a scope keeps it. */
export function releasePodConn(conn: NetlinkConn): void {
  for (const s of podScopes.values()) if (s.conn === conn) return;
  conn.close();
}

/** Undo action: delete the pod end of a link (a veth's host end goes with it). */
export function undoPodLink(pod: NetlinkConn, ifName: string): () => void {
  return () => {
    deleteLink(pod, ifName);
  };
}

/** Undo action: release the reservation IPAM made for this ADD. */
export function undoIpam(args: CmdArgs, ipamType: string): () => Promise<void> {
  return () => delegateCommand(ipamType, args, "DEL", args.stdinData);
}

/**
 * Run every cleanup step of a DEL, each even when an earlier one failed (what the others remove
 * must still go); once all have run, throw the first failure and log the others.
 */
export async function cleanupAll(args: CmdArgs, steps: ReadonlyArray<() => unknown>): Promise<void> {
  const failures: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (e) {
      failures.push(e);
    }
  }
  for (const e of failures.slice(1)) args.log(`DEL: also failed: ${(e as Error).message}`);
  if (failures.length > 0) throw failures[0];
}

/**
 * DEL of a veth-based plugin: release the IPAM reservation and delete the pod end (its host end,
 * host routes and addresses go with it), the one even when the other fails. Succeeds when
 * CNI_NETNS is empty, the namespace is gone, or the interface is already gone.
 */
export async function delVethPod(args: CmdArgs, ipamType: string | undefined): Promise<void> {
  await cleanupAll(args, [
    () => (ipamType ? delegateCommand(ipamType, args, "DEL", args.stdinData) : undefined),
    () => {
      if (!args.netns) return;
      let pod: NetlinkConn;
      try {
        pod = NetlinkConn.open({ netns: args.netns });
      } catch {
        return; // the namespace is gone: so is the pod end of the veth, and with it the host end
      }
      try {
        if (!cutOffVethPod(pod, args.ifName)) deleteLink(pod, args.ifName);
      } finally {
        pod.close();
      }
    },
  ]);
}

/**
 * In the daemon (a `LinkRemover` installed): cut the pod off and leave the veth's deletion, whose
 * unregister wait dominates a DEL, to the remover's next batch. The pod end is set down, loses its
 * addresses and is renamed out of the way (an ADD of the same ifname may follow at once); the host
 * end is set down, leaves its bridge and is put in `REMOVAL_GROUP`; a step that fails deletes the
 * pair within the call instead. True when done, or when the link is already gone; false (delete it
 * now) without a remover, or when the link is no veth whose peer is in the remover's namespace
 * (the daemon's: where `NetlinkConn.open()` opens).
 */
function cutOffVethPod(pod: NetlinkConn, ifName: string): boolean {
  const remover = linkRemover();
  if (!remover) return false;
  const link = findLink(pod, ifName);
  if (!link) return true;
  if (link.kind !== "veth" || link.parent === undefined || link.linkNetnsId === undefined) return false;
  const host = hostRtnetlink();
  try {
    const peer = findLink(host, link.parent);
    if (!peer || peer.kind !== "veth" || peer.parent !== link.index) return false;
    try {
      setLink(pod, link.index, { up: false });
      for (const a of listAddresses(pod, { link: link.index })) deleteAddress(pod, { link: link.index, address: a.cidr });
      setLink(pod, link.index, { name: `cnkdel${link.index}` });
      setLink(host, peer.index, { up: false, master: null, group: REMOVAL_GROUP });
    } catch {
      // e.g. the name taken: delete the pair within the call instead (by index: it may be renamed)
      deleteLink(pod, link.index);
      return true;
    }
    remover.queued();
    return true;
  } finally {
    releaseRtnetlink(host);
  }
}

/** GC and STATUS of a main plugin: its IPAM plugin's answer. */
export async function passToIPAM(args: CmdArgs, ipamType: string | undefined): Promise<void> {
  if (ipamType) await delegateCommand(ipamType, args, args.command, args.stdinData);
}

/** The result's DNS: the config's when it has any, else what IPAM returned (as the reference). */
export function dnsOf(args: CmdArgs, ipam: Result): DNS | undefined {
  const dns = args.config.dns;
  if (dns && Object.keys(dns).length > 0) return dns;
  return ipam.dns;
}
