/** Remus/COLO checkpoints with ballooning between them (libxc: checkpoints after the first are not live). */

import { grow, growthRoom } from './growth.js';
import { between, idle, isBallooned, pickFree, type Scenario } from './scenario.js';

export const REMUS_BALLOON: Scenario = {
  id: 'remus-balloon',
  title: 'Remus/COLO checkpoints with ballooning (guest does not scrub) and one p2m growth',
  exercises: 'three checkpoints; after checkpoint 1 the guest balloons out and back in without scrubbing, and grows its p2m by one leaf',
  hazard: '§1.9 row 7: after checkpoint 1 save.live is false, so upstream never checks the generation again; the secondary silently diverges',
  run: () => ({
    checkpoints: 3,
    scrub: false,
    *driver(world) {
      const g = world.guest;
      const out: number[] = [];
      let grown = false;
      for (;;) {
        if (world.progress.checkpoint < 2 || g.suspended) {
          yield 'idle: wait for checkpoint 2';
          continue;
        }
        if (!grown) {
          grown = true;
          const { start, clear } = growthRoom(world);
          if (clear(start)) yield* grow(world, start);
          yield* between();
          continue;
        }
        if (out.length > 0 && g.currentPages < g.maxPages && world.rng.chance(0.5)) {
          const pfn = out.splice(world.rng.below(out.length), 1)[0]!;
          if (isBallooned(g, pfn)) yield* g.balloonIn(pfn);
        } else {
          const pfn = pickFree(world);
          if (pfn !== undefined) {
            yield* g.balloonOut(pfn);
            out.push(pfn);
          }
        }
        yield* idle(20);
      }
    },
  }),
};
