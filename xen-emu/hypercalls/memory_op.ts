/**
 * `memory_op(unsigned long cmd, void *arg)` for PV guests: Xen's `do_memory_op`
 * (xen/common/memory.c) for x86_64 callers and `compat_memory_op` (xen/common/compat/memory.c) in
 * front of it for x86_32 callers. `cmd & MEMOP_CMD_MASK` is the XENMEM_* sub-op and
 * `cmd >> MEMOP_EXTENT_SHIFT` the start extent.
 *
 * Emulated: increase_reservation, decrease_reservation, populate_physmap (memory_op/reservation.ts),
 * exchange (memory_op/exchange.ts), maximum_ram_page, current_reservation, maximum_reservation and
 * maximum_gpfn. Every other sub-op answers -ENOSYS (for unknown ops that is Xen's answer; the other
 * sub-ops Xen implements are outside this emulator).
 */

import {
  EINVAL,
  ENOSYS,
  EPERM,
  ESRCH,
  EFAULT,
  MEMOP_CMD_MASK,
  MEMOP_EXTENT_SHIFT,
  XENMEM_current_reservation,
  XENMEM_decrease_reservation,
  XENMEM_exchange,
  XENMEM_increase_reservation,
  XENMEM_maximum_gpfn,
  XENMEM_maximum_ram_page,
  XENMEM_maximum_reservation,
  XENMEM_populate_physmap,
  shared_info,
  xen_memory_domain,
} from '../../abi/index.js';
import type { Domain } from '../domain.js';
import type { HypercallContext } from '../xen.js';
import { xsmTargetAllowed } from './memory_op/common.js';
import { compatExchange, nativeExchange } from './memory_op/exchange.js';
import { compatReservation, copyStruct, nativeReservation } from './memory_op/reservation.js';

/** MEMOP_CMD_MASK and MEMOP_EXTENT_SHIFT as BigInts, converted once. */
const CMD_MASK = BigInt(MEMOP_CMD_MASK);
const EXTENT_SHIFT = BigInt(MEMOP_EXTENT_SHIFT);
const INT_MAX = 0x7fffffff;
const INT_MIN = -0x80000000;

/** The hypercall handler: `args[0]` is cmd, `args[1]` the argument's guest VA. */
export function do_memory_op(ctx: HypercallContext, args: readonly bigint[]): bigint {
  const cmd = args[0] ?? 0n;
  const arg = args[1] ?? 0n;
  if (ctx.dom.isCompat) return BigInt(compatMemoryOp(ctx, Number(cmd & 0xffffffffn), arg));
  return BigInt.asIntN(64, nativeMemoryOp(ctx, cmd, arg));
}

/** `do_memory_op`, as an x86_64 caller reaches it. */
function nativeMemoryOp(ctx: HypercallContext, cmd: bigint, arg: bigint): bigint {
  const op = Number(cmd & CMD_MASK);
  const startExtent = cmd >> EXTENT_SHIFT;
  switch (op) {
    case XENMEM_increase_reservation:
    case XENMEM_decrease_reservation:
    case XENMEM_populate_physmap:
      return nativeReservation(ctx, op, startExtent, arg);
    case XENMEM_exchange:
      return BigInt(nativeExchange(ctx, startExtent, arg));
    default:
      return statusOp(ctx, op, startExtent, arg);
  }
}

/** `compat_memory_op`: 32-bit cmd, results clamped to an int. */
function compatMemoryOp(ctx: HypercallContext, cmd: number, arg: bigint): number {
  const op = cmd & MEMOP_CMD_MASK;
  const startExtent = cmd >>> MEMOP_EXTENT_SHIFT;
  let rc: number;
  switch (op) {
    case XENMEM_increase_reservation:
    case XENMEM_decrease_reservation:
    case XENMEM_populate_physmap:
      rc = compatReservation(ctx, op, startExtent, arg);
      break;
    case XENMEM_exchange:
      rc = compatExchange(ctx, cmd, arg);
      break;
    default:
      // The status ops pass the guest's handle straight to the native code.
      rc = Number(statusOp(ctx, op, BigInt(startExtent), arg));
  }
  return Math.min(INT_MAX, Math.max(INT_MIN, rc));
}

/** maximum_ram_page, current_reservation, maximum_reservation, maximum_gpfn; -ENOSYS for the rest. */
function statusOp(ctx: HypercallContext, op: number, startExtent: bigint, arg: bigint): bigint {
  switch (op) {
    case XENMEM_maximum_ram_page:
      if (startExtent !== 0n) return BigInt(-EINVAL);
      return BigInt(ctx.xen.machine.maxPage);
    case XENMEM_current_reservation:
    case XENMEM_maximum_reservation:
    case XENMEM_maximum_gpfn: {
      if (startExtent !== 0n) return BigInt(-EINVAL);
      const raw = copyStruct(ctx, arg, xen_memory_domain.sizeOf(ctx.dom.abi), false);
      if (!raw) return BigInt(-EFAULT);
      const domid = raw[0]! | (raw[1]! << 8);
      const d = ctx.xen.resolveDomid(ctx.dom, domid);
      if (!d) return BigInt(-ESRCH);
      if (!xsmTargetAllowed(ctx.dom, d)) return BigInt(-EPERM);
      if (op === XENMEM_current_reservation) return BigInt(d.totPages);
      if (op === XENMEM_maximum_reservation) return BigInt(d.maxPages);
      return maximumGpfn(ctx, d);
    }
    default:
      return BigInt(-ENOSYS);
  }
}

/**
 * `domain_get_maximum_gpfn` for a PV domain: the guest publishes a pfn count, `arch.max_pfn` in its
 * shared_info (in the domain's own layout), and Xen returns `(max_pfn ?: 1) - 1`.
 */
function maximumGpfn(ctx: HypercallContext, d: Domain): bigint {
  const page = ctx.xen.machine.bytes(d.sharedInfoMfn);
  const at = shared_info.offsetOf(d.abi, 'arch.max_pfn');
  const view = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const maxPfn = d.isCompat ? BigInt(view.getUint32(at, true)) : view.getBigUint64(at, true);
  return (maxPfn === 0n ? 1n : maxPfn) - 1n;
}
