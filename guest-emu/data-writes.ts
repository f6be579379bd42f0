/**
 * Ordinary data writes: the guest's processes and page cache changing page contents. One write is
 * one store of a whole page's new contents (a content stamp, design decision 5) through the
 * kernel's mapping of the page; under logdirty it dirties the pfn the m2p names at that instant.
 */

import { GuestKernelBug, GuestStateError, hex } from './errors.js';
import { PageUse } from './page-state.js';
import type { PvGuest } from './guest.js';
import type { Operation } from './steps.js';

/** Writes `stamp` as the new contents of free (ordinary) page `pfn`. */
export function* writePage(g: PvGuest, pfn: number, stamp: number): Operation {
  if (g.pages.use(pfn) !== PageUse.Free) throw new GuestStateError(`data write to pfn ${hex(pfn)}, which is not ordinary memory`);
  const va = yield* g.mm.pageVa(pfn);
  const rc = g.xen.guestStorePage(g.binding.dom, va, stamp >>> 0);
  if (rc !== 0) throw new GuestKernelBug('data page store', BigInt(rc), pfn);
  yield `write pfn ${hex(pfn)} stamp ${hex(stamp >>> 0)}`;
}
