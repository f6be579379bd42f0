/**
 * Shared pieces of `grant_table_op` (Xen's xen/common/grant_table.c): guest-handle checks as x86
 * Xen makes them (`guest_handle_okay`, `compat_handle_okay`), domain lookup and the default XSM
 * policy, the grant table's growth, reads and writes of v1 grant entries in the granter's shared
 * frames, the GTF_reading/GTF_writing handshake, and `gnttab_mark_dirty`.
 *
 * Every write Xen makes into a shared grant frame goes through the choke point (`Xen.storeWord` /
 * `Xen.storeBytes`), as the cmpxchg or locked AND on the shared entry it is.
 */

import {
  DOMID_SELF,
  GTF_permit_access,
  GTF_readonly,
  GTF_reading,
  GTF_sub_page,
  GTF_type_mask,
  GTF_writing,
  GNTST_bad_page,
  GNTST_general_error,
  GNTST_okay,
  type GuestAbi,
  type GuestAbiName,
  type StructInfo,
  X86_32,
  X86_64,
} from '../../../abi/index.js';
import type { Domain } from '../../domain.js';
import {
  GNTPIN_devw_mask,
  GNTPIN_hstw_mask,
  INITIAL_NR_GRANT_FRAMES,
  type GrantTable,
} from '../../grant-table.js';
import { addrOk as x86AddrOk, guestArrayOkay, markDirty as pagetableMarkDirty } from '../../pagetable.js';
import type { HypercallContext, Writer, Xen } from '../../xen.js';

// ------------------------------------------------------------------------------------------------
// Struct field offsets, computed once per ABI from the abi/ declarations.
// ------------------------------------------------------------------------------------------------

export type Offsets<K extends string> = Readonly<Record<K, number>> & { readonly size: number };

/** Field offsets of `def` for both ABIs, by dotted path. */
export function structOffsets<K extends string>(def: StructInfo, paths: readonly K[]): Readonly<Record<GuestAbiName, Offsets<K>>> {
  const one = (abi: GuestAbi): Offsets<K> => {
    const out: Record<string, number> = { size: def.sizeOf(abi) };
    for (const p of paths) out[p] = def.offsetOf(abi, p);
    return Object.freeze(out) as Offsets<K>;
  };
  return Object.freeze({ x86_32: one(X86_32), x86_64: one(X86_64) });
}

/** A little-endian view over a copied argument struct. */
export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Reads a guest word (xen_pfn_t, handles) at `offset`: 4 or 8 bytes by ABI. */
export function getWord(view: DataView, offset: number, abi: GuestAbi): bigint {
  return abi.wordSize === 8 ? view.getBigUint64(offset, true) : BigInt(view.getUint32(offset, true));
}

// ------------------------------------------------------------------------------------------------
// Guest memory, with x86 Xen's address checks
// ------------------------------------------------------------------------------------------------

/**
 * `__addr_ok` for a PV caller: a 64-bit caller's address must be in the lower canonical half or
 * above Xen's reserved area; a 32-bit caller's pointers are zero-extended 32-bit values, which
 * always pass.
 */
export function addrOk(dom: Domain, va: bigint): boolean {
  return dom.isCompat || x86AddrOk(va);
}

/**
 * `guest_handle_okay(hnd, nr)` on the native path. A 32-bit caller reaches it with a zero-extended
 * pointer, which always passes; a 64-bit caller's array must start at an acceptable address.
 */
export function guestHandleOkay(dom: Domain, va: bigint, count: number, size: number): boolean {
  return dom.isCompat || guestArrayOkay(va, BigInt(count), size, false);
}

/**
 * `compat_handle_okay(hnd, nr)`: the whole array lies below the compat guest's Xen area
 * (`HYPERVISOR_COMPAT_VIRT_START`, by default 0xF5800000).
 */
export function compatHandleOkay(va: bigint, count: number, size: number): boolean {
  return guestArrayOkay(va, BigInt(count), size, true);
}

/** `copy_from_guest`: the bytes, or undefined on a fault. */
export function readGuest(ctx: HypercallContext, va: bigint, length: number): Uint8Array | undefined {
  if (!addrOk(ctx.dom, va)) return undefined;
  return ctx.xen.copyFromGuest(ctx.dom, va, length);
}

