/**
 * guest-emu workloads: the rate parser, and long seeded random workloads on both ABIs and all
 * personalities, after which the tree and the list agree, p2m and m2p agree for every owned frame,
 * the tools' walk of p2m_cr3 yields the guest's own leaves, the generation is even and moved by
 * exactly 2 per structural change, and Xen's machine invariants hold. The same seed gives the same
 * event trace, byte for byte, also when a scheduler interleaves the guest with another party.
 */

import { expect } from 'chai';
import { PAGE_SIZE } from '../../abi/index.js';
import { checkInvariants } from '../../xen-emu/invariants.js';
import { Rng } from '../../xen-emu/rng.js';
import { Scheduler } from '../../xen-emu/scheduler.js';
import { WorkloadSpecError } from '../../guest-emu/errors.js';
import { NO_OPERATIONS, Workload, formatWorkloadRates, parseWorkloadRates } from '../../guest-emu/workload.js';
import { checkP2mM2p, checkTreeMatchesList, checkWalkYieldsGuestLeaves } from './support/checks.js';
import { monitorElementStores, monitorGeneration } from './support/monitor.js';
import { readSharedP2m } from './support/tools-view.js';
import { hashEvents } from './support/trace-hash.js';
import { ABIS, PERSONALITIES, finish, makeGuest, makePeer } from './support/world.js';

const MIX = 'balloon=25%,exchange=5%,grants=15%,growth=3%,writes=100%';

