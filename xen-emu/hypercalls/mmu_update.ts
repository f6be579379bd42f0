/**
 * `HYPERVISOR_mmu_update(reqs, count, pdone, foreigndom)`, after Xen's `do_mmu_update`
 * (xen/arch/x86/mm.c). A 32-bit guest reaches the same native handler (`mmu_update` is identical
 * in both ABIs), so both take `count` and `foreigndom` as 32-bit values.
 *
 * - `ptr & 7` is the command; 4–7 give -ENOSYS.
 * - `foreigndom`: FD in bits 15:0 (the owner of mapped frames: DOMID_SELF, another domain, DOMID_IO
 *   or DOMID_XEN), PFD + 1 in bits 31:16 (the owner of the page tables; 0 for the caller). An
 *   unknown PFD is -ESRCH before anything else; an unknown FD (or the caller's own numeric id) is
 *   -ESRCH with `pdone` written; XSM refuses another domain's FD or PFD to an unprivileged caller
 *   with -EPERM at the first request that needs it.
 * - Page-table commands write the entry through pagetable.ts (validated for L1–L4 frames, a plain
 *   store for other frames), MMU_MACHPHYS_UPDATE sets the m2p and marks the new pfn dirty.
 * - Processing stops at the first failure, whose -errno is returned; `pdone` (when not NULL)
 *   receives the number of requests done. A count with MMU_UPDATE_PREEMPTED set is a continuation:
 *   the count done so far is read back from `pdone` first.
 */

import {
  EFAULT,
  EINVAL,
  ENOSYS,
  EPERM,
  ESRCH,
  MMU_MACHPHYS_UPDATE,
  MMU_NORMAL_PT_UPDATE,
  MMU_PT_UPDATE_NO_TRANSLATE,
  MMU_PT_UPDATE_PRESERVE_AD,
  MMU_UPDATE_PREEMPTED,
  PAGE_SIZE,
  X86_32,
  X86_64,
  mmu_update,
} from '../../abi/index.js';
import type { Domain } from '../domain.js';
import { INVALID_M2P, PageType } from '../machine.js';
import {
  GuestArrayReader,
  frameOwnedBy,
  getPgOwner,
  guestArrayOkay,
  modEntry,
  toMfn,
  xsmTarget,
  type PageOwner,
} from '../pagetable.js';
import type { HypercallContext, Xen } from '../xen.js';

const REQ_SIZE = 16;
/** `mmu_update`'s field offsets per ABI, looked up once. */
const FIELDS_32 = { ptrAt: mmu_update.offsetOf(X86_32, 'ptr'), valAt: mmu_update.offsetOf(X86_32, 'val') };
const FIELDS_64 = { ptrAt: mmu_update.offsetOf(X86_64, 'ptr'), valAt: mmu_update.offsetOf(X86_64, 'val') };

/** Reads the `unsigned int` at `va`, or undefined on a fault. */
export function readGuestUint(ctx: HypercallContext, va: bigint): number | undefined {
  const raw = ctx.xen.copyFromGuest(ctx.dom, va, 4);
  return raw && new DataView(raw.buffer, raw.byteOffset, 4).getUint32(0, true);
}

/** Writes the `unsigned int` at `va` (Xen ignores a fault here). */
export function writeGuestUint(ctx: HypercallContext, va: bigint, value: number): void {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value >>> 0, true);
  ctx.xen.copyToGuest(ctx.dom, va, bytes);
}

/** `xsm_mmu_update`: FD (unless DOMID_IO), then PFD when given, each under XSM_TARGET. */
function xsmMmuUpdate(d: Domain, ptOwner: Domain | undefined, pgOwner: PageOwner): number {
  const rc = pgOwner === 'dom_io' ? 0 : xsmTarget(d, pgOwner);
  return rc !== 0 || ptOwner === undefined ? rc : xsmTarget(d, ptOwner);
}

/** One MMU_NORMAL_PT_UPDATE / PRESERVE_AD / NO_TRANSLATE request. Returns 0 or -errno. */
function ptUpdate(xen: Xen, caller: Domain, ptOwner: Domain, pgOwner: PageOwner, reader: GuestArrayReader, ptr: bigint, val: bigint, cmd: number): number {
  const maddr = ptr & ~7n;
  const mfn = toMfn(xen, maddr >> 12n);
  // get_page_from_gfn(pt_owner, ...): for PV the gfn is the mfn, a frame pt_owner owns.
  if (!frameOwnedBy(xen, mfn, ptOwner)) return -EINVAL;
  const offset = Number(maddr & BigInt(PAGE_SIZE - 1));
  const type = xen.machine.pageType(mfn);
  if (type === PageType.None) {
    // An ordinary writable page: a plain 8-byte store.
    xen.storeWord({ domid: caller.domid, by: 'xen' }, mfn, offset, val, 8);
    reader.stored(mfn, offset);
    return 0;
  }
  // L2–L4 entries may only name the page-table owner's own frames.
  if (type !== PageType.L1 && pgOwner !== ptOwner) return -EINVAL;
  const rc = modEntry(
    { xen, caller, ptOwner, pgOwner, mfn, index: offset >> 3, value: val, preserveAd: cmd === MMU_PT_UPDATE_PRESERVE_AD },
    type,
  );
  // An upper-level update may promote or release other tables: walk again.
  if (type === PageType.L1) reader.stored(mfn, offset);
  else reader.invalidate();
  return rc;
}

