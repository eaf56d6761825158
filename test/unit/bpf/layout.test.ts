// The remotes map value as user space writes and reads it: the node's address in host order (as
// struct bpf_tunnel_key wants it), the VNI in the low 24 bits and the direct-route flag in bit 31.
import { describe, expect, test } from "bun:test";
import { decodeRemote, encodeRemote, REMOTE_DIRECT, remoteKey } from "../../../src/bpf/programs/layout.ts";

describe("remotes map value", () => {
  test("tunnelled: address in host order, VNI word without the flag", () => {
    const v = encodeRemote({ remote: "192.168.1.13", vni: 0x123456 });
    expect([...v]).toEqual([0x0d, 0x01, 0xa8, 0xc0, 0x56, 0x34, 0x12, 0x00]);
    expect(decodeRemote(remoteKey("10.244.3.0/24"), v)).toEqual({ subnet: "10.244.3.0/24", remote: "192.168.1.13", vni: 0x123456 });
  });

  test("direct: bit 31 of the VNI word, read back as direct: true", () => {
    const v = encodeRemote({ remote: "192.168.1.14", vni: 1, direct: true });
    expect(new DataView(v.buffer).getUint32(4, true)).toBe((REMOTE_DIRECT | 1) >>> 0);
    expect(decodeRemote(remoteKey("10.244.4.7/24"), v)).toEqual({ subnet: "10.244.4.0/24", remote: "192.168.1.14", vni: 1, direct: true });
  });

  test("a VNI beyond 24 bits is refused rather than read as the flag", () => {
    expect(() => encodeRemote({ remote: "192.168.1.14", vni: 0x1000000 })).toThrow(/not a VNI/);
    expect(() => encodeRemote({ remote: "192.168.1.14", vni: -1 })).toThrow(/not a VNI/);
  });
});
