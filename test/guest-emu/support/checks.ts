/**
 * Checks of an emulated guest's p2m against what Xen and the tools see, each returning the
 * violations in the kit's failure shape (`Fail: <context>, expected X, got Y`), empty when all
 * hold: the tree and the list name the same leaf frames; p2m and m2p agree for every owned frame;
 * the list walked through p2m_cr3 is made of the guest's own leaf frames.
 */

import type { GuestAbi } from '../../../abi/index.js';
import { INVALID_M2P } from '../../../xen-emu/machine.js';
import type { Xen } from '../../../xen-emu/xen.js';
import type { PvGuest } from '../../../guest-emu/guest.js';
import { flatP2m, readP2mTree, readSharedP2m, walkP2mCr3 } from './tools-view.js';

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

/** The leaf frames a toolstack would use for this guest: the list when p2m_cr3 is set, else the tree. */
export function toolsLeafMfns(xen: Xen, domid: number, abi: GuestAbi): { leafMfns: bigint[]; source: 'list' | 'tree'; error?: string } {
  const shared = readSharedP2m(xen, domid, abi);
  if (shared.p2mCr3 !== 0n) {
    const w = walkP2mCr3(xen, domid, abi, shared);
    return { leafMfns: w.leafMfns, source: 'list', ...(w.error === undefined ? {} : { error: w.error }) };
  }
  const t = readP2mTree(xen, domid, abi, shared);
  return { leafMfns: t.leafMfns, source: 'tree', ...(t.error === undefined ? {} : { error: t.error }) };
}

/** The tree (fll → mids → leaves) and the list (walked via p2m_cr3) name the same leaf frames. */
export function checkTreeMatchesList(xen: Xen, domid: number, abi: GuestAbi): string[] {
  const shared = readSharedP2m(xen, domid, abi);
  const tree = readP2mTree(xen, domid, abi, shared);
  const list = walkP2mCr3(xen, domid, abi, shared);
  const problems: string[] = [];
  if (tree.error) problems.push(`Fail: reading the p2m tree, expected success, got ${tree.error}`);
  if (list.error) problems.push(`Fail: walking p2m_cr3, expected success, got ${list.error}`);
  if (problems.length > 0) return problems;
  const n = Math.min(tree.leafMfns.length, list.leafMfns.length);
  for (let i = 0; i < n; i++) {
    if (tree.leafMfns[i] !== list.leafMfns[i]) problems.push(`Fail: leaf ${i} of d${domid}, expected the tree's mfn ${hex(tree.leafMfns[i]!)} in the list, got ${hex(list.leafMfns[i]!)}`);
  }
  return problems;
}

/**
 * p2m and m2p agree: every frame the domain owns (shared Xen heap pages aside) has an m2p entry
 * whose p2m entry names it back, and every p2m entry below max_pfn that names a frame (not
 * INVALID, foreign or 1:1) names one of the domain's frames whose m2p entry names the pfn.
 */
export function checkP2mM2p(xen: Xen, domid: number, abi: GuestAbi): string[] {
  const problems: string[] = [];
  const { leafMfns, error } = toolsLeafMfns(xen, domid, abi);
  if (error) return [`Fail: finding the p2m of d${domid}, expected success, got ${error}`];
  const words = flatP2m(xen, domid, leafMfns);
  const wide = abi.wordSize === 8;
  const entries = wide ? words.length / 2 : words.length;
  // An entry as a number (frames fit 2^53), or -1 for INVALID, foreign or 1:1 (the marker bits).
  const frameAt = (pfn: number): number => {
    if (wide) {
      const hi = words[2 * pfn + 1]!;
      return hi >= 0x40000000 ? -1 : hi * 2 ** 32 + words[2 * pfn]!;
    }
    const lo = words[pfn]!;
    return lo >= 0x40000000 ? -1 : lo;
  };
  const shared = readSharedP2m(xen, domid, abi);
  const m = xen.machine;
  for (const mfn of xen.framesOf(domid)) {
    if (m.isXenHeap(mfn)) continue;
    const pfn = m.m2pOf(mfn);
    if (pfn === INVALID_M2P) {
      problems.push(`Fail: m2p of d${domid}'s mfn ${hex(mfn)}, expected a pfn, got INVALID`);
      continue;
    }
    const entry = pfn < entries ? frameAt(pfn) : undefined;
    if (entry !== mfn) problems.push(`Fail: p2m[${hex(pfn)}] of d${domid} (m2p of mfn ${hex(mfn)}), expected ${hex(mfn)}, got ${entry === undefined ? 'beyond the p2m' : entry < 0 ? 'no frame' : hex(entry)}`);
  }
  const limit = Math.min(entries, Number(shared.maxPfn));
  for (let pfn = 0; pfn < limit; pfn++) {
    const mfn = frameAt(pfn);
    if (mfn < 0) continue;
    if (!m.isValidMfn(mfn) || m.ownerOf(mfn) !== domid) problems.push(`Fail: p2m[${hex(pfn)}] of d${domid}, expected an owned mfn, got ${hex(mfn)}`);
    else if (m.m2pOf(mfn) !== pfn) problems.push(`Fail: m2p[${hex(mfn)}] (p2m[${hex(pfn)}] of d${domid}), expected ${hex(pfn)}, got ${hex(m.m2pOf(mfn))}`);
  }
  return problems;
}

/** The leaf frames walked through p2m_cr3 are the guest's own leaf pages, in order. */
export function checkWalkYieldsGuestLeaves(g: PvGuest): string[] {
  const w = walkP2mCr3(g.xen, g.domid, g.abi);
  if (w.error) return [`Fail: walking p2m_cr3 of d${g.domid}, expected success, got ${w.error}`];
  const problems: string[] = [];
  if (w.leafMfns.length === 0) problems.push(`Fail: leaves walked for d${g.domid}, expected at least one, got 0`);
  w.leafMfns.forEach((mfn, leaf) => {
    const own = g.mfnOf(g.list.leafPagePfn(leaf));
    if (mfn !== own) problems.push(`Fail: leaf ${leaf} walked for d${g.domid}, expected the guest's mfn ${hex(own)}, got ${hex(mfn)}`);
  });
  return problems;
}
