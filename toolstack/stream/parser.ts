/**
 * The streaming parser: bytes in (any chunking), headers and records out, in the spec's framing
 * (image header, domain header, then `type, body_length, body, padding` records). It is a push
 * parser, a pure function of the bytes it was given, so it cannot hang; and it holds at most the
 * bytes of one record, assembled only once the input has supplied them, so a hostile length
 * cannot make it allocate more than the input holds (and never more than REC_LENGTH_MAX).
 *
 * Decoded records alias the input chunks (page contents are views into them): a consumer that keeps
 * them past the next chunk of a reused buffer must copy.
 */

import { codecOf } from './records.js';
import type { DecodeContext } from './codec.js';
import { decodeDomainHeader, domain_header, type DomainHeader } from './domain-header.js';
import { StreamRecordError, StreamTruncatedError, hex } from './errors.js';
import { checkPadding, checkRecordHeader, record_header, RECORD_HEADER_SIZE } from './framing.js';
import { decodeImageHeader, image_header, type ImageHeader } from './image-header.js';
import {
  NOT_IN_X86_PV_STREAM,
  REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST,
  REC_TYPE_END,
  isOptionalRecord,
  recordName,
} from './record-types.js';
import type { SkippedRecord, StreamRecord } from './records.js';
import { RestoreRules, type RulesOptions, type StreamSummary } from './restore-rules.js';

export type StreamItem =
  | { readonly kind: 'headers'; readonly image: ImageHeader; readonly domain: DomainHeader }
  | {
      readonly kind: 'record';
      readonly record: StreamRecord;
      /** Stream offset of the record header. */
      readonly offset: number;
      /** `body_length` as the stream gave it. */
      readonly length: number;
    }
  | {
      /** An optional record (bit 31 of the type) the kit does not know, skipped as the spec allows. */
      readonly kind: 'skipped';
      readonly record: SkippedRecord;
      readonly offset: number;
      readonly length: number;
    };

export interface ReadOptions extends RulesOptions {
  /** Reject non-zero reserved fields, reserved bits and padding (default, as verify-stream-v2); false ignores them (libxc). */
  readonly strictReserved?: boolean;
  /** Apply libxc's restore rules (order, ranges, completeness) on top of the format; default true. */
  readonly rules?: boolean;
  /**
   * The COLO back channel: no headers, only CHECKPOINT_DIRTY_PFN_LIST records, ending at any record
   * boundary.
   */
  readonly backChannel?: boolean;
}

const EMPTY = new Uint8Array(0);

type State = 'image-header' | 'domain-header' | 'record-header' | 'record-body' | 'ended';

export class StreamParser {
  /** Input not consumed yet: chunks[first..], of which chunks[first] from byte `head`. */
  private readonly chunks: Uint8Array[] = [];
  private first = 0;
  private head = 0;
  private buffered = 0;
  /** Stream offset of the next unconsumed byte. */
  private offset = 0;
  private state: State;
  private image: ImageHeader | undefined;
  private pending: { type: number; length: number; padded: number; offset: number } | undefined;
  private readonly strictReserved: boolean;
  private readonly rules: RestoreRules | undefined;
  private readonly backChannel: boolean;
  /** The most bytes held at once, for tests of the memory bound. */
  private peak = 0;
  /** The error that stopped the parser, thrown again by every later call. */
  private failure: Error | undefined;

  constructor(options: ReadOptions = {}) {
    this.strictReserved = options.strictReserved ?? true;
    this.backChannel = options.backChannel ?? false;
    this.rules = options.rules === false || this.backChannel ? undefined : new RestoreRules(options);
    this.state = this.backChannel ? 'record-header' : 'image-header';
    if (this.backChannel) this.image = { version: 3 };
  }

  /** Bytes consumed so far: the stream offset the parser has reached. */
  get position(): number {
    return this.offset;
  }

  /** The most input bytes the parser held at one time. */
  get peakBuffered(): number {
    return this.peak;
  }

  /**
   * Feeds a chunk; returns the headers and records it completed. Throws a StreamError; when the
   * chunk completed items before the problem, they are returned first and the error is thrown by
   * the next call (so a Remus receiver sees every CHECKPOINT before the failure). After an error
   * every call throws it again.
   */
  push(chunk: Uint8Array): StreamItem[] {
    if (this.failure) throw this.failure;
    if (chunk.length > 0) {
      if (this.state === 'ended') {
        this.fail(new StreamRecordError('trailing-data', 'END', undefined, this.offset, `${chunk.length} more bytes after the END record`));
      }
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.peak = Math.max(this.peak, this.buffered);
    }
    const out: StreamItem[] = [];
    for (;;) {
      let item: ReturnType<StreamParser['step']>;
      try {
        item = this.step();
      } catch (e) {
        this.failure = e as Error;
        if (out.length === 0) throw e;
        break;
      }
      if (item === undefined) break;
      if (item !== 'progress') out.push(item);
    }
    return out;
  }

