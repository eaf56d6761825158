/**
 * Count tests from the JUnit reports in a folder (plus the type check) and print one line:
 * "N passed, N failed" (skipped tests counted on the line before).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2] ?? ".test-out";
let passed = 0;
let failed = 0;
let skipped = 0;
for (const f of existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith(".xml")) : []) {
  const xml = readFileSync(join(dir, f), "utf8");
  for (const m of xml.matchAll(/<testcase\b[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const body = m[2] ?? "";
    if (/<(failure|error)\b/.test(body)) failed++;
    else if (/<skipped\b/.test(body)) skipped++;
    else passed++;
  }
  // a file that crashed before reporting any test case counts as one failure
  if (!/<testcase\b/.test(xml) && /<(failure|error)\b/.test(xml)) failed++;
}
// A test run that exited non-zero without reporting any failure (a crash, an error between
// tests) still counts as one failure.
for (const f of existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith("exit-")) : []) {
  const report = join(dir, `${f.slice(5)}.xml`);
  const xml = existsSync(report) ? readFileSync(report, "utf8") : "";
  if (!/<(failure|error)\b/.test(xml)) failed++;
}
const tsc = join(dir, "typecheck");
if (existsSync(tsc)) {
  if (readFileSync(tsc, "utf8").trim() === "1") passed++;
  else failed++;
}
// skipped tests are neither passed nor failed: said on their own line, before the summary line
if (skipped) console.log(`${skipped} skipped (kernel features this machine lacks)`);
console.log(`${passed} passed, ${failed} failed`);
