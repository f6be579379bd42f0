/**
 * The virtual linear p2m list, after Linux arch/x86/xen/p2m.c (`xen_rebuild_p2m_list`,
 * `xen_vmalloc_p2m_tree`, `get_phys_to_machine`, `__set_phys_to_machine`, `set_phys_to_machine`,
 * `alloc_p2m_pmd`, `xen_alloc_p2m_entry`; reference §2.3–2.5).
 *
 * The list is mapped at `p2m_vaddr`, a 1 GiB-aligned area of one gigabyte of VA (2^27 x86_64 /
 * 2^28 x86_32 elements: Linux sizes it for its 512 GiB hotplug limit) under the kernel's top-level
 * table, with 4 KiB PTEs only:
 * - a leaf that holds entries is a real page mapped writable;
 * - a leaf whose entries are all INVALID maps the shared read-only `p2m_missing` page, one whose
 *   entries are all 1:1 the shared `p2m_identity` page (also all INVALID, told apart by its frame);
 * - a PMD (x86_64: one per mid range; x86_32: two) whose whole mid range is missing or identity
 *   points at the shared `p2m_missing_pte` / `p2m_identity_pte` page, whose 512 PTEs all map the
 *   matching shared leaf.
 * Replacing a shared leaf or PTE page (growth) is a structural change, installed with one
 * mmu_update inside the generation bracket; an element store is one store at guest width.
 *
 * Where Linux differs: Linux copies the builder's list into fresh pages because the builder may
 * map it with superpages; the emulated builder uses 4 KiB pages, so its frames become the leaves
 * (the tools cannot tell). Linux treats the space beyond the initial list as identity and then
 * writes INVALID over its extra-memory regions; the emulated guest has no E820 holes above RAM, so
 * that space is missing (INVALID) unless `identityRanges` makes parts of it 1:1.
 */

import {
  INVALID_P2M_ENTRY,
  PAGE_SIZE,
  identityFrame,
  pfnToMfnEntry,
  type GuestAbi,
} from '../abi/index.js';
import { GuestConfigError, GuestKernelBug, hex } from './errors.js';
import { PTE_KERNEL, PTE_KERNEL_RO } from './kernel-mm.js';
import { PageUse } from './page-state.js';
import type { PvGuest } from './guest.js';
import type { Operation } from './steps.js';

/** `leafPfn` / `ptePfn` value: the shared missing page. */
export const SHARED_MISSING = -1;
/** `leafPfn` / `ptePfn` value: the shared identity page. */
export const SHARED_IDENTITY = -2;

/** Linux's vmalloc base on x86_64 (no KASLR): 1 GiB aligned. */
export const P2M_VADDR_X86_64 = 0xffffc90000000000n;
/** x86_32: the 1 GiB below the kernel's own gigabyte (L3 slot 2). */
export const P2M_VADDR_X86_32 = 0x80000000n;
/** VA the area spans (one gigabyte: one PMD table). */
const AREA_BYTES = 1 << 30;
/** PTEs per PTE page: a PMD maps 512 leaf pages. */
const LEAVES_PER_PMD = 512;

const PAGE = BigInt(PAGE_SIZE);

/** A pfn range [start, end) that is 1:1 (MMIO), as an E820 hole makes it. */
export interface PfnRange {
  readonly start: number;
  readonly end: number;
}

/** What boot knows about the builder's initial list. */
export interface InitialList {
  /** VIRTUAL address of the builder's list (`start_info.mfn_list`). */
  readonly va: bigint;
  /** `start_info.nr_pages`: its entries. */
  readonly nrPages: number;
  /** Pfn of the frame holding the list's leaf `i` is `firstPfn + i`. */
  readonly firstPfn: number;
}

