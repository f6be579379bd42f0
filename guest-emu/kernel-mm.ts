/**
 * The guest kernel's own page tables, after Linux arch/x86/xen/mmu_pv.c: every change goes through
 * Xen, as pinned PV page tables require. `set_pte`/`set_pmd`/`set_pud`/`set_pgd` become one
 * `mmu_update` (MMU_NORMAL_PT_UPDATE at the MACHINE address of the entry, `xen_set_pte`,
 * `xen_set_pmd_hyper`); kernel mappings of single pages use `update_va_mapping` (as the balloon
 * driver and `set_fixmap` do); a new PTE page is zeroed while it is still an ordinary page, then
 * pinned as an L1 (`xen_alloc_ptpage` + `MMUEXT_PIN_L1_TABLE`) before an upper entry points at it;
 * upper-level tables are validated by Xen when first linked.
 *
 * Kernel virtual memory:
 * - the direct map of RAM (`__va(pfn)`): x86_64 at 0xffff888000000000 (Linux's PAGE_OFFSET with
 *   4-level paging), x86_32 at the kernel's base (the bootstrap mapping is its first part) up to
 *   lowmem's end; pfns above lowmem are highmem, reached through a kmap slot. Linux maps all of
 *   lowmem at boot; here a pfn's direct-map PTE (and the PTE page holding it) is created when the
 *   kernel first touches the page, so that huge guests boot in time. What the tools can observe,
 *   the p2m and the page-table frames' types, is the same;
 * - fixmap slots at the top of the builder's bootstrap mapping (its padding pages, which the guest
 *   never uses otherwise): shared_info (`FIX_PARAVIRT_BOOTMAP`), two kmap slots (one to fill new
 *   page-table pages while they are still writable, one for highmem data), the grant frames;
 * - the linear p2m list's area (p2m-list.ts), whose PTE pages this file creates on its behalf.
 *
 * Bookkeeping is by pfn only (kernel-private, like Linux's page-table pages reached through the
 * direct map), so it stays valid when the guest resumes on other frames after a restore.
 */

import {
  MMUEXT_PIN_L1_TABLE,
  PAGE_SIZE,
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_RW,
  canonicalVa,
  type GuestAbi,
} from '../abi/index.js';
import { STAMP_ZERO } from '../xen-emu/machine.js';
import { GuestConfigError, GuestKernelBug, hex } from './errors.js';
import { ptUpdate, type GuestBinding, type GuestHypercalls } from './hypercalls.js';
import { PageUse, type PageStates } from './page-state.js';
import type { Operation } from './steps.js';

/** PAGE_KERNEL: present, writable, accessed, dirty. */
export const PTE_KERNEL = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
/** PAGE_KERNEL_RO. */
export const PTE_KERNEL_RO = _PAGE_PRESENT | _PAGE_ACCESSED;
/** _KERNPG_TABLE: what an upper-level entry pointing at a kernel page table carries. */
const KERNPG_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
/** A PAE top-level (L3) entry: present only (Xen refuses RW and the rest there). */
const PAE_PGD = _PAGE_PRESENT;

/** Linux's x86_64 PAGE_OFFSET with 4-level paging: the direct map of all RAM. */
export const DIRECT_MAP_BASE_X86_64 = 0xffff888000000000n;
/** x86_32: guests may not use VAs from here up (HYPERVISOR_VIRT_START_PAE): lowmem ends below it. */
const X86_32_VA_END = 0xf5800000n;

/** Fixmap slots, counted down from the last page of the bootstrap mapping. */
export const FIX_SHARED_INFO = 0;
export const FIX_KMAP_TABLE = 1;
export const FIX_KMAP_DATA = 2;
export const FIX_GRANT_FRAME = 3;
/** Bootstrap pages taken for fixmap slots. */
export const FIXMAP_SLOTS = 8;

const PAGE = BigInt(PAGE_SIZE);

