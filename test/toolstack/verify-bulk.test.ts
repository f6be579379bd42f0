/**
 * The migration verifier's bulk comparison (typed arrays, the privileged interface's bulk calls,
 * stamps compared as numbers) against a straightforward per-pfn reference: the verifier as it was
 * before issue 8 (one bigint p2m entry, one page type, one m2p entry and one `frameContent` per
 * pfn), kept here verbatim. On guests with crafted differences of every kind — missing, extra,
 * content of data pages (stamped and materialised), page tables, p2m frames and start_info, m2p,
 * and the resumed guest's p2m walk — both must give the same verdict: the count, the first
 * differences in order with their kind and detail, the cap of `first`, and the same error when a
 * frame cannot be read.
 */

import { strict as assert } from 'node:assert';
import {
  PAGE_SIZE,
  X86_32,
  X86_64,
  XEN_DOMCTL_PFINFO_LTAB_SHIFT,
  XEN_DOMCTL_PFINFO_LTABTYPE_MASK,
  XEN_DOMCTL_PFINFO_NOTAB,
  XEN_DOMCTL_PFINFO_XTAB,
  _PAGE_PRESENT,
  _PAGE_RW,
  _PAGE_USER,
  PTE_FRAME_MASK,
  TOOLS_INVALID_MFN,
  start_info,
  type GuestAbi,
} from '../../abi/index.js';
import type { Domain } from '../../xen-emu/domain.js';
import { INVALID_M2P } from '../../xen-emu/machine.js';
import { adjustGuestL1e, adjustGuestL2e, adjustGuestL3e, adjustGuestL4e } from '../../xen-emu/pagetable.js';
import { mapGuestP2m, P2mMapError, type MappedP2m } from '../../toolstack/p2m-map.js';
import type { Restorer } from '../../toolstack/restore.js';
import { sameContent } from '../../toolstack/stream/page-content.js';
import { compareDomains, compareGuestP2m, type CompareOptions, type Comparison, type DifferenceKind, type PfnDifference, type Side } from '../../toolstack/verify.js';
import { finish } from '../guest-emu/support/world.js';
import { bootSource, destination, feed, saveQuiet, type Destination, type Source } from './support/save-direct.js';

// ------------------------------------------------------------------------------------------------
// The reference: the per-pfn verifier as it was before the bulk comparison
// ------------------------------------------------------------------------------------------------

function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

