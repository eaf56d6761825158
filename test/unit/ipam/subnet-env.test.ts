// subnet.env: cnikit's CNIKIT_BIG_TCP beside flannel's keys (written by the agent, read by overlay).
import { describe, expect, test } from "bun:test";
import { formatSubnetEnv, parseSubnetEnv } from "../../../src/ipam/subnet-env.ts";
import { CniError } from "../../../src/spec/error.ts";

describe("subnet.env CNIKIT_BIG_TCP", () => {
  test("written after flannel's keys and read back", () => {
    const text = formatSubnetEnv({ network: "10.1.0.0/16", subnet: "10.1.3.1/24", mtu: 1450, ipMasq: true, bpfPinDir: "/sys/fs/bpf/cnikit/overlay", bigTcp: 196608 });
    expect(text).toBe("FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\nCNIKIT_BPF_PIN_DIR=/sys/fs/bpf/cnikit/overlay\nCNIKIT_BIG_TCP=196608\n");
    expect(parseSubnetEnv(text).bigTcp).toBe(196608);
    expect(parseSubnetEnv("FLANNEL_SUBNET=10.1.3.1/24\n").bigTcp).toBeUndefined();
  });

  test("a value that is no GSO size is a config error naming the key", () => {
    for (const v of ["big", "1000", "600000", "196608.5"]) {
      const e = (() => {
        try {
          parseSubnetEnv(`FLANNEL_SUBNET=10.1.3.1/24\nCNIKIT_BIG_TCP=${v}\n`);
        } catch (err) {
          return err as CniError;
        }
      })();
      expect(e?.code).toBe(7);
      expect(e?.message).toContain(`CNIKIT_BIG_TCP=${v}`);
    }
  });
});
