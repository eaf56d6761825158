/**
 * A small strict XML reader for tests (no DOM in Bun): checks that a document is well formed
 * (every element closed in order, attributes quoted, one root) and returns its text content.
 */

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function unescape(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e.startsWith("#x")) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith("#")) return String.fromCodePoint(Number(e.slice(1)));
    if (e in ENTITIES) return ENTITIES[e]!;
    throw new Error(`unknown entity ${m}`);
  });
}

/** Parse `xml`; throws on a malformed document. Returns the root's name and every text node. */
export function parseXml(xml: string): { root: string; texts: string[] } {
  const stack: string[] = [];
  const texts: string[] = [];
  let root = "";
  const re = /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<!DOCTYPE[^>[]*(\[[\s\S]*?\])?\s*>|<!\[CDATA\[([\s\S]*?)\]\]>|<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[\w:.-]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>|([^<]+)|(<)/g;
  for (const m of xml.matchAll(re)) {
    if (m[8]) throw new Error(`malformed markup at offset ${m.index}: ${xml.slice(m.index, m.index + 40)}`);
    if (m[2] !== undefined) texts.push(m[2]);
    if (m[7] !== undefined) {
      if (stack.length === 0 && m[7].trim()) throw new Error(`text outside the root: ${m[7].slice(0, 40)}`);
      if (m[7].trim()) texts.push(unescape(m[7]));
      continue;
    }
    const name = m[4];
    if (!name) continue;
    if (m[3]) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
      continue;
    }
    if (stack.length === 0) {
      if (root) throw new Error("more than one root element");
      root = name;
    }
    if (!m[6]) stack.push(name);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.at(-1)}>`);
  if (!root) throw new Error("no root element");
  return { root, texts };
}
