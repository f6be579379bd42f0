/**
 * Grant host mappings of a PV caller (Xen's xen/arch/x86/pv/grant_table.c): the L1 entry that
 * `GNTTABOP_map_grant_ref` writes and `unmap_grant_ref` / `unmap_and_replace` clear or replace.
 * `host_addr` is a virtual address whose L1 entry is found through the caller's own page tables
 * (`map_guest_l1e`), or with GNTMAP_contains_pte the machine address of the entry itself. The L1
 * frame must belong to the caller and be a validated L1 table. Entries are written through the
 * choke point, as Xen's update of the guest's page table.
 *
 * Modelled as a release build of Xen on a CPU with NX: no debug-only `_PAGE_GNTTAB` bit.
 */

import {
  GNTMAP_application_map,
  GNTMAP_contains_pte,
  GNTMAP_readonly,
  GNTST_general_error,
  GNTST_okay,
  PAGE_SHIFT,
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_NX,
  _PAGE_PRESENT,
  _PAGE_RW,
  _PAGE_USER,
  PTE_FRAME_MASK,
} from '../../../abi/index.js';
import type { Domain } from '../../domain.js';
import { PageType } from '../../machine.js';
import { adjustGuestL1e, findGuestL1e } from '../../pagetable.js';
import type { HypercallContext, Xen } from '../../xen.js';

/** Xen's `_PAGE_GUEST_KERNEL` (PTE bit 52): a 64-bit PV guest's kernel mapping, which has USER set too. */
export const _PAGE_GUEST_KERNEL = 1n << 52n;
/** `_PAGE_AVAIL`: PTE bits 9-11, where GNTMAP_guest_avail bits 16-18 land. */
const _PAGE_AVAIL = 0xe00n;
const U32_MAX = 0xffffffffn;

/** `grant_to_pte_flags`: the flags of a grant host mapping's PTE, before `adjust_guest_l1e`. */
function grantToPteFlags(gntmapFlags: number): bigint {
  let f = _PAGE_PRESENT | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_NX;
  if (gntmapFlags & GNTMAP_application_map) f |= _PAGE_USER;
  if (!(gntmapFlags & GNTMAP_readonly)) f |= _PAGE_RW;
  return f | ((BigInt(gntmapFlags >>> 16) << 9n) & _PAGE_AVAIL);
}

/** The PTE of a grant host mapping of `mfn`, as `create_grant_pv_mapping` writes it. */
export function grantPte(dom: Domain, mfn: number, gntmapFlags: number): bigint {
  return adjustGuestL1e((BigInt(mfn) << BigInt(PAGE_SHIFT)) | grantToPteFlags(gntmapFlags), dom);
}

function readPte(xen: Xen, mfn: number, offset: number): bigint {
  const page = xen.machine.bytes(mfn);
  return new DataView(page.buffer, page.byteOffset, page.byteLength).getBigUint64(offset, true);
}

function frameOf(pte: bigint): bigint {
  return (pte & PTE_FRAME_MASK) >> BigInt(PAGE_SHIFT);
}

/** An L1 slot: the table's frame and the entry's byte offset in it. */
export interface L1Slot {
  readonly l1mfn: number;
  readonly offset: number;
}

/**
 * `map_guest_l1e`: the L1 entry mapping `va` in the caller's current page tables (rooted at its
 * base pointer), provided every upper level is present and the L2 entry is not a superpage.
 */
export function guestL1Slot(xen: Xen, dom: Domain, va: bigint): L1Slot | undefined {
  const e = findGuestL1e(xen, dom, va);
  return e && { l1mfn: e.mfn, offset: e.index * 8 };
}

/** `get_page_from_mfn(mfn, d)` plus the L1 type check Xen makes under the page lock. */
function isOwnL1(xen: Xen, dom: Domain, mfn: number): boolean {
  return xen.machine.isValidMfn(mfn) && xen.machine.ownerOf(mfn) === dom.domid && xen.machine.pageType(mfn) === PageType.L1;
}

