/**
 * etcd v3 through its JSON gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/auth/authenticate`) with
 * `fetch`: what a short-lived plugin process needs, without loading a gRPC stack (which costs the
 * etcd3 client ~70 ms of start-up per invocation). Keys and values are base64 on the wire.
 */

import { readText } from "../../sys/file.ts";
import type { EtcdOptions } from "../etcd.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");
const unb64 = (s: string | undefined) => (s === undefined ? "" : Buffer.from(s, "base64").toString());

/** The end of the range holding every key that starts with `prefix`. */
export function prefixEnd(prefix: string): string {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      b[i]! += 1;
      return b.subarray(0, i + 1).toString("base64");
    }
  }
  return Buffer.from([0]).toString("base64");
}

/** A key-value as the gateway returns it (decoded). */
export interface KV {
  key: string;
  value: string;
}

/** One comparison of a transaction. */
export type Compare = { key: string; created: false } | { key: string; value: string };
/** One operation of a transaction. */
export type Op = { put: string; value: string } | { del: string } | { get: string };

interface RawKV {
  key?: string;
  value?: string;
}

export class EtcdGateway {
  private token: string | undefined;
  private readonly tls: Record<string, unknown> | undefined;

  constructor(private readonly o: EtcdOptions) {
    if (o.caFile || o.certFile) {
      this.tls = {
        ...(o.caFile ? { ca: readText(o.caFile) } : {}),
        ...(o.certFile ? { cert: readText(o.certFile) } : {}),
        ...(o.keyFile ? { key: readText(o.keyFile) } : {}),
      };
    }
  }

  /** POST to each endpoint in turn until one answers; HTTP errors are thrown with etcd's message. */
  private async post(path: string, body: unknown, auth = true): Promise<Record<string, unknown>> {
    if (auth && this.o.username && !this.token) {
      const r = await this.post("/v3/auth/authenticate", { name: this.o.username, password: this.o.password ?? "" }, false);
      this.token = String(r.token ?? "");
    }
    let last: unknown;
    for (const ep of this.o.endpoints) {
      let res: Response;
      try {
        res = await fetch(`${ep.replace(/\/+$/, "")}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", ...(auth && this.token ? { authorization: this.token } : {}) },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(this.o.timeoutMs ?? 5000),
          ...(this.tls ? { tls: this.tls } : {}),
        } as RequestInit);
      } catch (e) {
        last = e; // this member is unreachable: try the next
        continue;
      }
      const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      if (!res.ok) throw new Error(`etcd ${path}: ${String(json.message ?? json.error ?? res.statusText)}`);
      return json;
    }
    throw new Error(`no etcd endpoint answered (${this.o.endpoints.join(", ")}): ${(last as Error)?.message ?? last}`);
  }

  /** Every key-value under `prefix`. */
  async range(prefix: string): Promise<KV[]> {
    const r = await this.post("/v3/kv/range", { key: b64(prefix), range_end: prefixEnd(prefix) });
    return ((r.kvs as RawKV[] | undefined) ?? []).map((kv) => ({ key: unb64(kv.key), value: unb64(kv.value) }));
  }

  /** One key's value, if it is there. */
  async get(key: string): Promise<string | undefined> {
    const r = await this.post("/v3/kv/range", { key: b64(key) });
    const kv = (r.kvs as RawKV[] | undefined)?.[0];
    return kv ? unb64(kv.value) : undefined;
  }

  /** How many keys are under `prefix`. */
  async count(prefix: string): Promise<number> {
    const r = await this.post("/v3/kv/range", { key: b64(prefix), range_end: prefixEnd(prefix), count_only: true });
    return Number(r.count ?? 0);
  }

  /**
   * A transaction: when every comparison holds, `then` runs, else `otherwise`; returns whether it
   * succeeded and, per operation run, the value a `get` found (undefined for other operations).
   */
  async txn(compare: Compare[], then: Op[], otherwise: Op[] = []): Promise<{ succeeded: boolean; values: (string | undefined)[] }> {
    const cmp = compare.map((c) =>
      "created" in c
        ? { key: b64(c.key), target: "CREATE", result: "EQUAL", create_revision: "0" }
        : { key: b64(c.key), target: "VALUE", result: "EQUAL", value: b64(c.value) },
    );
    const op = (o: Op) =>
      "put" in o ? { request_put: { key: b64(o.put), value: b64(o.value) } } : "del" in o ? { request_delete_range: { key: b64(o.del) } } : { request_range: { key: b64(o.get) } };
    const r = await this.post("/v3/kv/txn", { compare: cmp, success: then.map(op), failure: otherwise.map(op) });
    const succeeded = r.succeeded === true;
    const responses = (r.responses as Array<{ response_range?: { kvs?: RawKV[] } }> | undefined) ?? [];
    const values = responses.map((x) => {
      const kv = x.response_range?.kvs?.[0];
      return kv ? unb64(kv.value) : undefined;
    });
    return { succeeded, values };
  }
}
