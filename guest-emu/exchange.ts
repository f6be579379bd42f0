/**
 * Making a machine-contiguous region with XENMEM_exchange, after Linux arch/x86/xen/mmu_pv.c
 * `xen_create_contiguous_region` (the swiotlb / DMA path): the region is zeroed (one store per
 * page), then `xen_zap_pfn_range` stores INVALID into each page's p2m entry and queues the PTE
 * zaps into one multicall, then XENMEM_exchange gives the old frames for one extent of the
 * region's order (Xen sets the m2p of every new frame to the region's pfns), then
 * `xen_remap_exchanged_ptes` stores each page's new mfn (the old ones if the exchange failed) and
 * queues the new PTEs into one multicall. The pages must be lowmem (they have a `__va`).
 */

import { INVALID_P2M_ENTRY, UVMF_ALL, UVMF_INVLPG, UVMF_TLB_FLUSH, __HYPERVISOR_update_va_mapping, multicall_entry, PAGE_SIZE } from '../abi/index.js';
import { STAMP_ZERO } from '../xen-emu/machine.js';
import { GuestKernelBug, GuestStateError, hex } from './errors.js';
import { PTE_KERNEL } from './kernel-mm.js';
import { PageUse } from './page-state.js';
import type { MulticallEntry } from './hypercalls.js';
import type { PvGuest } from './guest.js';
import type { Operation } from './steps.js';

/** Linux's MAX_CONTIG_ORDER: 2 MiB regions at most. */
export const MAX_CONTIG_ORDER = 9;

/** Issues update_va_mapping entries as multicalls, a page of entries at a time (xen_mc_issue). */
function* multicallMappings(g: PvGuest, entries: MulticallEntry[], label: string): Operation {
  const perCall = Math.floor(PAGE_SIZE / multicall_entry.sizeOf(g.abi));
  for (let at = 0; at < entries.length; at += perCall) {
    const batch = entries.slice(at, at + perCall);
    const r = g.hc.multicall(batch);
    if (r.rc !== 0n || r.results.some((x) => x !== 0n)) throw new GuestKernelBug(`${label} multicall`, r.rc !== 0n ? r.rc : r.results.find((x) => x !== 0n)!);
    yield `${label}: multicall of ${batch.length} update_va_mapping`;
  }
}

/** Exchanges pfns [first, first + 2^order) for one machine-contiguous extent. Returns whether Xen did it. */
export function* exchangeRegion(g: PvGuest, first: number, order: number): Operation<boolean> {
  if (!Number.isInteger(order) || order < 0 || order > MAX_CONTIG_ORDER) throw new GuestStateError(`exchange order ${order} outside [0, ${MAX_CONTIG_ORDER}]`);
  const n = 2 ** order;
  for (let pfn = first; pfn < first + n; pfn++) {
    if (g.pages.use(pfn) !== PageUse.Free || !g.mm.isLowmem(pfn)) throw new GuestStateError(`exchange region pfn ${hex(pfn)} is not free lowmem`);
  }
  g.pages.setUse(first, PageUse.Transit, n);
  const { xen, dom } = g.binding;
  // memset((void *)vstart, 0, PAGE_SIZE << order)
  for (let pfn = first; pfn < first + n; pfn++) {
    const va = yield* g.mm.pageVa(pfn);
    const rc = xen.guestStorePage(dom, va, STAMP_ZERO);
    if (rc !== 0) throw new GuestKernelBug('zeroing an exchange region page', BigInt(rc), pfn);
    yield `exchange: zero pfn ${hex(pfn)}`;
  }
  // xen_zap_pfn_range: remember the mfns, p2m INVALID now, PTE zaps queued.
  const inFrames: bigint[] = [];
  const zaps: MulticallEntry[] = [];
  const invalid = INVALID_P2M_ENTRY(g.abi);
  for (let pfn = first; pfn < first + n; pfn++) {
    inFrames.push(g.mfnOf(pfn));
    zaps.push({ op: __HYPERVISOR_update_va_mapping, args: g.hc.updateVaMappingArgs(g.mm.directVa(pfn), 0n, 0n) });
    yield* g.list.storeElement(pfn, invalid, `exchange: p2m[${hex(pfn)}] = INVALID`);
  }
  yield* multicallMappings(g, zaps, 'exchange: zap PTEs');
  for (let pfn = first; pfn < first + n; pfn++) g.pages.setMapped(pfn, false);

  const r = g.hc.exchange(inFrames, 0, [BigInt(first)], order);
  const success = r.rc === 0n && r.nrExchanged === n;
  yield `exchange: XENMEM_exchange ${n} pages at pfn ${hex(first)} for an order-${order} extent: rc ${r.rc}`;
  if (!success && r.nrExchanged !== 0) throw new GuestKernelBug(`XENMEM_exchange half done (${r.nrExchanged} of ${n})`, r.rc, first);
  const firstMfn = r.out[0]!;

  // xen_remap_exchanged_ptes: p2m stores now, PTEs queued; the last entry flushes.
  const maps: MulticallEntry[] = [];
  for (let i = 0; i < n; i++) {
    const pfn = first + i;
    const mfn = success ? firstMfn + BigInt(i) : inFrames[i]!;
    const flags = i < n - 1 ? 0n : (order === 0 ? UVMF_INVLPG : UVMF_TLB_FLUSH) | UVMF_ALL;
    maps.push({ op: __HYPERVISOR_update_va_mapping, args: g.hc.updateVaMappingArgs(g.mm.directVa(pfn), (mfn << 12n) | PTE_KERNEL, flags) });
    yield* g.list.storeElement(pfn, mfn, `exchange: p2m[${hex(pfn)}] = ${hex(mfn)}`);
  }
  yield* multicallMappings(g, maps, 'exchange: remap PTEs');
  for (let pfn = first; pfn < first + n; pfn++) g.pages.setMapped(pfn, true);
  g.pages.setUse(first, PageUse.Free, n);
  return success;
}
