/**
 * GNTTABOP_map_grant_ref, GNTTABOP_unmap_grant_ref and GNTTABOP_unmap_and_replace, as Xen's
 * xen/common/grant_table.c does them for a PV caller (`map_grant_ref`, `unmap_common`,
 * `unmap_common_complete`). The argument structs have the same layout on both ABIs, so a 32-bit
 * caller takes the same path (Xen's compat layer passes these straight through).
 *
 * - map: the whole struct is copied back (status, handle, dev_bus_addr).
 * - unmap / unmap_and_replace: only `status` is copied back. Xen works in batches of
 *   GNTTAB_UNMAP_BATCH_SIZE: it first removes the mappings of the batch, then drops their pins
 *   (clearing GTF_reading/GTF_writing as the last pin goes); the same order is kept here.
 */

import {
  GNTMAP_device_map,
  GNTMAP_host_map,
  GNTMAP_readonly,
  GNTST_bad_dev_addr,
  GNTST_bad_domain,
  GNTST_bad_gntref,
  GNTST_bad_handle,
  GNTST_general_error,
  GNTST_no_space,
  GNTST_okay,
  EFAULT,
  PAGE_SHIFT,
  gnttab_map_grant_ref,
  gnttab_unmap_and_replace,
  gnttab_unmap_grant_ref,
} from '../../../abi/index.js';
import type { Domain } from '../../domain.js';
import {
  GNTPIN_devr_inc,
  GNTPIN_devw_inc,
  GNTPIN_devw_mask,
  GNTPIN_hstr_inc,
  GNTPIN_hstw_inc,
  GNTPIN_hstw_mask,
  pinOverflowMask,
} from '../../grant-table.js';
import { PageType } from '../../machine.js';
import type { HypercallContext, Xen } from '../../xen.js';
import {
  domainById,
  getPagedFrame,
  grantTableOf,
  markDirty,
  readEntry,
  readGuest,
  reduceStatusForPin,
  setStatusV1,
  structOffsets,
  viewOf,
  writeGuest,
  writeStatus,
} from './common.js';
import { createGrantPvMapping, replaceGrantPvMapping } from './pte.js';

/** `GNTTAB_UNMAP_BATCH_SIZE`. */
const UNMAP_BATCH = 32;

const MAP = structOffsets(gnttab_map_grant_ref, ['host_addr', 'flags', 'ref', 'dom', 'status', 'handle', 'dev_bus_addr'] as const);
const UNMAP = structOffsets(gnttab_unmap_grant_ref, ['host_addr', 'dev_bus_addr', 'handle', 'status'] as const);
const REPLACE = structOffsets(gnttab_unmap_and_replace, ['host_addr', 'new_addr', 'handle', 'status'] as const);

interface MapResult {
  readonly status: number;
  readonly handle?: number;
  readonly devBusAddr?: bigint;
}

/** `map_grant_ref` for one element. */
function mapOne(ctx: HypercallContext, hostAddr: bigint, flags: number, ref: number, domid: number): MapResult {
  const { xen, dom: ld } = ctx;
  const readonly = (flags & GNTMAP_readonly) !== 0;
  let pinIncr = 0;
  if (flags & GNTMAP_device_map) pinIncr += readonly ? GNTPIN_devr_inc : GNTPIN_devw_inc;
  if (flags & GNTMAP_host_map) pinIncr += readonly ? GNTPIN_hstr_inc : GNTPIN_hstw_inc;
  if (pinIncr === 0) return { status: GNTST_bad_gntref };

  const rd = domainById(xen, domid);
  if (!rd) return { status: GNTST_bad_domain };

  const lgt = grantTableOf(xen, ld);
  const handle = lgt.allocHandle();
  if (handle === undefined) return { status: GNTST_no_space };
  const fail = (status: number): MapResult => {
    lgt.freeHandle(handle);
    return { status };
  };

  const rgt = grantTableOf(xen, rd);
  if (ref >= rgt.nrEntries) return fail(GNTST_bad_gntref);

  let act = rgt.activeEntry(ref);
  const pin = act?.pin ?? 0;
  if (act && pin !== 0 && (act.domid !== ld.domid || (pin & pinOverflowMask(pinIncr)) !== 0)) return fail(GNTST_general_error);

  if (pin === 0 || (!readonly && (pin & (GNTPIN_hstw_mask | GNTPIN_devw_mask)) === 0)) {
    const rc = setStatusV1(ctx, rgt, ref, pin, readonly, true, ld.domid);
    if (rc !== GNTST_okay) return fail(rc);
    if (pin === 0) {
      const frame = readEntry(xen, rgt, ref).frame;
      const mfn = getPagedFrame(xen, rd, BigInt(frame));
      if (mfn < 0) {
        reduceStatusForPin(ctx, rgt, ref, 0, readonly);
        return fail(mfn);
      }
      act = rgt.activate(ref, ld.domid, mfn);
    }
  }
  if (!act) throw new Error(`grant: ref ${ref} of d${rd.domid} pinned without an active entry`);
  act.pin += pinIncr;
  const mfn = act.mfn;

  // The frame must still be the granter's (Xen takes a page reference here), and a writable
  // mapping needs a frame that is not a page table (Xen's writable type reference).
  const machine = xen.machine;
  let rc = GNTST_okay;
  const writableType = machine.pageType(mfn) === PageType.None;
  if (machine.ownerOf(mfn) !== rd.domid) rc = GNTST_general_error;
  else if ((flags & GNTMAP_device_map) && !readonly && !writableType) rc = GNTST_general_error;
  else if ((flags & GNTMAP_host_map) && !readonly && !writableType) rc = GNTST_general_error;
  else if (flags & GNTMAP_host_map) rc = createGrantPvMapping(ctx, hostAddr, mfn, flags);
  if (rc !== GNTST_okay) {
    act.pin -= pinIncr;
    reduceStatusForPin(ctx, rgt, ref, act.pin, readonly);
    rgt.deactivateIfIdle(ref);
    return fail(rc);
  }

  lgt.setMapping(handle, flags, ref, domid);
  return { status: GNTST_okay, handle, devBusAddr: BigInt(mfn) << BigInt(PAGE_SHIFT) };
}

