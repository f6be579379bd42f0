/**
 * The restore side of a migration of an x86 PV guest (libxc `xg_sr_restore.c` and
 * `xg_sr_restore_x86_pv.c`), through the privileged interface of the receiving Xen only. A
 * `Restorer` is a `RecordSink`: the stream reader (a real byte stream) or the in-process channel
 * (stamps for page contents) feeds it the records that passed the restore rules, and it builds the
 * domain: populates per PAGE_DATA, localises page tables (pfn → mfn), frees a pfn that became XTAB
 * (stock libxc cannot, reference §1.9), and at the end of the stream writes start_info, pins the
 * page tables, writes the guest's p2m frames from its own p2m and applies the shared_info rules.
 *
 * Remus/COLO: after the first CHECKPOINT, records are buffered and applied only when the next
 * CHECKPOINT arrives, so a failover always resumes the last complete checkpoint.
 */

import {
  PAGE_SIZE,
  XEN_DOMCTL_PFINFO_BROKEN,
  XEN_DOMCTL_PFINFO_LPINTAB,
  XEN_DOMCTL_PFINFO_LTAB_SHIFT,
  XEN_DOMCTL_PFINFO_LTABTYPE_MASK,
  XEN_DOMCTL_PFINFO_NOTAB,
  XEN_DOMCTL_PFINFO_XALLOC,
  XEN_DOMCTL_PFINFO_XTAB,
  _PAGE_PRESENT,
  PTE_FRAME_MASK,
  shared_info,
  start_info,
  type GuestAbi,
} from '../abi/index.js';
import { PrivilegedError, type PrivilegedInterface } from '../xen-emu/privileged.js';
import type { DomainHeader } from './stream/domain-header.js';
import type { ImageHeader } from './stream/image-header.js';
import { columnTypeHasData, pageTypeHasData, type PageDataColumns, type PageDataEntry } from './stream/page-data.js';
import {
  REC_TYPE_CHECKPOINT,
  REC_TYPE_END,
  REC_TYPE_PAGE_DATA,
  REC_TYPE_SHARED_INFO,
  REC_TYPE_X86_PV_INFO,
  REC_TYPE_X86_PV_P2M_FRAMES,
  REC_TYPE_X86_PV_VCPU_BASIC,
} from './stream/record-types.js';
import type { StreamRecord } from './stream/records.js';
import type { RecordSink } from './stream/sinks.js';
import { decodeVcpuBasic } from './vcpu-context.js';

/** A stream that cannot be restored into the domain (beyond what the stream rules catch). */
export class RestoreError extends Error {
  override name = 'RestoreError';
  constructor(
    message: string,
    readonly pfn?: number,
  ) {
    super(message);
  }
}

/*
 * The pfn-indexed arrays hold mfn + 1 and type + 1, so that 0 means "none" and a grown array needs
 * no fill (a 512 GiB guest has 2^27 pfns). The limits are the old sentinels': an mfn below
 * 0xfffffffe, a u32 type other than 0xffffffff.
 */
const NO_MFN = 0;
const NOT_SENT = 0;
/** A p2m slot claimed by a populate in progress (never an mfn + 1 the emulated machine hands out). */
const POPULATING = 0xffffffff;

/** Each u32 word of the guest p2m's INVALID_P2M_ENTRY (all ones at either width). */
const INVALID_ENTRY_WORD = 0xffffffff;

/** 64-bit page-table entries in a page. */
const PTES_PER_PAGE = PAGE_SIZE / 8;
const PTE_PRESENT_BIT = Number(_PAGE_PRESENT);
/** `PTE_FRAME_MASK` split by halves: bits 31–12 of the low half, bits 19–0 (51–32) of the high one. */
const PTE_LOW_FLAG_BITS = Number(~PTE_FRAME_MASK & 0xfffn);
const PTE_FRAME_HIGH_BITS = Number((PTE_FRAME_MASK >> 32n) & 0xffffffffn);