  /** The input is over: the summary (undefined without rules), or the typed error saying what is missing. */
  end(): StreamSummary | undefined {
    if (this.failure) throw this.failure;
    try {
      return this.finish();
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private fail(e: Error): never {
    this.failure = e;
    throw e;
  }

  private finish(): StreamSummary | undefined {
    if (this.buffered > 0 && this.state === 'ended') {
      throw new StreamRecordError('trailing-data', 'END', undefined, this.offset, `${this.buffered} more bytes after the END record`);
    }
    switch (this.state) {
      case 'image-header':
        throw new StreamTruncatedError('image header', undefined, this.offset, image_header.size, this.buffered);
      case 'domain-header':
        throw new StreamTruncatedError('domain header', undefined, this.offset, domain_header.size, this.buffered);
      case 'record-header':
        if (this.buffered > 0) throw new StreamTruncatedError('record header', undefined, this.offset, RECORD_HEADER_SIZE, this.buffered);
        break;
      case 'record-body': {
        const p = this.pending!;
        throw new StreamTruncatedError(recordName(p.type), 'body', this.offset, p.padded, this.buffered,
          `the input ends inside the body: ${p.padded} bytes (body_length ${p.length} padded to 8) needed, ${this.buffered} available`);
      }
      case 'ended':
        break;
    }
    if (this.backChannel) return undefined;
    return this.rules?.finish(this.offset);
  }

  /** One step of the state machine: an item, 'progress' (consumed without an item) or undefined (needs input). */
  private step(): StreamItem | 'progress' | undefined {
    switch (this.state) {
      case 'image-header': {
        const b = this.take(image_header.size);
        if (!b) return undefined;
        this.image = decodeImageHeader(b, 0, { strictReserved: this.strictReserved });
        this.offset += image_header.size;
        this.state = 'domain-header';
        return 'progress';
      }
      case 'domain-header': {
        const b = this.take(domain_header.size);
        if (!b) return undefined;
        const domain = decodeDomainHeader(b, 0, { strictReserved: this.strictReserved, streamOffset: this.offset });
        this.offset += domain_header.size;
        this.state = 'record-header';
        this.rules?.headers(this.image!, domain);
        return { kind: 'headers', image: this.image!, domain };
      }
      case 'record-header': {
        const b = this.take(RECORD_HEADER_SIZE);
        if (!b) return undefined;
        const h = record_header.read(b, 0);
        const offset = this.offset;
        this.checkType(h.type, offset);
        const padded = checkRecordHeader(h.type, h.body_length, offset);
        this.pending = { type: h.type, length: h.body_length, padded, offset };
        this.offset += RECORD_HEADER_SIZE;
        this.state = 'record-body';
        return 'progress';
      }
      case 'record-body': {
        const p = this.pending!;
        const b = this.take(p.padded);
        if (!b) return undefined;
        const bodyOffset = this.offset;
        if (this.strictReserved) checkPadding(p.type, b.subarray(p.length), bodyOffset + p.length);
        const body = b.subarray(0, p.length);
        const codec = codecOf(p.type);
        let item: StreamItem;
        if (codec === undefined) {
          // Optional and unknown (checkType let nothing else through).
          this.rules?.skipped(p.type, p.offset);
          item = { kind: 'skipped', record: { type: p.type, body }, offset: p.offset, length: p.length };
        } else {
          const ctx: DecodeContext = { record: recordName(p.type), bodyOffset, strictReserved: this.strictReserved, version: this.image!.version };
          const record = codec.decodeBody(body, ctx);
          this.rules?.record(record, p.offset);
          item = { kind: 'record', record, offset: p.offset, length: p.length };
        }
        this.offset += p.padded;
        this.pending = undefined;
        this.state = p.type === REC_TYPE_END && !this.backChannel ? 'ended' : 'record-header';
        return item;
      }
      case 'ended':
        return undefined;
    }
  }

  private checkType(type: number, offset: number): void {
    const name = recordName(type);
    if (this.backChannel) {
      if (type !== REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST) {
        throw new StreamRecordError('record-not-allowed', name, 'type', offset, 'the COLO back channel carries CHECKPOINT_DIRTY_PFN_LIST records only');
      }
      return;
    }
    if (NOT_IN_X86_PV_STREAM.has(type) && type !== REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST) {
      throw new StreamRecordError('record-not-allowed', name, 'type', offset, `${name} has no place in an x86 PV stream (libxc's PV restore does not handle it)`);
    }
    if (codecOf(type) === undefined && !isOptionalRecord(type)) {
      throw new StreamRecordError('unknown-mandatory-record', name, 'type', offset, `mandatory record type ${hex(type)} is not in the spec; restore must fail`);
    }
  }

  /** Consumes exactly `n` buffered bytes (zero-copy when one chunk holds them), or undefined if fewer are there. */
  private take(n: number): Uint8Array | undefined {
    if (this.buffered < n) return undefined;
    this.buffered -= n;
    if (n === 0) return new Uint8Array(0);
    const first = this.chunks[this.first]!;
    if (first.length - this.head >= n) {
      // A plain Uint8Array view whatever the chunk's class (a Buffer from a file, say).
      const out = new Uint8Array(first.buffer, first.byteOffset + this.head, n);
      this.advance(n);
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.first]!;
      const part = Math.min(n - filled, c.length - this.head);
      out.set(c.subarray(this.head, this.head + part), filled);
      filled += part;
      this.advance(part);
    }
    return out;
  }

  /** Moves past `n` bytes of the first chunk, dropping chunks as they are used up (amortised O(1)). */
  private advance(n: number): void {
    this.head += n;
    if (this.head < this.chunks[this.first]!.length) return;
    this.chunks[this.first] = EMPTY;
    this.first++;
    this.head = 0;
    if (this.first === this.chunks.length) {
      this.chunks.length = 0;
      this.first = 0;
    } else if (this.first >= 1024 && this.first * 2 >= this.chunks.length) {
      this.chunks.splice(0, this.first);
      this.first = 0;
    }
  }
}
