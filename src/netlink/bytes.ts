/**
 * Byte buffers in host byte order, as netlink uses them (network order only where a field says
 * so): a growing writer and readers over a Uint8Array.
 */

/** Whether this machine is little-endian (netlink fields are in host order). */
export const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Round `n` up to the 4-byte alignment netlink uses for headers and attributes. */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

/** A DataView over exactly the bytes of `b`. */
export function viewOf(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** A growing byte buffer; all multi-byte writes are host order unless named `...be`. */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  /** Bytes written so far. */
  length = 0;

  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity);
    this.view = viewOf(this.buf);
  }

  private room(n: number): number {
    const at = this.length;
    if (at + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, at + n));
      next.set(this.buf.subarray(0, at));
      this.buf = next;
      this.view = viewOf(next);
    }
    this.length = at + n;
    return at;
  }

  /** Append one byte. */
  u8(v: number): this {
    const at = this.room(1); // room() may replace buf/view: take the offset first
    this.buf[at] = v & 0xff;
    return this;
  }
  /** Append a 16-bit value in host order. */
  u16(v: number): this {
    const at = this.room(2);
    this.view.setUint16(at, v, HOST_LE);
    return this;
  }
  /** Append a 16-bit value in network order. */
  u16be(v: number): this {
    const at = this.room(2);
    this.view.setUint16(at, v, false);
    return this;
  }
  /** Append an unsigned 32-bit value in host order. */
  u32(v: number): this {
    const at = this.room(4);
    this.view.setUint32(at, v >>> 0, HOST_LE);
    return this;
  }
  /** Append a signed 32-bit value in host order. */
  i32(v: number): this {
    const at = this.room(4);
    this.view.setInt32(at, v, HOST_LE);
    return this;
  }
  /** Append an unsigned 64-bit value in host order. */
  u64(v: bigint): this {
    const at = this.room(8);
    this.view.setBigUint64(at, v, HOST_LE);
    return this;
  }
  /** Append raw bytes. */
  bytes(b: Uint8Array): this {
    const at = this.room(b.length);
    this.buf.set(b, at);
    return this;
  }
  /** Append `n` zero bytes. */
  zeros(n: number): this {
    const at = this.room(n);
    this.buf.fill(0, at, this.length);
    return this;
  }
  /** Pad with zeros to the next 4-byte boundary. */
  pad4(): this {
    return this.zeros(align4(this.length) - this.length);
  }
  /** Overwrite a 16-bit host-order value at `offset` (for lengths known only afterwards). */
  setU16(offset: number, v: number): void {
    this.view.setUint16(offset, v, HOST_LE);
  }
  /** Overwrite a 32-bit host-order value at `offset`. */
  setU32(offset: number, v: number): void {
    this.view.setUint32(offset, v >>> 0, HOST_LE);
  }
  /** A copy of the bytes written. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** Read a host-order u16 at `off`. */
export function u16At(b: Uint8Array, off: number): number {
  return viewOf(b).getUint16(off, HOST_LE);
}
/** Read a host-order u32 at `off`. */
export function u32At(b: Uint8Array, off: number): number {
  return viewOf(b).getUint32(off, HOST_LE);
}
/** Read a host-order i32 at `off`. */
export function i32At(b: Uint8Array, off: number): number {
  return viewOf(b).getInt32(off, HOST_LE);
}

/** Bytes as lowercase hex, for fixtures and messages. */
export function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Hex (whitespace ignored) back to bytes. */
export function fromHex(s: string): Uint8Array {
  const h = s.replace(/\s+/g, "");
  if (h.length % 2 !== 0 || /[^0-9a-fA-F]/.test(h)) throw new TypeError("fromHex: not a hex string");
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(i * 2, i * 2 + 2), 16);
  return out;
}
