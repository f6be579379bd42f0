/**
 * PAGE_DATA in columns (issue 8): the in-process saver's form of a record, next to the general form
 * with an object per pfn. Each fast path is checked against the general one on mixed input: the
 * writer refuses the same records with the same errors, the encoder writes the same bytes, the
 * restorer builds the same domain, and the saver's bulk reads agree with the per-frame calls.
 */

import { expect } from 'chai';
import {
  PAGE_SIZE,
  X86_32,
  X86_64,
  XEN_DOMCTL_PFINFO_BROKEN,
  XEN_DOMCTL_PFINFO_L1TAB,
  XEN_DOMCTL_PFINFO_L2TAB,
  XEN_DOMCTL_PFINFO_LPINTAB,
  XEN_DOMCTL_PFINFO_LTAB_SHIFT,
  XEN_DOMCTL_PFINFO_LTABTYPE_MASK,
  XEN_DOMCTL_PFINFO_NOTAB,
  XEN_DOMCTL_PFINFO_XALLOC,
  XEN_DOMCTL_PFINFO_XTAB,
} from '../../abi/index.js';
import { PageUse } from '../../guest-emu/page-state.js';
import { mapGuestP2m } from '../../toolstack/p2m-map.js';
import {
  BufferOutput,
  EncodingSink,
  InProcessChannel,
  PageDataColumns,
  REC_TYPE_END,
  REC_TYPE_PAGE_DATA,
  RecordCollector,
  StreamError,
  StreamWriter,
  encodeRecord,
  pageDataCodec,
  pageTypeHasData,
  readStream,
  sameContent,
  snapshotRecord,
  type PageDataEntry,
  type PageDataRecord,
  type RecordSink,
  type StreamRecord,
} from '../../toolstack/index.js';
import { bootSource, destination, feed, saveQuiet, type Destination, type Entry, type Source } from './support/save-direct.js';

/** A writer past the static records, ready for PAGE_DATA over pfns 0..max. */
function readyWriter(sink: RecordSink, max = 4095, options = {}): StreamWriter {
  const w = new StreamWriter(sink, options);
  w.x86PvInfo(X86_64);
  w.staticDataEnd();
  w.p2mFrames(0, max, [...Array(Math.floor(max / 512) + 1).keys()].map((i) => 100 + i));
  return w;
}

function page(fill: number): Uint8Array {
  return new Uint8Array(PAGE_SIZE).fill(fill);
}

/** Every kind of entry a record can hold: stamps, pages of bytes, tables, pinned tables, and the types without data. */
function mixedEntries(): PageDataEntry[] {
  return [
    { pfn: 7, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 0xc0de0007 } },
    { pfn: 8, type: XEN_DOMCTL_PFINFO_NOTAB, content: { bytes: page(0x5a) } },
    { pfn: 9, type: XEN_DOMCTL_PFINFO_L1TAB, content: { bytes: page(0x11) } },
    { pfn: 10, type: XEN_DOMCTL_PFINFO_L2TAB + XEN_DOMCTL_PFINFO_LPINTAB, content: { bytes: page(0x22) } },
    { pfn: 11, type: XEN_DOMCTL_PFINFO_XTAB },
    { pfn: 12, type: XEN_DOMCTL_PFINFO_XALLOC },
    { pfn: 13, type: XEN_DOMCTL_PFINFO_BROKEN },
    { pfn: 14, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 0 } },
    { pfn: 4095, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 0xffffffff } },
  ];
}

/** What the writer threw, or undefined. */
function thrown(call: () => void): unknown {
  try {
    call();
  } catch (err) {
    return err;
  }
  return undefined;
}

/** The fields of a stream error that a caller sees. */
function errorShape(err: unknown): object {
  expect(err).to.be.instanceOf(StreamError);
  const e = err as StreamError;
  return { class: e.constructor.name, code: e.code, record: e.record, field: e.field, offset: e.offset, message: e.message };
}

