/**
 * The table-wide grant ops of Xen's xen/common/grant_table.c and compat/grant_table.c:
 * GNTTABOP_setup_table (native and the translated x86_32 form), query_size, get_status_frames,
 * set_version, get_version and swap_grant_ref.
 *
 * Version: the emulated domains have grant tables limited to v1 (Xen's per-domain
 * `max_grant_version` = 1, as with `gnttab=max-ver:1`). So set_version(1) succeeds, set_version(2)
 * is -ENOSYS ("behave as before set_version existed"), anything else -EINVAL; the table has no v2
 * status frames, so get_status_frames can only list zero of them.
 */

import {
  EFAULT,
  EINVAL,
  ENOSYS,
  EPERM,
  ESRCH,
  GNTST_address_too_big,
  GNTST_bad_domain,
  GNTST_bad_gntref,
  GNTST_bad_virt_addr,
  GNTST_eagain,
  GNTST_general_error,
  GNTST_okay,
  GNTST_permission_denied,
  gnttab_get_status_frames,
  gnttab_get_version,
  gnttab_query_size,
  gnttab_set_version,
  gnttab_setup_table,
  gnttab_swap_grant_ref,
  type GuestAbi,
} from '../../../abi/index.js';
import type { GrantTable } from '../../grant-table.js';
import type { HypercallContext } from '../../xen.js';
import {
  compatHandleOkay,
  domainByAnyId,
  getWord,
  grantTableOf,
  growTable,
  guestHandleOkay,
  readEntry,
  readGuest,
  type GrantEntryV1,
  structOffsets,
  viewOf,
  writeGuest,
  writeStatus,
  xsmTarget,
} from './common.js';

const SETUP = structOffsets(gnttab_setup_table, ['dom', 'nr_frames', 'status', 'frame_list'] as const);
const QUERY = structOffsets(gnttab_query_size, ['dom', 'nr_frames', 'max_nr_frames', 'status'] as const);
const STATUS_FRAMES = structOffsets(gnttab_get_status_frames, ['nr_frames', 'dom', 'status', 'frame_list'] as const);
const SET_VERSION = structOffsets(gnttab_set_version, ['version'] as const);
const GET_VERSION = structOffsets(gnttab_get_version, ['dom', 'version'] as const);
const SWAP = structOffsets(gnttab_swap_grant_ref, ['ref_a', 'ref_b', 'status'] as const);

/** Xen's `UINT_MAX` frame-list limit of the native setup_table. */
const NO_FRAME_LIST_LIMIT = 0xffffffff;
/**
 * The compat setup_table's limit: the frame list must fit Xen's translation area after the native
 * struct, `(COMPAT_ARG_XLAT_SIZE - sizeof(struct gnttab_setup_table)) / sizeof(xen_pfn_t)`.
 */
const COMPAT_FRAME_LIST_LIMIT = Math.floor((2 * 4096 - 24) / 8);

/**
 * The body of `gnttab_setup_table` once the struct is read: finds the domain, checks the limits,
 * grows the table. Returns the status and, on success, the first `nrFrames` frame numbers (MFNs:
 * a PV domain's grant frames are named by MFN).
 */
function setupCore(ctx: HypercallContext, domid: number, nrFrames: number, limitMax: number): { status: number; frames?: number[] } {
  const d = domainByAnyId(ctx, domid);
  if (!d) return { status: GNTST_bad_domain };
  if (!xsmTarget(ctx.dom, d)) return { status: GNTST_permission_denied };
  const gt = grantTableOf(ctx.xen, d);
  if (nrFrames > gt.maxFrames) return { status: GNTST_general_error };
  if (limitMax < nrFrames) return { status: GNTST_general_error };
  if (nrFrames > gt.frames.length && !growTable(ctx.xen, d, nrFrames)) return { status: GNTST_general_error };
  return { status: GNTST_okay, frames: gt.frames.slice(0, nrFrames) };
}

function frameBytes(abi: GuestAbi, frame: number): Uint8Array {
  const bytes = new Uint8Array(abi.wordSize);
  const v = viewOf(bytes);
  if (abi.wordSize === 8) v.setBigUint64(0, BigInt(frame), true);
  else v.setUint32(0, frame >>> 0, true);
  return bytes;
}

