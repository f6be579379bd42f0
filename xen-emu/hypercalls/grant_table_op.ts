/**
 * `grant_table_op(cmd, uop, count)`: Xen's `do_grant_table_op` (xen/common/grant_table.c) and, for
 * x86_32 callers, `compat_grant_table_op` (xen/common/compat/grant_table.c), on an x86 host.
 *
 * Hypercall result: 0 once the batch is processed, each element's outcome in its own `status`
 * (GNTST_*); -EINVAL for `(int)count < 0`, stray bits above GNTTABOP_CMD_MASK, or `count != 1`
 * where one element is required; -EFAULT for an argument array Xen cannot reach or a failed
 * copy-back (elements before it stay processed); -ENOSYS for an unknown op. `cmd` and `count` are
 * C `unsigned int` parameters, so only their low 32 bits count on x86_64 too.
 *
 * Ops: map_grant_ref, unmap_grant_ref, unmap_and_replace (grant/map.ts); setup_table, query_size,
 * get_status_frames, set_version, get_version, swap_grant_ref (grant/table.ts); copy
 * (grant/copy.ts); transfer (grant/transfer.ts). dump_table has no handler in Xen's switch and
 * cache_flush exists only on Arm, so on x86 both are -ENOSYS (cache_flush even with upper bits).
 * Xen's preemption (continuations) is invisible to the guest and not modelled: a batch runs whole.
 */

import {
  EFAULT,
  EINVAL,
  ENOSYS,
  GNTTABOP_CMD_MASK,
  GNTTABOP_cache_flush,
  GNTTABOP_copy,
  GNTTABOP_get_status_frames,
  GNTTABOP_get_version,
  GNTTABOP_map_grant_ref,
  GNTTABOP_query_size,
  GNTTABOP_set_version,
  GNTTABOP_setup_table,
  GNTTABOP_swap_grant_ref,
  GNTTABOP_transfer,
  GNTTABOP_unmap_and_replace,
  GNTTABOP_unmap_grant_ref,
  gnttab_copy,
  gnttab_map_grant_ref,
  gnttab_swap_grant_ref,
  gnttab_transfer,
  gnttab_unmap_and_replace,
  gnttab_unmap_grant_ref,
  type StructInfo,
} from '../../abi/index.js';
import type { HypercallContext } from '../xen.js';
import { guestHandleOkay } from './grant/common.js';
import { compatGnttabCopy, gnttabCopy } from './grant/copy.js';
import { gnttabMapGrantRef, gnttabUnmapAndReplace, gnttabUnmapGrantRef } from './grant/map.js';
import {
  compatGnttabSetupTable,
  gnttabGetStatusFrames,
  gnttabGetVersion,
  gnttabQuerySize,
  gnttabSetVersion,
  gnttabSetupTable,
  gnttabSwapGrantRef,
} from './grant/table.js';
import { compatGnttabTransfer, gnttabTransfer } from './grant/transfer.js';

/** `(int)count < 0`. */
function negative(count: number): boolean {
  return (count | 0) < 0;
}

/** `do_grant_table_op`: the native entry point (and the compat pass-through for same-layout ops). */
function nativeGrantTableOp(ctx: HypercallContext, rawCmd: number, uop: bigint, count: number): number {
  if (negative(count)) return -EINVAL;
  const cmd = rawCmd & GNTTABOP_CMD_MASK;
  if (cmd !== GNTTABOP_cache_flush && (rawCmd & ~GNTTABOP_CMD_MASK) !== 0) return -EINVAL;
  // Array ops first check the array (`guest_handle_okay`).
  const array = (def: StructInfo, run: () => number): number =>
    guestHandleOkay(ctx.dom, uop, count, def.sizeOf(ctx.dom.abi)) ? run() : -EFAULT;
  switch (cmd) {
    case GNTTABOP_map_grant_ref:
      return array(gnttab_map_grant_ref, () => gnttabMapGrantRef(ctx, uop, count));
    case GNTTABOP_unmap_grant_ref:
      return array(gnttab_unmap_grant_ref, () => gnttabUnmapGrantRef(ctx, uop, count));
    case GNTTABOP_unmap_and_replace:
      return array(gnttab_unmap_and_replace, () => gnttabUnmapAndReplace(ctx, uop, count));
    case GNTTABOP_setup_table:
      return gnttabSetupTable(ctx, uop, count);
    case GNTTABOP_transfer:
      return array(gnttab_transfer, () => gnttabTransfer(ctx, uop, count));
    case GNTTABOP_copy:
      return array(gnttab_copy, () => gnttabCopy(ctx, uop, count));
    case GNTTABOP_query_size:
      return gnttabQuerySize(ctx, uop, count);
    case GNTTABOP_set_version:
      return gnttabSetVersion(ctx, uop);
    case GNTTABOP_get_status_frames:
      return gnttabGetStatusFrames(ctx, uop, count, false);
    case GNTTABOP_get_version:
      return gnttabGetVersion(ctx, uop);
    case GNTTABOP_swap_grant_ref:
      return array(gnttab_swap_grant_ref, () => gnttabSwapGrantRef(ctx, uop, count));
    default:
      return -ENOSYS;
  }
}

/**
 * `compat_grant_table_op`: setup_table, transfer, copy and get_status_frames have narrower x86_32
 * layouts and are translated; every other op (and any cmd with upper bits set) goes to the native
 * entry point unchanged.
 */
function compatGrantTableOp(ctx: HypercallContext, rawCmd: number, uop: bigint, count: number): number {
  const masked = rawCmd & GNTTABOP_CMD_MASK;
  const op = masked === GNTTABOP_cache_flush ? masked : rawCmd;
  switch (op) {
    case GNTTABOP_setup_table:
      return negative(count) ? -EINVAL : compatGnttabSetupTable(ctx, uop, count);
    case GNTTABOP_transfer:
      return negative(count) ? -EINVAL : compatGnttabTransfer(ctx, uop, count);
    case GNTTABOP_copy:
      return negative(count) ? -EINVAL : compatGnttabCopy(ctx, uop, count);
    case GNTTABOP_get_status_frames:
      return negative(count) ? -EINVAL : gnttabGetStatusFrames(ctx, uop, count, true);
    default:
      return nativeGrantTableOp(ctx, rawCmd, uop, count);
  }
}

/** The `__HYPERVISOR_grant_table_op` handler. */
export function do_grant_table_op(ctx: HypercallContext, args: readonly bigint[]): bigint {
  const cmd = Number(BigInt.asUintN(32, args[0] ?? 0n));
  const uop = args[1] ?? 0n;
  const count = Number(BigInt.asUintN(32, args[2] ?? 0n));
  const rc = ctx.dom.isCompat ? compatGrantTableOp(ctx, cmd, uop, count) : nativeGrantTableOp(ctx, cmd, uop, count);
  return BigInt(rc);
}
