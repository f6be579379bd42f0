/**
 * PV page-table validation, after Xen's xen/arch/x86/mm.c (`get_page_from_l1e` … `l4e`,
 * `promote_l1_table` … `l4_table`, `mod_l1_entry` … `l4_entry`, `new_guest_cr3`, the pin paths of
 * `do_mmuext_op`), xen/arch/x86/pv/mm.h (`adjust_guest_l*e`, the entry write) and pv/mm.c
 * (`map_guest_l1e`). mmu_update, mmuext_op and update_va_mapping share it.
 *
 * A frame's page type lives in the machine (`PageType` plus a pin bit). Xen also keeps a general
 * and a type reference count per frame; the emulator does not, and simplifies as follows:
 *
 * - A frame is a page table while it is pinned, is a base pointer, or is referenced from a validated
 *   table. Without counts the emulator assumes the tables form a tree: when the one reference it
 *   knows of goes away (unpin, a replaced L2–L4 entry, a base-pointer switch), the frame loses its
 *   type, and so do its children that are neither pinned nor base pointers. A table shared by
 *   several parents (e.g. user L3s mirrored in two L4s) may therefore lose its type too early.
 * - Xen also refuses to promote a frame that is still mapped writable somewhere. Seeing that needs
 *   the counts, so the emulator checks only the other order: a writable mapping of a frame that
 *   already is (or is being promoted to) a page table is refused.
 * - No linear (recursive) page tables, no MMIO: a non-RAM frame is refused as for a domain without
 *   I/O memory permission, also for a privileged domain. L1TF checks and preemption do not apply.
 * - XSM is Xen's dummy policy; a `privileged` domain is the control domain and may flush caches
 *   and use cache attributes in L1 entries. Each domain has one vCPU.
 * - Xen fills its own slots (x86_64 L4 slots 256–271; the PAE Xen L2's slots from 0xF5800000) with
 *   its private mappings when it validates a table. The emulator has none to give and clears them.
 * - The PAE "L3 below 4 GiB unless VMASST pae_extended_cr3" rule (-ERANGE) is not modelled.
 * - Which L2 is the PAE Xen L2 (the one in slot 3 of an L3) is known while its L3 is validated, and
 *   afterwards only for the current base L3 (the machine has no flag for it).
 *
 * Every write into a page-table frame goes through Xen's store choke point, so logdirty marks the
 * table's pfn as Xen's shadow-mode entry write does.
 */

import {
  EACCES,
  EBUSY,
  EINVAL,
  EPERM,
  HYPERVISOR_VIRT_START_PAE,
  PAGE_SIZE,
  PTE_FRAME_MASK,
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_GLOBAL,
  _PAGE_PAT,
  _PAGE_PCD,
  _PAGE_PRESENT,
  _PAGE_PSE,
  _PAGE_PWT,
  _PAGE_RW,
  _PAGE_USER,
  DOMID_IO,
  DOMID_SELF,
  DOMID_XEN,
} from '../abi/index.js';
import type { Domain } from './domain.js';
import { INVALID_M2P, PageType, STAMP_ZERO } from './machine.js';
import type { Writer, Xen } from './xen.js';

// ------------------------------------------------------------------------------------------------
// Entry bits, as Xen reads them (pte bit positions; Xen's 24-bit flag encoding folds bits 52–63
// into flag bits 12–23, which is why some of its masks look different).
// ------------------------------------------------------------------------------------------------

/** Xen's `_PAGE_GUEST_KERNEL` (flag bit 12 = pte bit 52): marks a PV64 kernel mapping. */
export const _PAGE_GUEST_KERNEL = 1n << 52n;
/** PAT, PCD, PWT: the cache-attribute bits of an L1 entry. */
const PAGE_CACHE_ATTRS = _PAGE_PAT | _PAGE_PCD | _PAGE_PWT;
/** `base_disallow_mask`: every bit but P, RW, US, A, D, the available bits and NX, i.e. PWT, PCD, PSE, G. */
const BASE_DISALLOW = _PAGE_PWT | _PAGE_PCD | _PAGE_PSE | _PAGE_GLOBAL;
/** `L1_DISALLOW_MASK` for a domain without cache-flush permission (release builds: `_PAGE_GNTTAB` is 0). */
const L1_DISALLOW = BASE_DISALLOW & ~_PAGE_GLOBAL;
/** `l3_disallow_mask` of a 32-bit PV domain (0xFFFFF198 in flag encoding): PWT, PCD, PS, G and bits 52–63. */
const L3_DISALLOW_PAE = 0x198n | (0xfffn << 52n);
/**
 * Bits `l1e_has_changed(old, new, ~FASTPATH_FLAG_WHITELIST)` compares: the frame plus P, RW, PWT,
 * PCD, PAT/PS. Xen's PDE whitelist is the same when linear page tables are configured (the default).
 */
const FASTPATH_COMPARE = PTE_FRAME_MASK | _PAGE_PRESENT | _PAGE_RW | _PAGE_PWT | _PAGE_PCD | _PAGE_PSE;
/** `PADDR_MASK >> PAGE_SHIFT`: the frame Xen treats as INVALID_MFN in an L1 entry (-EINVAL, not -EPERM). */
const L1_INVALID_FRAME = (1n << 40n) - 1n;