/** `gnttab_map_grant_ref`: 0, or -EFAULT when an element cannot be read or written back. */
export function gnttabMapGrantRef(ctx: HypercallContext, uop: bigint, count: number): number {
  const o = MAP[ctx.dom.abi.name];
  for (let i = 0; i < count; i++) {
    const va = uop + BigInt(i * o.size);
    const bytes = readGuest(ctx, va, o.size);
    if (!bytes) return -EFAULT;
    const v = viewOf(bytes);
    const r = mapOne(ctx, v.getBigUint64(o.host_addr, true), v.getUint32(o.flags, true), v.getUint32(o.ref, true), v.getUint16(o.dom, true));
    v.setInt16(o.status, r.status, true);
    if (r.handle !== undefined) v.setUint32(o.handle, r.handle, true);
    if (r.devBusAddr !== undefined) v.setBigUint64(o.dev_bus_addr, r.devBusAddr, true);
    if (!writeGuest(ctx, va, bytes)) return -EFAULT;
  }
  return 0;
}

/** What `unmap_common` leaves for `unmap_common_complete`. */
interface UnmapDone {
  /** GNTMAP_host_map / GNTMAP_device_map parts removed, plus GNTMAP_readonly; 0 if nothing. */
  readonly done: number;
  readonly rd?: Domain;
  readonly ref: number;
}

/** `unmap_common` for one element: removes the mapping; the pins go in `completeUnmap`. */
function unmapOne(ctx: HypercallContext, hostAddr: bigint, devBusAddr: bigint, handle: number, newAddr: bigint): { status: number; done: UnmapDone } {
  const { xen, dom: ld } = ctx;
  const nothing = (status: number): { status: number; done: UnmapDone } => ({ status, done: { done: 0, ref: 0 } });
  const lgt = grantTableOf(xen, ld);
  const map = lgt.mapping(handle);
  if (!map) return nothing(GNTST_bad_handle);

  // Xen keeps a granter with mapped grants alive; this emulator's destroyDomain does not, so a
  // mapping whose granter is gone cannot be unmapped (Xen would crash the caller here).
  const rd = domainById(xen, map.domid);
  if (!rd) return nothing(GNTST_bad_domain);
  const rgt = grantTableOf(xen, rd);
  const ref = map.ref;
  const act = ref < rgt.nrEntries ? rgt.activeEntry(ref) : undefined;
  if (!act) return nothing(GNTST_bad_handle);

  const flags = map.flags;
  const mfn = act.mfn;
  if (devBusAddr !== 0n && (flags & GNTMAP_device_map) && devBusAddr !== BigInt(mfn) << BigInt(PAGE_SHIFT)) {
    return nothing(GNTST_bad_dev_addr);
  }
  let done = 0;
  let remaining = flags;
  if (hostAddr !== 0n && (flags & GNTMAP_host_map)) {
    const rc = replaceGrantPvMapping(ctx, hostAddr, mfn, newAddr, flags);
    if (rc !== GNTST_okay) return nothing(rc);
    remaining &= ~GNTMAP_host_map;
    done |= GNTMAP_host_map | (flags & GNTMAP_readonly);
  }
  if (devBusAddr !== 0n && (flags & GNTMAP_device_map)) {
    remaining &= ~GNTMAP_device_map;
    done |= GNTMAP_device_map | (flags & GNTMAP_readonly);
  }
  if ((remaining & (GNTMAP_device_map | GNTMAP_host_map)) === 0) lgt.freeHandle(handle);
  else lgt.setMappingFlags(handle, remaining);

  // Unmapping a writable mapping marks the granter's frame dirty, whatever was removed.
  if (!(flags & GNTMAP_readonly)) markDirty(xen, rd, mfn);
  return { status: GNTST_okay, done: { done, rd, ref } };
}