describe('guest-emu: workloads', () => {
  describe('the rate parser', () => {
    it('reads percentages and bare per-round counts; unnamed operations are 0', () => {
      expect(parseWorkloadRates('balloon=1%,exchange=0.1%,grants=2%,growth=0.5%,writes=50%')).to.deep.equal({
        balloon: 0.01,
        exchange: 0.001,
        grants: 0.02,
        growth: 0.005,
        writes: 0.5,
        relayout: 0,
      });
      expect(parseWorkloadRates(' writes = 2.5 , relayout=.5% ')).to.deep.equal({ ...NO_OPERATIONS, writes: 2.5, relayout: 0.005 });
      expect(parseWorkloadRates('')).to.deep.equal(NO_OPERATIONS);
    });

    it('formats back to a string that parses to the same rates', () => {
      const rates = parseWorkloadRates('balloon=1%,exchange=0.1%,writes=250%');
      expect(formatWorkloadRates(rates)).to.equal('balloon=1%,exchange=0.1%,writes=250%');
      expect(parseWorkloadRates(formatWorkloadRates(rates))).to.deep.equal(rates);
    });

    it('gives a one-line error naming the valid keys for bad input', () => {
      const valid = 'valid keys: balloon, exchange, grants, growth, writes, relayout; values like 1% or 0.5 (operations per round)';
      const cases: [string, string][] = [
        ['ballon=1%', 'workload "ballon=1%": unknown operation "ballon"; '],
        ['balloon', 'workload "balloon": "balloon" has no rate (write balloon=1%); '],
        ['balloon=1%,balloon=2%', 'workload "balloon=1%,balloon=2%": balloon given twice; '],
        ['writes=-1%', 'workload "writes=-1%": rate "-1%" of writes is not a number >= 0; '],
        ['writes=lots', 'workload "writes=lots": rate "lots" of writes is not a number >= 0; '],
      ];
      for (const [spec, message] of cases) {
        let error: unknown;
        try {
          parseWorkloadRates(spec);
        } catch (e) {
          error = e;
        }
        expect(error).to.be.instanceOf(WorkloadSpecError);
        expect((error as Error).message).to.equal(message + valid);
        expect((error as Error).message).to.not.include('\n');
      }
    });

    it('refuses grants without a peer and relayout on a list personality', () => {
      const { g } = makeGuest({ abi: ABIS[1]! });
      expect(() => new Workload(g, { rates: 'grants=1%', seed: 1 })).to.throw(WorkloadSpecError, 'grants=0.01 needs a peer guest');
      expect(() => new Workload(g, { rates: 'relayout=1%', seed: 1 })).to.throw(WorkloadSpecError, 'relayout=0.01 applies to legacy-tree guests only; this one is linear');
    });
  });

  for (const abi of ABIS) {
    for (const personality of PERSONALITIES) {
      it(`${abi.name} ${personality}: after a long random workload every p2m check holds`, function () {
        this.timeout(60_000);
        const fpp = PAGE_SIZE / abi.wordSize;
        const { xen, g } = makeGuest({ abi, variant: personality, memoryPages: 4096, maxPages: 4096 + 4 * fpp, identityRanges: [{ start: 64 * fpp, end: 66 * fpp + 7 }] });
        const peer = makePeer(xen);
        const mon = monitorGeneration(g);
        const elements = monitorElementStores(g);
        // At rest means between operations: the generation must be even after each one.
        const oddAtRest: string[] = [];
        g.listen((e) => {
          if (e.type === 'operation' && e.phase === 'end' && g.publishesList && (g.readShared('p2m_generation') & 1n) === 1n) oddAtRest.push(e.name);
        });
        const rates = personality === 'legacy-tree' ? `${MIX},relayout=0.3%` : MIX;
        const w = new Workload(g, { rates, seed: 0x5eed + abi.wordSize, peer });
        const stats = finish(w.run(4000));
        mon.stop();
        elements.stop();
        expect(elements.stores()).to.be.greaterThan(1000);
        expect(elements.problems).to.deep.equal([]);
        expect(oddAtRest).to.deep.equal([]);
        expect(stats.operations.balloon).to.be.greaterThan(500);
        expect(stats.operations.exchange).to.be.greaterThan(50);
        expect(stats.operations.grants).to.be.greaterThan(200);
        expect(stats.operations.growth).to.be.greaterThan(30);
        expect(g.stats.structuralChanges).to.be.greaterThan(30);
        if (personality === 'legacy-tree') expect(stats.operations.relayout).to.be.greaterThan(2);

        expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
        expect(checkP2mM2p(xen, peer.domid, peer.abi)).to.deep.equal([]);
        expect(checkInvariants(xen)).to.deep.equal([]);
        if (personality === 'tree+linear') expect(checkTreeMatchesList(xen, g.domid, abi)).to.deep.equal([]);
        if (personality !== 'legacy-tree') {
          expect(checkWalkYieldsGuestLeaves(g)).to.deep.equal([]);
          const gen = readSharedP2m(xen, g.domid, abi).generation;
          expect(gen % 2n).to.equal(0n);
          expect(gen).to.equal(BigInt(2 * g.stats.structuralChanges));
          expect(mon.problems).to.deep.equal([]);
          expect(Number(readSharedP2m(xen, g.domid, abi).maxPfn)).to.equal(g.lastPfn);
        }
      });
    }
  }

  /** The guest's workload, and the peer running its own, interleaved by a scheduler seeded with `schedulerSeed`. */
  function tracedRun(seed: number, schedulerSeed: number): { hash: string; events: number; ops: number } {
    const { xen, g } = makeGuest({ abi: ABIS[1]!, variant: 'tree+linear' });
    const peer = makePeer(xen);
    const hasher = hashEvents(xen);
    const w = new Workload(g, { rates: MIX, seed, peer });
    const pw = new Workload(peer, { rates: 'balloon=20%,writes=100%', seed: seed + 1 });
    const s = new Scheduler(new Rng(schedulerSeed));
    s.add('guest', w.run(800));
    s.add('peer', pw.run(800));
    s.run();
    hasher.stop();
    expect(checkP2mM2p(xen, g.domid, g.abi)).to.deep.equal([]);
    expect(checkP2mM2p(xen, peer.domid, peer.abi)).to.deep.equal([]);
    return { hash: hasher.digest(), events: hasher.events(), ops: Object.values(w.stats.operations).reduce((a, b) => a + b, 0) };
  }

  it('the same seeds give the same event trace byte for byte; another workload seed another one', function () {
    this.timeout(60_000);
    const a = tracedRun(99, 1);
    const b = tracedRun(99, 1);
    const c = tracedRun(100, 1);
    expect(a.events).to.be.greaterThan(10_000);
    expect(b.hash).to.equal(a.hash);
    expect(c.hash).to.not.equal(a.hash);
  });

  it('another scheduler seed interleaves the two guests differently, and both stay consistent', function () {
    this.timeout(60_000);
    const a = tracedRun(5, 1);
    const b = tracedRun(5, 2);
    expect(Math.abs(b.ops - a.ops)).to.be.below(a.ops / 10);
    expect(b.hash).to.not.equal(a.hash);
  });
});
