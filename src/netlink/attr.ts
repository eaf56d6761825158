/**
 * Netlink attributes (struct nlattr: u16 length, u16 type, payload padded to 4 bytes): builders
 * for requests and a reader for replies, nested attributes included.
 */

import { align4, ByteWriter, HOST_LE, viewOf } from "./bytes.ts";
import { MalformedMessageError } from "./malformed.ts";

/** Flag bit in an attribute type: the payload is itself a list of attributes. */
export const NLA_F_NESTED = 0x8000;
/** Flag bit in an attribute type: the payload is in network byte order. */
export const NLA_F_NET_BYTEORDER = 0x4000;
/** Mask of the attribute type proper, without the flag bits. */
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;
/** Size of the attribute header. */
export const NLA_HDRLEN = 4;

/** One attribute to encode: a type and either raw bytes or nested attributes. */
export interface Attr {
  /** The type, flag bits included. */
  readonly type: number;
  /** The payload: raw bytes, or attributes nested inside. */
  readonly value: Uint8Array | readonly AttrLike[];
}

/** An attribute, or a falsy value that encoders skip (for `cond && nla.u32(...)`). */
export type AttrLike = Attr | null | undefined | false;

const enc = new TextEncoder();

function scalar(size: number, set: (v: DataView) => void): Uint8Array {
  const b = new Uint8Array(size);
  set(viewOf(b));
  return b;
}

/** Attribute builders, one per payload kind. */
export const nla = {
  /** A one-byte value. */
  u8: (type: number, v: number): Attr => ({ type, value: Uint8Array.of(v & 0xff) }),
  /** A 16-bit value in host order. */
  u16: (type: number, v: number): Attr => ({ type, value: scalar(2, (d) => d.setUint16(0, v, HOST_LE)) }),
  /** A 16-bit value in network order (ports, VLAN protocols). */
  u16be: (type: number, v: number): Attr => ({ type, value: scalar(2, (d) => d.setUint16(0, v, false)) }),
  /** An unsigned 32-bit value in host order. */
  u32: (type: number, v: number): Attr => ({ type, value: scalar(4, (d) => d.setUint32(0, v >>> 0, HOST_LE)) }),
  /** A signed 32-bit value in host order. */
  i32: (type: number, v: number): Attr => ({ type, value: scalar(4, (d) => d.setInt32(0, v, HOST_LE)) }),
  /** An unsigned 64-bit value in host order. */
  u64: (type: number, v: bigint): Attr => ({ type, value: scalar(8, (d) => d.setBigUint64(0, v, HOST_LE)) }),
  /** A NUL-terminated string. */
  str: (type: number, s: string): Attr => {
    const b = enc.encode(s);
    const out = new Uint8Array(b.length + 1);
    out.set(b);
    return { type, value: out };
  },
  /** Raw bytes (addresses, opaque payloads). */
  bytes: (type: number, b: Uint8Array): Attr => ({ type, value: b }),
  /** An attribute with no payload (a flag). */
  flag: (type: number): Attr => ({ type, value: new Uint8Array(0) }),
  /**
   * Attributes nested in one. rtnetlink's older attributes (IFLA_LINKINFO and friends) are sent
   * without NLA_F_NESTED, as iproute2 does; pass `{ flag: true }` where the kernel wants it
   * (nfnetlink, newer strict policies).
   */
  nested: (type: number, attrs: readonly AttrLike[], opts: { flag?: boolean } = {}): Attr => ({
    type: opts.flag ? type | NLA_F_NESTED : type,
    value: attrs,
  }),
};

/** Append attributes to `w`, each padded to 4 bytes; falsy entries are skipped. */
export function writeAttrs(w: ByteWriter, attrs: readonly AttrLike[]): void {
  for (const a of attrs) {
    if (!a) continue;
    const at = w.length;
    w.u16(0).u16(a.type);
    if (a.value instanceof Uint8Array) {
      w.bytes(a.value);
    } else {
      writeAttrs(w, a.value as readonly AttrLike[]);
    }
    const len = w.length - at;
    if (len > 0xffff) throw new RangeError(`netlink attribute ${a.type & NLA_TYPE_MASK} is too long (${len} bytes)`);
    w.setU16(at, len);
    w.pad4();
  }
}

