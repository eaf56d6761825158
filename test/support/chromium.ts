/**
 * Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for tests of the
 * agent's status page: a fresh profile in a temp dir, DevTools on a loopback port of the caller's
 * network namespace, one page; evaluate JS in it and take screenshots; stopped by its PID.
 * Chromium's own temp files (its singleton socket directory) go inside the profile (TMPDIR), and it
 * is asked to quit over DevTools before it is killed, so that no process of it is still writing
 * into the profile when it is removed (a SIGKILL of the browser alone left both behind).
 */

import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A page in a running headless Chromium. */
export interface Browser {
  /** Evaluate an expression in the page; its value (JSON-serializable). */
  evaluate<T>(expression: string): Promise<T>;
  /** A PNG screenshot of the page. */
  screenshot(): Promise<Uint8Array>;
  /** Stop Chromium (by PID) and remove its profile. */
  close(): Promise<void>;
}

/** Start headless Chromium on `url` (window 1280x900). */
export async function openPage(url: string): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "cnikit-ckv-chromium-"));
  const proc = Bun.spawn(
    ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--disable-dev-shm-usage", `--user-data-dir=${profile}`, "--window-size=1280,900", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"],
    { stdout: "ignore", stderr: "pipe", env: { ...process.env, TMPDIR: profile } },
  );
  const running = () => proc.exitCode === null && proc.signalCode === null;
  /** Quit (`quit` asks over DevTools first), then remove the profile, again if a child wrote late. */
  const close = async (quit?: () => Promise<unknown>) => {
    if (running() && quit) {
      await Promise.race([quit().catch(() => {}), Bun.sleep(3_000)]);
      await Promise.race([proc.exited, Bun.sleep(5_000)]);
    }
    if (running()) proc.kill("SIGKILL");
    await proc.exited;
    for (let i = 0; i < 10 && existsSync(profile); i++) {
      rmSync(profile, { recursive: true, force: true });
      await Bun.sleep(200);
    }
  };
  try {
    // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on stderr
    const reader = proc.stderr.getReader();
    let err = "";
    const deadline = Date.now() + 30_000;
    let ws = "";
    while (!ws) {
      if (Date.now() > deadline) throw new Error(`chromium did not start: ${err.slice(-2000)}`);
      const { value, done } = await reader.read();
      if (done) throw new Error(`chromium exited: ${err.slice(-2000)}`);
      err += new TextDecoder().decode(value);
      ws = /DevTools listening on (ws:\/\/\S+)/.exec(err)?.[1] ?? "";
    }
    void (async () => {
      while (!(await reader.read()).done); // keep draining its log
    })().catch(() => {});
    const sock = new WebSocket(ws);
    await new Promise<void>((res, rej) => {
      sock.onopen = () => res();
      sock.onerror = () => rej(new Error(`cannot connect to ${ws}`));
    });
    let seq = 0;
    const waiting = new Map<number, { res: (v: Record<string, unknown>) => void; rej: (e: Error) => void }>();
    sock.onmessage = (ev) => {
      const m = JSON.parse(String(ev.data)) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
      const w = m.id !== undefined ? waiting.get(m.id) : undefined;
      if (!w) return;
      waiting.delete(m.id!);
      if (m.error) w.rej(new Error(m.error.message));
      else w.res(m.result ?? {});
    };
    const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string) =>
      new Promise<Record<string, unknown>>((res, rej) => {
        const id = ++seq;
        waiting.set(id, { res, rej });
        sock.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
      });
    const { targetId } = (await send("Target.createTarget", { url })) as { targetId: string };
    const { sessionId } = (await send("Target.attachToTarget", { targetId, flatten: true })) as { sessionId: string };
    await send("Emulation.setDeviceMetricsOverride", { width: 1280, height: 900, deviceScaleFactor: 1, mobile: false }, sessionId);
    return {
      async evaluate<T>(expression: string): Promise<T> {
        const r = (await send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true }, sessionId)) as { result: { value: T }; exceptionDetails?: { text: string } };
        if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.text}`);
        return r.result.value;
      },
      async screenshot(): Promise<Uint8Array> {
        // the whole page, up to 2400 px high
        const h = (await send("Runtime.evaluate", { expression: "document.documentElement.scrollHeight", returnByValue: true }, sessionId)) as { result: { value: number } };
        await send("Emulation.setDeviceMetricsOverride", { width: 1280, height: Math.min(Math.max(h.result.value, 900), 2400), deviceScaleFactor: 1, mobile: false }, sessionId);
        const r = (await send("Page.captureScreenshot", { format: "png" }, sessionId)) as { data: string };
        return Buffer.from(r.data, "base64");
      },
      async close() {
        await close(() => send("Browser.close"));
        sock.close();
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}
