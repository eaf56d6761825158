/** Policy routing rules: add, delete and list, for source-based routing. */

import { type NetlinkConn } from "../netlink/conn.ts";
import { isExists, isNotFound } from "../netlink/error.ts";
import { NLM_F_CREATE, NLM_F_EXCL } from "../netlink/message.ts";
import { decodeRule, encodeRule, type RuleMessage } from "../netlink/rule.ts";
import { AF_INET, AF_INET6, RTM_DELRULE, RTM_GETRULE, RTM_NEWRULE } from "../netlink/rtnl.ts";
import { formatCIDR } from "../spec/ip.ts";
import { type CIDRInput, toIPNet } from "./ipinput.ts";

/** A rule to add or delete: "from SRC lookup TABLE". */
export interface RuleSpec {
  /** Source prefix, "10.1.2.3/32". */
  src: CIDRInput;
  table: number;
  priority?: number;
}

/** A rule as listed. */
export interface Rule {
  family: 4 | 6;
  /** Source prefix, when the rule has one. */
  src?: string;
  table: number;
  priority?: number;
}

function toMessage(spec: RuleSpec): RuleMessage {
  const src = toIPNet(spec.src, "rule source");
  const m: RuleMessage = { family: src.ip.length === 16 ? AF_INET6 : AF_INET, src: src.ip, srcLen: src.prefix, table: spec.table };
  if (spec.priority !== undefined) m.priority = spec.priority;
  return m;
}

/** Add a rule; an identical existing one is fine when `existOk`. */
export function addRule(conn: NetlinkConn, spec: RuleSpec, opts: { existOk?: boolean } = {}): void {
  try {
    conn.request(RTM_NEWRULE, encodeRule(toMessage(spec)), { flags: NLM_F_CREATE | NLM_F_EXCL });
  } catch (err) {
    if (opts.existOk && isExists(err)) return;
    throw err;
  }
}

/** Delete a rule; false when there was none. */
export function deleteRule(conn: NetlinkConn, spec: RuleSpec): boolean {
  try {
    conn.request(RTM_DELRULE, encodeRule(toMessage(spec)));
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Every rule of both families (or one). */
export function listRules(conn: NetlinkConn, opts: { family?: 4 | 6 } = {}): Rule[] {
  const families = opts.family === 4 ? [AF_INET] : opts.family === 6 ? [AF_INET6] : [AF_INET, AF_INET6];
  const out: Rule[] = [];
  for (const family of families) {
    for (const msg of conn.dump(RTM_GETRULE, encodeRule({ family, action: 0 }))) {
      const m = decodeRule(msg.body);
      const r: Rule = { family: m.family === AF_INET6 ? 6 : 4, table: m.table ?? 0 };
      if (m.src) r.src = formatCIDR({ ip: m.src, prefix: m.srcLen ?? m.src.length * 8 });
      if (m.priority !== undefined) r.priority = m.priority;
      out.push(r);
    }
  }
  return out;
}
