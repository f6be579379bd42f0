/**
 * Xen's log-dirty bitmap of one domain: one bit per pfn, set when a store hits a frame whose m2p
 * entry names that pfn. The toolstack peeks and cleans it between live-migration rounds.
 *
 * Like Xen's log-dirty trie, the bitmap is made of leaves of one page (32768 pfns) that exist only
 * where something was marked: PV pfns are the guest's to choose (MMU_MACHPHYS_UPDATE may name a pfn
 * near 2^32), and a dense bitmap up to the highest pfn would cost 512 MiB for one such mark.
 */

/** Pfns one leaf page of Xen's log-dirty trie covers (PAGE_SIZE * 8). */
const LEAF_PFNS = 4096 * 8;
const LEAF_WORDS = LEAF_PFNS / 32;

export class LogDirty {
  private leaves: (Uint32Array | undefined)[] = [];
  private enabledFlag = false;

  get enabled(): boolean {
    return this.enabledFlag;
  }

  enable(): void {
    this.enabledFlag = true;
  }

  /** Disables and forgets every dirty bit. */
  disable(): void {
    this.enabledFlag = false;
    this.leaves = [];
  }

  /** Marks `pfn` dirty if logdirty is enabled. */
  mark(pfn: number): void {
    if (!this.enabledFlag) return;
    const l = Math.floor(pfn / LEAF_PFNS);
    let leaf = this.leaves[l];
    if (leaf === undefined) {
      leaf = new Uint32Array(LEAF_WORDS);
      this.leaves[l] = leaf;
    }
    const bit = pfn % LEAF_PFNS;
    leaf[bit >>> 5]! |= 1 << (bit & 31);
  }

  isDirty(pfn: number): boolean {
    const leaf = this.leaves[Math.floor(pfn / LEAF_PFNS)];
    const bit = pfn % LEAF_PFNS;
    return leaf !== undefined && (leaf[bit >>> 5]! & (1 << (bit & 31))) !== 0;
  }

  /** Pfns up to the end of the highest leaf that exists (a multiple of 32768). */
  get size(): number {
    return this.leaves.length * LEAF_PFNS;
  }

  /**
   * A copy of the bitmap covering pfns [0, pfns), without clearing (XEN_DOMCTL_SHADOW_OP_PEEK).
   * Like Xen, which copies whole bytes, bits up to the next multiple of 8 come along.
   */
  peek(pfns: number): Uint32Array {
    const out = new Uint32Array(Math.ceil(pfns / 32));
    const leaves = Math.min(this.leaves.length, Math.ceil(pfns / LEAF_PFNS));
    for (let l = 0; l < leaves; l++) {
      const leaf = this.leaves[l];
      if (leaf === undefined) continue;
      const at = l * LEAF_WORDS;
      out.set(leaf.subarray(0, Math.min(LEAF_WORDS, out.length - at)), at);
    }
    clearBeyond(out, Math.ceil(pfns / 8) * 8);
    return out;
  }

  /**
   * Like `peek`, then clears (XEN_DOMCTL_SHADOW_OP_CLEAN). Xen clears whole bitmap leaves (one
   * page, 32768 pfns, each) up to the one holding pfn `pfns - 1`; bits beyond stay dirty.
   */
  clean(pfns: number): Uint32Array {
    const out = this.peek(pfns);
    const leaves = Math.min(this.leaves.length, Math.ceil(pfns / LEAF_PFNS));
    for (let l = 0; l < leaves; l++) this.leaves[l]?.fill(0);
    return out;
  }

  /** Number of dirty pfns. */
  count(): number {
    let n = 0;
    for (const leaf of this.leaves) {
      if (leaf === undefined) continue;
      for (const w of leaf) {
        let x = w;
        while (x) {
          x &= x - 1;
          n++;
        }
      }
    }
    return n;
  }
}

function clearBeyond(bitmap: Uint32Array, pfns: number): void {
  const rem = pfns & 31;
  if (rem && bitmap.length) bitmap[bitmap.length - 1]! &= (1 << rem) - 1;
}
