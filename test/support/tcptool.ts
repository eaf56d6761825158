/**
 * A TCP tool run inside namespaces by tests and benches (`bun test/support/tcptool.ts MODE ...`):
 *   recv PORT          print "ready", then the receiving rate in bits/s (after a 300 ms warm-up)
 *                      once the sender closes
 *   send HOST PORT MS  write for MS milliseconds
 *   whoami PORT        print "ready"; answer every connection with the address it came from
 *   ask HOST PORT      connect and print the answer
 */

import net from "node:net";

const [mode, a, b, c] = process.argv.slice(2);
if (mode === "recv") {
  const srv = net.createServer((s) => {
    let t0 = 0;
    let tw = 0;
    let bytes = 0;
    let last = 0;
    s.on("data", (d) => {
      const now = performance.now();
      if (!t0) t0 = now;
      if (now - t0 >= 300) {
        if (!tw) tw = now;
        else bytes += d.length;
      }
      last = now;
    });
    s.on("close", () => {
      console.log(String(tw && last > tw ? (bytes * 8) / ((last - tw) / 1000) : 0));
      process.exit(0);
    });
  });
  srv.listen(Number(a), "0.0.0.0", () => console.log("ready"));
  setTimeout(() => {
    console.log("0");
    process.exit(2);
  }, 20000);
} else if (mode === "send") {
  const chunk = new Uint8Array(65536);
  const s = net.connect(Number(b), a, () => {
    const end = performance.now() + Number(c);
    const pump = () => {
      while (performance.now() < end) {
        if (!s.write(chunk)) {
          s.once("drain", pump);
          return;
        }
      }
      s.end();
    };
    pump();
  });
  s.on("error", (e) => {
    console.error(String(e));
    process.exit(1);
  });
  s.on("close", () => process.exit(0));
} else if (mode === "whoami") {
  const srv = net.createServer((s) => s.end(`${s.remoteAddress?.replace(/^::ffff:/, "")}\n`));
  srv.listen(Number(a), "0.0.0.0", () => console.log("ready"));
} else if (mode === "ask") {
  const s = net.connect(Number(b), a!);
  let out = "";
  s.on("data", (d) => (out += d));
  s.on("close", () => {
    process.stdout.write(out);
    process.exit(0);
  });
  s.on("error", (e) => {
    console.error(String(e));
    process.exit(1);
  });
  setTimeout(() => process.exit(3), 5000);
} else {
  console.error("usage: tcptool recv PORT | send HOST PORT MS | whoami PORT | ask HOST PORT");
  process.exit(2);
}
