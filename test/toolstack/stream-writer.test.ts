/**
 * The stream writer: batches, content stamps (materialised for a byte stream, kept for the
 * in-process channel, with the same records and offsets either way), snapshots, typed refusals of
 * bad input that leave the writer usable, REC_LENGTH_MAX, and the outputs (memory, a file
 * descriptor, a Node Writable with backpressure).
 */

import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  PAGE_SIZE,
  X86_32,
  X86_64,
  XEN_DOMCTL_PFINFO_L1TAB,
  XEN_DOMCTL_PFINFO_NOTAB,
  XEN_DOMCTL_PFINFO_XTAB,
} from '../../abi/index.js';
import { fillFromStamp } from '../../xen-emu/machine.js';
import {
  BufferOutput,
  EncodingSink,
  FdOutput,
  InProcessChannel,
  MAX_BATCH_SIZE,
  REC_TYPE_PAGE_DATA,
  REC_TYPE_X86_PV_VCPU_BASIC,
  RecordCollector,
  StreamOrderError,
  StreamWriteError,
  StreamWriter,
  TeeSink,
  VCPU_GUEST_CONTEXT_SIZE,
  WritableOutput,
  encodedLength,
  materialise,
  materialiseInto,
  readStream,
  readStreamFile,
  sameContent,
  type PageDataEntry,
  type PageDataRecord,
  type StreamRecord,
} from '../../toolstack/index.js';
import { writeSample } from './support/streams.js';

/** A writer past the static records, ready for PAGE_DATA over pfns 0..max. */
function readyWriter(sink: EncodingSink | RecordCollector | TeeSink | InProcessChannel, max = 4095, options = {}): StreamWriter {
  const w = new StreamWriter(sink, options);
  w.x86PvInfo(X86_64);
  w.staticDataEnd();
  w.p2mFrames(0, max, [...Array(Math.floor(max / 512) + 1).keys()].map((i) => 100 + i));
  return w;
}

const stampEntries = (n: number, from = 0): PageDataEntry[] => [...Array(n).keys()].map((i) => ({ pfn: from + i, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 0xc0de0000 + from + i } }));

