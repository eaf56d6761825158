/** Where IPAM keeps reservations: the interface, and an in-memory fake for unit tests. */

/** One reservation: an address held by a container's interface. */
export interface Reservation {
  ip: string;
  containerId: string;
  ifName: string;
}

/**
 * A reservation store for one network, as the reference's `backend.Store`: callers hold `lock()`
 * around a read-modify-write sequence.
 */
export interface Store {
  /** Take the store's exclusive lock (blocking); returns the unlock function. */
  lock(): () => void;
  /** Reserve `ip` for an attachment; false when already reserved. Records it as the last one of `rangeSet`. */
  reserve(res: Reservation, rangeSet: number): boolean;
  /** The last address reserved in a range set, if recorded. */
  lastReserved(rangeSet: number): string | undefined;
  /** Addresses held by an attachment. */
  getByID(containerId: string, ifName: string): string[];
  /** Release every address of an attachment; returns them. */
  releaseByID(containerId: string, ifName: string): string[];
  /** Whether an address is reserved. */
  isReserved(ip: string): boolean;
  /** Every reservation. */
  list(): Reservation[];
  /** Release one address. */
  release(ip: string): void;
}

/** An in-memory store for unit tests of allocation logic. */
export class FakeStore implements Store {
  readonly reservations = new Map<string, Reservation>();
  readonly last = new Map<number, string>();
  locked = false;

  lock(): () => void {
    if (this.locked) throw new Error("FakeStore: lock taken twice");
    this.locked = true;
    return () => {
      this.locked = false;
    };
  }
  reserve(res: Reservation, rangeSet: number): boolean {
    if (this.reservations.has(res.ip)) return false;
    this.reservations.set(res.ip, { ...res });
    this.last.set(rangeSet, res.ip);
    return true;
  }
  lastReserved(rangeSet: number): string | undefined {
    return this.last.get(rangeSet);
  }
  getByID(containerId: string, ifName: string): string[] {
    return this.list().filter((r) => r.containerId === containerId && r.ifName === ifName).map((r) => r.ip);
  }
  releaseByID(containerId: string, ifName: string): string[] {
    const ips = this.getByID(containerId, ifName);
    for (const ip of ips) this.reservations.delete(ip);
    return ips;
  }
  isReserved(ip: string): boolean {
    return this.reservations.has(ip);
  }
  list(): Reservation[] {
    return [...this.reservations.values()];
  }
  release(ip: string): void {
    this.reservations.delete(ip);
  }
}
