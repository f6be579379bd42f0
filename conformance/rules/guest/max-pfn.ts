/**
 * max_pfn covers the p2m (xen.h arch_shared_info: the tree and list cover [0, max_pfn); Linux
 * `xen_alloc_p2m_entry` raises it to ALIGN(pfn + 1, P2M_PER_PAGE) as the p2m grows; reference §1.7,
 * §2.4). Checked at quiescent points once the guest published.
 */

import { hex } from '../rule.js';
import type { GuestRule } from './guest-rule.js';
import { M2P_INVALID } from './model.js';

export const G_MAXPFN_01: GuestRule = {
  meta: {
    id: 'G-MAXPFN-01',
    subject: 'guest',
    title: 'max_pfn covers every populated pfn',
    rule: 'Whenever the guest is quiescent, every pfn whose p2m entry names a frame, and every pfn the m2p names for one of its frames, lies below max_pfn.',
    reference: 'xen.h arch_shared_info: max_pfn is the number of valid p2m entries, the tools read [0, max_pfn); Linux xen_alloc_p2m_entry raises it before a grown entry is used',
  },
  create: () => ({
    quiescent(reason, { model: m, report }) {
      if (m.phase !== 'running' || !m.hasState) return;
      const max = m.maxPfn;
      const bad = new Map<number, number>();
      const pfnCheck = (pfn: number, mfn: number): void => {
        if (pfn >= max && !bad.has(pfn)) bad.set(pfn, mfn);
      };
      const mfnCheck = (mfn: number): void => {
        if (!m.frames.isOwned(mfn) || m.frames.isXenHeap(mfn)) return;
        const pfn = m.frames.m2pOf(mfn);
        if (pfn !== M2P_INVALID) pfnCheck(pfn, mfn);
      };
      if (m.fullCheck) {
        m.p2m.forEachFrame(pfnCheck);
        m.frames.forEachOwned(mfnCheck);
      } else {
        for (const pfn of m.touchedPfns) {
          const f = m.p2m.frameAt(pfn);
          if (f >= 0) pfnCheck(pfn, f);
        }
        for (const mfn of m.touchedMfns) mfnCheck(mfn);
      }
      for (const [pfn, mfn] of bad) {
        report({ message: `Fail: populated pfn ${hex(pfn)} (mfn ${hex(mfn)}) at a quiescent point (${reason}), expected below max_pfn ${hex(max)}, got ${hex(pfn)}`, pfn, mfn });
      }
    },
  }),
};
