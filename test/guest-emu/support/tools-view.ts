/**
 * The guest's p2m as a toolstack sees it, through the privileged interface only (design decision
 * 6): shared_info's p2m fields; the linear list found by walking `p2m_cr3` the way libxc's
 * `map_p2m_list` does (reference §2.6: levels from the root, index ranges per level, frames
 * non-zero and ≤ max_mfn, present bit ignored, the trailing-duplicate trim at level 2); the
 * 3-level tree read the way `map_p2m_tree` does (§2.2, without its trim); and the flat p2m those
 * leaf frames hold. Test support, not a toolstack: it reports what it finds instead of aborting.
 */

import {
  PAGE_SIZE,
  PTE_FRAME_MASK,
  shared_info,
  toolsCr3ToMfn,
  wordMask,
  type GuestAbi,
} from '../../../abi/index.js';
import { PrivilegedInterface } from '../../../xen-emu/privileged.js';
import type { Xen } from '../../../xen-emu/xen.js';

/** The toolstack runs outside every emulated domain (PrivilegedInterface without a caller domid). */

export function privileged(xen: Xen): PrivilegedInterface {
  return new PrivilegedInterface(xen);
}

export interface SharedP2m {
  readonly maxPfn: bigint;
  readonly fll: bigint;
  readonly p2mCr3: bigint;
  readonly p2mVaddr: bigint;
  readonly generation: bigint;
}

function word(page: Uint8Array, at: number, width: 4 | 8): bigint {
  const view = new DataView(page.buffer, page.byteOffset, page.byteLength);
  return width === 8 ? view.getBigUint64(at, true) : BigInt(view.getUint32(at, true));
}

export function readSharedP2m(xen: Xen, domid: number, abi: GuestAbi): SharedP2m {
  const page = privileged(xen).sharedInfo(domid);
  const f = (name: string): bigint => word(page, shared_info.offsetOf(abi, `arch.${name}`), abi.wordSize);
  return { maxPfn: f('max_pfn'), fll: f('pfn_to_mfn_frame_list_list'), p2mCr3: f('p2m_cr3'), p2mVaddr: f('p2m_vaddr'), generation: f('p2m_generation') };
}

function readFrame(xen: Xen, domid: number, mfn: bigint): Uint8Array | undefined {
  if (mfn < 0n || mfn >= BigInt(xen.machine.maxPage)) return undefined;
  const { pages } = privileged(xen).mapForeign(domid, [Number(mfn)]);
  return pages[0];
}

export interface ListWalk {
  /** The leaf frames, one per p2m page, in order. */
  readonly leafMfns: bigint[];
  /** `max_pfn` (highest pfn) after the level-2 trim. */
  readonly maxPfn: number;
  /** Why the walk failed, in libxc's words; undefined when it succeeded. */
  readonly error?: string;
}

/** libxc `map_p2m_list`: the leaf frames under `p2m_cr3`. */
export function walkP2mCr3(xen: Xen, domid: number, abi: GuestAbi, shared = readSharedP2m(xen, domid, abi)): ListWalk {
  const width = abi.wordSize;
  const fpp = PAGE_SIZE / width;
  const levels = abi.pagingLevels;
  const mask = width === 8 ? 0x0000ffffffffffffn : 0xffffffffn;
  const maxMfn = BigInt(privileged(xen).maximumRamPage());
  let maxPfn = Number(shared.maxPfn) - 1;
  const fail = (error: string): ListWalk => ({ leafMfns: [], maxPfn, error });
  if (shared.p2mCr3 === 0n) return fail('p2m_cr3 is 0: no linear list');
  let frames = Math.floor(maxPfn / fpp) + 1;
  const vaddr = shared.p2mVaddr;
  let end = vaddr + BigInt(frames * PAGE_SIZE) - 1n;
  if (width === 8) {
    const canonical = (v: bigint): boolean => v >> 47n === 0n || v >> 47n === 0x1ffffn;
    if (!canonical(vaddr) || !canonical(end) || end < vaddr || (vaddr <= 0xffff87ffffffffffn && end >= 0xffff800000000000n)) {
      return fail(`bad virtual p2m address range 0x${vaddr.toString(16)}-0x${end.toString(16)}`);
    }
  } else if (end > 0xffffffffn || end < vaddr || end >= 0xf5800000n) {
    return fail(`bad virtual p2m address range 0x${vaddr.toString(16)}-0x${end.toString(16)}`);
  }
  const root = toolsCr3ToMfn(abi, shared.p2mCr3);
  if (root === 0n || root > maxMfn) return fail(`bad p2m_cr3 0x${shared.p2mCr3.toString(16)}`);
  let tables: bigint[] = [root];
  let off = 0n;
  for (let level: number = levels; level > 0; level--) {
    const shift = BigInt(level * 9 + 3);
    const idxStart = Number(((vaddr - off) & mask) >> shift);
    let idxEnd = Number(((end - off) & mask) >> shift);
    const pages = tables.map((mfn) => readFrame(xen, domid, mfn));
    if (pages.some((p) => p === undefined)) return fail(`level ${level} table frame not mappable`);
    const next: bigint[] = [];
    let savedMfn = 0n;
    let savedIdx = 0;
    for (let idx = idxStart; idx <= idxEnd; idx++) {
      const page = pages[Math.floor(idx / 512)];
      if (page === undefined) return fail(`index ${idx} beyond the ${pages.length} level-${level} tables mapped`);
      const pte = word(page, (idx % 512) * 8, 8);
      const mfn = (pte & PTE_FRAME_MASK) >> 12n;
      if (mfn === 0n || mfn > maxMfn) return fail(`Bad mfn 0x${mfn.toString(16)} during page table walk for vaddr 0x${vaddr.toString(16)} at level ${level} of p2m list`);
      next.push(mfn);
      if (level === 2 && mfn !== savedMfn) {
        savedMfn = mfn;
        savedIdx = idx - idxStart;
      }
    }
    if (level === 2) {
      if (savedIdx === idxEnd) savedIdx++;
      const trimmed = savedIdx * 512 * fpp - 1;
      if (trimmed < maxPfn) {
        maxPfn = trimmed;
        frames = Math.floor((maxPfn + fpp) / fpp);
        end = vaddr + BigInt(frames * PAGE_SIZE) - 1n;
        idxEnd = idxStart + savedIdx;
        next.length = Math.min(next.length, savedIdx + 1);
      }
    }
    tables = next;
    off = vaddr & ((mask >> shift) << shift);
  }
  return { leafMfns: tables.slice(0, frames), maxPfn };
}