/** Columns with one entry changed (for bad input the constructor itself accepts). */
function columnsWith(entries: readonly PageDataEntry[], change: (c: { pfns: Float64Array; types: Uint32Array; stamps: Uint32Array; bytes: Map<number, Uint8Array> }) => void): PageDataColumns {
  const base = PageDataColumns.fromEntries(entries);
  const parts = { pfns: base.pfns.slice(), types: base.types.slice(), stamps: base.stamps.slice(), bytes: new Map(base.bytes) };
  change(parts);
  return new PageDataColumns(parts.pfns, parts.types, parts.stamps, parts.bytes);
}

describe('PAGE_DATA columns', function () {
  describe('the record', function () {
    it('gives the same entries it was made from, and a spread copy is a plain record with them', function () {
      const entries = mixedEntries();
      const columns = PageDataColumns.fromEntries(entries);
      expect(columns.count).to.equal(entries.length);
      expect(columns.entries).to.deep.equal(entries);
      expect(columns.pagesWithData).to.equal(6);
      const rec = columns.record();
      expect(rec.type).to.equal(REC_TYPE_PAGE_DATA);
      expect(rec.columns).to.equal(columns);
      expect(rec.entries).to.equal(columns.entries);
      const copy: PageDataRecord = { ...rec };
      expect(copy.columns).to.equal(undefined);
      expect(copy.entries).to.deep.equal(entries);
      const changed: PageDataRecord = { ...rec, entries: entries.slice(0, 2) };
      expect(changed.columns, 'columns cannot outlive a change of entries').to.equal(undefined);
      expect(columns.slice(2, 5).entries).to.deep.equal(entries.slice(2, 5));
      expect(columns.slice(8, 100).entries).to.deep.equal(entries.slice(8));
    });

    it('refuses columns that cannot describe a record, and entries that have no column form', function () {
      expect(() => new PageDataColumns(new Float64Array(2), new Uint32Array(1), new Uint32Array(2))).to.throw(RangeError, /differ in length/);
      expect(() => new PageDataColumns(new Float64Array(2), new Uint32Array(2), new Uint32Array(2), new Map([[2, page(0)]]))).to.throw(RangeError, /index 2/);
      expect(() => PageDataColumns.fromEntries([{ pfn: 1, type: XEN_DOMCTL_PFINFO_NOTAB }])).to.throw(RangeError, /without contents/);
      expect(() => PageDataColumns.fromEntries([{ pfn: 1, type: XEN_DOMCTL_PFINFO_XTAB, content: { stamp: 1 } }])).to.throw(RangeError, /stamp on a XTAB/);
      expect(() => PageDataColumns.fromEntries([{ pfn: 1, type: -1 }])).to.throw(RangeError, /not a u32/);
      expect(() => PageDataColumns.fromEntries([{ pfn: 1, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 2 ** 32 } }])).to.throw(RangeError, /stamp 4294967296 is not a u32/);
    });

    it('passes through the in-process channel and collectors as it is (columns never change once written)', function () {
      const rec = PageDataColumns.fromEntries(mixedEntries()).record();
      expect(snapshotRecord(rec)).to.equal(rec);
      const kept = new RecordCollector();
      readyWriter(new InProcessChannel(kept)).write(rec);
      expect(kept.records.at(-1)!.record).to.equal(rec);
    });
  });

  describe('the writer refuses the same bad input as with entries, with the same error, and stays usable', function () {
    const good = mixedEntries();
    const cases: [string, () => PageDataColumns][] = [
      ['no pfns', () => PageDataColumns.fromEntries([])],
      ['a pfn of 2^52', () => columnsWith(good, (c) => (c.pfns[3] = 2 ** 52))],
      ['a negative pfn', () => columnsWith(good, (c) => (c.pfns[0] = -1))],
      ['a fractional pfn', () => columnsWith(good, (c) => (c.pfns[5] = 1.5))],
      ['a NaN pfn', () => columnsWith(good, (c) => (c.pfns[8] = NaN))],
      ['an unknown type nibble', () => columnsWith(good, (c) => (c.types[2] = 0x5 * 2 ** 28))],
      ['a type with low bits set', () => columnsWith(good, (c) => (c.types[0] = XEN_DOMCTL_PFINFO_NOTAB + 1))],
      ['bytes on XTAB', () => columnsWith(good, (c) => c.bytes.set(4, page(1)))],
      ['bytes on XALLOC, after an earlier bad pfn', () => columnsWith(good, (c) => (c.bytes.set(5, page(1)), (c.pfns[6] = -3)))],
      ['a short page', () => columnsWith(good, (c) => c.bytes.set(1, new Uint8Array(4095)))],
      ['a long page on a table', () => columnsWith(good, (c) => c.bytes.set(2, new Uint8Array(PAGE_SIZE + 1)))],
      ['a pfn beyond the domain maximum (a restore rule)', () => columnsWith(good, (c) => (c.pfns[4] = 5000))],
    ];
    for (const [what, make] of cases) {
      it(what, function () {
        const columns = make();
        const viaEntries = new RecordCollector();
        const wEntries = readyWriter(viaEntries);
        const viaColumns = new RecordCollector();
        const wColumns = readyWriter(viaColumns);
        const expected = thrown(() => wEntries.write({ type: REC_TYPE_PAGE_DATA, entries: columns.entries }));
        expect(expected, 'the entries form is refused').to.not.equal(undefined);
        const before = { records: viaColumns.records.length, offset: wColumns.offset };
        expect(errorShape(thrown(() => wColumns.write(columns.record())))).to.deep.equal(errorShape(expected));
        expect({ records: viaColumns.records.length, offset: wColumns.offset }, 'nothing reached the sink').to.deep.equal(before);
        if (columns.count === 0) {
          expect(errorShape(thrown(() => wColumns.pageDataColumns(columns)))).to.deep.equal(errorShape(thrown(() => wEntries.pageData([]))));
        }
        wColumns.pageDataColumns(PageDataColumns.fromEntries(good));
        expect(viaColumns.records.length).to.equal(before.records + 1);
      });
    }

    it('the same checks as the codec on its own, for each entry of a long record', function () {
      const entries: PageDataEntry[] = [...Array(3000).keys()].map((i) => ({ pfn: i, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: i } }));
      const ctx = { record: 'PAGE_DATA', offset: 64 };
      expect(() => pageDataCodec.validate(PageDataColumns.fromEntries(entries).record(), ctx)).to.not.throw();
      const bad = columnsWith(entries, (c) => (c.types[2999] = 0x7 * 2 ** 28));
      expect(errorShape(thrown(() => pageDataCodec.validate(bad.record(), ctx)))).to.deep.equal(
        errorShape(thrown(() => pageDataCodec.validate({ type: REC_TYPE_PAGE_DATA, entries: bad.entries }, ctx))),
      );
    });
  });

  it('splits into the same records at the same offsets as pageData', function () {
    const entries: PageDataEntry[] = [...Array(2500).keys()].map((i) =>
      i % 100 === 0 ? { pfn: i, type: XEN_DOMCTL_PFINFO_L1TAB, content: { bytes: page(i & 0xff) } } : i % 7 === 0 ? { pfn: i, type: XEN_DOMCTL_PFINFO_XTAB } : { pfn: i, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: i * 3 } },
    );
    for (const batchSize of [1024, 100, 2500]) {
      const a = new RecordCollector();
      const b = new RecordCollector();
      expect(readyWriter(b, 4095, { batchSize }).pageDataColumns(PageDataColumns.fromEntries(entries))).to.equal(readyWriter(a, 4095, { batchSize }).pageData(entries));
      expect(b.records.map((r) => r.offset)).to.deep.equal(a.records.map((r) => r.offset));
      expect(b.records.map((r) => r.record.type === REC_TYPE_PAGE_DATA && r.record.entries)).to.deep.equal(a.records.map((r) => r.record.type === REC_TYPE_PAGE_DATA && r.record.entries));
    }
  });

  it('encodes to a byte stream identical to the one from the same entries, which reads back as those entries', function () {
    const entries = mixedEntries();
    // pfns above 32 bits: the record alone (a stream's p2m would need 2^43 frames to reach them).
    const big: PageDataEntry[] = [{ pfn: 2 ** 40 + 5, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 77 } }, { pfn: 2 ** 52 - 1, type: XEN_DOMCTL_PFINFO_XTAB }, ...entries];
    expect(Buffer.compare(encodeRecord(PageDataColumns.fromEntries(big).record(), 8), encodeRecord({ type: REC_TYPE_PAGE_DATA, entries: big }, 8))).to.equal(0);
    const streams = [false, true].map((columnar) => {
      const out = new BufferOutput();
      const w = readyWriter(new EncodingSink(out));
      for (const list of [entries, entries.slice(5), entries.slice(1, 4)]) {
        if (columnar) w.pageDataColumns(PageDataColumns.fromEntries(list));
        else w.pageData(list);
      }
      return out.toBuffer();
    });
    expect(Buffer.compare(streams[1]!, streams[0]!)).to.equal(0);
    const read = readStream(streams[1]!, { rules: false }).records.filter((r) => r.record.type === REC_TYPE_PAGE_DATA);
    const decoded = (read[0]!.record as PageDataRecord).entries;
    expect(decoded.map((e) => [e.pfn, e.type])).to.deep.equal(entries.map((e) => [e.pfn, e.type]));
    decoded.forEach((e, i) => {
      const want = entries[i]!.content;
      if (want === undefined) expect(e.content).to.equal(undefined);
      else expect(sameContent(e.content!, want), `entry ${i}`).to.equal(true);
    });
  });

  describe('restore: columns and entries build the same domain', function () {
    this.timeout(30_000);

    /** Each PAGE_DATA record in its plain form (entries only), as a reader would give it. */
    function asEntries(records: readonly Entry[]): Entry[] {
      return records.map(({ record, offset }) => (record.type === REC_TYPE_PAGE_DATA ? { record: { type: REC_TYPE_PAGE_DATA, entries: [...record.entries] }, offset } : { record, offset }));
    }

    /** Everything a restore leaves behind: the restorer's view and the frames of the new domain. */
    function outcome(dst: Destination, maxPfn: number): object {
      const r = dst.restorer;
      const pfns: unknown[] = [];
      for (let pfn = 0; pfn <= maxPfn + 2; pfn++) {
        const mfn = r.mfnOf(pfn);
        const content = mfn === undefined ? undefined : dst.tools.frameContent(dst.domid, mfn);
        pfns.push([pfn, mfn, r.typeOf(pfn), content === undefined ? undefined : 'stamp' in content ? content.stamp : Buffer.from(content.bytes).toString('base64')]);
      }
      return { completed: r.completed, failure: r.failure?.message, failurePfn: r.failure?.pfn, failureOffset: r.failureOffset, stats: { ...r.stats }, frameList: [...r.frameList], pfns, machine: dst.xen.machine.usedFrames };
    }

    function both(src: Source, saved: ReturnType<typeof saveQuiet>, records: readonly Entry[]): [object, object] {
      const results = [records, asEntries(records)].map((list) => {
        const dst = destination(src, saved);
        feed(dst, list);
        return outcome(dst, dst.restorer.highestPfn);
      });
      return [results[0]!, results[1]!];
    }

    /** A record in columns, placed just before END. */
    function beforeEnd(records: readonly Entry[], entries: readonly PageDataEntry[]): Entry[] {
      const end = records.findIndex((e) => e.record.type === REC_TYPE_END);
      const out = records.slice();
      out.splice(end, 0, { record: PageDataColumns.fromEntries(entries).record(), offset: records[end]!.offset });
      return out;
    }

    function lastEntries(records: readonly Entry[]): Map<number, PageDataEntry> {
      const out = new Map<number, PageDataEntry>();
      for (const { record } of records) if (record.type === REC_TYPE_PAGE_DATA) for (const e of record.entries) out.set(e.pfn, e);
      return out;
    }

    const levelOf = (type: number): number => (type & XEN_DOMCTL_PFINFO_LTABTYPE_MASK) >>> XEN_DOMCTL_PFINFO_LTAB_SHIFT;

    for (const abi of [X86_64, X86_32]) {
      it(`${abi.name}: a saved stream (page tables, materialised frames, stamps), then XTAB, BROKEN, XALLOC, a repeated pfn and a resent table`, function () {
        const src = bootSource(abi, 'linear');
        const saved = saveQuiet(src);
        expect(saved.report.outcome).to.equal('completed');
        expect(saved.records.some((e) => e.record.type === REC_TYPE_PAGE_DATA && e.record.columns !== undefined), 'the saver writes columns').to.equal(true);
        const last = lastEntries(saved.records);
        const plain = [...last.values()].filter((e) => e.type === XEN_DOMCTL_PFINFO_NOTAB && e.content !== undefined && 'stamp' in e.content && src.guest.pages.use(e.pfn) === PageUse.Free).map((e) => e.pfn);
        const table = [...last.values()].find((e) => levelOf(e.type) === 1)!;
        const materialised = [...last.values()].find((e) => e.type === XEN_DOMCTL_PFINFO_NOTAB && e.content !== undefined && 'bytes' in e.content)!;
        expect(plain.length).to.be.greaterThan(10);
        expect(table, 'an L1 table').to.not.equal(undefined);
        expect(materialised, 'a frame with real bytes').to.not.equal(undefined);
        const maxPfn = Math.max(...last.keys());
        const records = beforeEnd(saved.records, [
          { pfn: plain[0]!, type: XEN_DOMCTL_PFINFO_XTAB },
          { pfn: plain[1]!, type: XEN_DOMCTL_PFINFO_BROKEN },
          { pfn: plain[2]!, type: XEN_DOMCTL_PFINFO_XTAB },
          { pfn: plain[2]!, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 0xabcd } },
          { pfn: plain[3]!, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 1 } },
          { pfn: plain[3]!, type: XEN_DOMCTL_PFINFO_NOTAB, content: { bytes: page(0x33) } },
          { pfn: plain[3]!, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 2 } },
          { pfn: plain[4]!, type: XEN_DOMCTL_PFINFO_NOTAB, content: { bytes: page(0x44) } },
          { pfn: plain[5]!, type: XEN_DOMCTL_PFINFO_XALLOC },
          table,
          materialised,
          { pfn: maxPfn, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 0x1234 } },
        ]);
        const [columnar, objects] = both(src, saved, records);
        expect(columnar).to.deep.include({ completed: true, failure: undefined });
        expect(columnar).to.deep.equal(objects);
      });

      it(`${abi.name}: the same failure, at the same point, with the same domain left: a table as a stamp, a pfn beyond the maximum`, function () {
        const src = bootSource(abi, 'linear');
        const saved = saveQuiet(src);
        const last = lastEntries(saved.records);
        const plain = [...last.values()].filter((e) => e.type === XEN_DOMCTL_PFINFO_NOTAB && src.guest.pages.use(e.pfn) === PageUse.Free).map((e) => e.pfn);
        const table = [...last.values()].find((e) => levelOf(e.type) === 1)!;
        const stamped = beforeEnd(saved.records, [
          { pfn: plain[0]!, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 5 } },
          { pfn: plain[1]!, type: XEN_DOMCTL_PFINFO_NOTAB, content: { bytes: page(0x55) } },
          { pfn: plain[2]!, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 6 } },
          { pfn: table.pfn, type: table.type, content: { stamp: 7 } },
          { pfn: plain[3]!, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 8 } },
        ]);
        const [a, b] = both(src, saved, stamped);
        expect(a).to.deep.include({ completed: false });
        expect((a as { failure: string }).failure).to.match(/arrived as a content stamp/);
        expect(a).to.deep.equal(b);

        const beyond = beforeEnd(saved.records, [
          { pfn: plain[0]!, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 5 } },
          { pfn: Math.max(...last.keys()) + 1, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: 6 } },
        ]);
        const [c, d] = both(src, saved, beyond);
        expect((c as { failure: string }).failure).to.match(/outside domain maximum/);
        expect(c).to.deep.equal(d);
      });
    }

    it('Remus: buffered columns apply at the CHECKPOINT exactly as entries do', function () {
      const src = bootSource(X86_64, 'linear');
      const saved = saveQuiet(src, { checkpoints: 2 });
      expect(saved.report.outcome).to.equal('completed');
      const [columnar, objects] = both(src, saved, saved.records);
      expect(columnar).to.deep.include({ failure: undefined });
      expect(columnar).to.deep.equal(objects);
    });
  });

  describe("the saver's bulk reads agree with the per-frame calls", function () {
    this.timeout(30_000);

    for (const abi of [X86_64, X86_32]) {
      it(`${abi.name}: types, stamps and bytes of every pfn, with p2m entries naming a foreign frame, a free frame and no frame`, function () {
        const src = bootSource(abi, 'linear');
        const p2m = mapGuestP2m(src.tools, src.domid);
        const free = [...Array(p2m.p2mSize).keys()].filter((pfn) => src.guest.pages.use(pfn) === PageUse.Free);
        const [toForeign, toFree, toNone] = [free[3]!, free[5]!, free[7]!];
        const other = src.tools.createDomain(abi, 16).domid;
        const foreignMfn = src.tools.populatePhysmap(other, [0])[0]!;
        const freeMfn = src.machinePages - 1;
        expect(src.tools.pageTypes(src.domid, [foreignMfn, freeMfn])).to.deep.equal([XEN_DOMCTL_PFINFO_XTAB, XEN_DOMCTL_PFINFO_XTAB]);
        // Rewrite three p2m entries in the guest's own leaves (before the save: nothing is dirty).
        const width = abi.wordSize;
        const setEntry = (pfn: number, mfn: number | 'invalid'): void => {
          const bytes = new Uint8Array(width).fill(0xff);
          if (mfn !== 'invalid') new DataView(bytes.buffer).setUint32(0, mfn, true), width === 8 && new DataView(bytes.buffer).setUint32(4, 0, true);
          const per = PAGE_SIZE / width;
          src.xen.storeBytes({ domid: -1, by: 'toolstack' }, Number(p2m.leafMfns[Math.floor(pfn / per)]!), (pfn % per) * width, bytes);
        };
        setEntry(toForeign, foreignMfn);
        setEntry(toFree, freeMfn);
        setEntry(toNone, 'invalid');

        const saved = saveQuiet(src, { strategy: 'map-once' });
        expect(saved.report.outcome).to.equal('completed', saved.report.reason);
        const after = mapGuestP2m(src.tools, src.domid);
        const mfnOf = (pfn: number): number | undefined => {
          const v = after.leaves[Math.floor(pfn / (PAGE_SIZE / width))]!.get(pfn % (PAGE_SIZE / width));
          return v === (width === 8 ? 0xffffffffffffffffn : 0xffffffffn) ? undefined : Number(v);
        };
        const last = new Map<number, PageDataEntry>();
        for (const { record } of saved.records) if (record.type === REC_TYPE_PAGE_DATA) for (const e of (record as StreamRecord & PageDataRecord).entries) last.set(e.pfn, e);
        expect(last.size).to.equal(after.p2mSize);
        let withBytes = 0;
        for (const [pfn, e] of last) {
          const mfn = mfnOf(pfn);
          const type = mfn === undefined ? XEN_DOMCTL_PFINFO_XTAB : src.tools.pageTypes(src.domid, [mfn])[0]!;
          expect(e.type, `pfn ${pfn}`).to.equal(type >>> 0);
          if (type !== XEN_DOMCTL_PFINFO_NOTAB) {
            if (!pageTypeHasData(type)) expect(e.content, `pfn ${pfn}`).to.equal(undefined);
            else expect(e.content && 'bytes' in e.content, `table pfn ${pfn} sent as bytes`).to.equal(true);
            continue;
          }
          const want = src.tools.frameContent(src.domid, mfn!);
          if ('bytes' in want) withBytes++;
          expect(e.content !== undefined && sameContent(e.content, want), `pfn ${pfn}`).to.equal(true);
          expect('bytes' in e.content!, `pfn ${pfn}: the same form`).to.equal('bytes' in want);
        }
        expect(withBytes, 'frames holding real bytes').to.be.greaterThan(0);
        expect(last.get(toForeign)!.type).to.equal(XEN_DOMCTL_PFINFO_XTAB);
        expect(last.get(toFree)!.type).to.equal(XEN_DOMCTL_PFINFO_XTAB);
        expect(last.get(toNone)!.type).to.equal(XEN_DOMCTL_PFINFO_XTAB);
        // A pfn without a frame is deferred (XTAB now, and again in the final pass); one naming a
        // foreign or free frame is not (XTAB is its type): each is sent once.
        const sends = (pfn: number): number =>
          saved.records.reduce((n, { record }) => n + (record.type === REC_TYPE_PAGE_DATA ? record.entries.filter((e) => e.pfn === pfn).length : 0), 0);
        expect([toForeign, toFree, toNone].map(sends)).to.deep.equal([1, 1, 2]);
      });
    }

  });
});
