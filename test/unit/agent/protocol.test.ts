import { describe, expect, test } from "bun:test";
import {
  decodeHeader,
  decodeReply,
  decodeRequestBody,
  encodeReply,
  encodeRequest,
  encodeDecline,
  FrameReader,
  HEADER_SIZE,
  MAX_REQUEST_BODY,
  MAX_STDIN,
  PROTOCOL_VERSION,
} from "../../../src/agent/protocol.ts";

const enc = new TextEncoder();
const req = { type: "bridge", env: { CNI_COMMAND: "ADD", CNI_CONTAINERID: "c1", CNIKIT_DEBUG: "1" }, stdin: enc.encode('{"cniVersion":"1.1.0"}') };

describe("frames", () => {
  test("a request: envelope, type, environment, stdin; decoded back", () => {
    const f = encodeRequest(req);
    expect(new TextDecoder().decode(f.subarray(0, 4))).toBe("CNIK");
    expect(decodeHeader(f)).toEqual({ version: PROTOCOL_VERSION, length: f.length - HEADER_SIZE });
    const body = f.subarray(HEADER_SIZE);
    // the layout the C shim writes: type NUL, K=V NUL..., NUL, stdin
    expect(new TextDecoder().decode(body)).toBe('bridge\0CNI_COMMAND=ADD\0CNI_CONTAINERID=c1\0CNIKIT_DEBUG=1\0\0{"cniVersion":"1.1.0"}');
    const back = decodeRequestBody(body);
    expect(back.type).toBe("bridge");
    expect(back.env).toEqual(req.env);
    expect(new TextDecoder().decode(back.stdin)).toBe('{"cniVersion":"1.1.0"}');
  });

  test("only CNI_* and CNIKIT_* variables are taken; a value may hold '='", () => {
    const body = enc.encode("ptp\0PATH=/bin\0CNI_ARGS=IP=10.0.0.2;K8S_POD_NAME=a\0\0");
    expect(decodeRequestBody(body).env).toEqual({ CNI_ARGS: "IP=10.0.0.2;K8S_POD_NAME=a" });
  });

  test("an empty stdin and a binary one pass untouched", () => {
    expect(decodeRequestBody(encodeRequest({ ...req, stdin: new Uint8Array() }).subarray(HEADER_SIZE)).stdin.length).toBe(0);
    const bin = new Uint8Array([0, 255, 1, 0, 7]);
    expect([...decodeRequestBody(encodeRequest({ ...req, stdin: bin }).subarray(HEADER_SIZE)).stdin]).toEqual([...bin]);
  });

  test("malformed bodies are refused with a reason", () => {
    expect(() => decodeRequestBody(enc.encode("bridge"))).toThrow(/NUL-terminated/);
    expect(() => decodeRequestBody(enc.encode("\0\0"))).toThrow(/bad plugin type/);
    expect(() => decodeRequestBody(enc.encode("../x\0\0"))).toThrow(/bad plugin type/);
    expect(() => decodeRequestBody(enc.encode("bridge\0novalue\0\0"))).toThrow(/without a name/);
    const big = new Uint8Array(MAX_STDIN + 20);
    big.set(enc.encode("bridge\0\0"));
    expect(() => decodeRequestBody(big)).toThrow(RangeError);
  });

  test("a reply: exit code then stdout bytes; the other-version answer is empty", () => {
    const r = decodeReply(encodeReply({ exitCode: 1, stdout: enc.encode("{}\n") }));
    expect(r.version).toBe(PROTOCOL_VERSION);
    expect(r.reply!.exitCode).toBe(1);
    expect(new TextDecoder().decode(r.reply!.stdout)).toBe("{}\n");
    expect(r.reply!.stderr!.length).toBe(0);
    const logged = decodeReply(encodeReply({ exitCode: 0, stdout: enc.encode("out"), stderr: enc.encode("a log line\n") })).reply!;
    expect(new TextDecoder().decode(logged.stdout)).toBe("out");
    expect(new TextDecoder().decode(logged.stderr)).toBe("a log line\n");
    expect(encodeDecline().length).toBe(HEADER_SIZE);
    expect(decodeHeader(encodeDecline())).toEqual({ version: PROTOCOL_VERSION, length: 0 });
    expect(decodeReply(encodeDecline())).toEqual({ version: PROTOCOL_VERSION });
  });

  test("a frame of another version is read whole (the envelope never changes)", () => {
    const f = encodeRequest(req, 7);
    const r = new FrameReader(MAX_REQUEST_BODY);
    expect(r.push(f)).toBe(true);
    expect(r.header!.version).toBe(7);
    const other = new Uint8Array(HEADER_SIZE + 8);
    other.set(encodeReply({ exitCode: 0, stdout: new Uint8Array() }).subarray(0, HEADER_SIZE));
    new DataView(other.buffer).setUint32(4, 2);
    expect(decodeReply(other)).toEqual({ version: 2 });
    expect(() => decodeHeader(enc.encode("HTTP/1.1 200"))).toThrow(/bad magic/);
  });
});

describe("FrameReader", () => {
  test("assembles a frame from chunks of any size", () => {
    const f = encodeRequest(req);
    for (const size of [1, 3, 11, 12, 13, 64]) {
      const r = new FrameReader(MAX_REQUEST_BODY);
      let done = false;
      for (let i = 0; i < f.length; i += size) done = r.push(f.subarray(i, i + size));
      expect(done).toBe(true);
      expect(decodeRequestBody(r.bodyBytes!).type).toBe("bridge");
    }
  });

  test("an oversized body is counted, not kept; bytes past the frame are an error", () => {
    const r = new FrameReader(16);
    const f = encodeRequest(req);
    expect(r.push(f)).toBe(true);
    expect(r.oversized).toBe(true);
    expect(r.bodyBytes).toBeUndefined();
    const r2 = new FrameReader(MAX_REQUEST_BODY);
    expect(() => r2.push(Buffer.concat([f, new Uint8Array([1])]))).toThrow(/after the end/);
  });
});
