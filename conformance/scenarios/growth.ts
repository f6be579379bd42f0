/**
 * p2m growth while the save runs (memory hotplug, as the workload's `growth`): a new leaf next to
 * the last one, then a pfn at the start of a new mid range, which also needs a new PTE page of the
 * linear list and a new mid page of the tree; max_pfn is raised each time.
 */

import { balloonIn, balloonOut } from '../../guest-emu/balloon.js';
import type { Operation } from '../../guest-emu/steps.js';
import type { DriverWorld } from '../migration.js';
import { idle, pickFree, saving, waitUntil, type Scenario } from './scenario.js';

function* populateGrown(world: DriverWorld, pfn: number): Operation<boolean> {
  const g = world.guest;
  if (g.currentPages >= g.maxPages) {
    const out = pickFree(world);
    if (out === undefined) return false;
    yield* balloonOut(g, out);
  }
  return yield* balloonIn(g, pfn);
}

/** Hotplugs one leaf's worth of pfns at `first` and populates the first one. */
export function* grow(world: DriverWorld, first: number): Generator<string, boolean, undefined> {
  const g = world.guest;
  yield* g.hotplug(first, g.list.fpp);
  return yield* g.operation('growth', populateGrown(world, first));
}

/** Where growth may hotplug: from the first leaf above the guest's memory, four mid ranges at most. */
export function growthRoom(world: DriverWorld): { fpp: number; midSpan: number; start: number; clear: (first: number) => boolean } {
  const g = world.guest;
  const fpp = g.list.fpp;
  const midSpan = fpp * fpp;
  const start = Math.ceil(Math.max(g.maxPages, g.nrPages, g.pages.end) / fpp) * fpp;
  const end = Math.min(start + 4 * midSpan, g.list.areaPfns, 2 ** 32 - 1);
  const clear = (first: number): boolean => first + fpp <= end && !g.list.identityRanges.some((r) => r.start < first + fpp && r.end > first);
  return { fpp, midSpan, start, clear };
}

export const P2M_GROWTH: Scenario = {
  id: 'p2m-growth',
  title: 'p2m growth: new leaf, new PTE page, new mid page',
  exercises: 'during the live phase, hotplugs and populates a pfn in a new leaf, then one at the start of a new mid range (new leaf, list PTE page and tree mid page); max_pfn raised',
  hazard: '§1.9 row 3 and the seed\'s "stale mapping": the toolstack\'s mapped frames no longer cover the p2m; upstream aborts on the generation in list mode and is silent in tree mode',
  run: () => ({
    *driver(world) {
      const { fpp, midSpan, start, clear } = growthRoom(world);
      if (!(yield* waitUntil(world, () => saving(world), 'wait for the live phase'))) return;
      if (clear(start)) yield* grow(world, start);
      yield* idle(24);
      const jump = Math.ceil((start + fpp) / midSpan) * midSpan;
      if (clear(jump)) yield* grow(world, jump);
      yield* idle(24);
      if (clear(jump + fpp)) yield* grow(world, jump + fpp);
    },
  }),
};