/** x86_64 L4 slots reserved for Xen (`ROOT_PAGETABLE_FIRST_XEN_SLOT`..`LAST`). */
export const XEN_L4_FIRST_SLOT = 256;
export const XEN_L4_LAST_SLOT = 271;
/** First Xen slot of the PAE Xen L2 (`COMPAT_L2_PAGETABLE_FIRST_XEN_SLOT` for the default 0xF5800000). */
export const PAE_XEN_L2_FIRST_SLOT = Number((HYPERVISOR_VIRT_START_PAE >> 21n) & 511n);

const ENTRIES = PAGE_SIZE / 8;
// The same bits as numbers, for walks and promotions that read entries as two 32-bit words.
const PRESENT_BIT = Number(_PAGE_PRESENT);
const RW_BIT = Number(_PAGE_RW);
const USER_BIT = Number(_PAGE_USER);
const PSE_BIT = Number(_PAGE_PSE);
const GLOBAL_BIT = Number(_PAGE_GLOBAL);
/** `_PAGE_GUEST_KERNEL` in the high word. */
const GUEST_KERNEL_HIGH_BIT = Number(_PAGE_GUEST_KERNEL >> 32n);
/** The L1 disallow masks and cache attributes lie in bits 3–8: the low word holds them whole. */
const L1_DISALLOW_LOW = Number(L1_DISALLOW);
const L1_DISALLOW_PRIVILEGED_LOW = Number(L1_DISALLOW & ~PAGE_CACHE_ATTRS);
const CACHE_ATTRS_LOW = Number(PAGE_CACHE_ATTRS);
const L1_INVALID_FRAME_NUMBER = Number(L1_INVALID_FRAME);
/** FASTPATH_COMPARE's halves, A and D (low word), for L1 updates on 32-bit halves. */
const FASTPATH_COMPARE_LOW = Number(FASTPATH_COMPARE & 0xffffffffn);
const FASTPATH_COMPARE_HIGH = Number(FASTPATH_COMPARE >> 32n);
const ACCESSED_DIRTY_LOW = Number(_PAGE_ACCESSED | _PAGE_DIRTY);
/** Values up to here convert to a Number exactly. */
const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);
/** From here to 2^64 - 1, a 64-bit value read as signed converts to a Number exactly. */
const TOP_SAFE_START = (1n << 64n) - (1n << 53n);
const U64_MAX = (1n << 64n) - 1n;
/** 2^47: the end of the lower canonical half. */
const LOWER_HALF_END = 1n << 47n;

// ------------------------------------------------------------------------------------------------
// Domains that own pages
// ------------------------------------------------------------------------------------------------

/** Xen's system domains a foreigndom can name: `dom_io` (DOMID_IO) and `dom_xen` (DOMID_XEN). */
export type SystemDomain = 'dom_io' | 'dom_xen';
/** What `get_pg_owner` gives: a domain, or a system domain. */
export type PageOwner = Domain | SystemDomain;

/**
 * Xen's `get_pg_owner(domid)`: DOMID_SELF is the caller; the caller's own numeric id is refused
 * ("cannot specify itself as foreign domain"); DOMID_IO / DOMID_XEN are the system domains.
 * Undefined means -ESRCH.
 */
export function getPgOwner(xen: Xen, caller: Domain, domid: number): PageOwner | undefined {
  if (domid === caller.domid) return undefined;
  if (domid === DOMID_SELF) return caller;
  if (domid === DOMID_IO) return 'dom_io';
  if (domid === DOMID_XEN) return 'dom_xen';
  return xen.domain(domid);
}

/** XSM dummy policy, `XSM_TARGET`: a domain may act on itself; the control domain on anyone. */
export function xsmTarget(src: Domain, target: PageOwner): number {
  return src === target || src.privileged ? 0 : -EPERM;
}

/** Whether `owner` is the domain that owns `mfn`. */
function owns(xen: Xen, owner: PageOwner, mfn: number): owner is Domain {
  return typeof owner !== 'string' && xen.machine.ownerOf(mfn) === owner.domid;
}

/** A guest-supplied frame number as an mfn of this machine, or -1 when it names none. */
export function toMfn(xen: Xen, frame: bigint): number {
  return frame >= 0n && frame < BigInt(xen.machine.maxPage) ? Number(frame) : -1;
}

/** `get_page_from_mfn(mfn, d)`: a valid frame owned by `d` (never by a system domain here). */
export function frameOwnedBy(xen: Xen, mfn: number, owner: PageOwner): owner is Domain {
  return mfn >= 0 && xen.machine.isValidMfn(mfn) && owns(xen, owner, mfn);
}

// ------------------------------------------------------------------------------------------------
// Reading and writing entries
// ------------------------------------------------------------------------------------------------

/** One 8-byte entry of a table frame. */
export function readEntry(xen: Xen, mfn: number, index: number): bigint {
  const page = xen.machine.bytes(mfn);
  const low = entryLowWord(page, index);
  const high = entryHighWord(page, index);
  return high === 0 ? BigInt(low) : (BigInt(high) << 32n) | BigInt(low);
}

/**
 * Bits 0–31 of 8-byte entry `index` of a table page (`byteOffset` further on: an unaligned
 * word). Hot walks read entries as two 32-bit numbers (this and `entryHighWord`) instead of a BigInt.
 */
export function entryLowWord(page: Uint8Array, index: number, byteOffset = 0): number {
  const at = index * 8 + byteOffset;
  return (page[at]! | (page[at + 1]! << 8) | (page[at + 2]! << 16) | (page[at + 3]! << 24)) >>> 0;
}

/** Bits 32–63 of 8-byte entry `index` of a table page (`byteOffset` further on: an unaligned word). */
export function entryHighWord(page: Uint8Array, index: number, byteOffset = 0): number {
  const at = index * 8 + 4 + byteOffset;
  return (page[at]! | (page[at + 1]! << 8) | (page[at + 2]! << 16) | (page[at + 3]! << 24)) >>> 0;
}

