/**
 * Was a migration faithful? Compares a source domain (as of the save's final pass: the guest is
 * suspended there and nothing has changed it since) with the domain a `Restorer` built, pfn by
 * pfn, through the two privileged interfaces only:
 *
 * - which pfns are populated on each side (a pfn populated only on the destination is a leaked
 *   page the guest thinks it gave back; one missing there is memory the guest will fault on);
 * - each page's contents: data byte for byte (or stamp for stamp), page tables after turning each
 *   side's mfns into pfns through its own m2p, p2m frames entry by entry the same way, start_info
 *   except the fields restore is defined to rewrite;
 * - the destination's m2p for every frame it populated;
 * - after the guest resumed and republished: the guest's own p2m walk against the restored p2m.
 */

import {
  PAGE_SIZE,
  XEN_DOMCTL_PFINFO_LTAB_SHIFT,
  XEN_DOMCTL_PFINFO_LTABTYPE_MASK,
  XEN_DOMCTL_PFINFO_XTAB,
  _PAGE_PRESENT,
  PTE_FRAME_MASK,
  TOOLS_INVALID_MFN,
  start_info,
  type GuestAbi,
} from '../abi/index.js';
import { INVALID_M2P } from '../xen-emu/machine.js';
import type { Domain } from '../xen-emu/domain.js';
import { adjustGuestL1e, adjustGuestL2e, adjustGuestL3e, adjustGuestL4e } from '../xen-emu/pagetable.js';
import type { PrivilegedInterface } from '../xen-emu/privileged.js';
import { mapGuestP2m, P2mMapError, type MappedP2m } from './p2m-map.js';
import type { Restorer } from './restore.js';
import { sameContent } from './stream/page-content.js';

export type DifferenceKind = 'missing' | 'extra' | 'content' | 'm2p' | 'p2m';

export interface PfnDifference {
  readonly pfn: number;
  readonly kind: DifferenceKind;
  readonly detail: string;
}

export interface Comparison {
  /** pfns that differ in any way. */
  readonly differing: number;
  /** The first differences, in pfn order (at most `limit`). */
  readonly first: readonly PfnDifference[];
  /** A problem that stopped the comparison itself (e.g. the destination's p2m cannot be walked). */
  readonly problem?: string;
}

export interface Side {
  readonly tools: PrivilegedInterface;
  readonly domid: number;
}

function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

class Differences {
  readonly first: PfnDifference[] = [];
  private readonly pfns = new Set<number>();

  constructor(private readonly limit: number) {}

  add(pfn: number, kind: DifferenceKind, detail: string): void {
    if (this.pfns.has(pfn)) return;
    this.pfns.add(pfn);
    if (this.first.length < this.limit) this.first.push({ pfn, kind, detail });
  }

  result(problem?: string): Comparison {
    const first = [...this.first].sort((a, b) => a.pfn - b.pfn);
    return { differing: this.pfns.size, first, ...(problem ? { problem } : {}) };
  }
}

const ADJUST = [adjustGuestL1e, adjustGuestL2e, adjustGuestL3e, adjustGuestL4e] as const;

/**
 * A page table with each present entry's frame turned into a pfn through `side`'s m2p, and with
 * Xen's own adjustments applied (a PV64 kernel's entries get _PAGE_USER and Xen's kernel bit when
 * Xen validates them: a table pinned by restore has them, the builder's originals may not; the
 * adjustment is idempotent, so applying it to both sides compares what the guest means).
 */
function tableAsPfns(side: Side, mfn: number, width: 4 | 8, level: number): Uint8Array {
  const adjust = ADJUST[level - 1]!;
  const owner = { isCompat: width === 4 } as Domain;
  const page = side.tools.mapForeign(side.domid, [mfn]).pages[0]!.slice();
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  for (let i = 0; i < PAGE_SIZE / 8; i++) {
    // Xen's own slots are not the guest's (zeroed in the stream): leave them out of the comparison.
    if ((width === 8 && level === 4 && i >= 256 && i <= 271) || (width === 4 && level === 3 && i >= 4)) {
      view.setBigUint64(i * 8, 0n, true);
      continue;
    }
    const pte = view.getBigUint64(i * 8, true);
    if ((pte & _PAGE_PRESENT) === 0n) continue;
    const pfn = side.tools.m2p(Number((pte & PTE_FRAME_MASK) >> 12n));
    view.setBigUint64(i * 8, (adjust(pte, owner) & ~PTE_FRAME_MASK) | (BigInt(pfn) << 12n), true);
  }
  return page;
}