/** Whether a type is L1TAB_PIN..L4TAB_PIN (XTAB, XALLOC and BROKEN also have the LPINTAB bit set). */
function isPinnedTableType(type: number): boolean {
  const level = (type & XEN_DOMCTL_PFINFO_LTABTYPE_MASK) >>> XEN_DOMCTL_PFINFO_LTAB_SHIFT;
  return (type & XEN_DOMCTL_PFINFO_LPINTAB) !== 0 && level >= 1 && level <= 4 && pageTypeHasData(type);
}

export interface RestoreStats {
  /** pfns populated (a pfn freed and populated again counts twice). */
  populated: number;
  /** pfns freed because the stream turned them into XTAB. */
  freed: number;
  /** Pages written with data. */
  pagesWritten: number;
  checkpoints: number;
}

export class Restorer implements RecordSink {
  /** PAGE_DATA columns are applied before record() returns, or copied while a checkpoint is buffered. */
  readonly retainsPageData = false;
  readonly abi: GuestAbi;
  private readonly width: 4 | 8;
  private readonly fpp: number;
  /** pfn → mfn + 1 of the receiving domain (NO_MFN when unpopulated). */
  private p2m = new Uint32Array(0);
  /** pfn → the type it was last sent with + 1 (NOT_SENT when never). */
  private types = new Uint32Array(0);
  private maxPfn = -1;
  /** The frame list: pfn of each p2m frame, in p2m order. */
  private p2mPfns: number[] = [];
  private sharedInfoPage: Uint8Array | undefined;
  private vcpuBasic: Uint8Array | undefined;
  /** Remus: records of the checkpoint being received, applied at its CHECKPOINT. */
  private buffered: StreamRecord[] | undefined;
  private done = false;
  /** Why the restore gave up, if it did, and at which stream offset. */
  failure: RestoreError | undefined;
  failureOffset: number | undefined;
  /**
   * Populated pfns whose last word in the stream was XTAB: a bit per pfn (sized with `p2m`), how
   * many are set, and the pfns whose bit was set, in arrival order (some cleared since).
   */
  private xtabPopulated = new Uint32Array(0);
  private xtabCount = 0;
  private xtabCandidates: number[] = [];
  /**
   * pfns that arrived typed as pinned tables, in arrival order (some retyped since): the only ones
   * completeRestore can pin, so it need not look at every pfn.
   */
  private pinCandidates: number[] = [];
  /**
   * Scratch: pfns to populate and their new mfns, data pages to stamp, PTE targets, a page being
   * built (a localised table, a p2m frame) for writeFrame, which copies it.
   */
  private populatePfns = new Float64Array(0);
  private readonly pteTargets = new Float64Array(PTES_PER_PAGE);
  private readonly localisedPage = new Uint8Array(PAGE_SIZE);
  private populatedMfns = new Float64Array(0);
  private stampMfns = new Float64Array(0);
  private stampValues = new Uint32Array(0);
  readonly stats: RestoreStats = { populated: 0, freed: 0, pagesWritten: 0, checkpoints: 0 };

  constructor(
    readonly tools: PrivilegedInterface,
    /** The domain the toolstack created for the incoming guest (libxl creates it before restore). */
    readonly domid: number,
    /** Called after each CHECKPOINT is applied (Remus): the secondary is consistent here. */
    private readonly onCheckpoint?: (n: number) => void,
  ) {
    this.abi = tools.domainInfo(domid).abi;
    this.width = this.abi.wordSize as 4 | 8;
    this.fpp = PAGE_SIZE / this.width;
  }

  get completed(): boolean {
    return this.done;
  }

  /** The highest pfn the stream described. */
  get highestPfn(): number {
    return this.maxPfn;
  }

  /** The receiver's p2m entry of `pfn`: its mfn, or undefined when unpopulated. */
  mfnOf(pfn: number): number | undefined {
    const m = pfn >= 0 && pfn < this.p2m.length ? this.p2m[pfn]! : NO_MFN;
    return m === NO_MFN ? undefined : m - 1;
  }

  /** The type `pfn` was last sent with, or undefined. */
  typeOf(pfn: number): number | undefined {
    const t = pfn >= 0 && pfn < this.types.length ? this.types[pfn]! : NOT_SENT;
    return t === NOT_SENT ? undefined : t - 1;
  }

