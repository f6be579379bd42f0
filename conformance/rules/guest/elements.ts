/** Element stores are atomic (xen.h arch_shared_info; Linux `xen_safe_write_ulong`; reference §2.5 rule e). */

import type { GuestRule } from './guest-rule.js';

export const G_ELEM_01: GuestRule = {
  meta: {
    id: 'G-ELEM-01',
    subject: 'guest',
    title: 'p2m elements are written with one store of the guest word',
    rule: 'Every guest store into the p2m writes exactly one whole element: one aligned store of the guest word (4 bytes on x86_32, 8 on x86_64).',
    reference: 'xen.h arch_shared_info: writing one element of the linear list must be a single atomic store; Linux __set_phys_to_machine stores through xen_safe_write_ulong, one mov',
  },
  create: () => ({
    after(e, { model: m, report }) {
      if (e.type !== 'p2m_store' || (e.by !== undefined && e.by !== 'guest')) return;
      if (e.width === m.wordSize && e.offset === 0) return;
      report({
        message: `Fail: store into p2m[0x${e.pfn.toString(16)}] at byte ${e.offset} of the element, expected one aligned ${m.wordSize}-byte store, got ${e.width} bytes`,
        pfn: e.pfn,
      });
    },
  }),
};
