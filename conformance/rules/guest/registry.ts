/** The registry of guest rules, in report order. */

import { G_ELEM_01 } from './elements.js';
import { G_FLL_01 } from './fll.js';
import { G_GEN_01, G_GEN_02, G_GEN_03, G_GEN_04 } from './generation.js';
import type { GuestRule } from './guest-rule.js';
import { G_M2P_01 } from './m2p.js';
import { G_MAXPFN_01 } from './max-pfn.js';
import { G_PUB_01 } from './publication.js';
import { G_TREE_01 } from './tree.js';

export const GUEST_RULES: readonly GuestRule[] = Object.freeze([G_GEN_01, G_GEN_02, G_GEN_03, G_GEN_04, G_ELEM_01, G_PUB_01, G_FLL_01, G_MAXPFN_01, G_M2P_01, G_TREE_01]);

export function guestRule(id: string): GuestRule | undefined {
  return GUEST_RULES.find((r) => r.meta.id === id);
}
