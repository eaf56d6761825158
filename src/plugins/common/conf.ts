/** Config keys several plugins share, as codecs (`spec/decode`), with one rule each. */

import { i64, list, mac, object, refine, str } from "../../spec/decode.ts";

/** `mtu`: 0 or unset means the default; otherwise at least IPv4's minimum (68) and at most 65535. */
export const mtuCodec = refine(i64, (m) => (m === 0 || (m >= 68 && m <= 65535) ? undefined : `mtu must be 0 (default) or from 68 to 65535, not ${m}`));

/** `args.cni` as the reference reads it: requested addresses and MAC (`args.cni.ips`, `args.cni.mac`). */
export const argsCniCodec = object({ cni: object({ ips: list(str), mac }) });
