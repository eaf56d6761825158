// Encoding of clsact and cls_bpf messages (src/netlink/tc-bpf.ts), byte for byte against the
// layout of struct tcmsg and the TCA_BPF_* attributes that iproute2's `tc filter add ... bpf da`
// sends; and decoding of a filter as the kernel dumps it. The kernel's view is checked by the
// integration tests (test/integration/bpf, `tc filter show`).
import { describe, expect, test } from "bun:test";
import { encodeAttrs, nla } from "../../../src/netlink/attr.ts";
import { toHex } from "../../../src/netlink/bytes.ts";
import { decodeTc, encodeTc, TCA_KIND, TCA_OPTIONS } from "../../../src/netlink/tc.ts";
import {
  CLSACT_EGRESS,
  CLSACT_INGRESS,
  clsactDirection,
  decodeBpfFilter,
  encodeBpfFilter,
  encodeClsact,
  encodeFilterRef,
  TCA_BPF_FLAGS,
  TCA_BPF_ID,
  TCA_BPF_NAME,
  TCA_BPF_TAG,
} from "../../../src/netlink/tc-bpf.ts";

describe("clsact and cls_bpf encoding", () => {
  test("clsact qdisc: handle ffff:, parent ffff:fff1, kind clsact", () => {
    expect(toHex(encodeClsact(7))).toBe(
      "00000000" + "07000000" + "0000ffff" + "f1ffffff" + "00000000" + // tcmsg
        "0b000100" + "636c736163740000", // TCA_KIND "clsact\0" padded
    );
  });

  test("cls_bpf filter: ingress parent, prio 1 / ETH_P_ALL, kind bpf, fd, name, direct action", () => {
    const b = encodeBpfFilter({ ifindex: 3, direction: "ingress", fd: 9, name: "cnikit-pod" });
    expect(toHex(b.subarray(0, 20))).toBe("00000000" + "03000000" + "01000000" + "f2ffffff" + "00030100");
    expect(toHex(b.subarray(20))).toBe(
      "08000100" + "62706600" + // TCA_KIND "bpf\0"
        "24000200" + // TCA_OPTIONS, 36 bytes
        "08000600" + "09000000" + // TCA_BPF_FD 9
        "0f000700" + "636e696b69742d706f640000" + // TCA_BPF_NAME "cnikit-pod\0" padded
        "08000800" + "01000000", // TCA_BPF_FLAGS ACT_DIRECT
    );
    const egress = encodeBpfFilter({ ifindex: 3, direction: "egress", fd: 9, name: "x", prio: 2, handle: 5, directAction: false });
    const t = decodeTc(egress);
    expect([t.parent, t.handle, t.info >>> 16, t.kind]).toEqual([CLSACT_EGRESS, 5, 2, "bpf"]);
    expect(decodeBpfFilter(t)).toEqual({ name: "x", directAction: false });
  });

  test("a filter reference for deletion: by prio and handle, or every filter of the hook", () => {
    expect(toHex(encodeFilterRef({ ifindex: 3, direction: "ingress", prio: 1, handle: 1 }))).toBe("000000000300000001000000f2ffffff00030100");
    expect(toHex(encodeFilterRef({ ifindex: 3, direction: "egress" }))).toBe("000000000300000000000000f3ffffff00000000");
  });

  test("decode a dumped cls_bpf filter: name, program id and tag, direct action", () => {
    const body = encodeTc({ ifindex: 3, handle: 1, parent: CLSACT_INGRESS, info: 0x00010300 }, [
      nla.str(TCA_KIND, "bpf"),
      nla.nested(TCA_OPTIONS, [
        nla.str(TCA_BPF_NAME, "cnikit-vxlan"),
        nla.u32(TCA_BPF_FLAGS, 1),
        nla.u32(TCA_BPF_ID, 42),
        nla.bytes(TCA_BPF_TAG, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])),
      ]),
    ]);
    const t = decodeTc(body);
    expect(clsactDirection(t.parent)).toBe("ingress");
    expect(decodeBpfFilter(t)).toEqual({ name: "cnikit-vxlan", directAction: true, progId: 42, tag: "0102030405060708" });
    expect(decodeBpfFilter({ ...t, kind: "u32" })).toBeUndefined();
    expect(encodeAttrs([])).toEqual(new Uint8Array(0));
  });
});
