/**
 * What every record kind provides (one file per kind registers one of these): its body length, how
 * to encode and decode the body, and the checks on a record the writer is given. The framing around
 * bodies (header, padding, REC_LENGTH_MAX) is `framing.ts`; the rules that need the state of the
 * whole stream (order, ranges, vcpu blob sizes by guest width) are `restore-rules.ts`.
 */

import { StreamRecordError, StreamWriteError, type StreamErrorCode } from './errors.js';
import type { StreamVersion } from './image-header.js';

export interface DecodeContext {
  /** The record's name, for errors. */
  readonly record: string;
  /** Stream offset of the first byte of the body. */
  readonly bodyOffset: number;
  /** Reject non-zero reserved fields and bits (verify-stream-v2) rather than ignore them (libxc). */
  readonly strictReserved: boolean;
  readonly version: StreamVersion;
}

/** Throws the typed error for a body problem: `at` is the offset within the body. */
export function bodyError(ctx: DecodeContext, code: StreamErrorCode, field: string | undefined, at: number, detail: string): never {
  throw new StreamRecordError(code, ctx.record, field, ctx.bodyOffset + at, detail);
}

export interface WriteContext {
  readonly record: string;
  /** Stream offset where the record would start. */
  readonly offset: number;
}

export function writeError(ctx: WriteContext, field: string | undefined, detail: string): never {
  throw new StreamWriteError('bad-argument', ctx.record, field, ctx.offset, detail);
}

export interface RecordCodec<R extends { readonly type: number }> {
  readonly type: R['type'];
  /** The section of the spec the record mirrors. */
  readonly spec: string;
  /** `body_length`: the body without padding. */
  bodyLength(rec: R): number;
  /** Writes the body, `bodyLength(rec)` bytes, into `into` at `at`. Fields are checked already. */
  encodeBody(rec: R, into: Uint8Array, at: number): void;
  /** Checks and decodes a body (its padding is the framing's business). */
  decodeBody(body: Uint8Array, ctx: DecodeContext): R;
  /** Checks a record handed to the writer; throws StreamWriteError. */
  validate(rec: R, ctx: WriteContext): void;
}

/** A u32 field value: an integer in [0, 2^32). */
export function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

/** A pfn as the stream carries it in a 64-bit word: an integer in [0, 2^52). */
export function isPfn52(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v < 2 ** 52;
}

export function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Reads a little-endian u64 as a number when it is below 2^53, else undefined. */
export function readU64Number(dv: DataView, at: number): number | undefined {
  const lo = dv.getUint32(at, true);
  const hi = dv.getUint32(at + 4, true);
  if (hi >= 0x200000) return undefined;
  return hi * 2 ** 32 + lo;
}

export function writeU64Number(dv: DataView, at: number, v: number): void {
  dv.setUint32(at, v % 2 ** 32, true);
  dv.setUint32(at + 4, Math.floor(v / 2 ** 32), true);
}
