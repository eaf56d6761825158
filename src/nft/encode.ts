/**
 * The pure encoder: one transaction operation to one nftables message (type, flags, nfgenmsg
 * family, attributes), following the kernel's nf_tables policies.
 */

import { type AttrLike, nla } from "../netlink/attr.ts";
import { NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL } from "../netlink/message.ts";
import { byteOrderCode, isConcat, type KeyType, keyLen, keyTypeId, rawFieldLens } from "./datatype.ts";
import { encodeExpr } from "./expr.ts";
import type { Element, NftMap, NftObject, NftSet } from "./objects.ts";
import type { Operation, Verb } from "./transaction.ts";
import {
  NF_INET_HOOK,
  NFPROTO,
  NFT_DATA_VERDICT,
  NFT_SET_F,
  NFTA_CHAIN,
  NFTA_DATA,
  NFTA_HOOK,
  NFTA_LIST_ELEM,
  NFTA_RULE,
  NFTA_SET,
  NFTA_SET_DESC,
  NFTA_SET_ELEM,
  NFTA_SET_ELEM_LIST,
  NFTA_SET_FIELD_LEN,
  NFTA_TABLE,
  NftMsg,
  VerdictCode,
} from "./uapi.ts";
import { concat, mark } from "./value.ts";
import { verdictAttrs } from "./verdict.ts";
import { be32, be64, dataValue, encodeNftAttrs, nest, nfgenmsg } from "./wire.ts";

/** One encoded nftables request, before framing. */
export interface NftRequest {
  /** NFT_MSG_* (without the subsystem byte). */
  readonly msg: number;
  /** NLM_F_* flags beyond REQUEST and ACK. */
  readonly flags: number;
  /** nfgenmsg family (NFPROTO_*). */
  readonly family: number;
  /** The message body: nfgenmsg then attributes. */
  readonly body: Uint8Array;
  /** What this does, for error messages ("add set inet/t/s"). */
  readonly what: string;
}

/** Context the encoder needs beyond the operation: the table and a source of set ids. */
export interface EncodeContext {
  readonly family: keyof typeof NFPROTO;
  readonly table: string;
  /** A transaction-unique id for each new set (NFTA_SET_ID is mandatory). */
  readonly nextSetId: () => number;
}

const NEW_FLAGS: Partial<Record<Verb, number>> = { add: NLM_F_CREATE, create: NLM_F_CREATE | NLM_F_EXCL };

/**
 * NFTA_SET_FLAGS. A concatenated key with intervals needs NFT_SET_CONCAT (and the field
 * description); the kernel refuses the description without that flag, so a plain hash of
 * concatenations has neither, as nft sends it.
 */
function setFlags(s: NftSet | NftMap): number {
  let f = s.kind === "map" ? NFT_SET_F.MAP : 0;
  for (const name of s.flags ?? []) f |= NFT_SET_F[name.toUpperCase() as Uppercase<typeof name>];
  if (isConcat(s.key) && f & NFT_SET_F.INTERVAL) f |= NFT_SET_F.CONCAT;
  return f;
}

function setAttrs(ctx: EncodeContext, s: NftSet | NftMap): AttrLike[] {
  const data = s.kind === "map" ? s.data : undefined;
  const flags = setFlags(s);
  return [
    nla.str(NFTA_SET.TABLE, ctx.table),
    nla.str(NFTA_SET.NAME, s.name),
    be32(NFTA_SET.FLAGS, flags),
    be32(NFTA_SET.KEY_TYPE, keyTypeId(s.key)),
    be32(NFTA_SET.KEY_LEN, keyLen(s.key)),
    data === "verdict" && be32(NFTA_SET.DATA_TYPE, NFT_DATA_VERDICT),
    data !== undefined && data !== "verdict" && be32(NFTA_SET.DATA_TYPE, keyTypeId(data)),
    data !== undefined && data !== "verdict" && be32(NFTA_SET.DATA_LEN, keyLen(data)),
    s.timeoutMs !== undefined && be64(NFTA_SET.TIMEOUT, BigInt(s.timeoutMs)),
    isConcat(s.key) && (flags & NFT_SET_F.CONCAT) !== 0 &&
      nest(NFTA_SET.DESC, [
        nest(NFTA_SET_DESC.CONCAT, rawFieldLens(s.key).map((len) => nest(NFTA_LIST_ELEM, [be32(NFTA_SET_FIELD_LEN, len)]))),
      ]),
    be32(NFTA_SET.ID, ctx.nextSetId()),
    nla.bytes(NFTA_SET.USERDATA, setUserdata(s.key, data)),
  ];
}

/**
 * The set's user data as nft writes it (libnftnl TLVs: u8 type, u8 length, value): the byte order
 * of keys (type 0) and of map data (type 1), so `nft list` prints marks and names right.
 */
function setUserdata(key: KeyType, data: KeyType | "verdict" | undefined): Uint8Array {
  const tlv = (type: number, v: number): number[] => [type, 4, ...mark(v)];
  const out = tlv(0, byteOrderCode(key));
  if (data !== undefined && data !== "verdict") out.push(...tlv(1, byteOrderCode(data)));
  return Uint8Array.from(out);
}

function bytesOf(v: Uint8Array | readonly Uint8Array[]): Uint8Array {
  return v instanceof Uint8Array ? v : concat(v);
}

