/**
 * The guest's side of the hypercall ABI (Linux arch/x86/include/asm/xen/hypercall.h and the callers
 * that fill the argument structs): every argument struct and array is written, in the guest's own
 * layout, into the guest's own memory (the builder's scratch pages, standing in for the kernel
 * stack and static buffers), and the hypercall gets their VIRTUAL addresses (design decision 2).
 * Results are read back from the same memory. Writing the arguments and trapping into Xen are one
 * atomic step together: nobody else can see a half-written argument that Xen has not read yet.
 */

import {
  DOMID_SELF,
  GNTTABOP_map_grant_ref,
  GNTTABOP_setup_table,
  GNTTABOP_unmap_grant_ref,
  MEMOP_EXTENT_SHIFT,
  MMU_MACHPHYS_UPDATE,
  MMU_NORMAL_PT_UPDATE,
  PAGE_SIZE,
  XENMEM_exchange,
  XENMEM_maximum_reservation,
  __HYPERVISOR_grant_table_op,
  __HYPERVISOR_memory_op,
  __HYPERVISOR_mmu_update,
  __HYPERVISOR_mmuext_op,
  __HYPERVISOR_multicall,
  __HYPERVISOR_update_va_mapping,
  gnttab_map_grant_ref,
  gnttab_setup_table,
  gnttab_unmap_grant_ref,
  mmuext_op,
  multicall_entry,
  xen_memory_domain,
  xen_memory_exchange,
  xen_memory_reservation,
  type GuestAbi,
} from '../abi/index.js';
import type { Domain } from '../xen-emu/domain.js';
import type { Xen } from '../xen-emu/xen.js';
import { GuestKernelBug } from './errors.js';

/** Where the guest currently runs: which hypervisor and domain (both change when it resumes after a restore). */
export interface GuestBinding {
  xen: Xen;
  dom: Domain;
}

/** One mmu_update request. */
export interface MmuRequest {
  readonly ptr: bigint;
  readonly val: bigint;
}

/** One multicall entry: a hypercall number and its register arguments. */
export interface MulticallEntry {
  readonly op: number;
  readonly args: readonly bigint[];
}

const PAGE = BigInt(PAGE_SIZE);
/** Scratch pages used: 0 structs, 1 and 2 arrays, 3 multicall entries. */
const SCRATCH_PAGES_USED = 4;
/** The command bits of a memory_op's first argument (below MEMOP_EXTENT_SHIFT). */
const EXTENT_CMD_MASK = (1n << BigInt(MEMOP_EXTENT_SHIFT)) - 1n;

/** An MMU_NORMAL_PT_UPDATE request: write `val` into the entry at MACHINE address `pteMaddr`. */
export function ptUpdate(pteMaddr: bigint, val: bigint): MmuRequest {
  return { ptr: pteMaddr | BigInt(MMU_NORMAL_PT_UPDATE), val };
}

/** An MMU_MACHPHYS_UPDATE request: m2p[mfn] = pfn. */
export function machphysUpdate(mfn: bigint, pfn: bigint): MmuRequest {
  return { ptr: (mfn << 12n) | BigInt(MMU_MACHPHYS_UPDATE), val: pfn };
}

/** The little-endian 32-bit value at `at` of `bytes`. */
function loadUint32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

/** Guest words (`width` bytes each, little-endian, truncated to the width) in a new array. */
function wordBytes(values: readonly bigint[], width: 4 | 8): Uint8Array {
  const bytes = new Uint8Array(values.length * width);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => {
    if (width === 8) view.setBigUint64(i * 8, BigInt.asUintN(64, v), true);
    else view.setUint32(i * 4, Number(BigInt.asUintN(32, v)), true);
  });
  return bytes;
}

/** Where a struct's fields lie in one ABI, looked up once per guest (hot paths fill bytes directly). */
interface ReservationLayout {
  readonly size: number;
  readonly extentStart: number;
  readonly nrExtents: number;
  readonly extentOrder: number;
  readonly memFlags: number;
  readonly domid: number;
}

export class GuestHypercalls {
  private readonly abi: GuestAbi;
  private readonly width: 4 | 8;
  private readonly structVa: bigint;
  private readonly arrayVa: bigint;
  private readonly array2Va: bigint;
  private readonly multicallVa: bigint;
  private readonly reservationLayout: ReservationLayout;
  private readonly mmuextOpSize: number;
  private readonly mmuextCmdAt: number;
  private readonly mmuextArg1At: number;
  /** Argument bytes are built here and copied into guest memory by `put`, so one buffer serves every call. */
  private readonly scratch = new Uint8Array(PAGE_SIZE);
  private readonly scratchView = new DataView(this.scratch.buffer);
  /** `scratch.subarray(0, length)` by length, made once each: a view per call was a large part of a balloon operation. */
  private readonly scratchPrefixes: (Uint8Array | undefined)[] = [];