  /** The frame list as last received. */
  get frameList(): readonly number[] {
    return this.p2mPfns;
  }

  headers(_image: ImageHeader, _domain: DomainHeader): void {
    // The stream rules have checked both headers; nothing to apply.
  }

  /**
   * Applies one record. A failure (a stream the domain cannot be built from, or Xen refusing a
   * step, e.g. a page table that no longer validates) is kept as `failure`, and the rest of the
   * stream is ignored: the receiver gives up, as libxc's restore does, without taking the sender
   * down with it (in-process, the sender's write would otherwise throw).
   */
  record(rec: StreamRecord, offset: number): void {
    if (this.failure) return;
    try {
      this.receive(rec);
    } catch (err) {
      if (!(err instanceof RestoreError) && !(err instanceof PrivilegedError)) throw err;
      this.failure = err instanceof RestoreError ? err : new RestoreError(err.message);
      this.failureOffset = offset;
    }
  }

  private receive(rec: StreamRecord): void {
    if (this.done) throw new RestoreError('record after the restore completed');
    if (rec.type === REC_TYPE_CHECKPOINT) {
      const pending = this.buffered ?? [];
      this.buffered = [];
      for (const r of pending) this.apply(r);
      this.releaseXtabPfns();
      this.stats.checkpoints++;
      this.onCheckpoint?.(this.stats.checkpoints);
      return;
    }
    if (rec.type === REC_TYPE_END) {
      if (this.buffered) for (const r of this.buffered.splice(0)) this.apply(r);
      this.completeRestore();
      return;
    }
    if (!this.buffered) this.apply(rec);
    // The sender reuses columns once record() returns (retainsPageData): a buffered copy keeps them.
    else if (rec.type === REC_TYPE_PAGE_DATA && rec.columns !== undefined) this.buffered.push(rec.columns.copy().record());
    else this.buffered.push(rec);
  }

  private apply(rec: StreamRecord): void {
    switch (rec.type) {
      case REC_TYPE_X86_PV_INFO:
        if (rec.guest_width !== this.width) {
          throw new RestoreError(`the stream's guest is ${rec.guest_width * 8}-bit, the receiving domain ${this.width * 8}-bit`);
        }
        return;
      case REC_TYPE_X86_PV_P2M_FRAMES: {
        this.expand(rec.p2m_end_pfn);
        const first = Math.floor(rec.p2m_start_pfn / this.fpp);
        rec.p2m_pfns.forEach((pfn, i) => {
          this.p2mPfns[first + i] = pfn;
        });
        return;
      }
      case REC_TYPE_PAGE_DATA:
        if (rec.columns !== undefined) this.pageDataColumns(rec.columns);
        else this.pageData(rec.entries);
        return;
      case REC_TYPE_SHARED_INFO:
        this.sharedInfoPage = rec.page.slice();
        return;
      case REC_TYPE_X86_PV_VCPU_BASIC:
        if (rec.vcpu_id === 0 && rec.context.length > 0) this.vcpuBasic = rec.context.slice();
        return;
      default:
        // TSC info, the other vcpu records, CPU policies: nothing the emulated Xen models.
        return;
    }
  }

  private expand(endPfn: number): void {
    if (endPfn <= this.maxPfn) return;
    const size = endPfn + 1;
    if (size > this.p2m.length) {
      const cap = Math.max(size, Math.min(this.p2m.length * 2, 2 ** 32));
      // Zeroed: NO_MFN and NOT_SENT.
      const p2m = new Uint32Array(cap);
      p2m.set(this.p2m);
      const types = new Uint32Array(cap);
      types.set(this.types);
      const xtab = new Uint32Array(Math.ceil(cap / 32));
      xtab.set(this.xtabPopulated);
      this.p2m = p2m;
      this.types = types;
      this.xtabPopulated = xtab;
    }
    this.maxPfn = endPfn;
  }

