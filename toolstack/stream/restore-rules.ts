/**
 * libxc's restore rules for an x86 PV stream, as far as they depend on the stream alone (not on the
 * domain being built): what must come before what, what may appear once, which pfns are in range,
 * which vcpu blob sizes fit the guest width, and what a stream must hold by its end. Sources:
 * the spec's "Layout" and "v3 compat with v2" sections, and libxc's `xg_sr_restore.c` /
 * `xg_sr_restore_x86_pv.c` (what they refuse, paraphrased in each message).
 *
 * The reader applies these to records decoded from bytes; the writer applies the same rules to the
 * records it is given before they go anywhere, so the kit never writes a stream its reader (or
 * libxc) would refuse, and a stream kept in-process obeys exactly what a byte stream would.
 *
 * Memory is constant: nothing here is sized by a number taken from the stream.
 */

import { StreamOrderError, StreamTruncatedError, hex } from './errors.js';
import type { DomainHeader } from './domain-header.js';
import type { ImageHeader, StreamVersion } from './image-header.js';
import { pagesWithData } from './page-data.js';
import {
  REC_TYPE_CHECKPOINT,
  REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST,
  REC_TYPE_END,
  REC_TYPE_PAGE_DATA,
  REC_TYPE_SHARED_INFO,
  REC_TYPE_STATIC_DATA_END,
  REC_TYPE_VERIFY,
  REC_TYPE_X86_CPUID_POLICY,
  REC_TYPE_X86_MSR_POLICY,
  REC_TYPE_X86_PV_INFO,
  REC_TYPE_X86_PV_P2M_FRAMES,
  REC_TYPE_X86_PV_VCPU_BASIC,
  REC_TYPE_X86_TSC_INFO,
  recordName,
} from './record-types.js';
import type { StreamRecord } from './records.js';
import { p2mFramesNeeded } from './x86-pv-p2m-frames.js';
import { vcpuBlobProblem } from './x86-pv-vcpu.js';

/**
 * - `plain`: a save or a live migration; CHECKPOINT is refused and the stream ends with END.
 * - `checkpointed`: Remus/COLO; CHECKPOINT ends each consistent state, and the stream may stop at
 *   any record boundary after one (the primary failed: the secondary resumes the last checkpoint).
 * - `any`: CHECKPOINT allowed, END required (what verify-stream-v2 can check).
 */
export type StreamType = 'plain' | 'checkpointed' | 'any';

export interface RulesOptions {
  readonly streamType?: StreamType;
  /** The receiving domain's vcpu count (libxc: max_vcpu_id + 1); by default vcpu ids are not bounded. */
  readonly maxVcpus?: number;
  /** Records with bit 31 set that the kit does not know: `skip` (the spec, libxc) or `reject` (verify-stream-v2). */
  readonly optionalRecords?: 'skip' | 'reject';
}

export interface StreamSummary {
  readonly version: StreamVersion;
  readonly domain: DomainHeader;
  readonly guest_width: 4 | 8;
  readonly pt_levels: 3 | 4;
  /** Records read, END and CHECKPOINT included. */
  readonly records: number;
  readonly pageDataRecords: number;
  /** pfn entries over all PAGE_DATA records (a pfn resent counts again). */
  readonly pfns: number;
  /** Entries that carried a page of data. */
  readonly pagesWithData: number;
  /** The highest p2m_end_pfn: the domain's maximum pfn. */
  readonly max_pfn: number;
  readonly checkpoints: number;
  /** END, or `failover`: a checkpointed stream that stopped after a CHECKPOINT. */
  readonly endedBy: 'END' | 'failover';
  /** Records after the last CHECKPOINT of a failed-over stream, which a receiver discards. */
  readonly discardedRecords: number;
  /** Bytes of the stream (notional for an in-process stream). */
  readonly bytes: number;
}

export class RestoreRules {
  private image: ImageHeader | undefined;
  private domain: DomainHeader | undefined;
  private pvInfo: { guest_width: 4 | 8; pt_levels: 3 | 4 } | undefined;
  private staticDataEnd = false;
  private maxPfn: number | undefined;
  private vcpu0Basic = false;
  private ended = false;
  private records = 0;
  private pageDataRecords = 0;
  private pfns = 0;
  private withData = 0;
  private checkpoints = 0;
  private sinceCheckpoint = 0;
  private readonly streamType: StreamType;
  private readonly maxVcpus: number | undefined;
  private readonly optionalRecords: 'skip' | 'reject';

  constructor(options: RulesOptions = {}) {
    this.streamType = options.streamType ?? 'any';
    this.maxVcpus = options.maxVcpus;
    this.optionalRecords = options.optionalRecords ?? 'skip';
  }

