/**
 * The 3-level p2m tree the tools read through `pfn_to_mfn_frame_list_list` (reference §2.2, §2.7),
 * after Linux arch/x86/xen/p2m.c: `xen_build_mfn_list_list` (the fll page `p2m_top_mfn`, the
 * `p2m_mid_missing_mfn` page, mid pages on demand, rebuilt on resume because every mfn changed),
 * the mid-level part of `xen_alloc_p2m_entry` (a new mid page installed in the top page, the new
 * leaf's mfn stored in its mid page after the generation bracket), and, for the legacy-tree
 * personality, a relayout onto a completely new tree (new leaves, mid pages and fll), published by
 * one store of the new fll mfn.
 *
 * The tree holds mfns only; its leaves are the very frames the linear list maps (one set of leaf
 * frames, reference §2.7). Pointers to mid pages (`p2m_top_mfn_p`) are kernel-private: pfns here.
 * Filling a page that nobody can see yet is one store of the whole page (a memcpy); entries of
 * published pages are single word stores.
 */

import { PAGE_SIZE } from '../abi/index.js';
import { GuestKernelBug, hex } from './errors.js';
import type { PvGuest } from './guest.js';
import type { Operation } from './steps.js';

const NO_MID = -1;

export class P2mTree {
  /** The fll page (`p2m_top_mfn`). */
  fllPfn = -1;
  /** `p2m_mid_missing_mfn`: every entry the mfn of p2m_missing. */
  midMissingPfn = -1;
  /** `p2m_top_mfn_p`: the mid page per top slot, or -1 for the missing one. */
  readonly midPfn: Int32Array;
  /** Entries per tree page. */
  readonly fpp: number;
  /** `MAX_P2M_PFN`: pfns one top page reaches. */
  readonly maxPfn: number;
  private readonly width: 4 | 8;

  constructor(private readonly g: PvGuest) {
    this.width = g.abi.wordSize;
    this.fpp = PAGE_SIZE / this.width;
    this.maxPfn = this.fpp ** 3;
    this.midPfn = new Int32Array(this.fpp).fill(NO_MID);
  }

  topIndex(pfn: number): number {
    return Math.floor(pfn / (this.fpp * this.fpp));
  }

  midIndex(pfn: number): number {
    return Math.floor(pfn / this.fpp) % this.fpp;
  }