  constructor(
    private readonly binding: GuestBinding,
    /** VIRTUAL address of the first of the scratch pages the arguments go in. */
    scratchVa: bigint,
    scratchPages: number,
  ) {
    if (scratchPages < SCRATCH_PAGES_USED) {
      throw new GuestKernelBug(`hypercall buffers need ${SCRATCH_PAGES_USED} scratch pages, the builder gave ${scratchPages}`, BigInt(scratchPages));
    }
    this.abi = binding.dom.abi;
    this.width = this.abi.wordSize;
    this.structVa = scratchVa;
    this.arrayVa = scratchVa + PAGE;
    this.array2Va = scratchVa + 2n * PAGE;
    this.multicallVa = scratchVa + 3n * PAGE;
    this.reservationLayout = {
      size: xen_memory_reservation.sizeOf(this.abi),
      extentStart: xen_memory_reservation.offsetOf(this.abi, 'extent_start'),
      nrExtents: xen_memory_reservation.offsetOf(this.abi, 'nr_extents'),
      extentOrder: xen_memory_reservation.offsetOf(this.abi, 'extent_order'),
      memFlags: xen_memory_reservation.offsetOf(this.abi, 'mem_flags'),
      domid: xen_memory_reservation.offsetOf(this.abi, 'domid'),
    };
    this.mmuextOpSize = mmuext_op.sizeOf(this.abi);
    this.mmuextCmdAt = mmuext_op.offsetOf(this.abi, 'cmd');
    this.mmuextArg1At = mmuext_op.offsetOf(this.abi, 'arg1');
  }

  private get xen(): Xen {
    return this.binding.xen;
  }

  private get dom(): Domain {
    return this.binding.dom;
  }

  private call(nr: number, ...args: bigint[]): bigint {
    return this.xen.hypercall(this.dom.domid, nr, ...args);
  }

  /** The guest's own store of argument bytes; its buffers are always mapped, so a fault is a bug. */
  private put(va: bigint, bytes: Uint8Array): void {
    const rc = this.xen.guestStore(this.dom, va, bytes);
    if (rc !== 0) throw new GuestKernelBug(`store of hypercall arguments at 0x${va.toString(16)}`, BigInt(rc));
  }

  /** The first `length` bytes of the scratch buffer, zeroed, to build an argument in. */
  private zeroedScratch(length: number): Uint8Array {
    const bytes = (this.scratchPrefixes[length] ??= this.scratch.subarray(0, length));
    bytes.fill(0);
    return bytes;
  }

  /** One guest word (its width, little-endian) into the scratch buffer at `at`, truncated as a store of that width truncates. */
  private setScratchWord(at: number, value: bigint): void {
    if (value >= 0n && value <= 0xffffffffn) {
      // Most words (frame numbers, counts) fit 32 bits: no BigInt arithmetic.
      this.scratchView.setUint32(at, Number(value), true);
      if (this.width === 8) this.scratchView.setUint32(at + 4, 0, true);
    } else if (this.width === 8) this.scratchView.setBigUint64(at, BigInt.asUintN(64, value), true);
    else this.scratchView.setUint32(at, Number(BigInt.asUintN(32, value)), true);
  }

  private get(va: bigint, length: number): DataView {
    const raw = this.xen.guestLoad(this.dom, va, length);
    if (!raw) throw new GuestKernelBug(`load of hypercall results at 0x${va.toString(16)}`, -14n);
    return new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  }

  private words(values: readonly bigint[]): Uint8Array {
    if (values.length * this.width > this.scratch.length) return wordBytes(values, this.width);
    const bytes = this.zeroedScratch(values.length * this.width);
    for (let i = 0; i < values.length; i++) this.setScratchWord(i * this.width, values[i]!);
    return bytes;
  }

  private readWords(va: bigint, count: number): bigint[] {
    const raw = this.xen.guestLoad(this.dom, va, count * this.width);
    if (!raw) throw new GuestKernelBug(`load of hypercall results at 0x${va.toString(16)}`, -14n);
    // Assembled from 32-bit halves (a DataView per call cost more than the rest of the read).
    const out: bigint[] = [];
    for (let i = 0; i < count; i++) {
      const low = loadUint32(raw, i * this.width);
      const high = this.width === 8 ? loadUint32(raw, i * 8 + 4) : 0;
      out.push(high === 0 ? BigInt(low) : (BigInt(high) << 32n) | BigInt(low));
    }
    return out;
  }

