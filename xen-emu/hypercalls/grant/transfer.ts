/**
 * GNTTABOP_transfer (PV only), as Xen's xen/common/grant_table.c (`gnttab_transfer`,
 * `gnttab_prepare_for_transfer`) and x86 `steal_page` do it, plus the compat translation.
 *
 * The caller gives away its frame `mfn` (a PV gfn is the mfn). Xen first takes the page from the
 * caller (`steal_page`: it must be the caller's ordinary page, not a Xen heap page, not a page
 * table, not otherwise referenced; else GNTST_bad_page and the caller keeps it). From then on the
 * caller has lost the page whatever happens: on any later failure Xen frees it. The grantee's
 * entry `ref` must be exactly GTF_accept_transfer and name the caller; Xen marks it
 * GTF_transfer_committed, gives the page to the grantee (tot_pages moves with it), sets the m2p of
 * the frame to the pfn the grantee put in the entry's `frame`, writes the MFN into `frame`, then
 * sets GTF_transfer_completed.
 *
 * A v1 entry's `frame` is 32 bits, and a 32-bit grantee can only address frames below its
 * physaddr limit (`Xen.compatMaxMfn`): a higher frame is first copied into a newly allocated frame
 * below that limit; if there is none, the result is GNTST_address_too_big.
 *
 * Not modelled: references held by the caller's own page-table mappings of the frame (Xen refuses
 * to steal a page that is still mapped; the emulator keeps no such reference counts). A frame the
 * caller granted and that is currently pinned is refused, as Xen's extra reference makes it.
 */

import {
  EFAULT,
  GNTST_address_too_big,
  GNTST_bad_domain,
  GNTST_bad_page,
  GNTST_general_error,
  GNTST_okay,
  GTF_accept_transfer,
  GTF_transfer_committed,
  GTF_transfer_completed,
  gnttab_transfer,
} from '../../../abi/index.js';
import type { Domain } from '../../domain.js';
import { PageType } from '../../machine.js';
import type { HypercallContext } from '../../xen.js';
import {
  domainById,
  getWord,
  grantTableOf,
  readEntry,
  readGuest,
  storeEntryFlags,
  storeEntryFrame,
  storeEntryHeader,
  structOffsets,
  viewOf,
  writeStatus,
} from './common.js';

const TRANSFER = structOffsets(gnttab_transfer, ['mfn', 'domid', 'ref', 'status'] as const);

/** `COMPAT_ARG_XLAT_SIZE / sizeof(struct gnttab_transfer)` (native, 24 bytes): a compat batch. */
export const COMPAT_TRANSFER_BATCH = Math.floor((2 * 4096) / 24);

/** Frames a v1 grant entry's 32-bit `frame` can name. */
const V1_FRAME_LIMIT = 2 ** 32;

/** Whether some grant of `d` is pinned on `mfn` (Xen would hold a page reference for it). */
function pinnedByGrant(d: Domain, mfn: number): boolean {
  for (const [, act] of d.grantTable.pinned()) if (act.pin !== 0 && act.mfn === mfn) return true;
  return false;
}

/** `steal_page`: whether the caller's frame can be taken from it. */
function canSteal(ctx: HypercallContext, mfn: number): boolean {
  const m = ctx.xen.machine;
  return m.ownerOf(mfn) === ctx.dom.domid && !m.isXenHeap(mfn) && m.pageType(mfn) === PageType.None && !m.isPinned(mfn) && !pinnedByGrant(ctx.dom, mfn);
}

/**
 * The first frame number a grantee cannot receive: 2^32 for a v1 entry, and for a 32-bit grantee
 * its physaddr limit (`domain_clamp_alloc_bitsize`).
 */
function grantFrameLimit(ctx: HypercallContext, e: Domain): number {
  return e.isCompat ? Math.min(V1_FRAME_LIMIT, ctx.xen.compatMaxMfn) : V1_FRAME_LIMIT;
}

/** Copies a frame's contents into another (Xen's `copy_domain_page`), through the choke point. */
function copyFrame(ctx: HypercallContext, from: number, to: number): void {
  const m = ctx.xen.machine;
  const writer = { domid: ctx.dom.domid, by: 'xen' as const };
  const stamp = m.stampOf(from);
  if (stamp !== undefined) ctx.xen.storeStamp(writer, to, stamp);
  else ctx.xen.storeBytes(writer, to, 0, m.bytes(from).slice());
}

