/**
 * Machine-wide invariants that hold after every hypercall, whatever the guest passed: frames are
 * conserved (free + owned = total), no frame is both owned and in the free pool, freed frames have
 * an invalid m2p entry, and each domain's `tot_pages` equals the frames it owns (Xen heap pages
 * shared with it excluded). A full scan: meant for tests and fuzzing on small machines.
 */

import { INVALID_M2P } from './machine.js';
import type { Xen } from './xen.js';

const hex = (n: number): string => `0x${n.toString(16)}`;

/** Every violated invariant, one line each in the kit's failure shape; empty when all hold. */
export function checkInvariants(xen: Xen): string[] {
  const m = xen.machine;
  const problems: string[] = [];
  const owned = new Map<number, number>();
  let used = 0;
  for (let mfn = 0; mfn < m.maxPage; mfn++) {
    const owner = m.ownerOf(mfn);
    if (owner === undefined) {
      if (m.m2pOf(mfn) !== INVALID_M2P) problems.push(`Fail: m2p of free mfn ${hex(mfn)}, expected INVALID, got ${hex(m.m2pOf(mfn))}`);
      continue;
    }
    used++;
    if (!xen.domain(owner)) problems.push(`Fail: owner of mfn ${hex(mfn)}, expected a live domain, got domain ${owner}`);
    if (!m.isXenHeap(mfn)) owned.set(owner, (owned.get(owner) ?? 0) + 1);
  }
  if (used !== m.usedFrames) problems.push(`Fail: frames owned, expected ${used} (counted), got ${m.usedFrames} (accounted)`);
  if (used + m.freeFrames !== m.maxPage) {
    problems.push(`Fail: free + owned frames, expected ${m.maxPage}, got ${used + m.freeFrames}`);
  }
  for (const mfn of m.freePool()) {
    if (m.ownerOf(mfn) !== undefined) problems.push(`Fail: mfn ${hex(mfn)} in the free pool, expected free, got owned by ${m.ownerOf(mfn)}`);
  }
  for (const dom of xen.domainList) {
    const count = owned.get(dom.domid) ?? 0;
    if (dom.totPages !== count) problems.push(`Fail: tot_pages of domain ${dom.domid}, expected ${count} (frames owned), got ${dom.totPages}`);
    if (dom.totPages > dom.maxPages) problems.push(`Fail: tot_pages of domain ${dom.domid}, expected at most max_pages ${dom.maxPages}, got ${dom.totPages}`);
  }
  return problems;
}