  get isEnded(): boolean {
    return this.ended;
  }

  headers(image: ImageHeader, domain: DomainHeader): void {
    this.image = image;
    this.domain = domain;
  }

  /**
   * Checks one record at stream offset `offset` and takes it into the state; throws StreamOrderError
   * and then leaves the state as it was, so a writer can go on with a corrected record.
   */
  record(rec: StreamRecord, offset: number): void {
    this.check(rec, offset);
    this.records++;
    this.sinceCheckpoint = rec.type === REC_TYPE_CHECKPOINT ? 0 : this.sinceCheckpoint + 1;
  }

  /** An optional record (bit 31) the kit does not know, at `offset`: skipped, or refused with `optionalRecords: 'reject'`. */
  skipped(type: number, offset: number): void {
    const name = recordName(type);
    if (!this.image) throw new StreamOrderError('out-of-order', name, undefined, offset, 'a record before the image and domain headers');
    if (this.ended) throw new StreamOrderError('trailing-data', 'END', undefined, offset, `${name} after the END record`);
    if (this.optionalRecords === 'reject') {
      throw new StreamOrderError('record-not-allowed', name, 'type', offset, 'an optional record the kit does not know (verify-stream-v2 refuses these)');
    }
    this.records++;
    this.sinceCheckpoint++;
  }

  private check(rec: StreamRecord, offset: number): void {
    const name = recordName(rec.type);
    const fail = (code: ConstructorParameters<typeof StreamOrderError>[0], detail: string, field?: string, at = offset): never => {
      throw new StreamOrderError(code, name, field, at, detail);
    };
    const version = this.image?.version ?? fail('out-of-order', 'a record before the image and domain headers');
    if (this.ended) throw new StreamOrderError('trailing-data', 'END', undefined, offset, `${name} after the END record`);

    switch (rec.type) {
      case REC_TYPE_X86_PV_INFO:
        if (this.pvInfo) fail('duplicate', 'X86_PV_INFO was already received');
        if (!((rec.guest_width === 4 && rec.pt_levels === 3) || (rec.guest_width === 8 && rec.pt_levels === 4))) {
          fail('bad-value', `invalid combination: width ${rec.guest_width}, ${rec.pt_levels} levels (libxc restores only (4, 3) and (8, 4))`, 'guest_width', offset + 8);
        }
        this.pvInfo = { guest_width: rec.guest_width, pt_levels: rec.pt_levels };
        return;

      case REC_TYPE_X86_CPUID_POLICY:
      case REC_TYPE_X86_MSR_POLICY:
        if (version < 3) fail('record-not-allowed', `a v${version} stream has no ${name} (v3 only)`);
        if (this.staticDataEnd) fail('out-of-order', `${name} after STATIC_DATA_END: it is static data`);
        return;

      case REC_TYPE_STATIC_DATA_END:
        if (version < 3) fail('record-not-allowed', `a v${version} stream has no STATIC_DATA_END (v3 only; a v2 receiver infers it)`);
        if (this.staticDataEnd) fail('duplicate', 'multiple STATIC_DATA_END records');
        this.staticDataEnd = true;
        return;

      case REC_TYPE_X86_PV_P2M_FRAMES: {
        this.inferStaticDataEnd(version);
        if (!this.staticDataEnd) fail('out-of-order', 'no STATIC_DATA_END before X86_PV_P2M_FRAMES');
        const info = this.pvInfo ?? fail('out-of-order', 'X86_PV_P2M_FRAMES before X86_PV_INFO');
        const want = p2mFramesNeeded(info.guest_width, rec.p2m_start_pfn, rec.p2m_end_pfn);
        if (rec.p2m_pfns.length !== want) {
          fail('bad-length',
            `pfns ${hex(rec.p2m_start_pfn)}..${hex(rec.p2m_end_pfn)} of a ${info.guest_width * 8}-bit guest need ${want} frame pfns (${8 + 8 * want} bytes), got ${rec.p2m_pfns.length}`,
            'body_length', offset + 4);
        }
        this.maxPfn = Math.max(this.maxPfn ?? 0, rec.p2m_end_pfn);
        return;
      }

      case REC_TYPE_PAGE_DATA: {
        this.inferStaticDataEnd(version);
        if (!this.staticDataEnd) fail('out-of-order', 'no STATIC_DATA_END before PAGE_DATA');
        const max = this.maxPfn ?? fail('out-of-order', 'PAGE_DATA before X86_PV_P2M_FRAMES: no maximum pfn yet');
        const outOfRange = (pfn: number, i: number): never =>
          fail('pfn-out-of-range', `pfn ${hex(pfn)} (index ${i}) is outside the domain maximum ${hex(max)}`, `pfn[${i}]`, offset + 16 + 8 * i);
        const columns = rec.columns;
        if (columns !== undefined) {
          // The in-process saver's records: no entry objects to build, and a loop only to name the culprit.
          const pfns = columns.pfns;
          if (columns.highestPfn > max) for (let i = 0; i < columns.count; i++) if (pfns[i]! > max) outOfRange(pfns[i]!, i);
        } else {
          rec.entries.forEach((e, i) => {
            if (e.pfn > max) outOfRange(e.pfn, i);
          });
        }
        this.pageDataRecords++;
        this.pfns += columns !== undefined ? columns.count : rec.entries.length;
        this.withData += columns !== undefined ? columns.pagesWithData : pagesWithData(rec.entries);
        return;
      }

      case REC_TYPE_SHARED_INFO:
        if (!this.pvInfo) fail('out-of-order', 'SHARED_INFO before X86_PV_INFO');
        return;

      case REC_TYPE_X86_TSC_INFO:
      case REC_TYPE_VERIFY:
        return;

      case REC_TYPE_CHECKPOINT:
        if (this.streamType === 'plain') fail('record-not-allowed', 'CHECKPOINT in a plain (non-checkpointed) stream');
        this.requireComplete(offset, name);
        this.checkpoints++;
        return;

      case REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST:
        return fail('record-not-allowed', 'CHECKPOINT_DIRTY_PFN_LIST belongs to the COLO back channel, not the stream');

      case REC_TYPE_END:
        this.requireComplete(offset, name);
        this.ended = true;
        return;

      default: {
        // What is left: the four vcpu records.
        const info = this.pvInfo ?? fail('out-of-order', `${name} before X86_PV_INFO`);
        if (this.maxPfn === undefined) fail('out-of-order', `${name} before X86_PV_P2M_FRAMES (the spec's order: info, p2m frames, pages, vcpus)`);
        const problem = vcpuBlobProblem(rec.type, rec.context.length, info.guest_width);
        if (problem !== undefined) fail('bad-length', problem, 'body_length', offset + 4);
        if (this.maxVcpus !== undefined && rec.vcpu_id >= this.maxVcpus) {
          fail('bad-value', `vcpu_id ${rec.vcpu_id} exceeds the domain's maximum ${this.maxVcpus - 1}`, 'vcpu_id', offset + 8);
        }
        if (rec.type === REC_TYPE_X86_PV_VCPU_BASIC && rec.vcpu_id === 0 && rec.context.length > 0) this.vcpu0Basic = true;
        return;
      }
    }
  }

