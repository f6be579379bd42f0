/**
 * Where a stream's records go. The writer and the reader both speak `RecordSink`, so the restore
 * side is written once and fed either way:
 *
 * - `EncodingSink`: the real libxc stream, bytes to a `ByteOutput` (stamps materialised). Used for
 *   `--stream FILE`, for streams verify-stream-v2 or another process reads, and wherever bytes
 *   cross a process boundary.
 * - `InProcessChannel`: the same records handed to a consumer (the restorer) in the same process,
 *   stamps left as stamps. Used by in-process migration and the conformance runs, and the only way
 *   to move a guest whose memory is too large to serialise.
 * - `RecordCollector`: keeps the records, for tests and small tools.
 *
 * A PAGE_DATA record may carry `columns` (the in-process saver's form): a sink that understands
 * them (the restorer) reads those; any other reads `entries`, built from the columns on demand.
 */

import type { DomainHeader } from './domain-header.js';
import { encodeDomainHeader, domain_header } from './domain-header.js';
import { encodeRecord } from './framing.js';
import { encodeImageHeader, image_header, type ImageHeader } from './image-header.js';
import type { ByteOutput } from './byte-output.js';
import { snapshot } from './page-content.js';
import { REC_TYPE_PAGE_DATA, REC_TYPE_SHARED_INFO } from './record-types.js';
import { isVcpuRecordType, type StreamRecord } from './records.js';

export interface RecordSink {
  /** The image and domain headers: once, before any record. */
  headers(image: ImageHeader, domain: DomainHeader): void;
  /**
   * One record that passed the format checks and the restore rules. `offset` is its stream offset
   * (notional for an in-process stream). Page contents may alias memory the sender will change; a
   * sink that keeps them past this call must copy (see `snapshotRecord`). PAGE_DATA columns are
   * the exception: they never change once written, unless the sink declares `retainsPageData:
   * false`.
   */
  record(rec: StreamRecord, offset: number): void;
  /**
   * `false` when the sink is done with a PAGE_DATA record's columns (and their pages of bytes)
   * once `record()` returns, so the sender may reuse their memory for the next record; absent or
   * `true` when it may keep them. Saves fresh memory (page faults, garbage) per pfn sent.
   */
  readonly retainsPageData?: boolean;
  /** Waits out backpressure, if the sink has any. */
  drain?(): Promise<void>;
}

/** The 40 bytes of the image and domain headers. */
export function encodeHeaders(image: ImageHeader, domain: DomainHeader): Uint8Array {
  const out = new Uint8Array(image_header.size + domain_header.size);
  encodeImageHeader(image, out, 0);
  encodeDomainHeader(domain, out, image_header.size);
  return out;
}

/**
 * A record whose contents no later change to the sender's memory can reach: page bytes, the
 * shared_info page and vcpu blobs are copied. Records and entries themselves are treated as
 * immutable (their types are read-only), so they are shared.
 */
export function snapshotRecord(rec: StreamRecord): StreamRecord {
  if (rec.type === REC_TYPE_PAGE_DATA) {
    // Columns, pages of bytes included, are immutable once written (`StreamWriter.pageDataColumns`)
    // for a sink that may keep them (`retainsPageData`).
    if (rec.columns !== undefined) return rec;
    // Stamps are values: a record of stamps (the in-process common case) is kept as it is.
    if (!rec.entries.some((e) => e.content !== undefined && 'bytes' in e.content)) return rec;
    return { type: rec.type, entries: rec.entries.map((e) => (e.content === undefined ? e : { pfn: e.pfn, type: e.type, content: snapshot(e.content) })) };
  }
  if (rec.type === REC_TYPE_SHARED_INFO) return { type: rec.type, page: rec.page.slice() };
  if (isVcpuRecordType(rec.type) && 'context' in rec) return { ...rec, context: rec.context.slice() };
  return rec;
}

/** Encodes to a real libxc stream. */
export class EncodingSink implements RecordSink {
  /** Each record is encoded into fresh bytes before `record()` returns. */
  readonly retainsPageData = false;

  constructor(readonly output: ByteOutput) {}

  headers(image: ImageHeader, domain: DomainHeader): void {
    this.output.write(encodeHeaders(image, domain));
  }

  record(rec: StreamRecord, offset: number): void {
    this.output.write(encodeRecord(rec, offset));
  }

  async drain(): Promise<void> {
    await this.output.drain?.();
  }
}

/** Hands records to a consumer in-process, stamps and all, each a snapshot the consumer may keep. */
export class InProcessChannel implements RecordSink {
  constructor(readonly consumer: RecordSink) {}

  /** The consumer's: the channel hands columns on as they are. */
  get retainsPageData(): boolean {
    return this.consumer.retainsPageData !== false;
  }

  headers(image: ImageHeader, domain: DomainHeader): void {
    this.consumer.headers(image, domain);
  }

  record(rec: StreamRecord, offset: number): void {
    this.consumer.record(snapshotRecord(rec), offset);
  }

  async drain(): Promise<void> {
    await this.consumer.drain?.();
  }
}

/** Keeps every record (snapshotted) with its offset. */
export class RecordCollector implements RecordSink {
  readonly retainsPageData = true;
  image: ImageHeader | undefined;
  domain: DomainHeader | undefined;
  readonly records: { readonly record: StreamRecord; readonly offset: number }[] = [];

  headers(image: ImageHeader, domain: DomainHeader): void {
    this.image = image;
    this.domain = domain;
  }

  record(rec: StreamRecord, offset: number): void {
    this.records.push({ record: snapshotRecord(rec), offset });
  }
}

/** Sends everything to several sinks in turn (e.g. in-process restore and a kept stream file). */
export class TeeSink implements RecordSink {
  readonly sinks: readonly RecordSink[];

  constructor(...sinks: RecordSink[]) {
    this.sinks = sinks;
  }

  /** Whether any member may keep columns. */
  get retainsPageData(): boolean {
    return this.sinks.some((s) => s.retainsPageData !== false);
  }

  headers(image: ImageHeader, domain: DomainHeader): void {
    for (const s of this.sinks) s.headers(image, domain);
  }

  record(rec: StreamRecord, offset: number): void {
    for (const s of this.sinks) s.record(rec, offset);
  }

  async drain(): Promise<void> {
    for (const s of this.sinks) await s.drain?.();
  }
}