/** The index of the first entry at or after `from` whose present bit is set, or ENTRIES. */
function nextPresentEntry(page: Uint8Array, from: number): number {
  let i = from;
  while (i < ENTRIES && (page[i * 8]! & PRESENT_BIT) === 0) i++;
  return i;
}

/** The frame (entry bits 12–51) of an entry given as two 32-bit words. */
export function frameOfWords(low: number, high: number): number {
  return (high & 0xfffff) * 0x100000 + (low >>> 12);
}

function frameOf(entry: bigint): bigint {
  return (entry & PTE_FRAME_MASK) >> 12n;
}

function present(entry: bigint): boolean {
  return (entry & _PAGE_PRESENT) !== 0n;
}

function writerFor(caller: Domain): Writer {
  return { domid: caller.domid, by: 'xen' };
}

/** Xen's `update_intpte`: one 8-byte store; PRESERVE_AD keeps the A and D bits already there. */
function writeEntry(xen: Xen, caller: Domain, mfn: number, index: number, old: bigint, value: bigint, preserveAd: boolean): void {
  const v = preserveAd ? value | (old & (_PAGE_ACCESSED | _PAGE_DIRTY)) : value;
  xen.storeWord(writerFor(caller), mfn, index * 8, v, 8);
}

/** `paging_mark_dirty(d, mfn)`: marks the pfn the m2p gives for a frame `d` owns. No store. */
export function markDirty(xen: Xen, d: PageOwner, mfn: number): void {
  if (!owns(xen, d, mfn)) return;
  const pfn = xen.machine.m2pOf(mfn);
  if (pfn !== INVALID_M2P) d.logdirty.mark(pfn);
}

// ------------------------------------------------------------------------------------------------
// Xen's adjustments of guest entries (pv/mm.h): PV64 kernels run in ring 3, so Xen sets US itself.
// The guest sees the adjusted value in its table.
// ------------------------------------------------------------------------------------------------

export function adjustGuestL1e(e: bigint, d: Domain): bigint {
  if (!present(e) || d.isCompat) return e;
  let v = e;
  if ((v & _PAGE_USER) === 0n) v |= _PAGE_GUEST_KERNEL | _PAGE_USER;
  if ((v & _PAGE_GUEST_KERNEL) === 0n) v |= _PAGE_GLOBAL | _PAGE_USER;
  return v;
}

export function adjustGuestL2e(e: bigint, d: Domain): bigint {
  return present(e) && !d.isCompat ? e | _PAGE_USER : e;
}

export function adjustGuestL3e(e: bigint, d: Domain): bigint {
  return present(e) ? e | (d.isCompat ? _PAGE_USER | _PAGE_RW : _PAGE_USER) : e;
}

function unadjustGuestL3e(e: bigint, d: Domain): bigint {
  return d.isCompat && present(e) ? e & ~(_PAGE_USER | _PAGE_RW | _PAGE_ACCESSED) : e;
}

export function adjustGuestL4e(e: bigint, d: Domain): bigint {
  return present(e) ? e | _PAGE_ACCESSED | (d.isCompat ? 0n : _PAGE_USER) : e;
}

function l3DisallowMask(d: Domain): bigint {
  return d.isCompat ? L3_DISALLOW_PAE : BASE_DISALLOW;
}

/** `is_guest_l4_slot`: x86_64 guests own every L4 slot but 256–271; a compat L4 has only slot 0. */
export function isGuestL4Slot(d: Domain, slot: number): boolean {
  return d.isCompat ? slot === 0 : slot < XEN_L4_FIRST_SLOT || slot > XEN_L4_LAST_SLOT;
}

/** Whether `mfn` is a base pointer (kernel or user) of its owner `d`: those hold a type reference. */
export function isBasePointer(d: Domain, mfn: number): boolean {
  return mfn === d.baseptrMfn || (d.userBaseptrMfn !== 0 && mfn === d.userBaseptrMfn);
}

/** Whether `mfn` is the PAE Xen L2 of `d`'s current base L3 (the L2 in its slot 3). */
export function isPaeXenL2(xen: Xen, d: Domain, mfn: number): boolean {
  if (!d.isCompat || d.baseptrMfn < 0) return false;
  const e = readEntry(xen, d.baseptrMfn, 3);
  return present(e) && frameOf(e) === BigInt(mfn) && xen.machine.pageType(mfn) === PageType.L2;
}

// ------------------------------------------------------------------------------------------------
// Type acquisition and promotion (get_page_type / validate_page / promote_lN_table)
// ------------------------------------------------------------------------------------------------

/**
 * One type acquisition, possibly promoting a tree of frames. Types are committed to the machine
 * only when the whole acquisition succeeds; on failure nothing is typed, as after Xen's unwinding.
 */
class Promotion {
  /** Frames promoted in this acquisition, with their new type. */
  readonly pending = new Map<number, PageType>();
  /** Those of them promoted as a PAE Xen L2. */
  readonly paeXenL2 = new Set<number>();

  constructor(
    readonly xen: Xen,
    /** The tables' owner (Xen's `page_get_owner` of the frame being validated). */
    readonly d: Domain,
    /** Who asked (the writer of Xen's adjustments). */
    readonly caller: Domain,
  ) {}

  typeOf(mfn: number): PageType {
    return this.pending.get(mfn) ?? this.xen.machine.pageType(mfn);
  }

