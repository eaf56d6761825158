/**
 * The reference host-local's on-disk store, byte for byte: `<dataDir>/<network>/<ip>` holding
 * "<containerId>\r\n<ifname>", `last_reserved_ip.<rangeSet>` holding the last address handed out
 * in a range set, and a `lock` file taken with flock. A node switching between the reference and
 * cnikit keeps its reservations.
 */

import { listDir, makeDir, readText, removeFile, renameFile, writeText } from "../sys/file.ts";
import { joinPath as join } from "../sys/path.ts";
import { lockFile } from "../sys/flock.ts";
import { parseIP } from "../spec/ip.ts";
import type { Reservation, Store } from "./store.ts";

/** Line break between container id and ifname, as the reference writes it. */
export const LINE_BREAK = "\r\n";
const LAST_PREFIX = "last_reserved_ip.";
/** Suffix of a reservation being written (renamed to the address once whole). */
const RESERVING = ".reserving";

/** host-local's default data directory. */
export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";

/** A Store over the reference's directory layout. */
export class DiskStore implements Store {
  readonly dir: string;

  constructor(dataDir: string, network: string) {
    this.dir = join(dataDir, network);
  }

  private ensureDir(): void {
    makeDir(this.dir, { recursive: true, mode: 0o755 });
  }

  lock(): () => void {
    this.ensureDir();
    const l = lockFile(join(this.dir, "lock"));
    return () => l.unlock();
  }

  /**
   * Reserve under the lock: the file appears whole (written beside it, then renamed), so a
   * process killed in the middle never leaves a reservation without its holder (which no DEL or
   * GC could attribute); a leftover `.reserving` file is swept by the next release.
   */
  reserve(res: Reservation, rangeSet: number): boolean {
    this.ensureDir();
    if (this.isReserved(res.ip)) return false;
    const tmp = join(this.dir, `${res.ip}${RESERVING}`);
    writeText(tmp, `${res.containerId.trim()}${LINE_BREAK}${res.ifName}`, { mode: 0o600 });
    renameFile(tmp, join(this.dir, res.ip));
    writeText(join(this.dir, `${LAST_PREFIX}${rangeSet}`), res.ip, { mode: 0o600 });
    return true;
  }

  lastReserved(rangeSet: number): string | undefined {
    try {
      return readText(join(this.dir, `${LAST_PREFIX}${rangeSet}`)).trim() || undefined;
    } catch {
      return undefined;
    }
  }

  /** Every reservation file (name parses as an address), with its holder. */
  list(): Reservation[] {
    let names: string[];
    try {
      names = listDir(this.dir);
    } catch {
      return [];
    }
    const out: Reservation[] = [];
    for (const name of names) {
      if (name === "lock" || name.startsWith(LAST_PREFIX) || !parseIP(name)) continue;
      let text: string;
      try {
        text = readText(join(this.dir, name));
      } catch {
        continue;
      }
      // old reference versions wrote the container id alone
      const [id, ifName] = text.trim().split(LINE_BREAK);
      out.push({ ip: name, containerId: (id ?? "").trim(), ifName: (ifName ?? "").trim() });
    }
    return out;
  }

  private matches(r: Reservation, containerId: string, ifName: string): boolean {
    return r.containerId === containerId.trim() && (r.ifName === ifName || r.ifName === "");
  }

  getByID(containerId: string, ifName: string): string[] {
    return this.list().filter((r) => this.matches(r, containerId, ifName)).map((r) => r.ip);
  }

  releaseByID(containerId: string, ifName: string): string[] {
    this.sweep();
    const ips = this.getByID(containerId, ifName);
    for (const ip of ips) this.release(ip);
    return ips;
  }

  isReserved(ip: string): boolean {
    try {
      readText(join(this.dir, ip));
      return true;
    } catch {
      return false;
    }
  }

  release(ip: string): void {
    removeFile(join(this.dir, ip));
  }

  /** Remove the half-made reservations of processes killed in `reserve` (called under the lock). */
  private sweep(): void {
    let names: string[];
    try {
      names = listDir(this.dir);
    } catch {
      return;
    }
    for (const n of names) if (n.endsWith(RESERVING)) removeFile(join(this.dir, n));
  }
}
