/**
 * The expected verdict of every built-in cell: suite metadata, as test262 declares expected
 * failures in metadata rather than code. Each group says why, citing the seed mail, the reference
 * (§1.9 hazards) or what the emulation showed where that differs from the written analysis.
 * `xenabi conformance` exits 0 when every cell matches, and lists each one that does not.
 *
 * Groups are tried in order; the first that matches a cell decides. Faulty guests are judged by
 * the fault's own group in the scenarios that exercise it, and as their personality elsewhere.
 */

import { FAULTS, isFaultName, isPersonality, type FaultName, type Personality } from '../guest-emu/variants.js';
import type { CellResult } from './cell.js';
import type { CellOutcome, Verdict } from './verdict.js';

export interface Expectation {
  readonly verdict: Verdict;
  readonly outcome?: CellOutcome;
  /** Rule ids that must be among those violated. */
  readonly rules?: readonly string[];
  /** Why, in one or two sentences. */
  readonly reason: string;
}

interface Group extends Expectation {
  readonly personalities?: readonly Personality[];
  readonly toolstacks?: readonly string[];
  readonly scenarios?: readonly string[];
}

const UPSTREAM = ['map-once', 'abort-on-change'];
const LIST = ['linear', 'tree+linear'] as const;

/** Correct guests (and faulty ones outside the scenarios that exercise their fault). */
export const TOOLSTACK_GROUPS: readonly Group[] = Object.freeze([
  {
    scenarios: ['tree-relayout'],
    personalities: LIST,
    verdict: 'SKIP',
    reason: 'only a legacy-tree guest relays its tree out; the others keep a linear list whose layout never moves',
  },
  {
    scenarios: ['quiet'],
    verdict: 'SUCCESS',
    outcome: 'identical',
    reason: 'control: with no p2m change, logdirty alone carries the migration for every toolstack',
  },
  {
    scenarios: ['balloon-steady'],
    verdict: 'SUCCESS',
    outcome: 'identical',
    reason:
      'a Linux-like guest scrubs before ballooning out, which dirties the pfn, so it goes again as XTAB and the kit\'s restorer frees it; ' +
      'a pfn ballooned out live is INVALID when sent and libxc defers it ("Likely a ballooned page") to the final pass, which sends its new mapping. ' +
      'The emulation thus finds Linux-style ballooning safe even for map-once; §1.9 rows 1-2 need a non-scrubbing guest (balloon-out-after-sent, balloon-storm)',
  },
  {
    scenarios: ['balloon-in-xtab'],
    verdict: 'SUCCESS',
    outcome: 'identical',
    reason:
      '§1.9 row 2 expects the pfn to stay unpopulated, but libxc defers every INVALID pfn it sends as XTAB to the final pass ' +
      '(xg_sr_save.c write_batch, "Likely a ballooned page"), which sends it again with its new mfn: identical for every toolstack in a plain migration',
  },
  {
    scenarios: ['exchange'],
    verdict: 'SUCCESS',
    outcome: 'identical',
    reason:
      'xen_create_contiguous_region zeroes the region before the exchange, which dirties every pfn of it, and the leaves are mapped live, ' +
      'so the next pass reads the new mfns: the stale-mapping rows 4-5 of §1.9 need a stale leaf mapping (growth), not an entry change',
  },
  {
    scenarios: ['balloon-out-after-sent', 'balloon-storm'],
    toolstacks: UPSTREAM,
    verdict: 'FAILURE',
    outcome: 'corrupted',
    rules: ['T-RESEND-01', 'T-SILENT-01'],
    reason: '§1.9 row 1 and upstream\'s known issue: only the p2m frame is dirtied, a non-scrubbing guest never writes the pfn, so the destination keeps it populated (a leaked page); no generation bump for abort-on-change to see',
  },
  {
    scenarios: ['p2m-growth'],
    toolstacks: ['map-once'],
    verdict: 'FAILURE',
    outcome: 'corrupted',
    rules: ['T-REMAP-01', 'T-SILENT-01'],
    reason: 'the seed\'s stale mapping: the mapped frames no longer cover the p2m, the new pfns are never sent and the restore cannot even pin the page tables',
  },
  {
    scenarios: ['p2m-growth'],
    toolstacks: ['abort-on-change'],
    personalities: LIST,
    verdict: 'SUCCESS',
    outcome: 'aborted',
    reason: 'Xen 4.7+: the linear list\'s generation moved, libxc aborts the migration ("p2m generation count changed"); a clean abort',
  },
  {
    scenarios: ['p2m-growth', 'tree-relayout'],
    toolstacks: ['abort-on-change'],
    personalities: ['legacy-tree'],
    verdict: 'FAILURE',
    outcome: 'corrupted',
    rules: ['T-REMAP-01', 'T-SILENT-01'],
    reason: 'upstream\'s known issue "PV P2M structure changes for non-linear-p2m guests": tree mode has no check, the structure change is silent',
  },
  {
    scenarios: ['tree-relayout'],
    toolstacks: ['map-once'],
    verdict: 'FAILURE',
    outcome: 'corrupted',
    rules: ['T-REMAP-01', 'T-SILENT-01'],
    reason: 'the seed\'s option 3 case: the whole tree moved to a new fll and the mapping taken at setup is stale',
  },
  {
    scenarios: ['remus-balloon'],
    toolstacks: UPSTREAM,
    verdict: 'FAILURE',
    outcome: 'corrupted',
    rules: ['T-REMUS-01'],
    reason: '§1.9 row 7: after checkpoint 1 libxc\'s save is not live and never checks the generation; growth and non-scrubbed balloon outs leave the secondary diverged',
  },
  {
    scenarios: ['grant-storm'],
    verdict: 'SUCCESS',
    outcome: 'identical',
    reason: 'grant mappings are torn down before the suspend (xen_pv_pre_suspend after the drivers let go), and the final pass sends the then-INVALID entries as XTAB',
  },
  {
    toolstacks: ['deep-tracking'],
    verdict: 'SUCCESS',
    outcome: 'identical',
    reason: 'the seed\'s proposal (options 2+3+4): diffs the p2m as last sent, remaps on structure changes, defers inconsistent pfns; the destination is identical',
  },
]);

