/**
 * GNTTABOP_copy, as Xen's xen/common/grant_table.c (`gnttab_copy` and its helpers) and the compat
 * translation in compat/grant_table.c do it.
 *
 * Each side is a grant reference (its GNTCOPY_*_gref flag set: the granter's entry must grant the
 * caller access, and the handshake sets GTF_reading, plus GTF_writing for the destination, while
 * the grant is held) or a frame of the caller's own (`domid` must be DOMID_SELF, else
 * GNTST_permission_denied). Checks come in Xen's order: both domains, then the source and the
 * destination claimed, then `offset + len` of each side against the page (GNTST_bad_copy_arg).
 * A zero-length element succeeds without any check.
 *
 * Like Xen, a claimed side is kept across elements while the next element names the same domain
 * and the same grant or frame, and is released at the end of the batch or on an error; releasing
 * a destination grant marks its frame dirty again and clears the handshake flags.
 *
 * The copy itself is a store into the destination frame through the choke point, so the
 * destination domain's logdirty marks the frame's pfn.
 */

import {
  DOMID_SELF,
  EFAULT,
  GNTCOPY_dest_gref,
  GNTCOPY_source_gref,
  GNTST_bad_copy_arg,
  GNTST_bad_domain,
  GNTST_bad_gntref,
  GNTST_general_error,
  GNTST_okay,
  GNTST_permission_denied,
  PAGE_SIZE,
  gnttab_copy,
  type GuestAbi,
} from '../../../abi/index.js';
import type { Domain } from '../../domain.js';
import { GNTPIN_devw_mask, GNTPIN_hstr_inc, GNTPIN_hstw_inc, GNTPIN_hstw_mask, pinOverflowMask } from '../../grant-table.js';
import { PageType } from '../../machine.js';
import type { HypercallContext } from '../../xen.js';
import {
  domainByAnyId,
  getPagedFrame,
  getWord,
  grantTableOf,
  markDirty,
  readEntry,
  readGuest,
  reduceStatusForPin,
  setStatusV1,
  structOffsets,
  viewOf,
  writeStatus,
} from './common.js';

const COPY = structOffsets(gnttab_copy, [
  'source.u.ref',
  'source.domid',
  'source.offset',
  'dest.u.ref',
  'dest.domid',
  'dest.offset',
  'len',
  'flags',
  'status',
] as const);

/** `COMPAT_ARG_XLAT_SIZE / sizeof(struct gnttab_copy)` (native, 40 bytes): a compat batch. */
export const COMPAT_COPY_BATCH = Math.floor((2 * 4096) / 40);

/** One side of a copy element, as the guest wrote it. */
export interface CopySide {
  /** `u.ref` or `u.gmfn`: the union, a guest word (a ref uses its low 32 bits). */
  readonly u: bigint;
  readonly domid: number;
  readonly offset: number;
}

export interface CopyOp {
  readonly source: CopySide;
  readonly dest: CopySide;
  readonly len: number;
  readonly flags: number;
}

/** Decodes one `gnttab_copy` element in the caller's ABI. */
export function parseCopy(abi: GuestAbi, bytes: Uint8Array): CopyOp {
  const o = COPY[abi.name];
  const v = viewOf(bytes);
  return {
    source: { u: getWord(v, o['source.u.ref'], abi), domid: v.getUint16(o['source.domid'], true), offset: v.getUint16(o['source.offset'], true) },
    dest: { u: getWord(v, o['dest.u.ref'], abi), domid: v.getUint16(o['dest.domid'], true), offset: v.getUint16(o['dest.offset'], true) },
    len: v.getUint16(o.len, true),
    flags: v.getUint16(o.flags, true),
  };
}

export function copyLayout(abi: GuestAbi): { readonly size: number; readonly status: number } {
  return COPY[abi.name];
}

const REF_MASK = 0xffffffffn;

/** Xen's `struct gnttab_copy_buf`: one claimed side. */
interface CopyBuf {
  domain?: Domain;
  /** The domid the domain was locked by (DOMID_SELF stays DOMID_SELF). */
  domid: number;
  /** The union value last claimed (`ptr.u`): a ref claim replaces only its low 32 bits. */
  key: bigint;
  claimed: boolean;
  haveGrant: boolean;
  readonly: boolean;
  mfn: number;
}

function emptyBuf(): CopyBuf {
  return { domid: 0, key: 0n, claimed: false, haveGrant: false, readonly: false, mfn: -1 };
}

