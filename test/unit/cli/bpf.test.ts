// `cnikit bpf`'s text for one network: pods, other nodes' subnets (tunnelled with their VNI, or
// routed directly), the vxlan and underlay devices, counters that moved.
import { describe, expect, test } from "bun:test";
import { formatNetwork, type NetworkReport } from "../../../src/cli/bpf.ts";

describe("cnikit bpf, one network in words", () => {
  test("tunnelled and direct subnets, the underlay device of direct routes, only counters that moved", () => {
    const r: NetworkReport = {
      network: "overlay",
      pinDir: "/sys/fs/bpf/cnikit/overlay",
      endpoints: [{ ip: "10.244.1.5", ifindex: 7, ifname: "veth1", podMac: "0a:00:00:00:00:05", hostMac: "ee:ee:ee:ee:ee:07" }],
      remotes: [
        { subnet: "10.244.2.0/24", remote: "192.168.1.12", vni: 1, direct: true },
        { subnet: "10.244.3.0/24", remote: "172.16.0.13", vni: 1 },
      ],
      vxlanIfindex: 4,
      underlayIfindex: 2,
      stats: { podToRemoteDirect: { packets: "3", bytes: "300" }, podToRemote: { packets: "0", bytes: "0" } },
    };
    const names = new Map([[2, "eth0"], [4, "cnikit.1"], [7, "veth1"]]);
    expect(formatNetwork(r, names)).toEqual([
      "network overlay (pins in /sys/fs/bpf/cnikit/overlay)",
      "  local pods: 1",
      "    10.244.1.5 -> ifindex 7 (veth1), pod mac 0a:00:00:00:00:05, gateway mac ee:ee:ee:ee:ee:07",
      "  other nodes' subnets: 2",
      "    10.244.2.0/24 -> node 192.168.1.12, direct (no tunnel)",
      "    10.244.3.0/24 -> node 172.16.0.13, vni 1",
      "  vxlan device: ifindex 4 (cnikit.1)",
      "  direct routes out of: ifindex 2 (eth0)",
      "  counters: podToRemoteDirect 3 packets / 300 bytes",
    ]);
    expect(formatNetwork({ ...r, underlayIfindex: 0, remotes: [] }, names)).not.toContain("  direct routes out of: ifindex 2 (eth0)");
  });
});
