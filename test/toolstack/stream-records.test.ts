/**
 * Each record kind of an x86 PV stream (spec "Records"): its fixed layout, a round trip through the
 * writer and the reader, and for every malformed body the typed error naming the record, the field
 * and the byte offset. Also the framing around bodies: REC_LENGTH_MAX, padding, unknown and
 * optional types, records that have no place in a PV stream.
 */

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  PAGE_SIZE,
  X86_32,
  X86_64,
  XEN_DOMCTL_PFINFO_BROKEN,
  XEN_DOMCTL_PFINFO_NOTAB,
  XEN_DOMCTL_PFINFO_XALLOC,
  XEN_DOMCTL_PFINFO_XTAB,
  probeCompileArgs,
  type GuestAbi,
} from '../../abi/index.js';
import { fillFromStamp } from '../../xen-emu/machine.js';
import {
  BackChannelWriter,
  BufferOutput,
  EXT_VCPUCONTEXT_SIZE,
  EncodingSink,
  KNOWN_PAGE_TYPES,
  REC_LENGTH_MAX,
  REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST,
  REC_TYPE_PAGE_DATA,
  StreamError,
  StreamOrderError,
  StreamRecordError,
  StreamWriteError,
  StreamWriter,
  VCPU_GUEST_CONTEXT_SIZE,
  VCPU_MSR_SIZE,
  defineLayout,
  describeRecord,
  encodeRecord,
  image_header,
  pageTypeHasData,
  pageTypeName,
  readStream,
  record_header,
  sfield,
  x86_pv_info,
  x86_pv_p2m_frames,
  x86_pv_vcpu_hdr,
  x86_tsc_info,
  xen_cpuid_leaf,
  xen_msr_entry,
  page_data_header,
  type PageDataEntry,
  type StreamErrorCode,
  type StreamRecord,
} from '../../toolstack/index.js';
import { gccWithXenHeaders, requireOracle } from '../support/oracle.js';
import { concat, pageDataBody, pfnWord, rawHeaders, rawMiddleOffset, rawPreamble, rawRecord, rawStream, sampleStream, u32s, u64s } from './support/streams.js';

/** Reads `bytes` and returns the thrown StreamError (failing if none or another exception). */
function errorOf(bytes: Uint8Array, options: Parameters<typeof readStream>[1] = {}): StreamError {
  try {
    readStream(bytes, options);
  } catch (e) {
    if (e instanceof StreamError) return e;
    throw e;
  }
  expect.fail('the reader accepted the stream');
}

function expectRecordError(bytes: Uint8Array, code: StreamErrorCode, record: string, field: string | undefined, offset: number, options = {}): StreamError {
  const e = errorOf(bytes, options);
  expect(e, e.message).to.be.instanceOf(StreamRecordError);
  expect(e).to.deep.include({ code, record, field, offset });
  return e;
}

/** The records of a stream with `middle` between the standard preamble and epilogue. */
function middleRecords(abi: GuestAbi, middle: Uint8Array[], options = {}): StreamRecord[] {
  const r = readStream(rawStream(abi, middle), options);
  const n = rawPreamble(abi).length;
  return r.records.slice(n, n + middle.length).map((x) => x.record);
}

const M = rawMiddleOffset(X86_64);