/** Encode attributes on their own. */
export function encodeAttrs(attrs: readonly AttrLike[]): Uint8Array {
  const w = new ByteWriter();
  writeAttrs(w, attrs);
  return w.finish();
}

/** One decoded attribute. */
export interface RawAttr {
  /** The type without flag bits. */
  type: number;
  /** Whether NLA_F_NESTED was set. */
  nested: boolean;
  /** The payload, without padding (a view into the message). */
  data: Uint8Array;
}

const dec = new TextDecoder();

/** A decoded attribute list with typed getters; the first occurrence of a type wins in `get`. */
export class Attrs {
  /** Every attribute, in order. */
  readonly list: readonly RawAttr[];

  constructor(list: readonly RawAttr[]) {
    this.list = list;
  }

  /** Decode the attributes in `buf` (which starts at an attribute header). */
  static parse(buf: Uint8Array): Attrs {
    const list: RawAttr[] = [];
    const v = viewOf(buf);
    let off = 0;
    while (off + NLA_HDRLEN <= buf.length) {
      const len = v.getUint16(off, HOST_LE);
      const type = v.getUint16(off + 2, HOST_LE);
      if (len < NLA_HDRLEN || off + len > buf.length) {
        throw new MalformedMessageError(`attribute ${type & NLA_TYPE_MASK} at offset ${off} has length ${len}`);
      }
      list.push({
        type: type & NLA_TYPE_MASK,
        nested: (type & NLA_F_NESTED) !== 0,
        data: buf.subarray(off + NLA_HDRLEN, off + len),
      });
      off += align4(len);
    }
    return new Attrs(list);
  }

  /** Whether an attribute of `type` is present. */
  has(type: number): boolean {
    return this.list.some((a) => a.type === type);
  }
  /** The payload of the first attribute of `type`. */
  get(type: number): Uint8Array | undefined {
    return this.list.find((a) => a.type === type)?.data;
  }
  /** The payloads of every attribute of `type`. */
  all(type: number): Uint8Array[] {
    return this.list.filter((a) => a.type === type).map((a) => a.data);
  }
  private num(type: number, size: number, read: (d: DataView) => number): number | undefined {
    const b = this.get(type);
    if (!b) return undefined;
    if (b.length < size) throw new MalformedMessageError(`attribute ${type} is ${b.length} bytes, want ${size}`);
    return read(viewOf(b));
  }
  /** A one-byte value. */
  u8(type: number): number | undefined {
    return this.num(type, 1, (d) => d.getUint8(0));
  }
  /** A host-order u16. */
  u16(type: number): number | undefined {
    return this.num(type, 2, (d) => d.getUint16(0, HOST_LE));
  }
  /** A network-order u16. */
  u16be(type: number): number | undefined {
    return this.num(type, 2, (d) => d.getUint16(0, false));
  }
  /** A host-order u32. */
  u32(type: number): number | undefined {
    return this.num(type, 4, (d) => d.getUint32(0, HOST_LE));
  }
  /** A host-order i32. */
  i32(type: number): number | undefined {
    return this.num(type, 4, (d) => d.getInt32(0, HOST_LE));
  }
  /** A host-order u64. */
  u64(type: number): bigint | undefined {
    const b = this.get(type);
    if (!b) return undefined;
    if (b.length < 8) throw new MalformedMessageError(`attribute ${type} is ${b.length} bytes, want 8`);
    return viewOf(b).getBigUint64(0, HOST_LE);
  }
  /** A string, up to its first NUL. */
  str(type: number): string | undefined {
    const b = this.get(type);
    if (!b) return undefined;
    const nul = b.indexOf(0);
    return dec.decode(nul < 0 ? b : b.subarray(0, nul));
  }
  /** A copy of the raw payload (safe to keep after the receive buffer is reused). */
  bytes(type: number): Uint8Array | undefined {
    const b = this.get(type);
    return b ? b.slice() : undefined;
  }
  /** The attributes nested in the first attribute of `type`. */
  nested(type: number): Attrs | undefined {
    const b = this.get(type);
    return b ? Attrs.parse(b) : undefined;
  }
}