/** Which scenarios exercise each fault, and the guest rule that must catch it there. */
export const FAULT_EXPECTATIONS: Readonly<Record<FaultName, { readonly scenarios: readonly string[]; readonly rules: readonly string[] }>> = Object.freeze({
  'skip-bump': { scenarios: ['p2m-growth', 'remus-balloon'], rules: ['G-GEN-02'] },
  'bump-once': { scenarios: ['p2m-growth', 'remus-balloon'], rules: ['G-GEN-01'] },
  'bump-after': { scenarios: ['p2m-growth', 'remus-balloon'], rules: ['G-GEN-02'] },
  'non-monotonic-generation': { scenarios: ['p2m-growth', 'remus-balloon'], rules: ['G-GEN-04'] },
  'torn-element-write': { scenarios: ['balloon-steady', 'balloon-storm', 'balloon-out-after-sent', 'balloon-in-xtab', 'exchange', 'grant-storm', 'p2m-growth', 'remus-balloon'], rules: ['G-ELEM-01'] },
  'forgotten-m2p': { scenarios: ['balloon-steady', 'balloon-storm', 'balloon-in-xtab', 'p2m-growth', 'remus-balloon'], rules: ['G-M2P-01'] },
  'early-p2m-cr3': { scenarios: ['*'], rules: ['G-PUB-01'] },
  'short-max-pfn': { scenarios: ['p2m-growth', 'remus-balloon'], rules: ['G-MAXPFN-01'] },
  'stale-mid-page': { scenarios: ['p2m-growth', 'remus-balloon'], rules: ['G-TREE-01'] },
});

/**
 * Cells where the emulation, once investigated, differs from the groups above; each with the
 * reason. Keyed `scenario.arch.guest.toolstack` (arch may be `*`).
 */
export const EXCEPTIONS: Readonly<Record<string, Expectation>> = Object.freeze({});

function matches(g: Group, personality: Personality, r: Pick<CellResult, 'scenario' | 'toolstack'>): boolean {
  return (!g.personalities || g.personalities.includes(personality)) && (!g.toolstacks || g.toolstacks.includes(r.toolstack)) && (!g.scenarios || g.scenarios.includes(r.scenario));
}

/** The expectation of a built-in cell; undefined for user subjects (no expected table). */
export function expectationFor(cell: Pick<CellResult, 'scenario' | 'arch' | 'guest' | 'toolstack'>): Expectation | undefined {
  const personality = isPersonality(cell.guest) ? cell.guest : isFaultName(cell.guest) ? FAULTS.find((f) => f.name === cell.guest)!.personality : undefined;
  if (!personality || !['map-once', 'abort-on-change', 'deep-tracking'].includes(cell.toolstack)) return undefined;
  const exception = EXCEPTIONS[`${cell.scenario}.${cell.arch}.${cell.guest}.${cell.toolstack}`] ?? EXCEPTIONS[`${cell.scenario}.*.${cell.guest}.${cell.toolstack}`];
  if (exception) return exception;
  if (isFaultName(cell.guest)) {
    const f = FAULT_EXPECTATIONS[cell.guest];
    const skipped = cell.scenario === 'tree-relayout' && personality !== 'legacy-tree';
    if (!skipped && (f.scenarios.includes('*') || f.scenarios.includes(cell.scenario))) {
      return { verdict: 'FAILURE', outcome: 'rule-violation', rules: f.rules, reason: `faulty guest ${cell.guest}: ${FAULTS.find((x) => x.name === cell.guest)!.does}; caught by ${f.rules.join(', ')}` };
    }
  }
  const g = TOOLSTACK_GROUPS.find((x) => matches(x, personality, cell));
  return g ? { verdict: g.verdict, ...(g.outcome ? { outcome: g.outcome } : {}), ...(g.rules ? { rules: g.rules } : {}), reason: g.reason } : undefined;
}

/** Whether a result is what its expectation says (verdict, outcome, and the named rules among those violated). */
export function meetsExpectation(r: CellResult, e: Expectation): boolean {
  if (r.verdict !== e.verdict) return false;
  if (e.outcome !== undefined && r.outcome !== e.outcome) return false;
  return (e.rules ?? []).every((id) => r.rules_violated.includes(id));
}
