/**
 * `HYPERVISOR_mmuext_op(ops, count, pdone, foreigndom)`, after Xen's `do_mmuext_op`
 * (xen/arch/x86/mm.c) and, for 32-bit guests, `compat_mmuext_op`
 * (xen/arch/x86/x86_64/compat/mm.c), which translates each 12-byte op to the native one first.
 *
 * - `foreigndom` is a `domid_t` here (bits 15:0 only): DOMID_SELF, another domain (privileged
 *   callers), DOMID_IO or DOMID_XEN; unknown (or the caller's own numeric id) is -ESRCH, XSM's
 *   refusal -EPERM, both before any op and without touching `pdone`.
 * - Pin/unpin validate and pin tables of the FD domain (pagetable.ts); pinning an already pinned
 *   table is -EINVAL; PIN_L4 on a 32-bit FD is accepted and does nothing (its top level is the L3).
 * - NEW_BASEPTR / NEW_USER_BASEPTR switch the caller's base pointers (-EPERM with a foreign FD;
 *   NEW_USER_BASEPTR is -EINVAL for a 32-bit guest). Flushes and INVLPG succeed without effect
 *   (the *_MULTI forms read their vCPU bitmap; a fault there is -EINVAL). CLEAR_PAGE and
 *   COPY_PAGE store through the choke point. MARK/UNMARK_SUPER are -EOPNOTSUPP; unknown -ENOSYS.
 * - Processing stops at the first failing op; `pdone` receives the number of ops done.
 */

import {
  EACCES,
  EFAULT,
  EINVAL,
  ENOSYS,
  EOPNOTSUPP,
  EPERM,
  ESRCH,
  MMUEXT_CLEAR_PAGE,
  MMUEXT_COPY_PAGE,
  MMUEXT_FLUSH_CACHE,
  MMUEXT_FLUSH_CACHE_GLOBAL,
  MMUEXT_INVLPG_ALL,
  MMUEXT_INVLPG_LOCAL,
  MMUEXT_INVLPG_MULTI,
  MMUEXT_MARK_SUPER,
  MMUEXT_NEW_BASEPTR,
  MMUEXT_NEW_USER_BASEPTR,
  MMUEXT_PIN_L1_TABLE,
  MMUEXT_PIN_L2_TABLE,
  MMUEXT_PIN_L3_TABLE,
  MMUEXT_PIN_L4_TABLE,
  MMUEXT_SET_LDT,
  MMUEXT_TLB_FLUSH_ALL,
  MMUEXT_TLB_FLUSH_LOCAL,
  MMUEXT_TLB_FLUSH_MULTI,
  MMUEXT_UNMARK_SUPER,
  MMUEXT_UNPIN_TABLE,
  MMU_UPDATE_PREEMPTED,
  X86_32,
  X86_64,
  mmuext_op,
  type GuestAbi,
} from '../../abi/index.js';
import { PageType, STAMP_ZERO } from '../machine.js';
import {
  addrOk,
  frameOwnedBy,
  getPgOwner,
  guestArrayOkay,
  newGuestCr3,
  newUserBaseptr,
  pinTable,
  toMfn,
  unpinTable,
  xsmTarget,
  type PageOwner,
} from '../pagetable.js';
import type { HypercallContext } from '../xen.js';
import { readGuestUint, writeGuestUint } from './mmu_update.js';

/** `mmuext_op`'s size and field offsets in one ABI. */
interface OpLayout {
  readonly size: number;
  readonly cmdAt: number;
  readonly arg1At: number;
  readonly arg2At: number;
}

function opLayout(abi: GuestAbi): OpLayout {
  return { size: mmuext_op.sizeOf(abi), cmdAt: mmuext_op.offsetOf(abi, 'cmd'), arg1At: mmuext_op.offsetOf(abi, 'arg1'), arg2At: mmuext_op.offsetOf(abi, 'arg2') };
}

/** Looked up once: the offsets are fixed, and every pin goes through here. */
const OP_LAYOUT_32 = opLayout(X86_32);
const OP_LAYOUT_64 = opLayout(X86_64);

/** Most LDT entries MMUEXT_SET_LDT accepts. */
const MAX_LDT_ENTS = 8192;

/** One decoded op: `cmd`, and the raw `arg1` / `arg2` words (zero-extended on x86_32). */
interface Op {
  readonly cmd: number;
  readonly arg1: bigint;
  readonly arg2: bigint;
}

function readWord(raw: Uint8Array, at: number, width: 4 | 8): bigint {
  const low = loadUint32(raw, at);
  const high = width === 8 ? loadUint32(raw, at + 4) : 0;
  return high === 0 ? BigInt(low) : (BigInt(high) << 32n) | BigInt(low);
}

/** The little-endian 32-bit value at `at` of `raw` (read from the bytes: a DataView per op cost more than the op). */
function loadUint32(raw: Uint8Array, at: number): number {
  return (raw[at]! | (raw[at + 1]! << 8) | (raw[at + 2]! << 16) | (raw[at + 3]! << 24)) >>> 0;
}

