/**
 * What the guest rules know about a guest, kept from the trace events alone: shared_info's p2m
 * fields, the p2m (per pfn), the m2p and ownership of the domain's frames, which frame backs each
 * page of the linear list and of the tree, the phase (booting, running, suspended) and the
 * operation in progress. Online checking and `check-trace` feed the same events to the same model.
 *
 * Sized for 512 GiB guests: per-pfn and per-mfn data live in typed-array chunks made on first
 * use; pages of the list and tree in one growable Float64Array each. What changed since the last
 * quiescent point is kept in small sets, so quiescent checks look only at those.
 */

import { FRAME_LARGE, FRAME_UNMAPPED, SHARED_FIELDS, type GuestPhase, type SharedField, type TraceAbi, type TraceEvent, type WordRun } from '../../trace/format.js';

const CHUNK_SHIFT = 16;
const CHUNK = 1 << CHUNK_SHIFT;
const MASK = CHUNK - 1;
const INVALID32 = 0xffffffff;
const TWO32 = 2 ** 32;

/** p2m value classes returned by `frameAt`. */
export const P2M_INVALID = -1;
/** A FOREIGN_FRAME or IDENTITY_FRAME value (marker bits set): names no frame of the domain. */
export const P2M_MARKED = -2;

/** The p2m as the guest wrote it: raw guest words per pfn, INVALID where never written. */
export class P2mValues {
  private readonly lo = new Map<number, Uint32Array>();
  private readonly hi = new Map<number, Uint32Array>();

  constructor(readonly wordSize: 4 | 8) {}

  private chunk(pfn: number, make: boolean): [Uint32Array, Uint32Array | undefined] | undefined {
    const c = Math.floor(pfn / CHUNK);
    let lo = this.lo.get(c);
    if (lo === undefined) {
      if (!make) return undefined;
      lo = new Uint32Array(CHUNK).fill(INVALID32);
      this.lo.set(c, lo);
      if (this.wordSize === 8) this.hi.set(c, new Uint32Array(CHUNK).fill(INVALID32));
    }
    return [lo, this.hi.get(c)];
  }

  /** The word halves of element `pfn` (hi is 0 on x86_32 for valid entries, INVALID32 when unset). */
  halves(pfn: number): [number, number] {
    const c = this.chunk(pfn, false);
    if (c === undefined) return [INVALID32, this.wordSize === 8 ? INVALID32 : 0];
    return [c[0][pfn & MASK]!, c[1] === undefined ? 0 : c[1][pfn & MASK]!];
  }

  value(pfn: number): bigint {
    const [lo, hi] = this.halves(pfn);
    return this.wordSize === 8 ? (BigInt(hi) << 32n) | BigInt(lo) : BigInt(lo);
  }

  setHalves(pfn: number, lo: number, hi: number): void {
    const c = this.chunk(pfn, true)!;
    c[0][pfn & MASK] = lo >>> 0;
    if (c[1] !== undefined) c[1][pfn & MASK] = hi >>> 0;
  }

  /** The frame element `pfn` names, P2M_INVALID, or P2M_MARKED. */
  frameAt(pfn: number): number {
    const [lo, hi] = this.halves(pfn);
    return classify(this.wordSize, lo, hi);
  }

  /** Bytes [offset, offset + width) of the p2m seen as one byte array from element `pfn`, little-endian `value`. */
  storeBytes(pfn: number, offset: number, width: number, value: bigint): number[] {
    const touched: number[] = [];
    const ws = this.wordSize;
    let v = value;
    for (let b = 0; b < width; b++) {
      const abs = offset + b;
      const e = pfn + Math.floor(abs / ws);
      const at = abs % ws;
      const byte = Number(v & 0xffn);
      v >>= 8n;
      let [lo, hi] = this.halves(e);
      if (at < 4) lo = ((lo & ~(0xff << (8 * at))) | (byte << (8 * at))) >>> 0;
      else hi = ((hi & ~(0xff << (8 * (at - 4)))) | (byte << (8 * (at - 4)))) >>> 0;
      this.setHalves(e, lo, hi);
      if (touched[touched.length - 1] !== e) touched.push(e);
    }
    return touched;
  }

