/**
 * The wire protocol between `cnikit-shim` and the daemon's CNI server, over a unix stream socket.
 * One request and one reply per connection; each is one frame:
 *
 *   "CNIK" | version (u32, big-endian) | body length (u32, big-endian) | body
 *
 * The 12-byte envelope never changes between versions, so either side can read a whole frame of
 * another version and say so: the daemon answers a request of another version with an empty reply
 * frame carrying its own version, and the shim then runs the standalone binary. An empty reply of
 * the shim's own version is the daemon declining the call for another reason (the shim runs in
 * another network or mount namespace than the daemon: the pod's host side or its paths are not
 * the daemon's); the shim then runs the standalone binary too.
 *
 * Request body (version 1): the plugin type, NUL; each forwarded environment entry `K=V`, NUL;
 * an empty entry (a lone NUL) ending the environment; the stdin bytes up to the end. The shim adds
 * `CNIKIT_SHIM_NETNS=<inode of its network namespace>` and `CNIKIT_SHIM_MNTNS=<inode of its mount
 * namespace>` to the environment entries.
 * Reply body (version 1): the exit code (u32, big-endian), the stdout length (u32, big-endian), the
 * stdout bytes, then the stderr bytes (the plugin's logs) up to the end.
 *
 * `shim/cnikit-shim.c` implements the other side; keep them in step.
 */

/** This protocol's version; a change to a body's layout takes a new one. */
export const PROTOCOL_VERSION = 1;
/** The frame's magic bytes. */
export const MAGIC = "CNIK";
/** Size of the envelope (magic, version, body length). */
export const HEADER_SIZE = 12;
/** Largest stdin (the plugin's config) the daemon takes. */
export const MAX_STDIN = 1 << 20;
/** Largest environment part (type and entries) the daemon takes. */
export const MAX_ENV = 64 << 10;
/** Largest request body the daemon reads into memory. */
export const MAX_REQUEST_BODY = MAX_STDIN + MAX_ENV;
/** The socket path when none is configured. */
export const DEFAULT_SOCKET = "/run/cnikit/cni.sock";

/**
 * The entries naming the shim's network and mount namespaces (their inodes), which the daemon
 * compares with its own, and the /proc/self/ns file of each.
 */
export const SHIM_NAMESPACES = [
  ["CNIKIT_SHIM_NETNS", "net"],
  ["CNIKIT_SHIM_MNTNS", "mnt"],
] as const;

/** Which environment variables a request carries: the spec's and cnikit's own. */
export function isForwardedEnv(name: string): boolean {
  return name.startsWith("CNI_") || name.startsWith("CNIKIT_");
}

/** One plugin call. */
export interface CniRequest {
  /** The plugin type (basename of the shim's argv[0]). */
  type: string;
  /** The forwarded environment (CNI_*, CNIKIT_*). */
  env: Record<string, string>;
  /** stdin, raw. */
  stdin: Uint8Array;
}

/** What the plugin printed and how it exited. */
export interface CniReply {
  exitCode: number;
  stdout: Uint8Array;
  /** What the plugin logged; the shim writes it to its own stderr. */
  stderr?: Uint8Array;
}

/** A frame's envelope. */
export interface FrameHeader {
  version: number;
  length: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function frame(version: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + body.length);
  out.set(enc.encode(MAGIC), 0);
  const v = new DataView(out.buffer);
  v.setUint32(4, version);
  v.setUint32(8, body.length);
  out.set(body, HEADER_SIZE);
  return out;
}

/** Parse an envelope; throws when the magic is wrong (not a cnikit peer). */
export function decodeHeader(b: Uint8Array): FrameHeader {
  if (b.length < HEADER_SIZE) throw new Error(`frame header: want ${HEADER_SIZE} bytes, have ${b.length}`);
  if (dec.decode(b.subarray(0, 4)) !== MAGIC) throw new Error("frame header: bad magic (not a cnikit-shim request)");
  const v = new DataView(b.buffer, b.byteOffset, HEADER_SIZE);
  return { version: v.getUint32(4), length: v.getUint32(8) };
}

/** A request frame (for tests, benchmarks and TypeScript clients; the shim builds its own). */
export function encodeRequest(req: CniRequest, version = PROTOCOL_VERSION): Uint8Array {
  const parts = [req.type, ...Object.entries(req.env).map(([k, v]) => `${k}=${v}`), ""].map((s) => `${s}\0`).join("");
  const head = enc.encode(parts);
  const body = new Uint8Array(head.length + req.stdin.length);
  body.set(head, 0);
  body.set(req.stdin, head.length);
  return frame(version, body);
}