describe('stream records', function () {
  describe('layouts follow the spec: fixed widths, each field aligned to its size', function () {
    const layouts = [image_header, record_header, page_data_header, x86_pv_info, x86_pv_p2m_frames, x86_pv_vcpu_hdr, x86_tsc_info, xen_cpuid_leaf, xen_msr_entry];
    it('sizes', function () {
      expect(layouts.map((l) => [l.name, l.size])).to.deep.equal([
        ['image header', 24],
        ['record header', 8],
        ['PAGE_DATA', 8],
        ['X86_PV_INFO', 8],
        ['X86_PV_P2M_FRAMES', 8],
        ['X86_PV_VCPU_*', 8],
        ['X86_TSC_INFO', 24],
        ['xen_cpuid_leaf_t', 24],
        ['xen_msr_entry_t', 16],
      ]);
      for (const l of layouts) for (const f of l.fields) expect(f.offset % f.width, `${l.name}.${f.name}`).to.equal(0);
    });

    it('a table with a misaligned field is refused when it is declared', function () {
      expect(() => defineLayout({ name: 'bad', spec: 'test', fields: [sfield('a', 4, 'a'), sfield('b', 8, 'b')] })).to.throw(/b: offset 4 is not aligned to its size 8/);
    });

    it('values that do not fit their field are named, not wrapped', function () {
      expect(x86_tsc_info.misfit({ mode: 2 ** 32 })).to.equal('mode');
      expect(x86_tsc_info.misfit({ nsec: -1n })).to.equal('nsec');
      expect(x86_tsc_info.misfit({ khz: 1.5 })).to.equal('khz');
      expect(x86_tsc_info.misfit({ mode: 1, khz: 2, nsec: 3n, incarnation: 4 })).to.equal(undefined);
    });
  });

  describe('PAGE_DATA', function () {
    it('round-trips pfns of every type: data for NOTAB and L1–L4 (pinned or not), none for BROKEN, XALLOC, XTAB', function () {
      const out = new BufferOutput();
      const w = new StreamWriter(new EncodingSink(out));
      w.x86PvInfo(X86_64);
      w.staticDataEnd();
      w.p2mFrames(0, 2 ** 20, [...Array(2 ** 20 / 512 + 1).keys()]);
      const entries: PageDataEntry[] = KNOWN_PAGE_TYPES.map((type, i) => ({ pfn: 0x10 * i + 3, type, ...(pageTypeHasData(type) ? { content: { stamp: 0x5a5a0000 + i } } : {}) }));
      entries.push({ pfn: 2 ** 20, type: XEN_DOMCTL_PFINFO_NOTAB, content: { bytes: new Uint8Array(PAGE_SIZE).fill(0xee) } });
      w.pageData(entries);
      const r = readStream(out.toBuffer(), { rules: false });
      const pd = r.records.find((x) => x.record.type === REC_TYPE_PAGE_DATA)!;
      expect(pd.length).to.equal(8 + 8 * 13 + PAGE_SIZE * 10);
      const got = pd.record.type === REC_TYPE_PAGE_DATA ? pd.record.entries : [];
      expect(got.map((e) => [e.pfn, e.type])).to.deep.equal(entries.map((e) => [e.pfn, e.type]));
      got.forEach((e, i) => {
        const type = entries[i]!.type;
        expect(e.content === undefined, pageTypeName(type)).to.equal(!pageTypeHasData(type));
        if (e.content === undefined || !('bytes' in e.content)) return;
        const want = new Uint8Array(PAGE_SIZE);
        const source = entries[i]!.content!;
        if ('stamp' in source) fillFromStamp(want, source.stamp);
        else want.set(source.bytes);
        expect(Buffer.from(e.content.bytes).equals(want), `pfn ${e.pfn}`).to.equal(true);
      });
      expect(describeRecord(pd.record)).to.match(/^PAGE_DATA: 13 pfns \(2 NOTAB, 1 L1TAB.*1 XTAB\), 10 pages of data, pfns 0x3\.\.0x100000$/);
    });

    it('names the page types as the spec does', function () {
      expect(KNOWN_PAGE_TYPES.map(pageTypeName)).to.deep.equal(['NOTAB', 'L1TAB', 'L2TAB', 'L3TAB', 'L4TAB', 'L1TAB_PIN', 'L2TAB_PIN', 'L3TAB_PIN', 'L4TAB_PIN', 'BROKEN', 'XALLOC', 'XTAB']);
      expect(pageTypeName(0x5 * 2 ** 28)).to.equal('unknown type 0x50000000');
    });

    it('a record of pfns that carry no data at all is fine', function () {
      const [rec] = middleRecords(X86_64, [rawRecord(1, pageDataBody([pfnWord(0xf, 1), pfnWord(0xe, 2), pfnWord(0xd, 3)], 0))]);
      expect(rec).to.deep.equal({ type: 1, entries: [{ pfn: 1, type: XEN_DOMCTL_PFINFO_XTAB }, { pfn: 2, type: XEN_DOMCTL_PFINFO_XALLOC }, { pfn: 3, type: XEN_DOMCTL_PFINFO_BROKEN }] });
    });

    it('refuses a body too short for its header', function () {
      expectRecordError(rawStream(X86_64, [rawRecord(1, [1, 0, 0, 0])]), 'bad-length', 'PAGE_DATA', 'body_length', M + 4);
    });

    it('refuses count 0', function () {
      expectRecordError(rawStream(X86_64, [rawRecord(1, u32s(0, 0))]), 'bad-count', 'PAGE_DATA', 'count', M + 8);
    });

    it('refuses a count the body cannot hold', function () {
      const e = expectRecordError(rawStream(X86_64, [rawRecord(1, concat(u32s(3, 0), u64s(pfnWord(0xf, 1))))]), 'bad-count', 'PAGE_DATA', 'count', M + 8);
      expect(e.message).to.contain('count 3 needs 32 bytes of pfn words, the body has 16');
    });

    for (const nibble of [5, 6, 7, 8]) {
      it(`refuses type nibble ${nibble}`, function () {
        const body = pageDataBody([pfnWord(0, 1), pfnWord(nibble, 2)], 1);
        expectRecordError(rawStream(X86_64, [rawRecord(1, body)]), 'bad-page-type', 'PAGE_DATA', 'pfn[1]', M + 16 + 8);
      });
    }

    it('refuses reserved pfn bits 52–59 (and masks them off when reserved fields are ignored)', function () {
      const body = pageDataBody([pfnWord(0xf, 1) | (0x81n << 52n)], 0);
      expectRecordError(rawStream(X86_64, [rawRecord(1, body)]), 'reserved-nonzero', 'PAGE_DATA', 'pfn[0]', M + 16);
      const [rec] = middleRecords(X86_64, [rawRecord(1, body)], { strictReserved: false });
      expect(rec).to.deep.equal({ type: 1, entries: [{ pfn: 1, type: XEN_DOMCTL_PFINFO_XTAB }] });
    });

    it('refuses a non-zero reserved word', function () {
      expectRecordError(rawStream(X86_64, [rawRecord(1, concat(u32s(1, 7), u64s(pfnWord(0xf, 1))))]), 'reserved-nonzero', 'PAGE_DATA', 'res1', M + 12);
    });

    it('refuses a body one page longer or shorter than its types say', function () {
      const words = [pfnWord(0, 1), pfnWord(0xf, 2), pfnWord(0x9, 3)];
      expectRecordError(rawStream(X86_64, [rawRecord(1, pageDataBody(words, 3))]), 'bad-length', 'PAGE_DATA', 'body_length', M + 4);
      const e = expectRecordError(rawStream(X86_64, [rawRecord(1, pageDataBody(words, 1))]), 'bad-length', 'PAGE_DATA', 'body_length', M + 4);
      expect(e.message).to.contain('expected 8 + 24 + 8192 = 8224 bytes for 3 pfns, 2 of them with data; got 4128');
    });

    it('decodes a pfn up to 2^52 - 1 exactly', function () {
      const r = readStream(rawStream(X86_64, [rawRecord(1, pageDataBody([pfnWord(0xf, 2 ** 52 - 1)], 0))]), { rules: false });
      const rec = r.records[3]!.record;
      expect(rec.type === REC_TYPE_PAGE_DATA && rec.entries[0]!.pfn).to.equal(2 ** 52 - 1);
    });
  });

  describe('X86_PV_INFO', function () {
    it('round-trips both ABIs', function () {
      for (const abi of [X86_32, X86_64]) {
        const r = readStream(rawStream(abi, []));
        expect(r.records[0]!.record).to.deep.equal({ type: 2, guest_width: abi.wordSize, pt_levels: abi.pagingLevels });
        expect(describeRecord(r.records[0]!.record)).to.equal(`X86_PV_INFO: ${abi.wordSize * 8}-bit guest, ${abi.pagingLevels} levels of page tables`);
      }
    });

    function withInfo(body: readonly number[]): Buffer {
      return concat(rawHeaders(), rawRecord(2, body));
    }

    it('refuses a length other than 8', function () {
      expectRecordError(withInfo([8, 4, 0, 0, 0, 0, 0]), 'bad-length', 'X86_PV_INFO', 'body_length', 44);
      expectRecordError(withInfo([8, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 'bad-length', 'X86_PV_INFO', 'body_length', 44);
    });

    it('refuses a width other than 4 or 8 and levels other than 3 or 4', function () {
      expectRecordError(withInfo([5, 4, 0, 0, 0, 0, 0, 0]), 'bad-value', 'X86_PV_INFO', 'guest_width', 48);
      expectRecordError(withInfo([8, 2, 0, 0, 0, 0, 0, 0]), 'bad-value', 'X86_PV_INFO', 'pt_levels', 49);
    });

    it('refuses reserved bytes', function () {
      expectRecordError(withInfo([8, 4, 0, 0, 0, 1, 0, 0]), 'reserved-nonzero', 'X86_PV_INFO', 'res2', 52);
    });
  });

  describe('X86_PV_P2M_FRAMES', function () {
    it('round-trips the range and the frame pfns', function () {
      const r = readStream(rawStream(X86_64, []));
      expect(r.records[2]!.record).to.deep.equal({ type: 3, p2m_start_pfn: 0, p2m_end_pfn: 15, p2m_pfns: [5] });
    });

    function withFrames(body: Uint8Array): Buffer {
      return concat(rawHeaders(), rawPreamble(X86_64)[0]!, rawPreamble(X86_64)[1]!, rawRecord(3, body));
    }
    const at = 40 + 16 + 8;

    it('refuses a body shorter than 8 or not a multiple of 8', function () {
      expectRecordError(withFrames(u32s(0)), 'bad-length', 'X86_PV_P2M_FRAMES', 'body_length', at + 4);
      expectRecordError(withFrames(concat(u32s(0, 15), u32s(5))), 'bad-length', 'X86_PV_P2M_FRAMES', 'body_length', at + 4);
    });

    it('refuses an end pfn below the start pfn', function () {
      expectRecordError(withFrames(concat(u32s(16, 15), u64s(5))), 'bad-value', 'X86_PV_P2M_FRAMES', 'p2m_end_pfn', at + 12);
    });

    it('refuses a frame pfn of 2^52 or more', function () {
      expectRecordError(withFrames(concat(u32s(0, 15), u64s(1n << 60n))), 'bad-value', 'X86_PV_P2M_FRAMES', 'p2m_pfns[0]', at + 16);
    });
  });

  describe('X86_PV_VCPU_BASIC, EXTENDED, XSAVE, MSRS', function () {
    it('round-trip vcpu id and blob', function () {
      const blob = Buffer.alloc(EXT_VCPUCONTEXT_SIZE, 0x42);
      const [rec] = middleRecords(X86_64, [rawRecord(5, concat(u32s(0, 0), blob))]);
      expect(rec).to.deep.equal({ type: 5, vcpu_id: 0, context: new Uint8Array(blob) });
    });

    it('refuse a body without the 8-byte header, and a reserved word', function () {
      expectRecordError(rawStream(X86_64, [rawRecord(6, u32s(0))]), 'bad-length', 'X86_PV_VCPU_XSAVE', 'body_length', M + 4);
      expectRecordError(rawStream(X86_64, [rawRecord(12, concat(u32s(0, 1), Buffer.alloc(16)))]), 'reserved-nonzero', 'X86_PV_VCPU_MSRS', 'res1', M + 12);
    });
  });

  describe('SHARED_INFO, X86_TSC_INFO and the signalling records', function () {
    it('SHARED_INFO is exactly one page', function () {
      expect(middleRecords(X86_64, [rawRecord(7, Buffer.alloc(PAGE_SIZE, 1))])[0]).to.deep.equal({ type: 7, page: new Uint8Array(PAGE_SIZE).fill(1) });
      expectRecordError(rawStream(X86_64, [rawRecord(7, Buffer.alloc(PAGE_SIZE - 8))]), 'bad-length', 'SHARED_INFO', 'body_length', M + 4);
    });

    it('X86_TSC_INFO is 24 bytes with a reserved word', function () {
      const body = concat(u32s(2, 2_400_000), u64s(123_456_789n), u32s(3, 0));
      expect(middleRecords(X86_64, [rawRecord(8, body)])[0]).to.deep.equal({ type: 8, mode: 2, khz: 2_400_000, nsec: 123_456_789n, incarnation: 3 });
      expectRecordError(rawStream(X86_64, [rawRecord(8, body.subarray(0, 16))]), 'bad-length', 'X86_TSC_INFO', 'body_length', M + 4);
      expectRecordError(rawStream(X86_64, [rawRecord(8, concat(body.subarray(0, 20), u32s(1)))]), 'reserved-nonzero', 'X86_TSC_INFO', 'res1', M + 8 + 20);
    });

    for (const [type, name] of [[0x0d, 'VERIFY'], [0x0e, 'CHECKPOINT'], [0x10, 'STATIC_DATA_END'], [0x00, 'END']] as const) {
      it(`${name} has no body`, function () {
        const bytes = concat(rawHeaders(), rawRecord(type, [0, 0, 0, 0, 0, 0, 0, 0]));
        expectRecordError(bytes, 'bad-length', name, 'body_length', 44);
      });
    }
  });

  describe('X86_CPUID_POLICY and X86_MSR_POLICY', function () {
    it('round-trip leaves and MSR entries', function () {
      const bytes = concat(rawHeaders(), rawRecord(2, [8, 4, 0, 0, 0, 0, 0, 0]), rawRecord(0x11, u32s(7, 0, 1, 2, 3, 4)), rawRecord(0x12, concat(u32s(0xce, 0), u64s(0x80000000n))));
      const r = readStream(bytes, { rules: false });
      expect(r.records[1]!.record).to.deep.equal({ type: 0x11, leaves: [{ leaf: 7, subleaf: 0, a: 1, b: 2, c: 3, d: 4 }] });
      expect(r.records[2]!.record).to.deep.equal({ type: 0x12, entries: [{ idx: 0xce, flags: 0, val: 0x80000000n }] });
      expect(describeRecord(r.records[1]!.record)).to.equal('X86_CPUID_POLICY: 1 leaves');
    });

    it('refuse an empty body or one that is not a multiple of the entry size', function () {
      expectRecordError(concat(rawHeaders(), rawRecord(0x11)), 'bad-length', 'X86_CPUID_POLICY', 'body_length', 44);
      expectRecordError(concat(rawHeaders(), rawRecord(0x11, Buffer.alloc(25))), 'bad-length', 'X86_CPUID_POLICY', 'body_length', 44);
      expectRecordError(concat(rawHeaders(), rawRecord(0x12, Buffer.alloc(24))), 'bad-length', 'X86_MSR_POLICY', 'body_length', 44);
    });
  });

  describe('CHECKPOINT_DIRTY_PFN_LIST (the COLO back channel)', function () {
    it('round-trips on the back channel, which is bare records', function () {
      const out = new BufferOutput();
      const back = new BackChannelWriter(out);
      back.dirtyPfnList([7, 3, 2 ** 40]);
      back.dirtyPfnList([]);
      expect(back.offset).to.equal(8 + 24 + 8);
      expect(() => back.dirtyPfnList([2 ** 52])).to.throw(StreamWriteError).that.deep.includes({ field: 'pfn[0]', offset: 40 });
      const r = readStream(out.toBuffer(), { backChannel: true });
      expect(r.records.map((x) => x.record)).to.deep.equal([
        { type: REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST, pfns: [7, 3, 2 ** 40] },
        { type: REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST, pfns: [] },
      ]);
      expect(r.summary).to.equal(undefined);
      expect(Buffer.from(encodeRecord({ type: REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST, pfns: [7] })).equals(Buffer.from(rawRecord(0x0f, u64s(7))))).to.equal(true);
    });

    it('refuses other records on the back channel and bad lengths', function () {
      expectRecordError(rawRecord(0x0e), 'record-not-allowed', 'CHECKPOINT', 'type', 0, { backChannel: true });
      expectRecordError(rawRecord(0x0f, Buffer.alloc(12)), 'bad-length', 'CHECKPOINT_DIRTY_PFN_LIST', 'body_length', 4, { backChannel: true });
    });

    it('is refused in the stream itself', function () {
      const e = errorOf(rawStream(X86_64, [rawRecord(0x0f, u64s(1))]));
      expect(e).to.be.instanceOf(StreamOrderError).and.deep.include({ code: 'record-not-allowed', record: 'CHECKPOINT_DIRTY_PFN_LIST', offset: M });
    });
  });

  describe('framing', function () {
    it('refuses a body_length over REC_LENGTH_MAX before reading the body', function () {
      const bytes = concat(rawHeaders(), rawRecord(1, [], REC_LENGTH_MAX + 1));
      const e = expectRecordError(bytes, 'record-too-long', 'PAGE_DATA', 'body_length', 44);
      expect(e.message).to.contain('more than REC_LENGTH_MAX (0x8000000)');
    });

    it('refuses non-zero padding, or ignores it when reserved fields are not checked', function () {
      const rec = rawRecord(6, concat(u32s(0, 0), Buffer.alloc(20))); // 28 bytes + 4 padding
      rec[8 + 28 + 2] = 1;
      expectRecordError(rawStream(X86_64, [rec]), 'reserved-nonzero', 'X86_PV_VCPU_XSAVE', 'padding', M + 8 + 28 + 2);
      expect(middleRecords(X86_64, [rec], { strictReserved: false })[0]).to.deep.include({ type: 6, vcpu_id: 0 });
    });

    for (const type of [0x13, 0x7fffffff]) {
      it(`refuses unknown mandatory record 0x${type.toString(16)}`, function () {
        expectRecordError(rawStream(X86_64, [rawRecord(type)]), 'unknown-mandatory-record', `record 0x${type.toString(16)}`, 'type', M);
      });
    }

    for (const [type, name] of [[0x09, 'HVM_CONTEXT'], [0x0a, 'HVM_PARAMS'], [0x0b, 'TOOLSTACK']] as const) {
      it(`refuses ${name} in an x86 PV stream`, function () {
        expectRecordError(rawStream(X86_64, [rawRecord(type, Buffer.alloc(8))]), 'record-not-allowed', name, 'type', M);
      });
    }

    it('skips an unknown optional record (bit 31), or refuses it when asked to, as verify-stream-v2 does', function () {
      const bytes = rawStream(X86_64, [rawRecord(0x80000042, [1, 2, 3])]);
      const r = readStream(bytes);
      expect(r.skipped).to.have.length(1);
      expect(r.skipped[0]).to.deep.include({ offset: M, length: 3 });
      expect(r.skipped[0]!.record).to.deep.equal({ type: 0x80000042, body: new Uint8Array([1, 2, 3]) });
      expect(r.summary?.records).to.equal(6);
      const e = errorOf(bytes, { optionalRecords: 'reject' });
      expect(e).to.be.instanceOf(StreamOrderError).and.deep.include({ code: 'record-not-allowed', record: 'record 0x80000042 (optional)', offset: M });
    });

    it('refuses bytes after END', function () {
      const e = errorOf(concat(rawStream(X86_64, []), Buffer.alloc(8)));
      expect(e).to.be.instanceOf(StreamRecordError).and.deep.include({ code: 'trailing-data', record: 'END' });
      expect(e.offset).to.equal(rawStream(X86_64, []).length);
    });
  });

  it('describes every record kind in one line', function () {
    const lines = readStream(sampleStream({ abi: X86_32, checkpoints: 1 }), { streamType: 'checkpointed' }).records.map((r) => describeRecord(r.record));
    expect(lines).to.include.members([
      'X86_PV_INFO: 32-bit guest, 3 levels of page tables',
      'X86_CPUID_POLICY: 2 leaves',
      'X86_MSR_POLICY: 1 MSRs',
      'STATIC_DATA_END',
      'X86_PV_P2M_FRAMES: pfns 0x0..0x1f in 1 frames',
      'X86_TSC_INFO: mode 0, 2400000 kHz, 1000000 ns, incarnation 0',
      'SHARED_INFO: 4096 bytes',
      'X86_PV_VCPU_BASIC: vcpu0, 2800 bytes',
      'X86_PV_VCPU_EXTENDED: vcpu0, 64 bytes',
      'X86_PV_VCPU_XSAVE: vcpu0, 592 bytes',
      'X86_PV_VCPU_MSRS: vcpu0, 16 bytes',
      'CHECKPOINT',
      'END',
    ]);
    expect(describeRecord({ type: REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST, pfns: [1, 2] })).to.equal('CHECKPOINT_DIRTY_PFN_LIST: 2 pfns');
  });

  describe('vcpu blob sizes match gcc compiling Xen 4.17\'s headers', function () {
    it('vcpu_guest_context (-m32, -m64), xen_domctl_ext_vcpucontext, xen_domctl_vcpu_msr_t', function () {
      requireOracle(this, gccWithXenHeaders);
      const dir = mkdtempSync(join(tmpdir(), 'xenabi-vcpu-'));
      try {
        const src = join(dir, 'sizes.c');
        writeFileSync(src, [
          '#include <stdio.h>',
          '#include <stdint.h>',
          '#include <xen/xen.h>',
          '#include <xen/domctl.h>',
          'int main(void) {',
          '  printf("%zu %zu %zu\\n", sizeof(vcpu_guest_context_t), sizeof(struct xen_domctl_ext_vcpucontext), sizeof(xen_domctl_vcpu_msr_t));',
          '  return 0;',
          '}',
        ].join('\n'));
        for (const abi of [X86_32, X86_64]) {
          const exe = join(dir, `sizes-${abi.name}`);
          const cc = spawnSync(process.env['CC'] ?? 'gcc', [...probeCompileArgs(abi, ['__XEN_TOOLS__']), src, '-o', exe], { encoding: 'utf8' });
          expect(cc.status, cc.stderr).to.equal(0);
          const [ctx, ext, msr] = spawnSync(exe, { encoding: 'utf8' }).stdout.trim().split(' ').map(Number);
          expect(ctx, `${abi.name} vcpu_guest_context`).to.equal(VCPU_GUEST_CONTEXT_SIZE[abi.name]);
          if (abi === X86_64) {
            expect(ext).to.equal(EXT_VCPUCONTEXT_SIZE);
            expect(msr).to.equal(VCPU_MSR_SIZE);
          }
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