  /** Entries [first, first + count) become INVALID, then the runs are written. */
  replace(first: number, count: number, runs: readonly WordRun[]): void {
    const end = first + count;
    for (let pfn = first; pfn < end; ) {
      const c = Math.floor(pfn / CHUNK);
      const chunkEnd = (c + 1) * CHUNK;
      const stop = Math.min(end, chunkEnd);
      if (pfn === c * CHUNK && stop === chunkEnd) {
        this.lo.delete(c);
        this.hi.delete(c);
      } else if (this.lo.has(c)) {
        this.lo.get(c)!.fill(INVALID32, pfn & MASK, ((stop - 1) & MASK) + 1);
        this.hi.get(c)?.fill(INVALID32, pfn & MASK, ((stop - 1) & MASK) + 1);
      }
      pfn = stop;
    }
    for (const [at, value, n, step] of runs) {
      const lo0 = Number(value & 0xffffffffn);
      const hi0 = Number(value >> 32n);
      for (let i = 0; i < n; i++) {
        const lo = lo0 + i * step;
        this.setHalves(at + i, lo % TWO32, hi0 + Math.floor(lo / TWO32));
      }
    }
  }

  /** Calls `fn(pfn, frame)` for every element that names a frame. */
  forEachFrame(fn: (pfn: number, mfn: number) => void): void {
    for (const [c, lo] of this.lo) {
      const hi = this.hi.get(c);
      const base = c * CHUNK;
      for (let i = 0; i < CHUNK; i++) {
        const f = classify(this.wordSize, lo[i]!, hi === undefined ? 0 : hi[i]!);
        if (f >= 0) fn(base + i, f);
      }
    }
  }
}

function classify(wordSize: 4 | 8, lo: number, hi: number): number {
  if (wordSize === 8) {
    if (hi === INVALID32 && lo === INVALID32) return P2M_INVALID;
    if ((hi & 0xc0000000) !== 0) return P2M_MARKED;
    return hi * TWO32 + lo;
  }
  if (lo === INVALID32) return P2M_INVALID;
  if ((lo & 0xc0000000) !== 0) return P2M_MARKED;
  return lo;
}

const OWNED = 1;
const XEN_HEAP = 2;
export const M2P_INVALID = 0xffffffff;

/** The domain's frames: owned or not (and Xen heap), and their m2p entries. */
export class FrameTable {
  private readonly flags = new Map<number, Uint8Array>();
  private readonly m2p = new Map<number, Uint32Array>();

  private flagChunk(mfn: number, make: boolean): Uint8Array | undefined {
    const c = Math.floor(mfn / CHUNK);
    let f = this.flags.get(c);
    if (f === undefined && make) {
      f = new Uint8Array(CHUNK);
      this.flags.set(c, f);
    }
    return f;
  }

  isOwned(mfn: number): boolean {
    return ((this.flagChunk(mfn, false)?.[mfn & MASK] ?? 0) & OWNED) !== 0;
  }

  isXenHeap(mfn: number): boolean {
    return ((this.flagChunk(mfn, false)?.[mfn & MASK] ?? 0) & XEN_HEAP) !== 0;
  }

  setOwned(mfn: number, owned: boolean, xenHeap = false): void {
    const f = this.flagChunk(mfn, owned);
    if (f === undefined) return;
    f[mfn & MASK] = owned ? OWNED | (xenHeap ? XEN_HEAP : 0) : 0;
  }

  m2pOf(mfn: number): number {
    return this.m2p.get(Math.floor(mfn / CHUNK))?.[mfn & MASK] ?? M2P_INVALID;
  }

  setM2p(mfn: number, pfn: number): void {
    const c = Math.floor(mfn / CHUNK);
    let m = this.m2p.get(c);
    if (m === undefined) {
      if (pfn === M2P_INVALID) return;
      m = new Uint32Array(CHUNK).fill(M2P_INVALID);
      this.m2p.set(c, m);
    }
    m[mfn & MASK] = pfn;
  }