export class P2mList {
  readonly abi: GuestAbi;
  readonly base: bigint;
  /** Elements the area holds (Linux's `xen_max_p2m_pfn` once the area exists). */
  readonly areaPfns: number;
  /** Elements per leaf page: 512 / 1024. */
  readonly fpp: number;
  /** Leaves per mid page of the tree: also fpp. */
  readonly pmdsPerMid: number;
  /** Per leaf: the pfn of its page, or SHARED_MISSING / SHARED_IDENTITY. */
  readonly leafPfn: Int32Array;
  /** The pfns of the real leaf pages, the same as the non-negative `leafPfn` values. */
  private readonly leafPages = new Set<number>();
  /** Per PMD of the area: the pfn of its PTE page, or SHARED_MISSING / SHARED_IDENTITY. */
  readonly ptePfn: Int32Array;
  missingPfn = -1;
  identityPfn = -1;
  missingPtePfn = -1;
  identityPtePfn = -1;
  /** The area's PMD table (L2). */
  pmdTablePfn = -1;
  /** Where elements are read: the builder's list until the area is built, then `base`. */
  private readVa: bigint;
  readonly width: 4 | 8;
  private readonly invalid: bigint;
  built = false;

  constructor(
    readonly g: PvGuest,
    initial: InitialList,
    readonly identityRanges: readonly PfnRange[],
  ) {
    this.abi = g.abi;
    this.width = this.abi.wordSize;
    this.base = this.abi.wordSize === 8 ? P2M_VADDR_X86_64 : P2M_VADDR_X86_32;
    this.areaPfns = AREA_BYTES / this.width;
    this.fpp = PAGE_SIZE / this.width;
    this.pmdsPerMid = this.fpp / LEAVES_PER_PMD;
    this.leafPfn = new Int32Array(this.areaPfns / this.fpp).fill(SHARED_MISSING);
    this.ptePfn = new Int32Array(AREA_BYTES / (PAGE_SIZE * LEAVES_PER_PMD)).fill(SHARED_MISSING);
    this.readVa = initial.va;
    this.invalid = INVALID_P2M_ENTRY(this.abi);
    if (initial.nrPages > this.areaPfns) {
      throw new GuestConfigError(`nr_pages ${hex(initial.nrPages)} exceeds the p2m area's ${hex(this.areaPfns)} entries`, 'memoryPages');
    }
    for (const r of identityRanges) {
      if (!Number.isInteger(r.start) || !Number.isInteger(r.end) || r.start >= r.end || r.start < initial.nrPages || r.end > this.areaPfns) {
        throw new GuestConfigError(
          `identity range [${hex(r.start)}, ${hex(r.end)}) must be non-empty, above nr_pages ${hex(initial.nrPages)} and below ${hex(this.areaPfns)}`,
          'identityRanges',
        );
      }
    }
  }

  /** Index of `pfn`'s leaf. */
  leafIndex(pfn: number): number {
    return Math.floor(pfn / this.fpp);
  }

  /** VIRTUAL address of element `pfn`. */
  elementVa(pfn: number): bigint {
    return this.base + BigInt(pfn * this.width);
  }

  /** VIRTUAL address of leaf `leaf`'s page in the area. */
  leafVa(leaf: number): bigint {
    return this.base + BigInt(leaf) * PAGE;
  }

  private pmdVa(pmd: number): bigint {
    return this.base + BigInt(pmd) * PAGE * BigInt(LEAVES_PER_PMD);
  }

  /** Whether the page in `pfn` is one of the list's real leaves. */
  isLeafPage(pfn: number): boolean {
    return this.leafPages.has(pfn);
  }

  /** Records that leaf `leaf` is now the page in `pfn` (or a shared one). */
  private setLeaf(leaf: number, pfn: number): void {
    const old = this.leafPfn[leaf]!;
    if (old >= 0) this.leafPages.delete(old);
    if (pfn >= 0) this.leafPages.add(pfn);
    this.leafPfn[leaf] = pfn;
  }

  isIdentityPfn(pfn: number): boolean {
    return this.identityRanges.some((r) => pfn >= r.start && pfn < r.end);
  }

  // ----------------------------------------------------------------------------------------------
  // Elements
  // ----------------------------------------------------------------------------------------------

  /** `get_phys_to_machine`: the element as the guest reads it (identity leaves give IDENTITY_FRAME). */
  read(pfn: number): bigint {
    if (pfn < 0 || pfn >= this.areaPfns) return this.invalid;
    if (this.built) {
      const kind = this.leafPfn[this.leafIndex(pfn)]!;
      if (kind === SHARED_MISSING) return this.invalid;
      if (kind === SHARED_IDENTITY) return identityFrame(this.abi, BigInt(pfn));
    }
    const { xen, dom } = this.g.binding;
    const v = xen.guestLoadWord(dom, this.readVa + BigInt(pfn * this.width), this.width);
    if (v === undefined) throw new GuestKernelBug('load of a p2m element', -14n, pfn);
    return v;
  }

