/**
 * Reading a libxc stream: from bytes in memory, from any (async) iterable of chunks such as a Node
 * `Readable`, or from a file, as a sequence of headers and records or pushed into a `RecordSink`
 * (the restore side). Every malformed input is a typed `StreamError`; reading never hangs (each
 * chunk is handled synchronously) and holds at most one record's bytes.
 */

import { createReadStream } from 'node:fs';
import { StreamParser, type ReadOptions, type StreamItem } from './parser.js';
import type { StreamSummary } from './restore-rules.js';
import type { RecordSink } from './sinks.js';
import type { ImageHeader } from './image-header.js';
import type { DomainHeader } from './domain-header.js';
import type { SkippedRecord, StreamRecord } from './records.js';

type Chunks = Uint8Array | Iterable<Uint8Array>;

function* chunksOf(input: Chunks): Iterable<Uint8Array> {
  if (input instanceof Uint8Array) yield input;
  else yield* input;
}

/**
 * Headers and records of an in-memory stream, in order; the generator's return value is the
 * summary (undefined when `rules` is false or for the back channel).
 */
export function* parseStream(input: Chunks, options: ReadOptions = {}): Generator<StreamItem, StreamSummary | undefined> {
  const parser = new StreamParser(options);
  for (const chunk of chunksOf(input)) yield* parser.push(chunk);
  return parser.end();
}

/** The same from an async source (a Node `Readable`, a socket, a generator of chunks). */
export async function* parseStreamAsync(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: ReadOptions = {},
): AsyncGenerator<StreamItem, StreamSummary | undefined> {
  const parser = new StreamParser(options);
  for await (const chunk of source) yield* parser.push(chunk);
  return parser.end();
}

export interface ReadResult {
  readonly image: ImageHeader | undefined;
  readonly domain: DomainHeader | undefined;
  readonly records: readonly { readonly record: StreamRecord; readonly offset: number; readonly length: number }[];
  /** Optional records the kit does not know, skipped. */
  readonly skipped: readonly { readonly record: SkippedRecord; readonly offset: number; readonly length: number }[];
  readonly summary: StreamSummary | undefined;
}

/** Reads a whole in-memory stream into a list (records alias `input`). */
export function readStream(input: Chunks, options: ReadOptions = {}): ReadResult {
  let image: ImageHeader | undefined;
  let domain: DomainHeader | undefined;
  const records: { record: StreamRecord; offset: number; length: number }[] = [];
  const skipped: { record: SkippedRecord; offset: number; length: number }[] = [];
  const it = parseStream(input, options);
  for (;;) {
    const next = it.next();
    if (next.done) return { image, domain, records, skipped, summary: next.value };
    const item = next.value;
    if (item.kind === 'headers') {
      image = item.image;
      domain = item.domain;
    } else if (item.kind === 'record') records.push({ record: item.record, offset: item.offset, length: item.length });
    else skipped.push({ record: item.record, offset: item.offset, length: item.length });
  }
}

/** Feeds a stream into a `RecordSink` (e.g. a restorer); returns the summary. */
export async function pumpStream(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  sink: RecordSink,
  options: ReadOptions = {},
): Promise<StreamSummary | undefined> {
  const it = parseStreamAsync(source, options);
  for (;;) {
    const next = await it.next();
    if (next.done) return next.value;
    const item = next.value;
    if (item.kind === 'headers') sink.headers(item.image, item.domain);
    else if (item.kind === 'record') sink.record(item.record, item.offset);
  }
}

/** Streams a file through the reader (64 KiB chunks); `sink` receives the records if given. */
export async function readStreamFile(path: string, options: ReadOptions = {}, sink?: RecordSink): Promise<StreamSummary | undefined> {
  const source = createReadStream(path, { highWaterMark: 64 * 1024 });
  try {
    return await pumpStream(source, sink ?? { headers() {}, record() {} }, options);
  } finally {
    source.destroy();
  }
}