/** A p2m frame with each entry turned into the pfn its frame has on `side` (INVALID stays). */
function p2mFrameAsPfns(side: Side, mfn: number, abi: GuestAbi): number[] {
  const page = side.tools.mapForeign(side.domid, [mfn]).pages[0]!;
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  const out: number[] = [];
  for (let k = 0; k < PAGE_SIZE / abi.wordSize; k++) {
    const e = abi.wordSize === 8 ? view.getBigUint64(k * 8, true) : BigInt(view.getUint32(k * 4, true));
    const invalid = abi.wordSize === 8 ? e === TOOLS_INVALID_MFN : e === 0xffffffffn;
    out.push(invalid ? -1 : side.tools.m2p(Number(e & 0xffffffffffffn)));
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** start_info with the fields restore rewrites (rings, shared_info, nr_pages, flags) zeroed. */
function startInfoComparable(side: Side, mfn: number, abi: GuestAbi): Uint8Array {
  const page = side.tools.mapForeign(side.domid, [mfn]).pages[0]!.slice();
  for (const f of ['store_mfn', 'console.domU.mfn', 'shared_info', 'nr_pages'] as const) {
    page.fill(0, start_info.offsetOf(abi, f), start_info.offsetOf(abi, f) + abi.wordSize);
  }
  page.fill(0, start_info.offsetOf(abi, 'flags'), start_info.offsetOf(abi, 'flags') + 4);
  return page;
}

export interface CompareOptions {
  /**
   * `checkpoint`: a Remus checkpoint before the restore completed (p2m frames and start_info are
   * still the sender's and are left out); `final`: after the restore completed.
   */
  readonly stage: 'checkpoint' | 'final';
  /** Most differences listed (all are counted); default 20. */
  readonly limit?: number;
}

/** The source's p2m as the guest holds it now, mapped afresh (not the save's possibly stale mapping). */
function freshP2m(side: Side): MappedP2m | string {
  try {
    return mapGuestP2m(side.tools, side.domid);
  } catch (err) {
    if (err instanceof P2mMapError) return err.message;
    throw err;
  }
}

/** Compares the source domain with the restored one, pfn by pfn. */
export function compareDomains(src: Side, dst: Side & { readonly restorer: Restorer }, options: CompareOptions): Comparison {
  const diffs = new Differences(options.limit ?? 20);
  const abi = src.tools.domainInfo(src.domid).abi;
  const width = abi.wordSize as 4 | 8;
  const srcP2m = freshP2m(src);
  if (typeof srcP2m === 'string') return diffs.result(`the source's p2m cannot be mapped: ${srcP2m}`);
  const leafPfns = new Set(srcP2m.leafPfns);
  const startInfoMfn = src.tools.vcpuContext(src.domid).startInfoMfn;
  const startInfoPfn = startInfoMfn >= 0 ? src.tools.m2p(startInfoMfn) : INVALID_M2P;
  const end = Math.max(srcP2m.p2mSize, dst.restorer.highestPfn + 1);
  const BATCH = 1024;
  for (let base = 0; base < end; base += BATCH) {
    const count = Math.min(BATCH, end - base);
    const srcMfns: number[] = [];
    for (let i = 0; i < count; i++) {
      const pfn = base + i;
      const e = pfn < srcP2m.p2mSize ? srcP2m.entry(pfn) : TOOLS_INVALID_MFN;
      srcMfns.push(e === TOOLS_INVALID_MFN || e > srcP2m.maxMfn ? -1 : Number(e));
    }
    const srcTypes = src.tools.pageTypes(src.domid, srcMfns.map((m) => (m < 0 ? 0 : m)));
    for (let i = 0; i < count; i++) {
      const pfn = base + i;
      const ms = srcMfns[i]!;
      const srcHas = ms >= 0 && srcTypes[i] !== XEN_DOMCTL_PFINFO_XTAB && src.tools.m2p(ms) === pfn;
      const md = dst.restorer.mfnOf(pfn);
      if (srcHas && md === undefined) {
        diffs.add(pfn, 'missing', `pfn ${hex(pfn)} is populated on the source (mfn ${hex(ms)}) but not on the destination`);
        continue;
      }
      if (!srcHas) {
        if (md !== undefined) diffs.add(pfn, 'extra', `pfn ${hex(pfn)} is populated on the destination (mfn ${hex(md)}) but has no frame on the source`);
        continue;
      }
      if (md === undefined) continue;
      if (dst.tools.m2p(md) !== pfn) {
        diffs.add(pfn, 'm2p', `destination m2p of mfn ${hex(md)} is ${hex(dst.tools.m2p(md))}, not pfn ${hex(pfn)}`);
        continue;
      }
      const level = (srcTypes[i]! & XEN_DOMCTL_PFINFO_LTABTYPE_MASK) >>> XEN_DOMCTL_PFINFO_LTAB_SHIFT;
      if (leafPfns.has(pfn)) {
        if (options.stage === 'checkpoint') continue;
        const a = p2mFrameAsPfns(src, ms, abi);
        const b = p2mFrameAsPfns(dst, md, abi);
        const k = a.findIndex((v, j) => v !== b[j]);
        if (k >= 0) {
          const first = (srcP2m.leafPfns.indexOf(pfn)) * (PAGE_SIZE / width) + k;
          diffs.add(pfn, 'content', `p2m frame pfn ${hex(pfn)}: the entry of pfn ${hex(first)} names pfn ${hex(a[k]!)} on the source, ${hex(b[k]!)} on the destination`);
        }
      } else if (level !== 0) {
        const at = bytesEqual(tableAsPfns(src, ms, width, level), tableAsPfns(dst, md, width, level));
        if (at >= 0) diffs.add(pfn, 'content', `L${level} page table pfn ${hex(pfn)} differs at entry ${Math.floor(at / 8)}`);
      } else if (pfn === startInfoPfn) {
        if (options.stage === 'checkpoint') continue;
        const at = bytesEqual(startInfoComparable(src, ms, abi), startInfoComparable(dst, md, abi));
        if (at >= 0) diffs.add(pfn, 'content', `start_info pfn ${hex(pfn)} differs at byte ${at}`);
      } else if (!sameContent(src.tools.frameContent(src.domid, ms), dst.tools.frameContent(dst.domid, md))) {
        diffs.add(pfn, 'content', `pfn ${hex(pfn)}: the destination's page differs from the source's`);
      }
    }
  }
  return diffs.result();
}

/**
 * After the guest resumed on the destination and republished its p2m: the guest's own p2m walk
 * (as a toolstack would map it) must name exactly the frames the restore populated.
 */
export function compareGuestP2m(dst: Side & { readonly restorer: Restorer }, limit = 20): Comparison {
  const diffs = new Differences(limit);
  const p2m = freshP2m(dst);
  if (typeof p2m === 'string') return diffs.result(`the resumed guest's p2m cannot be mapped: ${p2m}`);
  const end = Math.max(p2m.p2mSize, dst.restorer.highestPfn + 1);
  for (let pfn = 0; pfn < end; pfn++) {
    const e = pfn < p2m.p2mSize ? p2m.entry(pfn) : TOOLS_INVALID_MFN;
    const walked = e === TOOLS_INVALID_MFN ? undefined : Number(e);
    const restored = dst.restorer.mfnOf(pfn);
    if (walked === restored) continue;
    if (pfn >= p2m.p2mSize) {
      diffs.add(pfn, 'p2m', `pfn ${hex(pfn)} is populated (mfn ${hex(restored!)}) beyond the resumed guest's max_pfn ${hex(p2m.maxPfn)}`);
    } else {
      diffs.add(pfn, 'p2m', `the resumed guest's p2m maps pfn ${hex(pfn)} to ${walked === undefined ? 'nothing' : `mfn ${hex(walked)}`}, the restore gave it ${restored === undefined ? 'nothing' : `mfn ${hex(restored)}`}`);
    }
  }
  return diffs.result();
}
