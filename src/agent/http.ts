/** The agent's HTTP endpoints: `/healthz`, `/readyz` and Prometheus `/metrics`. */

/** What the endpoints report. */
export interface HealthSource {
  /** /healthz: the process does its job (200) or not (503). */
  healthy(): boolean;
  /** /readyz: it takes work (200); false while starting and while shutting down. */
  ready(): boolean;
  /** /metrics: the text exposition. */
  metrics(): string;
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
      return new Response("not found\n", { status: 404 });
    },
  });
}
