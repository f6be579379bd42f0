/**
 * Mirrors the spec's "X86_PV_INFO" record (libxc's `struct xc_sr_rec_x86_pv_info`): the guest's
 * width and page-table levels, the first static record of an x86 PV stream.
 */

import type { GuestAbi } from '../../abi/index.js';
import { bodyError, writeError, type RecordCodec } from './codec.js';
import { defineLayout, sfield } from './layout.js';
import { REC_TYPE_X86_PV_INFO } from './record-types.js';

export const x86_pv_info = defineLayout({
  name: 'X86_PV_INFO',
  spec: 'Records / X86_PV_INFO',
  fields: [
    sfield('guest_width', 1, 'Guest width in octets: 4 (x86_32) or 8 (x86_64).'),
    sfield('pt_levels', 1, 'Page-table levels: 3 (x86_32 PAE) or 4 (x86_64). libxc restores only (4,3) and (8,4).'),
    sfield('res1', 2, 'Reserved, zero.', true),
    sfield('res2', 4, 'Reserved, zero.', true),
  ],
});

export interface X86PvInfoRecord {
  readonly type: typeof REC_TYPE_X86_PV_INFO;
  readonly guest_width: 4 | 8;
  readonly pt_levels: 3 | 4;
}

/** The X86_PV_INFO record of a guest ABI. */
export function x86PvInfoFor(abi: GuestAbi): X86PvInfoRecord {
  return { type: REC_TYPE_X86_PV_INFO, guest_width: abi.wordSize, pt_levels: abi.pagingLevels };
}

export const x86PvInfoCodec: RecordCodec<X86PvInfoRecord> = {
  type: REC_TYPE_X86_PV_INFO,
  spec: 'Records / X86_PV_INFO',
  bodyLength: () => x86_pv_info.size,
  encodeBody(rec, into, at) {
    x86_pv_info.write(into, at, { guest_width: rec.guest_width, pt_levels: rec.pt_levels });
  },
  decodeBody(body, ctx) {
    if (body.length !== x86_pv_info.size) bodyError(ctx, 'bad-length', 'body_length', -4, `expected ${x86_pv_info.size} bytes, got ${body.length}`);
    const v = x86_pv_info.read(body, 0);
    if (v.guest_width !== 4 && v.guest_width !== 8) bodyError(ctx, 'bad-value', 'guest_width', 0, `expected 4 or 8, got ${v.guest_width}`);
    if (v.pt_levels !== 3 && v.pt_levels !== 4) bodyError(ctx, 'bad-value', 'pt_levels', 1, `expected 3 or 4, got ${v.pt_levels}`);
    const reserved = x86_pv_info.reservedNonZero(v);
    if (reserved && ctx.strictReserved) bodyError(ctx, 'reserved-nonzero', reserved.name, reserved.offset, 'reserved field is not zero');
    return { type: REC_TYPE_X86_PV_INFO, guest_width: v.guest_width, pt_levels: v.pt_levels };
  },
  validate(rec, ctx) {
    // What the format allows; which pairs libxc restores is a restore rule (restore-rules.ts).
    if (rec.guest_width !== 4 && rec.guest_width !== 8) writeError(ctx, 'guest_width', `expected 4 or 8, got ${String(rec.guest_width)}`);
    if (rec.pt_levels !== 3 && rec.pt_levels !== 4) writeError(ctx, 'pt_levels', `expected 3 or 4, got ${String(rec.pt_levels)}`);
  },
};
