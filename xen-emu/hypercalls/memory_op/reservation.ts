/**
 * XENMEM_increase_reservation, XENMEM_decrease_reservation and XENMEM_populate_physmap for PV
 * domains: the reservation case of `do_memory_op` with `increase_reservation`,
 * `decrease_reservation` and `populate_physmap` (xen/common/memory.c), and the x86_32 path that
 * stages the extent array in the compat translation area in batches (xen/common/compat/memory.c).
 *
 * The result is always a count of extents done, counting `start_extent`; every rejection before
 * the loop returns `start_extent` itself. Emulated Xen is never preempted, so no continuation is
 * ever created.
 */

import {
  MEMOP_EXTENT_SHIFT,
  XENMEMF_populate_on_demand,
  XENMEM_decrease_reservation,
  XENMEM_increase_reservation,
  XENMEM_populate_physmap,
  xen_memory_reservation,
  X86_32,
  X86_64,
  type GuestAbi,
} from '../../../abi/index.js';
import type { Domain } from '../../domain.js';
import type { HypercallContext } from '../../xen.js';
import {
  MAX_ORDER,
  allocationLimit,
  extentAllocator,
  callerMaxOrder,
  compatArrayAccessOk,
  guestRemovePage,
  nativeArrayAccessOk,
  pagesUnderMaxPages,
  requestsMissingNode,
  reservationPolicy,
  u32At,
  xsmTargetAllowed,
  type AllocPolicy,
} from './common.js';
import { GuestPfnList, XlatPfnList, storeElements, type PfnList } from './pfn-list.js';

/** `UINT_MAX >> MEMOP_EXTENT_SHIFT`: the most extents a continuation can encode. */
const MAX_NR_EXTENTS = 0xffffffff >>> MEMOP_EXTENT_SHIFT;
/** Elements handled per pass over a guest array (bounds temporary memory, not behaviour). */
const CHUNK = 1024;

/**
 * One chunk's element words and allocated frames, reused by every call (a hypercall handler never
 * runs inside another): new arrays per call were a large part of a one-extent balloon operation.
 */
const chunkWordsScratch = new Uint32Array(2 * CHUNK);
const chunkMfnsScratch = new Float64Array(CHUNK);
/** Views of the scratch words by element count, made once each (most calls have one extent). */
const chunkWordsViews: (Uint32Array | undefined)[] = [];

/** Zeroed words for `count` (<= CHUNK) elements, as a new Uint32Array(2 * count) would be. */
function chunkWords(count: number): Uint32Array {
  return (chunkWordsViews[count] ??= chunkWordsScratch.subarray(0, 2 * count)).fill(0);
}
/** `COMPAT_ARG_XLAT_SIZE` (two pages) less the native struct: xen_pfn_t slots per compat batch. */
const COMPAT_BATCH = (2 * 4096 - xen_memory_reservation.sizeOf(X86_64)) / 8;

/** A `struct xen_memory_reservation` as the native code sees it. */
export interface Reservation {
  /** `extent_start`: a guest VA (0 is NULL). */
  readonly extentStart: bigint;
  readonly nrExtents: bigint;
  readonly extentOrder: number;
  readonly memFlags: number;
  readonly domid: number;
}

/** The array behind `extent_start` and how Xen checks its range. */
export interface ExtentArray {
  readonly list: PfnList;
  readonly isNull: boolean;
  /** `guest_handle_subrange_okay(extent_start, first, first + count - 1)`. */
  rangeOk(first: number, count: number): boolean;
}

/** Field offsets of xen_memory_reservation per ABI, computed once from the abi/ declaration. */
function reservationOffsets(abi: GuestAbi) {
  return Object.freeze({
    size: xen_memory_reservation.sizeOf(abi),
    extentStart: xen_memory_reservation.offsetOf(abi, 'extent_start'),
    nrExtents: xen_memory_reservation.offsetOf(abi, 'nr_extents'),
    extentOrder: xen_memory_reservation.offsetOf(abi, 'extent_order'),
    memFlags: xen_memory_reservation.offsetOf(abi, 'mem_flags'),
    domid: xen_memory_reservation.offsetOf(abi, 'domid'),
  });
}
const RES64 = reservationOffsets(X86_64);
const RES32 = reservationOffsets(X86_32);

const u16At = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8);
function u64At(b: Uint8Array, at: number): bigint {
  const high = u32At(b, at + 4);
  return high === 0 ? BigInt(u32At(b, at)) : (BigInt(high) << 32n) | BigInt(u32At(b, at));
}

