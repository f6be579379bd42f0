/**
 * The stream reader as a stream reader: any chunking of the input gives the same records; async
 * sources and files work; a cut anywhere gives a StreamTruncatedError naming what was cut; a
 * hostile body_length cannot make it hold more than the input supplied.
 */

import { expect } from 'chai';
import { Readable } from 'node:stream';
import { X86_32, X86_64 } from '../../abi/index.js';
import { Rng } from '../../xen-emu/rng.js';
import {
  BufferOutput,
  EncodingSink,
  REC_LENGTH_MAX,
  StreamWriter,
  RecordCollector,
  StreamParser,
  StreamRecordError,
  StreamTruncatedError,
  parseStream,
  parseStreamAsync,
  pumpStream,
  readStream,
  recordName,
  type StreamItem,
} from '../../toolstack/index.js';
import { concat, rawHeaders, rawRecord, rawStream, sampleStream } from './support/streams.js';

/** Splits `bytes` into chunks at random points. */
function chunked(bytes: Uint8Array, rng: Rng, maxChunk: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = Math.min(bytes.length - at, 1 + rng.below(maxChunk));
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

/** Items as comparable values: byte arrays become their length and a checksum. */
function comparable(items: readonly StreamItem[]): unknown[] {
  const norm = (v: unknown): unknown => {
    if (v instanceof Uint8Array) return ['bytes', v.length, v.reduce((a, b) => (a * 31 + b) >>> 0, 7)];
    if (Array.isArray(v)) return v.map(norm);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
    return v;
  };
  return items.map(norm);
}

function itemsOf(chunks: Iterable<Uint8Array>, options = {}): StreamItem[] {
  const p = new StreamParser(options);
  const out: StreamItem[] = [];
  for (const c of chunks) out.push(...p.push(c));
  p.end();
  return out;
}

describe('stream reader', function () {
  const seed = Number(process.env['XENABI_FUZZ_SEED'] ?? 20261126);

  it(`gives the same items for any chunking of the input (seed ${seed})`, function () {
    const rng = new Rng(seed);
    for (const abi of [X86_32, X86_64]) {
      const bytes = sampleStream({ abi, checkpoints: 2 });
      const whole = comparable(itemsOf([bytes], { streamType: 'checkpointed' }));
      expect(whole.length).to.be.greaterThan(20);
      for (let round = 0; round < 16; round++) {
        const maxChunk = rng.pick([1, 7, 64, 4096, 70000]);
        expect(comparable(itemsOf(chunked(bytes, rng, maxChunk), { streamType: 'checkpointed' })), `seed ${seed} round ${round}`).to.deep.equal(whole);
      }
    }
  });

  it('reads an in-memory list of chunks', function () {
    const bytes = sampleStream({ abi: X86_32 });
    const r = readStream([bytes.subarray(0, 1000), bytes.subarray(1000)]);
    expect(r.summary).to.include({ bytes: bytes.length, endedBy: 'END' });
    expect(comparable(r.records.map((x) => ({ kind: 'record', ...x }) as StreamItem))).to.deep.equal(comparable(itemsOf([bytes]).filter((i) => i.kind === 'record')));
  });

  it('reads one byte at a time', function () {
    const bytes = sampleStream({ abi: X86_64, fullVcpu: false });
    const singles = [...bytes].map((b) => Uint8Array.of(b));
    expect(comparable(itemsOf(singles))).to.deep.equal(comparable(itemsOf([bytes])));
  });

  it('reads from an async source (a Node Readable) and feeds a RecordSink', async function () {
    const bytes = sampleStream({ abi: X86_64 });
    const items: StreamItem[] = [];
    const it = parseStreamAsync(Readable.from(chunked(bytes, new Rng(seed), 5000)));
    for (;;) {
      const next = await it.next();
      if (next.done) {
        expect(next.value).to.include({ endedBy: 'END', bytes: bytes.length });
        break;
      }
      items.push(next.value);
    }
    expect(comparable(items)).to.deep.equal(comparable(itemsOf([bytes])));
    const sink = new RecordCollector();
    const summary = await pumpStream(Readable.from([bytes]), sink);
    expect(sink.records.length).to.equal(summary!.records);
    expect(sink.domain).to.deep.include({ xen_major: 4, xen_minor: 17 });
  });

  it('delivers every record before a malformed one in the same chunk (a Remus receiver keeps its last CHECKPOINT), then the error, again and again', function () {
    const good = sampleStream({ abi: X86_64, checkpoints: 2, end: false });
    const bad = concat(good, rawRecord(0x13, [1, 2, 3]));
    const seen: StreamItem[] = [];
    let caught: unknown;
    try {
      for (const item of parseStream([bad], { streamType: 'checkpointed' })) seen.push(item);
    } catch (e) {
      caught = e;
    }
    expect(caught).to.be.instanceOf(StreamRecordError).and.deep.include({ code: 'unknown-mandatory-record', offset: good.length });
    const last = seen.at(-1)!;
    expect(last.kind === 'record' && recordName(last.record.type)).to.equal('CHECKPOINT');
    expect(seen.filter((i) => i.kind === 'record' && i.record.type === 0x0e)).to.have.length(2);
    const parser = new StreamParser({ streamType: 'checkpointed' });
    expect(parser.push(bad).length).to.equal(seen.length);
    expect(() => parser.push(new Uint8Array(8))).to.throw(StreamRecordError).with.property('code', 'unknown-mandatory-record');
    expect(() => parser.end()).to.throw(StreamRecordError).with.property('code', 'unknown-mandatory-record');
  });

  it('names what a cut at any byte of a stream leaves incomplete', function () {
    const bytes = rawStream(X86_32, [rawRecord(1, concat(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([3, 0, 0, 0, 0, 0, 0, 0xf0])))]);
    const { records } = readStream(bytes);
    for (let n = 40; n < bytes.length; n++) {
      let caught: unknown;
      try {
        readStream(bytes.subarray(0, n));
      } catch (e) {
        caught = e;
      }
      expect(caught, `cut at ${n}`).to.be.instanceOf(StreamTruncatedError);
      const e = caught as StreamTruncatedError;
      const cut = records.find((r) => r.offset <= n && n < r.offset + 8 + Math.ceil(r.length / 8) * 8);
      if (cut === undefined || n === cut.offset) {
        // At a record boundary: the stream lacks END.
        expect(e.record, `cut at ${n}`).to.equal('END');
      } else if (n < cut.offset + 8) {
        expect({ record: e.record, offset: e.offset }, `cut at ${n}`).to.deep.equal({ record: 'record header', offset: cut.offset });
      } else {
        expect({ record: e.record, field: e.field, offset: e.offset }, `cut at ${n}`).to.deep.equal({ record: recordName(cut.record.type), field: 'body', offset: cut.offset + 8 });
      }
    }
  });

  it('does not allocate a hostile body_length: it holds only what the input gave, and reports the truncation', function () {
    const header = concat(rawHeaders(), rawRecord(1, [], REC_LENGTH_MAX));
    const parser = new StreamParser();
    const before = process.memoryUsage().arrayBuffers;
    parser.push(header);
    for (let i = 0; i < 100; i++) parser.push(new Uint8Array(1000));
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(parser.peakBuffered).to.be.at.most(100 * 1000 + 8);
    expect(grown, 'bytes allocated while reading').to.be.below(16 * 1024 * 1024);
    let caught: unknown;
    try {
      parser.end();
    } catch (e) {
      caught = e;
    }
    expect(caught).to.be.instanceOf(StreamTruncatedError).and.deep.include({ record: 'PAGE_DATA', field: 'body', offset: 48, needed: REC_LENGTH_MAX, available: 100 * 1000 });
  });

  it('keeps one record at a time: reading a 20 MiB stream holds little more than its largest record', function () {
    const out = new BufferOutput();
    const w = new StreamWriter(new EncodingSink(out));
    w.x86PvInfo(X86_64);
    w.staticDataEnd();
    w.p2mFrames(0, 5 * 1024 - 1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    w.pageData([...Array(5 * 1024).keys()].map((pfn) => ({ pfn, type: 0, content: { stamp: pfn + 1 } })));
    w.vcpu(4, 0, new Uint8Array(5168));
    w.end();
    const bytes = out.toBuffer();
    expect(bytes.length).to.be.greaterThan(20 * 1024 * 1024);
    const parser = new StreamParser();
    for (const c of chunked(bytes, new Rng(seed), 64 * 1024)) parser.push(c);
    expect(parser.end()).to.include({ pageDataRecords: 5 });
    expect(parser.position).to.equal(bytes.length);
    const largest = 8 + 8 * 1024 + 4096 * 1024;
    expect(parser.peakBuffered).to.be.at.most(largest + 8 + 64 * 1024);
  });
});
