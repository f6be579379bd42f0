/** The toolstack rules and how a finished migration is judged against them. */

import type { RuleReport } from '../rule.js';
import { TOOLSTACK_RULES } from './rules.js';
import type { ToolstackJudgement, ToolstackRule } from './toolstack-rule.js';

export { T_ABORT_01, T_DEFER_01, T_REMAP_01, T_RESEND_01, T_REMUS_01, T_SILENT_01, TOOLSTACK_RULES } from './rules.js';
export type { SaveEvidence, ToolstackJudgement, ToolstackRule } from './toolstack-rule.js';

/** One report per violated rule, in registry order. */
export function judgeToolstack(j: ToolstackJudgement, rules: readonly ToolstackRule[] = TOOLSTACK_RULES): RuleReport[] {
  const out: RuleReport[] = [];
  for (const rule of rules) {
    const v = rule.judge(j);
    if (v.length > 0) out.push({ rule: rule.meta, count: v.length, first: v.slice(0, 10) });
  }
  return out;
}

export function toolstackRule(id: string): ToolstackRule | undefined {
  return TOOLSTACK_RULES.find((r) => r.meta.id === id);
}