/** Runs one op; returns 0 or -errno. */
function runOp(ctx: HypercallContext, pgOwner: PageOwner, op: Op): number {
  const { xen, dom } = ctx;
  const self = pgOwner === dom;
  const writer = { domid: dom.domid, by: 'xen' as const };
  switch (op.cmd) {
    case MMUEXT_PIN_L1_TABLE:
    case MMUEXT_PIN_L2_TABLE:
    case MMUEXT_PIN_L3_TABLE:
    case MMUEXT_PIN_L4_TABLE: {
      // A 32-bit domain has no L4 of its own to pin: Xen ignores the request.
      if (op.cmd === MMUEXT_PIN_L4_TABLE && typeof pgOwner !== 'string' && pgOwner.isCompat) return 0;
      const level = (op.cmd - MMUEXT_PIN_L1_TABLE + 1) as PageType;
      return pinTable(xen, dom, pgOwner, toMfn(xen, op.arg1), level);
    }
    case MMUEXT_UNPIN_TABLE:
      return unpinTable(xen, pgOwner, toMfn(xen, op.arg1));
    case MMUEXT_NEW_BASEPTR:
      return self ? newGuestCr3(xen, dom, op.arg1) : -EPERM;
    case MMUEXT_NEW_USER_BASEPTR:
      // compat_mmuext_op refuses it while translating: 32-bit guests have one base pointer.
      if (dom.isCompat) return -EINVAL;
      return self ? newUserBaseptr(xen, dom, op.arg1) : -EPERM;
    case MMUEXT_TLB_FLUSH_LOCAL:
    case MMUEXT_TLB_FLUSH_ALL:
    case MMUEXT_INVLPG_LOCAL:
    case MMUEXT_INVLPG_ALL:
      // The emulator has no TLB: a flush is correct by construction.
      return self ? 0 : -EPERM;
    case MMUEXT_TLB_FLUSH_MULTI:
    case MMUEXT_INVLPG_MULTI:
      if (!self) return -EPERM;
      // vcpumask_to_pcpumask reads the bitmap one word per 64 (32) vCPUs; with one vCPU, one word.
      return xen.copyFromGuest(dom, op.arg2, dom.abi.wordSize) ? 0 : -EINVAL;
    case MMUEXT_FLUSH_CACHE:
    case MMUEXT_FLUSH_CACHE_GLOBAL:
      if (!self) return -EPERM;
      return dom.privileged ? 0 : -EACCES;
    case MMUEXT_SET_LDT: {
      if (!self) return -EPERM;
      const ents = Number(op.arg2 & 0xffffffffn);
      if (ents > MAX_LDT_ENTS || (ents !== 0 && ((op.arg1 & 0xfffn) !== 0n || !addrOk(op.arg1)))) return -EINVAL;
      return 0; // the emulator keeps no LDT
    }
    case MMUEXT_CLEAR_PAGE: {
      const mfn = toMfn(xen, op.arg1);
      if (!frameOwnedBy(xen, mfn, pgOwner) || xen.machine.pageType(mfn) !== PageType.None) return -EINVAL;
      xen.storeStamp(writer, mfn, STAMP_ZERO);
      return 0;
    }
    case MMUEXT_COPY_PAGE: {
      const src = toMfn(xen, op.arg2);
      if (!frameOwnedBy(xen, src, pgOwner)) return -EINVAL;
      const dst = toMfn(xen, op.arg1);
      if (!frameOwnedBy(xen, dst, pgOwner) || xen.machine.pageType(dst) !== PageType.None) return -EINVAL;
      const stamp = xen.machine.stampOf(src);
      if (stamp !== undefined) xen.storeStamp(writer, dst, stamp);
      else xen.storeBytes(writer, dst, 0, xen.machine.bytes(src).slice());
      return 0;
    }
    case MMUEXT_MARK_SUPER:
    case MMUEXT_UNMARK_SUPER:
      return -EOPNOTSUPP;
    default:
      return -ENOSYS;
  }
}

export function do_mmuext_op(ctx: HypercallContext, args: readonly bigint[]): bigint {
  const { xen, dom } = ctx;
  const ops = args[0]!;
  let count = Number(args[1]! & 0xffffffffn);
  const pdone = args[2]!;
  const foreigndom = Number(args[3]! & 0xffffffffn);

  if (count === MMU_UPDATE_PREEMPTED && ops === 0n) return BigInt(foreigndom | 0);
  const preempted = (count & MMU_UPDATE_PREEMPTED) !== 0;
  count = (count & ~MMU_UPDATE_PREEMPTED) >>> 0;
  const abi = dom.abi;
  const { size, cmdAt, arg1At, arg2At } = abi.wordSize === 8 ? OP_LAYOUT_64 : OP_LAYOUT_32;
  if (!guestArrayOkay(ops, BigInt(count), size, dom.isCompat)) return BigInt(-EFAULT);
  // compat_mmuext_op calls the native handler once per translated batch: never for no ops.
  if (dom.isCompat && count === 0) return 0n;
  const done = preempted && pdone !== 0n ? (readGuestUint(ctx, pdone) ?? 0) : 0;

  const pgOwner = getPgOwner(xen, dom, foreigndom & 0xffff);
  if (pgOwner === undefined) return BigInt(-ESRCH);
  const denied = xsmTarget(dom, pgOwner);
  if (denied !== 0) return BigInt(denied);

  const width = abi.wordSize;
  let rc = 0;
  let i = 0;
  for (; i < count; i++) {
    // Ops are re-read through the current tables each time: an op may switch base pointers.
    const raw = xen.copyFromGuest(dom, ops + BigInt(i * size), size);
    if (!raw) {
      rc = -EFAULT;
      break;
    }
    rc = runOp(ctx, pgOwner, { cmd: loadUint32(raw, cmdAt), arg1: readWord(raw, arg1At, width), arg2: readWord(raw, arg2At, width) });
    if (rc !== 0) break;
  }
  if (pdone !== 0n) writeGuestUint(ctx, pdone, (done + i) >>> 0);
  return BigInt(rc);
}