function elemAttrs(ctx: EncodeContext, e: Element, withData: boolean): AttrLike[] {
  return [
    nla.str(NFTA_SET_ELEM_LIST.TABLE, ctx.table),
    nla.str(NFTA_SET_ELEM_LIST.SET, e.set),
    nest(NFTA_SET_ELEM_LIST.ELEMENTS, [
      nest(NFTA_LIST_ELEM, [
        dataValue(NFTA_SET_ELEM.KEY, bytesOf(e.key)),
        e.keyEnd !== undefined && dataValue(NFTA_SET_ELEM.KEY_END, bytesOf(e.keyEnd)),
        withData && e.data !== undefined && dataValue(NFTA_SET_ELEM.DATA, bytesOf(e.data)),
        withData && e.verdict !== undefined &&
          nest(NFTA_SET_ELEM.DATA, [nest(NFTA_DATA.VERDICT, verdictAttrs(e.verdict))]),
        withData && e.timeoutMs !== undefined && be64(NFTA_SET_ELEM.TIMEOUT, BigInt(e.timeoutMs)),
      ]),
    ]),
  ];
}

/** Encode one operation of a transaction in table `ctx.table`. */
export function encodeOperation(ctx: EncodeContext, op: Operation): NftRequest {
  const [msg, flags, attrs, name] = plan(ctx, op.verb, op.obj);
  return {
    msg,
    flags,
    family: NFPROTO[ctx.family],
    body: concatBody(nfgenmsg(NFPROTO[ctx.family]), encodeNftAttrs(attrs)),
    what: `${op.verb} ${op.obj.kind} ${ctx.family} ${ctx.table}${name ? " " + name : ""}`,
  };
}

function concatBody(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function plan(ctx: EncodeContext, verb: Verb, obj: NftObject): [number, number, AttrLike[], string] {
  const newFlags = NEW_FLAGS[verb] ?? 0;
  const destroy = verb === "destroy";
  switch (obj.kind) {
    case "table":
      if (verb === "flush") return [NftMsg.DELRULE, 0, [nla.str(NFTA_RULE.TABLE, ctx.table)], ""];
      if (verb === "delete" || destroy) {
        return [destroy ? NftMsg.DESTROYTABLE : NftMsg.DELTABLE, 0, [nla.str(NFTA_TABLE.NAME, ctx.table)], ""];
      }
      return [NftMsg.NEWTABLE, newFlags, [
        nla.str(NFTA_TABLE.NAME, ctx.table),
        obj.flags !== undefined && be32(NFTA_TABLE.FLAGS, obj.flags),
      ], ""];
    case "chain": {
      const id = [nla.str(NFTA_CHAIN.TABLE, ctx.table), nla.str(NFTA_CHAIN.NAME, obj.name)];
      if (verb === "flush") {
        return [NftMsg.DELRULE, 0, [nla.str(NFTA_RULE.TABLE, ctx.table), nla.str(NFTA_RULE.CHAIN, obj.name)], obj.name];
      }
      if (verb === "delete" || destroy) return [destroy ? NftMsg.DESTROYCHAIN : NftMsg.DELCHAIN, 0, id, obj.name];
      return [NftMsg.NEWCHAIN, newFlags, [
        ...id,
        obj.hook !== undefined &&
          nest(NFTA_CHAIN.HOOK, [be32(NFTA_HOOK.HOOKNUM, NF_INET_HOOK[obj.hook]), be32(NFTA_HOOK.PRIORITY, obj.priority ?? 0)]),
        obj.hook !== undefined && be32(NFTA_CHAIN.POLICY, VerdictCode[obj.policy ?? "accept"]),
        obj.hook !== undefined && nla.str(NFTA_CHAIN.TYPE, obj.type ?? "filter"),
      ], obj.name];
    }
    case "set":
    case "map": {
      if (verb === "flush") {
        return [NftMsg.DELSETELEM, 0, [
          nla.str(NFTA_SET_ELEM_LIST.TABLE, ctx.table),
          nla.str(NFTA_SET_ELEM_LIST.SET, obj.name),
        ], obj.name];
      }
      if (verb === "delete" || destroy) {
        return [destroy ? NftMsg.DESTROYSET : NftMsg.DELSET, 0, [
          nla.str(NFTA_SET.TABLE, ctx.table),
          nla.str(NFTA_SET.NAME, obj.name),
        ], obj.name];
      }
      return [NftMsg.NEWSET, newFlags, setAttrs(ctx, obj), obj.name];
    }
    case "element":
      if (verb === "delete" || destroy) {
        return [destroy ? NftMsg.DESTROYSETELEM : NftMsg.DELSETELEM, 0, elemAttrs(ctx, obj, false), obj.set];
      }
      return [NftMsg.NEWSETELEM, newFlags, elemAttrs(ctx, obj, true), obj.set];
    case "rule": {
      const id = [nla.str(NFTA_RULE.TABLE, ctx.table), nla.str(NFTA_RULE.CHAIN, obj.chain)];
      if (verb === "delete") return [NftMsg.DELRULE, 0, [...id, be64(NFTA_RULE.HANDLE, obj.handle ?? 0n)], obj.chain];
      return [NftMsg.NEWRULE, verb === "insert" ? NLM_F_CREATE : NLM_F_CREATE | NLM_F_APPEND, [
        ...id,
        nest(NFTA_RULE.EXPRESSIONS, obj.exprs.map(encodeExpr)),
        obj.userdata !== undefined && nla.bytes(NFTA_RULE.USERDATA, obj.userdata),
      ], obj.chain];
    }
  }
}
