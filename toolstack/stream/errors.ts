/**
 * Typed errors of the libxc migration stream (spec: docs/specs/libxc-migration-stream.pandoc). Every
 * malformed input is one of these, never another exception: each names the record (or header), the
 * field and the byte offset in the stream where the problem sits, so one line points at it.
 *
 * Offsets are byte offsets from the start of the image header. For a record kept in-process (content
 * stamps, no bytes) the offset is where the record would be in the byte stream, so both paths report
 * the same numbers.
 */

/** `0x1a2b` */
export function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

/** What went wrong, as a closed list a test or tool can switch on. */
export type StreamErrorCode =
  /** Image header: the marker is not all ones (a zero bit means a legacy, pre-v2 image). */
  | 'bad-marker'
  /** Image header: the id is not "XENF". */
  | 'bad-id'
  /** Image header: a version other than 2 or 3. */
  | 'bad-version'
  /** Image header: big-endian (bit 0 of options); neither libxc nor verify-stream-v2 takes one on x86. */
  | 'unsupported-endianness'
  /** A reserved field, reserved bits or record padding that is not zero. */
  | 'reserved-nonzero'
  /** Domain header: type 0 or >= 3. */
  | 'bad-domain-type'
  /** Domain header: x86 HVM; the kit reads x86 PV streams only. */
  | 'unsupported-domain-type'
  /** Domain header: page_shift other than 12. */
  | 'bad-page-shift'
  /** The input ends inside a header or a record, or before the END record. */
  | 'truncated'
  /** Bytes after the END record. */
  | 'trailing-data'
  /** A record body longer than REC_LENGTH_MAX (128 MiB). */
  | 'record-too-long'
  /** A mandatory record type the spec does not define (optional ones, bit 31, may be skipped). */
  | 'unknown-mandatory-record'
  /** A known record that has no place in this stream (HVM records, TOOLSTACK, a back-channel record). */
  | 'record-not-allowed'
  /** A record body whose length does not match its contents. */
  | 'bad-length'
  /** PAGE_DATA: a count of zero or one the body cannot hold. */
  | 'bad-count'
  /** PAGE_DATA: a page type that is not a known XEN_DOMCTL_PFINFO_* value. */
  | 'bad-page-type'
  /** A field whose value the spec or libxc's restore rejects (a guest width of 5, start > end, …). */
  | 'bad-value'
  /** A pfn above the domain's maximum as the stream has declared it. */
  | 'pfn-out-of-range'
  /** A record before the records it depends on (libxc's restore order). */
  | 'out-of-order'
  /** A record that may appear only once, again. */
  | 'duplicate'
  /** The stream ends without something libxc's restore needs (vcpu0's basic state, …). */
  | 'missing-record'
  /** The writer was asked for something it cannot write (bad argument, a record after END). */
  | 'bad-argument';

export class StreamError extends Error {
  override name = 'StreamError';
  constructor(
    readonly code: StreamErrorCode,
    /** The header or record: `image header`, `domain header`, `PAGE_DATA`, `record 0x42`, … */
    readonly record: string,
    /** The field at fault (`count`, `pfn[3]`, `body_length`, …), or undefined for the record as a whole. */
    readonly field: string | undefined,
    /** Byte offset of the field (or the record) in the stream. */
    readonly offset: number,
    readonly detail: string,
  ) {
    super(`${record}${field === undefined ? '' : `.${field}`} at stream offset ${hex(offset)}: ${detail}`);
  }
}

/** The image or domain header is not one the kit can read. */
export class StreamHeaderError extends StreamError {
  override name = 'StreamHeaderError';
}

/** A record's framing or body is malformed (what verify-stream-v2 checks, and the body sizes). */
export class StreamRecordError extends StreamError {
  override name = 'StreamRecordError';
}

/** A well-formed record that breaks libxc's restore rules: order, duplicates, ranges, completeness. */
export class StreamOrderError extends StreamError {
  override name = 'StreamOrderError';
}

/** The input ended early: `needed` more bytes were due at `offset`, `available` were there. */
export class StreamTruncatedError extends StreamError {
  override name = 'StreamTruncatedError';
  constructor(
    record: string,
    field: string | undefined,
    offset: number,
    readonly needed: number,
    readonly available: number,
    detail?: string,
  ) {
    super('truncated', record, field, offset, detail ?? `the input ends: ${needed} bytes needed, ${available} available`);
  }
}

/** The writer refused a call: the record would not be a valid part of the stream. */
export class StreamWriteError extends StreamError {
  override name = 'StreamWriteError';
}