  /** HYPERVISOR_mmu_update(reqs, count, NULL, DOMID_SELF): 0 or -errno. */
  mmuUpdate(reqs: readonly MmuRequest[]): bigint {
    const large = reqs.length * 16 > this.scratch.length;
    const bytes = large ? new Uint8Array(reqs.length * 16) : this.zeroedScratch(reqs.length * 16);
    const view = large ? new DataView(bytes.buffer) : this.scratchView;
    for (let i = 0; i < reqs.length; i++) {
      view.setBigUint64(i * 16, reqs[i]!.ptr, true);
      view.setBigUint64(i * 16 + 8, reqs[i]!.val, true);
    }
    this.put(this.arrayVa, bytes);
    return this.call(__HYPERVISOR_mmu_update, this.arrayVa, BigInt(reqs.length), 0n, BigInt(DOMID_SELF));
  }

  /** HYPERVISOR_mmuext_op with one op whose arg1 is an mfn (pin / unpin): 0 or -errno. */
  mmuextOp(cmd: number, mfn: bigint): bigint {
    const bytes = this.zeroedScratch(this.mmuextOpSize);
    this.scratchView.setUint32(this.mmuextCmdAt, cmd, true);
    if (this.width === 8) this.scratchView.setBigUint64(this.mmuextArg1At, mfn, true);
    else this.scratchView.setUint32(this.mmuextArg1At, Number(mfn), true);
    this.put(this.structVa, bytes);
    return this.call(__HYPERVISOR_mmuext_op, this.structVa, 1n, 0n, BigInt(DOMID_SELF));
  }

  /** The register arguments of update_va_mapping in this ABI: x86_32 passes the PTE split in two. */
  updateVaMappingArgs(va: bigint, pte: bigint, flags: bigint): bigint[] {
    return this.width === 4 ? [va, pte & 0xffffffffn, pte >> 32n, flags] : [va, pte, flags];
  }

  /** HYPERVISOR_update_va_mapping(va, pte, flags): 0 or -errno. */
  updateVaMapping(va: bigint, pte: bigint, flags = 0n): bigint {
    return this.width === 4
      ? this.call(__HYPERVISOR_update_va_mapping, va, pte & 0xffffffffn, pte >> 32n, flags)
      : this.call(__HYPERVISOR_update_va_mapping, va, pte, flags);
  }

  /** HYPERVISOR_multicall: the multicall's result and each entry's result (sign-extended). */
  multicall(entries: readonly MulticallEntry[]): { rc: bigint; results: bigint[] } {
    const size = multicall_entry.sizeOf(this.abi);
    if (entries.length * size > PAGE_SIZE) throw new GuestKernelBug(`multicall of ${entries.length} entries overflows its page`, BigInt(entries.length));
    const bytes = new Uint8Array(entries.length * size);
    const view = new DataView(bytes.buffer);
    const opAt = multicall_entry.offsetOf(this.abi, 'op');
    const argsAt = multicall_entry.offsetOf(this.abi, 'args');
    const set = (at: number, v: bigint): void => {
      if (this.width === 8) view.setBigUint64(at, BigInt.asUintN(64, v), true);
      else view.setUint32(at, Number(BigInt.asUintN(32, v)), true);
    };
    entries.forEach((e, i) => {
      set(i * size + opAt, BigInt(e.op));
      e.args.forEach((a, k) => set(i * size + argsAt + k * this.width, a));
    });
    this.put(this.multicallVa, bytes);
    const rc = this.call(__HYPERVISOR_multicall, this.multicallVa, BigInt(entries.length));
    const resultAt = multicall_entry.offsetOf(this.abi, 'result');
    const back = this.get(this.multicallVa, bytes.length);
    const results = entries.map((_, i) =>
      this.width === 8 ? BigInt.asIntN(64, back.getBigUint64(i * size + resultAt, true)) : BigInt(back.getInt32(i * size + resultAt, true)),
    );
    return { rc, results };
  }

  /** A `xen_memory_reservation` for DOMID_SELF, built in the scratch buffer at `at` (its padding zero). */
  private reservationBytes(extentStart: bigint, nrExtents: number, order: number, at = 0): Uint8Array {
    const r = this.reservationLayout;
    const bytes = at === 0 ? this.zeroedScratch(r.size) : this.scratch.subarray(at, at + r.size).fill(0);
    this.setScratchWord(at + r.extentStart, extentStart);
    this.setScratchWord(at + r.nrExtents, BigInt(nrExtents));
    this.scratchView.setUint32(at + r.extentOrder, order, true);
    this.scratchView.setUint32(at + r.memFlags, 0, true);
    this.scratchView.setUint16(at + r.domid, DOMID_SELF, true);
    return bytes;
  }

  /**
   * increase_reservation / decrease_reservation / populate_physmap on DOMID_SELF with `extents`
   * (nothing for increase) as the list: the count done, and the list as Xen left it.
   */
  reservation(op: number, extents: readonly bigint[], order = 0, count = extents.length): { done: number; list: bigint[] } {
    if (extents.length > 0) this.put(this.arrayVa, this.words(extents));
    this.put(this.structVa, this.reservationBytes(this.arrayVa, count, order));
    const done = Number(this.call(__HYPERVISOR_memory_op, BigInt(op) & EXTENT_CMD_MASK, this.structVa));
    return { done, list: this.readWords(this.arrayVa, count) };
  }