  /**
   * libxc `populate_pfns`: one frame for each of `pfns[0, count)` that has none yet (first
   * occurrences, in order), in one call; throws (leaving the p2m as it was) when Xen refuses.
   */
  private populate(pfns: ArrayLike<number>, count: number): void {
    if (this.populatePfns.length < count) {
      this.populatePfns = new Float64Array(count);
      this.populatedMfns = new Float64Array(count);
    }
    const fresh = this.populatePfns;
    const p2m = this.p2m;
    let n = 0;
    for (let i = 0; i < count; i++) {
      const pfn = pfns[i]!;
      if (p2m[pfn] !== NO_MFN) continue;
      // Marked while collecting, so a pfn listed twice is populated once.
      p2m[pfn] = POPULATING;
      fresh[n++] = pfn;
    }
    this.populateMarked(n);
  }

  /** Populates the `n` pfns `populatePfns` lists (marked POPULATING), or unmarks them and throws when Xen refuses. */
  private populateMarked(n: number): void {
    if (n === 0) return;
    const fresh = this.populatePfns;
    const p2m = this.p2m;
    const mfns = this.populatedMfns;
    try {
      this.tools.populatePhysmapInto(this.domid, fresh, n, mfns);
    } catch (err) {
      for (let j = 0; j < n; j++) p2m[fresh[j]!] = NO_MFN;
      throw err;
    }
    for (let j = 0; j < n; j++) p2m[fresh[j]!] = mfns[j]! + 1;
    this.stats.populated += n;
  }

  private pageData(entries: readonly PageDataEntry[]): void {
    for (const e of entries) {
      if (e.pfn > this.maxPfn) throw new RestoreError(`pfn 0x${e.pfn.toString(16)} outside domain maximum (0x${this.maxPfn.toString(16)})`, e.pfn);
    }
    // Types that need memory are populated first, in one call per record (libxc `populate_pfns`).
    const needMemory = entries.filter((e) => pageTypeHasData(e.type) || e.type === XEN_DOMCTL_PFINFO_XALLOC).map((e) => e.pfn);
    this.populate(needMemory, needMemory.length);
    for (const e of entries) {
      this.types[e.pfn] = (e.type >>> 0) + 1;
      if (isPinnedTableType(e.type >>> 0)) this.pinCandidates.push(e.pfn);
      if (e.type === XEN_DOMCTL_PFINFO_XTAB || e.type === XEN_DOMCTL_PFINFO_BROKEN) {
        // No frame on the sender, for now: a ballooned-out pfn, or one deferred to a later pass.
        // Only the last word counts, so the frame is freed when the state is whole (see below).
        if (this.p2m[e.pfn] !== NO_MFN) this.markXtab(e.pfn);
        continue;
      }
      this.unmarkXtab(e.pfn);
      if (!pageTypeHasData(e.type) || e.content === undefined) continue;
      const mfn = this.p2m[e.pfn]! - 1;
      const level = (e.type & XEN_DOMCTL_PFINFO_LTABTYPE_MASK) >>> XEN_DOMCTL_PFINFO_LTAB_SHIFT;
      if (level !== 0) {
        if (!('bytes' in e.content)) throw new RestoreError(`page-table pfn 0x${e.pfn.toString(16)} arrived as a content stamp`, e.pfn);
        this.tools.writeFrame(this.domid, mfn, { bytes: this.localise(e.content.bytes, level, e.pfn) });
      } else {
        this.tools.writeFrame(this.domid, mfn, e.content);
      }
      this.stats.pagesWritten++;
    }
  }

