/**
 * The balloon driver, after Linux drivers/xen/balloon.c (`decrease_reservation`,
 * `increase_reservation`, `reserve_additional_memory`) and drivers/xen/mem-reservation.c
 * (`xenmem_reservation_scrub_page`, `__xenmem_reservation_va_mapping_reset` / `_update`):
 *
 * - out: scrub the page (a guest write: under logdirty it dirties the pfn; `scrub: false` models
 *   guests that do not), zap its direct-map PTE (update_va_mapping 0; highmem: drop the kmap),
 *   p2m entry INVALID (one store), then `decrease_reservation` of its mfn;
 * - in: `populate_physmap` of the pfn (Xen sets the m2p), or the older `increase_reservation`
 *   followed by the guest's own `MMU_MACHPHYS_UPDATE`; then the p2m store (which grows the p2m
 *   when the pfn's leaf is a shared missing page), then the direct-map PTE (lowmem only);
 * - hotplug: new pfns join the balloon with INVALID p2m entries (`set_phys_to_machine` of each,
 *   which allocates p2m structure where the entries were 1:1).
 */

import {
  INVALID_P2M_ENTRY,
  XENMEM_decrease_reservation,
  XENMEM_increase_reservation,
  XENMEM_populate_physmap,
} from '../abi/index.js';
import { STAMP_ZERO } from '../xen-emu/machine.js';
import { GuestKernelBug, GuestStateError, hex } from './errors.js';
import { machphysUpdate } from './hypercalls.js';
import { PageUse } from './page-state.js';
import type { PvGuest } from './guest.js';
import type { Operation } from './steps.js';

/**
 * Balloons out `pfn`, a free page. With `keep` the pfn stays taken by the caller instead of joining
 * the balloon list (`alloc_xenballooned_pages` handing it straight to a grant mapping).
 */
export function* balloonOut(g: PvGuest, pfn: number, keep = false): Operation {
  if (g.pages.use(pfn) !== PageUse.Free) throw new GuestStateError(`balloon out of pfn ${hex(pfn)}, which is not free memory`);
  g.pages.setUse(pfn, PageUse.Transit);
  if (g.scrub) {
    const va = yield* g.mm.pageVa(pfn);
    const rc = g.xen.guestStorePage(g.binding.dom, va, STAMP_ZERO);
    if (rc !== 0) throw new GuestKernelBug('scrub store', BigInt(rc), pfn);
    yield `balloon out: scrub pfn ${hex(pfn)}`;
  }
  if (g.mm.isLowmem(pfn)) {
    if (g.pages.isMapped(pfn)) yield* g.mm.unmapDirect(pfn, `balloon out: zap __va(pfn ${hex(pfn)})`);
  } else {
    yield* g.mm.flushKmaps(pfn);
  }
  const mfn = g.mfnOf(pfn);
  yield* g.list.set(pfn, INVALID_P2M_ENTRY(g.abi), `balloon out: p2m[${hex(pfn)}] = INVALID`);
  const r = g.hc.reservation(XENMEM_decrease_reservation, [mfn]);
  if (r.done !== 1) throw new GuestKernelBug(`decrease_reservation of mfn ${hex(mfn)}`, BigInt(r.done), pfn);
  g.pages.setUse(pfn, keep ? PageUse.Transit : PageUse.Ballooned);
  g.currentPages--;
  yield `balloon out: decrease_reservation mfn ${hex(mfn)} (pfn ${hex(pfn)})`;
}

/**
 * Balloons `pfn` (in the balloon) back in. Returns false, after the one refused hypercall, when
 * Xen has no frame for it (the domain is at max_pages, or the machine is full).
 */
export function* balloonIn(g: PvGuest, pfn: number): Operation<boolean> {
  if (g.pages.use(pfn) !== PageUse.Ballooned) throw new GuestStateError(`balloon in of pfn ${hex(pfn)}, which is not in the balloon`);
  g.pages.setUse(pfn, PageUse.Transit);
  let mfn: bigint;
  if (g.balloonInMethod === 'populate_physmap') {
    const r = g.hc.reservation(XENMEM_populate_physmap, [BigInt(pfn)]);
    yield `balloon in: populate_physmap pfn ${hex(pfn)}: ${r.done} done`;
    if (r.done !== 1) return refusedIn(g, pfn);
    mfn = r.list[0]!;
  } else {
    const r = g.hc.reservation(XENMEM_increase_reservation, [0n]);
    yield `balloon in: increase_reservation for pfn ${hex(pfn)}: ${r.done} done`;
    if (r.done !== 1) return refusedIn(g, pfn);
    mfn = r.list[0]!;
    if (g.fault !== 'forgotten-m2p') {
      const rc = g.hc.mmuUpdate([machphysUpdate(mfn, BigInt(pfn))]);
      if (rc !== 0n) throw new GuestKernelBug(`MMU_MACHPHYS_UPDATE mfn ${hex(mfn)} -> pfn ${hex(pfn)}`, rc, pfn);
      yield `balloon in: MMU_MACHPHYS_UPDATE m2p[${hex(mfn)}] = ${hex(pfn)}`;
    }
  }
  const ok = yield* g.list.set(pfn, mfn, `balloon in: p2m[${hex(pfn)}] = ${hex(mfn)}`);
  if (!ok) throw new GuestKernelBug(`set_phys_to_machine beyond the p2m area`, -22n, pfn);
  g.pages.setUse(pfn, PageUse.Free);
  g.currentPages++;
  if (g.mm.isLowmem(pfn)) yield* g.mm.mapDirect(pfn, mfn, `balloon in: map __va(pfn ${hex(pfn)})`);
  return true;
}

/** A refused balloon-in: the pfn goes back to the balloon (a function, not a closure per operation). */
function refusedIn(g: PvGuest, pfn: number): false {
  g.pages.setUse(pfn, PageUse.Ballooned);
  return false;
}

/** Memory hotplug: pfns [first, first+count) (all holes) join the balloon with INVALID p2m entries. */
export function* hotplug(g: PvGuest, first: number, count: number): Operation {
  for (let pfn = first; pfn < first + count; pfn++) {
    if (g.pages.use(pfn) !== PageUse.Hole) throw new GuestStateError(`hotplug of pfn ${hex(pfn)}, which is not a hole`);
  }
  const invalid = INVALID_P2M_ENTRY(g.abi);
  g.pages.addRam(first, count);
  for (let pfn = first; pfn < first + count; pfn++) {
    const ok = yield* g.list.set(pfn, invalid, `hotplug: p2m[${hex(pfn)}] = INVALID`);
    if (!ok) throw new GuestKernelBug('hotplug beyond the p2m area', -22n, pfn);
    g.pages.setUse(pfn, PageUse.Ballooned);
  }
}