  commit(): void {
    for (const [mfn, type] of this.pending) this.xen.machine.setPageType(mfn, type);
  }
}

/**
 * `get_page_and_type_from_mfn(mfn, type, d)`: 0 when `mfn` is (or could be promoted to) a
 * validated table of `level` owned by the promotion's domain, else -errno.
 */
function getPageAndType(pr: Promotion, mfn: number, level: PageType, asPaeXenL2 = false): number {
  const { xen, d } = pr;
  const m = xen.machine;
  if (!frameOwnedBy(xen, mfn, d)) return -EINVAL;
  const current = pr.typeOf(mfn);
  if (current === level) {
    // A PAE Xen L2 is typed apart from ordinary L2s (PGT_pae_xen_l2): the two never mix, and the
    // Xen L2 may not be shared, so an already typed L2 never qualifies for slot 3.
    if (asPaeXenL2) return -EINVAL;
    if (level === PageType.L2 && (pr.paeXenL2.has(mfn) || (!pr.pending.has(mfn) && isPaeXenL2(xen, d, mfn)))) return -EINVAL;
    return 0;
  }
  // Another type, or a Xen heap page (shared with the guest as a permanently writable page).
  if (current !== PageType.None || m.isXenHeap(mfn)) return -EINVAL;
  pr.pending.set(mfn, level);
  if (asPaeXenL2) pr.paeXenL2.add(mfn);
  // "A page table is dirtied when its type count becomes non-zero" (validate_page).
  markDirty(xen, d, mfn);
  const rc = promoteTable(pr, mfn, level, asPaeXenL2);
  if (rc !== 0) {
    pr.pending.delete(mfn);
    pr.paeXenL2.delete(mfn);
  }
  return rc;
}

/**
 * `get_page_from_l1e(l1e, l1e_owner, pg_owner)` for a present entry given as its two 32-bit words:
 * 0 or -errno. The emulator has no MMIO, so the I/O branch always ends in refusal.
 */
function getPageFromL1eWords(xen: Xen, pr: Promotion | undefined, low: number, high: number, l1eOwner: Domain, pgOwner: PageOwner): number {
  if ((low & (l1eOwner.privileged ? L1_DISALLOW_PRIVILEGED_LOW : L1_DISALLOW_LOW)) !== 0) return -EINVAL;
  const frame = frameOfWords(low, high);
  if (frame >= xen.machine.maxPage) return frame === L1_INVALID_FRAME_NUMBER ? -EINVAL : -EPERM; // !iomem_access_permitted
  const mfn = frame;
  const real = xen.machine.ownerOf(mfn);
  if (typeof pgOwner === 'string' || real !== pgOwner.domid) {
    // A privileged pg_owner may pass on the right to map its target's pages (xsm_priv_mapping);
    // everyone else gets "could not pin": -EBUSY.
    if (real === undefined || pgOwner === l1eOwner || typeof pgOwner === 'string' || !pgOwner.privileged) return -EBUSY;
    if (!xen.domain(real)) return -EBUSY;
  }
  // A writable mapping needs the frame's type to be PGT_writable_page.
  if ((low & RW_BIT) !== 0 && (pr === undefined ? xen.machine.pageType(mfn) : pr.typeOf(mfn)) !== PageType.None) return -EBUSY;
  if ((low & CACHE_ATTRS_LOW) !== 0 && xen.machine.isXenHeap(mfn)) return -EACCES;
  return 0;
}

function getPageFromL2e(pr: Promotion, e: bigint): number {
  if ((e & BASE_DISALLOW) !== 0n) return -EINVAL;
  return getPageAndType(pr, toMfn(pr.xen, frameOf(e)), PageType.L1);
}

function getPageFromL3e(pr: Promotion, e: bigint): number {
  if ((e & l3DisallowMask(pr.d)) !== 0n) return -EINVAL;
  return getPageAndType(pr, toMfn(pr.xen, frameOf(e)), PageType.L2);
}

function getPageFromL4e(pr: Promotion, e: bigint): number {
  if ((e & BASE_DISALLOW) !== 0n) return -EINVAL;
  return getPageAndType(pr, toMfn(pr.xen, frameOf(e)), PageType.L3);
}

/**
 * Validates every entry of `mfn` as a table of `level` (`promote_lN_table`), writing Xen's
 * adjusted entries back through the choke point in one store (its span of changed bytes).
 */
