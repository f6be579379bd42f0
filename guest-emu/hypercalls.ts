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

/** An MMU_NORMAL_PT_UPDATE request: write `val` into the entry at MACHINE address `pteMaddr`. */
export function ptUpdate(pteMaddr: bigint, val: bigint): MmuRequest {
  return { ptr: pteMaddr | BigInt(MMU_NORMAL_PT_UPDATE), val };
}

/** An MMU_MACHPHYS_UPDATE request: m2p[mfn] = pfn. */
export function machphysUpdate(mfn: bigint, pfn: bigint): MmuRequest {
  return { ptr: (mfn << 12n) | BigInt(MMU_MACHPHYS_UPDATE), val: pfn };
}

export class GuestHypercalls {
  private readonly abi: GuestAbi;
  private readonly width: 4 | 8;
  private readonly structVa: bigint;
  private readonly arrayVa: bigint;
  private readonly array2Va: bigint;
  private readonly multicallVa: bigint;

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

  private get(va: bigint, length: number): DataView {
    const raw = this.xen.guestLoad(this.dom, va, length);
    if (!raw) throw new GuestKernelBug(`load of hypercall results at 0x${va.toString(16)}`, -14n);
    return new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  }

  private words(values: readonly bigint[]): Uint8Array {
    const bytes = new Uint8Array(values.length * this.width);
    const view = new DataView(bytes.buffer);
    values.forEach((v, i) => {
      if (this.width === 8) view.setBigUint64(i * 8, BigInt.asUintN(64, v), true);
      else view.setUint32(i * 4, Number(BigInt.asUintN(32, v)), true);
    });
    return bytes;
  }

  private readWords(va: bigint, count: number): bigint[] {
    const view = this.get(va, count * this.width);
    const out: bigint[] = [];
    for (let i = 0; i < count; i++) out.push(this.width === 8 ? view.getBigUint64(i * 8, true) : BigInt(view.getUint32(i * 4, true)));
    return out;
  }

  /** HYPERVISOR_mmu_update(reqs, count, NULL, DOMID_SELF): 0 or -errno. */
  mmuUpdate(reqs: readonly MmuRequest[]): bigint {
    const bytes = new Uint8Array(reqs.length * 16);
    const view = new DataView(bytes.buffer);
    reqs.forEach((r, i) => {
      view.setBigUint64(i * 16, r.ptr, true);
      view.setBigUint64(i * 16 + 8, r.val, true);
    });
    this.put(this.arrayVa, bytes);
    return this.call(__HYPERVISOR_mmu_update, this.arrayVa, BigInt(reqs.length), 0n, BigInt(DOMID_SELF));
  }

  /** HYPERVISOR_mmuext_op with one op whose arg1 is an mfn (pin / unpin): 0 or -errno. */
  mmuextOp(cmd: number, mfn: bigint): bigint {
    const { bytes, view } = mmuext_op.alloc(this.abi);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    view.cmd = cmd;
    const at = mmuext_op.offsetOf(this.abi, 'arg1');
    if (this.width === 8) dv.setBigUint64(at, mfn, true);
    else dv.setUint32(at, Number(mfn), true);
    this.put(this.structVa, bytes);
    return this.call(__HYPERVISOR_mmuext_op, this.structVa, 1n, 0n, BigInt(DOMID_SELF));
  }

  /** The register arguments of update_va_mapping in this ABI: x86_32 passes the PTE split in two. */
  updateVaMappingArgs(va: bigint, pte: bigint, flags: bigint): bigint[] {
    return this.width === 4 ? [va, pte & 0xffffffffn, pte >> 32n, flags] : [va, pte, flags];
  }

  /** HYPERVISOR_update_va_mapping(va, pte, flags): 0 or -errno. */
  updateVaMapping(va: bigint, pte: bigint, flags = 0n): bigint {
    return this.call(__HYPERVISOR_update_va_mapping, ...this.updateVaMappingArgs(va, pte, flags));
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

  private reservationBytes(extentStart: bigint, nrExtents: number, order: number): Uint8Array {
    const { bytes, view } = xen_memory_reservation.alloc(this.abi);
    view.extent_start = extentStart;
    view.nr_extents = BigInt(nrExtents);
    view.extent_order = order;
    view.mem_flags = 0;
    view.domid = DOMID_SELF;
    return bytes;
  }

  /**
   * increase_reservation / decrease_reservation / populate_physmap on DOMID_SELF with `extents`
   * (nothing for increase) as the list: the count done, and the list as Xen left it.
   */
  reservation(op: number, extents: readonly bigint[], order = 0, count = extents.length): { done: number; list: bigint[] } {
    if (extents.length > 0) this.put(this.arrayVa, this.words(extents));
    this.put(this.structVa, this.reservationBytes(this.arrayVa, count, order));
    const done = Number(this.call(__HYPERVISOR_memory_op, BigInt(op) & ((1n << BigInt(MEMOP_EXTENT_SHIFT)) - 1n), this.structVa));
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