  clear(): void {
    this.flags.clear();
    this.m2p.clear();
  }

  /** Calls `fn(mfn)` for every owned ordinary (not Xen heap) frame. */
  forEachOwned(fn: (mfn: number) => void): void {
    for (const [c, f] of this.flags) {
      for (let i = 0; i < CHUNK; i++) if (f[i] === OWNED) fn(c * CHUNK + i);
    }
  }
}

/** One frame per page (FRAME_UNMAPPED where nothing is known), growable. */
export class PageFrames {
  private frames = new Float64Array(0).fill(FRAME_UNMAPPED);
  /** How many pages map each frame (shared placeholder leaves map many). */
  readonly refs = new Map<number, number>();

  get length(): number {
    return this.frames.length;
  }

  get(page: number): number {
    return page < this.frames.length ? this.frames[page]! : FRAME_UNMAPPED;
  }

  set(page: number, mfn: number): void {
    if (page >= this.frames.length) {
      if (mfn === FRAME_UNMAPPED) return;
      let size = Math.max(1024, this.frames.length);
      while (size <= page) size *= 2;
      const grown = new Float64Array(size).fill(FRAME_UNMAPPED);
      grown.set(this.frames);
      this.frames = grown;
    }
    const old = this.frames[page]!;
    if (old === mfn) return;
    if (old >= 0) {
      const n = this.refs.get(old)! - 1;
      if (n === 0) this.refs.delete(old);
      else this.refs.set(old, n);
    }
    if (mfn >= 0) this.refs.set(mfn, (this.refs.get(mfn) ?? 0) + 1);
    this.frames[page] = mfn;
  }

  clear(): void {
    this.frames = new Float64Array(0);
    this.refs.clear();
  }
}

/** Above this many pfns or pages, a change marks a full check instead of listing each one. */
const TOUCH_LIMIT = 4096;

export class GuestModel {
  readonly wordSize: 4 | 8;
  /** Elements per p2m page. */
  readonly fpp: number;
  readonly wordMask: bigint;
  readonly shared: Record<SharedField, bigint> = Object.fromEntries(SHARED_FIELDS.map((f) => [f, 0n])) as Record<SharedField, bigint>;
  startInfoFlags = 0;
  phase: GuestPhase = 'booting';
  /** The operation in progress, if any. */
  operation: string | undefined = undefined;
  readonly p2m: P2mValues;
  readonly frames = new FrameTable();
  /** Which frame backs each page of the linear list (as walked from p2m_cr3). */
  readonly list = new PageFrames();
  listExtent = 0;
  listError: string | undefined = undefined;
  /** Which leaf frame the tree names for each page. */
  readonly tree = new PageFrames();
  /** Whether a state event was seen (without one, nothing is known about the p2m or m2p). */
  hasState = false;
  /** Changes since the last quiescent point. */
  readonly touchedPfns = new Set<number>();
  readonly touchedMfns = new Set<number>();
  readonly touchedPages = new Set<number>();
  /** Too much changed to list: quiescent checks look at everything. */
  fullCheck = false;
  /** Index of the event being applied. */
  at = -1;

  constructor(abi: TraceAbi) {
    this.wordSize = abi === 'x86_64' ? 8 : 4;
    this.fpp = 4096 / this.wordSize;
    this.wordMask = this.wordSize === 8 ? 0xffffffffffffffffn : 0xffffffffn;
    this.p2m = new P2mValues(this.wordSize);
  }

  /** Whether the linear list is published (p2m_cr3 non-zero). */
  get listPublished(): boolean {
    return this.shared.p2m_cr3 !== 0n;
  }

  /** Pages of the list / tree that cover [0, max_pfn). */
  get listPages(): number {
    return Math.ceil(Number(this.shared.max_pfn) / this.fpp);
  }