/** `copy_to_guest`: false on a fault. */
export function writeGuest(ctx: HypercallContext, va: bigint, bytes: Uint8Array): boolean {
  if (!addrOk(ctx.dom, va)) return false;
  return ctx.xen.copyToGuest(ctx.dom, va, bytes);
}

/** `__copy_field_to_guest(uop, &op, status)`: writes the int16 status at `va`; false on a fault. */
export function writeStatus(ctx: HypercallContext, va: bigint, status: number): boolean {
  const bytes = new Uint8Array(2);
  new DataView(bytes.buffer).setInt16(0, status, true);
  return writeGuest(ctx, va, bytes);
}

// ------------------------------------------------------------------------------------------------
// Domains and the default (dummy) XSM policy
// ------------------------------------------------------------------------------------------------

/** `rcu_lock_domain_by_id`: DOMID_SELF is *not* the caller here. */
export function domainById(xen: Xen, domid: number): Domain | undefined {
  const d = xen.domain(domid);
  return d && !d.dying ? d : undefined;
}

/** `rcu_lock_domain_by_any_id`: DOMID_SELF is the caller. */
export function domainByAnyId(ctx: HypercallContext, domid: number): Domain | undefined {
  return domid === DOMID_SELF ? ctx.dom : domainById(ctx.xen, domid);
}

/** XSM_TARGET under the dummy policy: a domain may act on itself; the control domain on any. */
export function xsmTarget(src: Domain, target: Domain): boolean {
  return src === target || src.privileged;
}

// ------------------------------------------------------------------------------------------------
// The grant table's frames
// ------------------------------------------------------------------------------------------------

/**
 * Grows `dom`'s table to `frames` frames (`gnttab_grow_table`): zeroed Xen heap frames shared with
 * the domain. All or nothing: on an allocation failure the new frames are freed and false returned.
 */
export function growTable(xen: Xen, dom: Domain, frames: number): boolean {
  const gt = dom.grantTable;
  const want = Math.max(frames, INITIAL_NR_GRANT_FRAMES);
  const added: number[] = [];
  while (gt.frames.length + added.length < want) {
    const mfn = xen.allocXenHeapFrame(dom);
    if (mfn === undefined) {
      for (const m of added) xen.machine.freeFrame(m);
      return false;
    }
    added.push(mfn);
  }
  gt.frames.push(...added);
  return true;
}

/**
 * The domain's grant table, with its initial frame. Xen allocates that frame when it creates the
 * domain (`grant_table_init`); `Xen.createDomain` does not, so it is allocated here on first use.
 */
export function grantTableOf(xen: Xen, dom: Domain): GrantTable {
  const gt = dom.grantTable;
  if (gt.frames.length < INITIAL_NR_GRANT_FRAMES) growTable(xen, dom, INITIAL_NR_GRANT_FRAMES);
  return gt;
}

// ------------------------------------------------------------------------------------------------
// v1 entries in the shared frames
// ------------------------------------------------------------------------------------------------

export interface GrantEntryV1 {
  readonly flags: number;
  readonly domid: number;
  readonly frame: number;
}

function entryView(xen: Xen, gt: GrantTable, ref: number): { view: DataView; mfn: number; offset: number } {
  const { mfn, offset } = gt.entryLocation(ref);
  const page = xen.machine.bytes(mfn);
  return { view: new DataView(page.buffer, page.byteOffset, page.byteLength), mfn, offset };
}

/** Reads entry `ref` (below `nrEntries`) as it is in the shared frame now. */
export function readEntry(xen: Xen, gt: GrantTable, ref: number): GrantEntryV1 {
  const { view, offset } = entryView(xen, gt, ref);
  return { flags: view.getUint16(offset, true), domid: view.getUint16(offset + 2, true), frame: view.getUint32(offset + 4, true) };
}

function xenWriter(ctx: HypercallContext): Writer {
  return { domid: ctx.dom.domid, by: 'xen' };
}

/** Xen's cmpxchg of the entry's 32-bit flags+domid word (it succeeds: nothing races in between). */
export function storeEntryHeader(ctx: HypercallContext, gt: GrantTable, ref: number, flags: number, domid: number): void {
  const { mfn, offset } = gt.entryLocation(ref);
  const word = ((domid & 0xffff) << 16) | (flags & 0xffff);
  ctx.xen.storeWord(xenWriter(ctx), mfn, offset, BigInt(word >>> 0), 4);
}

