/**
 * Mirrors the spec's record framing ("Records": `u32 type, u32 body_length`, the body, zero
 * padding to an 8-octet boundary) and libxc's `REC_LENGTH_MAX`. Encoding a whole record into one
 * buffer keeps the writer's memory to one record and lets it copy page contents once, so a guest
 * writing to a page after it was queued cannot change what the stream says.
 */

import { StreamRecordError, StreamWriteError, hex } from './errors.js';
import { defineLayout, sfield } from './layout.js';
import { REC_LENGTH_MAX, paddedLength, recordName } from './record-types.js';
import { bodyLengthOf, codecOf, type StreamRecord } from './records.js';

export const record_header = defineLayout({
  name: 'record header',
  spec: 'Records',
  fields: [
    sfield('type', 4, 'Record type, REC_TYPE_*; bit 31 marks a record a receiver may skip.'),
    sfield('body_length', 4, 'Length of the body in octets, without padding; at most REC_LENGTH_MAX (128 MiB).'),
  ],
});

export const RECORD_HEADER_SIZE = record_header.size;

/** Bytes the record takes in the stream: header, body, padding. */
export function encodedLength(rec: StreamRecord): number {
  return RECORD_HEADER_SIZE + paddedLength(bodyLengthOf(rec));
}

/**
 * The record's bytes (stamps materialised), for a record at stream offset `offset` (for errors).
 * Checks REC_LENGTH_MAX; the record's own fields are the writer's to validate first.
 */
export function encodeRecord(rec: StreamRecord, offset = 0): Uint8Array {
  const length = bodyLengthOf(rec);
  if (length > REC_LENGTH_MAX) {
    throw new StreamWriteError('record-too-long', recordName(rec.type), 'body_length', offset + 4, `${length} bytes is more than REC_LENGTH_MAX (${REC_LENGTH_MAX})`);
  }
  // A fresh ArrayBuffer per record: 8-aligned, so stamped pages can be filled word-wise in place.
  const out = new Uint8Array(RECORD_HEADER_SIZE + paddedLength(length));
  record_header.write(out, 0, { type: rec.type, body_length: length });
  codecOf(rec.type)!.encodeBody(rec, out, RECORD_HEADER_SIZE);
  return out;
}

/** Checks a record header read at stream offset `offset`; returns the padded body length to read. */
export function checkRecordHeader(type: number, length: number, offset: number): number {
  if (length > REC_LENGTH_MAX) {
    throw new StreamRecordError('record-too-long', recordName(type), 'body_length', offset + 4,
      `${length} (${hex(length)}) bytes is more than REC_LENGTH_MAX (${hex(REC_LENGTH_MAX)})`);
  }
  return paddedLength(length);
}

/** Checks that the padding after a body is zero (verify-stream-v2 does; libxc's restore ignores it). */
export function checkPadding(type: number, padding: Uint8Array, offset: number): void {
  const i = padding.findIndex((b) => b !== 0);
  if (i >= 0) throw new StreamRecordError('reserved-nonzero', recordName(type), 'padding', offset + i, `padding byte is ${hex(padding[i]!)}, not zero`);
}