/** One element of `gnttab_transfer`: the GNTST_* status. */
export function transferOne(ctx: HypercallContext, gmfn: bigint, domid: number, ref: number): number {
  const { xen, dom: d } = ctx;
  const m = xen.machine;
  if (gmfn >= BigInt(m.maxPage)) return GNTST_bad_page;
  let mfn = Number(gmfn);
  if (!canSteal(ctx, mfn)) return GNTST_bad_page;
  d.totPages -= 1;

  // From here on the caller has lost the page: every failure frees it.
  const lose = (status: number): number => {
    m.freeFrame(mfn);
    return status;
  };

  const e = domainById(xen, domid);
  if (!e) return lose(GNTST_bad_domain);

  const limit = grantFrameLimit(ctx, e);
  if (mfn >= limit) {
    const low = m.allocFrame(e.domid, Math.min(limit, m.maxPage));
    if (low === undefined) return lose(GNTST_address_too_big);
    copyFrame(ctx, mfn, low);
    m.freeFrame(mfn);
    mfn = low;
  }

  if (e.dying || e.totPages >= e.maxPages) return lose(GNTST_general_error);
  e.totPages += 1;

  // gnttab_prepare_for_transfer: the entry must be exactly accept_transfer, for the caller.
  const egt = grantTableOf(xen, e);
  const entry = ref < egt.nrEntries ? readEntry(xen, egt, ref) : undefined;
  if (!entry || entry.flags !== GTF_accept_transfer || entry.domid !== d.domid) {
    e.totPages -= 1;
    return lose(GNTST_general_error);
  }
  storeEntryHeader(ctx, egt, ref, entry.flags | GTF_transfer_committed, entry.domid);

  m.reassign(mfn, e.domid);
  // guest_physmap_add_page for a PV grantee: the m2p names the pfn the grantee asked for.
  xen.setM2p(mfn, readEntry(xen, egt, ref).frame);
  storeEntryFrame(ctx, egt, ref, mfn);
  storeEntryFlags(ctx, egt, ref, readEntry(xen, egt, ref).flags | GTF_transfer_completed);
  return GNTST_okay;
}

/** Native `gnttab_transfer`: 0 or -EFAULT; only `status` is copied back. */
export function gnttabTransfer(ctx: HypercallContext, uop: bigint, count: number): number {
  const abi = ctx.dom.abi;
  const o = TRANSFER[abi.name];
  for (let i = 0; i < count; i++) {
    const va = uop + BigInt(i * o.size);
    const bytes = readGuest(ctx, va, o.size);
    if (!bytes) return -EFAULT;
    const v = viewOf(bytes);
    const status = transferOne(ctx, getWord(v, o.mfn, abi), v.getUint16(o.domid, true), v.getUint32(o.ref, true));
    if (!writeStatus(ctx, va + BigInt(o.status), status)) return -EFAULT;
  }
  return 0;
}

/**
 * The compat `GNTTABOP_transfer`: batches translated first (a fault reading any element of a batch
 * fails the call before that batch runs), then run, then statuses copied back last to first.
 */
export function compatGnttabTransfer(ctx: HypercallContext, uop: bigint, count: number): number {
  const abi = ctx.dom.abi;
  const o = TRANSFER[abi.name];
  let i = 0;
  while (i < count) {
    const first = i;
    const ops: { mfn: bigint; domid: number; ref: number }[] = [];
    for (; ops.length < COMPAT_TRANSFER_BATCH && i < count; i++) {
      const bytes = readGuest(ctx, uop + BigInt(i * o.size), o.size);
      if (!bytes) return -EFAULT;
      const v = viewOf(bytes);
      ops.push({ mfn: getWord(v, o.mfn, abi), domid: v.getUint16(o.domid, true), ref: v.getUint32(o.ref, true) });
    }
    const statuses = ops.map((op) => transferOne(ctx, op.mfn, op.domid, op.ref));
    let rc = 0;
    for (let n = ops.length - 1; n >= 0; n--) {
      if (!writeStatus(ctx, uop + BigInt((first + n) * o.size + o.status), statuses[n]!)) rc = -EFAULT;
    }
    if (rc !== 0) return rc;
  }
  return 0;
}
