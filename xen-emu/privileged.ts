/**
 * The privileged interface a toolstack uses, modelled on what libxc calls and nothing more
 * (design decision 6): domain info (`xc_domain_getinfo`), `XENMEM_maximum_ram_page`, the m2p
 * (`xc_map_m2p`), read-only foreign mapping (`xc_map_foreign_bulk`), page types
 * (`XEN_DOMCTL_getpageframeinfo3`), log-dirty (`XEN_DOMCTL_SHADOW_OP_*`), pause/unpause, and for
 * restore: domain creation, writable foreign mapping and vCPU context. A toolstack never reaches
 * into guest-emu objects; it sees guest memory only through this.
 */

import {
  DOMID_SELF,
  EINVAL,
  ENOMEM,
  XENMEM_decrease_reservation,
  XENMEM_populate_physmap,
  ENOENT,
  ESRCH,
  EPERM,
  PAGE_SIZE,
  XEN_DOMCTL_PFINFO_LPINTAB,
  XEN_DOMCTL_PFINFO_LTAB_SHIFT,
  XEN_DOMCTL_PFINFO_NOTAB,
  XEN_DOMCTL_PFINFO_XTAB,
  type GuestAbi,
} from '../abi/index.js';
import type { Domain } from './domain.js';
import { XlatPfnList } from './hypercalls/memory_op/pfn-list.js';
import { reservationOp } from './hypercalls/memory_op/reservation.js';
import { FLAG_PINNED, FLAG_XENHEAP, INVALID_M2P, Machine, PageType, TYPE_MASK } from './machine.js';
import { pinTable } from './pagetable.js';
import type { Xen } from './xen.js';

/** A typed failure of a privileged call: an errno as libxc would report it. */
export class PrivilegedError extends Error {
  override name = 'PrivilegedError';
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

export interface DomainInfo {
  readonly domid: number;
  readonly abi: GuestAbi;
  readonly totPages: number;
  readonly maxPages: number;
  /** MFN of the shared_info frame. */
  readonly sharedInfoMfn: number;
  readonly paused: boolean;
  readonly dying: boolean;
}

/**
 * `pageTypes`'s answer for each info byte `Machine.ownedFramesInto` reports (index
 * `Machine.NOT_OWNED`: a frame that is not the domain's): the bulk calls look it up per frame.
 */
const PAGE_TYPE_BY_INFO = new Uint32Array(256).map((_, info) => {
  if (info === Machine.NOT_OWNED || info & FLAG_XENHEAP) return XEN_DOMCTL_PFINFO_XTAB;
  const type = info & TYPE_MASK;
  if (type === PageType.None) return XEN_DOMCTL_PFINFO_NOTAB;
  return (type * 2 ** XEN_DOMCTL_PFINFO_LTAB_SHIFT + (info & FLAG_PINNED ? XEN_DOMCTL_PFINFO_LPINTAB : 0)) >>> 0;
});

/** The contents of a frame as the in-process channel carries it: real bytes or a content stamp. */
export type FrameContent = { readonly bytes: Uint8Array } | { readonly stamp: number };

export class PrivilegedInterface {
  constructor(
    private readonly xen: Xen,
    /**
     * The toolstack's domain (dom0-like), which must be privileged; undefined for a toolstack
     * outside every emulated domain (its stores are reported with writer -1).
     */
    readonly callerDomid?: number,
  ) {}

  private target(domid: number): Domain {
    if (this.callerDomid !== undefined) {
      const caller = this.xen.domain(this.callerDomid);
      if (!caller?.privileged) throw new PrivilegedError(EPERM, `domain ${this.callerDomid} is not privileged`);
    }
    const dom = this.xen.domain(domid);
    if (!dom) throw new PrivilegedError(ESRCH, `no domain ${domid}`);
    return dom;
  }

  /** `xc_domain_getinfo` for one domain. */
  domainInfo(domid: number): DomainInfo {
    const d = this.target(domid);
    return {
      domid: d.domid,
      abi: d.abi,
      totPages: d.totPages,
      maxPages: d.maxPages,
      sharedInfoMfn: d.sharedInfoMfn,
      paused: d.paused,
      dying: d.dying,
    };
  }

  /** `XENMEM_maximum_ram_page`: the highest machine frame + 1. */
  maximumRamPage(): number {
    return this.xen.machine.maxPage;
  }

