/**
 * pfn_to_mfn_frame_list_list (xen.h arch_shared_info: 0 = not set up, ~0 = invalid, use the
 * linear list; Linux `xen_setup_mfn_list_list` with SIF_VIRT_P2M_4TOOLS; reference §1.7, §2.4).
 */

import { hex } from '../rule.js';
import type { GuestRule, GuestRuleContext } from './guest-rule.js';

const SIF_VIRT_P2M_4TOOLS = 1 << 4;

/** What is wrong with the fll value now, or undefined. `published`: the guest finished publishing. */
function problem(ctx: GuestRuleContext, published: boolean): string | undefined {
  const m = ctx.model;
  const fll = m.shared.pfn_to_mfn_frame_list_list;
  const flag = (m.startInfoFlags & SIF_VIRT_P2M_4TOOLS) !== 0;
  if (fll === 0n) return published ? `expected ${flag ? '~0 or ' : ''}the mfn of the tree's top page once published, got 0` : undefined;
  if (fll === m.wordMask) {
    if (!flag) return `expected the mfn of the tree's top page (start_info.flags lacks SIF_VIRT_P2M_4TOOLS, so the tools may need the tree), got ~0`;
    if (published && !m.listPublished) return `expected a tree's mfn while no linear list is published (p2m_cr3 is 0), got ~0`;
    return undefined;
  }
  if (m.hasState && (fll > BigInt(Number.MAX_SAFE_INTEGER) || !m.frames.isOwned(Number(fll)) || m.frames.isXenHeap(Number(fll)))) {
    return `expected 0, ~0 or an mfn the domain owns, got ${hex(fll)}`;
  }
  return undefined;
}

export const G_FLL_01: GuestRule = {
  meta: {
    id: 'G-FLL-01',
    subject: 'guest',
    title: 'pfn_to_mfn_frame_list_list is 0, a valid mfn or ~0, as SIF_VIRT_P2M_4TOOLS allows',
    rule: 'The fll is 0 only before publication, otherwise the mfn of a frame the domain owns, or ~0 only when start_info has SIF_VIRT_P2M_4TOOLS and the linear list is published.',
    reference: 'xen.h arch_shared_info: 0 means not set up yet, ~0 means deliberately invalid (use the list at p2m_vaddr); Linux xen_setup_mfn_list_list stores ~0 exactly when SIF_VIRT_P2M_4TOOLS is set',
  },
  create: () => {
    let reported: string | undefined;
    const check = (ctx: GuestRuleContext, published: boolean): void => {
      const p = problem(ctx, published);
      const key = `${ctx.model.shared.pfn_to_mfn_frame_list_list}:${p}`;
      if (p === undefined || key === reported) return;
      reported = key;
      ctx.report({ message: `Fail: pfn_to_mfn_frame_list_list, ${p}` });
    };
    return {
      after(e, ctx) {
        if (e.type === 'shared' && e.field === 'pfn_to_mfn_frame_list_list') check(ctx, false);
      },
      quiescent(_reason, ctx) {
        if (ctx.model.phase === 'running') check(ctx, true);
      },
    };
  },
};