  /**
   * `pageData` for a record in columns (the in-process channel): the same steps and failures, with
   * one populate call for the record, the data pages' stamps written in bulk, and no object per pfn.
   * Stamps are written in order with the bytes pages: the pending ones go out before each page
   * written from bytes, and before a failure, so the domain is left as `pageData` would leave it.
   */
  private pageDataColumns(c: PageDataColumns): void {
    const { count, pfns, types, stamps, bytes, bytesIndexes } = c;
    this.populateColumns(c);

    if (this.stampMfns.length < count) {
      this.stampMfns = new Float64Array(count);
      this.stampValues = new Uint32Array(count);
    }
    const stampMfns = this.stampMfns;
    const stampValues = this.stampValues;
    // Stamps waiting for the next writeStamps (a counter in this frame, not in a closure: it
    // changes for every data page).
    let pending = 0;
    const p2m = this.p2m;
    const typeOfPfn = this.types;
    const xtab = this.xtabPopulated;
    // The next index holding bytes: walked with i instead of a Map lookup per pfn.
    let nextBytes = 0;
    let bytesAt = bytesIndexes.length > 0 ? bytesIndexes[0]! : -1;
    for (let i = 0; i < count; i++) {
      const pfn = pfns[i]!;
      const type = types[i]!;
      typeOfPfn[pfn] = type + 1;
      if (type & XEN_DOMCTL_PFINFO_LPINTAB && isPinnedTableType(type)) this.pinCandidates.push(pfn);
      const hasBytes = i === bytesAt;
      if (hasBytes) bytesAt = ++nextBytes < bytesIndexes.length ? bytesIndexes[nextBytes]! : -1;
      if (type === XEN_DOMCTL_PFINFO_XTAB || type === XEN_DOMCTL_PFINFO_BROKEN) {
        // As in pageData: freed only when the state is whole.
        if (p2m[pfn] !== NO_MFN) this.markXtab(pfn);
        continue;
      }
      if (xtab[pfn >>> 5]! & (1 << (pfn & 31))) this.unmarkXtab(pfn);
      if (!columnTypeHasData(type)) continue;
      const mfn = p2m[pfn]! - 1;
      const level = (type & XEN_DOMCTL_PFINFO_LTABTYPE_MASK) >>> XEN_DOMCTL_PFINFO_LTAB_SHIFT;
      if (level === 0 && !hasBytes) {
        stampMfns[pending] = mfn;
        stampValues[pending++] = stamps[i]!;
        continue;
      }
      this.writePendingStamps(pending);
      pending = 0;
      if (!hasBytes) throw new RestoreError(`page-table pfn 0x${pfn.toString(16)} arrived as a content stamp`, pfn);
      const page = bytes.get(i)!;
      this.tools.writeFrame(this.domid, mfn, { bytes: level !== 0 ? this.localise(page, level, pfn) : page });
      this.stats.pagesWritten++;
    }
    this.writePendingStamps(pending);
  }

  /** Writes the first `pending` stamps `pageDataColumns` collected. */
  private writePendingStamps(pending: number): void {
    if (pending === 0) return;
    this.tools.writeStamps(this.domid, this.stampMfns, this.stampValues, pending);
    this.stats.pagesWritten += pending;
  }

  /**
   * The range check of every pfn of `c`, then `populate` for those that need memory (data types
   * and XALLOC), in one pass: a pfn out of range throws before anything is populated.
   */
  private populateColumns(c: PageDataColumns): void {
    const { count, pfns, types } = c;
    if (this.populatePfns.length < count) {
      this.populatePfns = new Float64Array(count);
      this.populatedMfns = new Float64Array(count);
    }
    const fresh = this.populatePfns;
    const p2m = this.p2m;
    const maxPfn = this.maxPfn;
    let n = 0;
    for (let i = 0; i < count; i++) {
      const pfn = pfns[i]!;
      if (pfn > maxPfn) {
        for (let j = 0; j < n; j++) p2m[fresh[j]!] = NO_MFN;
        throw new RestoreError(`pfn 0x${pfn.toString(16)} outside domain maximum (0x${maxPfn.toString(16)})`, pfn);
      }
      const type = types[i]!;
      if (p2m[pfn] !== NO_MFN || !(columnTypeHasData(type) || type === XEN_DOMCTL_PFINFO_XALLOC)) continue;
      // Marked while collecting, so a pfn listed twice is populated once.
      p2m[pfn] = POPULATING;
      fresh[n++] = pfn;
    }
    this.populateMarked(n);
  }

  private markXtab(pfn: number): void {
    const bit = 1 << (pfn & 31);
    const word = this.xtabPopulated[pfn >>> 5]!;
    if (word & bit) return;
    this.xtabPopulated[pfn >>> 5] = word | bit;
    this.xtabCount++;
    this.xtabCandidates.push(pfn);
  }