/** What the page-table code needs from the rest of the guest. */
export interface MmContext {
  readonly abi: GuestAbi;
  readonly binding: GuestBinding;
  readonly hc: GuestHypercalls;
  readonly pages: PageStates;
  /** `pfn_to_mfn`: the mfn backing a pfn, read from the guest's p2m (must be backed). */
  mfnOf(pfn: number): bigint;
  /** `__get_free_page(GFP_KERNEL)`; throws when lowmem is exhausted. */
  allocKernelPage(what: string): number;
}

export interface KernelMmLayout {
  /** Pfn of the top-level table (L4, or the PAE L3): `start_info.pt_base`'s page. */
  readonly rootPfn: number;
  /** VIRTUAL base of the bootstrap mapping (pfn 0). */
  readonly virtBase: bigint;
  /** Pfns [0, bootstrapPfns) are mapped at virtBase by the builder. */
  readonly bootstrapPfns: number;
  /** Pfns below this are lowmem (direct-mapped); the rest highmem (x86_32 only). */
  readonly lowmemPfns: number;
}

export class KernelMm {
  readonly levels: 3 | 4;
  /** Known tables by level (index 1..levels-1), keyed by the masked VA >> (12 + 9·level); -1: exists, pfn unknown. */
  private readonly tables: Map<number, number>[] = [];
  private readonly vaMask: bigint;
  private readonly kmapHolds: (number | undefined)[] = [];
  readonly directBase: bigint;
  /**
   * Bytes from `directBase` up to where `__va` would wrap or leave the canonical half (0 when the
   * base is not itself a VA as the guest writes it): below this, a direct-map VA is the base plus
   * the offset, with no masking, and its masked value is `directMasked` plus the offset, exactly.
   */
  private readonly directRoom: number;
  /** `directBase` masked to the VA width, as a number (exact: below 2^48). */
  private readonly directMasked: number;
  /** The fixmap slots' VAs, by slot (fixed by the layout). */
  private readonly fixmapVas: bigint[] = [];

  constructor(
    private readonly ctx: MmContext,
    readonly layout: KernelMmLayout,
  ) {
    this.levels = ctx.abi.pagingLevels;
    for (let l = 0; l < this.levels; l++) this.tables.push(new Map());
    this.vaMask = ctx.abi.wordSize === 8 ? 0x0000ffffffffffffn : 0xffffffffn;
    this.directBase = ctx.abi.wordSize === 8 ? DIRECT_MAP_BASE_X86_64 : layout.virtBase;
    this.directMasked = Number(this.directBase & this.vaMask);
    this.directRoom = this.directBase === this.toVa(this.directBase) ? Number(directSpaceEnd(ctx.abi.wordSize, this.directBase) - this.directBase) : 0;
    if (ctx.abi.wordSize === 4) {
      const room = Number((X86_32_VA_END - layout.virtBase) / PAGE);
      if (layout.lowmemPfns > room) {
        throw new GuestConfigError(`lowmemPfns ${hex(layout.lowmemPfns)} exceeds the ${hex(room)} pfns between 0x${layout.virtBase.toString(16)} and 0xf5800000`, 'lowmemPfns');
      }
    }
    if (layout.bootstrapPfns <= FIXMAP_SLOTS) throw new GuestConfigError(`bootstrap mapping of ${layout.bootstrapPfns} pages has no room for ${FIXMAP_SLOTS} fixmap slots`, 'bootstrapPfns');
    for (let slot = 0; slot < FIXMAP_SLOTS; slot++) this.fixmapVas.push(this.toVa(layout.virtBase + BigInt(layout.bootstrapPfns - 1 - slot) * PAGE));
  }

  // ----------------------------------------------------------------------------------------------
  // Table geometry
  // ----------------------------------------------------------------------------------------------

  private masked(va: bigint): number {
    return Number(va & this.vaMask);
  }

  /** Key of the level-`level` table covering `va`. */
  private key(level: number, va: bigint): number {
    return Math.floor(this.masked(va) / 2 ** (12 + 9 * level));
  }

