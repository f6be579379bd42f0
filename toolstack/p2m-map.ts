/**
 * Mapping a PV guest's p2m the way libxc's `map_p2m` does before a save (reference §2.2, §2.6):
 * the linear list when `p2m_cr3` is set, the 3-level tree otherwise, with libxc's checks, errnos
 * and max_pfn trims (quirks included), through the privileged interface only (design decision 6).
 *
 * The result reads the live leaf frames: element values are always current, but which frames make
 * up the p2m is fixed at mapping time (it goes stale if the guest grows or moves its p2m).
 *
 * A 512 GiB guest has 262144 leaves and the saver maps its p2m several times, so the walk reads
 * every entry as 32-bit halves of one view per page and keeps frame numbers in typed arrays; a
 * bigint is made only for an error's detail, and the per-leaf objects of the older API (`leaves`,
 * `leafMfns`, `leafPfns`) are made on first use.
 */

import {
  EINVAL,
  ERANGE,
  HYPERVISOR_VIRT_START_PAE,
  HYPERVISOR_VIRT_START_X86_64,
  P2mArray,
  PAGE_SIZE,
  PTE_FRAME_MASK,
  TOOLS_INVALID_MFN,
  shared_info,
  toolsCr3ToMfn,
  toolsP2mEntry,
  type GuestAbi,
} from '../abi/index.js';
import { INVALID_M2P } from '../xen-emu/machine.js';
import type { PrivilegedInterface } from '../xen-emu/privileged.js';

const U64 = (1n << 64n) - 1n;
const U32 = (1n << 32n) - 1n;

/** libxc's bounds of Xen's virtual area as `map_p2m_list` tests them (inclusive ends). */
const XEN_VA_X86_64 = { start: HYPERVISOR_VIRT_START_X86_64, end: 0xffff87ffffffffffn } as const;
const XEN_VA_X86_32 = { start: HYPERVISOR_VIRT_START_PAE, end: 0xffffffffn } as const;
/** Virtual-address masks of the walk: 48 bits of index space on x86_64, 32 on PAE. */
const VA_MASK_X86_64 = 0x0000ffffffffffffn;
const VA_MASK_X86_32 = 0xffffffffn;
const PTES_PER_PAGE = PAGE_SIZE / 8;
const TWO_32 = 2 ** 32;
/** PTE_FRAME_MASK as the two 32-bit halves of an entry. */
const FRAME_MASK_LO = Number(PTE_FRAME_MASK & 0xffffffffn);
const FRAME_MASK_HI = Number(PTE_FRAME_MASK >> 32n);

/** What failed, named after the libxc check that fails. */
export type P2mMapFailure =
  | 'empty-p2m' // shared max_pfn 0: libxc goes on with an unallocated frame list (undefined behaviour)
  | 'tree-too-large' // fll_entries > fpp
  | 'bad-fll' // pfn_to_mfn_frame_list_list 0 or > max_mfn
  | 'bad-fll-entry' // a top-page entry 0 or > max_mfn
  | 'bad-fl-entry' // a mid-page entry 0 or > max_mfn
  | 'root-mfn-zero' // cr3_to_mfn(p2m_cr3) == 0: an assert() in libxc
  | 'bad-p2m-cr3' // root mfn > max_mfn
  | 'bad-vaddr-range' // p2m_vaddr..p2m_end non-canonical, wrapping, or over Xen's area
  | 'bad-pte-frame' // a page-table frame 0 or > max_mfn during the walk
  | 'map-failed' // the foreign mapping refused a frame
  | 'bad-leaf' // a leaf mfn fails mfn_in_pseudophysmap
  | 'frames-truncated'; // list: p2m_frames overflowed libxc's unsigned int, leaves fewer than max_pfn needs

export interface P2mMapErrorDetail {
  readonly maxMfn: bigint;
  readonly fll?: bigint;
  readonly mfn?: bigint;
  readonly index?: number;
  readonly level?: number;
  readonly vaddr?: bigint;
  readonly vaddrEnd?: bigint;
  readonly p2mCr3?: bigint;
  readonly maxPfn?: bigint;
}