  /** The m2p entry of `mfn` (`INVALID_M2P` when none or out of range), as the mapped m2p reads. */
  m2p(mfn: number): number {
    return this.xen.machine.isValidMfn(mfn) ? this.xen.machine.m2pOf(mfn) : INVALID_M2P;
  }

  /**
   * `xc_map_foreign_bulk`, read-only: a live view of each frame of `domid` (undefined where the
   * frame is not the domain's, with `errors[i]` = -EINVAL / -ENOENT as privcmd reports). Reads see
   * the frame's current contents; callers must not write through the views.
   */
  mapForeign(domid: number, mfns: readonly number[]): { pages: (Uint8Array | undefined)[]; errors: number[] } {
    this.target(domid);
    const m = this.xen.machine;
    const pages: (Uint8Array | undefined)[] = [];
    const errors: number[] = [];
    for (const mfn of mfns) {
      if (!m.isValidMfn(mfn)) {
        pages.push(undefined);
        errors.push(-EINVAL);
      } else if (m.ownerOf(mfn) !== domid) {
        pages.push(undefined);
        errors.push(-ENOENT);
      } else {
        pages.push(m.bytes(mfn));
        errors.push(0);
      }
    }
    return { pages, errors };
  }

  /** One frame's contents as the migration channel carries it, without materialising stamps. */
  frameContent(domid: number, mfn: number): FrameContent {
    this.target(domid);
    const m = this.xen.machine;
    if (!m.isValidMfn(mfn) || m.ownerOf(mfn) !== domid) throw new PrivilegedError(ENOENT, `mfn 0x${mfn.toString(16)} is not domain ${domid}'s`);
    const stamp = m.stampOf(mfn);
    return stamp === undefined ? { bytes: m.bytes(mfn).slice() } : { stamp };
  }

  /** The domain's shared_info frame, live (read-only for the toolstack). */
  sharedInfo(domid: number): Uint8Array {
    const d = this.target(domid);
    return this.xen.machine.bytes(d.sharedInfoMfn);
  }

  /**
   * `XEN_DOMCTL_getpageframeinfo3`: the type of each mfn for `domid`: XTAB for invalid or foreign
   * frames, L1–L4 TAB with LPINTAB when pinned, NOTAB otherwise.
   */
  pageTypes(domid: number, mfns: readonly number[]): number[] {
    this.target(domid);
    const m = this.xen.machine;
    return mfns.map((mfn) => {
      if (!m.isValidMfn(mfn) || m.ownerOf(mfn) !== domid || m.isXenHeap(mfn)) return XEN_DOMCTL_PFINFO_XTAB;
      const type = m.pageType(mfn);
      if (type === PageType.None) return XEN_DOMCTL_PFINFO_NOTAB;
      return type * 2 ** XEN_DOMCTL_PFINFO_LTAB_SHIFT + (m.isPinned(mfn) ? XEN_DOMCTL_PFINFO_LPINTAB : 0);
    });
  }

  // ------------------------------------------------------------------------------------------
  // Bulk forms for the migration hot paths (issue 8): the same answers as the per-frame calls
  // above, written into caller-owned typed arrays, one domain check per call.
  // ------------------------------------------------------------------------------------------

  private scratchInfos = new Uint8Array(0);

  /** `m2p` for `mfns[0, count)` into `out` (INVALID_M2P for frames outside the machine). */
  m2pInto(mfns: ArrayLike<number>, count: number, out: Uint32Array): void {
    this.xen.machine.m2psInto(mfns, count, out);
  }

  /**
   * `pageTypes`, `m2p` and `frameContent` for `mfns[0, count)` in one pass over the frames (the
   * saver's batch, the verification's chunk): `types[i]` as `pageTypes`, `m2ps[i]` as `m2p`, and
   * for a frame of the domain its stamp, or `materialised[i] = 1` when it holds real bytes (read
   * those with `frameContent`). A frame that is not the domain's gets stamp 0 and
   * `materialised[i] = 0` rather than an error: its type says XTAB.
   */
  frameInfoInto(domid: number, mfns: ArrayLike<number>, count: number, types: Uint32Array, m2ps: Uint32Array, stamps: Uint32Array, materialised: Uint8Array): void {
    this.target(domid);
    if (this.scratchInfos.length < count) this.scratchInfos = new Uint8Array(count);
    const infos = this.scratchInfos;
    this.xen.machine.ownedFramesInto(domid, mfns, count, infos, m2ps, stamps, materialised);
    for (let i = 0; i < count; i++) types[i] = PAGE_TYPE_BY_INFO[infos[i]!]!;
  }

