/**
 * Was a migration faithful? Compares a source domain (as of the save's final pass: the guest is
 * suspended there and nothing has changed it since) with the domain a `Restorer` built, pfn by
 * pfn, through the two privileged interfaces only:
 *
 * - which pfns are populated on each side (a pfn populated only on the destination is a leaked
 *   page the guest thinks it gave back; one missing there is memory the guest will fault on);
 * - each page's contents: data byte for byte (or stamp for stamp), page tables after turning each
 *   side's mfns into pfns through its own m2p, p2m frames entry by entry the same way, start_info
 *   except the fields restore is defined to rewrite;
 * - the destination's m2p for every frame it populated;
 * - after the guest resumed and republished: the guest's own p2m walk against the restored p2m.
 */

import {
  PAGE_SIZE,
  XEN_DOMCTL_PFINFO_LTAB_SHIFT,
  XEN_DOMCTL_PFINFO_LTABTYPE_MASK,
  XEN_DOMCTL_PFINFO_XTAB,
  _PAGE_PRESENT,
  PTE_FRAME_MASK,
  TOOLS_INVALID_MFN,
  start_info,
  type GuestAbi,
} from '../abi/index.js';
import { INVALID_M2P } from '../xen-emu/machine.js';
import type { Domain } from '../xen-emu/domain.js';
import { adjustGuestL1e, adjustGuestL2e, adjustGuestL3e, adjustGuestL4e } from '../xen-emu/pagetable.js';
import { PrivilegedError, type PrivilegedInterface } from '../xen-emu/privileged.js';
import { mapGuestP2m, P2mMapError, type MappedP2m } from './p2m-map.js';
import type { Restorer } from './restore.js';
import { sameContent } from './stream/page-content.js';

export type DifferenceKind = 'missing' | 'extra' | 'content' | 'm2p' | 'p2m';

export interface PfnDifference {
  readonly pfn: number;
  readonly kind: DifferenceKind;
  readonly detail: string;
}

export interface Comparison {
  /** pfns that differ in any way. */
  readonly differing: number;
  /** The first differences, in pfn order (at most `limit`). */
  readonly first: readonly PfnDifference[];
  /** A problem that stopped the comparison itself (e.g. the destination's p2m cannot be walked). */
  readonly problem?: string;
}

export interface Side {
  readonly tools: PrivilegedInterface;
  readonly domid: number;
}

function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

class Differences {
  readonly first: PfnDifference[] = [];
  private readonly pfns = new Set<number>();

  constructor(private readonly limit: number) {}

  add(pfn: number, kind: DifferenceKind, detail: string): void {
    if (this.pfns.has(pfn)) return;
    this.pfns.add(pfn);
    if (this.first.length < this.limit) this.first.push({ pfn, kind, detail });
  }

  result(problem?: string): Comparison {
    const first = [...this.first].sort((a, b) => a.pfn - b.pfn);
    return { differing: this.pfns.size, first, ...(problem ? { problem } : {}) };
  }
}

const ADJUST = [adjustGuestL1e, adjustGuestL2e, adjustGuestL3e, adjustGuestL4e] as const;

/** PTE_FRAME_MASK as the two 32-bit halves of an entry, for loops that must not make bigints. */
const FRAME_MASK_LO = Number(PTE_FRAME_MASK & 0xffffffffn);
const FRAME_MASK_HI = Number(PTE_FRAME_MASK >> 32n);
const PTES_PER_PAGE = PAGE_SIZE / 8;

/** Xen's own slots of a top-level table are not the guest's (zeroed in the stream): left out. */
function isXenSlot(width: 4 | 8, level: number, i: number): boolean {
  return (width === 8 && level === 4 && i >= 256 && i <= 271) || (width === 4 && level === 3 && i >= 4);
}

/**
 * One page-table entry as the comparison sees it: a present entry's frame turned into a pfn
 * through `side`'s m2p, with Xen's own adjustments applied (a PV64 kernel's entries get _PAGE_USER
 * and Xen's kernel bit when Xen validates them: a table pinned by restore has them, the builder's
 * originals may not; the adjustment is idempotent, so applying it to both sides compares what the
 * guest means). A non-present entry is compared as it is.
 */