/** `acquire_grant_for_copy` (v1, no transitive grants): pins `ref` of `rd` for the caller. */
function acquireGrantForCopy(ctx: HypercallContext, rd: Domain, ref: number, readonly: boolean): number {
  const rgt = grantTableOf(ctx.xen, rd);
  const ldom = ctx.dom.domid;
  if (ref >= rgt.nrEntries) return GNTST_bad_gntref;
  const incr = readonly ? GNTPIN_hstr_inc : GNTPIN_hstw_inc;
  let act = rgt.activeEntry(ref);
  const pin = act?.pin ?? 0;
  if (act && pin !== 0 && (act.domid !== ldom || (pin & pinOverflowMask(incr)) !== 0)) return GNTST_general_error;

  if (pin === 0 || (!readonly && (pin & (GNTPIN_devw_mask | GNTPIN_hstw_mask)) === 0)) {
    const rc = setStatusV1(ctx, rgt, ref, pin, readonly, false, ldom);
    if (rc !== GNTST_okay) return rc;
    const mfn = getPagedFrame(ctx.xen, rd, BigInt(readEntry(ctx.xen, rgt, ref).frame));
    if (mfn < 0) {
      reduceStatusForPin(ctx, rgt, ref, pin, readonly);
      return mfn;
    }
    if (!act) act = rgt.activate(ref, ldom, mfn);
    else if (act.mfn !== mfn) {
      reduceStatusForPin(ctx, rgt, ref, pin, readonly);
      return GNTST_general_error;
    }
  } else if (!act || ctx.xen.machine.ownerOf(act.mfn) !== rd.domid) {
    reduceStatusForPin(ctx, rgt, ref, pin, readonly);
    return GNTST_bad_domain;
  }
  act.pin += incr;
  return act.mfn;
}

/** `release_grant_for_copy`. */
function releaseGrantForCopy(ctx: HypercallContext, rd: Domain, ref: number, readonly: boolean): void {
  const rgt = grantTableOf(ctx.xen, rd);
  const act = rgt.activeEntry(ref);
  if (!act) return;
  if (readonly) act.pin -= GNTPIN_hstr_inc;
  else {
    markDirty(ctx.xen, rd, act.mfn);
    act.pin -= GNTPIN_hstw_inc;
  }
  reduceStatusForPin(ctx, rgt, ref, act.pin, readonly);
  rgt.deactivateIfIdle(ref);
}

/** The claimed sides of one `gnttab_copy` call. */
export class CopyState {
  private readonly src = emptyBuf();
  private readonly dest = emptyBuf();

  constructor(private readonly ctx: HypercallContext) {}

  private releaseBuf(buf: CopyBuf): void {
    if (buf.claimed && buf.haveGrant && buf.domain) releaseGrantForCopy(this.ctx, buf.domain, Number(buf.key & REF_MASK), buf.readonly);
    buf.claimed = false;
    buf.haveGrant = false;
  }

  private unlockDomains(): void {
    this.src.domain = undefined;
    this.dest.domain = undefined;
  }

  /** Releases both sides: after an error and at the end of the call. */
  release(): void {
    this.releaseBuf(this.src);
    this.releaseBuf(this.dest);
  }

  /** Releases both sides and forgets the domains. */
  finish(): void {
    this.release();
    this.unlockDomains();
  }

  private lockDomain(side: CopySide, isGref: boolean, buf: CopyBuf): number {
    if (side.domid !== DOMID_SELF && !isGref) return GNTST_permission_denied;
    const d = domainByAnyId(this.ctx, side.domid);
    if (!d) return GNTST_bad_domain;
    buf.domain = d;
    buf.domid = side.domid;
    return GNTST_okay;
  }

  private claim(side: CopySide, buf: CopyBuf, isGref: boolean, readonly: boolean): number {
    const { xen } = this.ctx;
    buf.readonly = readonly;
    let mfn: number;
    if (isGref) {
      const ref = Number(side.u & REF_MASK);
      mfn = acquireGrantForCopy(this.ctx, buf.domain!, ref, readonly);
      if (mfn < 0) return mfn;
      buf.key = (buf.key & ~REF_MASK) | BigInt(ref);
      buf.haveGrant = true;
    } else {
      mfn = getPagedFrame(xen, buf.domain!, side.u);
      if (mfn < 0) return mfn;
      buf.key = side.u;
    }
    buf.mfn = mfn;
    buf.claimed = true;
    // A destination needs a writable type: a page-table frame cannot be written.
    if (!readonly && xen.machine.pageType(mfn) !== PageType.None) return GNTST_general_error;
    return GNTST_okay;
  }

