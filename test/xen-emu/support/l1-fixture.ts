/**
 * Shared by the tests that check the number-based page-table code against BigInt references
 * (walk.test.ts, l1-update-halves.test.ts): reading an entry the slow, obviously right way, and the
 * frames a hostile L1 entry may name on a booted guest.
 */

import { PAGE_SIZE, X86_64, _PAGE_ACCESSED, _PAGE_PRESENT, _PAGE_RW } from '../../../abi/index.js';
import { buildDomain, type BuiltDomain } from '../../../xen-emu/builder.js';
import type { Domain } from '../../../xen-emu/domain.js';
import type { Xen } from '../../../xen-emu/xen.js';
import type { PvGuest } from '../../../guest-emu/guest.js';

/** Entry `index` of table `mfn` as a 64-bit value, through a DataView (the reference read). */
export function entry(xen: Xen, mfn: number, index: number): bigint {
  const page = xen.machine.bytes(mfn);
  return new DataView(page.buffer, page.byteOffset, PAGE_SIZE).getBigUint64(index * 8, true);
}

export interface L1Targets {
  readonly dom: Domain;
  /** The guest's mfn of `pfn`. */
  readonly own: (pfn: number) => bigint;
  /** Another domain, whose frames an entry of the guest's may not name. */
  readonly peer: BuiltDomain;
  /** The first frame nobody owns. */
  readonly freeMfn: number;
  /** A frame the guest pinned as an L1 (one of its p2m list's PTE pages). */
  readonly pinnedL1: bigint;
  readonly pte: (mfn: bigint, flags: bigint) => bigint;
  readonly P: bigint;
  readonly PRW: bigint;
}

/** Builds the peer domain and finds the frames of every kind an L1 entry can name. */
export function l1Targets(xen: Xen, g: PvGuest): L1Targets {
  const own = (pfn: number): bigint => g.mfnOf(pfn);
  const peer = buildDomain(xen, { abi: X86_64, memoryPages: 1100, maxPages: 1100 });
  let freeMfn = 0;
  while (xen.machine.ownerOf(freeMfn) !== undefined) freeMfn++;
  return {
    dom: g.binding.dom,
    own,
    peer,
    freeMfn,
    pinnedL1: own(g.list.ptePfn.find((p) => p >= 0)!),
    pte: (mfn, flags) => (mfn << 12n) | flags,
    P: _PAGE_PRESENT,
    PRW: _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED,
  };
}
