/**
 * nft data types of set keys and map values (nft's own numbering, which the kernel keeps as
 * NFTA_SET_KEY_TYPE for listing tools) and concatenations of them.
 */

/** A data type nft knows, with its id and its length in bytes. */
export interface DataType {
  /** nft's type id (datatypes.h: TYPE_IPADDR = 7, ...). */
  readonly id: number;
  /** Length of a value in bytes. */
  readonly len: number;
  /** Whether values are kept in host byte order (marks, interface names) rather than network order. */
  readonly host?: boolean;
}

/** The data types cnikit uses for set keys and map data. */
export const DATA_TYPES = {
  ipv4_addr: { id: 7, len: 4 },
  ipv6_addr: { id: 8, len: 16 },
  ether_addr: { id: 9, len: 6 },
  inet_proto: { id: 12, len: 1 },
  inet_service: { id: 13, len: 2 },
  mark: { id: 19, len: 4, host: true },
  ifname: { id: 41, len: 16, host: true },
} as const satisfies Record<string, DataType> as Record<"ipv4_addr" | "ipv6_addr" | "ether_addr" | "inet_proto" | "inet_service" | "mark" | "ifname", DataType>;

/** Name of a data type in `DATA_TYPES`. */
export type DataTypeName = keyof typeof DATA_TYPES;

/** A key (or data) type: one data type, or a concatenation of several (at least two). */
export type KeyType = DataTypeName | readonly DataTypeName[];

/** Bits each component is shifted by in a concatenated type id (nft's TYPE_BITS). */
export const CONCAT_TYPE_BITS = 6;

/** The components of `t` (one for a plain type). */
export function components(t: KeyType): readonly DataTypeName[] {
  return typeof t === "string" ? [t] : t;
}

/** Whether `t` is a concatenation. */
export function isConcat(t: KeyType): boolean {
  return typeof t !== "string" && t.length > 1;
}

/** Round up to 4 bytes (the register word a concatenation component occupies). */
function word(n: number): number {
  return (n + 3) & ~3;
}

/**
 * The type id nft records for `t`: for a concatenation, each component's id shifted in after
 * the previous ones by 6 bits (`ipv4_addr . inet_service` is 7 << 6 | 13 = 461).
 */
export function keyTypeId(t: KeyType): number {
  let id = 0;
  for (const c of components(t)) id = id * (1 << CONCAT_TYPE_BITS) + DATA_TYPES[c].id;
  return id >>> 0;
}

/** Length of each component as stored: exact for a plain type, 4-byte aligned in a concatenation. */
export function fieldLens(t: KeyType): number[] {
  const cs = components(t);
  return cs.map((c) => (cs.length > 1 ? word(DATA_TYPES[c].len) : DATA_TYPES[c].len));
}

/** The key length of `t` in bytes: the type's length, or the sum of aligned component lengths. */
export function keyLen(t: KeyType): number {
  return fieldLens(t).reduce((a, b) => a + b, 0);
}

/** Component lengths in bytes, unaligned (NFTA_SET_FIELD_LEN of each concatenation field). */
export function rawFieldLens(t: KeyType): number[] {
  return components(t).map((c) => DATA_TYPES[c].len);
}

/**
 * nft's byte-order code for a type (its `enum byteorder`: 1 host, 2 network), which nft keeps in a
 * set's user data to print values; 0 for a concatenation, as nft records it.
 */
export function byteOrderCode(t: KeyType): number {
  if (isConcat(t)) return 0;
  return DATA_TYPES[components(t)[0]!].host ? 1 : 2;
}