/** A failed `map_p2m`, with the errno libxc leaves (EINVAL where libxc sets none) and the numbers. */
export class P2mMapError extends Error {
  override name = 'P2mMapError';
  constructor(
    readonly errno: number,
    readonly failure: P2mMapFailure,
    readonly detail: P2mMapErrorDetail,
    message: string,
  ) {
    super(message);
  }
}

export interface MappedP2m {
  readonly domid: number;
  readonly abi: GuestAbi;
  /** Guest word size and paging levels (libxc's `width`, `levels`). */
  readonly width: 4 | 8;
  readonly levels: 3 | 4;
  readonly source: 'tree' | 'list';
  /** The fll read from shared_info (tree mode), or undefined when the list was used (never read). */
  readonly fll: bigint | undefined;
  /** `p2m_cr3` as read (0 in tree mode) and, in list mode, `p2m_vaddr`. */
  readonly p2mCr3: bigint;
  readonly p2mVaddr: bigint | undefined;
  /** `XENMEM_maximum_ram_page`, the bound of every `≤ max_mfn` check. */
  readonly maxMfn: bigint;
  /** Highest pfn after the trims; `p2mSize` = maxPfn + 1 entries are readable. */
  readonly maxPfn: number;
  readonly p2mSize: number;
  /**
   * The frames the mapping was read through above the leaves: the fll and the mid pages (tree), or
   * every page-table page of the walk from p2m_cr3 (list). A change to one can move the leaves.
   */
  readonly structureMfns: readonly bigint[];
  /** The leaf frames in p2m order, and their pfns through the m2p (made on first use: prefer the arrays below). */
  readonly leafMfns: readonly bigint[];
  readonly leafPfns: readonly number[];
  /** Live views of the leaf frames, one per leaf (fpp entries each; made on first use: prefer `leafWords`). */
  readonly leaves: readonly P2mArray[];
  /** `leafMfns` as numbers (each passed a `≤ max_mfn` check, so exact). */
  readonly leafMfnArray: Float64Array;
  /** `leafPfns` (each ≤ maxPfn). */
  readonly leafPfnArray: Uint32Array;
  /**
   * Live views of the leaf frames as 32-bit words: entry k of leaf x is word k (x86_32), or words
   * 2k (low half) and 2k + 1 (high half) on x86_64.
   */
  readonly leafWords: readonly Uint32Array[];
  /** List mode: `p2m_generation` at mapping time. Tree mode: libxc's ~0 (never compared). */
  readonly p2mGeneration: bigint;
  /** The element of `pfn` as `xc_pfn_to_mfn` gives it: a 32-bit guest's ~0 widened to INVALID_MFN. */
  entry(pfn: number): bigint;
  /** The element of `pfn` at guest width, unwidened. */
  rawEntry(pfn: number): bigint;
  /** A flat copy of entries [0, p2mSize) at guest width, as they read now. */
  snapshot(): P2mArray;
}

interface Ctx {
  readonly tools: PrivilegedInterface;
  readonly domid: number;
  readonly abi: GuestAbi;
  readonly width: 4 | 8;
  readonly fpp: number;
  readonly maxMfn: bigint;
  /** `maxMfn` as a number (it is a machine size, so exact) and as 32-bit halves, for the entry checks. */
  readonly maxMfnNumber: number;
  readonly maxMfnHi: number;
  readonly maxMfnLo: number;
}

function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** A mapped page as 32-bit words (guest memory is little-endian, as P2mArray requires of the host). */
function wordsOf(page: Uint8Array): Uint32Array {
  return new Uint32Array(page.buffer, page.byteOffset, PAGE_SIZE / 4);
}

