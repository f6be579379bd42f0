/** The control: a guest that only writes data pages. Every correct pairing must be identical. */

import { idle, pickFree, saving, waitUntil, type Scenario } from './scenario.js';

export const QUIET: Scenario = {
  id: 'quiet',
  title: 'quiet guest (control)',
  exercises: 'ordinary data writes during the live phase; no p2m change at all',
  hazard: 'none: logdirty alone must carry a migration of a guest that leaves its p2m alone',
  run: () => ({
    *driver(world) {
      const g = world.guest;
      if (!(yield* waitUntil(world, () => saving(world), 'wait for the live phase'))) return;
      for (let n = 0; n < 24; n++) {
        const pfn = pickFree(world);
        if (pfn !== undefined) yield* g.writePage(pfn, world.rng.u32());
        yield* idle(3);
      }
    },
  }),
};
