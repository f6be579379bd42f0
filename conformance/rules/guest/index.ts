/** The guest rules: the registry, and the checker that applies them to a stream of trace events. */

export { G_ELEM_01 } from './elements.js';
export { G_FLL_01 } from './fll.js';
export { G_GEN_01, G_GEN_02, G_GEN_03, G_GEN_04 } from './generation.js';
export { G_M2P_01 } from './m2p.js';
export { G_MAXPFN_01 } from './max-pfn.js';
export { G_PUB_01 } from './publication.js';
export { G_TREE_01 } from './tree.js';
export type { GuestRule, GuestRuleContext, GuestRuleHooks, ViolationDraft } from './guest-rule.js';
export { GuestModel } from './model.js';
export { GuestRuleChecker, type GuestCheckerOptions } from './checker.js';

export { GUEST_RULES, guestRule } from './registry.js';