/** `xc_map_foreign_pages`: all frames or a failure with privcmd's errno. */
function mapFrames(c: Ctx, mfns: readonly number[], what: string): Uint8Array[] {
  // Every mfn here already passed a `≤ max_mfn` check, so it is a safe integer.
  const { pages, errors } = c.tools.mapForeign(c.domid, mfns);
  const bad = errors.findIndex((e) => e !== 0);
  if (bad >= 0) {
    throw new P2mMapError(-errors[bad]!, 'map-failed', { maxMfn: c.maxMfn, mfn: BigInt(mfns[bad]!), index: bad }, `failed to map ${what}: mfn ${hex(mfns[bad]!)} (index ${bad}) errno ${-errors[bad]!}`);
  }
  return pages as Uint8Array[];
}

/**
 * Guest word `k` of a mapped frame-list page as a frame number when it passes libxc's
 * `0 < mfn ≤ max_mfn` check, else -1 (then `guestWord` gives the value for the message).
 */
function frameListEntry(c: Ctx, words: Uint32Array, k: number): number {
  if (c.width === 4) {
    const e = words[k]!;
    // A 32-bit guest's ~0 is widened to the tools' 64-bit INVALID_MFN: above any max_mfn.
    return e === 0 || e === 0xffffffff || e > c.maxMfnNumber ? -1 : e;
  }
  const lo = words[2 * k]!;
  const hi = words[2 * k + 1]!;
  if ((lo === 0 && hi === 0) || hi > c.maxMfnHi || (hi === c.maxMfnHi && lo > c.maxMfnLo)) return -1;
  return hi * TWO_32 + lo;
}

/** Guest word `k` of a mapped page, as the toolstack copies it (32-bit ~0 widened): for messages. */
function guestWord(c: Ctx, words: Uint32Array, k: number): bigint {
  if (c.width === 8) return (BigInt(words[2 * k + 1]!) << 32n) | BigInt(words[2 * k]!);
  return toolsP2mEntry(c.abi, BigInt(words[k]!));
}

interface Shared {
  readonly maxPfnField: bigint;
  readonly fll: bigint;
  readonly p2mCr3: bigint;
  readonly p2mVaddr: bigint;
  readonly generation: bigint;
}

function readShared(c: Ctx): Shared {
  const page = c.tools.sharedInfo(c.domid);
  const si = shared_info.view(c.abi, Buffer.from(page.buffer, page.byteOffset, PAGE_SIZE));
  const a = si.arch;
  return {
    maxPfnField: BigInt(a.max_pfn),
    fll: BigInt(a.pfn_to_mfn_frame_list_list),
    p2mCr3: BigInt(a.p2m_cr3),
    p2mVaddr: BigInt(a.p2m_vaddr),
    generation: BigInt(a.p2m_generation),
  };
}

interface Walked {
  readonly maxPfn: bigint;
  /** The leaf frames, each ≤ max_mfn. */
  readonly leafMfns: readonly number[];
  /** The frames above the leaves that the walk read: the fll and mid pages, or the page tables. */
  readonly structureMfns: bigint[];
}

