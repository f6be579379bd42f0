/**
 * Ballooning during a live migration (reference §1.9 rows 1-2; seed mail: "the p2m frame is
 * dirtied, the target frame is not"). Balloon in only ever takes back pfns the scenario itself
 * ballooned out, so every change is an entry write in an existing leaf: no generation bump, which
 * is exactly what upstream's counter cannot see.
 */

import { XEN_DOMCTL_PFINFO_XTAB } from '../../abi/index.js';
import type { DriverWorld } from '../migration.js';
import { between, idle, isBallooned, isFree, pickFree, pickFreeHigh, saving, waitUntil, type Scenario } from './scenario.js';

/** Balloons out a random free pfn, or back in one of `out` (which it keeps up to date). */
function* balloonStep(world: DriverWorld, out: number[], inChance: number, sentOnly = false): Generator<string, void, undefined> {
  const g = world.guest;
  if (out.length > 0 && g.currentPages < g.maxPages && world.rng.chance(inChance)) {
    const i = world.rng.below(out.length);
    const pfn = out[i]!;
    out.splice(i, 1);
    if (isBallooned(g, pfn)) yield* g.balloonIn(pfn);
    return;
  }
  let pfn = pickFree(world);
  for (let tries = 0; sentOnly && pfn !== undefined && !world.progress.hasSent(pfn) && tries < 16; tries++) pfn = pickFree(world);
  if (pfn === undefined) return;
  yield* g.balloonOut(pfn);
  out.push(pfn);
}

export const BALLOON_STEADY: Scenario = {
  id: 'balloon-steady',
  title: 'steady ballooning while the save runs',
  exercises: 'one balloon out or in (of a pfn it ballooned out) every few steps, from the first pass to the suspend',
  hazard: '§1.9 rows 1-2: balloon out after send (XTAB never unpopulates upstream) and balloon in of a pfn sent as XTAB (pfn not resent unless written)',
  run: () => ({
    *driver(world) {
      const out: number[] = [];
      if (!(yield* waitUntil(world, () => saving(world), 'wait for the live phase'))) return;
      for (;;) {
        yield* balloonStep(world, out, 0.5);
        yield* idle(4);
      }
    },
  }),
};

export const BALLOON_STORM: Scenario = {
  id: 'balloon-storm',
  title: 'balloon storm during the last rounds (guest does not scrub)',
  exercises: 'from the last quarter of the full pass to the suspend, back-to-back balloon outs (of sent pfns) and ins, without scrubbing',
  hazard: 'xenopsd PR #359 (balloon drivers keep going while the toolstack suspends); §1.9 row 1 in the final passes: only the p2m frame is dirtied',
  run: () => ({
    scrub: false,
    *driver(world) {
      const out: number[] = [];
      const late = Math.floor(world.guest.nrPages * 0.75);
      if (!(yield* waitUntil(world, () => world.progress.hasSent(late), 'wait for the last part of the full pass'))) return;
      for (;;) {
        yield* balloonStep(world, out, 0.45, true);
        yield* between();
      }
    },
  }),
};

export const BALLOON_OUT_AFTER_SENT: Scenario = {
  id: 'balloon-out-after-sent',
  title: 'balloon out of a pfn after it was sent (guest does not scrub)',
  exercises: 'waits until a populated pfn has been sent, then balloons it out without scrubbing it first',
  hazard: '§1.9 row 1: Xen does not dirty the pfn; a guest that does not scrub leaves it unsent, so the destination keeps it populated (a leaked page)',
  run: () => ({
    scrub: false,
    *driver(world) {
      const g = world.guest;
      for (let n = 0; n < 4; n++) {
        let pfn: number | undefined;
        if (!(yield* waitUntil(world, () => (pfn = pickFree(world)) !== undefined && world.progress.hasSent(pfn), 'wait for a sent pfn'))) return;
        if (isFree(g, pfn!)) yield* g.balloonOut(pfn!);
        yield* idle(16);
      }
    },
  }),
};

export const BALLOON_IN_XTAB: Scenario = {
  id: 'balloon-in-xtab',
  title: 'balloon in of a pfn that was sent as XTAB',
  exercises: 'balloons out a pfn before the full pass reaches it, waits until it went out as XTAB, then balloons it back in (populate_physmap; no write)',
  hazard: '§1.9 row 2: the p2m frame is dirtied but the pfn is resent only if the guest writes it; the destination leaves it unpopulated',
  run: () => ({
    *driver(world) {
      const g = world.guest;
      const mine: number[] = [];
      if (!(yield* waitUntil(world, () => saving(world), 'wait for the live phase'))) return;
      for (let n = 0; n < 4; n++) {
        const pfn = pickFreeHigh(world);
        if (pfn === undefined || world.progress.hasSent(pfn)) continue;
        yield* g.balloonOut(pfn);
        yield* between();
        mine.push(pfn);
      }
      for (const pfn of mine) {
        if (!(yield* waitUntil(world, () => world.progress.lastSentType(pfn) === XEN_DOMCTL_PFINFO_XTAB, 'wait for the XTAB'))) return;
        if (isBallooned(g, pfn) && g.currentPages < g.maxPages) yield* g.balloonIn(pfn);
      }
    },
  }),
};
