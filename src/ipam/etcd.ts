/**
 * An etcd v3 client (the `etcd3` package, loaded only when called) as cnikit's etcd users want it:
 * the node agent and cluster-ipam. Deadlines on calls but not on watch streams, quick recovery after
 * an outage, TLS client certificates and username/password.
 */

import { readFileSync } from "node:fs";
import type { Etcd3 } from "etcd3";
import type { ConnectionOptions } from "node:tls";

/** How to reach etcd. */
export interface EtcdOptions {
  endpoints: string[];
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
  /** Per-call deadline in ms (default 5000). */
  timeoutMs?: number;
}

let sniPatched = false;

/**
 * gRPC names the server in TLS SNI even when it is an IP address (`https://10.0.0.5:2379`, the
 * usual way to list etcd members). RFC 6066 forbids IP addresses in SNI; Node ignores them, Bun
 * refuses the connection. Drop an IP servername before it reaches `tls.connect`: the certificate
 * is still checked against the address (its IP SANs), which is what the endpoint names.
 */
async function dropIPServerName(): Promise<void> {
  if (sniPatched) return;
  sniPatched = true;
  const tls = await import("node:tls");
  const { isIP } = await import("node:net");
  const mod = (tls as unknown as { default?: typeof tls }).default ?? tls;
  const connect = mod.connect;
  (mod as { connect: unknown }).connect = function (this: unknown, first: unknown, ...rest: unknown[]) {
    if (first && typeof first === "object" && typeof (first as ConnectionOptions).servername === "string" && isIP((first as ConnectionOptions).servername!)) {
      const { servername: _ip, ...o } = first as ConnectionOptions;
      return (connect as (...a: unknown[]) => unknown).call(this, o, ...rest);
    }
    return (connect as (...a: unknown[]) => unknown).call(this, first, ...rest);
  };
}

/** Open an etcd client (TLS client certificates and username/password when given). */
export async function connectEtcd(opts: EtcdOptions): Promise<Etcd3> {
  if (opts.caFile || opts.endpoints.some((e) => e.startsWith("https://"))) await dropIPServerName();
  (await import("./etcd-protos.ts")).serveEtcdProtos();
  const { Etcd3, isRecoverableError } = await import("etcd3");
  const { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen, retry } = await import("cockatiel");
  const o: Record<string, unknown> = {
    hosts: opts.endpoints,
    dialTimeout: opts.timeoutMs ?? 5000,
    // a deadline on each call, not on the watch stream (which would be cut every few seconds)
    defaultCallOptions: (ctx: { isStream: boolean }) => (ctx.isStream ? {} : { deadline: Date.now() + (opts.timeoutMs ?? 5000) }),
    // the client's defaults wait up to 30 s before a lost watch is tried again and keep a failed
    // host shut for 5 s; an agent wants its peers back within a second or two of etcd returning
    faultHandling: {
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: 3 }),
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }),
    },
  };
  if (opts.caFile) {
    o.credentials = {
      rootCertificate: readFileSync(opts.caFile),
      ...(opts.keyFile ? { privateKey: readFileSync(opts.keyFile) } : {}),
      ...(opts.certFile ? { certChain: readFileSync(opts.certFile) } : {}),
    };
  }
  if (opts.username) o.auth = { username: opts.username, password: opts.password ?? "" };
  return new Etcd3(o as unknown as ConstructorParameters<typeof Etcd3>[0]);
}