  /**
   * `read` of `count` consecutive elements from `first` as one guest load (they must lie in one
   * page of the list, and `read` must load them: not built yet, or real leaves); undefined when
   * that does not hold, for the caller to read one by one.
   */
  loadElements(first: number, count: number): Uint8Array | undefined {
    if (first < 0 || first + count > this.areaPfns || this.leafIndex(first) !== this.leafIndex(first + count - 1)) return undefined;
    if (this.built && this.leafPfn[this.leafIndex(first)]! < 0) return undefined;
    const { xen, dom } = this.g.binding;
    return xen.guestLoad(dom, this.readVa + BigInt(first * this.width), count * this.width);
  }

  /** `pfn_to_mfn`: the element without marker bits (INVALID stays INVALID). */
  mfn(pfn: number): bigint {
    return pfnToMfnEntry(this.abi, this.read(pfn));
  }

  /**
   * One element store (`xen_safe_write_ulong`): a single store at guest width. The
   * `torn-element-write` guest makes it two half-width stores, low half first.
   */
  *storeElement(pfn: number, value: bigint, label: string): Operation {
    const { xen, dom } = this.g.binding;
    const va = this.elementVa(pfn);
    if (this.g.fault === 'torn-element-write') {
      const half = this.width / 2;
      const bits = BigInt(half * 8);
      const mask = (1n << bits) - 1n;
      for (const [at, part, which] of [[0n, value & mask, 'low'], [BigInt(half), value >> bits, 'high']] as const) {
        const rc = half === 4 ? xen.guestStoreWord(dom, va + at, part, 4) : xen.guestStore(dom, va + at, halfBytes(part, half));
        if (rc !== 0) throw new GuestKernelBug(`${which} half of the p2m element store`, BigInt(rc), pfn);
        yield `${label} (${which} half)`;
      }
      return;
    }
    const rc = xen.guestStoreWord(dom, va, value, this.width);
    if (rc !== 0) throw new GuestKernelBug('p2m element store', BigInt(rc), pfn);
    yield label;
  }

  /**
   * `set_phys_to_machine(pfn, value)`: a store into the element when its leaf is a real page;
   * nothing when a shared leaf already says so; otherwise grows the p2m first
   * (`xen_alloc_p2m_entry`). False when `pfn` lies beyond the area and `value` is not INVALID.
   */
  *set(pfn: number, value: bigint, label: string): Operation<boolean> {
    if (pfn < 0 || pfn >= this.areaPfns) return value === this.invalid;
    const kind = this.leafPfn[this.leafIndex(pfn)]!;
    if (kind === SHARED_MISSING && value === this.invalid) return true;
    if (kind === SHARED_IDENTITY && value === identityFrame(this.abi, BigInt(pfn))) return true;
    if (kind < 0) yield* this.allocEntry(pfn);
    yield* this.storeElement(pfn, value, label);
    return true;
  }

  // ----------------------------------------------------------------------------------------------
  // Growth
  // ----------------------------------------------------------------------------------------------

  /** Contents of a shared PTE page: 512 read-only PTEs mapping one shared leaf. */
  private sharedPteContent(leafPfn: number): Uint8Array {
    const bytes = new Uint8Array(PAGE_SIZE);
    const view = new DataView(bytes.buffer);
    const pte = (this.g.mfnOf(leafPfn) << 12n) | PTE_KERNEL_RO;
    for (let i = 0; i < LEAVES_PER_PMD; i++) view.setBigUint64(i * 8, pte, true);
    return bytes;
  }

