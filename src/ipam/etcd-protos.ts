/**
 * etcd3's `.proto` files, embedded in the compiled binary. The `etcd3` client loads them at run
 * time from `${__dirname}/../proto/`, and in a `bun build --compile` binary `__dirname` is the build
 * machine's node_modules: on a node (the DaemonSet's image holds only dist/cnikit) the file is not
 * there and the agent could not talk to etcd. `serveEtcdProtos()` answers reads of those paths
 * from the embedded text.
 */

import auth from "../../node_modules/etcd3/proto/auth.proto" with { type: "text" };
import kv from "../../node_modules/etcd3/proto/kv.proto" with { type: "text" };
import rpc from "../../node_modules/etcd3/proto/rpc.proto" with { type: "text" };

const PROTOS: Record<string, string> = { "auth.proto": auth, "kv.proto": kv, "rpc.proto": rpc };
const PATH = /[\\/]etcd3[\\/](?:lib[\\/]\.\.[\\/])?proto[\\/]([a-z]+\.proto)$/;
let serving = false;

/** Make `fs.readFileSync` of etcd3's proto paths return the embedded files (once; before loading `etcd3`). */
export function serveEtcdProtos(): void {
  if (serving) return;
  serving = true;
  // the CommonJS fs object, which protobufjs reads files through
  const fs = require("node:fs") as { readFileSync: (...a: unknown[]) => unknown };
  const readFileSync = fs.readFileSync;
  fs.readFileSync = function (this: unknown, path: unknown, ...rest: unknown[]) {
    const m = typeof path === "string" ? PATH.exec(path) : null;
    const text = m ? PROTOS[m[1]!] : undefined;
    if (text !== undefined) {
      const o = rest[0];
      return typeof o === "string" || (o && typeof o === "object" && (o as { encoding?: unknown }).encoding) ? text : Buffer.from(text);
    }
    return readFileSync.call(this, path, ...rest);
  };
}