/** Decodes a reservation struct at `at` in `bytes`, in the given ABI's layout. */
export function decodeReservation(bytes: Uint8Array, at: number, compat: boolean): Reservation {
  const o = compat ? RES32 : RES64;
  return {
    extentStart: compat ? BigInt(u32At(bytes, at + o.extentStart)) : u64At(bytes, at + o.extentStart),
    nrExtents: compat ? BigInt(u32At(bytes, at + o.nrExtents)) : u64At(bytes, at + o.nrExtents),
    extentOrder: u32At(bytes, at + o.extentOrder),
    memFlags: u32At(bytes, at + o.memFlags),
    domid: u16At(bytes, at + o.domid),
  };
}

/** What the three loops need: `struct memop_args`. */
interface MemopArgs {
  readonly ctx: HypercallContext;
  readonly d: Domain;
  readonly array: ExtentArray;
  readonly nrExtents: number;
  readonly order: number;
  readonly policy: AllocPolicy;
  readonly pod: boolean;
}

/**
 * The reservation case of native `do_memory_op`, from the copied struct on: limits, domain lookup,
 * flags, XSM, then the op's loop. Returns the extent count.
 */
export function reservationOp(ctx: HypercallContext, op: number, startExtent: bigint, r: Reservation, array: ExtentArray): bigint {
  if (r.nrExtents > BigInt(MAX_NR_EXTENTS)) return startExtent;
  if (startExtent >= r.nrExtents) return startExtent;
  const { xen, dom: caller } = ctx;
  const d = xen.resolveDomid(caller, r.domid);
  if (!d) return startExtent;
  const policy = reservationPolicy(xen, caller, r.memFlags);
  if (!policy) return startExtent;
  const pod = op === XENMEM_populate_physmap && (r.memFlags & XENMEMF_populate_on_demand) !== 0;
  if (!xsmTargetAllowed(caller, d)) return startExtent;

  const a: MemopArgs = { ctx, d, array, nrExtents: Number(r.nrExtents), order: r.extentOrder, policy, pod };
  const start = Number(startExtent);
  switch (op) {
    case XENMEM_increase_reservation:
      return BigInt(increaseReservation(a, start));
    case XENMEM_decrease_reservation:
      return BigInt(decreaseReservation(a, start));
    default:
      return BigInt(populatePhysmap(a, start));
  }
}

/** `increase_reservation`: allocate extents, report each one's first mfn (unless the array is NULL). */
function increaseReservation(a: MemopArgs, nrDone: number): number {
  const { ctx, d, array, nrExtents, order } = a;
  if (!array.isNull && !array.rangeOk(nrDone, nrExtents - nrDone)) return nrDone;
  if (order > callerMaxOrder(ctx.xen, ctx.dom)) return nrDone;

  const alloc = extentAllocator(ctx.xen, d, order, a.policy, true);
  let i = nrDone;
  while (i < nrExtents) {
    const count = Math.min(CHUNK, nrExtents - i);
    const writable = array.isNull ? count : array.list.writable(BigInt(i), count);
    const mfns = chunkWords(count);
    let k = 0;
    let faulted = false;
    for (; k < count; k++) {
      const mfn = alloc();
      if (mfn === undefined) break;
      if (array.isNull) continue;
      mfns[2 * k] = mfn >>> 0;
      mfns[2 * k + 1] = Math.floor(mfn / 2 ** 32);
      if (k >= writable) {
        faulted = true;
        break;
      }
    }
    if (!array.isNull) {
      array.list.write(BigInt(i), Math.min(k, writable), mfns);
      if (faulted) array.list.write(BigInt(i + k), 1, mfns.subarray(2 * k));
    }
    i += k;
    if (k < count) break;
  }
  return i;
}

/** `decrease_reservation`: for each listed gmfn (an mfn for PV), remove every page of the extent. */
function decreaseReservation(a: MemopArgs, nrDone: number): number {
  const { ctx, d, array, nrExtents, order } = a;
  if (!array.rangeOk(nrDone, nrExtents - nrDone) || order > callerMaxOrder(ctx.xen, ctx.dom)) return nrDone;
  const xen = ctx.xen;
  const pages = 2 ** order;
  const maxPage = xen.machine.maxPage;

  let i = nrDone;
  while (i < nrExtents) {
    const count = Math.min(CHUNK, nrExtents - i);
    const gmfns = chunkWords(count);
    const readable = array.list.read(BigInt(i), count, gmfns);
    for (let k = 0; k < readable; k++, i++) {
      const lo = gmfns[2 * k]!;
      const hi = gmfns[2 * k + 1]!;
      if (hi === 0 && lo + pages <= maxPage) {
        for (let j = 0; j < pages; j++) if (!guestRemovePage(xen, d, lo + j)) return i;
      } else {
        // Beyond the machine, unless gmfn + j wraps past 2^64 back into it.
        const gmfn = (BigInt(hi) << 32n) | BigInt(lo);
        for (let j = 0; j < pages; j++) {
          const mfn = (gmfn + BigInt(j)) & ((1n << 64n) - 1n);
          if (mfn >= BigInt(maxPage) || !guestRemovePage(xen, d, Number(mfn))) return i;
        }
      }
    }
    if (readable < count) break;
  }
  return i;
}