  private unmarkXtab(pfn: number): void {
    const bit = 1 << (pfn & 31);
    const word = this.xtabPopulated[pfn >>> 5]!;
    if (!(word & bit)) return;
    this.xtabPopulated[pfn >>> 5] = word & ~bit;
    this.xtabCount--;
  }

  /**
   * Frees every populated pfn whose last word in the stream was XTAB: the sender has no frame
   * for it (it was ballooned out after it was sent). Stock libxc never does this (reference
   * §1.9); it is safe only once the state is whole — at the end of the stream or at a
   * checkpoint — because a live pass also sends XTAB for pfns it merely deferred, and page tables
   * already localised may still name their frames until the resend.
   */
  private releaseXtabPfns(): void {
    if (this.xtabCount === 0) {
      this.xtabCandidates = [];
      return;
    }
    // The candidates still marked, each once (its bit is cleared as it is taken).
    const release: number[] = [];
    for (const pfn of this.xtabCandidates) {
      const bit = 1 << (pfn & 31);
      if (!(this.xtabPopulated[pfn >>> 5]! & bit)) continue;
      this.xtabPopulated[pfn >>> 5]! &= ~bit;
      release.push(pfn);
    }
    this.xtabCandidates = [];
    this.xtabCount = 0;
    release.sort((a, b) => a - b);
    const mfns = release.map((pfn) => this.p2m[pfn]! - 1);
    const freed = this.tools.releaseFrames(this.domid, mfns);
    if (freed !== release.length) throw new RestoreError(`freed ${freed} of ${release.length} frames turned XTAB`, release[freed]);
    for (const pfn of release) this.p2m[pfn] = NO_MFN;
    this.stats.freed += release.length;
  }

  /** libxc `localise_pagetable`: each present entry's pfn becomes our mfn, populating it if needed. */
  private localise(bytes: Uint8Array, level: number, pfn: number): Uint8Array {
    // Into a scratch page: writeFrame copies it into the frame.
    const out = this.localisedPage;
    out.set(bytes);
    // Each 64-bit entry as (low, high) u32 halves: bit 0 present, bits 51–12 the frame.
    const words = new Uint32Array(out.buffer, out.byteOffset, PAGE_SIZE / 4);
    const targets = this.pteTargets;
    let n = 0;
    for (let i = 0; i < PTES_PER_PAGE; i++) {
      const lo = words[2 * i]!;
      if ((lo & PTE_PRESENT_BIT) === 0) continue;
      const target = (words[2 * i + 1]! & PTE_FRAME_HIGH_BITS) * 2 ** 20 + (lo >>> 12);
      if (target > this.maxPfn) {
        throw new RestoreError(`L${level} page table pfn 0x${pfn.toString(16)} entry ${i} names pfn 0x${target.toString(16)}, beyond max_pfn 0x${this.maxPfn.toString(16)}`, pfn);
      }
      targets[n++] = target;
    }
    this.populate(targets, n);
    for (let i = 0; i < PTES_PER_PAGE; i++) {
      const lo = words[2 * i]!;
      if ((lo & PTE_PRESENT_BIT) === 0) continue;
      const hi = words[2 * i + 1]!;
      const mfn = this.p2m[(hi & PTE_FRAME_HIGH_BITS) * 2 ** 20 + (lo >>> 12)]! - 1;
      // The frame bits become our mfn's: its low 20 bits in the low half, the rest in the high half.
      words[2 * i] = ((lo & PTE_LOW_FLAG_BITS) | ((mfn & 0xfffff) << 12)) >>> 0;
      words[2 * i + 1] = ((hi & ~PTE_FRAME_HIGH_BITS) | (Math.floor(mfn / 2 ** 20) & PTE_FRAME_HIGH_BITS)) >>> 0;
    }
    return out;
  }

  /**
   * The end of the stream (libxc `x86_pv_stream_complete`), or a Remus failover: vCPU 0's
   * context, start_info, page-table pins, the guest's p2m frames, shared_info.
   */
  complete(): void {
    if (this.done || this.failure) return;
    try {
      this.completeRestore();
    } catch (err) {
      if (!(err instanceof RestoreError) && !(err instanceof PrivilegedError)) throw err;
      this.failure = err instanceof RestoreError ? err : new RestoreError(err.message);
    }
  }