  /** `XEN_DOMCTL_SHADOW_OP_ENABLE` with log-dirty. */
  enableLogDirty(domid: number): void {
    this.target(domid).logdirty.enable();
  }

  /** `XEN_DOMCTL_SHADOW_OP_OFF`. */
  disableLogDirty(domid: number): void {
    this.target(domid).logdirty.disable();
  }

  /** `XEN_DOMCTL_SHADOW_OP_PEEK` over pfns [0, pfns). */
  peekDirty(domid: number, pfns: number): Uint32Array {
    return this.target(domid).logdirty.peek(pfns);
  }

  /** `XEN_DOMCTL_SHADOW_OP_CLEAN` over pfns [0, pfns): the bitmap, then cleared. */
  cleanDirty(domid: number, pfns: number): Uint32Array {
    return this.target(domid).logdirty.clean(pfns);
  }

  /**
   * The parts of vCPU 0's context (`XEN_DOMCTL_getvcpucontext`) a PV save reads: the top page
   * table (`ctrlreg[3]`) and the start_info mfn the guest passed when it suspended (`rdx`/`edx`).
   */
  vcpuContext(domid: number): { readonly cr3Mfn: number; readonly startInfoMfn: number } {
    const d = this.target(domid);
    return { cr3Mfn: d.baseptrMfn, startInfoMfn: d.startInfoMfn };
  }

  pause(domid: number): void {
    this.target(domid).paused = true;
  }

  unpause(domid: number): void {
    this.target(domid).paused = false;
  }

  // ------------------------------------------------------------------------------------------
  // Restore side
  // ------------------------------------------------------------------------------------------

  /** `xc_domain_create` for a PV guest of `abi`, with its reservation limit. */
  createDomain(abi: GuestAbi, maxPages: number): DomainInfo {
    const dom = this.xen.createDomain({ abi, maxPages });
    return this.domainInfo(dom.domid);
  }

  destroyDomain(domid: number): void {
    this.target(domid);
    this.xen.destroyDomain(domid);
  }

  /**
   * Writes a whole frame of `domid` through a writable foreign mapping (restore): real bytes, or a
   * content stamp. Goes through Xen's store choke point like any store.
   */
  writeFrame(domid: number, mfn: number, content: FrameContent): void {
    this.target(domid);
    const m = this.xen.machine;
    if (!m.isValidMfn(mfn) || m.ownerOf(mfn) !== domid) throw new PrivilegedError(ENOENT, `mfn 0x${mfn.toString(16)} is not domain ${domid}'s`);
    const writer = { domid: this.callerDomid ?? -1, by: 'toolstack' as const };
    if ('stamp' in content) this.xen.storeStamp(writer, mfn, content.stamp);
    else {
      if (content.bytes.length !== PAGE_SIZE) throw new PrivilegedError(EINVAL, `a frame is ${PAGE_SIZE} bytes, got ${content.bytes.length}`);
      this.xen.storeBytes(writer, mfn, 0, content.bytes);
    }
  }

  /**
   * `xc_domain_populate_physmap_exact` for restore: gives `domid` one order-0 frame for each pfn
   * (the m2p set by Xen) and returns the mfns; throws ENOMEM when not all could be populated.
   */
  populatePhysmap(domid: number, pfns: readonly number[]): number[] {
    const dom = this.target(domid);
    const list = new XlatPfnList(0n, pfns.length);
    pfns.forEach((pfn, i) => {
      list.words[2 * i] = pfn >>> 0;
      list.words[2 * i + 1] = Math.floor(pfn / 2 ** 32);
    });
    const done = reservationOp(
      // The array lives in the toolstack's memory, which never faults: Xen's own staging area.
      { xen: this.xen, dom },
      XENMEM_populate_physmap,
      0n,
      { extentStart: 1n, nrExtents: BigInt(pfns.length), extentOrder: 0, memFlags: 0, domid: DOMID_SELF },
      { list, isNull: false, rangeOk: () => true },
    );
    if (done !== BigInt(pfns.length)) {
      throw new PrivilegedError(ENOMEM, `populated ${done} of ${pfns.length} pfns of domain ${domid}`);
    }
    return pfns.map((_, i) => list.words[2 * i]! + list.words[2 * i + 1]! * 2 ** 32);
  }

  private populateList = new XlatPfnList(0n, 0);