  private valid(side: CopySide, buf: CopyBuf, isGref: boolean): boolean {
    if (!buf.claimed) return false;
    if (isGref) return buf.haveGrant && (side.u & REF_MASK) === (buf.key & REF_MASK);
    return side.u === buf.key;
  }

  /** `gnttab_copy_one`: the element's GNTST_* status. */
  copyOne(op: CopyOp): number {
    if (op.len === 0) return GNTST_okay;
    const srcGref = (op.flags & GNTCOPY_source_gref) !== 0;
    const destGref = (op.flags & GNTCOPY_dest_gref) !== 0;
    const { src, dest } = this;
    if (!src.domain || op.source.domid !== src.domid || !dest.domain || op.dest.domid !== dest.domid) {
      this.finish();
      let rc = this.lockDomain(op.source, srcGref, src);
      if (rc === GNTST_okay) rc = this.lockDomain(op.dest, destGref, dest);
      if (rc !== GNTST_okay) {
        this.unlockDomains();
        return rc;
      }
    }
    if (!this.valid(op.source, src, srcGref)) {
      this.releaseBuf(src);
      const rc = this.claim(op.source, src, srcGref, true);
      if (rc !== GNTST_okay) return rc;
    }
    if (!this.valid(op.dest, dest, destGref)) {
      this.releaseBuf(dest);
      const rc = this.claim(op.dest, dest, destGref, false);
      if (rc !== GNTST_okay) return rc;
    }
    if (op.source.offset + op.len > PAGE_SIZE || op.dest.offset + op.len > PAGE_SIZE) return GNTST_bad_copy_arg;
    const data = this.ctx.xen.machine.bytes(src.mfn).slice(op.source.offset, op.source.offset + op.len);
    this.ctx.xen.storeBytes({ domid: this.ctx.dom.domid, by: 'xen' }, dest.mfn, op.dest.offset, data);
    return GNTST_okay;
  }

  /** One element as `gnttab_copy` runs it: an error releases both sides. */
  run(op: CopyOp): number {
    const status = this.copyOne(op);
    if (status !== GNTST_okay) this.release();
    return status;
  }
}

/** Native `gnttab_copy`: 0 or -EFAULT; only `status` is copied back. */
export function gnttabCopy(ctx: HypercallContext, uop: bigint, count: number): number {
  const abi = ctx.dom.abi;
  const o = COPY[abi.name];
  const state = new CopyState(ctx);
  let rc = 0;
  for (let i = 0; i < count; i++) {
    const va = uop + BigInt(i * o.size);
    const bytes = readGuest(ctx, va, o.size);
    if (!bytes) {
      rc = -EFAULT;
      break;
    }
    const status = state.run(parseCopy(abi, bytes));
    if (!writeStatus(ctx, va + BigInt(o.status), status)) {
      rc = -EFAULT;
      break;
    }
  }
  state.finish();
  return rc;
}

/**
 * The compat `GNTTABOP_copy`: elements are translated in batches; a fault reading any element of a
 * batch fails the call before that batch runs. Each batch is its own native call (sides are
 * released between batches); statuses are copied back last to first.
 */
export function compatGnttabCopy(ctx: HypercallContext, uop: bigint, count: number): number {
  const abi = ctx.dom.abi;
  const o = COPY[abi.name];
  let i = 0;
  while (i < count) {
    const first = i;
    const ops: CopyOp[] = [];
    for (; ops.length < COMPAT_COPY_BATCH && i < count; i++) {
      const bytes = readGuest(ctx, uop + BigInt(i * o.size), o.size);
      if (!bytes) return -EFAULT;
      ops.push(parseCopy(abi, bytes));
    }
    const state = new CopyState(ctx);
    const statuses = ops.map((op) => state.run(op));
    state.finish();
    let rc = 0;
    for (let n = ops.length - 1; n >= 0; n--) {
      if (!writeStatus(ctx, uop + BigInt((first + n) * o.size + o.status), statuses[n]!)) rc = -EFAULT;
    }
    if (rc !== 0) return rc;
  }
  return 0;
}
