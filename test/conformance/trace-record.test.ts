/**
 * Recording: the trace written while the online check runs, read back by checkTraceText (what
 * `check-trace` runs), gives the same violations at the same events, for correct and faulty guests
 * on both ABIs. The recorder also attaches to a guest that booted already.
 */

import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAGE_SIZE, X86_32, X86_64, type GuestAbi } from '../../abi/index.js';
import { checkTraceFile, checkTraceText, parseTrace, recordTrace } from '../../conformance/trace/index.js';
import { Workload } from '../../guest-emu/workload.js';
import { finish, makeGuest, makePeer } from '../guest-emu/support/world.js';

const ABIS: readonly GuestAbi[] = [X86_32, X86_64];
const MIX = 'balloon=50%,exchange=10%,grants=20%,growth=5%,writes=50%';

function recorded(abi: GuestAbi, variant: string, seed: number, bootFirst = false) {
  const fpp = PAGE_SIZE / abi.wordSize;
  const { xen, g } = makeGuest({ abi, variant, boot: bootFirst, maxPages: 4096 + 3 * fpp });
  const lines: string[] = [];
  const rec = recordTrace(xen, g, { check: { maxPerRule: 1000 }, seed, writeLine: (l) => lines.push(l) });
  if (!bootFirst) finish(g.boot());
  finish(new Workload(g, { rates: MIX, seed, peer: makePeer(xen) }).run(200));
  rec.stop();
  return { lines, checker: rec.checker!, events: rec.events() };
}

describe('conformance: recorded traces', () => {
  for (const abi of ABIS) {
    for (const variant of ['tree+linear', 'torn-element-write', 'stale-mid-page', 'bump-once', 'forgotten-m2p']) {
      const seed = 21;
      it(`${abi.name} ${variant}: check-trace on the recording finds what the online check found, seed ${seed}`, function () {
        this.timeout(60_000);
        const { lines, checker, events } = recorded(abi, variant, seed);
        const offline = checkTraceText(lines.join('\n'), { maxPerRule: 1000 });
        expect(offline.events).to.equal(events);
        expect(offline.header).to.include({ abi: abi.name, guest: variant, seed });
        expect(offline.total).to.equal(checker.total);
        expect(offline.violations.map(({ line: _l, ...v }) => v)).to.deep.equal(checker.violations());
        // Each violation points at the line of its event (the header is line 1).
        for (const v of offline.violations) expect(v.line).to.equal(v.at! + 2);
        if (variant === 'tree+linear') expect(offline.total, `seed ${seed}`).to.equal(0);
        else expect(offline.total, `seed ${seed}`).to.be.greaterThan(0);
      });
    }
  }

  it('writes a file that check-trace reads back, starting with the header and a state event', function () {
    this.timeout(60_000);
    const dir = mkdtempSync(join(tmpdir(), 'xenabi-trace-'));
    try {
      const file = join(dir, 'guest.jsonl');
      const { xen, g } = makeGuest({ abi: X86_64, variant: 'short-max-pfn', boot: false, maxPages: 4096 + 1536 });
      const rec = recordTrace(xen, g, { file, check: true, seed: 5 });
      finish(g.boot());
      finish(new Workload(g, { rates: 'balloon=50%,growth=10%', seed: 5 }).run(200));
      rec.stop();
      const text = readFileSync(file, 'utf8');
      const parsed = parseTrace(text);
      expect(parsed.events[0]!.event.type).to.equal('state');
      expect(parsed.events.length).to.equal(rec.events());
      const result = checkTraceFile(file);
      expect(result.reports.map((r) => r.rule.id)).to.deep.equal(rec.checker!.violatedRules());
      expect(result.reports.map((r) => r.rule.id)).to.include('G-MAXPFN-01');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const abi of ABIS) {
    it(`${abi.name}: attaching to a booted guest starts from its published structure and stays clean, seed 31`, function () {
      this.timeout(60_000);
      const { lines, checker } = recorded(abi, 'tree+linear', 31, true);
      const types = parseTrace(lines.join('\n')).events.slice(0, 4).map((e) => e.event.type);
      expect(types).to.deep.equal(['state', 'tree', 'list', 'p2m']);
      expect(checker.violations()).to.deep.equal([]);
    });
  }
});

describe('conformance: the ownership events the recorder follows', () => {
  it('xen-emu tells frames gained and lost (Xen heap flagged), and only while somebody listens', () => {
    const { xen, g } = makeGuest({ abi: X86_64 });
    const seen: { domid: number; mfn: number; owned: boolean; xenHeap?: boolean }[] = [];
    finish(g.balloonOut(3000));
    const off = xen.events.subscribe((e) => {
      if (e.type === 'ownership') seen.push({ domid: e.domid, mfn: e.mfn, owned: e.owned, ...(e.xenHeap ? { xenHeap: true } : {}) });
    });
    finish(g.balloonIn(3000));
    const back = Number(g.mfnOf(3000));
    finish(g.balloonOut(3000));
    const heap = xen.allocXenHeapFrame(xen.domain(g.domid)!)!;
    xen.machine.freeFrame(heap);
    off();
    finish(g.balloonIn(3000));
    expect(seen).to.deep.equal([
      { domid: g.domid, mfn: back, owned: true },
      { domid: g.domid, mfn: back, owned: false },
      { domid: g.domid, mfn: heap, owned: true, xenHeap: true },
      { domid: g.domid, mfn: heap, owned: false, xenHeap: true },
    ]);
  });
});
