/**
 * libxc's restore rules over a whole x86 PV stream (spec "Layout" and "v3 compat with v2";
 * xg_sr_restore.c, xg_sr_restore_x86_pv.c): order, duplicates, pfn ranges, vcpu blob sizes per
 * guest width, what END and CHECKPOINT need, how a checkpointed stream may end. Each case runs
 * twice, through the reader (the records encoded raw) and through the writer (which checks the
 * same rules before anything reaches a sink): both must give the same typed error at the same
 * offset, or the same summary.
 */

import { expect } from 'chai';
import { X86_32, X86_64, XEN_DOMCTL_PFINFO_NOTAB, XEN_DOMCTL_PFINFO_XTAB, type GuestAbi } from '../../abi/index.js';
import {
  RecordCollector,
  StreamError,
  StreamOrderError,
  StreamTruncatedError,
  StreamWriter,
  VCPU_GUEST_CONTEXT_SIZE,
  encodeRecord,
  readStream,
  type StreamErrorCode,
  type StreamRecord,
  type StreamSummary,
  type StreamType,
  type StreamVersion,
} from '../../toolstack/index.js';
import { concat, rawHeaders } from './support/streams.js';

const info = (abi: GuestAbi): StreamRecord => ({ type: 2, guest_width: abi.wordSize, pt_levels: abi.pagingLevels });
const sde: StreamRecord = { type: 0x10 };
const frames = (end = 15, pfns = [5]): StreamRecord => ({ type: 3, p2m_start_pfn: 0, p2m_end_pfn: end, p2m_pfns: pfns });
const xtab = (...pfns: number[]): StreamRecord => ({ type: 1, entries: pfns.map((pfn) => ({ pfn, type: XEN_DOMCTL_PFINFO_XTAB })) });
const page = (pfn: number): StreamRecord => ({ type: 1, entries: [{ pfn, type: XEN_DOMCTL_PFINFO_NOTAB, content: { stamp: pfn } }] });
const vcpu = (type: 4 | 5 | 6 | 12, size: number, vcpu_id = 0): StreamRecord => ({ type, vcpu_id, context: new Uint8Array(size) });
const basic = (abi: GuestAbi, vcpu_id = 0): StreamRecord => vcpu(4, VCPU_GUEST_CONTEXT_SIZE[abi.name], vcpu_id);
const end: StreamRecord = { type: 0 };
const checkpoint: StreamRecord = { type: 0x0e };
const shinfo: StreamRecord = { type: 7, page: new Uint8Array(4096) };
const cpuid: StreamRecord = { type: 0x11, leaves: [{ leaf: 0, subleaf: 0, a: 0, b: 0, c: 0, d: 0 }] };

/** A complete v3 plain stream for `abi`. */
const complete = (abi: GuestAbi): StreamRecord[] => [info(abi), sde, frames(), page(1), xtab(2), shinfo, basic(abi), end];

interface Options {
  readonly version?: StreamVersion;
  readonly streamType?: StreamType;
  readonly maxVcpus?: number;
}

type Outcome = StreamError | StreamSummary;

function viaReader(records: readonly StreamRecord[], o: Options): Outcome {
  const bytes = concat(rawHeaders(o.version ?? 3), ...records.map((r) => encodeRecord(r)));
  try {
    return readStream(bytes, { streamType: o.streamType ?? 'plain', ...(o.maxVcpus === undefined ? {} : { maxVcpus: o.maxVcpus }) }).summary!;
  } catch (e) {
    if (e instanceof StreamError) return e;
    throw e;
  }
}

function viaWriter(records: readonly StreamRecord[], o: Options): Outcome {
  const streamType = o.streamType === 'checkpointed' ? 'checkpointed' : 'plain';
  const w = new StreamWriter(new RecordCollector(), { version: o.version ?? 3, streamType, ...(o.maxVcpus === undefined ? {} : { maxVcpus: o.maxVcpus }) });
  try {
    for (const r of records) w.write(r);
    return w.finish();
  } catch (e) {
    if (e instanceof StreamError) return e;
    throw e;
  }
}

/** Both paths refuse with `code` on `record` at `offset`. */
function refused(records: readonly StreamRecord[], code: StreamErrorCode, record: string, offset: number, o: Options = {}, field?: string): void {
  for (const [path, outcome] of [['reader', viaReader(records, o)], ['writer', viaWriter(records, o)]] as const) {
    expect(outcome, `${path} accepted the stream`).to.be.instanceOf(StreamError);
    const e = outcome as StreamError;
    expect({ code: e.code, record: e.record, offset: e.offset }, `${path}: ${e.message}`).to.deep.equal({ code, record, offset });
    if (field !== undefined) expect(e.field, path).to.equal(field);
  }
}

/** Both paths accept with the same summary; returns it. */
function accepted(records: readonly StreamRecord[], o: Options = {}): StreamSummary {
  const r = viaReader(records, o);
  const w = viaWriter(records, o);
  expect(r, r instanceof Error ? `reader: ${r.message}` : '').not.to.be.instanceOf(Error);
  expect(w, w instanceof Error ? `writer: ${w.message}` : '').not.to.be.instanceOf(Error);
  expect(w).to.deep.equal(r);
  return r as StreamSummary;
}

