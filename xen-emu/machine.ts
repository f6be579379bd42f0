/**
 * Machine memory: 4 KiB frames numbered by mfn, with per-frame owner, m2p entry, page type and
 * contents. Sparse (design decision 5): metadata lives in chunks that exist only where frames were
 * used, and a frame's bytes exist only once somebody reads or writes them byte-wise. A frame whose
 * bytes nobody inspects carries a 32-bit content stamp instead; reading it byte-wise materialises
 * bytes derived from the stamp, so reads are always consistent.
 *
 * This class is plain storage. Who may write what, and logdirty, are Xen's business (xen.ts): every
 * guest-visible store goes through `Xen.store*`, the one choke point.
 */

import { PAGE_SIZE } from '../abi/index.js';
import type { EventBus } from './events.js';

/** The m2p value of a frame that backs no pfn (Xen's `INVALID_M2P_ENTRY`, ~0). */
export const INVALID_M2P = 0xffffffff;

/** Owner code of a free frame. */
export const OWNER_FREE = 0;

/** Page types, as Xen's `PGT_*` type of a frame (simplified: no refcounts beyond pinning). */
export const enum PageType {
  None = 0,
  L1 = 1,
  L2 = 2,
  L3 = 3,
  L4 = 4,
}
/** Bits of an info byte (see `ownedFramesInto`). */
export const TYPE_MASK = 0x07;
/** The frame's type is pinned (`MMUEXT_PIN_Ln_TABLE`). */
export const FLAG_PINNED = 0x08;
/** A Xen heap page shared with its owner (shared_info, grant frames): not in `tot_pages`. */
export const FLAG_XENHEAP = 0x10;
/** The frame's bytes are materialised (its chunk's `pages` holds them): spares a lookup per claim. */
const FLAG_BYTES = 0x20;

/** Frames per metadata chunk. Machines may be huge and mostly unused; chunks keep that cheap. */
const CHUNK_SHIFT = 16;
const CHUNK = 1 << CHUNK_SHIFT;
const SLOT_MASK = CHUNK - 1;

/** Slots per group of a chunk's materialised-page pointers. */
const PAGE_GROUP_SHIFT = 8;
const PAGE_GROUP = 1 << PAGE_GROUP_SHIFT;
const PAGE_GROUP_MASK = PAGE_GROUP - 1;

/**
 * Entries of the cache of recently used materialised pages (`Machine.bytes`): page-table walks
 * look up the same few frames over and over, and a hit costs one typed-array compare instead of
 * the chunk and group lookups.
 */
const PAGE_CACHE_SIZE = 256;
const PAGE_CACHE_MASK = PAGE_CACHE_SIZE - 1;

/** Stamp of a zero-filled page. */
export const STAMP_ZERO = 0;

/**
 * The metadata of CHUNK consecutive frames, made when one of them is first claimed or written.
 * Owner and m2p exist with the chunk; the type/flag and stamp arrays only once a frame of the chunk
 * holds a non-zero value there (a 512 GiB guest has neither for almost every frame).
 *
 * One object per chunk, with one typed array per kind of value, keeps every access a single
 * lookup and every array access monomorphic: this is memory_op's hot path (issue 8, figure 1).
 */
class FrameChunk {
  constructor(
    /** The mfn of slot 0. */
    readonly base: number,
  ) {}

  /** Owner domid + 1; OWNER_FREE for a free frame. */
  readonly owner = new Uint16Array(CHUNK);
  readonly m2p = new Uint32Array(CHUNK).fill(INVALID_M2P);
  /** PageType | FLAG_*, or undefined while all are 0. */
  info: Uint8Array | undefined = undefined;
  /** Content stamps, or undefined while all are STAMP_ZERO. */
  stamps: Uint32Array | undefined = undefined;
  /**
   * Materialised bytes (exactly where the info byte has FLAG_BYTES) in groups of PAGE_GROUP slots,
   * a group made when one of its frames is materialised: a chunk with a few scattered page tables
   * costs a few small arrays, not 65536 pointers.
   */
  readonly pages: ((Uint8Array | undefined)[] | undefined)[] = [];

