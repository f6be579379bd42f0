/**
 * The stream writer: the libxc saver's side of the spec. It takes records one at a time, checks
 * each (its own fields, REC_LENGTH_MAX, then libxc's restore rules, the same code the reader
 * runs) and hands it to a `RecordSink`: an `EncodingSink` for a real byte stream, an
 * `InProcessChannel` for the in-process one. Nothing reaches a sink that the reader would refuse,
 * so both forms of a stream are valid by construction. Memory is one record at a time.
 *
 * The order a libxc x86 PV save writes (spec "Layout", and `xg_sr_save.c`):
 *
 *   X86_PV_INFO [X86_CPUID_POLICY] [X86_MSR_POLICY] STATIC_DATA_END (v3)
 *   X86_PV_P2M_FRAMES
 *   PAGE_DATA…  X86_TSC_INFO  SHARED_INFO  X86_PV_VCPU_BASIC [EXTENDED] [XSAVE] [MSRS] per vcpu
 *   END                                  (plain)
 *   CHECKPOINT, then PAGE_DATA… TSC… SHARED_INFO… VCPU… CHECKPOINT …   (Remus/COLO; no END)
 *
 * `BackChannelWriter` writes COLO's back channel, which is not a stream but bare records.
 */

import type { GuestAbi } from '../../abi/index.js';
import type { WriteContext } from './codec.js';
import { KIT_XEN_VERSION, DHDR_TYPE_X86_PV, type DomainHeader } from './domain-header.js';
import { StreamWriteError } from './errors.js';
import type { ByteOutput } from './byte-output.js';
import { checkpointDirtyPfnListCodec, type CheckpointDirtyPfnListRecord } from './checkpoint-dirty-pfn-list.js';
import { encodeRecord, encodedLength } from './framing.js';
import { STREAM_VERSION_CURRENT, image_header, type StreamVersion } from './image-header.js';
import { domain_header } from './domain-header.js';
import { MAX_BATCH_SIZE, type PageDataColumns, type PageDataEntry } from './page-data.js';
import {
  REC_LENGTH_MAX,
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
  REC_TYPE_X86_TSC_INFO,
  recordName,
} from './record-types.js';
import { bodyLengthOf, codecOf, type StreamRecord } from './records.js';
import { RestoreRules, type StreamSummary } from './restore-rules.js';
import type { RecordSink } from './sinks.js';
import type { CpuidLeaf, MsrEntry } from './x86-cpu-policy.js';
import { x86PvInfoFor, type X86PvInfoRecord } from './x86-pv-info.js';
import type { VcpuRecordType } from './x86-pv-vcpu.js';

export interface WriterOptions {
  /** 3 (default, Xen 4.14+) or 2 (Xen 4.6–4.13: no STATIC_DATA_END, no CPU policy records). */
  readonly version?: StreamVersion;
  /** `plain` (default; CHECKPOINT refused, ends with END) or `checkpointed` (Remus/COLO). */
  readonly streamType?: 'plain' | 'checkpointed';
  /** The Xen version the domain header names; default 4.17. */
  readonly xen?: { readonly xen_major: number; readonly xen_minor: number };
  /** pfns per PAGE_DATA record when `pageData` splits a batch; default 1024 (libxc's MAX_BATCH_SIZE). */
  readonly batchSize?: number;
  /** The domain's vcpu count, bounding vcpu ids; default unbounded. */
  readonly maxVcpus?: number;
}

export class StreamWriter {
  private started = false;
  private position = 0;
  private readonly rules: RestoreRules;
  private readonly version: StreamVersion;
  private readonly domain: DomainHeader;
  private readonly batchSize: number;

