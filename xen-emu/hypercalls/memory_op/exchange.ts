/**
 * XENMEM_exchange for PV domains: `memory_exchange` (xen/common/memory.c) and, for x86_32
 * callers, the compat translation in front of it (xen/common/compat/memory.c). The result is 0 or
 * -errno; progress is reported in `nr_exchanged`.
 *
 * The native code checks in this order: the struct copy (-EFAULT), the caller's order limit
 * (-EPERM), the sanity checks (-EINVAL: forged nr_exchanged, domid mismatch, sizes), "already
 * done" (0), the two arrays' ranges (-EFAULT), the node (-EINVAL), the domain (-ESRCH) and XSM
 * (-EPERM). Every failure after the copy writes `nr_exchanged` back. Work goes in chunks of
 * 2^|order difference| input or output extents; a chunk either completes or is undone, and on
 * failure `nr_exchanged` counts the input extents of completed chunks.
 *
 * The compat path checks first on its own (orders of 32 and more: -EPERM; its sanity checks,
 * including an nr_exchanged not aligned to the chunk: -EINVAL; array ranges: -EFAULT; chunks too
 * big for the translation area: -E2BIG; array copies: -EFAULT), stages a batch, runs the native
 * code, and copies the output mfns and `nr_exchanged` back only when the native code succeeded.
 * Those early returns and a failing native call leave guest memory untouched, so a failed compat
 * exchange does not report partial progress. A second batch is refused with -EINVAL, as the native
 * code then sees a non-zero start extent in the command.
 */

import {
  E2BIG,
  EFAULT,
  EINVAL,
  ENOMEM,
  EPERM,
  ESRCH,
  MEMOP_EXTENT_SHIFT,
  XENMEM_exchange,
  xen_memory_exchange,
  X86_32,
  X86_64,
  type GuestAbi,
} from '../../../abi/index.js';
import type { HypercallContext } from '../../xen.js';
import {
  U64_MASK,
  extentAllocator,
  callerMaxOrder,
  canStealPage,
  compatArrayAccessOk,
  exchangePolicy,
  freeGuestFrame,
  nativeArrayAccessOk,
  propagateNode,
  xsmTargetAllowed,
} from './common.js';
import { GuestPfnList, XlatPfnList, storeElements, type PfnList } from './pfn-list.js';
import { copyStruct, decodeReservation, type Reservation } from './reservation.js';

function exchangeOffsets(abi: GuestAbi) {
  return Object.freeze({
    size: xen_memory_exchange.sizeOf(abi),
    in: xen_memory_exchange.offsetOf(abi, 'in'),
    out: xen_memory_exchange.offsetOf(abi, 'out'),
    nrExchanged: xen_memory_exchange.offsetOf(abi, 'nr_exchanged'),
  });
}
const EXCH64 = exchangeOffsets(X86_64);
const EXCH32 = exchangeOffsets(X86_32);
/** `COMPAT_ARG_XLAT_SIZE` less the native struct: bytes for staged arrays per compat batch. */
const COMPAT_XLAT_SPACE = 2 * 4096 - EXCH64.size;

/** A `struct xen_memory_exchange` as the native code sees it. */
export interface Exchange {
  readonly in: Reservation;
  readonly out: Reservation;
  readonly nrExchanged: bigint;
}

/** Where `memory_exchange` reads and writes: the two arrays and the `nr_exchanged` field. */
export interface ExchangeIo {
  readonly inList: PfnList;
  readonly outList: PfnList;
  /** `guest_handle_subrange_okay` on `in` or `out`. */
  rangeOk(which: 'in' | 'out', first: bigint, count: bigint): boolean;
  /** `__copy_field_to_guest(arg, &exch, nr_exchanged)`; false on a fault. */
  storeNrExchanged(value: bigint): boolean;
}

function decodeExchange(raw: Uint8Array, compat: boolean): Exchange {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const o = compat ? EXCH32 : EXCH64;
  return {
    in: decodeReservation(raw, o.in, compat),
    out: decodeReservation(raw, o.out, compat),
    nrExchanged: compat ? BigInt(view.getUint32(o.nrExchanged, true)) : view.getBigUint64(o.nrExchanged, true),
  };
}