/** `map_p2m_tree` up to the leaves: fll → mids → leaf mfns, with the trailing-duplicate trim. */
function walkTree(c: Ctx, fll: bigint, maxPfnIn: bigint): Walked {
  const fpp = BigInt(c.fpp);
  const fpp2 = fpp * fpp;
  let maxPfn = maxPfnIn;
  // libxc computes this in an unsigned int: a huge max_pfn truncates, and 0 means "copy nothing".
  let fllEntries = Number((maxPfn / fpp2 + 1n) & U32);
  if (fllEntries > c.fpp) {
    throw new P2mMapError(EINVAL, 'tree-too-large', { maxMfn: c.maxMfn, maxPfn }, `max_pfn ${hex(maxPfn)} too large for p2m tree`);
  }
  if (fll === 0n || fll > c.maxMfn) {
    throw new P2mMapError(EINVAL, 'bad-fll', { maxMfn: c.maxMfn, fll, mfn: fll }, `bad mfn ${hex(fll)} for p2m frame list list (max_mfn ${hex(c.maxMfn)})`);
  }
  if (fllEntries === 0) {
    // libxc would go on to read an unallocated frame list; refuse instead of inventing a result.
    throw new P2mMapError(EINVAL, 'empty-p2m', { maxMfn: c.maxMfn, maxPfn, fll }, `max_pfn ${hex(maxPfn)} leaves no frame list list entries`);
  }
  const top = wordsOf(mapFrames(c, [Number(fll)], 'p2m frame list list')[0]!);
  const topList: number[] = [];
  let savedMfn = 0;
  let savedX = 0;
  for (let x = 0; x < fllEntries; x++) {
    const mfn = frameListEntry(c, top, x);
    if (mfn < 0) {
      const bad = guestWord(c, top, x);
      throw new P2mMapError(EINVAL, 'bad-fll-entry', { maxMfn: c.maxMfn, fll, mfn: bad, index: x }, `bad mfn ${hex(bad)} at index ${x} (of ${fllEntries}) in p2m frame list list`);
    }
    if (mfn !== savedMfn) {
      savedMfn = mfn;
      savedX = x;
    }
    topList.push(mfn);
  }
  // Trailing repeats of one mid mfn are taken as the shared all-missing mid page; the first is kept.
  const trimmed = BigInt(savedX + 1) * fpp2 - 1n;
  if (trimmed < maxPfn) {
    maxPfn = trimmed;
    fllEntries = Number(maxPfn / fpp2 + 1n);
  }
  const flEntries = Number(maxPfn / fpp + 1n);
  const mids = mapFrames(c, topList.slice(0, fllEntries), 'p2m frame list').map(wordsOf);
  const leafMfns: number[] = [];
  const perPage = c.fpp;
  for (let m = 0, x = 0; x < flEntries; m++) {
    const words = mids[m]!;
    for (let k = 0; k < perPage && x < flEntries; k++, x++) {
      const mfn = frameListEntry(c, words, k);
      if (mfn < 0) {
        const bad = guestWord(c, words, k);
        throw new P2mMapError(EINVAL, 'bad-fl-entry', { maxMfn: c.maxMfn, fll, mfn: bad, index: x }, `bad mfn ${hex(bad)} at index ${x} (of ${flEntries}) in p2m frame list`);
      }
      leafMfns.push(mfn);
    }
  }
  return { maxPfn, leafMfns, structureMfns: [fll, ...topList.slice(0, fllEntries).map(BigInt)] };
}

function isCanonical(va: bigint): boolean {
  const top = va >> 47n;
  return top === 0n || top === (1n << 17n) - 1n;
}

