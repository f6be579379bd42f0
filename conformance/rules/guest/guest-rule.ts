/**
 * How a guest rule is written: metadata, and hooks the checker calls for every trace event (before
 * and after the model applies it) and at every quiescent point. Each check gets a fresh set of
 * hooks (`create`), so a rule's own state belongs to one run.
 */

import type { TraceEvent } from '../../trace/format.js';
import type { RuleMeta, RuleViolation } from '../rule.js';
import type { GuestModel } from './model.js';

export type ViolationDraft = Omit<RuleViolation, 'rule' | 'at'>;

export interface GuestRuleContext {
  readonly model: GuestModel;
  /** Reports a violation of this rule at the current event. */
  report(v: ViolationDraft): void;
}

export interface GuestRuleHooks {
  /** Before the model applies `e` (the model still holds the previous state). */
  before?(e: TraceEvent, ctx: GuestRuleContext): void;
  /** After the model applied `e`. */
  after?(e: TraceEvent, ctx: GuestRuleContext): void;
  /** At a quiescent point (after the model applied the `quiescent` event). */
  quiescent?(reason: string, ctx: GuestRuleContext): void;
}

export interface GuestRule {
  readonly meta: RuleMeta & { readonly subject: 'guest' };
  create(): GuestRuleHooks;
}