describe('stream writer', function () {
  it('splits PAGE_DATA into records of at most 1024 pfns (libxc MAX_BATCH_SIZE), or the batch size asked for', function () {
    const c = new RecordCollector();
    const w = readyWriter(c);
    expect(w.pageData(stampEntries(2500))).to.equal(3);
    const counts = c.records.filter((r) => r.record.type === REC_TYPE_PAGE_DATA).map((r) => (r.record as PageDataRecord).entries.length);
    expect(counts).to.deep.equal([MAX_BATCH_SIZE, MAX_BATCH_SIZE, 452]);
    const small = readyWriter(new RecordCollector(), 4095, { batchSize: 100 });
    expect(small.pageData(stampEntries(2500))).to.equal(25);
    expect(() => new StreamWriter(new RecordCollector(), { batchSize: 0 })).to.throw(StreamWriteError).with.property('field', 'count');
    expect(() => new StreamWriter(new RecordCollector(), { version: 4 as 3 })).to.throw(StreamWriteError).with.property('field', 'version');
  });

  it('writes the same records at the same offsets to a byte stream and to the in-process channel', function () {
    const out = new BufferOutput();
    const inProcess = new RecordCollector();
    writeSample(new TeeSink(new EncodingSink(out), new InProcessChannel(inProcess)), { abi: X86_64, checkpoints: 2 });
    const bytes = out.toBuffer();
    const fromBytes = readStream(bytes, { streamType: 'checkpointed' });
    expect(fromBytes.records.map((r) => [r.record.type, r.offset])).to.deep.equal(inProcess.records.map((r) => [r.record.type, r.offset]));
    expect(fromBytes.summary?.bytes).to.equal(bytes.length);
    // In-process pages are stamps (no 4 KiB each); in the byte stream they are the stamps' bytes.
    let stamped = 0;
    inProcess.records.forEach(({ record }, i) => {
      if (record.type !== REC_TYPE_PAGE_DATA) return;
      const decoded = fromBytes.records[i]!.record as PageDataRecord;
      record.entries.forEach((e, j) => {
        const d = decoded.entries[j]!;
        expect([d.pfn, d.type]).to.deep.equal([e.pfn, e.type]);
        if (e.content === undefined) return expect(d.content).to.equal(undefined);
        expect(e.content).to.have.property('stamp');
        expect(d.content).to.have.property('bytes');
        expect(sameContent(e.content, d.content!), `pfn ${e.pfn}`).to.equal(true);
        stamped++;
      });
    });
    expect(stamped).to.be.greaterThan(20);
  });

  it('materialises a stamp into exactly the bytes xen-emu gives that stamp, every time', function () {
    const page = new Uint8Array(PAGE_SIZE);
    fillFromStamp(page, 0x1234abcd);
    expect(Buffer.from(materialise({ stamp: 0x1234abcd })).equals(page)).to.equal(true);
    const encode = (): Buffer => {
      const out = new BufferOutput();
      const w = readyWriter(new EncodingSink(out));
      w.pageData([{ pfn: 7, type: XEN_DOMCTL_PFINFO_L1TAB, content: { stamp: 0x1234abcd } }]);
      return out.toBuffer();
    };
    const a = encode();
    expect(a.equals(encode())).to.equal(true);
    const pd = readStream(a, { rules: false }).records.find((r) => r.record.type === REC_TYPE_PAGE_DATA)!.record as PageDataRecord;
    const content = pd.entries[0]!.content!;
    expect('bytes' in content && Buffer.from(content.bytes).equals(page)).to.equal(true);
  });

  it('compares and places contents without materialising stamps needlessly', function () {
    const a = new Uint8Array(PAGE_SIZE);
    fillFromStamp(a, 77);
    expect(sameContent({ stamp: 77 }, { stamp: 77 })).to.equal(true);
    expect(sameContent({ stamp: 77 }, { stamp: 78 })).to.equal(false);
    expect(sameContent({ stamp: 77 }, { bytes: a })).to.equal(true);
    expect(sameContent({ bytes: a }, { bytes: new Uint8Array(PAGE_SIZE) })).to.equal(false);
    expect(sameContent({ stamp: 0 }, { bytes: new Uint8Array(PAGE_SIZE) }), 'stamp 0 is the zero page').to.equal(true);
    // Into a buffer at an offset that is not 4-aligned (fillFromStamp works on 32-bit words).
    const into = new Uint8Array(PAGE_SIZE + 8);
    materialiseInto({ stamp: 77 }, into, 3);
    expect(Buffer.from(into.subarray(3, 3 + PAGE_SIZE)).equals(a)).to.equal(true);
    expect(into[2]).to.equal(0);
    expect(into[3 + PAGE_SIZE]).to.equal(0);
  });

  it('snapshots page bytes: a write to the source page after the call changes neither the byte stream nor the channel', function () {
    const source = new Uint8Array(PAGE_SIZE).fill(0x11);
    const out = new BufferOutput();
    const kept = new RecordCollector();
    const w = readyWriter(new TeeSink(new EncodingSink(out), new InProcessChannel(kept)));
    w.pageData([{ pfn: 1, type: XEN_DOMCTL_PFINFO_NOTAB, content: { bytes: source } }]);
    source.fill(0x99);
    const inChannel = (kept.records.at(-1)!.record as PageDataRecord).entries[0]!.content!;
    expect('bytes' in inChannel && inChannel.bytes.every((b) => b === 0x11)).to.equal(true);
    const decoded = (readStream(out.toBuffer(), { rules: false }).records.at(-1)!.record as PageDataRecord).entries[0]!.content!;
    expect('bytes' in decoded && decoded.bytes.every((b) => b === 0x11)).to.equal(true);
  });

  describe('refuses bad arguments with a StreamWriteError naming the field, and stays usable', function () {
    const cases: [string, (w: StreamWriter) => void, string, string][] = [
      ['no pfns', (w) => w.pageData([]), 'PAGE_DATA', 'count'],
      ['a pfn of 2^52', (w) => w.pageData([{ pfn: 2 ** 52, type: XEN_DOMCTL_PFINFO_XTAB }]), 'PAGE_DATA', 'pfn[0]'],
      ['a negative pfn', (w) => w.pageData([{ pfn: -1, type: XEN_DOMCTL_PFINFO_XTAB }]), 'PAGE_DATA', 'pfn[0]'],
      ['an unknown page type', (w) => w.pageData([{ pfn: 1, type: 0x5 * 2 ** 28 }]), 'PAGE_DATA', 'pfn[0]'],
      ['XTAB with contents', (w) => w.pageData([{ pfn: 1, type: XEN_DOMCTL_PFINFO_XTAB, content: { stamp: 1 } }]), 'PAGE_DATA', 'pfn[0]'],
      ['NOTAB without contents', (w) => w.pageData([{ pfn: 1, type: XEN_DOMCTL_PFINFO_XTAB }, { pfn: 2, type: XEN_DOMCTL_PFINFO_NOTAB }]), 'PAGE_DATA', 'pfn[1]'],
      ['a short page', (w) => w.pageData([{ pfn: 1, type: XEN_DOMCTL_PFINFO_NOTAB, content: { bytes: new Uint8Array(4095) } }]), 'PAGE_DATA', 'pfn[0]'],
      ['a stamp that is not a u32', (w) => w.pageData([{ pfn: 1, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 2 ** 32 } }]), 'PAGE_DATA', 'pfn[0]'],
      ['p2m start above end', (w) => w.p2mFrames(20, 10, []), 'X86_PV_P2M_FRAMES', 'p2m_end_pfn'],
      ['a p2m start that is not a u32', (w) => w.p2mFrames(-1, 10, [1]), 'X86_PV_P2M_FRAMES', 'p2m_start_pfn'],
      ['a p2m frame that is not a pfn', (w) => w.p2mFrames(0, 10, [0.5]), 'X86_PV_P2M_FRAMES', 'p2m_pfns[0]'],
      ['a TSC frequency over 32 bits', (w) => w.tscInfo({ mode: 0, khz: 2 ** 32, nsec: 0n, incarnation: 0 }), 'X86_TSC_INFO', 'khz'],
      ['a short shared_info', (w) => w.sharedInfo(new Uint8Array(100)), 'SHARED_INFO', 'shared_info'],
      ['an empty vcpu blob', (w) => w.vcpu(REC_TYPE_X86_PV_VCPU_BASIC, 0, new Uint8Array(0)), 'X86_PV_VCPU_BASIC', 'context'],
      ['a negative vcpu id', (w) => w.vcpu(REC_TYPE_X86_PV_VCPU_BASIC, -1, new Uint8Array(5168)), 'X86_PV_VCPU_BASIC', 'vcpu_id'],
      ['an empty CPUID policy', (w) => w.cpuidPolicy([]), 'X86_CPUID_POLICY', 'leaves'],
      ['an MSR value over 64 bits', (w) => w.msrPolicy([{ idx: 1, flags: 0, val: 1n << 64n }]), 'X86_MSR_POLICY', 'entries[0].val'],
      ['a guest width of 5', (w) => w.x86PvInfo({ guest_width: 5 as 4, pt_levels: 4 }), 'X86_PV_INFO', 'guest_width'],
      ['a record type the kit does not write', (w) => w.write({ type: 0x09 } as unknown as StreamRecord), 'HVM_CONTEXT', 'type'],
    ];
    for (const [what, call, record, field] of cases) {
      it(what, function () {
        const c = new RecordCollector();
        const w = readyWriter(c);
        const before = { records: c.records.length, offset: w.offset };
        let caught: unknown;
        try {
          call(w);
        } catch (e) {
          caught = e;
        }
        expect(caught).to.be.instanceOf(StreamWriteError);
        expect(caught).to.deep.include({ code: 'bad-argument', record, field, offset: before.offset });
        expect({ records: c.records.length, offset: w.offset }, 'nothing reached the sink').to.deep.equal(before);
        w.pageData([{ pfn: 1, type: XEN_DOMCTL_PFINFO_XTAB }]);
        expect(c.records.length).to.equal(before.records + 1);
      });
    }
  });

  it('refuses a record over REC_LENGTH_MAX without materialising it', function () {
    const w = readyWriter(new RecordCollector(), 40000, { batchSize: 40000 });
    const e = (() => {
      try {
        w.pageData(stampEntries(32768));
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(e).to.be.instanceOf(StreamWriteError).and.deep.include({ code: 'record-too-long', record: 'PAGE_DATA', field: 'body_length' });
  });

  it('applies the restore rules before anything reaches a sink: order, v2, after END', function () {
    const c = new RecordCollector();
    const w = new StreamWriter(c);
    expect(() => w.pageData([{ pfn: 0, type: XEN_DOMCTL_PFINFO_XTAB }])).to.throw(StreamOrderError).with.property('code', 'out-of-order');
    expect(c.records).to.have.length(0);
    const v2 = new StreamWriter(new RecordCollector(), { version: 2 });
    v2.x86PvInfo(X86_32);
    expect(() => v2.staticDataEnd()).to.throw(StreamOrderError).with.property('code', 'record-not-allowed');
    const done = readyWriter(new RecordCollector());
    done.pageData([{ pfn: 1, type: XEN_DOMCTL_PFINFO_XTAB }]);
    done.vcpu(REC_TYPE_X86_PV_VCPU_BASIC, 0, new Uint8Array(VCPU_GUEST_CONTEXT_SIZE.x86_64));
    expect(done.end()).to.include({ endedBy: 'END' });
    expect(done.ended).to.equal(true);
    expect(() => done.checkpoint()).to.throw(StreamOrderError).with.property('code', 'trailing-data');
  });

  it('writes the headers once, whether start() is called or not', function () {
    const out = new BufferOutput();
    const w = new StreamWriter(new EncodingSink(out));
    w.start();
    w.start();
    w.x86PvInfo(X86_32);
    expect(out.length).to.equal(40 + 16);
    expect(w.offset).to.equal(56);
  });

  it('counts bytes as the encoder writes them', function () {
    const out = new BufferOutput();
    const w = readyWriter(new EncodingSink(out));
    const rec: StreamRecord = { type: REC_TYPE_PAGE_DATA, entries: stampEntries(3) };
    const before = w.offset;
    w.write(rec);
    expect(w.offset - before).to.equal(encodedLength(rec));
    expect(out.length).to.equal(w.offset);
  });

  it('writes a real stream to a file through a file descriptor, and reads it back from the file', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'xenabi-writer-'));
    try {
      const file = join(dir, 'guest.stream');
      const fd = FdOutput.create(file);
      writeSample(new EncodingSink(fd), { abi: X86_32 });
      fd.close();
      const mem = new BufferOutput();
      writeSample(new EncodingSink(mem), { abi: X86_32 });
      expect(readFileSync(file).equals(mem.toBuffer())).to.equal(true);
      expect(mem.written.length, 'one chunk per record, plus the headers').to.equal(readStream(mem.toBuffer()).records.length + 1);
      const collected = new RecordCollector();
      const summary = await readStreamFile(file, {}, collected);
      expect(summary).to.include({ guest_width: 4, pt_levels: 3, endedBy: 'END' });
      expect(collected.records.length).to.equal(summary!.records);
      expect(collected.image).to.deep.equal({ version: 3 });
      expect(await readStreamFile(file)).to.deep.equal(summary);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps a slow Writable bounded: awaiting drain() between records holds at most one record beyond its high-water mark', async function () {
    const received: Buffer[] = [];
    let peak = 0;
    const slow = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, done) {
        received.push(chunk);
        setImmediate(done);
      },
    });
    const output = new WritableOutput(slow);
    const w = readyWriter(new EncodingSink(output));
    for (let i = 0; i < 4; i++) {
      w.pageData(stampEntries(MAX_BATCH_SIZE, i * MAX_BATCH_SIZE));
      peak = Math.max(peak, slow.writableLength);
      await w.drain();
      expect(slow.writableNeedDrain).to.equal(false);
    }
    w.vcpu(REC_TYPE_X86_PV_VCPU_BASIC, 0, new Uint8Array(VCPU_GUEST_CONTEXT_SIZE.x86_64));
    w.end();
    await output.close();
    expect(peak).to.be.at.most(64 * 1024 + 8 + 8 + 8 * MAX_BATCH_SIZE + PAGE_SIZE * MAX_BATCH_SIZE);
    expect(readStream(Buffer.concat(received)).summary).to.include({ pfns: 4 * MAX_BATCH_SIZE, endedBy: 'END' });
  });

  it('rejects a pending drain() when the Writable fails while it waits; a tee of sinks drains them all', async function () {
    let fail: ((e: Error) => void) | undefined;
    const stuck = new Writable({
      highWaterMark: 16,
      write(_chunk, _enc, done) {
        fail = done;
      },
    });
    const output = new WritableOutput(stuck);
    const tee = new TeeSink(new InProcessChannel(new RecordCollector()), new EncodingSink(output));
    const w = new StreamWriter(tee);
    w.x86PvInfo(X86_64);
    expect(stuck.writableNeedDrain).to.equal(true);
    const pending = w.drain();
    fail!(new Error('connection reset'));
    let rejected: unknown;
    await pending.catch((e: unknown) => {
      rejected = e;
    });
    expect(rejected).to.be.instanceOf(Error).with.property('message', 'connection reset');
  });

  it('surfaces an error of the Writable on the next write', async function () {
    const broken = new Writable({
      write(_chunk, _enc, done) {
        done(new Error('disk full'));
      },
    });
    const output = new WritableOutput(broken);
    const w = new StreamWriter(new EncodingSink(output));
    w.start();
    await new Promise((resolve) => setImmediate(resolve));
    expect(() => w.x86PvInfo(X86_64)).to.throw('disk full');
    let rejected: unknown;
    await output.drain().catch((e: unknown) => {
      rejected = e;
    });
    expect(rejected).to.be.instanceOf(Error).with.property('message', 'disk full');
  });
});