/** `map_p2m_list` up to the leaves: the page-table walk from p2m_cr3, with the level-2 trim. */
function walkList(c: Ctx, p2mCr3: bigint, p2mVaddr: bigint, maxPfnIn: bigint): Walked {
  const fpp = BigInt(c.fpp);
  const rootMfn = toolsCr3ToMfn(c.abi, p2mCr3);
  if (rootMfn === 0n) {
    throw new P2mMapError(EINVAL, 'root-mfn-zero', { maxMfn: c.maxMfn, p2mCr3, mfn: 0n }, `p2m_cr3 ${hex(p2mCr3)} folds to mfn 0 (libxc asserts)`);
  }
  if (rootMfn > c.maxMfn) {
    throw new P2mMapError(ERANGE, 'bad-p2m-cr3', { maxMfn: c.maxMfn, p2mCr3, mfn: rootMfn }, `bad p2m_cr3 value ${hex(p2mCr3)} (root mfn ${hex(rootMfn)}, max_mfn ${hex(c.maxMfn)})`);
  }
  let maxPfn = maxPfnIn;
  // p2m_frames is an unsigned int in libxc; the end address wraps at 64 bits.
  const endOf = (frames: bigint): bigint => (p2mVaddr + frames * BigInt(PAGE_SIZE) - 1n) & U64;
  let p2mEnd = endOf((maxPfn / fpp + 1n) & U32);
  const wide = c.width === 8;
  const mask = wide ? VA_MASK_X86_64 : VA_MASK_X86_32;
  const xenVa = wide ? XEN_VA_X86_64 : XEN_VA_X86_32;
  const shapeOk = wide ? isCanonical(p2mVaddr) && isCanonical(p2mEnd) : p2mVaddr <= mask && p2mEnd <= mask;
  if (!shapeOk || p2mEnd < p2mVaddr || (p2mVaddr <= xenVa.end && p2mEnd > xenVa.start)) {
    throw new P2mMapError(ERANGE, 'bad-vaddr-range', { maxMfn: c.maxMfn, p2mCr3, vaddr: p2mVaddr, vaddrEnd: p2mEnd }, `bad virtual p2m address range ${hex(p2mVaddr)}-${hex(p2mEnd)}`);
  }

  // Frame numbers of one level; every one passed `≤ max_mfn`, so they are exact numbers.
  let mfns: number[] = [Number(rootMfn)];
  let off = 0n;
  let savedMfn = 0;
  let idxStart = 0;
  let idxEnd = 0;
  let savedIdx = 0;
  const levels = wide ? 4 : 3;
  const maxMfn = c.maxMfnNumber;
  const structureMfns: bigint[] = [];
  for (let level = levels; level > 0; level--) {
    const nPages = idxEnd - idxStart + 1;
    const tables = mfns.slice(0, nPages);
    for (const mfn of tables) structureMfns.push(BigInt(mfn));
    const ptes = mapFrames(c, tables, `${nPages} page-table pages of the p2m list`).map(wordsOf);
    const shift = BigInt(level * 9 + 3);
    idxStart = Number(((p2mVaddr - off) & mask) >> shift);
    idxEnd = Number(((p2mEnd - off) & mask) >> shift);
    const next: number[] = [];
    for (let idx = idxStart; idx <= idxEnd; idx++) {
      const pageIndex = Math.floor(idx / PTES_PER_PAGE);
      const page = ptes[pageIndex];
      // libxc indexes past its mapping here only if the walk's arithmetic is inconsistent; say so.
      if (!page) throw new RangeError(`page-table index ${idx} beyond the ${ptes.length} mapped pages`);
      const k = idx - pageIndex * PTES_PER_PAGE;
      // (pte & PTE_FRAME_MASK) >> 12, under 2^40: exact as a number.
      const mfn = (page[2 * k + 1]! & FRAME_MASK_HI) * 2 ** 20 + ((page[2 * k]! & FRAME_MASK_LO) >>> 12);
      if (mfn === 0 || mfn > maxMfn) {
        const vaddr = (off + (BigInt(idx) << shift)) & U64;
        const bad = BigInt(mfn);
        throw new P2mMapError(ERANGE, 'bad-pte-frame', { maxMfn: c.maxMfn, p2mCr3, mfn: bad, index: idx, level, vaddr }, `bad mfn ${hex(bad)} during page table walk for vaddr ${hex(vaddr)} at level ${level} of p2m list`);
      }
      next.push(mfn);
      if (level === 2 && mfn !== savedMfn) {
        savedMfn = mfn;
        // Relative to idxStart, yet compared below with the absolute idxEnd: libxc's quirk.
        savedIdx = idx - idxStart;
      }
    }
    if (level === 2) {
      if (savedIdx === idxEnd) savedIdx++;
      // xen_pfn_t arithmetic: savedIdx 0 wraps to ~0 and trims nothing.
      const trimmed = ((BigInt(savedIdx) << 9n) * fpp - 1n) & U64;
      if (trimmed < maxPfn) {
        maxPfn = trimmed;
        p2mEnd = endOf(((maxPfn + fpp) / fpp) & U32);
        idxEnd = idxStart + savedIdx;
      }
    }
    mfns = next;
    off = p2mVaddr & ((mask >> shift) << shift);
  }
  return { maxPfn, leafMfns: mfns.slice(0, idxEnd - idxStart + 1), structureMfns };
}

