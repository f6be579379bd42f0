/**
 * `HYPERVISOR_update_va_mapping`, after Xen's `__do_update_va_mapping` (xen/arch/x86/mm.c) with its
 * two entry points: x86_64 `do_update_va_mapping(va, val64, flags)` and the 32-bit
 * `compat_update_va_mapping(va, lo, hi, flags)`, where the 64-bit PTE arrives split in two
 * registers and is joined as `hi << 32 | lo`.
 *
 * Writes the L1 entry mapping `va` in the caller's current (kernel) page tables, validated as
 * MMU_NORMAL_PT_UPDATE validates it (pagetable.ts). -EINVAL when no present L2 entry leads to an L1
 * of the caller's (including any VA outside the guest's range). The UVMF flush type is accepted;
 * a UVMF_TLB_FLUSH / UVMF_INVLPG aimed at a vCPU bitmap reads that bitmap after the update, and a
 * fault there is -EFAULT (the entry stays written).
 */

import { EFAULT, EINVAL, UVMF_ALL, UVMF_FLUSHTYPE_MASK, UVMF_INVLPG, UVMF_LOCAL, UVMF_TLB_FLUSH } from '../../abi/index.js';
import { PageType } from '../machine.js';
import { findGuestL1e, frameOwnedBy, modL1Entry } from '../pagetable.js';
import type { HypercallContext } from '../xen.js';

export function do_update_va_mapping(ctx: HypercallContext, args: readonly bigint[]): bigint {
  const { xen, dom } = ctx;
  const va = args[0]!;
  const val = dom.isCompat ? ((args[2]! & 0xffffffffn) << 32n) | (args[1]! & 0xffffffffn) : args[1]!;
  const flags = dom.isCompat ? args[3]! : args[2]!;

  const l1 = findGuestL1e(xen, dom, va);
  if (!l1 || !frameOwnedBy(xen, l1.mfn, dom) || xen.machine.pageType(l1.mfn) !== PageType.L1) return BigInt(-EINVAL);
  const rc = modL1Entry({ xen, caller: dom, ptOwner: dom, pgOwner: dom, mfn: l1.mfn, index: l1.index, value: val, preserveAd: false });
  if (rc !== 0) return BigInt(rc);
  // UVMF_NONE with no bitmap (what the guest kernel passes): nothing to flush or read.
  if (flags === 0n) return 0n;

  const flushType = flags & UVMF_FLUSHTYPE_MASK;
  if (flushType === UVMF_TLB_FLUSH || flushType === UVMF_INVLPG) {
    const bitmap = flags & ~UVMF_FLUSHTYPE_MASK;
    // With one vCPU, vcpumask_to_pcpumask reads a single word of the bitmap.
    if (bitmap !== UVMF_LOCAL && bitmap !== UVMF_ALL && !xen.copyFromGuest(dom, bitmap, dom.abi.wordSize)) return BigInt(-EFAULT);
  }
  return 0n;
}