class ReferenceDifferences {
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

function referenceTableAsPfns(side: Side, mfn: number, width: 4 | 8, level: number): Uint8Array {
  const adjust = ADJUST[level - 1]!;
  const owner = { isCompat: width === 4 } as Domain;
  const page = side.tools.mapForeign(side.domid, [mfn]).pages[0]!.slice();
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  for (let i = 0; i < PAGE_SIZE / 8; i++) {
    if ((width === 8 && level === 4 && i >= 256 && i <= 271) || (width === 4 && level === 3 && i >= 4)) {
      view.setBigUint64(i * 8, 0n, true);
      continue;
    }
    const pte = view.getBigUint64(i * 8, true);
    if ((pte & _PAGE_PRESENT) === 0n) continue;
    const pfn = side.tools.m2p(Number((pte & PTE_FRAME_MASK) >> 12n));
    view.setBigUint64(i * 8, (adjust(pte, owner) & ~PTE_FRAME_MASK) | (BigInt(pfn) << 12n), true);
  }
  return page;
}

function referenceP2mFrameAsPfns(side: Side, mfn: number, abi: GuestAbi): number[] {
  const page = side.tools.mapForeign(side.domid, [mfn]).pages[0]!;
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  const out: number[] = [];
  for (let k = 0; k < PAGE_SIZE / abi.wordSize; k++) {
    const e = abi.wordSize === 8 ? view.getBigUint64(k * 8, true) : BigInt(view.getUint32(k * 4, true));
    const invalid = abi.wordSize === 8 ? e === TOOLS_INVALID_MFN : e === 0xffffffffn;
    out.push(invalid ? -1 : side.tools.m2p(Number(e & 0xffffffffffffn)));
  }
  return out;
}

function referenceBytesEqual(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function referenceStartInfoComparable(side: Side, mfn: number, abi: GuestAbi): Uint8Array {
  const page = side.tools.mapForeign(side.domid, [mfn]).pages[0]!.slice();
  for (const f of ['store_mfn', 'console.domU.mfn', 'shared_info', 'nr_pages'] as const) {
    page.fill(0, start_info.offsetOf(abi, f), start_info.offsetOf(abi, f) + abi.wordSize);
  }
  page.fill(0, start_info.offsetOf(abi, 'flags'), start_info.offsetOf(abi, 'flags') + 4);
  return page;
}

function referenceFreshP2m(side: Side): MappedP2m | string {
  try {
    return mapGuestP2m(side.tools, side.domid);
  } catch (err) {
    if (err instanceof P2mMapError) return err.message;
    throw err;
  }
}

function referenceCompareDomains(src: Side, dst: Side & { readonly restorer: Restorer }, options: CompareOptions): Comparison {
  const diffs = new ReferenceDifferences(options.limit ?? 20);
  const abi = src.tools.domainInfo(src.domid).abi;
  const width = abi.wordSize as 4 | 8;
  const srcP2m = referenceFreshP2m(src);
  if (typeof srcP2m === 'string') return diffs.result(`the source's p2m cannot be mapped: ${srcP2m}`);
  const leafPfns = new Set(srcP2m.leafPfns);
  const startInfoMfn = src.tools.vcpuContext(src.domid).startInfoMfn;
  const startInfoPfn = startInfoMfn >= 0 ? src.tools.m2p(startInfoMfn) : INVALID_M2P;
  const end = Math.max(srcP2m.p2mSize, dst.restorer.highestPfn + 1);
  const BATCH = 1024;
  for (let base = 0; base < end; base += BATCH) {
    const count = Math.min(BATCH, end - base);
    const srcMfns: number[] = [];
    for (let i = 0; i < count; i++) {
      const pfn = base + i;
      const e = pfn < srcP2m.p2mSize ? srcP2m.entry(pfn) : TOOLS_INVALID_MFN;
      srcMfns.push(e === TOOLS_INVALID_MFN || e > srcP2m.maxMfn ? -1 : Number(e));
    }
    const srcTypes = src.tools.pageTypes(src.domid, srcMfns.map((m) => (m < 0 ? 0 : m)));
    for (let i = 0; i < count; i++) {
      const pfn = base + i;
      const ms = srcMfns[i]!;
      const srcHas = ms >= 0 && srcTypes[i] !== XEN_DOMCTL_PFINFO_XTAB && src.tools.m2p(ms) === pfn;
      const md = dst.restorer.mfnOf(pfn);
      if (srcHas && md === undefined) {
        diffs.add(pfn, 'missing', `pfn ${hex(pfn)} is populated on the source (mfn ${hex(ms)}) but not on the destination`);
        continue;
      }
      if (!srcHas) {
        if (md !== undefined) diffs.add(pfn, 'extra', `pfn ${hex(pfn)} is populated on the destination (mfn ${hex(md)}) but has no frame on the source`);
        continue;
      }
      if (md === undefined) continue;
      if (dst.tools.m2p(md) !== pfn) {
        diffs.add(pfn, 'm2p', `destination m2p of mfn ${hex(md)} is ${hex(dst.tools.m2p(md))}, not pfn ${hex(pfn)}`);
        continue;
      }
      const level = (srcTypes[i]! & XEN_DOMCTL_PFINFO_LTABTYPE_MASK) >>> XEN_DOMCTL_PFINFO_LTAB_SHIFT;
      if (leafPfns.has(pfn)) {
        if (options.stage === 'checkpoint') continue;
        const a = referenceP2mFrameAsPfns(src, ms, abi);
        const b = referenceP2mFrameAsPfns(dst, md, abi);
        const k = a.findIndex((v, j) => v !== b[j]);
        if (k >= 0) {
          const first = srcP2m.leafPfns.indexOf(pfn) * (PAGE_SIZE / width) + k;
          diffs.add(pfn, 'content', `p2m frame pfn ${hex(pfn)}: the entry of pfn ${hex(first)} names pfn ${hex(a[k]!)} on the source, ${hex(b[k]!)} on the destination`);
        }
      } else if (level !== 0) {
        const at = referenceBytesEqual(referenceTableAsPfns(src, ms, width, level), referenceTableAsPfns(dst, md, width, level));
        if (at >= 0) diffs.add(pfn, 'content', `L${level} page table pfn ${hex(pfn)} differs at entry ${Math.floor(at / 8)}`);
      } else if (pfn === startInfoPfn) {
        if (options.stage === 'checkpoint') continue;
        const at = referenceBytesEqual(referenceStartInfoComparable(src, ms, abi), referenceStartInfoComparable(dst, md, abi));
        if (at >= 0) diffs.add(pfn, 'content', `start_info pfn ${hex(pfn)} differs at byte ${at}`);
      } else if (!sameContent(src.tools.frameContent(src.domid, ms), dst.tools.frameContent(dst.domid, md))) {
        diffs.add(pfn, 'content', `pfn ${hex(pfn)}: the destination's page differs from the source's`);
      }
    }
  }
  return diffs.result();
}

function referenceCompareGuestP2m(dst: Side & { readonly restorer: Restorer }, limit = 20): Comparison {
  const diffs = new ReferenceDifferences(limit);
  const p2m = referenceFreshP2m(dst);
  if (typeof p2m === 'string') return diffs.result(`the resumed guest's p2m cannot be mapped: ${p2m}`);
  const end = Math.max(p2m.p2mSize, dst.restorer.highestPfn + 1);
  for (let pfn = 0; pfn < end; pfn++) {
    const e = pfn < p2m.p2mSize ? p2m.entry(pfn) : TOOLS_INVALID_MFN;
    const walked = e === TOOLS_INVALID_MFN ? undefined : Number(e);
    const restored = dst.restorer.mfnOf(pfn);
    if (walked === restored) continue;
    if (pfn >= p2m.p2mSize) {
      diffs.add(pfn, 'p2m', `pfn ${hex(pfn)} is populated (mfn ${hex(restored!)}) beyond the resumed guest's max_pfn ${hex(p2m.maxPfn)}`);
    } else {
      diffs.add(pfn, 'p2m', `the resumed guest's p2m maps pfn ${hex(pfn)} to ${walked === undefined ? 'nothing' : `mfn ${hex(walked)}`}, the restore gave it ${restored === undefined ? 'nothing' : `mfn ${hex(restored)}`}`);
    }
  }
  return diffs.result();
}

// ------------------------------------------------------------------------------------------------
// Worlds with crafted differences
// ------------------------------------------------------------------------------------------------

type Outcome = { readonly result: Comparison } | { readonly error: { readonly name: string; readonly message: string; readonly errno: unknown } };

function outcome(run: () => Comparison): Outcome {
  try {
    return { result: run() };
  } catch (err) {
    const e = err as Error & { errno?: unknown };
    return { error: { name: e.name, message: e.message, errno: e.errno } };
  }
}

type DstSide = Side & { readonly restorer: Restorer };

/**
 * Both verifiers on the same input: the same verdict (or the same error); returns it. The bulk one
 * runs first: mapping a stamped frame materialises it, and the bulk one must meet stamps too.
 */
function agree(src: Side, dst: DstSide, options: CompareOptions): Outcome {
  const actual = outcome(() => compareDomains(src, dst, options));
  const expected = outcome(() => referenceCompareDomains(src, dst, options));
  assert.deepEqual(actual, expected);
  return actual;
}

function agreeWalk(dst: DstSide, limit?: number): Outcome {
  const actual = outcome(() => compareGuestP2m(dst, limit));
  const expected = outcome(() => referenceCompareGuestP2m(dst, limit));
  assert.deepEqual(actual, expected);
  return actual;
}

function resultOf(o: Outcome): Comparison {
  assert.ok('result' in o, `expected a verdict, got ${JSON.stringify(o)}`);
  return o.result;
}

interface World {
  readonly src: Source;
  readonly dst: Destination;
  readonly p2m: MappedP2m;
  /** Source pfns by what they hold (each list in pfn order). */
  readonly data: number[];
  readonly tables: Map<number, number[]>;
  readonly startInfoPfn: number;
}

function world(abi: GuestAbi, guest: string, pages: number): World {
  const src = bootSource(abi, guest, pages);
  const saved = saveQuiet(src);
  assert.equal(saved.report.outcome, 'completed', saved.report.reason);
  const dst = destination(src, saved);
  feed(dst, saved.records);
  assert.ok(dst.restorer.completed, dst.restorer.failure?.message);
  const p2m = mapGuestP2m(src.tools, src.domid);
  const startInfoPfn = src.tools.m2p(src.tools.vcpuContext(src.domid).startInfoMfn);
  const leaves = new Set(p2m.leafPfns);
  const data: number[] = [];
  const tables = new Map<number, number[]>();
  for (let pfn = 0; pfn < p2m.p2mSize; pfn++) {
    const e = p2m.entry(pfn);
    if (e === TOOLS_INVALID_MFN) continue;
    const type = src.tools.pageTypes(src.domid, [Number(e)])[0]!;
    const level = (type & XEN_DOMCTL_PFINFO_LTABTYPE_MASK) >>> XEN_DOMCTL_PFINFO_LTAB_SHIFT;
    if (level !== 0) tables.set(level, [...(tables.get(level) ?? []), pfn]);
    else if (type === XEN_DOMCTL_PFINFO_NOTAB && !leaves.has(pfn) && pfn !== startInfoPfn) data.push(pfn);
  }
  return { src, dst, p2m, data, tables, startInfoPfn };
}

function srcMfn(w: World, pfn: number): number {
  return Number(w.p2m.entry(pfn));
}

function dstMfn(w: World, pfn: number): number {
  const mfn = w.dst.restorer.mfnOf(pfn);
  assert.notEqual(mfn, undefined, `pfn ${hex(pfn)} is populated on the destination`);
  return mfn!;
}

/** The destination with the restorer's p2m overridden for some pfns (undefined: unpopulated). */
function withRestorer(w: World, overrides: ReadonlyMap<number, number | undefined>, highestPfn = w.dst.restorer.highestPfn): DstSide {
  const real = w.dst.restorer;
  const restorer = {
    mfnOf: (pfn: number) => (overrides.has(pfn) ? overrides.get(pfn) : real.mfnOf(pfn)),
    highestPfn,
  } as unknown as Restorer;
  return { tools: w.dst.tools, domid: w.dst.domid, restorer };
}

/** Writes a 64-bit little-endian word into a frame's live bytes (as a stray write would). */
function poke64(page: Uint8Array, offset: number, value: bigint): void {
  new DataView(page.buffer, page.byteOffset, PAGE_SIZE).setBigUint64(offset, value, true);
}

function peek64(page: Uint8Array, offset: number): bigint {
  return new DataView(page.buffer, page.byteOffset, PAGE_SIZE).getBigUint64(offset, true);
}

/** A guest word (4 or 8 bytes) of a frame's live bytes. */
function pokeWord(abi: GuestAbi, page: Uint8Array, index: number, value: bigint): void {
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  if (abi.wordSize === 8) view.setBigUint64(index * 8, value, true);
  else view.setUint32(index * 4, Number(value), true);
}

/** Index of the first present entry of a page table from `from` on. */
function presentEntry(page: Uint8Array, from = 0): number {
  for (let i = from; i < PAGE_SIZE / 8; i++) if ((peek64(page, i * 8) & _PAGE_PRESENT) !== 0n) return i;
  throw new Error('no present entry');
}

function nonPresentEntry(page: Uint8Array, level: number, abi: GuestAbi): number {
  const last = abi.wordSize === 4 && level === 3 ? 4 : PAGE_SIZE / 8;
  for (let i = 0; i < last; i++) if ((peek64(page, i * 8) & _PAGE_PRESENT) === 0n && !(abi.wordSize === 8 && level === 4 && i >= 256 && i <= 271)) return i;
  throw new Error('no non-present entry');
}

/**
 * Differences of every kind at once on the destination (and two on the source), each at its own
 * pfn. Returns the destination side to compare with (the restorer's p2m overridden).
 */
function craftMixed(w: World): DstSide {
  const { src, dst, data } = w;
  const abi = src.guest.abi;
  const dm = dst.xen.machine;
  const d = (n: number): number => data[n * 7 + 3]!;
  // Data: a different stamp; materialised on one side, same bytes (no difference); materialised and changed.
  dm.setStamp(dstMfn(w, d(0)), (dm.stampOf(dstMfn(w, d(0))) ?? 0) + 1);
  dm.bytes(dstMfn(w, d(1)));
  src.xen.machine.bytes(srcMfn(w, d(2)));
  dm.bytes(dstMfn(w, d(3)))[100]! ^= 1;
  // A materialised zero page against a stamped zero page: the same bytes.
  dm.setStamp(dstMfn(w, d(9)), 0);
  src.xen.machine.setStamp(srcMfn(w, d(9)), 0);
  dm.bytes(dstMfn(w, d(9)));
  // The destination's m2p names another pfn.
  dm.setM2p(dstMfn(w, d(4)), d(4) + 1);
  // Page tables: a flag changed (another adjustment), a frame changed, a non-present entry changed,
  // and a flag the adjustment restores (no difference).
  const l1 = w.tables.get(1)!;
  const t0 = dm.bytes(dstMfn(w, l1[0]!));
  const i0 = presentEntry(t0, 5);
  poke64(t0, i0 * 8, peek64(t0, i0 * 8) ^ _PAGE_RW);
  const t1 = dm.bytes(dstMfn(w, l1[1]!));
  const i1 = presentEntry(t1, 7);
  poke64(t1, i1 * 8, (peek64(t1, i1 * 8) & ~PTE_FRAME_MASK) | (BigInt(dstMfn(w, d(5))) << 12n));
  const top = w.tables.get(abi.wordSize === 8 ? 4 : 3)![0]!;
  const t2 = dm.bytes(dstMfn(w, top));
  const i2 = nonPresentEntry(t2, abi.wordSize === 8 ? 4 : 3, abi);
  poke64(t2, i2 * 8, 0x1000n);
  if (abi.wordSize === 8) {
    const l2 = w.tables.get(2)![0]!;
    const t3 = dm.bytes(dstMfn(w, l2));
    const i3 = presentEntry(t3);
    poke64(t3, i3 * 8, peek64(t3, i3 * 8) & ~_PAGE_USER);
  }
  // p2m frames: one entry names another frame, another is INVALID (the first leaf); in the last
  // leaf (in a large guest, its entries' chunk comes after its own pfn), one names another frame.
  const leaf = dm.bytes(dstMfn(w, w.p2m.leafPfns[0]!));
  pokeWord(abi, leaf, 40, BigInt(dstMfn(w, d(6))));
  pokeWord(abi, leaf, 41, abi.wordSize === 8 ? TOOLS_INVALID_MFN : 0xffffffffn);
  const lastLeaf = dm.bytes(dstMfn(w, w.p2m.leafPfns[w.p2m.leafPfns.length - 1]!));
  pokeWord(abi, lastLeaf, 3, BigInt(dstMfn(w, d(6))));
  // start_info: a field restore keeps (a difference) and one it rewrites (none).
  const si = dm.bytes(dstMfn(w, w.startInfoPfn));
  si[start_info.offsetOf(abi, 'pt_base')]! ^= 0x10;
  si[start_info.offsetOf(abi, 'nr_pages')]! ^= 0x10;
  // Source: one entry names a Xen heap frame (XTAB), one is beyond max_mfn, one is INVALID: no
  // frame there on the source, a frame on the destination.
  const fpp = PAGE_SIZE / abi.wordSize;
  const x = w.p2m.leafMfns.length > 1 ? 1 : 0;
  const srcLeaf = src.xen.machine.bytes(Number(w.p2m.leafMfns[x]!));
  const noFrame = data.find((p) => p >= x * fpp + 2 && p < (x + 1) * fpp - 3)!;
  pokeWord(abi, srcLeaf, noFrame - x * fpp, BigInt(src.tools.domainInfo(src.domid).sharedInfoMfn));
  pokeWord(abi, srcLeaf, noFrame - x * fpp + 1, abi.wordSize === 8 ? 1n << 40n : 0xfffffff0n);
  pokeWord(abi, srcLeaf, noFrame - x * fpp + 2, abi.wordSize === 8 ? TOOLS_INVALID_MFN : 0xffffffffn);
  // Missing on the destination; extra beyond the source's p2m.
  const beyond = w.p2m.p2mSize + 5;
  return withRestorer(
    w,
    new Map<number, number | undefined>([
      [d(7), undefined],
      [beyond, dstMfn(w, d(10))],
    ]),
    beyond + 3,
  );
}

/** Small guests fit one chunk of the bulk comparison; 16384 pages take four. */
const GUESTS = [
  [X86_64, 'linear', 2048],
  [X86_64, 'legacy-tree', 2048],
  [X86_32, 'linear', 2048],
  [X86_32, 'tree+linear', 2048],
  [X86_64, 'linear', 16384],
  [X86_32, 'legacy-tree', 16384],
] as const;

describe('toolstack: the bulk verifier agrees with the per-pfn reference', function () {
  this.timeout(30_000);

  for (const [abi, guest, pages] of GUESTS) {
    describe(`${abi.name} ${guest}, ${pages} pages`, () => {
      it('a faithful restore: no differences, at both stages', () => {
        const w = world(abi, guest, pages);
        for (const stage of ['final', 'checkpoint'] as const) assert.equal(resultOf(agree(w.src, w.dst, { stage })).differing, 0);
      });

      it('differences of every kind: the same count, kinds, details and order, at every limit and stage', () => {
        const w = world(abi, guest, pages);
        const dst = craftMixed(w);
        const full = resultOf(agree(w.src, dst, { stage: 'final', limit: 1000 }));
        const kinds = new Set(full.first.map((x) => x.kind));
        for (const kind of ['missing', 'extra', 'content', 'm2p'] as const) assert.ok(kinds.has(kind), `a ${kind} difference among ${JSON.stringify(full.first)}`);
        for (const what of ['page table', 'p2m frame', 'start_info', "the destination's page differs"]) {
          assert.ok(full.first.some((x) => x.detail.includes(what)), `a difference about ${what} among ${JSON.stringify(full.first)}`);
        }
        for (const limit of [0, 1, 3, 20]) agree(w.src, dst, { stage: 'final', limit });
        agree(w.src, dst, { stage: 'checkpoint' });
      });

      it('many differing data pages: the cap of `first` keeps the lowest pfns', () => {
        const w = world(abi, guest, pages);
        const dm = w.dst.xen.machine;
        for (const pfn of w.data.slice(0, 40)) dm.setStamp(dstMfn(w, pfn), (dm.stampOf(dstMfn(w, pfn)) ?? 0) ^ 0x5a5a);
        // Two the general comparison handles, around them.
        dm.setM2p(dstMfn(w, w.data[45]!), 1);
        dm.bytes(dstMfn(w, w.data[1]!))[0]! ^= 1;
        const r = resultOf(agree(w.src, w.dst, { stage: 'final', limit: 20 }));
        // (and the page tables mapping the frame whose m2p changed)
        assert.ok(r.differing >= 41, JSON.stringify(r));
        assert.equal(r.first.length, 20);
        agree(w.src, w.dst, { stage: 'final', limit: 5 });
      });

      it('start_info held as a stamp on both sides is still compared as start_info', () => {
        for (const stage of ['final', 'checkpoint'] as const) {
          const w = world(abi, guest, pages);
          w.src.xen.machine.setStamp(srcMfn(w, w.startInfoPfn), 0x1234);
          w.dst.xen.machine.setStamp(dstMfn(w, w.startInfoPfn), 0x4321);
          const r = resultOf(agree(w.src, w.dst, { stage }));
          assert.equal(r.differing, stage === 'final' ? 1 : 0, JSON.stringify(r));
        }
      });

      it('a destination frame that is not the domain\'s fails as before (data, page table, p2m frame)', () => {
        const w = world(abi, guest, pages);
        const free = w.dst.xen.machine.maxPage - 1;
        assert.equal(w.dst.xen.machine.ownerOf(free), undefined);
        for (const pfn of [w.data[20]!, w.tables.get(1)![0]!, w.p2m.leafPfns[0]!, w.p2m.leafPfns[w.p2m.leafPfns.length - 1]!]) {
          w.dst.xen.machine.setM2p(free, pfn);
          const o = agree(w.src, withRestorer(w, new Map([[pfn, free]])), { stage: 'final' });
          assert.ok('error' in o, `pfn ${hex(pfn)}: ${JSON.stringify(o)}`);
        }
      });

      it('page tables and p2m frames compared after the other pfns: the same first failure and the lowest differences', () => {
        const w = world(abi, guest, pages);
        const free = w.dst.xen.machine.maxPage - 1;
        const table = w.tables.get(1)![0]!;
        const leaf = w.p2m.leafPfns[w.p2m.leafPfns.length - 1]!;
        const below = w.data.filter((p) => p < table);
        const above = w.data.filter((p) => p > Math.max(table, leaf));
        // Two unreadable frames: a page table or p2m frame (deferred) and a data page before or after it.
        for (const [special, data] of [[table, above[0]!], [leaf, above[1]!], ...(below.length > 0 ? [[table, below[0]!]] : [])] as [number, number][]) {
          w.dst.xen.machine.setM2p(free, special);
          const other = free - 1;
          assert.equal(w.dst.xen.machine.ownerOf(other), undefined);
          w.dst.xen.machine.setM2p(other, data);
          const o = agree(w.src, withRestorer(w, new Map([[special, free], [data, other]])), { stage: 'final' });
          assert.ok('error' in o, `pfns ${hex(special)}, ${hex(data)}: ${JSON.stringify(o)}`);
        }
        // Differences in page tables and p2m frames (low pfns) and in many data pages after them:
        // every cap of `first` keeps the lowest pfns, whatever order they were compared in.
        const { src } = w;
        const dm = w.dst.xen.machine;
        for (const pfn of above.slice(2, 30)) dm.setStamp(dstMfn(w, pfn), (dm.stampOf(dstMfn(w, pfn)) ?? 0) ^ 0x5a5a);
        const t = dm.bytes(dstMfn(w, table));
        const i = presentEntry(t, 3);
        poke64(t, i * 8, peek64(t, i * 8) ^ _PAGE_RW);
        pokeWord(abi, dm.bytes(dstMfn(w, leaf)), 2, BigInt(dstMfn(w, above[40]!)));
        // Data pages holding real bytes on both sides: equal, one byte changed, and a last-byte change.
        for (const pfn of above.slice(30, 33)) {
          src.xen.machine.bytes(srcMfn(w, pfn));
          dm.bytes(dstMfn(w, pfn));
        }
        dm.bytes(dstMfn(w, above[31]!))[7]! ^= 1;
        dm.bytes(dstMfn(w, above[32]!))[PAGE_SIZE - 1]! ^= 0x80;
        const full = resultOf(agree(w.src, w.dst, { stage: 'final', limit: 1000 }));
        assert.ok(full.first.some((d) => d.pfn === table) && full.first.some((d) => d.pfn === leaf), JSON.stringify(full.first));
        assert.deepEqual(
          [30, 31, 32].map((n) => full.first.some((d) => d.pfn === above[n])),
          [false, true, true],
        );
        for (const limit of [0, 1, 2, 3, 5, 29]) agree(w.src, w.dst, { stage: 'final', limit });
      });

      it('a destination domain that no longer exists fails as before', () => {
        const w = world(abi, guest, pages);
        const frames = w.data.map((pfn) => [pfn, dstMfn(w, pfn)] as const);
        w.dst.tools.destroyDomain(w.dst.domid);
        // Freed frames lose their m2p: a verdict of m2p differences, the same from both.
        assert.ok('result' in agree(w.src, w.dst, { stage: 'final' }));
        // With the m2p left as it was, only the domain is gone: the same error from both.
        for (const [pfn, mfn] of frames) w.dst.xen.machine.setM2p(mfn, pfn);
        const o = agree(w.src, w.dst, { stage: 'final' });
        assert.ok('error' in o, JSON.stringify(o));
      });

      it('p2m frames whose every pfn is mapped on both sides: one changed entry anywhere in the frame is found', () => {
        const w = world(abi, guest, pages);
        const fpp = PAGE_SIZE / abi.wordSize;
        const leafPfns = w.p2m.leafPfns;
        // A leaf wholly inside the p2m, all of whose pfns are populated on the source.
        const x = leafPfns.findIndex((_, i) => (i + 1) * fpp <= w.p2m.p2mSize && Array.from({ length: fpp }, (_, k) => w.p2m.entry(i * fpp + k)).every((e) => e !== TOOLS_INVALID_MFN));
        assert.ok(x >= 0, 'a fully populated leaf');
        const frame = w.dst.xen.machine.bytes(dstMfn(w, leafPfns[x]!));
        const entryOf = (k: number): bigint => BigInt(dstMfn(w, x * fpp + k));
        const invalid = abi.wordSize === 8 ? TOOLS_INVALID_MFN : 0xffffffffn;
        const changes: [number, bigint][] = [
          [0, invalid],
          [fpp - 1, invalid],
          [fpp >> 1, entryOf(fpp >> 1) + (abi.wordSize === 8 ? 1n << 32n : 1n)],
          [7, entryOf(8)],
          [fpp - 2, abi.wordSize === 8 ? 1n << 52n : 0xfffffffen],
        ];
        assert.equal(resultOf(agree(w.src, w.dst, { stage: 'final' })).differing, 0);
        for (const [k, value] of changes) {
          const before = entryOf(k);
          pokeWord(abi, frame, k, value);
          const r = resultOf(agree(w.src, w.dst, { stage: 'final' }));
          assert.deepEqual(r.first.map((d) => d.pfn), [leafPfns[x]!], `entry ${k}: ${JSON.stringify(r)}`);
          pokeWord(abi, frame, k, before);
        }
        assert.equal(resultOf(agree(w.src, w.dst, { stage: 'final' })).differing, 0);
      });

      it('the resumed guest\'s p2m walk: changed, INVALID and wide entries, extra pfns beyond it', () => {
        const w = world(abi, guest, pages);
        finish(w.src.guest.resume({ xen: w.dst.xen, domid: w.dst.domid }));
        assert.equal(resultOf(agreeWalk(w.dst)).differing, 0);
        const walked = mapGuestP2m(w.dst.tools, w.dst.domid);
        const leaf = w.dst.xen.machine.bytes(Number(walked.leafMfns[0]!));
        // Six data pfns in a row in the first leaf (not the p2m's own frames: the walk needs those).
        const k0 = w.data.find((p) => p >= 40 && [1, 2, 3, 4, 5].every((j) => w.data.includes(p + j)))!;
        pokeWord(abi, leaf, k0, BigInt(dstMfn(w, w.data[0]!)));
        pokeWord(abi, leaf, k0 + 1, abi.wordSize === 8 ? TOOLS_INVALID_MFN : 0xffffffffn);
        pokeWord(abi, leaf, k0 + 2, abi.wordSize === 8 ? (1n << 40n) + 7n : 0xfffffffen);
        pokeWord(abi, leaf, k0 + 3, abi.wordSize === 8 ? 0xffffffffn : 0x7fffffffn);
        const beyond = walked.p2mSize + 2;
        // k0 + 1: INVALID walked, nothing restored (no difference); k0 + 4: nothing restored; k0 + 5: another mfn.
        const dst = withRestorer(w, new Map([[beyond, 77], [k0 + 1, undefined], [k0 + 4, undefined], [k0 + 5, 78]]), beyond + 1);
        const r = resultOf(agreeWalk(dst));
        assert.equal(r.problem, undefined);
        assert.equal(r.differing, 6, JSON.stringify(r.first));
        agreeWalk(dst, 2);
      });
    });
  }
});

describe('toolstack: verify compares page-table entries by their bits outside the frame field', () => {
  // The bulk table comparison takes two entries with equal bits outside PTE_FRAME_MASK to get the
  // same adjustment: true only while Xen's adjust functions read and set no bit of the frame field.
  it('adjustGuestL1e–L4e read and change only bits outside PTE_FRAME_MASK', () => {
    let seed = 0x1234567;
    const next = (): bigint => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return BigInt(seed);
    };
    for (const isCompat of [false, true]) {
      const owner = { isCompat } as Domain;
      for (const adjust of ADJUST) {
        for (let n = 0; n < 2000; n++) {
          const pte = (next() << 32n) | next() | (n & 1 ? _PAGE_PRESENT : 0n);
          const out = adjust(pte, owner);
          assert.equal(out & PTE_FRAME_MASK, pte & PTE_FRAME_MASK, `${adjust.name} keeps the frame of ${hex(pte)}`);
          assert.equal(out & ~PTE_FRAME_MASK, adjust(pte & ~PTE_FRAME_MASK, owner) & ~PTE_FRAME_MASK, `${adjust.name} of ${hex(pte)} ignores the frame`);
        }
      }
    }
  });
});