function promoteTable(pr: Promotion, mfn: number, level: PageType, asPaeXenL2: boolean): number {
  const { xen, d } = pr;
  // A frame still carrying the zero stamp (a table the guest has just cleared, as almost every
  // new one is) has no present entry: as an L1 it has nothing to check or adjust.
  if (level === PageType.L1 && xen.machine.stampOf(mfn) === STAMP_ZERO) {
    xen.machine.bytes(mfn); // materialised, as Xen maps it to validate it
    return 0;
  }
  // Entries are read from the frame itself until Xen's first adjustment, then from a copy holding
  // the adjustments (written back in one store at the end): most new tables are all empty, and
  // copying every one would cost a 4 KiB allocation per pin. Nothing writes this frame meanwhile
  // (a promotion stores only into the frames it promotes).
  let copy: Uint8Array | undefined;
  const entries = (): Uint8Array => copy ?? xen.machine.bytes(mfn);
  entries(); // materialises a stamped frame, as Xen maps it to validate it
  let lo = PAGE_SIZE;
  let hi = 0;
  // Entries are read and written as two 32-bit words; the upper levels' rare present entries
  // go through the BigInt helpers.
  const setWords = (i: number, low: number, high: number): void => {
    const page = entries();
    if (entryLowWord(page, i) === low && entryHighWord(page, i) === high) return;
    copy ??= page.slice();
    const at = i * 8;
    copy[at] = low;
    copy[at + 1] = low >>> 8;
    copy[at + 2] = low >>> 16;
    copy[at + 3] = low >>> 24;
    copy[at + 4] = high;
    copy[at + 5] = high >>> 8;
    copy[at + 6] = high >>> 16;
    copy[at + 7] = high >>> 24;
    lo = Math.min(lo, at);
    hi = Math.max(hi, at + 8);
  };
  const isPresent = (i: number): boolean => (entries()[i * 8]! & PRESENT_BIT) !== 0;
  const get = (i: number): bigint => {
    const page = entries();
    return (BigInt(entryHighWord(page, i)) << 32n) | BigInt(entryLowWord(page, i));
  };
  const set = (i: number, v: bigint): void => setWords(i, Number(v & 0xffffffffn), Number(v >> 32n));
  let rc = 0;
  switch (level) {
    case PageType.L1: {
      // Validating an L1 promotes nothing else, and an adjustment changes only the entry just
      // read: the frame's own bytes serve for every read.
      const page = entries();
      for (let i = nextPresentEntry(page, 0); i < ENTRIES && rc === 0; i = nextPresentEntry(page, i + 1)) {
        let low = entryLowWord(page, i);
        let high = entryHighWord(page, i);
        rc = getPageFromL1eWords(xen, pr, low, high, d, d);
        if (rc !== 0 || d.isCompat) continue;
        // adjustGuestL1e on the words.
        if ((low & USER_BIT) === 0) {
          low |= USER_BIT;
          high |= GUEST_KERNEL_HIGH_BIT;
        }
        if ((high & GUEST_KERNEL_HIGH_BIT) === 0) low |= GLOBAL_BIT | USER_BIT;
        setWords(i, low >>> 0, high >>> 0);
      }
      break;
    }
    case PageType.L2:
      for (let i = 0; i < ENTRIES && rc === 0; i++) {
        if (asPaeXenL2 && i >= PAE_XEN_L2_FIRST_SLOT) break;
        if (!isPresent(i)) continue;
        const e = get(i);
        rc = getPageFromL2e(pr, e);
        if (rc === 0) set(i, adjustGuestL2e(e, d));
      }
      // Xen copies its private mappings into the Xen slots; the emulator has none (cleared).
      if (rc === 0 && asPaeXenL2) for (let i = PAE_XEN_L2_FIRST_SLOT; i < ENTRIES; i++) set(i, 0n);
      break;
    case PageType.L3:
      if (d.isCompat) {
        // The compat hardware walk sees the whole page: Xen zeroes slots 4–511 first.
        for (let i = 4; i < ENTRIES; i++) set(i, 0n);
        let i = 0;
        for (; i < 4 && rc === 0; i++) {
          const e = get(i);
          if (i === 3) {
            // Slot 3 must hold the L2 with Xen's private mappings: present, allowed flags, unshared.
            rc = !present(e) || (e & L3_DISALLOW_PAE) !== 0n ? -EINVAL : getPageAndType(pr, toMfn(xen, frameOf(e)), PageType.L2, true);
          } else {
            if (!present(e)) continue;
            rc = getPageFromL3e(pr, e);
          }
          if (rc === 0) set(i, adjustGuestL3e(e, d));
        }
        if (rc !== 0) for (let j = 0; j < i - 1; j++) set(j, unadjustGuestL3e(get(j), d));
      } else {
        for (let i = 0; i < ENTRIES && rc === 0; i++) {
          if (!isPresent(i)) continue;
          const e = get(i);
          rc = getPageFromL3e(pr, e);
          if (rc === 0) set(i, adjustGuestL3e(e, d));
        }
      }
      break;
    case PageType.L4:
      for (let i = 0; i < ENTRIES && rc === 0; i++) {
        if (!isGuestL4Slot(d, i)) continue;
        if (!isPresent(i)) continue;
        const e = get(i);
        rc = getPageFromL4e(pr, e);
        if (rc === 0) set(i, adjustGuestL4e(e, d));
      }
      if (rc === 0) for (let i = XEN_L4_FIRST_SLOT; i <= XEN_L4_LAST_SLOT; i++) set(i, 0n);
      break;
    default:
      throw new Error(`pagetable: no table level ${level}`);
  }
  if (copy !== undefined && hi > lo) xen.storeBytes(writerFor(pr.caller), mfn, lo, copy.subarray(lo, hi));
  return rc;
}

/**
 * Takes a type reference of `level` on `mfn` for its owner `d`: 0 when it already has that type
 * or was promoted to it (committed), else -errno with nothing typed.
 */
export function getTableType(xen: Xen, caller: Domain, d: Domain, mfn: number, level: PageType): number {
  // Already a table of that level (linking a pinned L1, as every new kernel PTE page is): what
  // getPageAndType answers without promoting anything, so no Promotion to set up.
  if (frameOwnedBy(xen, mfn, d) && xen.machine.pageType(mfn) === level && !(level === PageType.L2 && isPaeXenL2(xen, d, mfn))) return 0;
  const pr = new Promotion(xen, d, caller);
  const rc = getPageAndType(pr, mfn, level);
  if (rc === 0) pr.commit();
  return rc;
}

// ------------------------------------------------------------------------------------------------
// Losing a type (the emulator's stand-in for type counts reaching zero; see the file comment)
// ------------------------------------------------------------------------------------------------

