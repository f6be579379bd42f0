/**
 * The toolstack rules (issue 6): what a save must do when the guest changes its p2m under it.
 * Each is judged after the migration, from the toolstack's report and the outcome.
 */

import { hex } from '../rule.js';
import type { ToolstackRule } from './toolstack-rule.js';

export const T_REMAP_01: ToolstackRule = {
  meta: {
    id: 'T-REMAP-01',
    subject: 'toolstack',
    title: 'remaps the p2m before using it after a structural change',
    rule: 'A save that completes after the guest changed which frames make up its p2m (new leaf, PTE or mid page, new fll) while the save ran has remapped the p2m at least once.',
    reference: 'seed mail option 3/4 and DESIGN.md "what stale means": libxc maps the leaf frames once in x86_pv_setup; xg_sr_save_x86_pv.c: "corruption will occur if the contents or location of the P2M changes during the live migration loop"',
  },
  judge({ result, evidence }) {
    if (result.save.outcome !== 'completed' || evidence.structuralChanges === 0 || result.save.remaps > 0) return [];
    return [
      {
        rule: 'T-REMAP-01',
        message: `Fail: save completed after ${evidence.structuralChanges} structural p2m changes, expected >= 1 remap, got ${result.save.remaps} (X86_PV_P2M_FRAMES records: ${result.save.p2mFramesRecords})`,
      },
    ];
  },
};

export const T_RESEND_01: ToolstackRule = {
  meta: {
    id: 'T-RESEND-01',
    subject: 'toolstack',
    title: 'resends every pfn whose mapping changed, or aborts cleanly',
    rule: 'A pfn whose p2m entry changed after it was sent is sent again (data or XTAB) before the stream ends, or the save aborts.',
    reference: 'seed mail option 2 (keep the p2m as last sent, resend changed pfns); reference §1.9 rows 1-2 and docs/features/migration.pandoc known issue "PV ballooning: p2m marked dirty, target frame not"',
  },
  judge({ result }) {
    if (result.outcome !== 'corrupted') return [];
    const mapping = result.differingPfns.filter((d) => d.kind === 'missing' || d.kind === 'extra' || d.kind === 'p2m');
    return mapping.slice(0, 5).map((d) => ({
      rule: 'T-RESEND-01',
      pfn: d.pfn,
      message: `Fail: pfn ${hex(d.pfn)} on the destination, expected the mapping the source had at its final pass, got ${d.kind}: ${d.detail} (pfns resent for p2m changes: ${result.save.resentP2m})`,
    }));
  },
};

export const T_DEFER_01: ToolstackRule = {
  meta: {
    id: 'T-DEFER-01',
    subject: 'toolstack',
    title: 'defers p2m/m2p-inconsistent pfns and aborts if they stay inconsistent while the guest is stopped',
    rule: 'A pfn whose p2m entry and m2p disagree is deferred while the guest runs; if they still disagree once the guest is suspended, the save aborts naming the pfn instead of completing.',
    reference: 'seed mail, last paragraph (toolstacks defer pfns the guest is in the middle of updating); libxc write_batch defers INVALID entries and normalise_pagetable failures',
  },
  judge({ result, evidence }) {
    if (result.save.outcome !== 'completed' || evidence.inconsistentAtSuspend.length === 0) return [];
    const pfn = evidence.inconsistentAtSuspend[0]!;
    return [
      {
        rule: 'T-DEFER-01',
        pfn,
        message: `Fail: pfn ${hex(pfn)} had p2m and m2p disagreeing with the guest suspended (${evidence.inconsistentAtSuspend.length} such pfns), expected an abort, got a completed save`,
      },
    ];
  },
};

export const T_SILENT_01: ToolstackRule = {
  meta: {
    id: 'T-SILENT-01',
    subject: 'toolstack',
    title: 'never ends with a silently corrupted destination',
    rule: 'A save either aborts (the guest runs on at the source) or delivers a destination identical to the source as of the final pass.',
    reference: 'DESIGN.md: "the destination silently gets wrong memory" is the problem the kit exists for; docs/features/migration.pandoc "Known issues"',
  },
  judge({ result }) {
    if (result.outcome !== 'corrupted') return [];
    return [{ rule: 'T-SILENT-01', message: `Fail: migration, expected identical or aborted, got corrupted: ${result.reason ?? '?'}` }];
  },
};

export const T_REMUS_01: ToolstackRule = {
  meta: {
    id: 'T-REMUS-01',
    subject: 'toolstack',
    title: 'every Remus/COLO checkpoint is consistent',
    rule: 'When the secondary has applied checkpoint n, its memory equals the primary\'s as of that checkpoint.',
    reference: 'reference §1.9 row 7: after checkpoint 1 libxc sets save.live = false and never checks the generation again; stream spec: CHECKPOINT means "all preceding records form a consistent state"',
  },
  judge({ result }) {
    return result.checkpoints
      .filter((c) => c.differing > 0)
      .slice(0, 3)
      .map((c) => ({
        rule: 'T-REMUS-01',
        ...(c.first[0] ? { pfn: c.first[0].pfn } : {}),
        message: `Fail: checkpoint ${c.checkpoint}, expected the secondary identical to the primary, got ${c.differing} differing pfns; first: ${c.first[0]?.detail ?? '?'}`,
      }));
  },
};

export const T_ABORT_01: ToolstackRule = {
  meta: {
    id: 'T-ABORT-01',
    subject: 'toolstack',
    title: 'aborts only for a reason',
    rule: 'A save of a guest that changed neither its p2m entries nor its p2m structure, and was consistent when suspended, is not aborted.',
    reference: 'libxc aborts a live save only on a failed check (a moved generation, an inconsistent page table once paused, a mapping failure); a toolstack that always gives up would otherwise pass every rule',
  },
  judge({ result, evidence }) {
    if (result.outcome !== 'aborted') return [];
    if (evidence.structuralChanges > 0 || evidence.entryChanges > 0 || evidence.inconsistentAtSuspend.length > 0) return [];
    return [{ rule: 'T-ABORT-01', message: `Fail: migration of a guest that changed nothing in its p2m, expected identical, got aborted: ${result.reason ?? '?'}` }];
  },
};

export const TOOLSTACK_RULES: readonly ToolstackRule[] = Object.freeze([T_REMAP_01, T_RESEND_01, T_DEFER_01, T_SILENT_01, T_REMUS_01, T_ABORT_01]);
