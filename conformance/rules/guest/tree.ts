/**
 * The tree and the linear list name the same leaf frames (reference §2.7: one set of leaf
 * frames; Linux `xen_alloc_p2m_entry` records a new leaf's mfn in its mid page right after the
 * generation bracket). Checked at quiescent points for guests that publish both.
 */

import { hex } from '../rule.js';
import type { GuestRule } from './guest-rule.js';

export const G_TREE_01: GuestRule = {
  meta: {
    id: 'G-TREE-01',
    subject: 'guest',
    title: 'the tree and the linear list name the same leaf frames',
    rule: 'Whenever a guest that publishes both the tree (a valid fll) and the list is quiescent, for every page of [0, max_pfn) the tree names the frame the list maps (shared all-INVALID placeholder leaves may stand for each other).',
    reference: 'xen.h arch_shared_info: the tree and the list describe one p2m; Linux keeps one set of leaf frames and records each new leaf in p2m_top_mfn / the mid page (xen_alloc_p2m_entry, xen_build_mfn_list_list)',
  },
  create: () => ({
    quiescent(reason, { model: m, report }) {
      if (m.phase !== 'running' || !m.listPublished) return;
      const fll = m.shared.pfn_to_mfn_frame_list_list;
      if (fll === 0n || fll === m.wordMask) return;
      const pages = m.listPages;
      // A frame the list maps at several pages is a shared placeholder (p2m_missing / p2m_identity).
      const shared = (mfn: number): boolean => mfn >= 0 && (m.list.refs.get(mfn) ?? 0) > 1;
      const check = (page: number): void => {
        if (page >= pages) return;
        const t = m.tree.get(page);
        const l = m.list.get(page);
        if (t === l || (shared(t) && shared(l))) return;
        const fmt = (f: number): string => (f >= 0 ? `mfn ${hex(f)}` : 'no frame');
        report({ message: `Fail: leaf of p2m page ${page} (pfns from ${hex(page * m.fpp)}) at a quiescent point (${reason}), expected the tree to name the list's ${fmt(l)}, got ${fmt(t)}`, pfn: page * m.fpp, ...(l >= 0 ? { mfn: l } : {}) });
      };
      if (m.fullCheck) for (let p = 0; p < pages; p++) check(p);
      else for (const p of m.touchedPages) check(p);
    },
  }),
};