/**
 * Drops `mfn`'s page-table type if nothing the emulator knows of still holds it (not pinned, not a
 * base pointer), then the same for its children, as Xen's demotion drops the references a
 * table's entries hold.
 */
export function releaseTable(xen: Xen, d: Domain, mfn: number, level: PageType): void {
  if (level === PageType.None) return;
  const m = xen.machine;
  const stack: { mfn: number; level: PageType; paeXenL2: boolean }[] = [{ mfn, level, paeXenL2: isPaeXenL2(xen, d, mfn) }];
  const seen = new Set<number>();
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (seen.has(t.mfn)) continue;
    seen.add(t.mfn);
    if (!frameOwnedBy(xen, t.mfn, d) || m.pageType(t.mfn) !== t.level || m.isPinned(t.mfn) || isBasePointer(d, t.mfn)) continue;
    m.setPageType(t.mfn, PageType.None);
    if (t.level === PageType.L1) continue;
    const childLevel = (t.level - 1) as PageType;
    const slots = t.level === PageType.L3 && d.isCompat ? 4 : t.paeXenL2 ? PAE_XEN_L2_FIRST_SLOT : ENTRIES;
    for (let i = 0; i < slots; i++) {
      if (t.level === PageType.L4 && !isGuestL4Slot(d, i)) continue;
      const e = readEntry(xen, t.mfn, i);
      if (!present(e)) continue;
      const child = toMfn(xen, frameOf(e));
      if (child < 0 || child === t.mfn) continue;
      stack.push({ mfn: child, level: childLevel, paeXenL2: t.level === PageType.L3 && d.isCompat && i === 3 });
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Entry updates (mod_lN_entry)
// ------------------------------------------------------------------------------------------------

/** One page-table entry update, as do_mmu_update / update_va_mapping issue it. */
export interface EntryUpdate {
  readonly xen: Xen;
  /** The calling domain (writer of the store). */
  readonly caller: Domain;
  /** PFD: the table's owner; the vCPU whose domain validates the entry. */
  readonly ptOwner: Domain;
  /** FD: the expected owner of an L1 entry's frame. */
  readonly pgOwner: PageOwner;
  /** The table frame and the entry's index in it. */
  readonly mfn: number;
  readonly index: number;
  /** The new entry as the guest wrote it. */
  readonly value: bigint;
  /** MMU_PT_UPDATE_PRESERVE_AD. */
  readonly preserveAd: boolean;
}

/** `mod_l1_entry`: 0 or -errno; the entry is written only on success. */
export function modL1Entry(u: EntryUpdate): number {
  const { xen, ptOwner } = u;
  // On 32-bit halves throughout (the old entry, the new one, Xen's adjustments, the store): every
  // update_va_mapping comes here, and BigInt arithmetic was most of its cost.
  const page = xen.machine.bytes(u.mfn);
  const oldLow = entryLowWord(page, u.index);
  const oldHigh = entryHighWord(page, u.index);
  const value = u.value;
  let low: number;
  let high: number;
  if (value >= 0n && value <= MAX_SAFE_BIGINT) {
    const n = Number(value);
    low = n >>> 0;
    high = (n - low) / 2 ** 32;
  } else {
    // Two's complement halves, as the store of a BigInt masks them.
    low = Number(value & 0xffffffffn);
    high = Number((value >> 32n) & 0xffffffffn);
  }
  if ((low & PRESENT_BIT) !== 0) {
    // L1_DISALLOW_MASK; cache_flush_permitted() is modelled as the control domain.
    if ((low & (ptOwner.privileged ? L1_DISALLOW_PRIVILEGED_LOW : L1_DISALLOW_LOW)) !== 0) return -EINVAL;
    if (!ptOwner.isCompat) {
      // adjustGuestL1e on the halves.
      if ((low & USER_BIT) === 0) {
        low |= USER_BIT;
        high |= GUEST_KERNEL_HIGH_BIT;
      }
      if ((high & GUEST_KERNEL_HIGH_BIT) === 0) low |= GLOBAL_BIT | USER_BIT;
    }
    // Fast path: same frame and attributes as before, nothing to re-validate.
    if (((oldLow ^ low) & FASTPATH_COMPARE_LOW) !== 0 || ((oldHigh ^ high) & FASTPATH_COMPARE_HIGH) !== 0) {
      const rc = getPageFromL1eWords(xen, undefined, low >>> 0, high >>> 0, ptOwner, u.pgOwner);
      if (rc !== 0) return rc;
    }
  }
  // writeEntry on the halves: PRESERVE_AD keeps the A and D bits already there.
  if (u.preserveAd) low |= oldLow & ACCESSED_DIRTY_LOW;
  xen.storeWord64Halves(writerFor(u.caller), u.mfn, u.index * 8, low >>> 0, high >>> 0);
  return 0;
}

/**
 * Shared tail of mod_l2/l3/l4_entry: fast path, validation of the new child, the write, and the
 * release of the old child.
 */
function modUpperEntry(u: EntryUpdate, level: PageType, disallow: bigint, adjust: (e: bigint, d: Domain) => bigint): number {
  const { xen, ptOwner } = u;
  const old = readEntry(xen, u.mfn, u.index);
  let ne = u.value;
  if (present(ne)) {
    if ((ne & disallow) !== 0n) return -EINVAL;
    ne = adjust(ne, ptOwner);
    if (((old ^ ne) & FASTPATH_COMPARE) === 0n) {
      writeEntry(xen, u.caller, u.mfn, u.index, old, ne, u.preserveAd);
      return 0;
    }
    const rc = getTableType(xen, u.caller, ptOwner, toMfn(xen, frameOf(ne)), (level - 1) as PageType);
    if (rc !== 0) return rc;
  }
  writeEntry(xen, u.caller, u.mfn, u.index, old, ne, u.preserveAd);
  // put_page_from_lNe(old): the old child loses the reference this entry held.
  if (present(old)) {
    const child = toMfn(xen, frameOf(old));
    if (child >= 0 && child !== u.mfn && !(present(ne) && frameOf(ne) === frameOf(old))) {
      releaseTable(xen, ptOwner, child, (level - 1) as PageType);
    }
  }
  return 0;
}

/** `mod_l2_entry`: -EPERM for the PAE Xen L2's own slots, else as the upper levels. */
export function modL2Entry(u: EntryUpdate): number {
  if (u.index >= PAE_XEN_L2_FIRST_SLOT && isPaeXenL2(u.xen, u.ptOwner, u.mfn)) return -EPERM;
  return modUpperEntry(u, PageType.L2, BASE_DISALLOW, adjustGuestL2e);
}

/** `mod_l3_entry`: a 32-bit guest may change only slots 0–2 (slot 3 holds Xen's L2). */
export function modL3Entry(u: EntryUpdate): number {
  if (u.ptOwner.isCompat && u.index >= 3) return -EINVAL;
  return modUpperEntry(u, PageType.L3, l3DisallowMask(u.ptOwner), adjustGuestL3e);
}

/** `mod_l4_entry`: Xen's slots are refused with -EINVAL. */
export function modL4Entry(u: EntryUpdate): number {
  if (!isGuestL4Slot(u.ptOwner, u.index)) return -EINVAL;
  return modUpperEntry(u, PageType.L4, BASE_DISALLOW, adjustGuestL4e);
}

/** Dispatches an update to the entry's table level (the frame's current type). */
export function modEntry(u: EntryUpdate, level: PageType): number {
  switch (level) {
    case PageType.L1:
      return modL1Entry(u);
    case PageType.L2:
      return modL2Entry(u);
    case PageType.L3:
      return modL3Entry(u);
    case PageType.L4:
      return modL4Entry(u);
    default:
      throw new Error(`pagetable: no table level ${level}`);
  }
}

// ------------------------------------------------------------------------------------------------
// Pinning and base pointers (do_mmuext_op, new_guest_cr3)
// ------------------------------------------------------------------------------------------------

/**
 * MMUEXT_PIN_Ln_TABLE on `mfn` owned by `owner`: validate (promote) as `level`, then set the pin.
 * -EINVAL when not owned, not validatable as that level, or already pinned.
 */
export function pinTable(xen: Xen, caller: Domain, owner: PageOwner, mfn: number, level: PageType): number {
  if (!frameOwnedBy(xen, mfn, owner)) return -EINVAL;
  const rc = getTableType(xen, caller, owner, mfn, level);
  if (rc !== 0) return rc;
  if (xen.machine.isPinned(mfn)) return -EINVAL;
  xen.machine.setPinned(mfn, true);
  // "A page is dirtied when its pin status is set."
  markDirty(xen, owner, mfn);
  return 0;
}

/** MMUEXT_UNPIN_TABLE: -EINVAL when not owned or not pinned; the table may lose its type. */
export function unpinTable(xen: Xen, owner: PageOwner, mfn: number): number {
  if (!frameOwnedBy(xen, mfn, owner) || !xen.machine.isPinned(mfn)) return -EINVAL;
  xen.machine.setPinned(mfn, false);
  releaseTable(xen, owner, mfn, xen.machine.pageType(mfn));
  markDirty(xen, owner, mfn);
  return 0;
}

/**
 * MMUEXT_NEW_BASEPTR (`new_guest_cr3`): x86_64 takes an L4; a 32-bit guest's top level is its PAE
 * L3, which Xen installs in slot 0 of the vCPU's own L4 (validated as an L3 there).
 */
export function newGuestCr3(xen: Xen, d: Domain, frame: bigint): number {
  const level = d.isCompat ? PageType.L3 : PageType.L4;
  const mfn = toMfn(xen, frame);
  const old = d.baseptrMfn;
  if (mfn >= 0 && mfn === old) return 0;
  const rc = getTableType(xen, d, d, mfn, level);
  if (rc !== 0) return rc;
  d.baseptrMfn = mfn;
  if (old >= 0) releaseTable(xen, d, old, level);
  return 0;
}

/** MMUEXT_NEW_USER_BASEPTR (x86_64): an L4, or 0 for none. */
export function newUserBaseptr(xen: Xen, d: Domain, frame: bigint): number {
  const old = d.userBaseptrMfn;
  if (frame === BigInt(old)) return 0;
  let mfn = 0;
  if (frame !== 0n) {
    mfn = toMfn(xen, frame);
    const rc = getTableType(xen, d, d, mfn, PageType.L4);
    if (rc !== 0) return rc;
  }
  d.userBaseptrMfn = mfn;
  if (old !== 0) releaseTable(xen, d, old, PageType.L4);
  return 0;
}

// ------------------------------------------------------------------------------------------------
// Finding entries through the guest's own tables
// ------------------------------------------------------------------------------------------------

/** x86_64 `__addr_ok`: below 2^47, or at/after HYPERVISOR_VIRT_END (0xFFFF880000000000). */
export function addrOk(va: bigint): boolean {
  return va < LOWER_HALF_END || va >= 0xffff880000000000n;
}

/**
 * `map_guest_l1e(va)`: the L1 frame and index mapping `va` in `d`'s current (kernel) tables, or
 * undefined when no present L2 entry leads to one (-EINVAL for update_va_mapping). Like Xen's walk
 * through its linear map, only the present bits matter above L1 and a superpage L2 has no L1.
 */
export function findGuestL1e(xen: Xen, d: Domain, va: bigint): { mfn: number; index: number } | undefined {
  if (d.baseptrMfn < 0) return undefined;
  const compat = d.isCompat;
  if (compat ? va > 0xffffffffn : !addrOk(va)) return undefined;
  // VA bits 32–63 and 0–31 (two's complement for a negative VA, as BigInt shifts treat it).
  let vaHigh: number;
  let vaLow: number;
  if (va >= 0n && va <= MAX_SAFE_BIGINT) {
    // Through one exact Number, without BigInt arithmetic.
    const n = Number(va);
    vaLow = n >>> 0;
    vaHigh = compat ? 0 : (n - vaLow) / 2 ** 32;
  } else if (va >= TOP_SAFE_START && va <= U64_MAX) {
    // The kernel's half (every direct-map VA): exact as a negative Number after one BigInt operation.
    const n = Number(BigInt.asIntN(64, va));
    vaLow = n >>> 0;
    vaHigh = compat ? 0 : Math.floor(n / 2 ** 32) >>> 0;
  } else {
    vaHigh = compat ? 0 : Number((va >> 32n) & 0xffffffffn);
    vaLow = Number(va & 0xffffffffn);
  }
  let mfn = d.baseptrMfn;
  for (let level = compat ? 3 : 4; level >= 2; level--) {
    const index = level === 4 ? (vaHigh >>> 7) & 511 : level === 3 ? (compat ? vaLow >>> 30 : ((vaHigh & 0x7f) << 2) | (vaLow >>> 30)) : (vaLow >>> 21) & 511;
    // The PAE Xen L2's own slots map Xen's frames, never one of the guest's L1s.
    if (compat && level === 2 && index >= PAE_XEN_L2_FIRST_SLOT && vaLow >>> 30 === 3) return undefined;
    const page = xen.machine.bytes(mfn);
    const low = entryLowWord(page, index);
    if ((low & PRESENT_BIT) === 0) return undefined;
    if (level === 2 && (low & PSE_BIT) !== 0) return undefined;
    mfn = frameOfWords(low, entryHighWord(page, index));
    if (mfn >= xen.machine.maxPage || xen.machine.ownerOf(mfn) === undefined) return undefined;
  }
  return { mfn, index: (vaLow >>> 12) & 511 };
}

// ------------------------------------------------------------------------------------------------
// Reading argument arrays from guest memory
// ------------------------------------------------------------------------------------------------

/**
 * Reads fixed-size elements of a guest array one by one (Xen's `__copy_from_guest` per element),
 * reusing the translation of the current page until a store hits one of the entries that
 * translation read. Elements that straddle a page go through `copyFromGuest`.
 */
export class GuestArrayReader {
  private pageVa = -1n;
  private mfn = -1;
  /** The entries the cached walk read, as `mfn * 512 + index`. */
  private readonly path: number[] = [];

  constructor(
    private readonly xen: Xen,
    private readonly dom: Domain,
    private readonly base: bigint,
    private readonly size: number,
  ) {}

  /** A view of element `i`'s bytes (valid until the next store), or undefined on a fault. */
  read(i: number): DataView | undefined {
    const va = this.base + BigInt(i * this.size);
    const offset = Number(va & 0xfffn);
    if (offset + this.size > PAGE_SIZE) {
      const raw = this.xen.copyFromGuest(this.dom, va, this.size);
      return raw && new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    }
    const pageVa = va - BigInt(offset);
    if (pageVa !== this.pageVa) {
      if (!this.walk(pageVa)) return undefined;
      this.pageVa = pageVa;
    }
    const page = this.xen.machine.bytes(this.mfn);
    return new DataView(page.buffer, page.byteOffset + offset, this.size);
  }

  /** Forget the cached translation if the 8-byte entry at `offset` of `mfn` is one it was read through. */
  stored(mfn: number, offset: number): void {
    if (this.path.includes(mfn * ENTRIES + (offset >> 3))) this.pageVa = -1n;
  }

  /** Forget the cached translation. */
  invalidate(): void {
    this.pageVa = -1n;
  }

  /** The read-only walk of Xen.translate, remembering the entries it read. */
  private walk(pageVa: bigint): boolean {
    this.path.length = 0;
    const t = this.xen.translate(this.dom, pageVa, false, this.path);
    if (!t) {
      // The path no longer describes the cached translation: drop it too.
      this.pageVa = -1n;
      return false;
    }
    this.mfn = t.mfn;
    return true;
  }
}

/**
 * `guest_handle_okay(h, count)` for an array of `count` elements of `size` bytes: the x86_64
 * `array_access_ok` checks only where the array starts; the compat one that it ends below the
 * compat hypervisor area (0xF5800000).
 */
export function guestArrayOkay(va: bigint, count: bigint, size: number, compat: boolean): boolean {
  const n = BigInt(size);
  if (compat) {
    if (count >= 0xffffffffn / n) return false;
    const bytes = count * n;
    return va + (bytes === 0n ? 0n : bytes - 1n) < HYPERVISOR_VIRT_START_PAE;
  }
  return count < 0xffffffffffffffffn / n && addrOk(va);
}