function tableEntryAsPfn(side: Side, pte: bigint, width: 4 | 8, level: number): bigint {
  if ((pte & _PAGE_PRESENT) === 0n) return pte;
  const pfn = side.tools.m2p(Number((pte & PTE_FRAME_MASK) >> 12n));
  return (ADJUST[level - 1]!(pte, { isCompat: width === 4 } as Domain) & ~PTE_FRAME_MASK) | (BigInt(pfn) << 12n);
}

/** A whole page table through `tableEntryAsPfn` (Xen's slots zeroed): the general form. */
function tableAsPfns(side: Side, mfn: number, width: 4 | 8, level: number): Uint8Array {
  const page = side.tools.mapForeign(side.domid, [mfn]).pages[0]!.slice();
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  for (let i = 0; i < PTES_PER_PAGE; i++) {
    const pte = isXenSlot(width, level, i) ? 0n : tableEntryAsPfn(side, view.getBigUint64(i * 8, true), width, level);
    view.setBigUint64(i * 8, pte, true);
  }
  return page;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** start_info with the fields restore rewrites (rings, shared_info, nr_pages, flags) zeroed. */
function startInfoComparable(side: Side, mfn: number, abi: GuestAbi): Uint8Array {
  const page = side.tools.mapForeign(side.domid, [mfn]).pages[0]!.slice();
  for (const f of ['store_mfn', 'console.domU.mfn', 'shared_info', 'nr_pages'] as const) {
    page.fill(0, start_info.offsetOf(abi, f), start_info.offsetOf(abi, f) + abi.wordSize);
  }
  page.fill(0, start_info.offsetOf(abi, 'flags'), start_info.offsetOf(abi, 'flags') + 4);
  return page;
}

/** Pfns per bulk step of the comparison: a whole number of p2m leaves on both ABIs. */
const CHUNK = 4096;

/** Reused arrays of one comparison (nothing per pfn is allocated). */
class Scratch {
  /**
   * The source's mfn of each pfn of the chunk (-1: none or beyond max_mfn). Passed as they are to
   * the bulk calls: -1 is outside the machine (XTAB, INVALID_M2P), and only read where it is not.
   */
  readonly srcMfns = new Float64Array(CHUNK);
  readonly srcTypes = new Uint32Array(CHUNK);
  /** The m2p of the chunk's frames on each side (`mapChunk`). */
  readonly srcM2p = new Uint32Array(CHUNK);
  /** The destination's mfn of each pfn (-1 when unpopulated). */
  readonly dstMfns = new Float64Array(CHUNK);
  readonly dstM2p = new Uint32Array(CHUNK);
  /**
   * Plain data pages of the chunk (a data page on both sides, m2p right): their index in the
   * chunk, both sides' frames, stamps, and whether each holds real bytes.
   */
  readonly dataIndex = new Uint32Array(CHUNK);
  readonly dataSrcMfns = new Float64Array(CHUNK);
  readonly dataDstMfns = new Float64Array(CHUNK);
  readonly srcStamps = new Uint32Array(CHUNK);
  readonly dstStamps = new Uint32Array(CHUNK);
  readonly srcMaterialised = new Uint8Array(CHUNK);
  readonly dstMaterialised = new Uint8Array(CHUNK);
  /** Every other pfn with a frame on either side (index in the chunk), for `comparePfn`. */
  readonly generalIndex = new Uint32Array(CHUNK + 1);
  /** One p2m frame's entries as frames, and those frames' m2p, per side (`compareP2mFrame`). */
  readonly frameMfns = new Float64Array(PAGE_SIZE / 4);
  readonly frameSrcPfns = new Uint32Array(PAGE_SIZE / 4);
  readonly frameDstPfns = new Uint32Array(PAGE_SIZE / 4);
  readonly frameSrcInvalid = new Uint8Array(PAGE_SIZE / 4);
  readonly frameDstInvalid = new Uint8Array(PAGE_SIZE / 4);
}

/** What one `compareDomains` call holds fixed. */
interface Comparing {
  readonly src: Side;
  readonly dst: Side & { readonly restorer: Restorer };
  readonly abi: GuestAbi;
  readonly width: 4 | 8;
  readonly srcP2m: MappedP2m;
  readonly leafPfns: ReadonlySet<number>;
  readonly startInfoPfn: number;
  readonly stage: CompareOptions['stage'];
  readonly diffs: Differences;
  readonly scratch: Scratch;
  /** p2m frames and start_info, sorted: the general comparison sees them even when they look like data. */
  readonly special: Float64Array;
  /** leafPfns → its first index (as `indexOf` finds it). */
  readonly leafIndex: ReadonlyMap<number, number>;
  /** Each leaf's words as 32-bit halves, made when first needed. */
  readonly leafWords: (Uint32Array | undefined)[];
  /** Bit per pfn: the source's p2m names a frame (≤ max_mfn) whose m2p is that pfn. */
  readonly srcMapped: Uint32Array;
  /** Bit per pfn: the restorer populated it, with a frame whose destination m2p is that pfn. */
  readonly dstMapped: Uint32Array;
}

function testBit(bits: Uint32Array, n: number): boolean {
  return (bits[n >>> 5]! & (1 << (n & 31))) !== 0;
}

/** Source leaf x's words as 32-bit halves. */
function leafWordsOf(c: Comparing, x: number): Uint32Array {
  let words = c.leafWords[x];
  if (words === undefined) {
    const leaf = c.srcP2m.leaves[x]!.elements;
    words = c.leafWords[x] = new Uint32Array(leaf.buffer, leaf.byteOffset, PAGE_SIZE / 4);
  }
  return words;
}

/**
 * The source's p2m entry of `pfn` as a number, from the mapped leaf: exact below 2^53, which is
 * all this is compared with (frames; INVALID is tested on the words themselves).
 */
function sourceEntry(c: Comparing, pfn: number): number {
  const fpp = PAGE_SIZE / c.width;
  const x = Math.floor(pfn / fpp);
  const words = leafWordsOf(c, x);
  const k = pfn - x * fpp;
  return c.width === 8 ? words[2 * k + 1]! * 2 ** 32 + words[2 * k]! : words[k]!;
}

function isInvalidEntry(words: Uint32Array, k: number, wide: boolean): boolean {
  return wide ? words[2 * k] === 0xffffffff && words[2 * k + 1] === 0xffffffff : words[k] === 0xffffffff;
}

/**
 * Whether `pfn` is, on both sides, the pfn the m2p gives for these frames: `srcMfn` is the
 * source's p2m entry of `pfn` and that frame's source m2p is `pfn`, and likewise `dstMfn` with the
 * restorer and the destination m2p. Proves m2p(srcMfn) = m2p(dstMfn) = pfn without asking the m2p.
 */
function bothMapTo(c: Comparing, pfn: number, srcMfn: number, dstMfn: number): boolean {
  return (
    pfn >= 0 &&
    pfn < c.srcP2m.p2mSize &&
    testBit(c.srcMapped, pfn) &&
    testBit(c.dstMapped, pfn) &&
    c.dst.restorer.mfnOf(pfn) === dstMfn &&
    sourceEntry(c, pfn) === srcMfn
  );
}

/**
 * Whether the p2m frame at `pfn` (source `ms`, destination `md`) translates to the same pfns on
 * both sides, shown without the m2p: entry k of leaf x is the p2m entry of pfn x * fpp + k, so
 * where the source frame is that mapped leaf and each destination entry is the restorer's frame
 * for the same pfn (both mapped to it), or INVALID on both sides, they agree. False means "not
 * shown", and `compareP2mFrame` decides.
 */
function p2mFrameShownSame(c: Comparing, pfn: number, ms: number, md: number): boolean {
  const x = c.leafIndex.get(pfn)!;
  if (ms !== Number(c.srcP2m.leafMfns[x]!)) return false;
  const dstPage = c.dst.tools.mapForeign(c.dst.domid, [md]).pages[0];
  if (dstPage === undefined) return false;
  const dstWords = new Uint32Array(dstPage.buffer, dstPage.byteOffset, PAGE_SIZE / 4);
  const srcWords = leafWordsOf(c, x);
  const { srcMapped, dstMapped } = c;
  const restorer = c.dst.restorer;
  const fpp = PAGE_SIZE / c.width;
  const wide = c.width === 8;
  const p2mSize = c.srcP2m.p2mSize;
  for (let k = 0, q = x * fpp; k < fpp; k++, q++) {
    if (isInvalidEntry(srcWords, k, wide) || isInvalidEntry(dstWords, k, wide)) {
      if (isInvalidEntry(srcWords, k, wide) && isInvalidEntry(dstWords, k, wide)) continue;
      return false;
    }
    // The source entry is the p2m's own entry of q (the same leaf): `bothMapTo` without re-reading it.
    const dstEntry = wide ? dstWords[2 * k + 1]! * 2 ** 32 + dstWords[2 * k]! : dstWords[k]!;
    const bit = 1 << (q & 31);
    if (q >= p2mSize || (srcMapped[q >>> 5]! & bit) === 0 || (dstMapped[q >>> 5]! & bit) === 0 || restorer.mfnOf(q) !== dstEntry) return false;
  }
  return true;
}

/**
 * A p2m frame's entries turned into the pfns their frames have on `side`, into `out` (-1 for
 * INVALID; the m2p's INVALID_M2P for a frame that is not in the machine). Returns the entry count.
 */
function p2mFrameAsPfns(side: Side, mfn: number, abi: GuestAbi, scratch: Scratch, out: Uint32Array, invalid: Uint8Array): number {
  const page = side.tools.mapForeign(side.domid, [mfn]).pages[0]!;
  const words = new Uint32Array(page.buffer, page.byteOffset, PAGE_SIZE / 4);
  const mfns = scratch.frameMfns;
  const wide = abi.wordSize === 8;
  const count = PAGE_SIZE / abi.wordSize;
  for (let k = 0; k < count; k++) {
    let isInvalid: boolean;
    if (wide) {
      const lo = words[2 * k]!;
      const hi = words[2 * k + 1]!;
      isInvalid = lo === 0xffffffff && hi === 0xffffffff;
      // The entry's low 48 bits, as the m2p is indexed.
      mfns[k] = isInvalid ? 0 : (hi & 0xffff) * 2 ** 32 + lo;
    } else {
      const e = words[k]!;
      isInvalid = e === 0xffffffff;
      mfns[k] = isInvalid ? 0 : e;
    }
    invalid[k] = isInvalid ? 1 : 0;
  }
  side.tools.m2pInto(mfns, count, out);
  return count;
}

/** Compares a p2m frame entry by entry (each side's entries as pfns through its own m2p). */
function compareP2mFrame(c: Comparing, pfn: number, ms: number, md: number): void {
  const s = c.scratch;
  const count = p2mFrameAsPfns(c.src, ms, c.abi, s, s.frameSrcPfns, s.frameSrcInvalid);
  p2mFrameAsPfns(c.dst, md, c.abi, s, s.frameDstPfns, s.frameDstInvalid);
  for (let k = 0; k < count; k++) {
    const a = s.frameSrcInvalid[k] ? -1 : s.frameSrcPfns[k]!;
    const b = s.frameDstInvalid[k] ? -1 : s.frameDstPfns[k]!;
    if (a === b) continue;
    const first = c.srcP2m.leafPfns.indexOf(pfn) * (PAGE_SIZE / c.width) + k;
    c.diffs.add(pfn, 'content', `p2m frame pfn ${hex(pfn)}: the entry of pfn ${hex(first)} names pfn ${hex(a)} on the source, ${hex(b)} on the destination`);
    return;
  }
}

/**
 * Compares a page table entry by entry, as `tableAsPfns` on both sides would. An entry whose bits
 * outside the frame field are equal on both sides gets the same adjustment on both (Xen's adjust
 * functions read and set only those bits: verify-bulk.test.ts checks it), so it compares equal
 * exactly when both frames have the same pfn: shown by `bothMapTo` (guessing the pfn after the
 * last one, as a direct map has it, then the source m2p's), else asked of both m2ps. Any other
 * entry goes through `tableEntryAsPfn`.
 */
function compareTable(c: Comparing, pfn: number, ms: number, md: number, level: number): void {
  const { src, dst, width } = c;
  const srcPage = src.tools.mapForeign(src.domid, [ms]).pages[0];
  const dstPage = dst.tools.mapForeign(dst.domid, [md]).pages[0];
  let at: number;
  if (srcPage === undefined || dstPage === undefined) {
    // A frame that cannot be mapped: the general form fails as it always did.
    at = bytesEqual(tableAsPfns(src, ms, width, level), tableAsPfns(dst, md, width, level));
    if (at >= 0) at = Math.floor(at / 8);
  } else {
    at = firstDifferingEntry(c, srcPage, dstPage, level);
  }
  if (at >= 0) c.diffs.add(pfn, 'content', `L${level} page table pfn ${hex(pfn)} differs at entry ${at}`);
}

function firstDifferingEntry(c: Comparing, srcPage: Uint8Array, dstPage: Uint8Array, level: number): number {
  const { src, dst, width } = c;
  const a = new Uint32Array(srcPage.buffer, srcPage.byteOffset, PAGE_SIZE / 4);
  const b = new Uint32Array(dstPage.buffer, dstPage.byteOffset, PAGE_SIZE / 4);
  // The pfn the last present entry was shown to map: a direct-map table's next maps the next pfn.
  let shown = -2;
  for (let i = 0; i < PTES_PER_PAGE; i++) {
    if (isXenSlot(width, level, i)) continue;
    const loA = a[2 * i]!;
    const hiA = a[2 * i + 1]!;
    const loB = b[2 * i]!;
    const hiB = b[2 * i + 1]!;
    if ((loA & ~FRAME_MASK_LO) === (loB & ~FRAME_MASK_LO) && (hiA & ~FRAME_MASK_HI) === (hiB & ~FRAME_MASK_HI)) {
      if ((loA & 1) === 0) {
        if (loA === loB && hiA === hiB) continue;
        return i;
      }
      const srcFrame = (hiA & FRAME_MASK_HI) * 2 ** 20 + ((loA & FRAME_MASK_LO) >>> 12);
      const dstFrame = (hiB & FRAME_MASK_HI) * 2 ** 20 + ((loB & FRAME_MASK_LO) >>> 12);
      if (bothMapTo(c, shown + 1, srcFrame, dstFrame)) {
        shown++;
        continue;
      }
      const srcPfn = src.tools.m2p(srcFrame);
      if (bothMapTo(c, srcPfn, srcFrame, dstFrame)) {
        shown = srcPfn;
        continue;
      }
      if (srcPfn === dst.tools.m2p(dstFrame)) continue;
      return i;
    }
    const pteA = (BigInt(hiA) << 32n) | BigInt(loA);
    const pteB = (BigInt(hiB) << 32n) | BigInt(loB);
    if (tableEntryAsPfn(src, pteA, width, level) !== tableEntryAsPfn(dst, pteB, width, level)) return i;
  }
  return -1;
}

/**
 * The comparison of one pfn, given the source's mfn for it (-1 when none) and that frame's page
 * type: every case but a plain data page on both sides comes here.
 */
function comparePfn(c: Comparing, pfn: number, ms: number, srcType: number): void {
  const { src, dst, diffs } = c;
  const srcHas = ms >= 0 && srcType !== XEN_DOMCTL_PFINFO_XTAB && src.tools.m2p(ms) === pfn;
  const md = dst.restorer.mfnOf(pfn);
  if (srcHas && md === undefined) {
    diffs.add(pfn, 'missing', `pfn ${hex(pfn)} is populated on the source (mfn ${hex(ms)}) but not on the destination`);
    return;
  }
  if (!srcHas) {
    if (md !== undefined) diffs.add(pfn, 'extra', `pfn ${hex(pfn)} is populated on the destination (mfn ${hex(md)}) but has no frame on the source`);
    return;
  }
  if (md === undefined) return;
  if (dst.tools.m2p(md) !== pfn) {
    diffs.add(pfn, 'm2p', `destination m2p of mfn ${hex(md)} is ${hex(dst.tools.m2p(md))}, not pfn ${hex(pfn)}`);
    return;
  }
  const level = (srcType & XEN_DOMCTL_PFINFO_LTABTYPE_MASK) >>> XEN_DOMCTL_PFINFO_LTAB_SHIFT;
  if (c.leafPfns.has(pfn)) {
    if (c.stage === 'checkpoint') return;
    if (p2mFrameShownSame(c, pfn, ms, md)) return;
    compareP2mFrame(c, pfn, ms, md);
  } else if (level !== 0) {
    compareTable(c, pfn, ms, md, level);
  } else if (pfn === c.startInfoPfn) {
    if (c.stage === 'checkpoint') return;
    const at = bytesEqual(startInfoComparable(src, ms, c.abi), startInfoComparable(dst, md, c.abi));
    if (at >= 0) diffs.add(pfn, 'content', `start_info pfn ${hex(pfn)} differs at byte ${at}`);
  } else if (!sameContent(src.tools.frameContent(src.domid, ms), dst.tools.frameContent(dst.domid, md))) {
    diffs.add(pfn, 'content', `pfn ${hex(pfn)}: the destination's page differs from the source's`);
  }
}

/**
 * The source's mfn of each pfn in [base, base + count) into `out`: -1 for INVALID, beyond the
 * mapped p2m, or above max_mfn. Read as 32-bit halves straight from the leaves.
 */
function sourceMfnsInto(p2m: MappedP2m, base: number, count: number, out: Float64Array): void {
  const fpp = PAGE_SIZE / p2m.width;
  const maxMfn = Number(p2m.maxMfn);
  const wide = p2m.width === 8;
  let i = 0;
  while (i < count) {
    const pfn = base + i;
    if (pfn >= p2m.p2mSize) {
      out[i++] = -1;
      continue;
    }
    const leaf = p2m.leaves[Math.floor(pfn / fpp)]!.elements;
    const words = new Uint32Array(leaf.buffer, leaf.byteOffset, leaf.byteLength >>> 2);
    const stop = Math.min(count, i + fpp - (pfn % fpp), p2m.p2mSize - base);
    for (let k = pfn % fpp; i < stop; i++, k++) {
      let mfn: number;
      if (wide) {
        const lo = words[2 * k]!;
        const hi = words[2 * k + 1]!;
        // Exact below 2^53; anything at or above is beyond max_mfn either way.
        mfn = lo === 0xffffffff && hi === 0xffffffff ? -1 : hi * 2 ** 32 + lo;
      } else {
        const e = words[k]!;
        mfn = e === 0xffffffff ? -1 : e;
      }
      out[i] = mfn > maxMfn ? -1 : mfn;
    }
  }
}

export interface CompareOptions {
  /**
   * `checkpoint`: a Remus checkpoint before the restore completed (p2m frames and start_info are
   * still the sender's and are left out); `final`: after the restore completed.
   */
  readonly stage: 'checkpoint' | 'final';
  /** Most differences listed (all are counted); default 20. */
  readonly limit?: number;
}

/** The source's p2m as the guest holds it now, mapped afresh (not the save's possibly stale mapping). */
function freshP2m(side: Side): MappedP2m | string {
  try {
    return mapGuestP2m(side.tools, side.domid);
  } catch (err) {
    if (err instanceof P2mMapError) return err.message;
    throw err;
  }
}

/**
 * Compares the source domain with the restored one, pfn by pfn. Chunk by chunk, the bulk calls
 * fetch both sides' frames, m2p (a first pass, kept as a bit per pfn), types and stamps; a data
 * page whose stamps both sides hold is compared right there, every other pfn by `comparePfn`. The
 * verdict is the per-pfn comparison's, to the detail (verify-bulk.test.ts holds that one).
 */
export function compareDomains(src: Side, dst: Side & { readonly restorer: Restorer }, options: CompareOptions): Comparison {
  const diffs = new Differences(options.limit ?? 20);
  const abi = src.tools.domainInfo(src.domid).abi;
  const width = abi.wordSize as 4 | 8;
  const srcP2m = freshP2m(src);
  if (typeof srcP2m === 'string') return diffs.result(`the source's p2m cannot be mapped: ${srcP2m}`);
  const startInfoMfn = src.tools.vcpuContext(src.domid).startInfoMfn;
  const startInfoPfn = startInfoMfn >= 0 ? src.tools.m2p(startInfoMfn) : INVALID_M2P;
  const leafPfns = new Set(srcP2m.leafPfns);
  const leafIndex = new Map<number, number>();
  srcP2m.leafPfns.forEach((pfn, x) => {
    if (!leafIndex.has(pfn)) leafIndex.set(pfn, x);
  });
  // Infinity ends the list, so the scan needs no bounds check.
  const special = Float64Array.from([...leafPfns, startInfoPfn, Infinity]).sort();
  const end = Math.max(srcP2m.p2mSize, dst.restorer.highestPfn + 1);
  const c: Comparing = {
    src,
    dst,
    abi,
    width,
    srcP2m,
    leafPfns,
    startInfoPfn,
    stage: options.stage,
    diffs,
    scratch: new Scratch(),
    special,
    leafIndex,
    leafWords: [],
    srcMapped: new Uint32Array(Math.ceil(end / 32)),
    dstMapped: new Uint32Array(Math.ceil(end / 32)),
  };
  // First the m2p of every pfn's frame on both sides, so that p2m frames and page tables, met in
  // pfn order before the pfns they name, can be checked against it; then pfn by pfn.
  for (let base = 0; base < end; base += CHUNK) mapChunk(c, base, Math.min(CHUNK, end - base));
  let nextSpecial = 0;
  for (let base = 0; base < end; base += CHUNK) nextSpecial = compareChunk(c, base, Math.min(CHUNK, end - base), nextSpecial);
  return diffs.result();
}

/** Both sides' frames of pfns [base, base + count) into the scratch arrays (-1: none). */
function gatherChunk(c: Comparing, base: number, count: number): void {
  const { srcMfns, dstMfns } = c.scratch;
  const restorer = c.dst.restorer;
  sourceMfnsInto(c.srcP2m, base, count, srcMfns);
  for (let i = 0; i < count; i++) {
    const md = restorer.mfnOf(base + i);
    dstMfns[i] = md === undefined ? -1 : md;
  }
}

/** Sets `srcMapped` and `dstMapped` for pfns [base, base + count). */
function mapChunk(c: Comparing, base: number, count: number): void {
  const { src, dst, srcMapped, dstMapped, scratch: s } = c;
  const { srcMfns, srcM2p, dstMfns, dstM2p } = s;
  gatherChunk(c, base, count);
  src.tools.m2pInto(srcMfns, count, srcM2p);
  dst.tools.m2pInto(dstMfns, count, dstM2p);
  for (let i = 0; i < count; i++) {
    const pfn = base + i;
    const bit = 1 << (pfn & 31);
    if (srcMfns[i]! >= 0 && srcM2p[i] === pfn) srcMapped[pfn >>> 5] |= bit;
    if (dstMfns[i]! >= 0 && dstM2p[i] === pfn) dstMapped[pfn >>> 5] |= bit;
  }
}

/**
 * Compares pfns [base, base + count). `nextSpecial` indexes the first entry of `c.special` not
 * below `base`; returns the same for the next chunk.
 */
function compareChunk(c: Comparing, base: number, count: number, nextSpecial: number): number {
  const { src, dst, diffs, special, srcMapped, dstMapped, scratch: s } = c;
  const { srcMfns, srcTypes, dstMfns } = s;
  gatherChunk(c, base, count);
  src.tools.pageTypesInto(src.domid, srcMfns, count, srcTypes);

  const { dataIndex, dataSrcMfns, dataDstMfns, generalIndex } = s;
  let nData = 0;
  let nGeneral = 0;
  for (let i = 0; i < count; i++) {
    const pfn = base + i;
    const ms = srcMfns[i]!;
    const md = dstMfns[i]!;
    const type = srcTypes[i]!;
    const srcHas = ms >= 0 && type !== XEN_DOMCTL_PFINFO_XTAB && (srcMapped[pfn >>> 5]! & (1 << (pfn & 31))) !== 0;
    let isSpecial = false;
    while (special[nextSpecial]! <= pfn) isSpecial ||= special[nextSpecial++] === pfn;
    if (srcHas && md >= 0 && (dstMapped[pfn >>> 5]! & (1 << (pfn & 31))) !== 0 && (type & XEN_DOMCTL_PFINFO_LTABTYPE_MASK) === 0 && !isSpecial) {
      dataIndex[nData] = i;
      dataSrcMfns[nData] = ms;
      dataDstMfns[nData] = md;
      nData++;
    } else if (srcHas || md >= 0) {
      generalIndex[nGeneral++] = i;
    }
  }
  generalIndex[nGeneral] = CHUNK;

  const { srcStamps, dstStamps, srcMaterialised, dstMaterialised } = s;
  let stampsKnown = nData > 0;
  if (stampsKnown) {
    try {
      src.tools.frameStampsInto(src.domid, dataSrcMfns, nData, srcStamps, srcMaterialised);
      dst.tools.frameStampsInto(dst.domid, dataDstMfns, nData, dstStamps, dstMaterialised);
    } catch (err) {
      // A frame that is not the domain's: `comparePfn` meets it in pfn order and fails as it always did.
      if (!(err instanceof PrivilegedError)) throw err;
      stampsKnown = false;
    }
  }
  // In pfn order: the data pages, with the general ones merged in where they fall.
  let g = 0;
  for (let j = 0; j < nData; j++) {
    const i = dataIndex[j]!;
    while (generalIndex[g]! < i) comparePfnAt(c, base, generalIndex[g++]!);
    if (stampsKnown && srcMaterialised[j] === 0 && dstMaterialised[j] === 0) {
      if (srcStamps[j] !== dstStamps[j]) diffs.add(base + i, 'content', `pfn ${hex(base + i)}: the destination's page differs from the source's`);
    } else {
      comparePfnAt(c, base, i);
    }
  }
  while (g < nGeneral) comparePfnAt(c, base, generalIndex[g++]!);
  return nextSpecial;
}

function comparePfnAt(c: Comparing, base: number, i: number): void {
  comparePfn(c, base + i, c.scratch.srcMfns[i]!, c.scratch.srcTypes[i]!);
}

/**
 * After the guest resumed on the destination and republished its p2m: the guest's own p2m walk
 * (as a toolstack would map it) must name exactly the frames the restore populated. Entries are
 * read as 32-bit halves; only a pfn that differs is looked at again as a bigint, for its message.
 */
export function compareGuestP2m(dst: Side & { readonly restorer: Restorer }, limit = 20): Comparison {
  const diffs = new Differences(limit);
  const p2m = freshP2m(dst);
  if (typeof p2m === 'string') return diffs.result(`the resumed guest's p2m cannot be mapped: ${p2m}`);
  const restorer = dst.restorer;
  const fpp = PAGE_SIZE / p2m.width;
  const wide = p2m.width === 8;
  for (let x = 0; x * fpp < p2m.p2mSize; x++) {
    const leaf = p2m.leaves[x]!.elements;
    const words = new Uint32Array(leaf.buffer, leaf.byteOffset, leaf.byteLength >>> 2);
    const n = Math.min(fpp, p2m.p2mSize - x * fpp);
    for (let k = 0; k < n; k++) {
      const pfn = x * fpp + k;
      const restored = restorer.mfnOf(pfn);
      // The entry as a number when it fits 32 bits (-1: INVALID, -2: wider than any mfn restore gives).
      let walked: number;
      if (wide) {
        const lo = words[2 * k]!;
        const hi = words[2 * k + 1]!;
        walked = hi === 0 ? lo : lo === 0xffffffff && hi === 0xffffffff ? -1 : -2;
      } else {
        const e = words[k]!;
        walked = e === 0xffffffff ? -1 : e;
      }
      if (walked === -1 ? restored === undefined : walked === restored) continue;
      guestP2mDifference(diffs, p2m, restorer, pfn);
    }
  }
  for (let pfn = p2m.p2mSize; pfn <= restorer.highestPfn; pfn++) {
    if (restorer.mfnOf(pfn) !== undefined) guestP2mDifference(diffs, p2m, restorer, pfn);
  }
  return diffs.result();
}

/** Records how the walked p2m and the restore disagree about `pfn`, if they do. */
function guestP2mDifference(diffs: Differences, p2m: MappedP2m, restorer: Restorer, pfn: number): void {
  const e = pfn < p2m.p2mSize ? p2m.entry(pfn) : TOOLS_INVALID_MFN;
  const walked = e === TOOLS_INVALID_MFN ? undefined : Number(e);
  const restored = restorer.mfnOf(pfn);
  if (walked === restored) return;
  if (pfn >= p2m.p2mSize) {
    diffs.add(pfn, 'p2m', `pfn ${hex(pfn)} is populated (mfn ${hex(restored!)}) beyond the resumed guest's max_pfn ${hex(p2m.maxPfn)}`);
  } else {
    diffs.add(pfn, 'p2m', `the resumed guest's p2m maps pfn ${hex(pfn)} to ${walked === undefined ? 'nothing' : `mfn ${hex(walked)}`}, the restore gave it ${restored === undefined ? 'nothing' : `mfn ${hex(restored)}`}`);
  }
}