  /** XENMEM_maximum_reservation for DOMID_SELF: max_pages, or -errno. */
  maximumReservation(): bigint {
    const { bytes, view } = xen_memory_domain.alloc(this.abi);
    view.domid = DOMID_SELF;
    this.put(this.structVa, bytes);
    return this.call(__HYPERVISOR_memory_op, BigInt(XENMEM_maximum_reservation), this.structVa);
  }

  /**
   * XENMEM_exchange on DOMID_SELF: gives up `inFrames` (each an extent of `inOrder`) for `outPfns`
   * (each an extent of `outOrder`). Returns rc, nr_exchanged and the out list (new mfns on success).
   */
  exchange(inFrames: readonly bigint[], inOrder: number, outPfns: readonly bigint[], outOrder: number): { rc: bigint; nrExchanged: number; out: bigint[] } {
    this.put(this.arrayVa, this.words(inFrames));
    this.put(this.array2Va, this.words(outPfns));
    const size = xen_memory_exchange.sizeOf(this.abi);
    const bytes = new Uint8Array(size);
    const inAt = xen_memory_exchange.offsetOf(this.abi, 'in');
    const outAt = xen_memory_exchange.offsetOf(this.abi, 'out');
    bytes.set(this.reservationBytes(this.arrayVa, inFrames.length, inOrder), inAt);
    bytes.set(this.reservationBytes(this.array2Va, outPfns.length, outOrder), outAt);
    // nr_exchanged is already 0, as the caller must set it.
    this.put(this.structVa, bytes);
    const rc = this.call(__HYPERVISOR_memory_op, BigInt(XENMEM_exchange), this.structVa);
    const nrAt = xen_memory_exchange.offsetOf(this.abi, 'nr_exchanged');
    const nrView = this.get(this.structVa + BigInt(nrAt), this.width);
    const nrExchanged = Number(this.width === 8 ? nrView.getBigUint64(0, true) : BigInt(nrView.getUint32(0, true)));
    return { rc, nrExchanged, out: this.readWords(this.array2Va, outPfns.length) };
  }

  /** GNTTABOP_setup_table for DOMID_SELF: rc, status and the frame list (mfns). */
  gnttabSetupTable(nrFrames: number): { rc: bigint; status: number; frames: bigint[] } {
    const { bytes, view } = gnttab_setup_table.alloc(this.abi);
    view.dom = DOMID_SELF;
    view.nr_frames = nrFrames;
    view.frame_list = this.arrayVa;
    this.put(this.structVa, bytes);
    const rc = this.call(__HYPERVISOR_grant_table_op, BigInt(GNTTABOP_setup_table), this.structVa, 1n);
    const status = this.get(this.structVa + BigInt(gnttab_setup_table.offsetOf(this.abi, 'status')), 2).getInt16(0, true);
    return { rc, status, frames: status === 0 ? this.readWords(this.arrayVa, nrFrames) : [] };
  }

  /** GNTTABOP_map_grant_ref of one grant: rc, status, handle, dev_bus_addr. */
  gnttabMap(hostAddr: bigint, flags: number, ref: number, domid: number): { rc: bigint; status: number; handle: number; devBusAddr: bigint } {
    const { bytes, view } = gnttab_map_grant_ref.alloc(this.abi);
    view.host_addr = hostAddr;
    view.flags = flags;
    view.ref = ref;
    view.dom = domid;
    this.put(this.structVa, bytes);
    const rc = this.call(__HYPERVISOR_grant_table_op, BigInt(GNTTABOP_map_grant_ref), this.structVa, 1n);
    const raw = this.get(this.structVa, bytes.length);
    const back = gnttab_map_grant_ref.view(this.abi, Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength));
    return { rc, status: back.status, handle: back.handle, devBusAddr: back.dev_bus_addr };
  }

  /** GNTTABOP_unmap_grant_ref of one mapping: rc and status. */
  gnttabUnmap(hostAddr: bigint, handle: number): { rc: bigint; status: number } {
    const { bytes, view } = gnttab_unmap_grant_ref.alloc(this.abi);
    view.host_addr = hostAddr;
    view.dev_bus_addr = 0n;
    view.handle = handle;
    this.put(this.structVa, bytes);
    const rc = this.call(__HYPERVISOR_grant_table_op, BigInt(GNTTABOP_unmap_grant_ref), this.structVa, 1n);
    const status = this.get(this.structVa + BigInt(gnttab_unmap_grant_ref.offsetOf(this.abi, 'status')), 2).getInt16(0, true);
    return { rc, status };
  }
}
