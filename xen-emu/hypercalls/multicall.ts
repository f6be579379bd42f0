/**
 * `HYPERVISOR_multicall(call_list, nr_calls)`, after Xen's xen/common/multicall.c (`do_multicall`,
 * and `compat_multicall` built from the same source for 32-bit guests) and
 * xen/arch/x86/pv/hypercall.c (`pv_do_multicall_call`).
 *
 * Each `multicall_entry` (the caller's ABI: 64 or 32 bytes) is read from guest memory, its `op` run
 * through the hypercall table with `args[0..4]` (Xen passes five), and the result stored back into
 * its `result` field (a guest word). A failing entry does not stop the batch: the guest checks
 * every `result`. The multicall itself returns 0, or -EFAULT when the list fails
 * `guest_handle_okay`, an entry cannot be read or its result cannot be written back.
 *
 * Nested multicall: a vCPU already in a multicall gets -EINVAL from the inner one (Xen's
 * MCSF_in_multicall). Only an entry of this batch can be inside it, so such an entry gets -EINVAL
 * in its `result` and the batch goes on. An `iret` entry ends the batch with its result (mc_exit).
 * Sub-calls reach observers as ordinary hypercall events, like Xen's sub-call trace records.
 * Release-build behaviour: the entries are not scribbled over after each call.
 */

import { EFAULT, EINVAL, __HYPERVISOR_iret, __HYPERVISOR_multicall, multicall_entry } from '../../abi/index.js';
import { guestArrayOkay } from '../pagetable.js';
import type { HypercallContext } from '../xen.js';

/** Arguments Xen passes from an entry's `args[6]`. */
const MULTICALL_ARGS = 5;

export function do_multicall(ctx: HypercallContext, args: readonly bigint[]): bigint {
  const { xen, dom } = ctx;
  const list = args[0]!;
  const nr = args[1]!;
  const abi = dom.abi;
  const width = abi.wordSize;
  const size = multicall_entry.sizeOf(abi);
  if (!guestArrayOkay(list, nr, size, dom.isCompat)) return BigInt(-EFAULT);

  const opAt = multicall_entry.offsetOf(abi, 'op');
  const resultAt = multicall_entry.offsetOf(abi, 'result');
  const argsAt = multicall_entry.offsetOf(abi, 'args');
  const word = (view: DataView, at: number): bigint => (width === 8 ? view.getBigUint64(at, true) : BigInt(view.getUint32(at, true)));
  const resultBytes = new Uint8Array(width);
  const resultView = new DataView(resultBytes.buffer);

  for (let i = 0n; i < nr; i++) {
    const entryVa = list + i * BigInt(size);
    const raw = xen.copyFromGuest(dom, entryVa, size);
    if (!raw) return BigInt(-EFAULT);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const op = word(view, opAt);
    let result: bigint;
    if (op === BigInt(__HYPERVISOR_multicall)) {
      result = BigInt(-EINVAL);
    } else {
      const callArgs: bigint[] = [];
      for (let k = 0; k < MULTICALL_ARGS; k++) callArgs.push(word(view, argsAt + k * width));
      // An op beyond any hypercall number has no handler: -ENOSYS from the dispatcher.
      result = xen.hypercall(dom.domid, op <= 0xffffffffn ? Number(op) : Number.MAX_SAFE_INTEGER, ...callArgs);
    }
    if (width === 8) resultView.setBigUint64(0, BigInt.asUintN(64, result), true);
    else resultView.setUint32(0, Number(BigInt.asUintN(32, result)), true);
    const stored = xen.copyToGuest(dom, entryVa + BigInt(resultAt), resultBytes);
    if (op === BigInt(__HYPERVISOR_iret)) return result;
    if (!stored) return BigInt(-EFAULT);
  }
  return 0n;
}
