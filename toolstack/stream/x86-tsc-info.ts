/**
 * Mirrors the spec's "X86_TSC_INFO" record (libxc's `struct xc_sr_rec_x86_tsc_info`): the domain's
 * TSC settings as `XEN_DOMCTL_{get,set}tscinfo` carry them, 24 bytes, sent at the end of every
 * checkpoint.
 */

import { bodyError, writeError, type RecordCodec } from './codec.js';
import { defineLayout, sfield } from './layout.js';
import { REC_TYPE_X86_TSC_INFO } from './record-types.js';

export const x86_tsc_info = defineLayout({
  name: 'X86_TSC_INFO',
  spec: 'Records / X86_TSC_INFO',
  fields: [
    sfield('mode', 4, 'TSC mode, a TSC_MODE_* constant (0 default, 1 always emulate, 2 never emulate, 3 pvrdtscp).'),
    sfield('khz', 4, 'TSC frequency in kHz.'),
    sfield('nsec', 8, 'Elapsed time in nanoseconds.'),
    sfield('incarnation', 4, 'Incarnation: how many times the domain was migrated or restored.'),
    sfield('res1', 4, 'Reserved, zero.', true),
  ],
});

export interface X86TscInfoRecord {
  readonly type: typeof REC_TYPE_X86_TSC_INFO;
  readonly mode: number;
  readonly khz: number;
  readonly nsec: bigint;
  readonly incarnation: number;
}

export const x86TscInfoCodec: RecordCodec<X86TscInfoRecord> = {
  type: REC_TYPE_X86_TSC_INFO,
  spec: 'Records / X86_TSC_INFO',
  bodyLength: () => x86_tsc_info.size,
  encodeBody(rec, into, at) {
    x86_tsc_info.write(into, at, { mode: rec.mode, khz: rec.khz, nsec: rec.nsec, incarnation: rec.incarnation });
  },
  decodeBody(body, ctx) {
    if (body.length !== x86_tsc_info.size) bodyError(ctx, 'bad-length', 'body_length', -4, `exactly ${x86_tsc_info.size} bytes, got ${body.length}`);
    const v = x86_tsc_info.read(body, 0);
    if (v.res1 !== 0 && ctx.strictReserved) bodyError(ctx, 'reserved-nonzero', 'res1', x86_tsc_info.offsetOf('res1'), 'reserved field is not zero');
    return { type: REC_TYPE_X86_TSC_INFO, mode: v.mode, khz: v.khz, nsec: v.nsec, incarnation: v.incarnation };
  },
  validate(rec, ctx) {
    const bad = x86_tsc_info.misfit(rec);
    if (bad !== undefined) writeError(ctx, bad, `${String(rec[bad as keyof X86TscInfoRecord])} does not fit its ${bad === 'nsec' ? 'u64' : 'u32'} field`);
  },
};
