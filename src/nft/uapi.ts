/**
 * Numbers from the kernel's nftables UAPI (linux/netfilter/nf_tables.h, nfnetlink.h,
 * netfilter.h): message types, attribute types and enumerations the encoder uses.
 */

/** nfnetlink subsystem id of nftables (the high byte of every nftables message type). */
export const NFNL_SUBSYS_NFTABLES = 10;
/** nfnetlink message type that opens a batch. */
export const NFNL_MSG_BATCH_BEGIN = 0x10;
/** nfnetlink message type that closes (and commits) a batch. */
export const NFNL_MSG_BATCH_END = 0x11;
/** struct nfgenmsg version. */
export const NFNETLINK_V0 = 0;

/** nftables message types (enum nf_tables_msg_types), before the subsystem shift. */
export const NftMsg = {
  NEWTABLE: 0,
  GETTABLE: 1,
  DELTABLE: 2,
  NEWCHAIN: 3,
  GETCHAIN: 4,
  DELCHAIN: 5,
  NEWRULE: 6,
  GETRULE: 7,
  DELRULE: 8,
  NEWSET: 9,
  GETSET: 10,
  DELSET: 11,
  NEWSETELEM: 12,
  GETSETELEM: 13,
  DELSETELEM: 14,
  NEWGEN: 15,
  GETGEN: 16,
  DESTROYTABLE: 26,
  DESTROYCHAIN: 27,
  DESTROYRULE: 28,
  DESTROYSET: 29,
  DESTROYSETELEM: 30,
} as const;

/** The netlink message type of nftables message `msg`: subsystem in the high byte. */
export function nftMsgType(msg: number): number {
  return (NFNL_SUBSYS_NFTABLES << 8) | msg;
}

/** A readable name for a netlink message type on a netfilter socket. */
export function nftMsgName(type: number): string {
  if (type === NFNL_MSG_BATCH_BEGIN) return "NFNL_MSG_BATCH_BEGIN";
  if (type === NFNL_MSG_BATCH_END) return "NFNL_MSG_BATCH_END";
  if (type >> 8 === NFNL_SUBSYS_NFTABLES) {
    const msg = type & 0xff;
    for (const [name, v] of Object.entries(NftMsg)) if (v === msg) return `NFT_MSG_${name}`;
  }
  return `message type ${type}`;
}

/** NFTA_LIST_ELEM: one element of a nested list (rule expressions, set elements). */
export const NFTA_LIST_ELEM = 1;

/** Table attributes. */
export const NFTA_TABLE = { NAME: 1, FLAGS: 2, USE: 3, HANDLE: 4, USERDATA: 6, OWNER: 7 } as const;
/** Chain attributes. */
export const NFTA_CHAIN = {
  TABLE: 1,
  HANDLE: 2,
  NAME: 3,
  HOOK: 4,
  POLICY: 5,
  USE: 6,
  TYPE: 7,
  COUNTERS: 8,
  FLAGS: 10,
  ID: 11,
  USERDATA: 12,
} as const;
/** Hook attributes (nested in NFTA_CHAIN_HOOK). */
export const NFTA_HOOK = { HOOKNUM: 1, PRIORITY: 2, DEV: 3 } as const;
/** Rule attributes. */
export const NFTA_RULE = { TABLE: 1, CHAIN: 2, HANDLE: 3, EXPRESSIONS: 4, POSITION: 6, USERDATA: 7, ID: 9 } as const;
/** Set attributes. */
export const NFTA_SET = {
  TABLE: 1,
  NAME: 2,
  FLAGS: 3,
  KEY_TYPE: 4,
  KEY_LEN: 5,
  DATA_TYPE: 6,
  DATA_LEN: 7,
  POLICY: 8,
  DESC: 9,
  ID: 10,
  TIMEOUT: 11,
  GC_INTERVAL: 12,
  USERDATA: 13,
} as const;
/** Set description attributes (nested in NFTA_SET_DESC). */
export const NFTA_SET_DESC = { SIZE: 1, CONCAT: 2 } as const;
/** Concatenation field attributes (each in an NFTA_LIST_ELEM of NFTA_SET_DESC_CONCAT). */
export const NFTA_SET_FIELD_LEN = 1;
/** Set element attributes. */
export const NFTA_SET_ELEM = { KEY: 1, DATA: 2, FLAGS: 3, TIMEOUT: 4, EXPIRATION: 5, KEY_END: 10 } as const;
/** Set element list attributes (the body of NEWSETELEM / DELSETELEM / GETSETELEM). */
export const NFTA_SET_ELEM_LIST = { TABLE: 1, SET: 2, ELEMENTS: 3, SET_ID: 4 } as const;
/** Data attributes (struct nft_data: a value or a verdict). */
export const NFTA_DATA = { VALUE: 1, VERDICT: 2 } as const;
/** Verdict attributes. */
export const NFTA_VERDICT = { CODE: 1, CHAIN: 2 } as const;
/** Expression attributes: its name and its type-specific data. */
export const NFTA_EXPR = { NAME: 1, DATA: 2 } as const;

/** Set flags (enum nft_set_flags). */
export const NFT_SET_F = {
  ANONYMOUS: 0x1,
  CONSTANT: 0x2,
  INTERVAL: 0x4,
  MAP: 0x8,
  TIMEOUT: 0x10,
  EVAL: 0x20,
  OBJECT: 0x40,
  CONCAT: 0x80,
} as const;

/** NFTA_SET_DATA_TYPE of a verdict map. */
export const NFT_DATA_VERDICT = 0xffffff00;

/** Verdict codes: netfilter's NF_DROP / NF_ACCEPT and nftables' own (negative). */
export const VerdictCode = {
  drop: 0,
  accept: 1,
  continue: -1,
  break: -2,
  jump: -3,
  goto: -4,
  return: -5,
} as const;

/** Netfilter hook numbers of the inet family (enum nf_inet_hooks). */
export const NF_INET_HOOK = {
  prerouting: 0,
  input: 1,
  forward: 2,
  output: 3,
  postrouting: 4,
} as const;

/** Netfilter protocol families (NFPROTO_*), the nfgenmsg family of a table. */
export const NFPROTO = { inet: 1, ip: 2, arp: 3, netdev: 5, bridge: 7, ip6: 10 } as const;