  /** The input ended at a record boundary at stream offset `offset`: the summary, or why the stream is incomplete. */
  finish(offset: number): StreamSummary {
    const failover = !this.ended && this.streamType === 'checkpointed' && this.checkpoints > 0;
    if (!this.ended && !failover) {
      throw new StreamTruncatedError('END', undefined, offset, 8, 0,
        this.streamType === 'checkpointed'
          ? 'the checkpointed stream ends before its first CHECKPOINT: no consistent state to resume'
          : `the stream ends after ${this.records} records without an END record`);
    }
    const info = this.pvInfo!;
    return {
      version: this.image!.version,
      domain: this.domain!,
      guest_width: info.guest_width,
      pt_levels: info.pt_levels,
      records: this.records,
      pageDataRecords: this.pageDataRecords,
      pfns: this.pfns,
      pagesWithData: this.withData,
      max_pfn: this.maxPfn!,
      checkpoints: this.checkpoints,
      endedBy: this.ended ? 'END' : 'failover',
      discardedRecords: this.ended ? 0 : this.sinceCheckpoint,
      bytes: offset,
    };
  }

  /** A v2 stream has no STATIC_DATA_END: a v3 receiver behaves as if it came before the first P2M_FRAMES/PAGE_DATA. */
  private inferStaticDataEnd(version: StreamVersion): void {
    if (version < 3) this.staticDataEnd = true;
  }

  /** What libxc's `stream_complete` needs at END (or to resume a checkpoint). */
  private requireComplete(offset: number, name: string): void {
    const missing = (what: string): never => {
      throw new StreamOrderError('missing-record', name, undefined, offset, `${what} before ${name}`);
    };
    if (!this.pvInfo) missing('no X86_PV_INFO');
    if (!this.staticDataEnd) missing('no STATIC_DATA_END');
    if (this.maxPfn === undefined) missing('no X86_PV_P2M_FRAMES');
    if (!this.vcpu0Basic) missing('no X86_PV_VCPU_BASIC for vcpu0 (libxc: "Sender didn\'t send vcpu0\'s basic state")');
  }
}
