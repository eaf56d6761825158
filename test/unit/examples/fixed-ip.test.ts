import { describe, expect, test } from "bun:test";
import { fixedIP } from "../../../examples/fixed-ip.ts";
import { runPlugin } from "../../../src/skel/skel.ts";

async function call(command: string, conf: unknown) {
  let out = "";
  const code = await runPlugin(fixedIP, {
    env: { CNI_COMMAND: command, CNI_CONTAINERID: "c1", CNI_NETNS: "/run/netns/x", CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin" },
    readStdin: () => JSON.stringify(conf),
    writeStdout: (s) => {
      out += s;
    },
    writeStderr: () => {},
  });
  return { code, out: out ? JSON.parse(out) : undefined };
}

const conf = (version: string, ipam: Record<string, unknown>) => ({ cniVersion: version, name: "n", type: "bridge", ipam: { type: "fixed-ip", ...ipam } });

describe("the fixed-ip example plugin", () => {
  test("ADD returns the configured address in the config's version", async () => {
    const r1 = await call("ADD", conf("1.1.0", { address: "10.10.0.5/24", gateway: "10.10.0.1" }));
    expect(r1).toEqual({ code: 0, out: { cniVersion: "1.1.0", ips: [{ address: "10.10.0.5/24", gateway: "10.10.0.1" }] } });
    const r2 = await call("ADD", conf("0.4.0", { address: "10.10.0.5/24" }));
    expect(r2.out.ips).toEqual([{ version: "4", address: "10.10.0.5/24" }]);
    const r3 = await call("ADD", conf("0.2.0", { address: "fd00::5/64" }));
    expect(r3.out).toEqual({ cniVersion: "0.2.0", ip6: { ip: "fd00::5/64" } });
  });

  test("a bad address is spec error 7 naming the field", async () => {
    const r = await call("ADD", conf("1.0.0", { address: "10.10.0.5" }));
    expect(r.code).toBe(1);
    expect(r.out.code).toBe(7);
    expect(r.out.msg).toContain("ipam.address");
    const g = await call("ADD", conf("1.0.0", { address: "10.10.0.5/24", gateway: "nope" }));
    expect(g.out.code).toBe(7);
  });

  test("DEL succeeds and prints nothing; VERSION lists every version", async () => {
    expect(await call("DEL", conf("1.0.0", { address: "10.10.0.5/24" }))).toEqual({ code: 0, out: undefined });
    const v = await call("VERSION", {});
    expect(v.out.supportedVersions).toContain("0.1.0");
    expect(v.out.supportedVersions).toContain("1.1.0");
  });
});