/** `memory_exchange` on an already copied struct. Returns 0 or -errno. */
export function memoryExchange(ctx: HypercallContext, exch: Exchange, io: ExchangeIo): number {
  const { xen, dom: caller } = ctx;
  const { in: inR, out: outR } = exch;
  let nrExchanged = exch.nrExchanged;
  const failEarly = (rc: number): number => (io.storeNrExchanged(nrExchanged) ? rc : -EFAULT);

  if (Math.max(inR.extentOrder, outR.extentOrder) > callerMaxOrder(xen, caller)) return failEarly(-EPERM);

  const inOrder = BigInt(inR.extentOrder);
  const outOrder = BigInt(outR.extentOrder);
  if (
    nrExchanged > inR.nrExtents ||
    inR.domid !== outR.domid ||
    U64_MASK >> inOrder < inR.nrExtents ||
    U64_MASK >> outOrder < outR.nrExtents ||
    ((inR.nrExtents << inOrder) & U64_MASK) !== ((outR.nrExtents << outOrder) & U64_MASK)
  ) {
    return failEarly(-EINVAL);
  }
  if (nrExchanged === inR.nrExtents) return 0;

  if (!io.rangeOk('in', nrExchanged, inR.nrExtents - nrExchanged)) return failEarly(-EFAULT);
  let inChunkOrder: number;
  let outChunkOrder: number;
  let outFirst: bigint;
  if (inR.extentOrder <= outR.extentOrder) {
    inChunkOrder = outR.extentOrder - inR.extentOrder;
    outChunkOrder = 0;
    outFirst = nrExchanged >> BigInt(inChunkOrder);
  } else {
    inChunkOrder = 0;
    outChunkOrder = inR.extentOrder - outR.extentOrder;
    outFirst = (nrExchanged << BigInt(outChunkOrder)) & U64_MASK;
  }
  if (!io.rangeOk('out', outFirst, (outR.nrExtents - outFirst) & U64_MASK)) return failEarly(-EFAULT);

  const node = propagateNode(caller, outR.memFlags);
  if (!node) return failEarly(-EINVAL);
  const d = xen.resolveDomid(caller, inR.domid);
  if (!d) return failEarly(-ESRCH);
  if (!xsmTargetAllowed(caller, d)) return failEarly(-EPERM);
  const alloc = extentAllocator(xen, d, outR.extentOrder, exchangePolicy(outR.memFlags, node), false);

  const machine = xen.machine;
  const inChunk = 2 ** inChunkOrder;
  const outChunk = 2 ** outChunkOrder;
  const inPages = 2 ** inR.extentOrder;
  const outPages = 2 ** outR.extentOrder;
  const word = new Uint32Array(2);
  const icShift = BigInt(inChunkOrder);
  const ocShift = BigInt(outChunkOrder);
  const iEnd = inR.nrExtents >> icShift;

  for (let i = nrExchanged >> icShift; i < iEnd; i++) {
    let rc = 0;
    // Steal a chunk's worth of input pages: all must be the domain's ordinary pages.
    const stolen: number[] = [];
    const seen = inChunk * inPages > 1 ? new Set<number>() : undefined;
    steal: for (let j = 0; j < inChunk; j++) {
      if (io.inList.read(((i << icShift) + BigInt(j)) & U64_MASK, 1, word) !== 1) {
        rc = -EFAULT;
        break;
      }
      const gmfn = (BigInt(word[1]!) << 32n) | BigInt(word[0]!);
      for (let k = 0; k < inPages; k++) {
        const m = (gmfn + BigInt(k)) & U64_MASK;
        const mfn = Number(m);
        if (m >= BigInt(machine.maxPage) || !canStealPage(xen, d, mfn) || seen?.has(mfn)) {
          rc = -EINVAL;
          break steal;
        }
        seen?.add(mfn);
        stolen.push(mfn);
      }
    }
    // Allocate a chunk's worth of output extents (not counted in tot_pages, like the stolen pages).
    const fresh: number[] = [];
    if (rc === 0) {
      for (let j = 0; j < outChunk; j++) {
        const mfn = alloc();
        if (mfn === undefined) {
          rc = -ENOMEM;
          break;
        }
        fresh.push(mfn);
      }
    }
    if (rc !== 0) {
      // Undo the chunk: the stolen pages go back (they never left here), the new extents are freed.
      for (const mfn of fresh) for (let p = 0; p < outPages; p++) freeGuestFrame(xen, mfn + p);
      nrExchanged = (i << icShift) & U64_MASK;
      return failEarly(rc);
    }

    // The chunk cannot fail any more: free the input pages, hand out the new extents.
    for (const mfn of stolen) freeGuestFrame(xen, mfn);
    for (let j = 0; j < outChunk; j++) {
      const index = ((i << ocShift) + BigInt(j)) & U64_MASK;
      if (io.outList.read(index, 1, word) !== 1) {
        rc = -EFAULT;
        continue;
      }
      const mfn = fresh[j]!;
      const gpfn = word[0]!; // the emulated m2p holds 32-bit entries
      for (let p = 0; p < outPages; p++) xen.setM2p(mfn + p, (gpfn + p) >>> 0);
      word[0] = mfn >>> 0;
      word[1] = Math.floor(mfn / 2 ** 32);
      if (!io.outList.write(index, 1, word)) rc = -EFAULT;
    }
    if (rc !== 0) {
      nrExchanged = (i << icShift) & U64_MASK;
      return failEarly(rc);
    }
  }

  nrExchanged = inR.nrExtents;
  return io.storeNrExchanged(nrExchanged) ? 0 : -EFAULT;
}