  /** The pfns max_pfn covers. */
  get maxPfn(): number {
    return Number(this.shared.max_pfn);
  }

  private touchPfns(first: number, count: number): void {
    if (this.fullCheck) return;
    if (count > TOUCH_LIMIT || this.touchedPfns.size > 16 * TOUCH_LIMIT) {
      this.fullCheck = true;
      return;
    }
    for (let p = first; p < first + count; p++) this.touchedPfns.add(p);
  }

  private touchMfn(mfn: number): void {
    if (!this.fullCheck && mfn >= 0) this.touchedMfns.add(mfn);
  }

  private touchPage(page: number): void {
    if (!this.fullCheck) this.touchedPages.add(page);
  }

  /** Forgets what changed (after a quiescent check). */
  settle(): void {
    this.touchedPfns.clear();
    this.touchedMfns.clear();
    this.touchedPages.clear();
    this.fullCheck = false;
  }

  apply(e: TraceEvent): void {
    switch (e.type) {
      case 'state':
        this.hasState = true;
        this.phase = e.phase;
        this.startInfoFlags = e.start_info_flags;
        for (const f of SHARED_FIELDS) this.shared[f] = e.shared[f];
        this.frames.clear();
        for (const [first, n] of e.owned) for (let i = 0; i < n; i++) this.frames.setOwned(first + i, true);
        for (const mfn of e.xen_heap) this.frames.setOwned(mfn, true, true);
        for (const [mfn, pfn, n] of e.m2p) for (let i = 0; i < n; i++) this.frames.setM2p(mfn + i, pfn + i);
        this.fullCheck = true;
        return;
      case 'shared':
        this.shared[e.field] = e.value & this.wordMask;
        if (e.field === 'max_pfn' || e.field === 'pfn_to_mfn_frame_list_list') this.fullCheck = true;
        return;
      case 'p2m':
        this.p2m.replace(e.first, e.count, e.entries);
        this.touchPfns(e.first, e.count);
        return;
      case 'p2m_store': {
        const old = this.p2m.frameAt(e.pfn);
        for (const pfn of this.p2m.storeBytes(e.pfn, e.offset, e.width, e.value)) this.touchPfns(pfn, 1);
        this.touchMfn(old);
        this.touchMfn(this.p2m.frameAt(e.pfn));
        return;
      }
      case 'list':
        this.list.clear();
        this.listExtent = e.extent;
        this.listError = e.error;
        for (const [first, mfn, n, step] of e.pages) for (let i = 0; i < n; i++) this.list.set(first + i, mfn < 0 ? mfn : mfn + i * step);
        this.fullCheck = true;
        return;
      case 'pt_write':
        for (const [page, , mfn] of e.remap) {
          this.list.set(page, mfn);
          this.touchPage(page);
        }
        return;
      case 'tree':
        if (e.full) {
          this.tree.clear();
          this.fullCheck = true;
        }
        for (const [first, mfn, n, step] of e.pages) {
          for (let i = 0; i < n; i++) {
            this.tree.set(first + i, mfn < 0 ? mfn : mfn + i * step);
            if (!e.full) this.touchPage(first + i);
          }
        }
        return;
      case 'm2p': {
        const old = this.frames.m2pOf(e.mfn);
        this.frames.setM2p(e.mfn, e.pfn ?? M2P_INVALID);
        this.touchMfn(e.mfn);
        if (old !== M2P_INVALID) this.touchPfns(old, 1);
        if (e.pfn !== null) this.touchPfns(e.pfn, 1);
        return;
      }
      case 'frame':
        this.frames.setOwned(e.mfn, e.owned, e.xen_heap ?? false);
        this.touchMfn(e.mfn);
        return;
      case 'op':
        this.operation = e.phase === 'start' ? e.name : undefined;
        return;
      case 'published':
      case 'resumed':
        this.phase = 'running';
        return;
      case 'suspended':
        this.phase = 'suspended';
        return;
      case 'quiescent':
        return;
    }
  }
}

export { FRAME_LARGE, FRAME_UNMAPPED };
