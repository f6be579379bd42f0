/** A legacy-tree guest moves its p2m onto a completely new tree (new fll, mid and leaf frames). */

import { idle, saving, waitUntil, type Scenario } from './scenario.js';

export const TREE_RELAYOUT: Scenario = {
  id: 'tree-relayout',
  title: 'tree relayout to a new fll',
  exercises: 'a legacy-tree guest rebuilds its 3-level tree on new frames and publishes the new fll during the live phase',
  hazard: 'seed option 3 (eagerly check the fll mfn); upstream known issue: "PV P2M structure changes" for non-linear-p2m guests are silent',
  skipReason: (personality) => (personality === 'legacy-tree' ? undefined : `tree relayout is a legacy-tree operation; this guest is ${personality}`),
  run: () => ({
    *driver(world) {
      if (!(yield* waitUntil(world, () => saving(world), 'wait for the live phase'))) return;
      yield* world.guest.relayoutTree();
      yield* idle(16);
    },
  }),
};