/** Stores one word of the guest's width at `va` (a raw copy: no range check). */
function storeGuestWord(ctx: HypercallContext, va: bigint, value: bigint, width: 4 | 8): boolean {
  const bytes = new Uint8Array(width);
  const view = new DataView(bytes.buffer);
  if (width === 8) view.setBigUint64(0, value & U64_MASK, true);
  else view.setUint32(0, Number(value & 0xffffffffn), true);
  return ctx.xen.copyToGuest(ctx.dom, va & U64_MASK, bytes);
}

/** XENMEM_exchange from an x86_64 caller; `arg` is the struct's guest VA. */
export function nativeExchange(ctx: HypercallContext, startExtent: bigint, arg: bigint): number {
  if (startExtent !== 0n) return -EINVAL;
  const raw = copyStruct(ctx, arg, EXCH64.size, false);
  if (!raw) return -EFAULT;
  const exch = decodeExchange(raw, false);
  const { xen, dom } = ctx;
  return memoryExchange(ctx, exch, {
    inList: new GuestPfnList(xen, dom, exch.in.extentStart, 8),
    outList: new GuestPfnList(xen, dom, exch.out.extentStart, 8),
    rangeOk: (which, first, count) =>
      nativeArrayAccessOk(which === 'in' ? exch.in.extentStart : exch.out.extentStart, first, count, 8),
    storeNrExchanged: (value) => storeGuestWord(ctx, arg + BigInt(EXCH64.nrExchanged), value, 8),
  });
}

