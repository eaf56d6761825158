import { describe, expect, test } from "bun:test";
import { DEFAULT_DATA_DIR, parseFirewallConf } from "../../../src/plugins/meta/firewall.ts";
import { CniError, ErrorCode } from "../../../src/spec/error.ts";

const args = (config: Record<string, unknown>, command = "ADD") => ({ config: { cniVersion: "1.1.0", name: "n", type: "firewall", ...config }, command, log: () => {} }) as Parameters<typeof parseFirewallConf>[0];

function code(f: () => unknown): number {
  try {
    f();
  } catch (e) {
    return (e as CniError).code;
  }
  return 0;
}

describe("firewall config", () => {
  test("the reference's keys, any case, with defaults", () => {
    expect(parseFirewallConf(args({}))).toEqual({ ingressPolicy: "open", dataDir: DEFAULT_DATA_DIR });
    expect(parseFirewallConf(args({ IngressPolicy: "isolated", DATADIR: "/tmp/x", Backend: "iptables", firewalldZone: "trusted" }))).toEqual({ ingressPolicy: "isolated", dataDir: "/tmp/x" });
  });

  test("wrong types are code 2 naming the key; unknown policies and backends are code 7", () => {
    for (const bad of [{ ingressPolicy: 1 }, { dataDir: 5 }, { dataDir: [] }, { backend: true }, { iptablesAdminChainName: {} }, { firewalldZone: 0 }]) {
      expect(code(() => parseFirewallConf(args(bad)))).toBe(ErrorCode.UnsupportedField);
    }
    expect(() => parseFirewallConf(args({ dataDir: 5 }))).toThrow('firewall: "dataDir" must be a string, not number 5');
    expect(code(() => parseFirewallConf(args({ ingressPolicy: "closed" })))).toBe(ErrorCode.InvalidNetworkConfig);
    expect(code(() => parseFirewallConf(args({ backend: "ebtables" })))).toBe(ErrorCode.InvalidNetworkConfig);
  });

  test("DEL decodes leniently, and a dataDir it cannot read means no directory at all, not the default", () => {
    expect(parseFirewallConf(args({ ingressPolicy: 7, dataDir: "/tmp/y" }, "DEL"))).toEqual({ ingressPolicy: "open", dataDir: "/tmp/y" });
    expect(parseFirewallConf(args({ dataDir: 7 }, "DEL")).dataDir).toBe("");
    expect(parseFirewallConf(args({ dataDir: null }, "DEL")).dataDir).toBe(DEFAULT_DATA_DIR);
  });
});
