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

export class PageStates {
  private bytes: Uint8Array;
  /** Pfns [0, limit) may be tracked; beyond it everything is a hole. */
  private limit = 0;
  private readonly balloon = new Map<number, number>();
  /** The pfn ranges that are RAM (populated, ballooned or hotplugged), in the order they were added. */
  private readonly ram: { start: number; end: number }[] = [];
  private ramPfns = 0;
  /** Free pages per block of BLOCK pfns, as a Fenwick tree (1-based): random free picks in O(log n). */
  private freeTree: Int32Array;
  private freeTotal = 0;
  private balloonList: number[] = [];
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
    let block = first >> BLOCK_SHIFT;
    let delta = 0;
    for (let pfn = first; pfn < first + count; pfn++) {
      if (pfn >> BLOCK_SHIFT !== block) {
        if (delta !== 0) this.freeAdd(block, delta);
        block = pfn >> BLOCK_SHIFT;
        delta = 0;
      }
      const old = this.bytes[pfn]! & USE_MASK;
      if (old === use) continue;
      if (old === PageUse.Ballooned) this.balloonRemove(pfn);
      if (use === PageUse.Ballooned) this.balloonAdd(pfn);
      if (old === PageUse.Free) delta--;
      if (use === PageUse.Free) delta++;
      this.bytes[pfn] = (this.bytes[pfn]! & ~USE_MASK) | use;
    }
    if (delta !== 0) this.freeAdd(block, delta);
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
    return this.balloonList.length;
  }

  /** The i-th pfn of the balloon list (order: as appended, swap-removed). */
  balloonAt(i: number): number {
    const pfn = this.balloonList[i];
    if (pfn === undefined) throw new GuestStateError(`balloon index ${i} outside the ${this.balloonList.length} ballooned pfns`);
    return pfn;
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
    this.balloon.set(pfn, this.balloonList.length);
    this.balloonList.push(pfn);
  }

  private balloonRemove(pfn: number): void {
    const i = this.balloon.get(pfn)!;
    const last = this.balloonList.pop()!;
    if (last !== pfn) {
      this.balloonList[i] = last;
      this.balloon.set(last, i);
    }
    this.balloon.delete(pfn);
  }

  private grow(pfns: number): void {
    if (pfns <= this.limit) return;
    if (pfns > this.bytes.length) {
      let size = this.bytes.length;
      while (size < pfns) size *= 2;
      const bigger = new Uint8Array(size);
      bigger.set(this.bytes);
      this.bytes = bigger;
      // Rebuild the free counts over the larger range (rare: capacity doubles), in linear time.
      const tree = new Int32Array(size / BLOCK + 1);
      for (let pfn = 0; pfn < this.limit; pfn++) if ((this.bytes[pfn]! & USE_MASK) === PageUse.Free) tree[(pfn >> BLOCK_SHIFT) + 1]!++;
      for (let i = 1; i < tree.length; i++) {
        const parent = i + (i & -i);
        if (parent < tree.length) tree[parent]! += tree[i]!;
      }
      this.freeTree = tree;
    }
    this.limit = pfns;
  }
}