  private completeRestore(): void {
    if (!this.vcpuBasic) throw new RestoreError('no X86_PV_VCPU_BASIC record for vcpu0');
    if (!this.sharedInfoPage) throw new RestoreError('no SHARED_INFO record');
    const ctx = decodeVcpuBasic(this.abi, this.vcpuBasic);
    this.releaseXtabPfns();
    const levels = this.width === 8 ? 4 : 3;

    // start_info: its pfn must be a plain page we have; the rings' pfns become our mfns.
    const startInfoMfn = this.plainFrame(ctx.startInfoPfn, 'start_info (vcpu0 rdx/edx)');
    const si = Buffer.from(this.readFrame(startInfoMfn));
    const word = this.width;
    const getWord = (off: number): number => Number(word === 8 ? si.readBigUInt64LE(off) : BigInt(si.readUInt32LE(off)));
    const setWord = (off: number, v: number | bigint): void => {
      if (word === 8) si.writeBigUInt64LE(BigInt(v), off);
      else si.writeUInt32LE(Number(v), off);
    };
    for (const field of ['store_mfn', 'console.domU.mfn'] as const) {
      const off = start_info.offsetOf(this.abi, field);
      const pfn = getWord(off);
      const mfn = this.mfnOf(pfn);
      if (mfn === undefined) throw new RestoreError(`start_info.${field} names pfn 0x${pfn.toString(16)}, which the stream did not populate`, pfn);
      setWord(off, mfn);
    }
    setWord(start_info.offsetOf(this.abi, 'nr_pages'), this.maxPfn + 1);
    setWord(start_info.offsetOf(this.abi, 'shared_info'), BigInt(this.tools.domainInfo(this.domid).sharedInfoMfn) * BigInt(PAGE_SIZE));
    si.writeUInt32LE(0, start_info.offsetOf(this.abi, 'flags'));
    this.tools.writeFrame(this.domid, startInfoMfn, { bytes: new Uint8Array(si.buffer, si.byteOffset, PAGE_SIZE) });
    this.tools.setStartInfo(this.domid, startInfoMfn);

    // Pin every table the sender had pinned (libxc `pin_pagetables`), in pfn order, then the base
    // pointer: the pfns whose type (as last sent) is a pinned table, found among the candidates.
    const candidates = Float64Array.from(this.pinCandidates).sort();
    const types = this.types;
    for (let c = 0; c < candidates.length; c++) {
      const pfn = candidates[c]!;
      if ((c > 0 && pfn === candidates[c - 1]) || pfn > this.maxPfn) continue;
      const stored = types[pfn]!;
      if (stored === NOT_SENT || !isPinnedTableType(stored - 1)) continue;
      const level = ((stored - 1) & XEN_DOMCTL_PFINFO_LTABTYPE_MASK) >>> XEN_DOMCTL_PFINFO_LTAB_SHIFT;
      const mfn = this.mfnOf(pfn);
      if (mfn === undefined) throw new RestoreError(`pinned table pfn 0x${pfn.toString(16)} is not populated`, pfn);
      try {
        this.tools.pinTable(this.domid, mfn, level as 1 | 2 | 3 | 4);
      } catch (err) {
        if (!(err instanceof PrivilegedError)) throw err;
        throw new RestoreError(`Xen refused to pin pfn 0x${pfn.toString(16)} as an L${level} table (errno ${err.errno}): a table under it names a frame the stream left unfilled, freed, or typed otherwise`, pfn);
      }
    }
    const cr3Type = this.typeOf(ctx.cr3Pfn);
    const cr3Mfn = this.mfnOf(ctx.cr3Pfn);
    if (cr3Mfn === undefined || cr3Type === undefined || (cr3Type & XEN_DOMCTL_PFINFO_LTABTYPE_MASK) >>> XEN_DOMCTL_PFINFO_LTAB_SHIFT !== levels) {
      throw new RestoreError(`vcpu0 cr3 pfn 0x${ctx.cr3Pfn.toString(16)} is not an L${levels} table`, ctx.cr3Pfn);
    }
    this.tools.setBaseptr(this.domid, cr3Mfn);

    this.updateGuestP2m();
    this.writeSharedInfo();
    this.done = true;
  }

