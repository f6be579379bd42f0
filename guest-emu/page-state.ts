/**
 * What the guest kernel knows about each of its pfns: Linux's `struct page` flags and lists
 * reduced to one byte per pfn (free / in the balloon / kernel structure / reserved / granted /
 * holding a foreign mapping), plus whether the kernel's direct map currently maps it. Also the
 * kernel's page allocator (`__get_free_page`: next fit over free lowmem pfns) and the balloon list
 * (`balloon_append` / `balloon_retrieve`).
 *
 * This is kernel-private memory, which nobody outside the guest reads; it is kept in typed arrays
 * and holds pfns only (never mfns), so it stays valid when the guest resumes on other frames.
 */

import { GuestStateError, hex } from './errors.js';

export const enum PageUse {
  /** Not RAM: never populated, not in the balloon. */
  Hole = 0,
  /** Ordinary memory: free or holding data; the allocator and the workload may take it. */
  Free = 1,
  /** Ballooned out (or hotplugged and not yet populated): p2m INVALID, no frame. */
  Ballooned = 2,
  /** The builder's bootstrap area and initial structures; never reused. */
  Reserved = 3,
  /** Allocated to a kernel structure: p2m leaf, tree page, page table. */
  Kernel = 4,
  /** A ballooned pfn that holds a grant mapped from another domain (p2m FOREIGN_FRAME). */
  Foreign = 5,
  /** Granted to another domain (a frontend's shared page); not ballooned or exchanged meanwhile. */
  Granted = 6,
  /**
   * Taken by an operation in progress (a page being ballooned out or in, a region being
   * exchanged): nobody else may pick it, as the page allocator would not hand it out twice.
   */
  Transit = 7,
}

const USE_MASK = 0x0f;
/** The direct map has a present PTE for this pfn. */
const MAPPED = 0x80;
/** Pfns per block of the free-page counts (picking a random free page skips whole blocks). */
const BLOCK_SHIFT = 10;
const BLOCK = 1 << BLOCK_SHIFT;
/** A free slot of a PfnIndexTable (pfns are below 2^31 here: the p2m area holds at most 2^28). */
const EMPTY_SLOT = -1;
const MIN_TABLE_SLOTS = 64;

export class PageStates {
  private bytes: Uint8Array;
  /** Pfns [0, limit) may be tracked; beyond it everything is a hole. */
  private limit = 0;
  /** Ballooned pfn → its index in the balloon list. */
  private readonly balloonIndex = new PfnIndexTable();
  /** The pfn ranges that are RAM (populated, ballooned or hotplugged), in the order they were added. */
  private readonly ram: { start: number; end: number }[] = [];
  private ramPfns = 0;
  /** Free pages per block of BLOCK pfns, as a Fenwick tree (1-based): random free picks in O(log n). */
  private freeTree: Int32Array;
  private freeTotal = 0;
  /** The balloon list: its first `balloonCount` elements (capacity doubles as it fills). */
  private balloonList = new Int32Array(BLOCK);
  private balloonCount = 0;
  private allocCursor: number;

  constructor(
    initialPfns: number,
    /** The allocator's search starts here (the end of the reserved area). */
    private readonly allocFloor: number,
    /** Pfns below this are lowmem: the kernel allocator only hands out these. */
    private readonly lowmemPfns: number,
  ) {
    this.bytes = new Uint8Array(Math.max(BLOCK, Math.ceil(initialPfns / BLOCK) * BLOCK));
    this.freeTree = new Int32Array(this.bytes.length / BLOCK + 1);
    this.allocCursor = allocFloor;
  }

  /** One past the highest pfn ever given a state. */
  get end(): number {
    return this.limit;
  }

  use(pfn: number): PageUse {
    return pfn < this.limit ? ((this.bytes[pfn]! & USE_MASK) as PageUse) : PageUse.Hole;
  }

  isMapped(pfn: number): boolean {
    return pfn < this.limit && (this.bytes[pfn]! & MAPPED) !== 0;
  }

  isLowmem(pfn: number): boolean {
    return pfn < this.lowmemPfns;
  }

  setMapped(pfn: number, mapped: boolean): void {
    this.grow(pfn + 1);
    const b = this.bytes[pfn]!;
    this.bytes[pfn] = mapped ? b | MAPPED : b & ~MAPPED;
  }

  /** Sets the use of [first, first+count); keeps the mapped bit; keeps the balloon list and free counts in step. */
  setUse(first: number, use: PageUse, count = 1): void {
    this.grow(first + count);
    const bytes = this.bytes;
    const end = first + count;
    // Block by block, so that the free counts change once per block (boot sets millions of pfns).
    for (let start = first; start < end; ) {
      const block = start >> BLOCK_SHIFT;
      const stop = Math.min(end, (block + 1) * BLOCK);
      if (stop - start > 1 && use !== PageUse.Ballooned && this.fillUniform(start, stop, use)) {
        start = stop;
        continue;
      }
      let delta = 0;
      for (let pfn = start; pfn < stop; pfn++) {
        const b = bytes[pfn]!;
        const old = b & USE_MASK;
        if (old === use) continue;
        if (old === PageUse.Ballooned) this.balloonRemove(pfn);
        if (use === PageUse.Ballooned) this.balloonAdd(pfn);
        if (old === PageUse.Free) delta--;
        if (use === PageUse.Free) delta++;
        bytes[pfn] = (b & ~USE_MASK) | use;
      }
      if (delta !== 0) this.freeAdd(block, delta);
      start = stop;
    }
  }