/**
 * libxc's `map_p2m` for domain `domid`: reads shared_info, walks the list (p2m_cr3 ≠ 0) or the
 * tree, maps the leaves and checks each against the m2p. Throws `P2mMapError` on every failure
 * libxc reports (and `PrivilegedError` from the interface itself, e.g. no such domain).
 */
export function mapGuestP2m(tools: PrivilegedInterface, domid: number): MappedP2m {
  const info = tools.domainInfo(domid);
  const abi = info.abi;
  const width = abi.wordSize as 4 | 8;
  const maxMfnNumber = tools.maximumRamPage();
  const c: Ctx = {
    tools,
    domid,
    abi,
    width,
    fpp: PAGE_SIZE / width,
    maxMfn: BigInt(maxMfnNumber),
    maxMfnNumber,
    maxMfnHi: Math.floor(maxMfnNumber / TWO_32),
    maxMfnLo: maxMfnNumber >>> 0,
  };
  const shared = readShared(c);
  // max_pfn - 1 in a 64-bit xen_pfn_t: a zero field wraps.
  const maxPfn0 = (shared.maxPfnField - 1n) & U64;
  const useList = shared.p2mCr3 !== 0n;
  const walked = useList ? walkList(c, shared.p2mCr3, shared.p2mVaddr, maxPfn0) : walkTree(c, shared.fll, maxPfn0);
  const leafCount = walked.leafMfns.length;
  if (walked.maxPfn >= BigInt(leafCount * c.fpp)) {
    // libxc would index past its mapping here; refuse instead of reading what is not mapped.
    throw new P2mMapError(EINVAL, 'frames-truncated', { maxMfn: c.maxMfn, maxPfn: walked.maxPfn }, `max_pfn ${hex(walked.maxPfn)} needs more than the ${leafCount} leaves walked`);
  }
  const pages = mapFrames(c, walked.leafMfns, 'p2m frames');
  const mapping = new GuestP2mMapping(c, shared, useList, walked, pages);
  mapping.checkLeaves();
  return mapping;
}

/** The result of `mapGuestP2m`: typed arrays and one view per leaf; the older per-leaf objects on demand. */
class GuestP2mMapping implements MappedP2m {
  readonly domid: number;
  readonly abi: GuestAbi;
  readonly width: 4 | 8;
  readonly levels: 3 | 4;
  readonly source: 'tree' | 'list';
  readonly fll: bigint | undefined;
  readonly p2mCr3: bigint;
  readonly p2mVaddr: bigint | undefined;
  readonly maxMfn: bigint;
  readonly maxPfn: number;
  readonly p2mSize: number;
  readonly structureMfns: readonly bigint[];
  readonly leafMfnArray: Float64Array;
  readonly leafPfnArray: Uint32Array;
  readonly leafWords: readonly Uint32Array[];
  readonly p2mGeneration: bigint;
  private readonly fpp: number;
  private readonly pages: readonly Uint8Array[];
  private leafMfnList: bigint[] | undefined;
  private leafPfnList: number[] | undefined;
  private leafArrays: P2mArray[] | undefined;

  constructor(c: Ctx, shared: Shared, useList: boolean, walked: Walked, pages: readonly Uint8Array[]) {
    this.domid = c.domid;
    this.abi = c.abi;
    this.width = c.width;
    this.levels = c.width === 8 ? 4 : 3;
    this.source = useList ? 'list' : 'tree';
    this.fll = useList ? undefined : shared.fll;
    this.p2mCr3 = shared.p2mCr3;
    this.p2mVaddr = useList ? shared.p2mVaddr : undefined;
    this.maxMfn = c.maxMfn;
    // Below leaves · fpp (checked by the caller), so exact.
    this.maxPfn = Number(walked.maxPfn);
    this.p2mSize = this.maxPfn + 1;
    this.structureMfns = walked.structureMfns;
    this.leafMfnArray = Float64Array.from(walked.leafMfns);
    this.leafPfnArray = new Uint32Array(walked.leafMfns.length);
    this.pages = pages;
    this.leafWords = pages.map(wordsOf);
    this.p2mGeneration = useList ? shared.generation : U64;
    this.fpp = c.fpp;
    c.tools.m2pInto(this.leafMfnArray, this.leafMfnArray.length, this.leafPfnArray);
  }

