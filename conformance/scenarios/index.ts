/** The scenario registry: a closed list, in the order the matrix shows them. */

import { BALLOON_IN_XTAB, BALLOON_OUT_AFTER_SENT, BALLOON_STEADY, BALLOON_STORM } from './balloon.js';
import { EXCHANGE } from './exchange.js';
import { GRANT_STORM } from './grants.js';
import { P2M_GROWTH } from './growth.js';
import { QUIET } from './quiet.js';
import { TREE_RELAYOUT } from './relayout.js';
import { REMUS_BALLOON } from './remus.js';
import type { Scenario } from './scenario.js';

export type { Scenario, ScenarioMeta, ScenarioRun } from './scenario.js';

export const SCENARIOS: readonly Scenario[] = Object.freeze([
  QUIET,
  BALLOON_STEADY,
  BALLOON_STORM,
  BALLOON_OUT_AFTER_SENT,
  BALLOON_IN_XTAB,
  EXCHANGE,
  GRANT_STORM,
  P2M_GROWTH,
  TREE_RELAYOUT,
  REMUS_BALLOON,
]);

export const SCENARIO_IDS: readonly string[] = Object.freeze(SCENARIOS.map((s) => s.id));

export function scenarioById(id: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.id === id);
}
