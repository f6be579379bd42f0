/**
 * Mirrors the spec's "X86_PV_P2M_FRAMES" record (libxc's `struct xc_sr_rec_x86_pv_p2m_frames`):
 * the pfns of the frames that hold the guest's p2m, one per p2m frame covering pfns
 * `p2m_start_pfn`..`p2m_end_pfn` inclusive. libxc's saver sends it once, with start 0 and end
 * `max_pfn`; its restore accepts it again later (a grown p2m) and takes `end_pfn` as the domain's
 * maximum pfn. How many frames the range needs depends on the guest width (`restore-rules.ts`).
 */

import { PAGE_SIZE } from '../../abi/index.js';
import { bodyError, dataView, isPfn52, isU32, readU64Number, writeError, writeU64Number, type RecordCodec } from './codec.js';
import { defineLayout, sfield } from './layout.js';
import { REC_TYPE_X86_PV_P2M_FRAMES } from './record-types.js';

export const x86_pv_p2m_frames = defineLayout({
  name: 'X86_PV_P2M_FRAMES',
  spec: 'Records / X86_PV_P2M_FRAMES',
  fields: [
    sfield('p2m_start_pfn', 4, 'First pfn covered by the p2m_pfns array (a PFN); libxc\'s saver sends 0.'),
    sfield('p2m_end_pfn', 4, 'Last pfn covered, inclusive (a PFN); libxc\'s saver sends max_pfn. At least p2m_start_pfn.'),
  ],
});

export interface X86PvP2mFramesRecord {
  readonly type: typeof REC_TYPE_X86_PV_P2M_FRAMES;
  readonly p2m_start_pfn: number;
  readonly p2m_end_pfn: number;
  /** The pfn of each p2m frame, from the frame holding entry `p2m_start_pfn` to the one holding `p2m_end_pfn`. */
  readonly p2m_pfns: readonly number[];
}

/** p2m entries per frame for a guest width (libxc's `fpp`). */
export function p2mEntriesPerFrame(guestWidth: 4 | 8): number {
  return PAGE_SIZE / guestWidth;
}

/** How many p2m frame pfns a range needs (libxc restore: end/fpp + 1 - start/fpp). */
export function p2mFramesNeeded(guestWidth: 4 | 8, startPfn: number, endPfn: number): number {
  const fpp = p2mEntriesPerFrame(guestWidth);
  return Math.floor(endPfn / fpp) + 1 - Math.floor(startPfn / fpp);
}

export const x86PvP2mFramesCodec: RecordCodec<X86PvP2mFramesRecord> = {
  type: REC_TYPE_X86_PV_P2M_FRAMES,
  spec: 'Records / X86_PV_P2M_FRAMES',
  bodyLength: (rec) => x86_pv_p2m_frames.size + 8 * rec.p2m_pfns.length,
  encodeBody(rec, into, at) {
    x86_pv_p2m_frames.write(into, at, { p2m_start_pfn: rec.p2m_start_pfn, p2m_end_pfn: rec.p2m_end_pfn });
    const dv = dataView(into);
    rec.p2m_pfns.forEach((pfn, i) => writeU64Number(dv, at + x86_pv_p2m_frames.size + 8 * i, pfn));
  },
  decodeBody(body, ctx) {
    const hdr = x86_pv_p2m_frames.size;
    if (body.length < hdr) bodyError(ctx, 'bad-length', 'body_length', -4, `at least ${hdr} bytes, got ${body.length}`);
    if (body.length % 8 !== 0) bodyError(ctx, 'bad-length', 'body_length', -4, `a multiple of 8 bytes, got ${body.length}`);
    const h = x86_pv_p2m_frames.read(body, 0);
    if (h.p2m_start_pfn > h.p2m_end_pfn) bodyError(ctx, 'bad-value', 'p2m_end_pfn', 4, `end pfn ${h.p2m_end_pfn} is below start pfn ${h.p2m_start_pfn}`);
    const dv = dataView(body);
    const p2m_pfns: number[] = [];
    for (let at = hdr; at < body.length; at += 8) {
      const pfn = readU64Number(dv, at);
      if (pfn === undefined || !isPfn52(pfn)) bodyError(ctx, 'bad-value', `p2m_pfns[${(at - hdr) / 8}]`, at, 'a p2m frame pfn of 2^52 or more');
      p2m_pfns.push(pfn);
    }
    return { type: REC_TYPE_X86_PV_P2M_FRAMES, p2m_start_pfn: h.p2m_start_pfn, p2m_end_pfn: h.p2m_end_pfn, p2m_pfns };
  },
  validate(rec, ctx) {
    if (!isU32(rec.p2m_start_pfn)) writeError(ctx, 'p2m_start_pfn', `${rec.p2m_start_pfn} is not a u32`);
    if (!isU32(rec.p2m_end_pfn)) writeError(ctx, 'p2m_end_pfn', `${rec.p2m_end_pfn} is not a u32`);
    if (rec.p2m_start_pfn > rec.p2m_end_pfn) writeError(ctx, 'p2m_end_pfn', `end pfn ${rec.p2m_end_pfn} is below start pfn ${rec.p2m_start_pfn}`);
    rec.p2m_pfns.forEach((pfn, i) => {
      if (!isPfn52(pfn)) writeError(ctx, `p2m_pfns[${i}]`, `${pfn} is not a pfn`);
    });
  },
};