  /** A page of `fpp` guest words, each `value(i)`. */
  private page(value: (i: number) => bigint): Uint8Array {
    const bytes = new Uint8Array(PAGE_SIZE);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < this.fpp; i++) {
      if (this.width === 8) view.setBigUint64(i * 8, value(i), true);
      else view.setUint32(i * 4, Number(value(i)), true);
    }
    return bytes;
  }

  /** Writes a whole tree page that nobody reads yet (or that the guest rewrites on resume): one store. */
  private *writePage(pfn: number, content: Uint8Array, label: string): Operation {
    const va = yield* this.g.mm.pageVa(pfn);
    const { xen, dom } = this.g.binding;
    const rc = xen.guestStore(dom, va, content);
    if (rc !== 0) throw new GuestKernelBug(`store of tree page ${label}`, BigInt(rc), pfn);
    yield label;
  }

  /** One word of a published tree page. */
  private *storeWord(pfn: number, index: number, value: bigint, label: string): Operation {
    const va = yield* this.g.mm.pageVa(pfn);
    const { xen, dom } = this.g.binding;
    const rc = xen.guestStoreWord(dom, va + BigInt(index * this.width), value, this.width);
    if (rc !== 0) throw new GuestKernelBug(`store into tree page ${label}`, BigInt(rc), pfn);
    yield label;
  }

  /** The mfn the tree names for leaf `leaf`: its frame, or p2m_missing / p2m_identity. */
  private leafMfn(leaf: number): bigint {
    return this.g.mfnOf(this.g.list.leafPagePfn(leaf));
  }

  /**
   * `xen_build_mfn_list_list`: at boot allocates the fll and mid-missing pages; on resume reuses
   * them. Each top slot whose mid range has a real PTE page gets a mid page holding its leaves'
   * mfns; the others name the mid-missing page. Every page is written whole.
   */
  *build(initial: boolean): Operation {
    const g = this.g;
    const list = g.list;
    if (initial || this.fllPfn < 0) {
      this.midMissingPfn = g.allocKernelPage('p2m_mid_missing_mfn');
      this.fllPfn = g.allocKernelPage('p2m_top_mfn');
    }
    const missingMfn = g.mfnOf(list.missingPfn);
    yield* this.writePage(this.midMissingPfn, this.page(() => missingMfn), `fill p2m_mid_missing_mfn pfn ${hex(this.midMissingPfn)}`);
    const midMissingMfn = g.mfnOf(this.midMissingPfn);
    const reach = Math.min(list.areaPfns, this.maxPfn);
    const top: bigint[] = [];
    for (let t = 0; t < this.fpp; t++) {
      const first = t * this.fpp * this.fpp;
      const pmd = Math.floor(first / list.fpp / 512);
      if (first >= reach || list.ptePfn[pmd]! < 0) {
        top.push(midMissingMfn);
        continue;
      }
      if (this.midPfn[t]! < 0) this.midPfn[t] = g.allocKernelPage(`p2m mid page ${t}`);
      const firstLeaf = t * this.fpp;
      const mid = this.midPfn[t]!;
      yield* this.writePage(mid, this.page((i) => this.leafMfn(firstLeaf + i)), `fill p2m mid page ${t} pfn ${hex(mid)}`);
      top.push(g.mfnOf(mid));
    }
    yield* this.writePage(this.fllPfn, this.page((t) => top[t]!), `fill p2m_top_mfn pfn ${hex(this.fllPfn)}`);
  }

  /** Growth: the top slot of `pfn` gets a new mid page (all entries p2m_missing) if it had none. */
  *ensureMid(pfn: number): Operation {
    const t = this.topIndex(pfn);
    if (this.midPfn[t]! >= 0) return;
    const g = this.g;
    const mid = g.allocKernelPage(`p2m mid page ${t}`);
    const missingMfn = g.mfnOf(g.list.missingPfn);
    yield* this.writePage(mid, this.page(() => missingMfn), `init p2m mid page ${t} pfn ${hex(mid)}`);
    // cmpxchg(&p2m_top_mfn[topidx], missing, mid): one word store on one vCPU.
    yield* this.storeWord(this.fllPfn, t, g.mfnOf(mid), `p2m_top_mfn[${t}] = mid page pfn ${hex(mid)}`);
    this.midPfn[t] = mid;
  }

  /** `mid_mfn[p2m_mid_index(pfn)] = virt_to_mfn(p2m)`: records a new leaf in its mid page. */
  *setMidEntry(pfn: number, leafMfn: bigint): Operation {
    const t = this.topIndex(pfn);
    const mid = this.midPfn[t]!;
    if (mid < 0) throw new GuestKernelBug(`mid page for top slot ${t} missing when recording a leaf`, -22n, pfn);
    yield* this.storeWord(mid, this.midIndex(pfn), leafMfn, `p2m mid ${t}[${this.midIndex(pfn)}] = leaf mfn ${hex(leafMfn)}`);
  }

  /**
   * legacy-tree: moves the p2m onto a completely new tree. Each real leaf is copied into a new page
   * (one store) and the kernel's own mapping of it moved there; then new mid pages, a new
   * mid-missing page and a new fll are written, the new fll mfn is published with one store, and
   * the old pages are freed (they become ordinary memory the guest will reuse).
   */
  *relayout(): Operation<{ oldFll: number; newFll: number }> {
    const g = this.g;
    const list = g.list;
    const { xen, dom } = g.binding;
    const old: number[] = [this.fllPfn, this.midMissingPfn];
    for (let leaf = 0; leaf < list.leafPfn.length; leaf++) {
      const from = list.leafPfn[leaf]!;
      if (from < 0) continue;
      const bytes = xen.guestLoad(dom, list.leafVa(leaf), PAGE_SIZE);
      if (!bytes) throw new GuestKernelBug(`load of p2m leaf ${leaf}`, -14n, from);
      const to = g.allocKernelPage(`p2m leaf ${leaf} (relayout)`);
      const va = yield* g.mm.pageVa(to);
      const rc = xen.guestStore(dom, va, bytes);
      if (rc !== 0) throw new GuestKernelBug(`store copying p2m leaf ${leaf}`, BigInt(rc), to);
      yield `copy p2m leaf ${leaf} from pfn ${hex(from)} to pfn ${hex(to)}`;
      yield* list.remapLeaf(leaf, to);
      old.push(from);
    }
    for (let t = 0; t < this.fpp; t++) {
      if (this.midPfn[t]! >= 0) old.push(this.midPfn[t]!);
      this.midPfn[t] = NO_MID;
    }
    const oldFll = this.fllPfn;
    yield* this.build(true);
    yield* g.publishFll();
    for (const pfn of old) g.freeKernelPage(pfn);
    return { oldFll, newFll: this.fllPfn };
  }
}
