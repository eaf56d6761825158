/** The agent's HTTP endpoints: `/healthz`, `/readyz`, Prometheus `/metrics` and the status page `/ui`. */

import { UI_HTML } from "./ui.ts";

/** What the endpoints report. */
export interface HealthSource {
  /** /healthz: the process does its job (200) or not (503). */
  healthy(): boolean;
  /** /readyz: it takes work (200); false while starting and while shutting down. */
  ready(): boolean;
  /** /metrics: the text exposition. */
  metrics(): string;
  /**
   * /ui (the status page, ui.ts), /api/status (status-data.ts), /ui/graph.svg, and
   * /api/attachments (this node's attachments, which other nodes' pictures ask for).
   */
  ui?: { status(): Promise<unknown>; graphSvg(): Promise<string>; attachments?(): unknown };
}

/** Serve the endpoints on `host:port`; returns the server (stop it with `stop(true)`). */
export function serveHealth(at: { host: string; port: number }, src: HealthSource): ReturnType<typeof Bun.serve> {
  const status = (ok: boolean, yes: string, no: string) => new Response(ok ? `${yes}\n` : `${no}\n`, { status: ok ? 200 : 503 });
  return Bun.serve({
    hostname: at.host,
    port: at.port,
    fetch: (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/healthz") return status(src.healthy(), "ok", "stale");
      if (path === "/readyz") return status(src.ready(), "ready", "not ready");
      if (path === "/metrics") return new Response(src.metrics(), { headers: { "content-type": "text/plain; version=0.0.4" } });
      if (src.ui) return serveUi(path, src.ui);
      return new Response("not found\n", { status: 404 });
    },
  });
}

/** The status page, its data and its picture; 404 for anything else. */
async function serveUi(path: string, ui: NonNullable<HealthSource["ui"]>): Promise<Response> {
  const nocache = { "cache-control": "no-store" };
  try {
    if (path === "/ui" || path === "/ui/") return new Response(UI_HTML, { headers: { "content-type": "text/html; charset=utf-8", ...nocache } });
    if (path === "/api/status") return Response.json(await ui.status(), { headers: nocache });
    if (path === "/api/attachments" && ui.attachments) return Response.json(ui.attachments(), { headers: nocache });
    if (path === "/ui/graph.svg") return new Response(await ui.graphSvg(), { headers: { "content-type": "image/svg+xml", ...nocache } });
  } catch (e) {
    return new Response(`${(e as Error).message}\n`, { status: 500 });
  }
  return new Response("not found\n", { status: 404 });
}