  /**
   * `setUse` of [start, stop) inside one block when every byte there is the same unmapped,
   * non-ballooned use (a fresh range at boot): one fill. False, changing nothing, otherwise.
   */
  private fillUniform(start: number, stop: number, use: PageUse): boolean {
    const bytes = this.bytes;
    const old = bytes[start]!;
    if (old === PageUse.Ballooned || (old & ~USE_MASK) !== 0) return false;
    for (let pfn = start + 1; pfn < stop; pfn++) if (bytes[pfn] !== old) return false;
    if (old === use) return true;
    bytes.fill(use, start, stop);
    const delta = (use === PageUse.Free ? stop - start : 0) - (old === PageUse.Free ? stop - start : 0);
    if (delta !== 0) this.freeAdd(start >> BLOCK_SHIFT, delta);
    return true;
  }

  /** Declares pfns [first, first+count) RAM (boot memory, extra memory, a hotplugged block). */
  addRam(first: number, count: number): void {
    if (count <= 0) return;
    const last = this.ram[this.ram.length - 1];
    if (last && last.end === first) last.end += count;
    else this.ram.push({ start: first, end: first + count });
    this.ramPfns += count;
  }

  /** Pfns declared RAM. */
  get ramSize(): number {
    return this.ramPfns;
  }

  /** The i-th RAM pfn, i in [0, ramSize): lets random picks skip the holes between RAM ranges. */
  ramPfnAt(i: number): number {
    let left = i;
    for (const r of this.ram) {
      const n = r.end - r.start;
      if (left < n) return r.start + left;
      left -= n;
    }
    throw new GuestStateError(`RAM index ${i} outside the ${this.ramPfns} RAM pfns`);
  }

  /** Free pages (PageUse.Free). */
  get freeCount(): number {
    return this.freeTotal;
  }

  /** Free pages in the blocks wholly below lowmem's end (what a lowmem-only pick chooses among). */
  get freeLowmemCount(): number {
    return this.freePrefix(this.lowmemBlocks());
  }

  /** The k-th free pfn (k in [0, freeCount), or [0, freeLowmemCount) with `lowmemOnly`), in pfn order. */
  freeAt(k: number, lowmemOnly = false): number {
    const limit = lowmemOnly ? this.freeLowmemCount : this.freeTotal;
    if (!Number.isInteger(k) || k < 0 || k >= limit) throw new GuestStateError(`free page index ${k} outside the ${limit} free pages`);
    // Fenwick descent: the block holding the k-th free page, and the rank left inside it.
    const tree = this.freeTree;
    let block = 0;
    let left = k;
    for (let step = 1 << Math.floor(Math.log2(tree.length - 1)); step > 0; step >>= 1) {
      const next = block + step;
      if (next < tree.length && tree[next]! <= left) {
        block = next;
        left -= tree[next]!;
      }
    }
    for (let pfn = block * BLOCK; ; pfn++) {
      if ((this.bytes[pfn]! & USE_MASK) === PageUse.Free && left-- === 0) return pfn;
    }
  }

  private lowmemBlocks(): number {
    return Math.min(Math.floor(this.lowmemPfns / BLOCK), this.freeTree.length - 1);
  }

  /** Adds `delta` free pages to block `block`. */
  private freeAdd(block: number, delta: number): void {
    this.freeTotal += delta;
    for (let i = block + 1; i < this.freeTree.length; i += i & -i) this.freeTree[i]! += delta;
  }

  /** Free pages in blocks [0, blocks). */
  private freePrefix(blocks: number): number {
    let sum = 0;
    for (let i = blocks; i > 0; i -= i & -i) sum += this.freeTree[i]!;
    return sum;
  }

  /** Pfns in the balloon. */
  get balloonSize(): number {
    return this.balloonCount;
  }