  /** mfn_in_pseudophysmap for every leaf: its m2p names a pfn whose entry is that very mfn. */
  checkLeaves(): void {
    const { leafMfnArray, leafPfnArray, leafWords, fpp, maxPfn } = this;
    const maxMfn = Number(this.maxMfn);
    const wide = this.width === 8;
    for (let x = 0; x < leafMfnArray.length; x++) {
      const mfn = leafMfnArray[x]!;
      const pfn = leafPfnArray[x]!;
      // INVALID_M2P (the emulator's 32-bit "no entry"; ~0UL to a 64-bit toolstack) is above any max_pfn.
      let ok = mfn <= maxMfn && pfn !== INVALID_M2P && pfn <= maxPfn;
      if (ok) {
        const leaf = Math.floor(pfn / fpp);
        const k = pfn - leaf * fpp;
        const words = leafWords[leaf]!;
        ok = wide ? words[2 * k] === mfn >>> 0 && words[2 * k + 1] === Math.floor(mfn / TWO_32) : words[k] === mfn && mfn !== 0xffffffff;
      }
      if (!ok) {
        const m2p = pfn === INVALID_M2P ? TOOLS_INVALID_MFN : BigInt(pfn);
        const maxPfnBig = BigInt(maxPfn);
        throw new P2mMapError(ERANGE, 'bad-leaf', { maxMfn: this.maxMfn, mfn: BigInt(mfn), index: x, maxPfn: maxPfnBig }, `bad mfn ${hex(mfn)} in p2m_frame_list[${x}] (m2p ${hex(m2p)}, max_pfn ${hex(maxPfnBig)})`);
      }
    }
  }

  get leafMfns(): readonly bigint[] {
    return (this.leafMfnList ??= Array.from(this.leafMfnArray, (mfn) => BigInt(mfn)));
  }

  get leafPfns(): readonly number[] {
    return (this.leafPfnList ??= Array.from(this.leafPfnArray));
  }

  get leaves(): readonly P2mArray[] {
    return (this.leafArrays ??= this.pages.map((p) => P2mArray.page(this.abi, p)));
  }

  rawEntry(pfn: number): bigint {
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= this.p2mSize) throw new RangeError(`pfn ${pfn} outside the mapped p2m [0, ${this.p2mSize})`);
    const leaf = Math.floor(pfn / this.fpp);
    const k = pfn - leaf * this.fpp;
    const words = this.leafWords[leaf]!;
    if (this.width === 4) return BigInt(words[k]!);
    const hi = words[2 * k + 1]!;
    return hi === 0 ? BigInt(words[2 * k]!) : (BigInt(hi) << 32n) | BigInt(words[2 * k]!);
  }

  entry(pfn: number): bigint {
    return toolsP2mEntry(this.abi, this.rawEntry(pfn));
  }

  snapshot(): P2mArray {
    // The leaves cover [0, p2mSize) (mapGuestP2m checked), so every byte is copied over the zeros.
    const out = P2mArray.alloc(this.abi, this.p2mSize, 0n);
    const bytes = new Uint8Array(out.elements.buffer, out.elements.byteOffset, out.elements.byteLength);
    const width = this.width;
    for (let x = 0; x < this.pages.length; x++) {
      const start = x * this.fpp;
      const n = Math.min(this.fpp, this.p2mSize - start);
      if (n <= 0) break;
      bytes.set(this.pages[x]!.subarray(0, n * width), start * width);
    }
    return out;
  }
}
