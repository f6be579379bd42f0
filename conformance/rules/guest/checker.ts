/**
 * Applies the guest rules to a stream of trace events: the online recorder and `check-trace` feed
 * the same events, in the same order, through this one class. Violations are deduplicated per
 * rule: the first `maxPerRule` are kept, and every one is counted.
 */

import type { TraceAbi, TraceEvent } from '../../trace/format.js';
import type { RuleReport, RuleViolation } from '../rule.js';
import type { GuestRule, GuestRuleContext, GuestRuleHooks, ViolationDraft } from './guest-rule.js';
import { GuestModel } from './model.js';
import { GUEST_RULES } from './registry.js';

export interface GuestCheckerOptions {
  /** Violations kept per rule (default 10); all are counted. */
  readonly maxPerRule?: number;
  /** The rules to apply (default all guest rules). */
  readonly rules?: readonly GuestRule[];
}

interface Running {
  readonly rule: GuestRule;
  readonly hooks: GuestRuleHooks;
  readonly ctx: GuestRuleContext;
  count: number;
  readonly first: RuleViolation[];
}

export class GuestRuleChecker {
  readonly model: GuestModel;
  private readonly running: Running[];
  private readonly maxPerRule: number;
  private fed = 0;

  constructor(header: { readonly abi: TraceAbi }, options: GuestCheckerOptions = {}) {
    this.model = new GuestModel(header.abi);
    this.maxPerRule = options.maxPerRule ?? 10;
    this.running = (options.rules ?? GUEST_RULES).map((rule) => {
      const r: Running = {
        rule,
        hooks: rule.create(),
        ctx: {
          model: this.model,
          report: (v: ViolationDraft) => {
            r.count++;
            if (r.first.length < this.maxPerRule) r.first.push({ rule: rule.meta.id, ...v, at: this.model.at });
          },
        },
        count: 0,
        first: [],
      };
      return r;
    });
  }

  /** Events fed so far. */
  get events(): number {
    return this.fed;
  }

  /** Applies one event: rules look before and after the model takes it; a quiescent event runs the quiescent checks. */
  feed(e: TraceEvent): void {
    const m = this.model;
    m.at = this.fed++;
    for (const r of this.running) r.hooks.before?.(e, r.ctx);
    m.apply(e);
    for (const r of this.running) r.hooks.after?.(e, r.ctx);
    if (e.type === 'quiescent') {
      for (const r of this.running) r.hooks.quiescent?.(e.reason, r.ctx);
      m.settle();
    }
  }

  /** Total violations counted. */
  get total(): number {
    return this.running.reduce((n, r) => n + r.count, 0);
  }

  /** One report per violated rule, in registry order. */
  reports(): RuleReport[] {
    return this.running.filter((r) => r.count > 0).map((r) => ({ rule: r.rule.meta, count: r.count, first: [...r.first] }));
  }

  /** The kept violations of every rule, in registry order. */
  violations(): RuleViolation[] {
    return this.running.flatMap((r) => r.first);
  }

  /** Ids of the rules violated. */
  violatedRules(): string[] {
    return this.running.filter((r) => r.count > 0).map((r) => r.rule.meta.id);
  }
}
