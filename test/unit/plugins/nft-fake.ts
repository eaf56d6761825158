/**
 * Helpers for unit tests of plugins' nftables logic against `FakeNft` (as knftables' users test
 * against its Fake): install a fresh fake for each test, and cut the readable dump into the parts
 * a test compares.
 */

import { afterEach, beforeEach } from "bun:test";
import { FakeNft } from "../../../src/nft/fake.ts";
import { useNft } from "../../../src/nft/handle.ts";

/** A fresh FakeNft behind `withNft` for each test of the calling file (never the kernel's nftables). */
export function fakeNftPerTest(): { readonly nft: FakeNft } {
  const box = { nft: new FakeNft() };
  let release = () => {};
  beforeEach(() => {
    box.nft = new FakeNft();
    release = useNft(box.nft);
  });
  afterEach(() => release());
  return box;
}

/**
 * The element lines of one set or map in a dump (`set masq4 { ... }` or `map dnat4 { ... }` of
 * table `table`), without their indent; undefined when the table or set is missing.
 */
export function elementsIn(dump: string, table: string, set: string): string[] | undefined {
  const lines = dump.split("\n");
  const t = lines.findIndex((l) => l === `table ${table}`);
  if (t < 0) return undefined;
  const end = lines.findIndex((l, i) => i > t && l.startsWith("table "));
  const body = lines.slice(t + 1, end < 0 ? undefined : end);
  const s = body.findIndex((l) => l.startsWith(`  set ${set} {`) || l.startsWith(`  map ${set} {`));
  if (s < 0) return undefined;
  const out: string[] = [];
  for (const l of body.slice(s + 1)) {
    if (!l.startsWith("    ")) break;
    out.push(l.trim());
  }
  return out;
}

/** The part of a dump that is one table (its header line to the next table's), or "" when missing. */
export function tableIn(dump: string, table: string): string {
  const lines = dump.split("\n");
  const t = lines.findIndex((l) => l === `table ${table}`);
  if (t < 0) return "";
  const end = lines.findIndex((l, i) => i > t && l.startsWith("table "));
  return `${lines.slice(t, end < 0 ? lines.length - 1 : end).join("\n")}\n`;
}
