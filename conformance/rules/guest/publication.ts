/**
 * p2m_cr3 is published only for a list the tools can walk (xen.h arch_shared_info; libxc
 * `map_p2m_list`; Linux publishes in `xen_setup_mfn_list_list`, after `xen_vmalloc_p2m_tree`
 * rebuilt the list with 4 KiB pages; reference §2.6).
 */

import { FRAME_LARGE } from '../../trace/format.js';
import type { GuestRule, GuestRuleContext } from './guest-rule.js';

function checkPages(from: number, to: number, why: string, { model: m, report }: GuestRuleContext): void {
  if (!m.listPublished) return;
  if (m.listError !== undefined) {
    report({ message: `Fail: walking p2m_cr3 0x${m.shared.p2m_cr3.toString(16)} ${why}, expected a walkable list, got ${m.listError}` });
    return;
  }
  let bad = 0;
  let first = -1;
  let firstKind = 0;
  for (let page = from; page < to; page++) {
    const f = m.list.get(page);
    if (f >= 0) continue;
    if (bad === 0) {
      first = page;
      firstKind = f;
    }
    bad++;
  }
  if (bad === 0) return;
  const what = firstKind === FRAME_LARGE ? 'a superpage mapping' : 'no mapping';
  report({
    message: `Fail: p2m page ${first} (pfns from 0x${(first * m.fpp).toString(16)}) ${why}, expected a 4 KiB mapping under p2m_cr3, got ${what}${bad > 1 ? ` (${bad} such pages)` : ''}`,
    pfn: first * m.fpp,
  });
}

export const G_PUB_01: GuestRule = {
  meta: {
    id: 'G-PUB-01',
    subject: 'guest',
    title: 'p2m_cr3 is published only for a walkable list of 4 KiB pages',
    rule: 'While p2m_cr3 is non-zero, every page of the list [0, max_pfn) is mapped under p2m_cr3 at p2m_vaddr with a 4 KiB entry.',
    reference: 'xen.h arch_shared_info: when p2m_cr3 is set, p2m_vaddr reaches every entry below max_pfn; libxc map_p2m_list walks it with 4 KiB leaves; Linux publishes only after xen_vmalloc_p2m_tree',
  },
  create: () => {
    let pagesBefore = 0;
    return {
      before(e, { model: m }) {
        if (e.type === 'shared' && e.field === 'max_pfn') pagesBefore = m.listPages;
      },
      after(e, ctx) {
        const m = ctx.model;
        if (e.type === 'list') checkPages(0, m.listPages, 'when p2m_cr3 was (re)read', ctx);
        else if (e.type === 'shared' && e.field === 'max_pfn' && m.listPages > pagesBefore) checkPages(pagesBefore, m.listPages, 'after max_pfn grew', ctx);
        else if (e.type === 'pt_write') {
          for (const [page, , mfn] of e.remap) if (page < m.listPages && mfn < 0) checkPages(page, page + 1, `after L${e.level} write into mfn 0x${e.mfn.toString(16)}`, ctx);
        }
      },
    };
  },
};
