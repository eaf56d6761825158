/** `BpfObject`: what maps and programs share: a descriptor to pin and close. */

import { closeFd } from "./attr.ts";
import { pinObject } from "./pin.ts";

/** A map or program held by a descriptor: close it when done; a pinned (or attached) object lives on. */
export class BpfObject {
  private open = true;

  constructor(
    /** The descriptor. */
    readonly fd: number,
    /** The kernel's id of the object. */
    readonly id: number,
  ) {}

  /** Pin the object at `path` on a bpffs (BPF_OBJ_PIN), so it outlives this process. */
  pin(path: string): void {
    pinObject(this.fd, path);
  }

  /** Close the descriptor (safe to call twice). */
  close(): void {
    if (!this.open) return;
    this.open = false;
    closeFd(this.fd);
  }
}