export interface TreeRead {
  readonly leafMfns: bigint[];
  readonly midMfns: bigint[];
  readonly maxPfn: number;
  readonly error?: string;
}

/** libxc `map_p2m_tree` (without its trailing-duplicate trim): fll → mid pages → leaf frames. */
export function readP2mTree(xen: Xen, domid: number, abi: GuestAbi, shared = readSharedP2m(xen, domid, abi)): TreeRead {
  const width = abi.wordSize;
  const fpp = PAGE_SIZE / width;
  const maxMfn = BigInt(privileged(xen).maximumRamPage());
  const maxPfn = Number(shared.maxPfn) - 1;
  const fail = (error: string): TreeRead => ({ leafMfns: [], midMfns: [], maxPfn, error });
  const fllEntries = Math.floor(maxPfn / (fpp * fpp)) + 1;
  if (fllEntries > fpp) return fail(`max_pfn 0x${maxPfn.toString(16)} too large for p2m tree`);
  const fll = shared.fll;
  if (fll === 0n || fll === wordMask(abi) || fll > maxMfn) return fail(`bad p2m frame list list mfn 0x${fll.toString(16)}`);
  const top = readFrame(xen, domid, fll);
  if (!top) return fail('fll frame not mappable');
  const mids: bigint[] = [];
  for (let i = 0; i < fllEntries; i++) {
    const m = word(top, i * width, width);
    if (m === 0n || m > maxMfn) return fail(`bad mfn 0x${m.toString(16)} in fll entry ${i}`);
    mids.push(m);
  }
  const flEntries = Math.floor(maxPfn / fpp) + 1;
  const leaves: bigint[] = [];
  for (let i = 0; i < flEntries; i++) {
    const page = readFrame(xen, domid, mids[Math.floor(i / fpp)]!);
    if (!page) return fail(`mid frame ${Math.floor(i / fpp)} not mappable`);
    const l = word(page, (i % fpp) * width, width);
    if (l === 0n || l > maxMfn) return fail(`bad mfn 0x${l.toString(16)} in mid entry ${i}`);
    leaves.push(l);
  }
  return { leafMfns: leaves, midMfns: mids, maxPfn };
}

/**
 * The flat p2m the leaf frames hold (entries [0, leafMfns.length · fpp)), as the tools copy it: the
 * raw little-endian 32-bit words (two per entry on x86_64, low word first).
 */
export function flatP2m(xen: Xen, domid: number, leafMfns: readonly bigint[]): Uint32Array {
  const out = new Uint32Array((leafMfns.length * PAGE_SIZE) / 4);
  leafMfns.forEach((mfn, i) => {
    const page = readFrame(xen, domid, mfn);
    if (page) out.set(new Uint32Array(page.buffer, page.byteOffset, PAGE_SIZE / 4), (i * PAGE_SIZE) / 4);
    else out.fill(0xffffffff, (i * PAGE_SIZE) / 4, ((i + 1) * PAGE_SIZE) / 4);
  });
  return out;
}

/** Entry `pfn` of a flat p2m as a bigint at guest width. */
export function entryOf(words: Uint32Array, abi: GuestAbi, pfn: number): bigint {
  return abi.wordSize === 8 ? (BigInt(words[2 * pfn + 1]!) << 32n) | BigInt(words[2 * pfn]!) : BigInt(words[pfn]!);
}
