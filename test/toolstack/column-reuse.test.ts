/**
 * The saver reuses the memory of PAGE_DATA columns (and normalised page tables) record after
 * record when its sink declares `retainsPageData: false` (issue 8). Checked here: which sinks
 * declare it, that a restore fed straight from the saver (memory reused) builds the same domain as
 * one fed the kept records (memory never reused), Remus included, and that a sink which keeps
 * records still gets columns that never change, even next to a restorer that does not.
 */

import { expect } from 'chai';
import { PAGE_SIZE, X86_32, X86_64, type GuestAbi } from '../../abi/index.js';
import { PageUse } from '../../guest-emu/page-state.js';
import { PrivilegedInterface } from '../../xen-emu/privileged.js';
import { Xen } from '../../xen-emu/xen.js';
import {
  BufferOutput,
  EncodingSink,
  InProcessChannel,
  REC_TYPE_CHECKPOINT,
  REC_TYPE_PAGE_DATA,
  RecordCollector,
  StreamWriter,
  TeeSink,
  type RecordSink,
  type StreamRecord,
} from '../../toolstack/index.js';
import { Restorer } from '../../toolstack/restore.js';
import { Saver } from '../../toolstack/save.js';
import type { DomainHeader } from '../../toolstack/stream/domain-header.js';
import type { ImageHeader } from '../../toolstack/stream/image-header.js';
import { finish } from '../guest-emu/support/world.js';
import { bootSource, type Source } from './support/save-direct.js';

const SMALL_BATCH = 4;

/**
 * Saves `src` into `sink`; between checkpoints the guest writes some of its free pages (bytes in
 * some, stamps in others), so each checkpoint sends several records that the restorer buffers.
 */
function saveInto(src: Source, sink: RecordSink, checkpoints: number, batchSize?: number): void {
  const writer = new StreamWriter(sink, { streamType: checkpoints > 0 ? 'checkpointed' : 'plain', maxVcpus: 1 });
  const g = src.guest;
  const free: number[] = [];
  for (let pfn = 0; pfn < src.maxPages && free.length < 24; pfn++) if (g.pages.use(pfn) === PageUse.Free) free.push(pfn);
  let round = 0;
  const saver = new Saver(
    src.tools,
    src.domid,
    writer,
    {
      *suspend() {
        yield* g.suspend();
      },
      *resumeBetweenCheckpoints() {
        yield* g.resume({ cancelled: true });
        round++;
        const by = { domid: src.domid, by: 'guest' as const };
        free.forEach((pfn, i) => {
          const mfn = Number(g.mfnOf(pfn));
          if (i % 2 === 0) src.xen.storeBytes(by, mfn, 0, new Uint8Array(PAGE_SIZE).fill(round * 16 + i));
          else src.xen.storeStamp(by, mfn, 0x5eed0000 + round * 256 + i);
        });
      },
    },
    { strategy: 'deep-tracking', checkpoints, ...(batchSize === undefined ? {} : { batchSize }) },
  );
  expect(finish(saver.run()).outcome).to.equal('completed');
}

/** A restorer on a fresh Xen sized for `src`, and where its checkpoints are counted. */
function receiver(src: Source): { restorer: Restorer; tools: PrivilegedInterface; domid: number; checkpointsSeen: number[]; xen: Xen } {
  const xen = new Xen({ maxPage: src.machinePages });
  const tools = new PrivilegedInterface(xen);
  const domid = tools.createDomain(src.guest.abi, src.maxPages).domid;
  const checkpointsSeen: number[] = [];
  return { restorer: new Restorer(tools, domid, (n) => checkpointsSeen.push(n)), tools, domid, checkpointsSeen, xen };
}

/** Everything a restore leaves behind: the restorer's view and every frame of the new domain. */
function outcome(dst: { restorer: Restorer; tools: PrivilegedInterface; domid: number; checkpointsSeen: number[]; xen: Xen }): object {
  const r = dst.restorer;
  const pfns: unknown[] = [];
  for (let pfn = 0; pfn <= r.highestPfn + 2; pfn++) {
    const mfn = r.mfnOf(pfn);
    const content = mfn === undefined ? undefined : dst.tools.frameContent(dst.domid, mfn);
    pfns.push([pfn, mfn, r.typeOf(pfn), content === undefined ? undefined : 'stamp' in content ? content.stamp : Buffer.from(content.bytes).toString('base64')]);
  }
  return { completed: r.completed, failure: r.failure?.message, stats: { ...r.stats }, frameList: [...r.frameList], checkpoints: dst.checkpointsSeen, pfns, machine: dst.xen.machine.usedFrames };
}

/** A sink that keeps nothing but notes the memory of each record's columns, declaring `retains`. */
class BufferSpy implements RecordSink {
  readonly buffers: ArrayBufferLike[] = [];
  /** Each record's pfns column as buffer and offset, to tell pieces apart. */
  readonly pieces: [ArrayBufferLike, number][] = [];
  constructor(readonly retainsPageData: boolean | undefined) {}
  headers(_image: ImageHeader, _domain: DomainHeader): void {}
  record(rec: StreamRecord): void {
    if (rec.type !== REC_TYPE_PAGE_DATA || rec.columns === undefined) return;
    this.buffers.push(rec.columns.pfns.buffer);
    this.pieces.push([rec.columns.pfns.buffer, rec.columns.pfns.byteOffset]);
  }
}