/** Offset of record `i` in a v3 stream of `records`. */
function offsetOf(records: readonly StreamRecord[], i: number, version = 3): number {
  return concat(rawHeaders(version), ...records.slice(0, i).map((r) => encodeRecord(r))).length;
}

describe('stream restore rules (reader and writer alike)', function () {
  for (const abi of [X86_32, X86_64]) {
    it(`accept a complete ${abi.name} stream and sum it up`, function () {
      const s = accepted(complete(abi));
      expect(s).to.deep.include({ version: 3, guest_width: abi.wordSize, pt_levels: abi.pagingLevels, records: 8, pageDataRecords: 2, pfns: 2, pagesWithData: 1, max_pfn: 15, endedBy: 'END' });
    });
  }

  it('a v2 stream: STATIC_DATA_END is inferred at X86_PV_P2M_FRAMES', function () {
    const s = accepted([info(X86_64), frames(), page(1), basic(X86_64), end], { version: 2 });
    expect(s.version).to.equal(2);
  });

  describe('order', function () {
    it('PAGE_DATA before X86_PV_P2M_FRAMES', function () {
      const rs = [info(X86_64), sde, page(1), frames(), basic(X86_64), end];
      refused(rs, 'out-of-order', 'PAGE_DATA', offsetOf(rs, 2));
    });

    it('X86_PV_P2M_FRAMES before X86_PV_INFO', function () {
      const rs = [sde, frames(), info(X86_64)];
      refused(rs, 'out-of-order', 'X86_PV_P2M_FRAMES', offsetOf(rs, 1));
    });

    it('v3: X86_PV_P2M_FRAMES or PAGE_DATA without STATIC_DATA_END', function () {
      const rs = [info(X86_64), frames(), page(1)];
      refused(rs, 'out-of-order', 'X86_PV_P2M_FRAMES', offsetOf(rs, 1));
      const rs2 = [info(X86_64), page(1)];
      refused(rs2, 'out-of-order', 'PAGE_DATA', offsetOf(rs2, 1));
    });

    it('vcpu records before X86_PV_INFO or before X86_PV_P2M_FRAMES; SHARED_INFO before X86_PV_INFO', function () {
      refused([basic(X86_64)], 'out-of-order', 'X86_PV_VCPU_BASIC', 40);
      const rs = [info(X86_64), sde, basic(X86_64)];
      refused(rs, 'out-of-order', 'X86_PV_VCPU_BASIC', offsetOf(rs, 2));
      refused([shinfo], 'out-of-order', 'SHARED_INFO', 40);
    });

    it('a CPU policy after STATIC_DATA_END', function () {
      const rs = [info(X86_64), sde, cpuid];
      refused(rs, 'out-of-order', 'X86_CPUID_POLICY', offsetOf(rs, 2));
    });
  });

  describe('once only, and v3 only', function () {
    it('a second X86_PV_INFO or STATIC_DATA_END', function () {
      refused([info(X86_64), info(X86_64)], 'duplicate', 'X86_PV_INFO', 56);
      refused([info(X86_64), sde, sde], 'duplicate', 'STATIC_DATA_END', 64);
    });

    it('STATIC_DATA_END and CPU policies in a v2 stream', function () {
      refused([info(X86_64), sde], 'record-not-allowed', 'STATIC_DATA_END', 56, { version: 2 });
      refused([info(X86_64), cpuid], 'record-not-allowed', 'X86_CPUID_POLICY', 56, { version: 2 });
    });

    it('X86_PV_P2M_FRAMES may come again (a grown p2m) and raises the maximum pfn', function () {
      const s = accepted([info(X86_64), sde, frames(), page(3), frames(600, [5, 6]), page(600), basic(X86_64), end]);
      expect(s.max_pfn).to.equal(600);
    });
  });

  describe('values', function () {
    it('an X86_PV_INFO combination libxc does not restore: (4, 4) and (8, 3)', function () {
      refused([{ type: 2, guest_width: 4, pt_levels: 4 }], 'bad-value', 'X86_PV_INFO', 48, {}, 'guest_width');
      refused([{ type: 2, guest_width: 8, pt_levels: 3 }], 'bad-value', 'X86_PV_INFO', 48, {}, 'guest_width');
    });

    it('a p2m frame list that does not cover its range for the guest width', function () {
      // x86_64: 512 entries a frame; x86_32: 1024.
      accepted([info(X86_64), sde, frames(511, [5]), page(1), basic(X86_64), end]);
      refused([info(X86_64), sde, frames(512, [5])], 'bad-length', 'X86_PV_P2M_FRAMES', 64 + 4, {}, 'body_length');
      accepted([info(X86_32), sde, frames(1023, [5]), page(1), basic(X86_32), end]);
      refused([info(X86_32), sde, frames(1024, [5])], 'bad-length', 'X86_PV_P2M_FRAMES', 64 + 4, {}, 'body_length');
      refused([info(X86_32), sde, frames(15, [5, 6])], 'bad-length', 'X86_PV_P2M_FRAMES', 64 + 4, {}, 'body_length');
    });

    it('a pfn above the maximum, named by its index and offset', function () {
      const rs = [info(X86_64), sde, frames(), xtab(15, 16)];
      const at = offsetOf(rs, 3);
      refused(rs, 'pfn-out-of-range', 'PAGE_DATA', at + 16 + 8, {}, 'pfn[1]');
    });

    for (const [abi, other] of [[X86_32, X86_64], [X86_64, X86_32]] as const) {
      it(`X86_PV_VCPU_BASIC of the other ABI's size in a ${abi.name} stream`, function () {
        const rs = [info(abi), sde, frames(), vcpu(4, VCPU_GUEST_CONTEXT_SIZE[other.name])];
        refused(rs, 'bad-length', 'X86_PV_VCPU_BASIC', offsetOf(rs, 3) + 4, {}, 'body_length');
      });
    }

    it('EXTENDED over 128 bytes, XSAVE under 16, MSRS not a multiple of 16', function () {
      const base = [info(X86_64), sde, frames()];
      const at = offsetOf(base, 3) + 4;
      accepted([...base, basic(X86_64), vcpu(5, 128), vcpu(6, 16), vcpu(12, 32), end]);
      refused([...base, vcpu(5, 129)], 'bad-length', 'X86_PV_VCPU_EXTENDED', at);
      refused([...base, vcpu(6, 15)], 'bad-length', 'X86_PV_VCPU_XSAVE', at);
      refused([...base, vcpu(12, 17)], 'bad-length', 'X86_PV_VCPU_MSRS', at);
    });

    it('a vcpu id beyond the domain\'s vcpus', function () {
      const rs = [info(X86_64), sde, frames(), basic(X86_64, 2)];
      refused(rs, 'bad-value', 'X86_PV_VCPU_BASIC', offsetOf(rs, 3) + 8, { maxVcpus: 2 }, 'vcpu_id');
      accepted([info(X86_64), sde, frames(), basic(X86_64), basic(X86_64, 1), end], { maxVcpus: 2 });
    });
  });

  describe('completeness', function () {
    it('END without vcpu0\'s basic state (libxc: "Sender didn\'t send vcpu0\'s basic state")', function () {
      const rs = [info(X86_64), sde, frames(), page(1), basic(X86_64, 1), end];
      refused(rs, 'missing-record', 'END', offsetOf(rs, 5));
    });

    it('END without X86_PV_P2M_FRAMES or X86_PV_INFO', function () {
      refused([info(X86_64), sde, end], 'missing-record', 'END', 64);
      refused([end], 'missing-record', 'END', 40);
    });

    it('the reader takes an empty vcpu blob (spec errata) but it is not vcpu0\'s state', function () {
      const bytes = concat(rawHeaders(), ...[info(X86_64), sde, frames(), vcpu(4, 0), end].map((r) => encodeRecord(r)));
      expect(() => readStream(bytes)).to.throw(StreamOrderError).with.property('code', 'missing-record');
    });

    it('a stream that stops without END', function () {
      const rs = [info(X86_64), sde, frames(), page(1), basic(X86_64)];
      refused(rs, 'truncated', 'END', offsetOf(rs, 5));
      expect(viaReader(rs, {})).to.be.instanceOf(StreamTruncatedError);
    });

    it('a record after END', function () {
      const rs = [...complete(X86_64), page(1)];
      refused(rs, 'trailing-data', 'END', offsetOf(rs, 8));
    });
  });

  describe('checkpoints (Remus/COLO)', function () {
    const first = [info(X86_64), sde, frames(), page(1), shinfo, basic(X86_64)];

    it('CHECKPOINT is refused in a plain stream', function () {
      refused([...first, checkpoint], 'record-not-allowed', 'CHECKPOINT', offsetOf(first, 6));
    });

    it('a CHECKPOINT needs a consistent state: vcpu0 included', function () {
      const rs = [info(X86_64), sde, frames(), page(1), checkpoint];
      refused(rs, 'missing-record', 'CHECKPOINT', offsetOf(rs, 4), { streamType: 'checkpointed' });
    });

    it('a checkpointed stream may stop after a CHECKPOINT (failover), discarding a partial checkpoint', function () {
      const clean = accepted([...first, checkpoint, page(2), basic(X86_64), checkpoint], { streamType: 'checkpointed' });
      expect(clean).to.deep.include({ checkpoints: 2, endedBy: 'failover', discardedRecords: 0 });
      const partial = accepted([...first, checkpoint, page(2), page(3)], { streamType: 'checkpointed' });
      expect(partial).to.deep.include({ checkpoints: 1, endedBy: 'failover', discardedRecords: 2 });
      const ended = accepted([...first, checkpoint, page(2), basic(X86_64), end], { streamType: 'checkpointed' });
      expect(ended).to.deep.include({ checkpoints: 1, endedBy: 'END' });
    });

    it('but not before its first CHECKPOINT', function () {
      refused(first, 'truncated', 'END', offsetOf(first, 6), { streamType: 'checkpointed' });
    });
  });
});