  /** Index of `va`'s entry in the level-`level` table. */
  entryIndex(level: number, va: bigint): number {
    const i = Math.floor(this.masked(va) / 2 ** (12 + 9 * (level - 1)));
    return level === 3 && this.levels === 3 ? i % 4 : i % 512;
  }

  /** Records a table the builder made (x86_32's kernel L2 under L3 slot 3, bootstrap L1s). */
  registerTable(level: number, va: bigint, pfn: number): void {
    this.tables[level]!.set(this.key(level, va), pfn);
  }

  /** The pfn of the level-`level` table covering `va`, if the kernel made or registered one (-1: exists, pfn unknown). */
  tableAt(level: number, va: bigint): number | undefined {
    if (level === this.levels) return this.layout.rootPfn;
    return this.tables[level]!.get(this.key(level, va));
  }

  /** MACHINE address of entry `index` of the table in `tablePfn`. */
  entryMaddr(tablePfn: number, index: number): bigint {
    return this.ctx.mfnOf(tablePfn) * PAGE + BigInt(index * 8);
  }

  /** `set_pte` / `set_pmd` / `set_pud` / `set_pgd` on a pinned table: one mmu_update. */
  *setEntry(tablePfn: number, index: number, value: bigint, label: string): Operation {
    const rc = this.ctx.hc.mmuUpdate([ptUpdate(this.entryMaddr(tablePfn, index), value)]);
    if (rc !== 0n) throw new GuestKernelBug(`mmu_update of entry ${index} of the table in pfn ${hex(tablePfn)} to ${hex(value)}`, rc, tablePfn);
    yield label;
  }

  /** The entry an upper table holds for a lower table in `pfn`. */
  private upperEntry(parentLevel: number, pfn: number): bigint {
    const flags = this.levels === 3 && parentLevel === 3 ? PAE_PGD : KERNPG_TABLE;
    return (this.ctx.mfnOf(pfn) << 12n) | flags;
  }

  /**
   * The level-`level` table covering `va`, made (with its parents) if missing: a zeroed page
   * linked into its parent with one mmu_update (an L1 is pinned first). Returns its pfn.
   */
  *ensureTable(level: number, va: bigint): Operation<number> {
    const known = this.tableAt(level, va);
    if (known !== undefined) return known;
    // A known parent (the usual case) without a generator for it.
    const parent = this.tableAt(level + 1, va) ?? (yield* this.ensureTable(level + 1, va));
    // The VA's hex, for two labels: one BigInt formatting instead of two.
    const vaHex = va.toString(16);
    if (parent < 0) throw new GuestKernelBug(`level-${level + 1} table for 0x${vaHex} has no known pfn`, -1n);
    const pfn = yield* this.newTablePage(level, undefined, `table L${level} for 0x${vaHex}`);
    yield* this.setEntry(parent, this.entryIndex(level + 1, va), this.upperEntry(level + 1, pfn), `link L${level} pfn ${hex(pfn)} for 0x${vaHex}`);
    this.tables[level]!.set(this.key(level, va), pfn);
    return pfn;
  }

  /** Records that the page in `pfn` is now the level-`level` table covering `va` (the caller replaced its parent entry). */
  setTableAt(level: number, va: bigint, pfn: number): void {
    this.tables[level]!.set(this.key(level, va), pfn);
  }

  /**
   * A new page-table page of `level`: a kernel page, taken out of the direct map if it was there
   * (a page table must not stay writable), filled through a kmap slot (zeros, or `content`, one
   * store), unmapped again, and pinned if it is an L1. Returns its pfn.
   */
  *newTablePage(level: number, content: Uint8Array | undefined, what: string): Operation<number> {
    const pfn = this.ctx.allocKernelPage(what);
    if (this.ctx.pages.isMapped(pfn)) yield* this.unmapDirect(pfn);
    yield* this.fillViaKmap(FIX_KMAP_TABLE, pfn, content, `fill new L${level} page pfn ${hex(pfn)} (${what})`);
    yield* this.kunmap(FIX_KMAP_TABLE);
    if (level === 1) {
      const rc = this.ctx.hc.mmuextOp(MMUEXT_PIN_L1_TABLE, this.ctx.mfnOf(pfn));
      if (rc !== 0n) throw new GuestKernelBug(`MMUEXT_PIN_L1_TABLE of pfn ${hex(pfn)}`, rc, pfn);
      yield `pin L1 pfn ${hex(pfn)}`;
    }
    return pfn;
  }