/** Each PAGE_DATA record as plain entries with their pages' bytes, to compare records by value. */
function plain(records: readonly { record: StreamRecord }[]): unknown[] {
  return records.map(({ record }) =>
    record.type === REC_TYPE_PAGE_DATA
      ? record.entries.map((e) => [e.pfn, e.type, e.content === undefined ? undefined : 'stamp' in e.content ? e.content.stamp : Buffer.from(e.content.bytes).toString('base64')])
      : record.type,
  );
}

describe('PAGE_DATA column memory reused when no sink keeps it', function () {
  this.timeout(60_000);

  it('sinks declare whether they keep columns; a channel and a tee ask their members', function () {
    const src = bootSource(X86_64, 'linear');
    const restorer = receiver(src).restorer;
    const collector = new RecordCollector();
    const encoding = new EncodingSink(new BufferOutput());
    expect(restorer.retainsPageData).to.equal(false);
    expect(encoding.retainsPageData).to.equal(false);
    expect(collector.retainsPageData).to.equal(true);
    expect(new InProcessChannel(restorer).retainsPageData).to.equal(false);
    expect(new InProcessChannel(collector).retainsPageData).to.equal(true);
    expect(new InProcessChannel(new BufferSpy(undefined)).retainsPageData, 'undeclared counts as keeping').to.equal(true);
    expect(new TeeSink(new InProcessChannel(restorer), encoding).retainsPageData).to.equal(false);
    expect(new TeeSink(new InProcessChannel(restorer), collector).retainsPageData).to.equal(true);
  });

  it('the saver reuses column memory only for a sink that lets go of it', function () {
    const reusing = new BufferSpy(false);
    saveInto(bootSource(X86_64, 'linear'), reusing, 0);
    const keeping = new BufferSpy(undefined);
    saveInto(bootSource(X86_64, 'linear'), keeping, 0);
    expect(reusing.buffers.length).to.equal(keeping.buffers.length).and.to.be.greaterThan(2);
    expect(new Set(reusing.buffers).size, 'one buffer, record after record').to.equal(1);
    expect(new Set(reusing.pieces.map(([, offset]) => offset))).to.deep.equal(new Set([0]));
    // Never reused: every record's columns in memory of their own.
    const distinct = new Set(keeping.pieces.map(([buffer, offset]) => `${keeping.buffers.indexOf(buffer)}:${offset}`));
    expect(distinct.size).to.equal(keeping.pieces.length);
  });

  for (const abi of [X86_64, X86_32] as GuestAbi[]) {
    for (const checkpoints of [0, 2]) {
      it(`${abi.name}${checkpoints > 0 ? `, Remus (${checkpoints} checkpoints)` : ''}: a restore fed straight from the saver builds the same domain as one fed the kept records`, function () {
        // The same guest booted twice (deterministic): one saved into a collector, one straight into a restorer.
        // Small batches: a checkpoint's buffered records span several, so reused memory would show.
        const keptSrc = bootSource(abi, 'linear');
        const collector = new RecordCollector();
        saveInto(keptSrc, collector, checkpoints, SMALL_BATCH);
        const kept = receiver(keptSrc);
        kept.restorer.headers(collector.image!, collector.domain!);
        for (const { record, offset } of collector.records) kept.restorer.record(record, offset);
        if (checkpoints > 0) {
          const afterFirst = collector.records.slice(collector.records.findIndex((e) => e.record.type === REC_TYPE_CHECKPOINT) + 1);
          const buffered = afterFirst.slice(0, afterFirst.findIndex((e) => e.record.type === REC_TYPE_CHECKPOINT));
          expect(buffered.filter((e) => e.record.type === REC_TYPE_PAGE_DATA).length, 'PAGE_DATA records buffered in checkpoint 2').to.be.greaterThan(2);
        }

        const directSrc = bootSource(abi, 'linear');
        const direct = receiver(directSrc);
        // Alongside an encoding sink, which does not keep columns either.
        saveInto(directSrc, new TeeSink(new InProcessChannel(direct.restorer), new EncodingSink(new BufferOutput())), checkpoints, SMALL_BATCH);

        const expected = outcome(kept);
        // A Remus stream ends at the last checkpoint, with no END: nothing to complete.
        expect(expected).to.deep.include({ completed: checkpoints === 0, failure: undefined });
        expect(outcome(direct)).to.deep.equal(expected);
      });
    }
  }

  it('a collector next to a restorer keeps columns that never change (Remus)', function () {
    const reference = new RecordCollector();
    saveInto(bootSource(X86_64, 'linear'), reference, 2, SMALL_BATCH);
    const src = bootSource(X86_64, 'linear');
    const collector = new RecordCollector();
    saveInto(src, new TeeSink(new InProcessChannel(receiver(src).restorer), collector), 2, SMALL_BATCH);
    expect(plain(collector.records)).to.deep.equal(plain(reference.records));
  });
});