  get bytes(): number {
    let pointers = 0;
    for (const group of this.pages) if (group !== undefined) pointers += PAGE_GROUP * 8;
    return this.owner.byteLength + this.m2p.byteLength + (this.info?.byteLength ?? 0) + (this.stamps?.byteLength ?? 0) + pointers;
  }
}

/** Pages in the first slab; each further slab doubles, up to SLAB_MAX_PAGES (16 MiB). */
const SLAB_MIN_PAGES = 16;
const SLAB_MAX_PAGES = 4096;
/** A slot number is slab index * SLAB_SLOTS + page index in the slab. */
const SLAB_SLOTS = 1 << 16;

/**
 * Host memory of materialised frames: each frame's bytes are a 4096-byte view into a large slab
 * (an ArrayBuffer of up to 4096 pages). One ArrayBuffer per frame cost ~5 us each, allocation and
 * the garbage collector's accounting of external memory (a 512 GiB guest's p2m alone is 262144
 * frames); a view into a slab costs a small fraction of that.
 *
 * A slot is reused only after the view handed out for it has been garbage collected: a caller
 * still holding a freed frame's bytes (a stale foreign mapping) keeps seeing that frame's last
 * contents, never another frame's, as when every frame had its own buffer. Slots come back zeroed.
 */
class PageSlabs {
  private readonly slabs: ArrayBuffer[] = [];
  private readonly slabIndex = new Map<ArrayBuffer, number>();
  /** Pages of the newest slab handed out so far. */
  private used = 0;
  private readonly reusable: number[] = [];
  private readonly collected = new FinalizationRegistry<number>((slot) => {
    this.view(slot).fill(0);
    this.reusable.push(slot);
  });

  /** Slots whose old view was collected and that wait for reuse. */
  get reusableSlots(): number {
    return this.reusable.length;
  }

  /** A zero-filled page of its own. */
  take(): Uint8Array {
    const slot = this.reusable.pop();
    if (slot !== undefined) return this.view(slot);
    let last = this.slabs[this.slabs.length - 1];
    if (last === undefined || this.used === last.byteLength / PAGE_SIZE) {
      const pages = last === undefined ? SLAB_MIN_PAGES : Math.min(SLAB_MAX_PAGES, (2 * last.byteLength) / PAGE_SIZE);
      last = new ArrayBuffer(pages * PAGE_SIZE);
      this.slabIndex.set(last, this.slabs.length);
      this.slabs.push(last);
      this.used = 0;
    }
    return new Uint8Array(last, PAGE_SIZE * this.used++, PAGE_SIZE);
  }

  /** Gives back the page of a frame whose bytes were dropped; its slot is reused once `page` is collected. */
  release(page: Uint8Array): void {
    const slab = this.slabIndex.get(page.buffer as ArrayBuffer)!;
    this.collected.register(page, slab * SLAB_SLOTS + page.byteOffset / PAGE_SIZE);
  }

  private view(slot: number): Uint8Array {
    const slab = this.slabs[Math.floor(slot / SLAB_SLOTS)]!;
    return new Uint8Array(slab, (slot % SLAB_SLOTS) * PAGE_SIZE, PAGE_SIZE);
  }

  /** Host bytes of every slab. */
  get bytes(): number {
    let n = 0;
    for (const s of this.slabs) n += s.byteLength;
    return n;
  }
}

function frameHex(mfn: number): string {
  return Number.isInteger(mfn) && mfn >= 0 ? `0x${mfn.toString(16)}` : String(mfn);
}