  /** Contents of a new leaf: all INVALID (`p2m_init`), or 1:1 values from `firstPfn` (`p2m_init_identity`). */
  private leafContent(identityFrom: number | undefined): Uint8Array {
    const bytes = new Uint8Array(PAGE_SIZE);
    if (identityFrom === undefined) return bytes.fill(0xff);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < this.fpp; i++) {
      const v = identityFrame(this.abi, BigInt(identityFrom + i));
      if (this.width === 8) view.setBigUint64(i * 8, v, true);
      else view.setUint32(i * 4, Number(v), true);
    }
    return bytes;
  }

  /** A new kernel page holding `content` (written through the direct map, one store). */
  private *newDataPage(content: Uint8Array, what: string): Operation<number> {
    const pfn = this.g.allocKernelPage(what);
    const va = yield* this.g.mm.pageVa(pfn);
    const { xen, dom } = this.g.binding;
    const rc = xen.guestStore(dom, va, content);
    if (rc !== 0) throw new GuestKernelBug(`store initialising ${what}`, BigInt(rc), pfn);
    yield `init ${what} pfn ${hex(pfn)}`;
    return pfn;
  }

  /**
   * `alloc_p2m_pmd`: the PMDs of `pfn`'s mid range that point at a shared PTE page each get a
   * private copy of it (pinned), installed inside the generation bracket.
   */
  private *allocPmds(pfn: number): Operation {
    const firstPmd = Math.floor(this.leafIndex(pfn) / this.fpp) * this.pmdsPerMid;
    for (let p = firstPmd; p < firstPmd + this.pmdsPerMid; p++) {
      const shared = this.ptePfn[p]!;
      if (shared >= 0) continue;
      const leaf = shared === SHARED_MISSING ? this.missingPfn : this.identityPfn;
      const pte = yield* this.g.mm.newTablePage(1, this.sharedPteContent(leaf), `p2m PTE page for PMD ${p}`);
      yield* this.g.generationBracket(
        this.g.mm.setEntry(this.pmdTablePfn, p, (this.g.mfnOf(pte) << 12n) | PTE_KERNEL, `set_pmd ${p} of the p2m list to pfn ${hex(pte)}`),
      );
      this.ptePfn[p] = pte;
      this.g.mm.setTableAt(1, this.pmdVa(p), pte);
    }
  }

  /**
   * `xen_alloc_p2m_entry(pfn)`: a private PTE page if the PMD is shared, a mid page in the tree if
   * its top slot is missing, a real leaf in place of a shared one (bracketed, then recorded in the
   * mid page), and max_pfn raised when the p2m grew past it.
   */
  *allocEntry(pfn: number): Operation {
    const leaf = this.leafIndex(pfn);
    if (this.ptePfn[Math.floor(leaf / LEAVES_PER_PMD)]! < 0) yield* this.allocPmds(pfn);
    const tree = this.g.tree;
    const inTree = tree !== undefined && pfn < tree.maxPfn;
    if (inTree) yield* tree.ensureMid(pfn);
    const kind = this.leafPfn[leaf]!;
    if (kind < 0) {
      const first = leaf * this.fpp;
      const page = yield* this.newDataPage(this.leafContent(kind === SHARED_IDENTITY ? first : undefined), `p2m leaf ${leaf}`);
      const mfn = this.g.mfnOf(page);
      const pmd = Math.floor(leaf / LEAVES_PER_PMD);
      yield* this.g.generationBracket(
        this.g.mm.setEntry(this.ptePfn[pmd]!, leaf % LEAVES_PER_PMD, (mfn << 12n) | PTE_KERNEL, `set_pte of p2m leaf ${leaf} to pfn ${hex(page)}`),
      );
      this.setLeaf(leaf, page);
      if (inTree && this.g.fault !== 'stale-mid-page') yield* tree.setMidEntry(pfn, mfn);
    }
    if (pfn >= this.g.lastPfn) yield* this.g.raiseMaxPfn(pfn);
  }

  /** Remaps leaf `leaf` to the page in `pfn` (a tree relayout): one PTE write, bracketed as a structural change. */
  *remapLeaf(leaf: number, pfn: number): Operation {
    const pmd = Math.floor(leaf / LEAVES_PER_PMD);
    yield* this.g.generationBracket(
      this.g.mm.setEntry(this.ptePfn[pmd]!, leaf % LEAVES_PER_PMD, (this.g.mfnOf(pfn) << 12n) | PTE_KERNEL, `remap p2m leaf ${leaf} to pfn ${hex(pfn)}`),
    );
    this.setLeaf(leaf, pfn);
  }

  // ----------------------------------------------------------------------------------------------
  // Boot
  // ----------------------------------------------------------------------------------------------

  /**
   * `xen_build_dynamic_phys_to_machine` + `set_phys_range_identity` on the builder's list: the
   * entries after nr_pages up to its last leaf's end become INVALID (or 1:1), one store each.
   */
  *padInitialList(initial: InitialList): Operation {
    const end = Math.ceil(initial.nrPages / this.fpp) * this.fpp;
    const { xen, dom } = this.g.binding;
    for (let pfn = initial.nrPages; pfn < end; pfn++) {
      const v = this.isIdentityPfn(pfn) ? identityFrame(this.abi, BigInt(pfn)) : this.invalid;
      const rc = xen.guestStoreWord(dom, initial.va + BigInt(pfn * this.width), v, this.width);
      if (rc !== 0) throw new GuestKernelBug('store padding the initial p2m list', BigInt(rc), pfn);
      yield `pad initial p2m[${hex(pfn)}]`;
    }
  }

  /** What leaf `leaf` holds at boot: a builder frame (its pfn), shared missing/identity, or 'mixed'. */
  private bootLeafKind(leaf: number, initial: InitialList): number | 'mixed' {
    const first = leaf * this.fpp;
    if (first < initial.nrPages) {
      // The builder populated every pfn below nr_pages: the first entry is a frame (P2M_TYPE_PFN).
      return initial.firstPfn + leaf;
    }
    let identity = 0;
    for (const r of this.identityRanges) identity += Math.max(0, Math.min(r.end, first + this.fpp) - Math.max(r.start, first));
    if (identity === 0) return SHARED_MISSING;
    if (identity === this.fpp) return SHARED_IDENTITY;
    return 'mixed';
  }

  /** Whether every leaf of the mid range starting at `firstLeaf` is SHARED_MISSING at boot (what bootLeafKind gives each). */
  private allMissing(firstLeaf: number, initial: InitialList): boolean {
    const start = firstLeaf * this.fpp;
    const end = start + this.fpp * this.fpp;
    return start >= initial.nrPages && !this.identityRanges.some((r) => r.start < end && r.end > start);
  }

  /**
   * `xen_vmalloc_p2m_tree` / `xen_rebuild_p2m_list`: the shared pages, then the area PMD by PMD —
   * a whole mid range that is missing or identity gets the shared PTE page, anything else real PTE
   * pages mapping the builder's frames, shared leaves and new partial leaves.
   */
  *build(initial: InitialList): Operation {
    const g = this.g;
    this.missingPfn = yield* this.newDataPage(this.leafContent(undefined), 'p2m_missing');
    this.identityPfn = yield* this.newDataPage(this.leafContent(undefined), 'p2m_identity');
    this.missingPtePfn = yield* g.mm.newTablePage(1, this.sharedPteContent(this.missingPfn), 'p2m_missing_pte');
    this.identityPtePfn = yield* g.mm.newTablePage(1, this.sharedPteContent(this.identityPfn), 'p2m_identity_pte');
    this.pmdTablePfn = yield* g.mm.ensureTable(2, this.base);

    const leaves = this.leafPfn.length;
    for (let mid = 0; mid < leaves / this.fpp; mid++) {
      const firstLeaf = mid * this.fpp;
      const firstPmd = mid * this.pmdsPerMid;
      // Most of the gigabyte lies above the builder's list, clear of 1:1 ranges: all missing.
      const kinds: (number | 'mixed')[] = this.allMissing(firstLeaf, initial) ? [SHARED_MISSING] : [];
      if (kinds.length === 0) for (let l = firstLeaf; l < firstLeaf + this.fpp; l++) kinds.push(this.bootLeafKind(l, initial));
      const uniform = kinds.every((k) => k === kinds[0]) && (kinds[0] === SHARED_MISSING || kinds[0] === SHARED_IDENTITY);
      if (uniform) {
        const shared = kinds[0] as number;
        const ptePage = shared === SHARED_MISSING ? this.missingPtePfn : this.identityPtePfn;
        for (let p = firstPmd; p < firstPmd + this.pmdsPerMid; p++) {
          yield* g.mm.setEntry(this.pmdTablePfn, p, (g.mfnOf(ptePage) << 12n) | PTE_KERNEL, `set_pmd ${p} of the p2m list to the shared ${shared === SHARED_MISSING ? 'missing' : 'identity'} PTE page`);
          this.ptePfn[p] = shared;
          g.mm.setTableAt(1, this.pmdVa(p), ptePage);
        }
        continue;
      }
      for (let i = 0; i < this.fpp; i++) {
        const k = kinds[i]!;
        const leaf = firstLeaf + i;
        if (k === 'mixed') {
          const content = new Uint8Array(PAGE_SIZE).fill(0xff);
          const view = new DataView(content.buffer);
          for (let e = 0; e < this.fpp; e++) {
            const pfn = leaf * this.fpp + e;
            if (!this.isIdentityPfn(pfn)) continue;
            const v = identityFrame(this.abi, BigInt(pfn));
            if (this.width === 8) view.setBigUint64(e * 8, v, true);
            else view.setUint32(e * 4, Number(v), true);
          }
          this.setLeaf(leaf, yield* this.newDataPage(content, `p2m leaf ${leaf}`));
        } else {
          this.setLeaf(leaf, k);
          if (k >= 0) g.pages.setUse(k, PageUse.Kernel);
        }
      }
      for (let p = firstPmd; p < firstPmd + this.pmdsPerMid; p++) {
        const content = new Uint8Array(PAGE_SIZE);
        const view = new DataView(content.buffer);
        // The 512 `pfn_to_mfn` reads of one PTE page happen between two steps: read them a list
        // page at a time (one load each) rather than one guest load per entry.
        const mfns = new P2mBatchReader(this);
        for (let e = 0; e < LEAVES_PER_PMD; e++) {
          const k = this.leafPfn[p * LEAVES_PER_PMD + e]!;
          const page = k >= 0 ? k : k === SHARED_MISSING ? this.missingPfn : this.identityPfn;
          view.setBigUint64(e * 8, (mfns.mfnOf(page) << 12n) | (k >= 0 ? PTE_KERNEL : PTE_KERNEL_RO), true);
        }
        const pte = yield* g.mm.newTablePage(1, content, `p2m PTE page for PMD ${p}`);
        yield* g.mm.setEntry(this.pmdTablePfn, p, (g.mfnOf(pte) << 12n) | PTE_KERNEL, `set_pmd ${p} of the p2m list to pfn ${hex(pte)}`);
        this.ptePfn[p] = pte;
        g.mm.setTableAt(1, this.pmdVa(p), pte);
      }
    }
    this.readVa = this.base;
    this.built = true;
  }

  /** The pfn of the page mapped as leaf `leaf` (the shared pages for shared leaves). */
  leafPagePfn(leaf: number): number {
    const k = this.leafPfn[leaf]!;
    return k >= 0 ? k : k === SHARED_MISSING ? this.missingPfn : this.identityPfn;
  }
}