/** MMU_MACHPHYS_UPDATE: m2p[ptr >> 12] = val for a frame FD owns; marks pfn `val` dirty. */
function machphysUpdate(xen: Xen, d: Domain, ptOwner: Domain, pgOwner: PageOwner, ptr: bigint, val: bigint): number {
  if (d !== ptOwner) return -EPERM;
  const rc = xsmMmuUpdate(d, undefined, pgOwner);
  if (rc !== 0) return rc;
  const mfn = toMfn(xen, ptr >> 12n);
  if (typeof pgOwner === 'string' || !frameOwnedBy(xen, mfn, pgOwner)) return -EINVAL;
  // The emulated m2p holds 32-bit pfns: a value that does not fit is stored as invalid.
  const pfn = val < BigInt(INVALID_M2P) ? Number(val) : INVALID_M2P;
  xen.setM2p(mfn, pfn);
  // paging_mark_pfn_dirty(pg_owner, val): the new pfn, whatever the frame's contents.
  if (pfn !== INVALID_M2P) pgOwner.logdirty.mark(pfn);
  return 0;
}

export function do_mmu_update(ctx: HypercallContext, args: readonly bigint[]): bigint {
  const { xen, dom } = ctx;
  const reqs = args[0]!;
  let count = Number(args[1]! & 0xffffffffn);
  const pdone = args[2]!;
  const foreigndom = Number(args[3]! & 0xffffffffn);

  // The tail of a continuation that carried the final result in `foreigndom`.
  if (count === MMU_UPDATE_PREEMPTED && reqs === 0n) return BigInt(foreigndom | 0);
  let done = 0;
  if ((count & MMU_UPDATE_PREEMPTED) !== 0) {
    count = (count & ~MMU_UPDATE_PREEMPTED) >>> 0;
    if (pdone !== 0n) done = readGuestUint(ctx, pdone) ?? 0;
  }
  // The native handler checks the array with the 64-bit access_ok, for 32-bit callers too.
  if (!guestArrayOkay(reqs, BigInt(count), REQ_SIZE, false)) return BigInt(-EFAULT);

  let ptOwner = dom;
  const ptDom = foreigndom >>> 16;
  if (ptDom !== 0) {
    // rcu_lock_domain_by_id: a plain id (DOMID_SELF names no domain here).
    const owner = xen.domain(ptDom - 1);
    if (!owner) return BigInt(-ESRCH);
    ptOwner = owner;
  }

  let rc = 0;
  let i = 0;
  const pgOwner = getPgOwner(xen, dom, foreigndom & 0xffff);
  if (pgOwner === undefined) {
    rc = -ESRCH;
  } else {
    const reader = new GuestArrayReader(xen, dom, reqs, REQ_SIZE);
    const { ptrAt, valAt } = dom.abi.wordSize === 8 ? FIELDS_64 : FIELDS_32;
    for (; i < count; i++) {
      const req = reader.read(i);
      if (!req) {
        rc = -EFAULT;
        break;
      }
      const ptr = req.getBigUint64(ptrAt, true);
      const val = req.getBigUint64(valAt, true);
      const cmd = Number(ptr & 7n);
      switch (cmd) {
        case MMU_NORMAL_PT_UPDATE:
        case MMU_PT_UPDATE_PRESERVE_AD:
        case MMU_PT_UPDATE_NO_TRANSLATE:
          rc = xsmMmuUpdate(dom, ptOwner, pgOwner);
          if (rc === 0) rc = ptUpdate(xen, dom, ptOwner, pgOwner, reader, ptr, val, cmd);
          break;
        case MMU_MACHPHYS_UPDATE:
          rc = machphysUpdate(xen, dom, ptOwner, pgOwner, ptr, val);
          break;
        default:
          rc = -ENOSYS;
      }
      if (rc !== 0) break;
    }
  }
  if (pdone !== 0n) writeGuestUint(ctx, pdone, (done + i) >>> 0);
  return BigInt(rc);
}