  // ----------------------------------------------------------------------------------------------
  // Fixmap and kmap slots
  // ----------------------------------------------------------------------------------------------

  /** VIRTUAL address of fixmap slot `slot`. */
  fixmapVa(slot: number): bigint {
    if (!Number.isInteger(slot) || slot < 0 || slot >= FIXMAP_SLOTS) throw new GuestConfigError(`fixmap slot ${slot} outside [0, ${FIXMAP_SLOTS})`, 'slot');
    return this.fixmapVas[slot]!;
  }

  /** The pfns the fixmap slots took over from the bootstrap mapping. */
  fixmapPfns(): number[] {
    const out: number[] = [];
    for (let s = 0; s < FIXMAP_SLOTS; s++) out.push(this.layout.bootstrapPfns - 1 - s);
    return out;
  }

  /** `set_fixmap`: maps machine frame `mfn` at a fixmap slot (one update_va_mapping). */
  *setFixmap(slot: number, mfn: bigint, writable: boolean, label: string): Operation {
    const rc = this.ctx.hc.updateVaMapping(this.fixmapVa(slot), (mfn << 12n) | (writable ? PTE_KERNEL : PTE_KERNEL_RO));
    if (rc !== 0n) throw new GuestKernelBug(`update_va_mapping of fixmap slot ${slot} to mfn ${hex(mfn)}`, rc);
    this.kmapHolds[slot] = undefined;
    yield label;
  }

  /** `clear_fixmap`. */
  *clearFixmap(slot: number, label: string): Operation {
    const rc = this.ctx.hc.updateVaMapping(this.fixmapVa(slot), 0n);
    if (rc !== 0n) throw new GuestKernelBug(`update_va_mapping clearing fixmap slot ${slot}`, rc);
    this.kmapHolds[slot] = undefined;
    yield label;
  }

  /** `kmap_atomic(pfn)` in `slot`: maps the page there unless it already is. Returns the VA. */
  *kmap(slot: number, pfn: number): Operation<bigint> {
    if (this.kmapHolds[slot] !== pfn) {
      yield* this.setFixmap(slot, this.ctx.mfnOf(pfn), true, `kmap pfn ${hex(pfn)} in slot ${slot}`);
      this.kmapHolds[slot] = pfn;
    }
    return this.fixmapVa(slot);
  }

  /** `kunmap_atomic`: clears the slot (if it maps anything). */
  *kunmap(slot: number): Operation {
    if (this.kmapHolds[slot] === undefined) return;
    yield* this.clearFixmap(slot, `kunmap slot ${slot}`);
  }

  private *fillViaKmap(slot: number, pfn: number, content: Uint8Array | undefined, label: string): Operation {
    const va = yield* this.kmap(slot, pfn);
    const { xen, dom } = this.ctx.binding;
    const rc = content ? xen.guestStore(dom, va, content) : xen.guestStorePage(dom, va, STAMP_ZERO);
    if (rc !== 0) throw new GuestKernelBug(`store filling pfn ${hex(pfn)} through kmap slot ${slot}`, BigInt(rc), pfn);
    yield label;
  }

  // ----------------------------------------------------------------------------------------------
  // The direct map
  // ----------------------------------------------------------------------------------------------

  isLowmem(pfn: number): boolean {
    return this.ctx.pages.isLowmem(pfn);
  }

  /** `__va(pfn)`: the direct-map address of a lowmem pfn. */
  directVa(pfn: number): bigint {
    if (!this.isLowmem(pfn)) throw new GuestKernelBug(`__va of highmem pfn ${hex(pfn)}`, -22n, pfn);
    // One BigInt addition where the sum needs no wrap (every real pfn); the general form otherwise.
    return this.directOffsetFits(pfn) ? this.directBase + BigInt(pfn * PAGE_SIZE) : this.toVa(this.directBase + BigInt(pfn) * PAGE);
  }

