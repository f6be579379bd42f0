/**
 * Mirrors the spec's "CHECKPOINT_DIRTY_PFN_LIST" record: an unordered list of pfns the COLO
 * secondary dirtied, sent on the back channel (secondary → primary) after each checkpoint. The back
 * channel is bare records, no headers; the record never appears in the forward stream (libxc's PV
 * restore does not handle it, verify-stream-v2 rejects it there).
 */

import { bodyError, dataView, isPfn52, readU64Number, writeError, writeU64Number, type RecordCodec } from './codec.js';
import { REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST } from './record-types.js';

export interface CheckpointDirtyPfnListRecord {
  readonly type: typeof REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST;
  /** The count is body_length / 8. */
  readonly pfns: readonly number[];
}

export const checkpointDirtyPfnListCodec: RecordCodec<CheckpointDirtyPfnListRecord> = {
  type: REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST,
  spec: 'Records / CHECKPOINT_DIRTY_PFN_LIST',
  bodyLength: (rec) => 8 * rec.pfns.length,
  encodeBody(rec, into, at) {
    const dv = dataView(into);
    rec.pfns.forEach((pfn, i) => writeU64Number(dv, at + 8 * i, pfn));
  },
  decodeBody(body, ctx) {
    if (body.length % 8 !== 0) bodyError(ctx, 'bad-length', 'body_length', -4, `a multiple of 8 bytes, got ${body.length}`);
    const dv = dataView(body);
    const pfns: number[] = [];
    for (let at = 0; at < body.length; at += 8) {
      const pfn = readU64Number(dv, at);
      if (pfn === undefined || !isPfn52(pfn)) bodyError(ctx, 'bad-value', `pfn[${at / 8}]`, at, 'a pfn of 2^52 or more');
      pfns.push(pfn);
    }
    return { type: REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST, pfns };
  },
  validate(rec, ctx) {
    rec.pfns.forEach((pfn, i) => {
      if (!isPfn52(pfn)) writeError(ctx, `pfn[${i}]`, `${pfn} is not a pfn`);
    });
  },
};