/** Native `gnttab_setup_table` (x86_64 callers): only `status` is copied back. */
export function gnttabSetupTable(ctx: HypercallContext, uop: bigint, count: number): number {
  if (count !== 1) return -EINVAL;
  const abi = ctx.dom.abi;
  const o = SETUP[abi.name];
  const bytes = readGuest(ctx, uop, o.size);
  if (!bytes) return -EFAULT;
  const v = viewOf(bytes);
  const nrFrames = v.getUint32(o.nr_frames, true);
  const list = getWord(v, o.frame_list, abi);
  if (!guestHandleOkay(ctx.dom, list, nrFrames, abi.wordSize)) return -EFAULT;
  const r = setupCore(ctx, v.getUint16(o.dom, true), nrFrames, NO_FRAME_LIST_LIMIT);
  let status = r.status;
  if (r.frames) {
    for (let i = 0; i < r.frames.length; i++) {
      if (!writeGuest(ctx, list + BigInt(i * abi.wordSize), frameBytes(abi, r.frames[i]!))) {
        status = GNTST_bad_virt_addr;
        break;
      }
    }
  }
  return writeStatus(ctx, uop + BigInt(o.status), status) ? 0 : -EFAULT;
}

/**
 * The compat (x86_32) `setup_table`: count 0 is a no-op returning 0, count > 1 is -EINVAL; the
 * frame list must lie below the compat Xen area; each frame must fit 32 bits
 * (GNTST_address_too_big); the whole struct is copied back.
 */
export function compatGnttabSetupTable(ctx: HypercallContext, uop: bigint, count: number): number {
  if (count === 0) return 0;
  if (count > 1) return -EINVAL;
  const abi = ctx.dom.abi;
  const o = SETUP[abi.name];
  const bytes = readGuest(ctx, uop, o.size);
  if (!bytes) return -EFAULT;
  const v = viewOf(bytes);
  const nrFrames = v.getUint32(o.nr_frames, true);
  const list = getWord(v, o.frame_list, abi);
  if (!compatHandleOkay(list, nrFrames, 4)) return -EFAULT;
  const r = setupCore(ctx, v.getUint16(o.dom, true), nrFrames, COMPAT_FRAME_LIST_LIMIT);
  let status = r.status;
  if (r.frames) {
    for (let i = 0; i < r.frames.length; i++) {
      const frame = r.frames[i]!;
      if (frame > 0xffffffff) {
        status = GNTST_address_too_big;
        break;
      }
      if (!writeGuest(ctx, list + BigInt(i * 4), frameBytes(abi, frame))) {
        status = GNTST_bad_virt_addr;
        break;
      }
    }
  }
  v.setInt16(o.status, status, true);
  return writeGuest(ctx, uop, bytes) ? 0 : -EFAULT;
}

/** `gnttab_query_size`: count must be 1; the whole struct is copied back. */
export function gnttabQuerySize(ctx: HypercallContext, uop: bigint, count: number): number {
  if (count !== 1) return -EINVAL;
  const o = QUERY[ctx.dom.abi.name];
  const bytes = readGuest(ctx, uop, o.size);
  if (!bytes) return -EFAULT;
  const v = viewOf(bytes);
  const d = domainByAnyId(ctx, v.getUint16(o.dom, true));
  if (!d) v.setInt16(o.status, GNTST_bad_domain, true);
  else if (!xsmTarget(ctx.dom, d)) v.setInt16(o.status, GNTST_permission_denied, true);
  else {
    const gt = grantTableOf(ctx.xen, d);
    v.setUint32(o.nr_frames, gt.frames.length, true);
    v.setUint32(o.max_nr_frames, gt.maxFrames, true);
    v.setInt16(o.status, GNTST_okay, true);
  }
  return writeGuest(ctx, uop, bytes) ? 0 : -EFAULT;
}

/**
 * `gnttab_get_status_frames` (native, or the compat translation when `compat`): with a v1 table
 * there are no status frames, so any non-zero `nr_frames` is GNTST_general_error. Only `status` is
 * copied back.
 */