/** XENMEM_exchange from an x86_32 caller: `compat_memory_op`'s translation around the native code. */
export function compatExchange(ctx: HypercallContext, cmd: number, arg: bigint): number {
  let command = cmd;
  let rc = 0;
  for (;;) {
    const raw = copyStruct(ctx, arg, EXCH32.size, true);
    if (!raw) return -EFAULT;
    const cmp = decodeExchange(raw, true);
    const inOrder = cmp.in.extentOrder;
    const outOrder = cmp.out.extentOrder;
    if (inOrder >= 32 || outOrder >= 32) return -EPERM;

    const delta = outOrder - inOrder;
    const nrExchanged = Number(cmp.nrExchanged);
    const inNr = Number(cmp.in.nrExtents);
    const outNr = Number(cmp.out.nrExtents);
    if (
      nrExchanged > inNr ||
      (delta > 0 && nrExchanged % 2 ** delta !== 0) ||
      0xffffffff >>> inOrder < inNr ||
      0xffffffff >>> outOrder < outNr ||
      (inNr << inOrder) >>> 0 !== (outNr << outOrder) >>> 0
    ) {
      return -EINVAL;
    }
    const inHandle = Number(cmp.in.extentStart);
    const outHandle = Number(cmp.out.extentStart);
    if (!compatArrayAccessOk(inHandle, inNr, 4) || !compatArrayAccessOk(outHandle, outNr, 4)) return -EFAULT;

    // How many input extents fit the translation area along with their outputs.
    let start = nrExchanged;
    let end = Math.floor(COMPAT_XLAT_SPACE / ((2 ** Math.abs(delta) + 1) * 8));
    if (end === 0) return -E2BIG;
    if (delta > 0) end = (end << delta) >>> 0;
    end = (end + start) >>> 0;
    if (end > inNr) end = inNr;

    // Stage the input array [start, end), then the output array over the same span in its units.
    const inGuest = new GuestPfnList(ctx.xen, ctx.dom, BigInt(inHandle), 4);
    const outGuest = new GuestPfnList(ctx.xen, ctx.dom, BigInt(outHandle), 4);
    const inXlat = new XlatPfnList(BigInt(start), Math.max(0, end - start));
    if (end > start && inGuest.read(BigInt(start), end - start, inXlat.words) < end - start) return -EFAULT;
    [start, end] = scale(start, end, delta);
    const outXlat = new XlatPfnList(BigInt(start), Math.max(0, end - start));
    if (end > start && outGuest.read(BigInt(start), end - start, outXlat.words) < end - start) return -EFAULT;
    [start, end] = scale(start, end, -delta);

    let natInNr = inNr;
    let natOutNr = outNr;
    let split = 0;
    if (end < inNr) {
      natInNr = end;
      natOutNr = delta >= 0 ? end >>> delta : (end << -delta) >>> 0;
      split = 1;
    }

    // The native code runs on the staged copy; its writes land in the translation area.
    let natNrExchanged = cmp.nrExchanged;
    if (command >>> MEMOP_EXTENT_SHIFT !== 0) return -EINVAL;
    rc = memoryExchange(
      ctx,
      {
        in: { ...cmp.in, nrExtents: BigInt(natInNr) },
        out: { ...cmp.out, nrExtents: BigInt(natOutNr) },
        nrExchanged: cmp.nrExchanged,
      },
      {
        inList: inXlat,
        outList: outXlat,
        rangeOk: () => true,
        storeNrExchanged: (value) => {
          natNrExchanged = value;
          return true;
        },
      },
    );
    if (rc < 0) return rc;

    // Copy back the output mfns of the extents done in this batch, then nr_exchanged.
    const doneTo = Number(natNrExchanged);
    const [outFrom, outTo] = scale(start, doneTo, delta);
    if (outTo > outFrom) {
      const src = outXlat.words.subarray(2 * (outFrom - Number(outXlat.first)));
      for (let k = 0; k < outTo - outFrom; k++) {
        if (src[2 * k + 1] !== 0) throw new Error('memory_op: an mfn for an x86_32 domain does not fit 32 bits');
      }
      if (storeElements(outGuest, BigInt(outFrom), outTo - outFrom, src) < outTo - outFrom) rc = -EFAULT;
    }
    if (!storeGuestWord(ctx, arg + BigInt(EXCH32.nrExchanged), natNrExchanged, 4)) rc = -EFAULT;
    if (rc < 0) return rc;

    command = (XENMEM_exchange | (Math.max(outFrom, outTo) << MEMOP_EXTENT_SHIFT)) >>> 0;
    if (split <= 0) break;
  }
  return rc;
}

/** Converts an extent span between input and output units as the compat code does (32-bit). */
function scale(start: number, end: number, delta: number): [number, number] {
  return delta > 0 ? [start >>> delta, end >>> delta] : [(start << -delta) >>> 0, (end << -delta) >>> 0];
}
