/**
 * A transaction framed as one nfnetlink batch: NFNL_MSG_BATCH_BEGIN, one message per operation
 * (each with NLM_F_ACK and its own sequence number), NFNL_MSG_BATCH_END. The kernel applies the
 * messages between begin and end all-or-nothing.
 */

import { encodeMessage, NLM_F_ACK, NLM_F_REQUEST } from "../netlink/message.ts";
import { encodeOperation, type NftRequest } from "./encode.ts";
import type { Transaction } from "./transaction.ts";
import { NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, nftMsgType } from "./uapi.ts";
import { nfgenmsg } from "./wire.ts";

/** An encoded batch and the sequence numbers it used. */
export interface EncodedBatch {
  /** The datagram to send. */
  readonly data: Uint8Array;
  /** Sequence number of the begin message (the kernel answers batch-wide errors with it). */
  readonly beginSeq: number;
  /** Each operation's request and sequence number, in order. */
  readonly requests: readonly { readonly seq: number; readonly req: NftRequest }[];
}

/** Encode `tx` as a batch numbered from `firstSeq` (begin), operations next, end last. */
export function encodeBatch(tx: Transaction, firstSeq: number): EncodedBatch {
  let setId = 0;
  const ctx = { family: tx.family, table: tx.table, nextSetId: () => ++setId };
  const control = nfgenmsg(0, NFNL_SUBSYS_NFTABLES);
  const parts: Uint8Array[] = [encodeMessage({ type: NFNL_MSG_BATCH_BEGIN, flags: NLM_F_REQUEST, seq: firstSeq >>> 0 }, control)];
  const requests: { seq: number; req: NftRequest }[] = [];
  let seq = firstSeq;
  for (const op of tx.operations) {
    seq = (seq + 1) >>> 0;
    const req = encodeOperation(ctx, op);
    parts.push(encodeMessage({ type: nftMsgType(req.msg), flags: NLM_F_REQUEST | NLM_F_ACK | req.flags, seq }, req.body));
    requests.push({ seq, req });
  }
  seq = (seq + 1) >>> 0;
  parts.push(encodeMessage({ type: NFNL_MSG_BATCH_END, flags: NLM_F_REQUEST, seq }, control));
  const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    data.set(p, off);
    off += p.length;
  }
  return { data, beginSeq: firstSeq >>> 0, requests };
}