  /**
   * `populatePhysmap` for `pfns[0, count)`, the mfns written into `outMfns`; throws ENOMEM when
   * not all could be populated (as libxc's `_exact`).
   */
  populatePhysmapInto(domid: number, pfns: ArrayLike<number>, count: number, outMfns: Float64Array): void {
    const dom = this.target(domid);
    // One staging list reused call after call (Xen reads only the first `count` elements).
    if (this.populateList.length < count) this.populateList = new XlatPfnList(0n, count);
    const list = this.populateList;
    const words = list.words;
    for (let i = 0; i < count; i++) {
      const pfn = pfns[i]!;
      words[2 * i] = pfn >>> 0;
      words[2 * i + 1] = Math.floor(pfn / 2 ** 32);
    }
    const done = reservationOp(
      { xen: this.xen, dom },
      XENMEM_populate_physmap,
      0n,
      { extentStart: 1n, nrExtents: BigInt(count), extentOrder: 0, memFlags: 0, domid: DOMID_SELF },
      { list, isNull: false, rangeOk: () => true },
    );
    if (done !== BigInt(count)) throw new PrivilegedError(ENOMEM, `populated ${done} of ${count} pfns of domain ${domid}`);
    for (let i = 0; i < count; i++) outMfns[i] = words[2 * i]! + words[2 * i + 1]! * 2 ** 32;
  }

  /** `writeFrame` with a stamp for `mfns[0, count)` (one ownership check each, one choke-point call). */
  writeStamps(domid: number, mfns: ArrayLike<number>, stamps: ArrayLike<number>, count: number): void {
    this.target(domid);
    const bad = this.xen.machine.firstNotOwned(domid, mfns, count);
    if (bad < count) throw new PrivilegedError(ENOENT, `mfn 0x${mfns[bad]!.toString(16)} is not domain ${domid}'s`);
    this.xen.storeStamps({ domid: this.callerDomid ?? -1, by: 'toolstack' }, mfns, stamps, count);
  }

  /**
   * `XENMEM_decrease_reservation` issued by the toolstack for `domid` (restore freeing a pfn the
   * stream turned into XTAB): each mfn goes back to Xen; returns how many were released.
   */
  releaseFrames(domid: number, mfns: readonly number[]): number {
    const dom = this.target(domid);
    const list = new XlatPfnList(0n, mfns.length);
    mfns.forEach((mfn, i) => {
      list.words[2 * i] = mfn >>> 0;
      list.words[2 * i + 1] = Math.floor(mfn / 2 ** 32);
    });
    const done = reservationOp(
      { xen: this.xen, dom },
      XENMEM_decrease_reservation,
      0n,
      { extentStart: 1n, nrExtents: BigInt(mfns.length), extentOrder: 0, memFlags: 0, domid: DOMID_SELF },
      { list, isNull: false, rangeOk: () => true },
    );
    return Number(done);
  }

  /**
   * `MMUEXT_PIN_L<level>_TABLE` issued by the toolstack on `domid`'s frame (restore pins every
   * table the stream marked LPINTAB): Xen validates the table first. Throws with Xen's errno.
   */
  pinTable(domid: number, mfn: number, level: 1 | 2 | 3 | 4): void {
    const dom = this.target(domid);
    const rc = pinTable(this.xen, dom, dom, mfn, level as PageType);
    if (rc !== 0) throw new PrivilegedError(-rc, `pinning mfn 0x${mfn.toString(16)} of domain ${domid} as an L${level} table failed (${rc})`);
  }

  /** `XEN_DOMCTL_setvcpucontext` for vCPU 0 of a restored PV guest: the start_info mfn it resumes with. */
  setStartInfo(domid: number, mfn: number): void {
    const d = this.target(domid);
    if (this.xen.machine.ownerOf(mfn) !== domid) throw new PrivilegedError(EINVAL, `start_info mfn 0x${mfn.toString(16)} is not domain ${domid}'s`);
    d.startInfoMfn = mfn;
  }

  /** Sets vCPU 0's page-table base (`XEN_DOMCTL_setvcpucontext`'s cr3), as restore does. */
  setBaseptr(domid: number, mfn: number): void {
    const d = this.target(domid);
    if (this.xen.machine.ownerOf(mfn) !== domid) throw new PrivilegedError(EINVAL, `base pointer mfn 0x${mfn.toString(16)} is not domain ${domid}'s`);
    d.baseptrMfn = mfn;
  }
}