  /** Whether `pfn`'s direct-map offset lies within `directRoom` (so number arithmetic on it is exact). */
  private directOffsetFits(pfn: number): boolean {
    return Number.isInteger(pfn) && pfn >= 0 && pfn * PAGE_SIZE < this.directRoom;
  }

  /** `tableAt(level, __va(pfn))` for a lowmem pfn, keyed with numbers when the offset fits. */
  private directTableAt(level: number, pfn: number): number | undefined {
    if (!this.directOffsetFits(pfn) || level === this.levels) return this.tableAt(level, this.directVa(pfn));
    return this.tables[level]!.get(Math.floor((this.directMasked + pfn * PAGE_SIZE) / 2 ** (12 + 9 * level)));
  }

  /** Maps `mfn` writable at `__va(pfn)` (update_va_mapping), making the PTE page first if needed. */
  *mapDirect(pfn: number, mfn: bigint, label: string): Operation {
    const va = this.directVa(pfn);
    // No ensureTable generator when the PTE page exists (most calls).
    if (this.directTableAt(1, pfn) === undefined) yield* this.ensureTable(1, va);
    const rc = this.ctx.hc.updateVaMapping(va, (mfn << 12n) | PTE_KERNEL);
    if (rc !== 0n) throw new GuestKernelBug(`update_va_mapping of __va(pfn ${hex(pfn)}) to mfn ${hex(mfn)}`, rc, pfn);
    this.ctx.pages.setMapped(pfn, true);
    yield label;
  }

  /** Zaps `__va(pfn)`'s PTE (update_va_mapping with 0). */
  *unmapDirect(pfn: number, label = `unmap __va(pfn ${hex(pfn)})`): Operation {
    const rc = this.ctx.hc.updateVaMapping(this.directVa(pfn), 0n);
    if (rc !== 0n) throw new GuestKernelBug(`update_va_mapping clearing __va(pfn ${hex(pfn)})`, rc, pfn);
    this.ctx.pages.setMapped(pfn, false);
    yield label;
  }

  /**
   * An address through which the kernel can write `pfn`: its direct-map address (mapped on first
   * use), or for highmem the data kmap slot.
   */
  *pageVa(pfn: number): Operation<bigint> {
    if (!this.isLowmem(pfn)) return yield* this.kmap(FIX_KMAP_DATA, pfn);
    if (!this.ctx.pages.isMapped(pfn)) yield* this.mapDirect(pfn, this.ctx.mfnOf(pfn), `map __va(pfn ${hex(pfn)})`);
    return this.directVa(pfn);
  }

  /** `kmap_flush_unused` for one page: no kmap slot may still map `pfn` when its frame goes away. */
  *flushKmaps(pfn: number): Operation {
    if (this.kmapHolds[FIX_KMAP_DATA] === pfn) yield* this.kunmap(FIX_KMAP_DATA);
  }

  /** A VA as the guest writes it: canonical on x86_64. */
  toVa(va: bigint): bigint {
    return this.ctx.abi.wordSize === 8 ? canonicalVa(va & 0x0000ffffffffffffn) : va & 0xffffffffn;
  }

}

/**
 * Where a direct map at `base` stops being plain addition: the top of a 32-bit space, or of the
 * canonical half of the 64-bit space holding the base.
 */
function directSpaceEnd(wordSize: number, base: bigint): bigint {
  if (wordSize !== 8) return 1n << 32n;
  return base >= 1n << 63n ? 1n << 64n : 1n << 47n;
}

/** Marks the pfns backing fixmap slots as reserved (they are never used as memory). */
export function reserveFixmapPfns(mm: KernelMm, pages: PageStates): void {
  for (const pfn of mm.fixmapPfns()) pages.setUse(pfn, PageUse.Reserved);
}