export function gnttabGetStatusFrames(ctx: HypercallContext, uop: bigint, count: number, compat: boolean): number {
  if (compat && count === 0) return 0;
  if (count !== 1) return -EINVAL;
  const abi = ctx.dom.abi;
  const o = STATUS_FRAMES[abi.name];
  const bytes = readGuest(ctx, uop, o.size);
  if (!bytes) return -EFAULT;
  const v = viewOf(bytes);
  const nrFrames = v.getUint32(o.nr_frames, true);
  const list = getWord(v, o.frame_list, abi);
  if (compat ? !compatHandleOkay(list, nrFrames, 8) : !guestHandleOkay(ctx.dom, list, nrFrames, 8)) return -EFAULT;
  const d = domainByAnyId(ctx, v.getUint16(o.dom, true));
  let status: number;
  if (!d) status = GNTST_bad_domain;
  else if (!xsmTarget(ctx.dom, d)) status = GNTST_permission_denied;
  else status = nrFrames > 0 ? GNTST_general_error : GNTST_okay;
  return writeStatus(ctx, uop + BigInt(o.status), status) ? 0 : -EFAULT;
}

/**
 * `gnttab_set_version`: 1 is accepted (the table is already v1), 2 is -ENOSYS (v2 not permitted),
 * anything else -EINVAL. Either way Xen writes the version in effect back into the struct.
 */
export function gnttabSetVersion(ctx: HypercallContext, uop: bigint): number {
  const o = SET_VERSION[ctx.dom.abi.name];
  const bytes = readGuest(ctx, uop, o.size);
  if (!bytes) return -EFAULT;
  const v = viewOf(bytes);
  const version = v.getUint32(o.version, true);
  let res = 0;
  if (version !== 1 && version !== 2) res = -EINVAL;
  else if (version === 2) res = -ENOSYS;
  v.setUint32(o.version, grantTableOf(ctx.xen, ctx.dom).version, true);
  return writeGuest(ctx, uop, bytes) ? res : -EFAULT;
}

/** `gnttab_get_version`: -ESRCH for an unknown domain, -EPERM for another's without privilege. */
export function gnttabGetVersion(ctx: HypercallContext, uop: bigint): number {
  const o = GET_VERSION[ctx.dom.abi.name];
  const bytes = readGuest(ctx, uop, o.size);
  if (!bytes) return -EFAULT;
  const v = viewOf(bytes);
  const d = domainByAnyId(ctx, v.getUint16(o.dom, true));
  if (!d) return -ESRCH;
  if (!xsmTarget(ctx.dom, d)) return -EPERM;
  const version = new Uint8Array(4);
  viewOf(version).setUint32(0, d.grantTable.version, true);
  return writeGuest(ctx, uop + BigInt(o.version), version) ? 0 : -EFAULT;
}

/** `swap_grant_ref`: exchanges two of the caller's entries unless either is pinned. */
function swapOne(ctx: HypercallContext, refA: number, refB: number): number {
  const gt = grantTableOf(ctx.xen, ctx.dom);
  if (refA >= gt.nrEntries || refB >= gt.nrEntries) return GNTST_bad_gntref;
  if (refA === refB) return GNTST_okay;
  if ((gt.activeEntry(refA)?.pin ?? 0) !== 0 || (gt.activeEntry(refB)?.pin ?? 0) !== 0) return GNTST_eagain;
  const a = readEntry(ctx.xen, gt, refA);
  const b = readEntry(ctx.xen, gt, refB);
  writeEntry(ctx, gt, refA, b);
  writeEntry(ctx, gt, refB, a);
  return GNTST_okay;
}

/** Xen's 8-byte structure assignment of a whole v1 entry. */
function writeEntry(ctx: HypercallContext, gt: GrantTable, ref: number, e: GrantEntryV1): void {
  const { mfn, offset } = gt.entryLocation(ref);
  const word = (BigInt(e.frame >>> 0) << 32n) | (BigInt(e.domid & 0xffff) << 16n) | BigInt(e.flags & 0xffff);
  ctx.xen.storeWord({ domid: ctx.dom.domid, by: 'xen' }, mfn, offset, word, 8);
}

/** `gnttab_swap_grant_ref`: 0 or -EFAULT; per-element status. */
export function gnttabSwapGrantRef(ctx: HypercallContext, uop: bigint, count: number): number {
  const o = SWAP[ctx.dom.abi.name];
  for (let i = 0; i < count; i++) {
    const va = uop + BigInt(i * o.size);
    const bytes = readGuest(ctx, va, o.size);
    if (!bytes) return -EFAULT;
    const v = viewOf(bytes);
    const status = swapOne(ctx, v.getUint32(o.ref_a, true), v.getUint32(o.ref_b, true));
    if (!writeStatus(ctx, va + BigInt(o.status), status)) return -EFAULT;
  }
  return 0;
}
