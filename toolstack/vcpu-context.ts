/**
 * vCPU 0's `vcpu_guest_context` as X86_PV_VCPU_BASIC carries it: mfns already turned into pfns by
 * the saver (libxc `write_one_vcpu_basic`). The emulated Xen models one vCPU whose context a PV
 * save needs only in part: the start_info frame the guest passed when it suspended (rdx/edx) and
 * the page-table base (`ctrlreg[3]`, in `xen_pfn_to_cr3` form); the rest of the blob is what a
 * freshly suspended kernel vCPU would hold (online, in kernel mode), zero elsewhere.
 */

import { VGCF_in_kernel, VGCF_online, vcpu_guest_context, xen_cr3_to_pfn, xen_pfn_to_cr3, type GuestAbi } from '../abi/index.js';

export interface VcpuBasic {
  /** pfn of start_info (the saver's rdx/edx). */
  readonly startInfoPfn: number;
  /** pfn of the top-level page table (from `ctrlreg[3]`). */
  readonly cr3Pfn: number;
}

/** The start_info register: rdx on x86_64, edx on x86_32. */
function startInfoRegister(abi: GuestAbi): string {
  return abi.wordSize === 8 ? 'user_regs.rdx' : 'user_regs.edx';
}

export function encodeVcpuBasic(abi: GuestAbi, ctx: VcpuBasic): Uint8Array {
  const size = vcpu_guest_context.sizeOf(abi);
  const blob = Buffer.alloc(size);
  const word = abi.wordSize;
  const put = (off: number, v: bigint): void => {
    if (word === 8) blob.writeBigUInt64LE(v, off);
    else blob.writeUInt32LE(Number(v & 0xffffffffn), off);
  };
  blob.writeUInt32LE(VGCF_online | VGCF_in_kernel, vcpu_guest_context.offsetOf(abi, 'flags'));
  put(vcpu_guest_context.offsetOf(abi, startInfoRegister(abi)), BigInt(ctx.startInfoPfn));
  put(vcpu_guest_context.offsetOf(abi, 'ctrlreg[3]'), xen_pfn_to_cr3(abi, BigInt(ctx.cr3Pfn)));
  return new Uint8Array(blob.buffer, blob.byteOffset, size);
}

export function decodeVcpuBasic(abi: GuestAbi, blob: Uint8Array): VcpuBasic {
  const size = vcpu_guest_context.sizeOf(abi);
  if (blob.length !== size) throw new RangeError(`a ${abi.name} vcpu_guest_context is ${size} bytes, got ${blob.length}`);
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.length);
  const get = (off: number): bigint => (abi.wordSize === 8 ? b.readBigUInt64LE(off) : BigInt(b.readUInt32LE(off)));
  return {
    startInfoPfn: Number(get(vcpu_guest_context.offsetOf(abi, startInfoRegister(abi)))),
    cr3Pfn: Number(xen_cr3_to_pfn(abi, get(vcpu_guest_context.offsetOf(abi, 'ctrlreg[3]')))),
  };
}