  /** The i-th pfn of the balloon list (order: as appended, swap-removed). */
  balloonAt(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.balloonCount) throw new GuestStateError(`balloon index ${i} outside the ${this.balloonCount} ballooned pfns`);
    return this.balloonList[i]!;
  }

  /**
   * The kernel allocator: the next free lowmem pfn at or after the cursor (wrapping), now Kernel.
   * Undefined when no free lowmem page is left.
   */
  allocKernelPage(): number | undefined {
    const top = Math.min(this.limit, this.lowmemPfns);
    if (top <= this.allocFloor) return undefined;
    let pfn = this.allocCursor < top && this.allocCursor >= this.allocFloor ? this.allocCursor : this.allocFloor;
    for (let n = top - this.allocFloor; n > 0; n--) {
      if ((this.bytes[pfn]! & USE_MASK) === PageUse.Free) {
        this.setUse(pfn, PageUse.Kernel);
        this.allocCursor = pfn + 1;
        return pfn;
      }
      pfn = pfn + 1 < top ? pfn + 1 : this.allocFloor;
    }
    return undefined;
  }

  /** Returns a kernel page to the free pool. */
  freeKernelPage(pfn: number): void {
    if (this.use(pfn) !== PageUse.Kernel) throw new GuestStateError(`free of pfn ${hex(pfn)}, which is not a kernel page`);
    this.setUse(pfn, PageUse.Free);
  }

  private balloonAdd(pfn: number): void {
    if (this.balloonCount === this.balloonList.length) {
      const bigger = new Int32Array(this.balloonList.length * 2);
      bigger.set(this.balloonList);
      this.balloonList = bigger;
    }
    this.balloonIndex.set(pfn, this.balloonCount);
    this.balloonList[this.balloonCount++] = pfn;
  }

  /** Swap-removes `pfn` (which is Ballooned) from the balloon list. */
  private balloonRemove(pfn: number): void {
    const i = this.balloonIndex.get(pfn);
    const last = this.balloonList[--this.balloonCount]!;
    if (last !== pfn) {
      this.balloonList[i] = last;
      this.balloonIndex.set(last, i);
    }
    this.balloonIndex.delete(pfn);
  }

  private grow(pfns: number): void {
    if (pfns <= this.limit) return;
    if (pfns > this.bytes.length) {
      let size = this.bytes.length;
      while (size < pfns) size *= 2;
      const bigger = new Uint8Array(size);
      bigger.set(this.bytes);
      this.bytes = bigger;
      // The free counts over the larger range: each old block's count from the old tree's
      // prefix sums (the new blocks have none), then the tree built over them in linear time.
      const oldTree = this.freeTree;
      const tree = new Int32Array(size / BLOCK + 1);
      for (let block = 0, before = 0; block + 1 < oldTree.length; block++) {
        const upTo = this.freePrefix(block + 1);
        tree[block + 1] = upTo - before;
        before = upTo;
      }
      for (let i = 1; i < tree.length; i++) {
        const parent = i + (i & -i);
        if (parent < tree.length) tree[parent]! += tree[i]!;
      }
      this.freeTree = tree;
    }
    this.limit = pfns;
  }
}

/**
 * A pfn → non-negative integer map in two typed arrays (open addressing, linear probing,
 * backward-shift deletion): a million entries cost 16 MiB and no garbage, where a `Map` costs
 * about a microsecond per insert. Only as big as the entries need, unlike an array indexed by pfn.
 */
export class PfnIndexTable {
  /** Slot keys: a pfn, or EMPTY_SLOT. */
  private keys = new Int32Array(MIN_TABLE_SLOTS).fill(EMPTY_SLOT);
  private values = new Int32Array(MIN_TABLE_SLOTS);
  private mask = MIN_TABLE_SLOTS - 1;
  private count = 0;

  get size(): number {
    return this.count;
  }

  private home(pfn: number): number {
    return (Math.imul(pfn, 0x9e3779b1) >>> 0) & this.mask;
  }

  private slotOf(pfn: number): number {
    const keys = this.keys;
    for (let s = this.home(pfn); ; s = (s + 1) & this.mask) {
      const k = keys[s]!;
      if (k === pfn || k === EMPTY_SLOT) return s;
    }
  }

  /** The value of `pfn`, or -1 when it has none. */
  get(pfn: number): number {
    const s = this.slotOf(pfn);
    return this.keys[s] === pfn ? this.values[s]! : -1;
  }

  set(pfn: number, value: number): void {
    let s = this.slotOf(pfn);
    if (this.keys[s] !== pfn) {
      if ((this.count + 1) * 2 > this.keys.length) {
        this.rehash(this.keys.length * 2);
        s = this.slotOf(pfn);
      }
      this.keys[s] = pfn;
      this.count++;
    }
    this.values[s] = value;
  }

  delete(pfn: number): void {
    const keys = this.keys;
    const values = this.values;
    const mask = this.mask;
    let hole = this.slotOf(pfn);
    if (keys[hole] !== pfn) return;
    this.count--;
    // Backward shift: move later entries of the probe run into the hole when their home allows.
    for (let s = (hole + 1) & mask; keys[s] !== EMPTY_SLOT; s = (s + 1) & mask) {
      const home = this.home(keys[s]!);
      // The entry at s may move to `hole` unless its home lies cyclically in (hole, s].
      if (((s - home) & mask) >= ((s - hole) & mask)) {
        keys[hole] = keys[s]!;
        values[hole] = values[s]!;
        hole = s;
      }
    }
    keys[hole] = EMPTY_SLOT;
  }

  private rehash(slots: number): void {
    const oldKeys = this.keys;
    const oldValues = this.values;
    this.keys = new Int32Array(slots).fill(EMPTY_SLOT);
    this.values = new Int32Array(slots);
    this.mask = slots - 1;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i]!;
      if (k === EMPTY_SLOT) continue;
      const s = this.slotOf(k);
      this.keys[s] = k;
      this.values[s] = oldValues[i]!;
    }
  }
}