/** The slot a PTE machine address names (GNTMAP_contains_pte), or undefined if it is misaligned or not a frame. */
function pteAddressSlot(xen: Xen, addr: bigint): L1Slot | undefined {
  if (addr % 8n !== 0n) return undefined;
  const mfn = addr >> BigInt(PAGE_SHIFT);
  if (mfn >= BigInt(xen.machine.maxPage)) return undefined;
  return { l1mfn: Number(mfn), offset: Number(addr & 0xfffn) };
}

function writePte(ctx: HypercallContext, slot: L1Slot, pte: bigint): void {
  ctx.xen.storeWord({ domid: ctx.dom.domid, by: 'xen' }, slot.l1mfn, slot.offset, pte, 8);
}

/** `create_grant_pv_mapping`: writes the grant's PTE at `addr`. GNTST_okay or GNTST_general_error. */
export function createGrantPvMapping(ctx: HypercallContext, addr: bigint, mfn: number, flags: number): number {
  const { xen, dom } = ctx;
  const nl1e = grantPte(dom, mfn, flags);
  let slot: L1Slot | undefined;
  if (flags & GNTMAP_contains_pte) {
    slot = pteAddressSlot(xen, addr);
  } else {
    if (dom.isCompat && addr > U32_MAX) return GNTST_general_error;
    slot = guestL1Slot(xen, dom, addr);
  }
  if (!slot || !isOwnL1(xen, dom, slot.l1mfn)) return GNTST_general_error;
  writePte(ctx, slot, nl1e);
  return GNTST_okay;
}

/**
 * `steal_linear_address`: clears the L1 entry mapping `va` and returns what it held, or undefined
 * when `va` has no L1 entry of the caller's.
 */
function stealLinearAddress(ctx: HypercallContext, va: bigint): bigint | undefined {
  const slot = guestL1Slot(ctx.xen, ctx.dom, va);
  if (!slot || !isOwnL1(ctx.xen, ctx.dom, slot.l1mfn)) return undefined;
  const old = readPte(ctx.xen, slot.l1mfn, slot.offset);
  writePte(ctx, slot, 0n);
  return old;
}

/**
 * `replace_grant_pv_mapping`: the PTE at `addr` must map `mfn` with the grant's present and RW
 * bits; it is replaced by an empty entry, or (unmap_and_replace) by the entry taken from
 * `newAddr`, which is left empty. If the replacement fails after that entry was taken, it stays
 * lost, as in Xen. GNTST_okay or GNTST_general_error.
 */
export function replaceGrantPvMapping(ctx: HypercallContext, addr: bigint, mfn: number, newAddr: bigint, flags: number): number {
  const { xen, dom } = ctx;
  const grantFlags = grantToPteFlags(flags);
  let nl1e = 0n;
  let slot: L1Slot | undefined;
  if (flags & GNTMAP_contains_pte) {
    if (newAddr !== 0n) return GNTST_general_error;
    slot = pteAddressSlot(xen, addr);
  } else {
    if (dom.isCompat && (addr > U32_MAX || newAddr > U32_MAX)) return GNTST_general_error;
    if (newAddr !== 0n) {
      const stolen = stealLinearAddress(ctx, newAddr);
      if (stolen === undefined) return GNTST_general_error;
      nl1e = stolen;
    }
    slot = guestL1Slot(xen, dom, addr);
  }
  if (!slot || !isOwnL1(xen, dom, slot.l1mfn)) return GNTST_general_error;
  const ol1e = readPte(xen, slot.l1mfn, slot.offset);
  if (frameOf(ol1e) !== BigInt(mfn) || ((ol1e ^ grantFlags) & (_PAGE_PRESENT | _PAGE_RW)) !== 0n) return GNTST_general_error;
  writePte(ctx, slot, nl1e);
  return GNTST_okay;
}