/** `unmap_common_complete`: drops the pins of what was unmapped and reduces the entry's flags. */
function completeUnmap(ctx: HypercallContext, d: UnmapDone): void {
  if (d.done === 0 || !d.rd) return;
  const rgt = grantTableOf(ctx.xen, d.rd);
  const act = rgt.activeEntry(d.ref);
  if (!act) return;
  const readonly = (d.done & GNTMAP_readonly) !== 0;
  if (d.done & GNTMAP_device_map) act.pin -= readonly ? GNTPIN_devr_inc : GNTPIN_devw_inc;
  if (d.done & GNTMAP_host_map) act.pin -= readonly ? GNTPIN_hstr_inc : GNTPIN_hstw_inc;
  reduceStatusForPin(ctx, rgt, d.ref, act.pin, readonly);
  rgt.deactivateIfIdle(d.ref);
}

/** The shared batch loop of unmap_grant_ref and unmap_and_replace. */
function unmapBatches(
  ctx: HypercallContext,
  uop: bigint,
  count: number,
  size: number,
  statusOffset: number,
  one: (v: DataView) => { status: number; done: UnmapDone },
): number {
  let i = 0;
  while (i < count) {
    const end = Math.min(count, i + UNMAP_BATCH);
    const pending: UnmapDone[] = [];
    let fault = false;
    for (; i < end; i++) {
      const va = uop + BigInt(i * size);
      const bytes = readGuest(ctx, va, size);
      if (!bytes) {
        fault = true;
        break;
      }
      const r = one(viewOf(bytes));
      pending.push(r.done);
      if (!writeStatus(ctx, va + BigInt(statusOffset), r.status)) {
        fault = true;
        break;
      }
    }
    for (const d of pending) completeUnmap(ctx, d);
    if (fault) return -EFAULT;
  }
  return 0;
}

/** `gnttab_unmap_grant_ref`: 0 or -EFAULT; per-element status. */
export function gnttabUnmapGrantRef(ctx: HypercallContext, uop: bigint, count: number): number {
  const o = UNMAP[ctx.dom.abi.name];
  return unmapBatches(ctx, uop, count, o.size, o.status, (v) =>
    unmapOne(ctx, v.getBigUint64(o.host_addr, true), v.getBigUint64(o.dev_bus_addr, true), v.getUint32(o.handle, true), 0n),
  );
}

/** `gnttab_unmap_and_replace`: 0 or -EFAULT; per-element status. Only host mappings are touched. */
export function gnttabUnmapAndReplace(ctx: HypercallContext, uop: bigint, count: number): number {
  const o = REPLACE[ctx.dom.abi.name];
  return unmapBatches(ctx, uop, count, o.size, o.status, (v) =>
    unmapOne(ctx, v.getBigUint64(o.host_addr, true), 0n, v.getUint32(o.handle, true), v.getBigUint64(o.new_addr, true)),
  );
}

/**
 * `gnttab_release_mappings`: when `dom` dies, drops the pins of every grant it still has mapped
 * (newest handle first) and reduces the granters' GTF_reading/GTF_writing, without touching its
 * page tables (they die with it). Xen calls this while destroying a domain; `Xen.destroyDomain`
 * should call it before freeing the domain's frames.
 */
export function releaseGrantMappings(xen: Xen, dom: Domain): void {
  const ctx: HypercallContext = { xen, dom };
  const lgt = dom.grantTable;
  const live = [...lgt.mappings()].reverse();
  for (const [handle, map] of live) {
    lgt.setMappingFlags(handle, 0);
    const rd = domainById(xen, map.domid);
    if (!rd) continue;
    const rgt = grantTableOf(xen, rd);
    const act = map.ref < rgt.nrEntries ? rgt.activeEntry(map.ref) : undefined;
    if (!act) continue;
    const readonly = (map.flags & GNTMAP_readonly) !== 0;
    if (map.flags & GNTMAP_device_map) act.pin -= readonly ? GNTPIN_devr_inc : GNTPIN_devw_inc;
    if (map.flags & GNTMAP_host_map) act.pin -= readonly ? GNTPIN_hstr_inc : GNTPIN_hstw_inc;
    reduceStatusForPin(ctx, rgt, map.ref, act.pin, readonly);
    rgt.deactivateIfIdle(map.ref);
  }
}
