/**
 * xen-emu/scheduler.ts: the seeded interleaver of parties (design decision 4). Parties here are
 * plain generators whose steps push to a shared log, so the order the scheduler chose is visible.
 */

import { expect } from 'chai';
import { Rng } from '../../xen-emu/rng.js';
import { Scheduler, SchedulerError } from '../../xen-emu/scheduler.js';

function* counter(log: string[], name: string, steps: number): Generator<string, string, undefined> {
  for (let i = 0; i < steps; i++) {
    log.push(`${name}${i}`);
    yield `${name} step ${i}`;
  }
  return `${name} done`;
}

function interleave(seed: number, steps = 50): string[] {
  const log: string[] = [];
  const s = new Scheduler(new Rng(seed));
  s.add('a', counter(log, 'a', steps));
  s.add('b', counter(log, 'b', steps));
  s.add('c', counter(log, 'c', steps));
  s.run();
  return log;
}

describe('guest-emu: the deterministic scheduler (xen-emu/scheduler.ts)', () => {
  it('the same seed gives the same interleaving, another seed another one', () => {
    expect(interleave(7)).to.deep.equal(interleave(7));
    expect(interleave(7)).to.not.deep.equal(interleave(8));
  });

  it('runs every step of every party exactly once, each party in its own order', () => {
    const log = interleave(3, 20);
    expect(log).to.have.length(60);
    for (const p of ['a', 'b', 'c']) {
      expect(log.filter((x) => x.startsWith(p))).to.deep.equal(Array.from({ length: 20 }, (_, i) => `${p}${i}`));
    }
  });

  it('the action of a step happens inside the next() that returns its label', () => {
    const log: string[] = [];
    const s = new Scheduler(new Rng(1));
    s.add('a', counter(log, 'a', 3));
    expect(log).to.deep.equal([]);
    const e = s.step();
    expect(e).to.deep.equal({ index: 0, party: 'a', label: 'a step 0' });
    expect(log).to.deep.equal(['a0']);
  });

  it('records a trace of (party, label) with global indices, and keeps each result', () => {
    const log: string[] = [];
    const s = new Scheduler(new Rng(11));
    s.add('a', counter(log, 'a', 2));
    s.add('b', counter(log, 'b', 2));
    expect(s.run()).to.equal(4);
    expect(s.trace.map((t) => t.index)).to.deep.equal([0, 1, 2, 3]);
    expect(s.trace.map((t) => `${t.party}:${t.label}`).sort()).to.deep.equal(['a:a step 0', 'a:a step 1', 'b:b step 0', 'b:b step 1']);
    expect(s.isDone('a') && s.isDone('b')).to.equal(true);
    expect(s.resultOf('a')).to.equal('a done');
    expect(s.stepsOf('b')).to.equal(2);
  });

  it('weights bias the picks and weight 0 keeps a party out of them', () => {
    const log: string[] = [];
    const s = new Scheduler(new Rng(5));
    s.add('heavy', counter(log, 'h', 1000), { weight: 9 });
    s.add('light', counter(log, 'l', 1000), { weight: 1 });
    s.add('paused', counter(log, 'p', 1000), { weight: 0 });
    s.run(1000);
    const heavy = log.filter((x) => x.startsWith('h')).length;
    expect(heavy).to.be.within(850, 950);
    expect(log.some((x) => x.startsWith('p'))).to.equal(false);
    s.setWeight('paused', 1);
    s.run(2000);
    expect(log.some((x) => x.startsWith('p'))).to.equal(true);
  });

  it('runAlone steps one party only, up to a limit or to its end', () => {
    const log: string[] = [];
    const s = new Scheduler(new Rng(2));
    s.add('a', counter(log, 'a', 5));
    s.add('b', counter(log, 'b', 5), { weight: 0 });
    expect(s.runAlone('b', 2)).to.equal(2);
    expect(log).to.deep.equal(['b0', 'b1']);
    expect(s.runAlone('b')).to.equal(3);
    expect(s.isDone('b')).to.equal(true);
    expect(s.runAlone('b')).to.equal(0);
  });

  it('run stops when until() says so, and step() gives undefined when nobody can run', () => {
    const log: string[] = [];
    const s = new Scheduler(new Rng(4));
    s.add('a', counter(log, 'a', 10));
    expect(s.run(Infinity, () => log.length >= 4)).to.equal(4);
    s.run();
    expect(s.step()).to.equal(undefined);
  });

  it('keeps at most traceLimit entries, dropping the oldest', () => {
    const log: string[] = [];
    const s = new Scheduler(new Rng(6), { traceLimit: 16 });
    s.add('a', counter(log, 'a', 100));
    s.run();
    expect(s.trace.length).to.be.at.most(16);
    expect(s.trace[s.trace.length - 1]!.index).to.equal(99);
    expect(s.traceOffset + s.trace.length).to.equal(100);
  });

  it('refuses duplicate and unknown parties and bad weights with typed errors', () => {
    const s = new Scheduler(new Rng(1));
    s.add('a', counter([], 'a', 1));
    expect(() => s.add('a', counter([], 'a', 1))).to.throw(SchedulerError, 'party a already added');
    expect(() => s.runAlone('zz')).to.throw(SchedulerError, 'no party zz; parties: a');
    expect(() => s.setWeight('a', -1)).to.throw(SchedulerError, 'weight -1');
    expect(() => new Scheduler(new Rng(1), { traceLimit: 1.5 })).to.throw(SchedulerError, 'traceLimit 1.5');
    s.remove('a');
    expect(s.names()).to.deep.equal([]);
  });
});
