/**
 * fixed-ip: a complete third-party IPAM plugin written with cnikit's SDK. It gives the container
 * the address written in its config, so any main plugin (bridge, macvlan, ...) can use it:
 *
 *   "ipam": { "type": "fixed-ip", "address": "10.10.0.5/24", "gateway": "10.10.0.1" }
 *
 * Install: put an executable named `fixed-ip` in CNI_PATH that runs this file with Bun, or
 * compile it: `bun build --compile examples/fixed-ip.ts --outfile /opt/cni/bin/fixed-ip`.
 */

import { pluginMain } from "../src/skel/skel.ts";
import type { Plugin } from "../src/skel/plugin.ts";
import type { NetConf } from "../src/spec/netconf.ts";
import { validateCIDR, validateIP } from "../src/spec/validate.ts";

/** The plugin's config: the usual keys plus `ipam.address` and an optional `ipam.gateway`. */
export interface FixedIPConf extends NetConf {
  ipam: { type: string; address: string; gateway?: string };
}

/** The plugin object: ADD returns the address, DEL has nothing to release. */
export const fixedIP: Plugin<FixedIPConf> = {
  add({ config }) {
    const { address, gateway } = config.ipam ?? {};
    validateCIDR(address, "ipam.address"); // a bad value becomes spec error 7, naming the field
    if (gateway !== undefined) validateIP(gateway, "ipam.gateway");
    return {
      cniVersion: "1.1.0", // the SDK converts to the config's version
      ips: [{ address, ...(gateway ? { gateway } : {}) }],
    };
  },
  del() {},
};

if (import.meta.main) await pluginMain(fixedIP);
