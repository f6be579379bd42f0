/**
 * p2m and m2p agree when the guest is quiescent (the seed mail's last paragraph: toolstacks defer
 * pfns whose p2m and m2p disagree, and must be able to trust both once the guest is at rest;
 * Linux: populate_physmap sets the m2p in Xen, older paths issue MMU_MACHPHYS_UPDATE before
 * set_phys_to_machine). Inside an operation either order is allowed.
 */

import { hex } from '../rule.js';
import type { GuestRule } from './guest-rule.js';
import { M2P_INVALID, P2M_INVALID, P2M_MARKED } from './model.js';

export const G_M2P_01: GuestRule = {
  meta: {
    id: 'G-M2P-01',
    subject: 'guest',
    title: 'p2m and m2p agree for every owned frame at quiescent points',
    rule: 'Whenever the guest is quiescent, every ordinary frame it owns has an m2p entry whose p2m entry names it back, and every p2m entry that names a frame names an owned frame whose m2p entry is that pfn.',
    reference: 'seed mail, last paragraph: a pfn whose p2m and m2p disagree is deferred by the toolstack and must be consistent once the guest is paused; Linux keeps both in step in balloon and XENMEM_exchange paths',
  },
  create: () => ({
    quiescent(reason, { model: m, report }) {
      if (!m.hasState || m.phase === 'booting') return;
      const mfnCheck = (mfn: number): void => {
        if (!m.frames.isOwned(mfn) || m.frames.isXenHeap(mfn)) return;
        const pfn = m.frames.m2pOf(mfn);
        if (pfn === M2P_INVALID) {
          report({ message: `Fail: m2p of owned mfn ${hex(mfn)} at a quiescent point (${reason}), expected a pfn, got INVALID`, mfn });
          return;
        }
        const f = m.p2m.frameAt(pfn);
        if (f !== mfn) {
          const got = f === P2M_INVALID ? 'INVALID' : f === P2M_MARKED ? hex(m.p2m.value(pfn)) : `mfn ${hex(f)}`;
          report({ message: `Fail: p2m[${hex(pfn)}] (the m2p of owned mfn ${hex(mfn)}) at a quiescent point (${reason}), expected mfn ${hex(mfn)}, got ${got}`, pfn, mfn });
        }
      };
      const pfnCheck = (pfn: number, mfn: number): void => {
        if (!m.frames.isOwned(mfn) || m.frames.isXenHeap(mfn)) {
          report({ message: `Fail: p2m[${hex(pfn)}] at a quiescent point (${reason}), expected an mfn the domain owns, got ${hex(mfn)}`, pfn, mfn });
          return;
        }
        const back = m.frames.m2pOf(mfn);
        // A frame with an INVALID m2p is reported once, by mfnCheck.
        if (back !== pfn && back !== M2P_INVALID) {
          report({ message: `Fail: m2p[${hex(mfn)}] (p2m[${hex(pfn)}]) at a quiescent point (${reason}), expected ${hex(pfn)}, got ${hex(back)}`, pfn, mfn });
        }
      };
      if (m.fullCheck) {
        m.frames.forEachOwned(mfnCheck);
        m.p2m.forEachFrame(pfnCheck);
        return;
      }
      for (const mfn of m.touchedMfns) mfnCheck(mfn);
      for (const pfn of m.touchedPfns) {
        const f = m.p2m.frameAt(pfn);
        if (f >= 0) pfnCheck(pfn, f);
        if (f >= 0 && !m.touchedMfns.has(f)) mfnCheck(f);
      }
    },
  }),
};
