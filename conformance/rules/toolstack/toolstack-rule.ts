/**
 * How a toolstack rule is written: metadata, and a judgement of one finished migration from what
 * the toolstack did (its SaveReport: remaps, frame-list records, resends, rounds, outcome,
 * checkpoints), what came out (the migration verdict and the differing pfns), and what the guest
 * did while the save ran (the evidence the cell's probe collected).
 */

import type { MigrationResult } from '../../migration.js';
import type { RuleMeta, RuleViolation } from '../rule.js';

/** What the guest did while the save ran, as the cell's probe saw it. */
export interface SaveEvidence {
  /** Page-table writes that changed which frame backs a p2m page, and tree relayouts, after the save mapped the p2m. */
  readonly structuralChanges: number;
  /** Guest operations that changed p2m entries (balloon, exchange, grants, growth) after the save mapped the p2m. */
  readonly entryChanges: number;
  /** pfns whose p2m entry and m2p disagreed when the guest suspended for the final pass (first few). */
  readonly inconsistentAtSuspend: readonly number[];
}

export interface ToolstackJudgement {
  readonly result: MigrationResult;
  readonly evidence: SaveEvidence;
}

export interface ToolstackRule {
  readonly meta: RuleMeta & { readonly subject: 'toolstack' };
  /** The violations (none when the rule held or does not apply). */
  judge(j: ToolstackJudgement): RuleViolation[];
}
