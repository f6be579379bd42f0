/** XENMEM_exchange of a region that was already sent (Linux xen_create_contiguous_region). */

import { idle, isFree, pickFree, saving, waitUntil, type Scenario } from './scenario.js';

export const EXCHANGE: Scenario = {
  id: 'exchange',
  title: 'XENMEM_exchange of a sent region',
  exercises: 'after the region was sent, makes 2^3 free lowmem pages machine-contiguous (zero, zap, exchange, p2m and m2p updates, remap)',
  hazard: '§1.9 rows 4-5: the pfns move to new mfns; a stale p2m gives XTAB (not deferred) or another pfn\'s data',
  run: () => ({
    *driver(world) {
      const g = world.guest;
      const order = 3;
      const n = 2 ** order;
      if (!(yield* waitUntil(world, () => saving(world), 'wait for the live phase'))) return;
      for (let done = 0, tries = 0; done < 3 && tries < 64; tries++) {
        const first = pickFree(world, g, true);
        if (first === undefined) return;
        let ok = true;
        for (let pfn = first; pfn < first + n && ok; pfn++) ok = isFree(g, pfn) && g.mm.isLowmem(pfn);
        if (!ok) continue;
        if (!(yield* waitUntil(world, () => world.progress.hasSent(first + n - 1), 'wait until the region was sent'))) return;
        let still = true;
        for (let pfn = first; pfn < first + n && still; pfn++) still = isFree(g, pfn);
        if (!still) continue;
        yield* g.exchange(first, order);
        done++;
        yield* idle(8);
      }
    },
  }),
};