/** Parse a version-1 request body; throws with a message naming what is wrong. */
export function decodeRequestBody(body: Uint8Array): CniRequest {
  let at = 0;
  const next = (): string => {
    const end = body.indexOf(0, at);
    if (end < 0 || end >= MAX_ENV) throw new Error("malformed request: the environment is not NUL-terminated within 64 KiB");
    const s = dec.decode(body.subarray(at, end));
    at = end + 1;
    return s;
  };
  const type = next();
  if (!type || type.includes("/") || type.length > 255) throw new Error(`malformed request: bad plugin type ${JSON.stringify(type)}`);
  const env: Record<string, string> = {};
  for (let s = next(); s !== ""; s = next()) {
    const eq = s.indexOf("=");
    if (eq <= 0) throw new Error(`malformed request: environment entry without a name: ${JSON.stringify(s.slice(0, 40))}`);
    const k = s.slice(0, eq);
    if (isForwardedEnv(k)) env[k] = s.slice(eq + 1);
  }
  const stdin = body.subarray(at);
  if (stdin.length > MAX_STDIN) throw new RangeError(`request too large: stdin of ${stdin.length} bytes (the limit is ${MAX_STDIN} bytes, 1 MiB)`);
  return { type, env, stdin };
}

/** A reply frame. */
export function encodeReply(reply: CniReply): Uint8Array {
  const err = reply.stderr ?? new Uint8Array();
  const body = new Uint8Array(8 + reply.stdout.length + err.length);
  const v = new DataView(body.buffer);
  v.setUint32(0, reply.exitCode >>> 0);
  v.setUint32(4, reply.stdout.length);
  body.set(reply.stdout, 8);
  body.set(err, 8 + reply.stdout.length);
  return frame(PROTOCOL_VERSION, body);
}

/**
 * The daemon declining a call (another protocol version, another namespace): an empty
 * reply with this side's version; the shim runs the standalone binary.
 */
export function encodeDecline(): Uint8Array {
  return frame(PROTOCOL_VERSION, new Uint8Array(0));
}

/**
 * Parse a whole reply frame to a request of version `sent`; a reply of another version (the daemon
 * speaks that one) or an empty one (the daemon declines) carries no reply.
 */
export function decodeReply(b: Uint8Array, sent = PROTOCOL_VERSION): { version: number; reply?: CniReply } {
  const h = decodeHeader(b);
  if (b.length !== HEADER_SIZE + h.length) throw new Error(`reply: want ${HEADER_SIZE + h.length} bytes, have ${b.length}`);
  if (h.version !== sent || h.version !== PROTOCOL_VERSION || h.length === 0) return { version: h.version };
  if (h.length < 8) throw new Error("reply: body shorter than its exit code and stdout length");
  const body = b.subarray(HEADER_SIZE);
  const v = new DataView(body.buffer, body.byteOffset, 8);
  const exitCode = v.getUint32(0);
  const n = v.getUint32(4);
  if (8 + n > body.length) throw new Error("reply: stdout length past the end of the body");
  return { version: h.version, reply: { exitCode, stdout: body.slice(8, 8 + n), stderr: body.slice(8 + n) } };
}

/**
 * Collects one frame from chunks as they arrive. The body is kept only up to `maxBody` bytes; a
 * longer one is counted and dropped (`oversized`), so a huge request costs no memory.
 */
export class FrameReader {
  private head = new Uint8Array(HEADER_SIZE);
  private headLen = 0;
  private body: Uint8Array | undefined;
  private bodyLen = 0;
  /** The envelope, once its 12 bytes arrived. */
  header: FrameHeader | undefined;
  /** Whether the body is larger than the limit (its bytes are dropped). */
  oversized = false;

  constructor(private readonly maxBody: number) {}

  /** Feed bytes; returns true once the whole frame is in. Bytes past the frame are an error. */
  push(chunk: Uint8Array): boolean {
    let at = 0;
    if (!this.header) {
      const take = Math.min(HEADER_SIZE - this.headLen, chunk.length);
      this.head.set(chunk.subarray(0, take), this.headLen);
      this.headLen += take;
      at = take;
      if (this.headLen < HEADER_SIZE) return false;
      this.header = decodeHeader(this.head);
      this.oversized = this.header.length > this.maxBody;
      if (!this.oversized) this.body = new Uint8Array(this.header.length);
    }
    const rest = chunk.length - at;
    const want = this.header.length - this.bodyLen;
    if (rest > want) throw new Error("malformed request: bytes after the end of the frame");
    if (this.body) this.body.set(chunk.subarray(at), this.bodyLen);
    this.bodyLen += rest;
    return this.bodyLen === this.header.length;
  }

  /** Whether the frame is complete. */
  get done(): boolean {
    return this.header !== undefined && this.bodyLen === this.header.length;
  }

  /** The body (undefined when oversized). */
  get bodyBytes(): Uint8Array | undefined {
    return this.body;
  }
}