  constructor(
    readonly sink: RecordSink,
    options: WriterOptions = {},
  ) {
    this.version = options.version ?? STREAM_VERSION_CURRENT;
    if (this.version !== 2 && this.version !== 3) {
      throw new StreamWriteError('bad-argument', 'image header', 'version', 12, `the kit writes versions 2 and 3, not ${String(this.version)}`);
    }
    const xen = options.xen ?? KIT_XEN_VERSION;
    this.domain = { type: DHDR_TYPE_X86_PV, page_shift: 12, xen_major: xen.xen_major, xen_minor: xen.xen_minor };
    this.batchSize = options.batchSize ?? MAX_BATCH_SIZE;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) {
      throw new StreamWriteError('bad-argument', 'PAGE_DATA', 'count', 0, `batch size ${this.batchSize} is not a positive integer`);
    }
    this.rules = new RestoreRules({ streamType: options.streamType ?? 'plain', ...(options.maxVcpus === undefined ? {} : { maxVcpus: options.maxVcpus }) });
  }

  /** Bytes the stream has so far (notional for an in-process stream). */
  get offset(): number {
    return this.position;
  }

  get ended(): boolean {
    return this.rules.isEnded;
  }

  /** Writes the image and domain headers if they are not out yet (the first record does it anyway). */
  start(): void {
    if (this.started) return;
    const image = { version: this.version };
    this.rules.headers(image, this.domain);
    this.sink.headers(image, this.domain);
    this.started = true;
    this.position = image_header.size + domain_header.size;
  }

  /** Checks and writes one record. */
  write(rec: StreamRecord): void {
    this.start();
    const name = recordName(rec.type);
    const ctx: WriteContext = { record: name, offset: this.position };
    const codec = codecOf(rec.type);
    if (codec === undefined) throw new StreamWriteError('bad-argument', name, 'type', this.position, `the kit does not write ${name} records`);
    codec.validate(rec, ctx);
    const length = bodyLengthOf(rec);
    if (length > REC_LENGTH_MAX) {
      throw new StreamWriteError('record-too-long', name, 'body_length', this.position + 4, `${length} bytes is more than REC_LENGTH_MAX (${REC_LENGTH_MAX})`);
    }
    this.rules.record(rec, this.position);
    this.sink.record(rec, this.position);
    this.position += encodedLength(rec);
  }

  /** X86_PV_INFO from a guest ABI or explicit values. */
  x86PvInfo(info: GuestAbi | Omit<X86PvInfoRecord, 'type'>): void {
    this.write('name' in info ? x86PvInfoFor(info) : { type: REC_TYPE_X86_PV_INFO, guest_width: info.guest_width, pt_levels: info.pt_levels });
  }

  cpuidPolicy(leaves: readonly CpuidLeaf[]): void {
    this.write({ type: REC_TYPE_X86_CPUID_POLICY, leaves });
  }

  msrPolicy(entries: readonly MsrEntry[]): void {
    this.write({ type: REC_TYPE_X86_MSR_POLICY, entries });
  }

  staticDataEnd(): void {
    this.write({ type: REC_TYPE_STATIC_DATA_END });
  }

  p2mFrames(p2m_start_pfn: number, p2m_end_pfn: number, p2m_pfns: readonly number[]): void {
    this.write({ type: REC_TYPE_X86_PV_P2M_FRAMES, p2m_start_pfn, p2m_end_pfn, p2m_pfns });
  }

  /** PAGE_DATA records for `entries`, split into batches of at most `batchSize` pfns; returns how many records. */
  pageData(entries: readonly PageDataEntry[]): number {
    if (entries.length === 0) {
      throw new StreamWriteError('bad-argument', 'PAGE_DATA', 'count', this.position, 'no pfns to send; a PAGE_DATA record describes at least one');
    }
    let n = 0;
    for (let i = 0; i < entries.length; i += this.batchSize) {
      this.write({ type: REC_TYPE_PAGE_DATA, entries: entries.slice(i, i + this.batchSize) });
      n++;
    }
    return n;
  }

  /**
   * `pageData` for pfns in columns (the in-process saver's form): the same records, checks and
   * errors, without an object per pfn. The columns and their pages of bytes must not change once
   * written (sinks keep them as they are, unlike entries' pages, which they copy), unless the sink
   * declares `retainsPageData: false`: then the caller may reuse their memory after this returns.
   */
  pageDataColumns(columns: PageDataColumns): number {
    if (columns.count === 0) {
      throw new StreamWriteError('bad-argument', 'PAGE_DATA', 'count', this.position, 'no pfns to send; a PAGE_DATA record describes at least one');
    }
    if (columns.count <= this.batchSize) {
      this.write(columns.record());
      return 1;
    }
    let n = 0;
    for (let i = 0; i < columns.count; i += this.batchSize) {
      this.write(columns.slice(i, i + this.batchSize).record());
      n++;
    }
    return n;
  }

  tscInfo(info: { readonly mode: number; readonly khz: number; readonly nsec: bigint; readonly incarnation: number }): void {
    this.write({ type: REC_TYPE_X86_TSC_INFO, ...info });
  }

  sharedInfo(page: Uint8Array): void {
    this.write({ type: REC_TYPE_SHARED_INFO, page });
  }

  /** One of the four vcpu records. */
  vcpu(type: VcpuRecordType, vcpu_id: number, context: Uint8Array): void {
    this.write({ type, vcpu_id, context });
  }

  verify(): void {
    this.write({ type: REC_TYPE_VERIFY });
  }

  checkpoint(): void {
    this.write({ type: REC_TYPE_CHECKPOINT });
  }

  /** END, then the summary. */
  end(): StreamSummary {
    this.write({ type: REC_TYPE_END });
    return this.rules.finish(this.position);
  }

  /**
   * The summary of a checkpointed stream that stops without END (the primary stopped after a
   * CHECKPOINT); throws for a stream that would be incomplete.
   */
  finish(): StreamSummary {
    this.start();
    return this.rules.finish(this.position);
  }

  /** Waits out the sink's backpressure; await it between records to keep memory bounded on a slow Writable. */
  async drain(): Promise<void> {
    await this.sink.drain?.();
  }
}

/**
 * The COLO back channel (secondary → primary): bare CHECKPOINT_DIRTY_PFN_LIST records, no headers,
 * one per checkpoint (libxc `send_checkpoint_dirty_pfn_list`). Read it with `{ backChannel: true }`.
 */
export class BackChannelWriter {
  private position = 0;

  constructor(readonly output: ByteOutput) {}

  get offset(): number {
    return this.position;
  }

  /** The pfns the secondary dirtied since the last checkpoint, in any order. */
  dirtyPfnList(pfns: readonly number[]): void {
    const rec: CheckpointDirtyPfnListRecord = { type: REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST, pfns };
    checkpointDirtyPfnListCodec.validate(rec, { record: recordName(rec.type), offset: this.position });
    const bytes = encodeRecord(rec, this.position);
    this.output.write(bytes);
    this.position += bytes.length;
  }
}
