/** MAC addresses as text ("aa:bb:cc:dd:ee:ff") and bytes. */

/** Parse a MAC address ("02:42:ac:11:00:02", case-insensitive); throws on anything else. */
export function parseMAC(s: string): Uint8Array {
  const parts = s.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new TypeError(`invalid MAC address: ${JSON.stringify(s)}`);
  }
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

/** Format hardware address bytes as lowercase colon-separated hex. */
export function formatMAC(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":");
}