  private plainFrame(pfn: number, what: string): number {
    const mfn = this.mfnOf(pfn);
    const type = this.typeOf(pfn);
    if (mfn === undefined || type !== XEN_DOMCTL_PFINFO_NOTAB) throw new RestoreError(`${what} pfn 0x${pfn.toString(16)} is not a populated plain page`, pfn);
    return mfn;
  }

  private readFrame(mfn: number): Uint8Array {
    const { pages } = this.tools.mapForeign(this.domid, [mfn]);
    if (!pages[0]) throw new RestoreError(`cannot map mfn 0x${mfn.toString(16)} of domain ${this.domid}`);
    return pages[0].slice();
  }

  /** libxc `update_guest_p2m`: our p2m, at guest width, over the guest's p2m frames. */
  private updateGuestP2m(): void {
    const frames = Math.floor(this.maxPfn / this.fpp) + 1;
    for (let x = 0; x < frames; x++) {
      const pfn = this.p2mPfns[x];
      if (pfn === undefined) throw new RestoreError(`p2m frame ${x} was never named by X86_PV_P2M_FRAMES`);
      const mfn = this.plainFrame(pfn, `p2m frame ${x}`);
      // Guest-width entries as u32 words (two per entry on x86_64: the mfn, then 0; INVALID is all
      // ones), built in the scratch page: writeFrame copies it into the frame.
      const bytes = this.localisedPage;
      const words = new Uint32Array(bytes.buffer, bytes.byteOffset, PAGE_SIZE / 4);
      const first = x * this.fpp;
      const end = Math.min(first + this.fpp, this.maxPfn + 1);
      words.fill(INVALID_ENTRY_WORD);
      const p2m = this.p2m;
      if (this.width === 8) {
        for (let p = first; p < end; p++) {
          const m = p2m[p]!;
          if (m === NO_MFN) continue;
          words[2 * (p - first)] = m - 1;
          words[2 * (p - first) + 1] = 0;
        }
      } else {
        for (let p = first; p < end; p++) {
          const m = p2m[p]!;
          if (m !== NO_MFN) words[p - first] = m - 1;
        }
      }
      this.tools.writeFrame(this.domid, mfn, { bytes });
    }
  }

  /** libxc `x86_pv_process_record_shared_info` rules: vcpu_info and arch copied, fll 0, events masked. */
  private writeSharedInfo(): void {
    const abi = this.abi;
    const info = this.tools.domainInfo(this.domid);
    const page = this.tools.sharedInfo(this.domid).slice();
    const received = this.sharedInfoPage!;
    const vcpuEnd = shared_info.offsetOf(abi, 'evtchn_pending');
    page.set(received.subarray(0, vcpuEnd), 0);
    const archAt = shared_info.offsetOf(abi, 'arch');
    page.set(received.subarray(archAt, shared_info.sizeOf(abi)), archAt);
    const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
    const fll = shared_info.offsetOf(abi, 'arch.pfn_to_mfn_frame_list_list');
    for (let i = 0; i < this.width; i++) view.setUint8(fll + i, 0);
    const pending = shared_info.offsetOf(abi, 'evtchn_pending');
    const mask = shared_info.offsetOf(abi, 'evtchn_mask');
    page.fill(0, pending, mask);
    page.fill(0xff, mask, mask + (mask - pending));
    const vcpuSize = shared_info.offsetOf(abi, 'vcpu_info[1]') - shared_info.offsetOf(abi, 'vcpu_info[0]');
    const selAt = shared_info.offsetOf(abi, 'vcpu_info[0].evtchn_pending_sel');
    for (let v = 0; v < 32; v++) page.fill(0, selAt + v * vcpuSize, selAt + v * vcpuSize + this.width);
    this.tools.writeFrame(this.domid, info.sharedInfoMfn, { bytes: page });
  }
}