/** Deterministic bytes of a stamped page: each 32-bit word mixes the stamp with its index. */
export function fillFromStamp(page: Uint8Array, stamp: number): void {
  if (stamp === STAMP_ZERO) {
    page.fill(0);
    return;
  }
  const words = new Uint32Array(page.buffer, page.byteOffset, PAGE_SIZE / 4);
  let x = stamp >>> 0;
  for (let i = 0; i < words.length; i++) {
    // xorshift32 seeded by the stamp: cheap, and different stamps give different pages.
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
}

export interface MachineOptions {
  /** `max_page`: frames in the machine (the highest mfn + 1). */
  readonly maxPage: number;
  /** Where ownership changes are told (only while it has listeners: allocation is a hot path). */
  readonly events?: EventBus;
}

export class Machine {
  readonly maxPage: number;
  private readonly chunks: (FrameChunk | undefined)[];
  private readonly pageSlabs = new PageSlabs();
  /** Frames at or above this mfn have never been allocated. */
  private highWater = 0;
  /** Frames freed after use, reused first (a stack). */
  private freed: Uint32Array = new Uint32Array(1024);
  private freedCount = 0;
  private used = 0;
  private readonly events: EventBus | undefined;
  /** The page cache (see PAGE_CACHE_SIZE): entry `mfn & PAGE_CACHE_MASK` holds `mfn`'s bytes, or its key is NaN (equal to no mfn). */
  private readonly pageCacheKeys = new Float64Array(PAGE_CACHE_SIZE).fill(NaN);
  private readonly pageCachePages: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(PAGE_CACHE_SIZE).fill(undefined);

  constructor(options: MachineOptions) {
    const { maxPage } = options;
    this.events = options.events;
    if (!Number.isSafeInteger(maxPage) || maxPage < 1 || maxPage > 2 ** 40) {
      throw new RangeError(`max_page ${maxPage} is not a frame count in [1, 2^40]`);
    }
    this.maxPage = maxPage;
    this.chunks = new Array<FrameChunk | undefined>(Math.ceil(maxPage / CHUNK));
  }

  /**
   * The chunk holding `mfn`, or undefined when none exists (then the frame is free, its m2p
   * invalid, its info 0 and its stamp STAMP_ZERO). `(mfn / CHUNK) | 0` is exact below 2^47, and
   * the sign test keeps negative and NaN frame numbers from aliasing chunk 0.
   */
  private chunkOf(mfn: number): FrameChunk | undefined {
    return mfn >= 0 ? this.chunks[(mfn / CHUNK) | 0] : undefined;
  }

  /** The chunk holding `mfn`, made if needed; throws for a frame outside the machine. */
  private writableChunk(mfn: number): FrameChunk {
    const c = mfn < this.maxPage ? this.chunkOf(mfn) : undefined;
    if (c !== undefined) return c;
    if (!this.isValidMfn(mfn)) throw new RangeError(`machine: mfn ${frameHex(mfn)} outside [0, 0x${this.maxPage.toString(16)})`);
    const made = new FrameChunk(((mfn / CHUNK) | 0) * CHUNK);
    this.chunks[(mfn / CHUNK) | 0] = made;
    return made;
  }

  private infoOf(mfn: number): number {
    const info = this.chunkOf(mfn)?.info;
    return info === undefined ? 0 : info[mfn & SLOT_MASK]!;
  }

  private setInfo(mfn: number, value: number): void {
    const c = this.writableChunk(mfn);
    if (c.info === undefined) {
      if (value === 0) return;
      c.info = new Uint8Array(CHUNK);
    }
    c.info[mfn & SLOT_MASK] = value;
  }

  /** Frames owned by somebody. */
  get usedFrames(): number {
    return this.used;
  }

  get freeFrames(): number {
    return this.maxPage - this.used;
  }

  isValidMfn(mfn: number): boolean {
    return Number.isInteger(mfn) && mfn >= 0 && mfn < this.maxPage;
  }

  /** Owner domid of a frame, or undefined when free. */
  ownerOf(mfn: number): number | undefined {
    const c = this.chunkOf(mfn);
    const code = c === undefined ? OWNER_FREE : c.owner[mfn & SLOT_MASK]!;
    return code === OWNER_FREE ? undefined : code - 1;
  }

  /**
   * Takes one free frame below `limit` (a frame count; Xen clamps allocations for 32-bit guests),
   * zeroed, owned by `domid`. Returns undefined when no such frame is free.
   */
  allocFrame(domid: number, limit = this.maxPage, xenHeap = false): number | undefined {
    let mfn = this.takeFreed(limit);
    if (mfn === undefined) {
      if (!(this.highWater < Math.min(limit, this.maxPage))) return undefined;
      mfn = this.highWater++;
    }
    this.claim(mfn, domid);
    if (xenHeap) this.setXenHeap(mfn);
    // Traces follow ownership from these events; nothing is built while nobody listens.
    if (this.events !== undefined && this.events.active) this.claimed(mfn, 1, domid, xenHeap);
    return mfn;
  }

  /**
   * Removes from the reuse stack the frame `allocFrame` reuses first: the most recently freed one
   * below `limit`. Undefined when there is none.
   */
  private takeFreed(limit: number): number | undefined {
    for (let i = this.freedCount - 1; i >= 0; i--) {
      const mfn = this.freed[i]!;
      if (mfn < limit) {
        this.freed[i] = this.freed[this.freedCount - 1]!;
        this.freedCount--;
        return mfn;
      }
      if (limit >= this.maxPage) break;
    }
    return undefined;
  }

  /**
   * Populates in bulk: `count` calls of `allocFrame(domid, limit)`, each frame then given the m2p
   * entry of its pfn, with the same frames in the same order. Pfn i is `pfns + i` when `pfns` is a
   * number, else `pfns[i * pfnStride]` (taken modulo 2^32, as the m2p stores it). Frame i goes to
   * `mfns[at + i]`. Stops at the first frame it cannot get and returns how many it got.
   *
   * Reused frames are taken one by one, as `allocFrame` would; the rest are runs from the
   * high-water mark claimed with typed-array fills (issue 8: a 512 GiB build populates 2^27 pfns).
   * For use only while nobody listens to events: it tells no ownership changes, and Xen's m2p
   * events are the caller's.
   */
  allocFramesWithM2p(domid: number, count: number, limit: number, pfns: number | Uint32Array, pfnStride: number, mfns: Float64Array, at: number): number {
    if (this.events !== undefined && this.events.active) throw new Error('machine: allocFramesWithM2p while events are observed');
    const code = domid + 1;
    const consecutive = typeof pfns === 'number';
    const firstPfn = consecutive ? pfns : 0;
    const pfnList = consecutive ? undefined : pfns;
    let got = 0;
    while (got < count && this.freedCount > 0) {
      const mfn = this.takeFreed(limit);
      if (mfn === undefined) break; // none below the limit now, and the stack only shrinks
      const c = this.writableChunk(mfn);
      const slot = mfn & SLOT_MASK;
      c.owner[slot] = code;
      this.reset(c, slot);
      c.m2p[slot] = pfnList === undefined ? firstPfn + got : pfnList[got * pfnStride]!;
      this.used++;
      mfns[at + got] = mfn;
      got++;
    }
    const top = Math.min(limit, this.maxPage);
    while (got < count && this.highWater < top) {
      const first = this.highWater;
      const c = this.writableChunk(first);
      const slot0 = first & SLOT_MASK;
      const n = Math.min(count - got, top - first, CHUNK - slot0);
      const end = slot0 + n;
      c.owner.fill(code, slot0, end);
      // Frames never allocated may still carry a type or bytes somebody wrote while they were free.
      const info = c.info;
      if (info !== undefined) {
        for (let s = slot0; s < end; s++) if (info[s] !== 0) this.reset(c, s);
      }
      if (c.stamps !== undefined) c.stamps.fill(STAMP_ZERO, slot0, end);
      const m2p = c.m2p;
      const out = at + got - slot0;
      if (pfnList === undefined) {
        const pfnBase = firstPfn + got - slot0;
        for (let s = slot0; s < end; s++) {
          m2p[s] = pfnBase + s;
          mfns[out + s] = first - slot0 + s;
        }
      } else {
        let p = got * pfnStride;
        for (let s = slot0; s < end; s++, p += pfnStride) {
          m2p[s] = pfnList[p]!;
          mfns[out + s] = first - slot0 + s;
        }
      }
      this.highWater += n;
      this.used += n;
      got += n;
    }
    return got;
  }

  /**
   * Takes 2^order machine-contiguous, naturally aligned free frames below `limit`; returns the
   * first mfn or undefined. Order 0 is `allocFrame`.
   */
  allocExtent(domid: number, order: number, limit = this.maxPage): number | undefined {
    if (order === 0) return this.allocFrame(domid, limit);
    const count = 2 ** order;
    const top = Math.min(limit, this.maxPage);
    const aligned = Math.ceil(this.highWater / count) * count;
    if (aligned + count <= top) {
      for (let mfn = this.highWater; mfn < aligned; mfn++) this.pushFreed(mfn);
      this.highWater = aligned + count;
      for (let i = 0; i < count; i++) this.claim(aligned + i, domid);
      if (this.events !== undefined && this.events.active) this.claimed(aligned, count, domid, false);
      return aligned;
    }
    // Slow path: an aligned run among frames freed earlier.
    for (let base = 0; base + count <= Math.min(top, this.highWater); base += count) {
      let free = true;
      for (let i = 0; i < count && free; i++) free = this.ownerOf(base + i) === undefined;
      if (!free) continue;
      for (let i = 0; i < count; i++) this.removeFreed(base + i);
      for (let i = 0; i < count; i++) this.claim(base + i, domid);
      if (this.events !== undefined && this.events.active) this.claimed(base, count, domid, false);
      return base;
    }
    return undefined;
  }

  private claim(mfn: number, domid: number): void {
    const c = this.writableChunk(mfn);
    const i = mfn & SLOT_MASK;
    c.owner[i] = domid + 1;
    this.reset(c, i);
    this.used++;
  }

  /** Tells listeners that `domid` gained frames [mfn, mfn + count) (kept out of `claim`, the hot path). */
  private claimed(mfn: number, count: number, domid: number, xenHeap: boolean): void {
    for (let i = 0; i < count; i++) this.events!.emit({ type: 'ownership', domid, mfn: mfn + i, owned: true, ...(xenHeap ? { xenHeap } : {}) });
  }

  /** Tells listeners that `domid` lost `mfn`. */
  private disowned(mfn: number, domid: number, xenHeap: boolean): void {
    this.events!.emit({ type: 'ownership', domid, mfn, owned: false, ...(xenHeap ? { xenHeap } : {}) });
  }

  /** A frame's m2p, type, flags and contents as a fresh (or freed) frame has them. */
  private reset(c: FrameChunk, i: number): void {
    c.m2p[i] = INVALID_M2P;
    const info = c.info;
    if (info !== undefined && info[i] !== 0) {
      if (info[i]! & FLAG_BYTES) this.dropBytes(c, i);
      info[i] = 0;
    }
    if (c.stamps !== undefined) c.stamps[i] = STAMP_ZERO;
  }

  private pushFreed(mfn: number): void {
    if (this.freedCount === this.freed.length) {
      const grown = new Uint32Array(this.freed.length * 2);
      grown.set(this.freed);
      this.freed = grown;
    }
    this.freed[this.freedCount++] = mfn;
  }

  private removeFreed(mfn: number): void {
    const i = this.freed.subarray(0, this.freedCount).indexOf(mfn);
    if (i >= 0) {
      this.freed[i] = this.freed[this.freedCount - 1]!;
      this.freedCount--;
    }
  }

  /** Returns a frame to the free pool: no owner, invalid m2p, no type, contents dropped. */
  freeFrame(mfn: number): void {
    const c = this.chunkOf(mfn);
    const i = mfn & SLOT_MASK;
    if (c === undefined || c.owner[i] === OWNER_FREE) throw new Error(`machine: double free of mfn ${frameHex(mfn)}`);
    if (this.events !== undefined && this.events.active) this.disowned(mfn, c.owner[i]! - 1, this.isXenHeap(mfn));
    c.owner[i] = OWNER_FREE;
    this.reset(c, i);
    this.used--;
    this.pushFreed(mfn);
  }

  /** Moves a frame to another owner (grant transfer), keeping its contents. */
  reassign(mfn: number, domid: number): void {
    const c = this.chunkOf(mfn);
    const i = mfn & SLOT_MASK;
    if (c === undefined || c.owner[i] === OWNER_FREE) throw new Error(`machine: reassign of free mfn ${frameHex(mfn)}`);
    const from = c.owner[i]! - 1;
    c.owner[i] = domid + 1;
    if (this.events !== undefined && this.events.active && from !== domid) {
      const xenHeap = this.isXenHeap(mfn);
      this.disowned(mfn, from, xenHeap);
      this.events.emit({ type: 'ownership', domid, mfn, owned: true, ...(xenHeap ? { xenHeap } : {}) });
    }
  }

  m2pOf(mfn: number): number {
    const c = this.chunkOf(mfn);
    return c === undefined ? INVALID_M2P : c.m2p[mfn & SLOT_MASK]!;
  }

  setM2p(mfn: number, pfn: number): void {
    // Like the Uint32Array it is stored in, a pfn is taken modulo 2^32.
    const c = pfn === INVALID_M2P ? this.chunkOf(mfn) : this.writableChunk(mfn);
    if (c !== undefined) c.m2p[mfn & SLOT_MASK] = pfn;
  }

  pageType(mfn: number): PageType {
    return (this.infoOf(mfn) & TYPE_MASK) as PageType;
  }

  setPageType(mfn: number, type: PageType): void {
    this.setInfo(mfn, (this.infoOf(mfn) & ~TYPE_MASK) | type);
  }

  isPinned(mfn: number): boolean {
    return (this.infoOf(mfn) & FLAG_PINNED) !== 0;
  }

  setPinned(mfn: number, pinned: boolean): void {
    const v = this.infoOf(mfn);
    this.setInfo(mfn, pinned ? v | FLAG_PINNED : v & ~FLAG_PINNED);
  }

  isXenHeap(mfn: number): boolean {
    return (this.infoOf(mfn) & FLAG_XENHEAP) !== 0;
  }

  setXenHeap(mfn: number): void {
    this.setInfo(mfn, this.infoOf(mfn) | FLAG_XENHEAP);
  }

  /** Whether the frame holds real bytes (rather than a stamp). */
  isMaterialised(mfn: number): boolean {
    return (this.infoOf(mfn) & FLAG_BYTES) !== 0;
  }

  /**
   * The frame's bytes, materialising them from its stamp if needed. Callers outside xen.ts must
   * treat the result as read-only: stores go through Xen's choke point. The array is the frame's
   * own 4096 bytes, but a view into a larger buffer: use its `byteOffset` with `buffer`.
   */
  bytes(mfn: number): Uint8Array {
    // Only valid frames with bytes enter the cache, so a hit needs no other check (NaN never hits).
    const k = mfn & PAGE_CACHE_MASK;
    if (this.pageCacheKeys[k] === mfn) return this.pageCachePages[k]!;
    const c = this.chunkOf(mfn);
    const slot = mfn & SLOT_MASK;
    const page = c?.pages[slot >>> PAGE_GROUP_SHIFT]?.[slot & PAGE_GROUP_MASK];
    const bytes = page !== undefined && mfn < this.maxPage ? page : this.materialise(mfn);
    // A fraction reaches its integer neighbour's page above (as it always did) but is not cached:
    // dropBytes invalidates by the frame's own number.
    if (c !== undefined && c.base + slot === mfn) {
      this.pageCacheKeys[k] = mfn;
      this.pageCachePages[k] = bytes;
    }
    return bytes;
  }

  private materialise(mfn: number): Uint8Array {
    if (!this.isValidMfn(mfn)) throw new RangeError(`machine: mfn ${frameHex(mfn)} outside [0, 0x${this.maxPage.toString(16)})`);
    const c = this.writableChunk(mfn);
    const slot = mfn & SLOT_MASK;
    const page = this.pageSlabs.take();
    const stamp = c.stamps === undefined ? STAMP_ZERO : c.stamps[slot]!;
    if (stamp !== STAMP_ZERO) fillFromStamp(page, stamp);
    const group = (c.pages[slot >>> PAGE_GROUP_SHIFT] ??= new Array<Uint8Array | undefined>(PAGE_GROUP));
    group[slot & PAGE_GROUP_MASK] = page;
    if (c.info === undefined) c.info = new Uint8Array(CHUNK);
    c.info[slot]! |= FLAG_BYTES;
    return page;
  }

  /** Forgets a frame's materialised bytes (the caller clears FLAG_BYTES). */
  private dropBytes(c: FrameChunk, slot: number): void {
    const mfn = c.base + slot;
    const k = mfn & PAGE_CACHE_MASK;
    if (this.pageCacheKeys[k] === mfn) {
      this.pageCacheKeys[k] = NaN;
      this.pageCachePages[k] = undefined;
    }
    const group = c.pages[slot >>> PAGE_GROUP_SHIFT]!;
    const page = group[slot & PAGE_GROUP_MASK]!;
    group[slot & PAGE_GROUP_MASK] = undefined;
    this.pageSlabs.release(page);
  }

  /** The stamp of an unmaterialised frame, or undefined when the frame holds real bytes. */
  stampOf(mfn: number): number | undefined {
    const c = this.chunkOf(mfn);
    if (c === undefined) return STAMP_ZERO;
    const slot = mfn & SLOT_MASK;
    if (c.info !== undefined && c.info[slot]! & FLAG_BYTES) return undefined;
    return c.stamps === undefined ? STAMP_ZERO : c.stamps[slot]!;
  }

  /** Replaces the whole contents by a stamp (an ordinary data write nobody inspects byte-wise). */
  setStamp(mfn: number, stamp: number): void {
    const c = this.writableChunk(mfn);
    const slot = mfn & SLOT_MASK;
    const info = c.info;
    if (info !== undefined && info[slot]! & FLAG_BYTES) {
      this.dropBytes(c, slot);
      info[slot] = info[slot]! & ~FLAG_BYTES;
    }
    if (c.stamps === undefined) {
      if (stamp >>> 0 === STAMP_ZERO) return;
      c.stamps = new Uint32Array(CHUNK);
    }
    c.stamps[slot] = stamp >>> 0;
  }

  /** Frames in the reuse stack of the free pool (frames never allocated are not listed). */
  *freePool(): Generator<number> {
    for (let i = 0; i < this.freedCount; i++) yield this.freed[i]!;
  }

  /**
   * Page slots of dropped bytes that the garbage collector has released and that the next
   * materialised frames will reuse (slots still held by someone are not counted).
   */
  get reusablePageSlots(): number {
    return this.pageSlabs.reusableSlots;
  }

  /** Host memory used by metadata and materialised pages, in bytes (for scale notes). */
  get hostBytes(): number {
    let chunks = 0;
    for (const c of this.chunks) if (c) chunks += c.bytes;
    return chunks + this.pageSlabs.bytes + this.freed.byteLength;
  }

  // ----------------------------------------------------------------------------------------------
  // Bulk forms for the migration channel (issue 8, second round). Each keeps the chunk of the
  // previous frame (a batch's frames are mostly consecutive) and folds the integer check into the
  // chunk arithmetic: for 0 <= mfn < maxPage, `chunk * CHUNK + slot === mfn` exactly when mfn is
  // an integer, so a fraction never aliases a neighbouring frame.
  // ----------------------------------------------------------------------------------------------

  /** The `infos` value `ownedFramesInto` gives a frame that is not the owner's (no info byte has bit 7 set). */
  static readonly NOT_OWNED = 0xff;

  /**
   * For each of `count` frames, as domain `domid` owns them: its info byte
   * into `infos` (PageType | FLAG_*), or `Machine.NOT_OWNED` when the frame is free, another domain's, outside the
   * machine or not an integer; its m2p into `m2ps` (as `m2psInto`); and, for an owned frame, its
   * stamp into `stamps` with `materialised[i] = 0`, or `stamps[i] = 0` and `materialised[i] = 1`
   * when it holds real bytes (both 0 for a frame not owned).
   */
  ownedFramesInto(domid: number, mfns: ArrayLike<number>, count: number, infos: Uint8Array, m2ps: Uint32Array, stamps: Uint32Array, materialised: Uint8Array): void {
    const code = domid + 1;
    const max = this.maxPage;
    const chunks = this.chunks;
    let chunkIndex = -1;
    let c: FrameChunk | undefined;
    for (let i = 0; i < count; i++) {
      const mfn = mfns[i]!;
      let index = -1;
      let slot = 0;
      if (mfn >= 0 && mfn < max) {
        index = (mfn / CHUNK) | 0;
        slot = mfn & SLOT_MASK;
        if (index * CHUNK + slot !== mfn) index = -1;
      }
      if (index !== chunkIndex) {
        chunkIndex = index;
        c = index < 0 ? undefined : chunks[index];
      }
      if (c === undefined) {
        infos[i] = Machine.NOT_OWNED;
        m2ps[i] = INVALID_M2P;
        stamps[i] = STAMP_ZERO;
        materialised[i] = 0;
        continue;
      }
      m2ps[i] = c.m2p[slot]!;
      if (c.owner[slot] !== code) {
        infos[i] = Machine.NOT_OWNED;
        stamps[i] = STAMP_ZERO;
        materialised[i] = 0;
        continue;
      }
      const info = c.info === undefined ? 0 : c.info[slot]!;
      infos[i] = info;
      if (info & FLAG_BYTES) {
        stamps[i] = STAMP_ZERO;
        materialised[i] = 1;
      } else {
        stamps[i] = c.stamps === undefined ? STAMP_ZERO : c.stamps[slot]!;
        materialised[i] = 0;
      }
    }
  }

  /** For each of `count` frames its m2p into `out`: INVALID_M2P for a frame outside the machine or not an integer. */
  m2psInto(mfns: ArrayLike<number>, count: number, out: Uint32Array): void {
    const max = this.maxPage;
    const chunks = this.chunks;
    let chunkIndex = -1;
    let c: FrameChunk | undefined;
    for (let i = 0; i < count; i++) {
      const mfn = mfns[i]!;
      let index = -1;
      let slot = 0;
      if (mfn >= 0 && mfn < max) {
        index = (mfn / CHUNK) | 0;
        slot = mfn & SLOT_MASK;
        if (index * CHUNK + slot !== mfn) index = -1;
      }
      if (index !== chunkIndex) {
        chunkIndex = index;
        c = index < 0 ? undefined : chunks[index];
      }
      out[i] = c === undefined ? INVALID_M2P : c.m2p[slot]!;
    }
  }

  /** The index of the first of `count` frames not owned by `domid` (free, foreign, outside, not an integer), or `count`. */
  firstNotOwned(domid: number, mfns: ArrayLike<number>, count: number): number {
    const code = domid + 1;
    const max = this.maxPage;
    const chunks = this.chunks;
    let chunkIndex = -1;
    let c: FrameChunk | undefined;
    for (let i = 0; i < count; i++) {
      const mfn = mfns[i]!;
      if (!(mfn >= 0 && mfn < max)) return i;
      const index = (mfn / CHUNK) | 0;
      const slot = mfn & SLOT_MASK;
      if (index * CHUNK + slot !== mfn) return i;
      if (index !== chunkIndex) {
        chunkIndex = index;
        c = chunks[index];
      }
      if (c === undefined || c.owner[slot] !== code) return i;
    }
    return count;
  }

  /**
   * `setStamp(mfns[i], stamps[i])` for each of `count` frames in order, stopping before the first
   * frame outside the machine or not an integer (the caller decides what that means); returns how
   * many frames it stamped.
   */
  setStamps(mfns: ArrayLike<number>, stamps: ArrayLike<number>, count: number): number {
    const max = this.maxPage;
    let chunkIndex = -1;
    let c: FrameChunk | undefined;
    for (let i = 0; i < count; i++) {
      const mfn = mfns[i]!;
      if (!(mfn >= 0 && mfn < max)) return i;
      const index = (mfn / CHUNK) | 0;
      const slot = mfn & SLOT_MASK;
      if (index * CHUNK + slot !== mfn) return i;
      if (index !== chunkIndex) {
        chunkIndex = index;
        c = this.writableChunk(mfn);
      }
      const chunk = c!;
      const info = chunk.info;
      if (info !== undefined && info[slot]! & FLAG_BYTES) {
        this.dropBytes(chunk, slot);
        info[slot] = info[slot]! & ~FLAG_BYTES;
      }
      const stamp = stamps[i]! >>> 0;
      if (chunk.stamps === undefined) {
        if (stamp === STAMP_ZERO) continue;
        chunk.stamps = new Uint32Array(CHUNK);
      }
      chunk.stamps[slot] = stamp;
    }
    return count;
  }
}