/**
 * The guest's `pfn_to_mfn` (PvGuest.mfnOf) for many pfns inside one step: the list page holding
 * a pfn's element is loaded once and serves every pfn in it. Same values and errors as mfnOf.
 */
class P2mBatchReader {
  private first = -1;
  private bytes: Uint8Array | undefined;
  private view: DataView | undefined;

  constructor(private readonly list: P2mList) {}

  mfnOf(pfn: number): bigint {
    const list = this.list;
    if (this.bytes === undefined || pfn < this.first || pfn >= this.first + list.fpp) {
      const first = pfn - (pfn % list.fpp);
      this.bytes = list.loadElements(first, list.fpp);
      if (this.bytes === undefined) return list.g.mfnOf(pfn);
      this.first = first;
      this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    }
    const at = (pfn - this.first) * list.width;
    const entry = list.width === 8 ? this.view!.getBigUint64(at, true) : BigInt(this.view!.getUint32(at, true));
    const mfn = pfnToMfnEntry(list.abi, entry);
    if (mfn === INVALID_P2M_ENTRY(list.abi)) throw new GuestKernelBug('pfn_to_mfn of an unbacked pfn', -22n, pfn);
    return mfn;
  }
}

function halfBytes(value: bigint, half: number): Uint8Array {
  const bytes = new Uint8Array(half);
  for (let i = 0; i < half; i++) bytes[i] = Number((value >> BigInt(8 * i)) & 0xffn);
  return bytes;
}
