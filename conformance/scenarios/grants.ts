/**
 * Grant map/unmap storm with the peer guest, both ways: the guest maps the peer's pages at its
 * ballooned pfns (FOREIGN_FRAME entries in its p2m) and grants its own pages to the peer.
 */

import { balloonOut } from '../../guest-emu/balloon.js';
import { shareGrant, unshareGrant, type SharedGrant } from '../../guest-emu/grants.js';
import type { PvGuest } from '../../guest-emu/guest.js';
import { PageUse } from '../../guest-emu/page-state.js';
import type { Operation } from '../../guest-emu/steps.js';
import type { DriverWorld } from '../migration.js';
import { between, pickFree, saving, waitUntil, type Scenario } from './scenario.js';

/** A ballooned lowmem pfn of `g` whose leaf is a real page (mapping it never grows the p2m). */
function ballooned(world: DriverWorld, g: PvGuest): number | undefined {
  const n = g.pages.balloonSize;
  for (let i = 0; i < Math.min(n, 64); i++) {
    const pfn = g.pages.balloonAt(world.rng.below(n));
    if (g.mm.isLowmem(pfn) && g.list.leafPfn[g.list.leafIndex(pfn)]! >= 0) return pfn;
  }
  return undefined;
}

function* share(world: DriverWorld, granter: PvGuest, grantee: PvGuest, stamp: number | undefined): Operation<boolean> {
  let granteePfn = ballooned(world, grantee);
  if (granteePfn === undefined) {
    const out = pickFree(world, grantee, true);
    if (out === undefined) return false;
    yield* balloonOut(grantee, out, true);
    granteePfn = out;
  }
  const granterPfn = pickFree(world, granter);
  if (granterPfn === undefined) {
    if (grantee.pages.use(granteePfn) === PageUse.Transit) grantee.pages.setUse(granteePfn, PageUse.Ballooned);
    return false;
  }
  return (yield* shareGrant(granter, grantee, granterPfn, granteePfn, stamp)) !== undefined;
}

export const GRANT_STORM: Scenario = {
  id: 'grant-storm',
  title: 'grant map/unmap storm',
  exercises: 'back-to-back grant maps (FOREIGN_FRAME p2m entries at ballooned pfns), grants to the peer and unmaps, from the first pass to the suspend',
  hazard: 'seed mail: grant map/unmap changes p2m entries without a generation bump; reference §6 "non-bumping entry writes"',
  run: () => ({
    peer: true,
    *driver(world) {
      const g = world.guest;
      const peer = world.peer!;
      if (!(yield* waitUntil(world, () => saving(world), 'wait for the live phase'))) return;
      for (;;) {
        const shared: SharedGrant[] = [...g.grants.given.values(), ...g.grants.mapped.values()];
        if (shared.length > 0 && (shared.length >= 8 || world.rng.chance(0.5))) {
          const s = shared[world.rng.below(shared.length)]!;
          yield* g.operation('grant-end', unshareGrant(s));
          yield* between();
          continue;
        }
        const asBackend = world.rng.chance(0.5);
        const ok = yield* g.operation(asBackend ? 'grant-map' : 'grant-access', asBackend ? share(world, peer, g, undefined) : share(world, g, peer, world.rng.u32()));
        if (!ok) yield 'idle: no page to share';
        yield* between();
      }
    },
  }),
};