/**
 * `populate_physmap`: for each listed gpfn allocate an extent, point the m2p of each of its pages
 * at gpfn + j (the pfn is not marked dirty: only stores do that), and report the mfn in the same
 * slot. With `XENMEMF_populate_on_demand` on a PV domain nothing is allocated: on oneself the loop
 * stops, on another domain each extent counts as done.
 *
 * Order-0 extents are allocated in bulk while nobody observes events (restore populates every pfn
 * of the destination this way, issue 8): the extents of a batch that can be written back whole get
 * the same frames, m2p entries and `tot_pages` as the per-extent loop, which takes over at the
 * first extent the bulk step did not get and so fails, or faults, exactly where it always did.
 */
function populatePhysmap(a: MemopArgs, nrDone: number): number {
  const { ctx, d, array, nrExtents, order, pod } = a;
  if (!array.rangeOk(nrDone, nrExtents - nrDone)) return nrDone;
  if (order > (pod ? MAX_ORDER : callerMaxOrder(ctx.xen, ctx.dom))) return nrDone;
  const xen = ctx.xen;
  const pages = 2 ** order;
  // Made only when the bulk step leaves extents to the per-extent loop.
  let alloc: (() => number | undefined) | undefined;
  const bulkMfns = order === 0 && !pod && !xen.events.active ? chunkMfnsScratch : undefined;
  const limit = allocationLimit(xen, d, a.policy);
  const noSuchNode = requestsMissingNode(a.policy);

  let i = nrDone;
  while (i < nrExtents) {
    const count = Math.min(CHUNK, nrExtents - i);
    const words = chunkWords(count);
    const readable = array.list.read(BigInt(i), count, words);
    if (pod) {
      if (d === ctx.dom) return i;
      i += readable;
      if (readable < count) break;
      continue;
    }
    const writable = array.list.writable(BigInt(i), readable);
    let k = 0;
    if (bulkMfns !== undefined) {
      const wanted = noSuchNode ? 0 : Math.min(readable, writable, pagesUnderMaxPages(d));
      k = xen.machine.allocFramesWithM2p(d.domid, wanted, limit, words, 2, bulkMfns, 0);
      d.totPages += k;
      for (let e = 0; e < k; e++) {
        const mfn = bulkMfns[e]!;
        words[2 * e] = mfn >>> 0;
        words[2 * e + 1] = mfn > 0xffffffff ? Math.floor(mfn / 2 ** 32) : 0;
      }
    }
    let faulted = false;
    for (; k < readable; k++) {
      alloc ??= extentAllocator(xen, d, order, a.policy, true);
      const mfn = alloc();
      if (mfn === undefined) break;
      // The emulated m2p holds 32-bit entries: gpfn + j modulo 2^32.
      const gpfn = words[2 * k]!;
      for (let j = 0; j < pages; j++) xen.setM2p(mfn + j, (gpfn + j) >>> 0);
      words[2 * k] = mfn >>> 0;
      words[2 * k + 1] = Math.floor(mfn / 2 ** 32);
      if (k >= writable) {
        faulted = true;
        break;
      }
    }
    array.list.write(BigInt(i), Math.min(k, writable), words);
    if (faulted) array.list.write(BigInt(i + k), 1, words.subarray(2 * k));
    i += k;
    if (k < count) break;
  }
  return i;
}

// ------------------------------------------------------------------------------------------------
// Entry points
// ------------------------------------------------------------------------------------------------

/** A native (x86_64) guest's extent array (a class: no closure per call). */
class NativeExtentArray implements ExtentArray {
  readonly list: GuestPfnList;
  readonly isNull: boolean;

  constructor(
    ctx: HypercallContext,
    private readonly extentStart: bigint,
  ) {
    this.list = new GuestPfnList(ctx.xen, ctx.dom, extentStart, 8);
    this.isNull = extentStart === 0n;
  }