/** A 16-bit locked update of the entry's flags (`gnttab_clear_flags`, `|=` on transfer). */
export function storeEntryFlags(ctx: HypercallContext, gt: GrantTable, ref: number, flags: number): void {
  const { mfn, offset } = gt.entryLocation(ref);
  const bytes = new Uint8Array(2);
  new DataView(bytes.buffer).setUint16(0, flags & 0xffff, true);
  ctx.xen.storeBytes(xenWriter(ctx), mfn, offset, bytes);
}

/** Xen's write of the entry's `frame` (the transferred MFN). */
export function storeEntryFrame(ctx: HypercallContext, gt: GrantTable, ref: number, frame: number): void {
  const { mfn, offset } = gt.entryLocation(ref);
  ctx.xen.storeWord(xenWriter(ctx), mfn, offset + 4, BigInt(frame >>> 0), 4);
}

/** `gnttab_clear_flags`: a locked AND of the entry's flags. */
export function clearEntryFlags(ctx: HypercallContext, gt: GrantTable, ref: number, mask: number): void {
  const { flags } = readEntry(ctx.xen, gt, ref);
  storeEntryFlags(ctx, gt, ref, flags & ~mask);
}

// ------------------------------------------------------------------------------------------------
// The GTF_reading / GTF_writing handshake
// ------------------------------------------------------------------------------------------------

/**
 * `_set_status_v1`: before the first pin, the entry must be permit_access (and, for a map, not
 * sub-page) and name the pinning domain; a write pin needs the entry not to be GTF_readonly. On
 * success Xen sets GTF_reading (and GTF_writing for a write pin) in the granter's entry.
 */
export function setStatusV1(
  ctx: HypercallContext,
  gt: GrantTable,
  ref: number,
  pin: number,
  readonly: boolean,
  mapflag: boolean,
  ldomid: number,
): number {
  const mask = GTF_type_mask | (mapflag ? GTF_sub_page : 0);
  const e = readEntry(ctx.xen, gt, ref);
  if (pin === 0 && ((e.flags & mask) !== GTF_permit_access || e.domid !== ldomid)) return GNTST_general_error;
  let flags = e.flags | GTF_reading;
  if (!readonly) {
    flags |= GTF_writing;
    if (e.flags & GTF_readonly) return GNTST_general_error;
  }
  storeEntryHeader(ctx, gt, ref, flags, e.domid);
  return GNTST_okay;
}

/**
 * `reduce_status_for_pin`: drop GTF_reading once nothing pins the entry, and GTF_writing once no
 * writable pin is left (only for a writable release).
 */
export function reduceStatusForPin(ctx: HypercallContext, gt: GrantTable, ref: number, pin: number, readonly: boolean): void {
  let clear = pin !== 0 ? 0 : GTF_reading;
  if (!readonly && (pin & (GNTPIN_hstw_mask | GNTPIN_devw_mask)) === 0) clear |= GTF_writing;
  if (clear !== 0) clearEntryFlags(ctx, gt, ref, clear);
}

// ------------------------------------------------------------------------------------------------
// Frames and logdirty
// ------------------------------------------------------------------------------------------------

/**
 * `get_paged_frame` for a PV domain (gfn = mfn): the frame must exist and belong to `rd`.
 * Returns the mfn, or GNTST_bad_page as a negative number.
 */
export function getPagedFrame(xen: Xen, rd: Domain, gfn: bigint): number {
  if (gfn < 0n || gfn >= BigInt(xen.machine.maxPage)) return GNTST_bad_page;
  const mfn = Number(gfn);
  return xen.machine.ownerOf(mfn) === rd.domid ? mfn : GNTST_bad_page;
}

/**
 * `gnttab_mark_dirty` (x86: `paging_mark_dirty`): marks the pfn the m2p gives for `mfn` in `d`'s
 * logdirty bitmap, if `d` owns the frame. No store happens, so no store event either.
 */
export function markDirty(xen: Xen, d: Domain, mfn: number): void {
  pagetableMarkDirty(xen, d, mfn);
}
