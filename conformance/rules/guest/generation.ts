/**
 * The p2m_generation protocol (arch_shared_info's comment in xen/include/public/arch-x86/xen.h;
 * Linux's bracket in `alloc_p2m_pmd` and `xen_alloc_p2m_entry`; reference §2.5 rules a–d). The
 * counter is checked only while the linear list is published (p2m_cr3 non-zero).
 */

import { hex } from '../rule.js';
import type { GuestRule } from './guest-rule.js';
import type { GuestModel } from './model.js';

const odd = (v: bigint): boolean => (v & 1n) === 1n;

/** A store of 0 while booting or suspended is the reset of `xen_setup_mfn_list_list`. */
function isReset(m: GuestModel, value: bigint): boolean {
  return value === 0n && m.phase !== 'running';
}

export const G_GEN_01: GuestRule = {
  meta: {
    id: 'G-GEN-01',
    subject: 'guest',
    title: 'p2m_generation is even at rest',
    rule: 'Whenever the guest is quiescent (between operations, suspended, or just published) p2m_generation is even.',
    reference: 'xen.h arch_shared_info: an odd generation means a change of the p2m mappings is in progress; Linux closes every bracket it opens under p2m_update_lock',
  },
  create: () => ({
    quiescent(reason, { model: m, report }) {
      const gen = m.shared.p2m_generation;
      if (m.listPublished && odd(gen)) report({ message: `Fail: p2m_generation at a quiescent point (${reason}), expected even, got ${gen}` });
    },
  }),
};

export const G_GEN_02: GuestRule = {
  meta: {
    id: 'G-GEN-02',
    subject: 'guest',
    title: 'p2m_generation is odd across every remap of the list',
    rule: 'Every page-table write into a table on the walk of the linear list, inside the walked range, happens while p2m_generation is odd.',
    reference: 'xen.h arch_shared_info: the guest increments the generation before and after changing the mappings of the p2m list; Linux: p2m_generation++ ; set_pmd/set_pte ; p2m_generation++ in alloc_p2m_pmd and xen_alloc_p2m_entry',
  },
  create: () => ({
    before(e, { model: m, report }) {
      if (e.type !== 'pt_write' || !m.listPublished) return;
      const gen = m.shared.p2m_generation;
      if (odd(gen)) return;
      const pages = e.remap.length === 0 ? 'no page remapped' : `p2m page ${e.remap[0]![0]}${e.remap.length > 1 ? ` and ${e.remap.length - 1} more` : ''} remapped`;
      report({ message: `Fail: L${e.level} page-table write into mfn ${hex(e.mfn)} entry ${e.entry} (${pages}), expected an odd p2m_generation, got ${gen}`, mfn: e.mfn });
    },
  }),
};

export const G_GEN_03: GuestRule = {
  meta: {
    id: 'G-GEN-03',
    subject: 'guest',
    title: 'p2m_generation moves by one per store and by two per remap',
    rule: 'Outside the reset on publication each store of p2m_generation adds exactly 1, and every odd period encloses at least one page-table write of the list, so a change adds 2.',
    reference: 'xen.h arch_shared_info: incremented once before and once after a mapping change; Linux brackets exactly one set_pmd/set_pte per pair of increments',
  },
  create: () => {
    let writes = 0;
    return {
      before(e, { model: m, report }) {
        if (e.type === 'pt_write') {
          writes++;
          return;
        }
        if (e.type !== 'shared' || e.field !== 'p2m_generation' || !m.listPublished) return;
        const prev = m.shared.p2m_generation;
        const v = e.value & m.wordMask;
        if (v === ((prev + 1n) & m.wordMask)) {
          if (odd(prev) && writes === 0) report({ message: `Fail: p2m_generation ${prev} -> ${v} closed a bracket, expected a page-table write of the list inside it, got none` });
          writes = 0;
          return;
        }
        if (v < prev || isReset(m, v)) return; // decreases are G-GEN-04's
        report({ message: `Fail: p2m_generation store after ${prev}, expected ${(prev + 1n) & m.wordMask}, got ${v}` });
        writes = 0;
      },
    };
  },
};

export const G_GEN_04: GuestRule = {
  meta: {
    id: 'G-GEN-04',
    subject: 'guest',
    title: 'p2m_generation never decreases except the reset on publication',
    rule: 'p2m_generation never decreases, except the store of 0 when the list is (re)published at boot or resume.',
    reference: 'xen.h arch_shared_info: the generation starts at 0 and only counts up, so a tool can compare a snapshot against it; Linux resets it only in xen_setup_mfn_list_list',
  },
  create: () => ({
    before(e, { model: m, report }) {
      if (e.type !== 'shared' || e.field !== 'p2m_generation') return;
      const prev = m.shared.p2m_generation;
      const v = e.value & m.wordMask;
      if (v >= prev || isReset(m, v)) return;
      // Wrap-around at the guest word is an increase.
      if (prev === m.wordMask && v === 0n) return;
      report({ message: `Fail: p2m_generation store after ${prev} (${m.phase}), expected at least ${prev} or the reset to 0 on publication, got ${v}` });
    },
  }),
};
