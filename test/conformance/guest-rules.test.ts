/**
 * The guest rules against the emulated guests: every faulty variant is caught by the rule it
 * breaks, on both ABIs, under a seeded workload (balloon, exchange, grants, growth, writes); the
 * correct personalities produce no violation under long workloads with several seeds, a
 * suspend/resume in the middle. Seeds are in the test titles; a failure replays from them.
 */

import { expect } from 'chai';
import { PAGE_SIZE, X86_32, X86_64, type GuestAbi } from '../../abi/index.js';
import { GUEST_RULES, guestRule } from '../../conformance/rules/guest/index.js';
import { recordTrace } from '../../conformance/trace/index.js';
import { FAULT_NAMES, PERSONALITIES, faultInfo, type FaultName } from '../../guest-emu/variants.js';
import { Workload } from '../../guest-emu/workload.js';
import type { PvGuest } from '../../guest-emu/guest.js';
import { finish, makeGuest, makePeer } from '../guest-emu/support/world.js';

const ABIS: readonly GuestAbi[] = [X86_32, X86_64];

/** The rule each faulty variant breaks (and is caught by). */
const CAUGHT_BY: Readonly<Record<FaultName, string>> = {
  'skip-bump': 'G-GEN-02',
  'bump-once': 'G-GEN-01',
  'bump-after': 'G-GEN-02',
  'non-monotonic-generation': 'G-GEN-04',
  'torn-element-write': 'G-ELEM-01',
  'forgotten-m2p': 'G-M2P-01',
  'early-p2m-cr3': 'G-PUB-01',
  'short-max-pfn': 'G-MAXPFN-01',
  'stale-mid-page': 'G-TREE-01',
};

const MIX = 'balloon=50%,exchange=10%,grants=20%,growth=5%,writes=50%';

function rates(g: PvGuest): string {
  return g.personality === 'legacy-tree' ? `${MIX},relayout=1%` : MIX;
}

/** Boots `variant` under the recorder with the online check, runs the workload, returns the checker. */
function run(abi: GuestAbi, variant: string, seed: number, rounds: number, suspendMidway = false) {
  const fpp = PAGE_SIZE / abi.wordSize;
  const { xen, g } = makeGuest({ abi, variant, boot: false, maxPages: 4096 + 3 * fpp });
  const rec = recordTrace(xen, g, { check: true, seed });
  finish(g.boot());
  const peer = makePeer(xen);
  const w = new Workload(g, { rates: rates(g), seed, peer });
  if (suspendMidway) {
    finish(w.run(rounds / 2));
    g.requestSuspend();
    finish(w.run(1));
    expect(g.suspended, `seed ${seed}`).to.equal(true);
    finish(g.resume({ cancelled: true }));
    finish(new Workload(g, { rates: rates(g), seed: seed + 1, peer }).run(rounds / 2));
  } else {
    finish(w.run(rounds));
  }
  rec.stop();
  return { checker: rec.checker!, stats: w.stats, events: rec.events() };
}

describe('conformance: guest rules', () => {
  it('every guest rule has complete metadata and a unique id', () => {
    const ids = GUEST_RULES.map((r) => r.meta.id);
    expect(new Set(ids).size).to.equal(ids.length);
    for (const r of GUEST_RULES) {
      expect(r.meta.id).to.match(/^G-[A-Z0-9]+-\d\d$/);
      expect(r.meta.subject).to.equal('guest');
      expect(r.meta.title.length).to.be.greaterThan(10);
      expect(r.meta.rule).to.match(/\.$/);
      expect(r.meta.reference.length).to.be.greaterThan(20);
    }
    for (const f of FAULT_NAMES) expect(guestRule(CAUGHT_BY[f]), f).to.not.equal(undefined);
  });

  for (const abi of ABIS) {
    describe(`faulty guests are caught, ${abi.name}`, () => {
      for (const fault of FAULT_NAMES) {
        const seed = 11;
        it(`${fault} (${faultInfo(fault).personality}) is caught by ${CAUGHT_BY[fault]}, seed ${seed}`, function () {
          this.timeout(60_000);
          const { checker, stats } = run(abi, fault, seed, 300);
          expect(stats.operations.growth, `seed ${seed}: the workload grew the p2m`).to.be.greaterThan(0);
          const violated = checker.violatedRules();
          expect(violated, `seed ${seed}: ${JSON.stringify(checker.violations().slice(0, 3))}`).to.include(CAUGHT_BY[fault]);
          const report = checker.reports().find((r) => r.rule.id === CAUGHT_BY[fault])!;
          expect(report.first[0]!.message).to.match(/^Fail: .*, expected .*, got /);
          expect(report.first.length).to.be.at.most(10);
          expect(report.count).to.be.at.least(report.first.length);
        });
      }
    });

    describe(`correct guests break no rule, ${abi.name}`, () => {
      for (const personality of PERSONALITIES) {
        for (const seed of [1, 2, 3]) {
          it(`${personality}, 800 rounds with a suspend/resume, seed ${seed}`, function () {
            this.timeout(60_000);
            const { checker, stats, events } = run(abi, personality, seed, 800, true);
            expect(stats.operations.balloon + stats.operations.exchange + stats.operations.grants).to.be.greaterThan(100);
            expect(events).to.be.greaterThan(1000);
            expect(checker.violations(), `seed ${seed}`).to.deep.equal([]);
          });
        }
      }
    });
  }
});
