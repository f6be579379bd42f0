/**
 * Mirrors the spec's "SHARED_INFO" record: the guest's shared_info page, exactly one page, raw (the
 * saver does not normalise it; libxc's restore copies `vcpu_info[]` and `arch` from it, zeroes the
 * frame-list-list and masks every event channel). The page is structured, so it always travels as
 * bytes, never as a content stamp.
 */

import { PAGE_SIZE } from '../../abi/index.js';
import { bodyError, writeError, type RecordCodec } from './codec.js';
import { REC_TYPE_SHARED_INFO } from './record-types.js';

export interface SharedInfoRecord {
  readonly type: typeof REC_TYPE_SHARED_INFO;
  /** The 4096-byte shared_info frame as the guest's ABI lays it out. */
  readonly page: Uint8Array;
}

export const sharedInfoCodec: RecordCodec<SharedInfoRecord> = {
  type: REC_TYPE_SHARED_INFO,
  spec: 'Records / SHARED_INFO',
  bodyLength: () => PAGE_SIZE,
  encodeBody(rec, into, at) {
    into.set(rec.page, at);
  },
  decodeBody(body, ctx) {
    if (body.length !== PAGE_SIZE) bodyError(ctx, 'bad-length', 'body_length', -4, `exactly ${PAGE_SIZE} bytes (one page), got ${body.length}`);
    return { type: REC_TYPE_SHARED_INFO, page: body };
  },
  validate(rec, ctx) {
    if (rec.page.length !== PAGE_SIZE) writeError(ctx, 'shared_info', `exactly ${PAGE_SIZE} bytes, got ${rec.page.length}`);
  },
};