  rangeOk(first: number, count: number): boolean {
    return nativeArrayAccessOk(this.extentStart, BigInt(first), BigInt(count), 8);
  }
}

function nativeArray(ctx: HypercallContext, extentStart: bigint): ExtentArray {
  return new NativeExtentArray(ctx, extentStart);
}

/** `do_memory_op` reservation case for an x86_64 caller: `arg` is the struct's guest VA. */
export function nativeReservation(ctx: HypercallContext, op: number, startExtent: bigint, arg: bigint): bigint {
  const raw = copyStruct(ctx, arg, RES64.size, false);
  if (!raw) return startExtent;
  const r = decodeReservation(raw, 0, false);
  return reservationOp(ctx, op, startExtent, r, nativeArray(ctx, r.extentStart));
}

/**
 * `compat_memory_op` reservation case for an x86_32 caller: the compat array is copied into the
 * translation area a batch at a time (decrease and populate read it before the native code runs),
 * the native code runs on the staged copy, and the mfns are copied back as 32-bit entries
 * afterwards; a fault while copying back ends the call at that extent.
 */
export function compatReservation(ctx: HypercallContext, op: number, cmdStartExtent: number, arg: bigint): number {
  let startExtent = cmdStartExtent;
  const raw = copyStruct(ctx, arg, RES32.size, true);
  if (!raw) return startExtent;
  const cmp = decodeReservation(raw, 0, true);
  const nr = Number(cmp.nrExtents);
  if (nr > MAX_NR_EXTENTS) return startExtent;
  const handle = Number(cmp.extentStart);
  if (handle !== 0 && !compatArrayAccessOk(handle, nr, 4)) return startExtent;
  const guestList = new GuestPfnList(ctx.xen, ctx.dom, BigInt(handle), 4);

  let rc = startExtent;
  for (;;) {
    let split = 0;
    let endExtent: number;
    let array: ExtentArray;
    if (handle !== 0) {
      endExtent = Math.min(startExtent + COMPAT_BATCH, nr);
      const xlat = new XlatPfnList(BigInt(startExtent), Math.max(0, endExtent - startExtent));
      if (op !== XENMEM_increase_reservation && endExtent > startExtent) {
        const got = guestList.read(BigInt(startExtent), endExtent - startExtent, xlat.words);
        if (got < endExtent - startExtent) {
          endExtent = startExtent + got;
          split = -1;
        }
      }
      array = { list: xlat, isNull: false, rangeOk: () => true };
    } else {
      // A NULL compat handle stays NULL: the native code then uses guest address 0 itself.
      endExtent = nr;
      array = nativeArray(ctx, 0n);
    }
    let natNr = nr;
    if (endExtent < nr) {
      natNr = endExtent;
      split++;
    }

    rc = Number(reservationOp(ctx, op, BigInt(startExtent), { ...cmp, nrExtents: BigInt(natNr) }, array));

    const doneTo = rc;
    if (op !== XENMEM_decrease_reservation && handle !== 0) {
      if (doneTo > startExtent) {
        const xlat = array.list as XlatPfnList;
        const src = xlat.words.subarray(2 * (startExtent - Number(xlat.first)));
        checkCompatMfns(src, doneTo - startExtent);
        const stored = storeElements(guestList, BigInt(startExtent), doneTo - startExtent, src);
        if (stored < doneTo - startExtent) {
          rc = startExtent + stored;
          split = 0;
        }
        startExtent += stored;
      }
    } else {
      startExtent = doneTo;
    }
    if (split >= 0 && doneTo !== natNr) split = 0;
    if (split <= 0) break;
  }
  return rc;
}

/** Xen BUG()s if an mfn for a compat guest does not fit 32 bits; its allocation clamp prevents it. */
function checkCompatMfns(words: Uint32Array, count: number): void {
  for (let i = 0; i < count; i++) {
    if (words[2 * i + 1] !== 0) {
      throw new Error('memory_op: an mfn for an x86_32 domain does not fit 32 bits (XenOptions.compatMaxMfn above 2^32?)');
    }
  }
}

/**
 * `copy_from_guest` of a struct at `va`: the bytes, or undefined on a fault. An x86_64 guest's
 * pointer must also pass `access_ok` (Xen's own range is never the guest's).
 */
export function copyStruct(ctx: HypercallContext, va: bigint, size: number, compat: boolean): Uint8Array | undefined {
  if (!compat && !nativeArrayAccessOk(va, 0n, 1n, size)) return undefined;
  return ctx.xen.copyFromGuest(ctx.dom, va, size);
}
