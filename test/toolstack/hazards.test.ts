/**
 * The hazards of reference §1.9, each scripted against the save's progress (conformance
 * `runMigration` with a `driver`), with the outcome each strategy gets on each ABI and
 * personality where the hazard applies. The scheduler's seed is in every title and every failure
 * message; the driver's actions are not left to chance (each waits for a condition on
 * `progress`, then acts).
 *
 * Where the emulation's outcome differs from §1.9's "receiver result" column, the test says why in
 * a comment (and asserts the mechanism that makes it differ), rather than expecting the table.
 */

import { strict as assert } from 'node:assert';
import { XEN_DOMCTL_PFINFO_NOTAB, XEN_DOMCTL_PFINFO_XTAB, type GuestAbi } from '../../abi/index.js';
import type { DriverWorld, MigrationResult } from '../../conformance/migration.js';
import { exchangeRegion } from '../../guest-emu/exchange.js';
import { balloonIn, balloonOut } from '../../guest-emu/balloon.js';
import type { StrategyName } from '../../toolstack/save.js';
import {
  ABIS,
  STRATEGY_NAMES,
  SMALL_GUEST_PAGES,
  balloonedPfns,
  describe as summary,
  freePfns,
  freeRun,
  migrate,
  sentAsXtab,
  stampPages,
  waitUntil,
  type Driver,
} from './support/migrate.js';

const SEED = 11;
const LIST_GUESTS = ['linear', 'tree+linear'];

type Outcome = MigrationResult['outcome'];
/** Expected outcome per strategy, given the personality. */
type Expect = (toolstack: StrategyName, guest: string) => Outcome;

const GENERATION_ABORT = /^p2m generation count changed\. Migration aborted\./;

/** The first pfn a p2m growth needs a new leaf for: just beyond the last real leaf of the small guest. */
const GROWTH_PFN = 3072 + 5;

function check(r: MigrationResult, want: Outcome, what: string): void {
  assert.equal(r.outcome, want, `${what}: ${summary(r)}`);
  if (want === 'aborted' && r.save.strategy === 'abort-on-change') assert.match(r.reason ?? '', GENERATION_ABORT, `${what}: ${summary(r)}`);
  if (want === 'identical' && r.checkpoints.length > 0) {
    assert.deepEqual(
      r.checkpoints.map((c) => c.differing),
      r.checkpoints.map(() => 0),
      `${what}: every checkpoint consistent: ${summary(r)}`,
    );
  }
}

interface Case {
  readonly guests: readonly string[];
  readonly abis?: readonly GuestAbi[];
  readonly scrub?: boolean;
  readonly checkpoints?: number;
  readonly expect: Expect;
  /** A driver per run: gets a record to leave facts in for `after`. */
  readonly driver: (facts: Record<string, number>) => Driver;
  /** Further checks on one run, with what the driver recorded and its world. */
  readonly after?: (r: MigrationResult, facts: Record<string, number>, w: DriverWorld, what: string) => void;
}

/** One `it` per ABI × personality × strategy. */
function matrix(title: string, c: Case): void {
  describe(title, () => matrixCases(title, c));
}

function matrixCases(title: string, c: Case): void {
  for (const abi of c.abis ?? ABIS) {
    for (const guest of c.guests) {
      for (const toolstack of STRATEGY_NAMES) {
        const want = c.expect(toolstack, guest);
        it(`${abi.name} ${guest} ${toolstack} -> ${want} (seed ${SEED})`, () => {
          const facts: Record<string, number> = {};
          let world: DriverWorld | undefined;
          const inner = c.driver(facts);
          const driver: Driver = (w) => {
            world = w;
            return inner(w);
          };
          const what = `${title}, ${abi.name} ${guest} ${toolstack}`;
          const r = migrate({
            abi,
            guest,
            toolstack,
            seed: SEED,
            driver,
            ...(c.scrub !== undefined ? { scrub: c.scrub } : {}),
            ...(c.checkpoints !== undefined ? { checkpoints: c.checkpoints } : {}),
          });
          // The scripted action must have happened, or the case proves nothing.
          assert.equal(facts.done, 1, `${what}: the driver did not complete its actions: ${summary(r)}`);
          check(r, want, what);
          c.after?.(r, facts, world!, what);
        });
      }
    }
  }
}

/** Upstream behaviour: both upstream strategies corrupt, deep-tracking is identical. */
const upstreamCorrupts: Expect = (t) => (t === 'deep-tracking' ? 'identical' : 'corrupted');
/** A structural change: abort-on-change aborts list guests (live), corrupts tree guests. */
const structural: Expect = (t, guest) => (t === 'deep-tracking' ? 'identical' : t === 'abort-on-change' && LIST_GUESTS.includes(guest) ? 'aborted' : 'corrupted');
const allIdentical: Expect = () => 'identical';

/** Waits until the first Remus checkpoint is out and the guest runs again. */
function afterCheckpoint1(w: DriverWorld): Generator<string, void, undefined> {
  return waitUntil(() => w.progress.checkpoint >= 2, 'checkpoint 1 to complete');
}

describe('toolstack: reference §1.9 hazards, scripted', function () {
  this.timeout(20_000);

  describe('balloon out of pfn P after P was sent (no scrub): P unsent, p2m frame resent', () => {
    // A pure entry change: no generation bump, so abort-on-change sees nothing in either mode
    // (upstream known issue "PV ballooning (P2M marked dirty, target frame not marked)").
    matrix('balloon out after sent, scrub off', {
      guests: ['linear', 'legacy-tree'],
      scrub: false,
      expect: upstreamCorrupts,
      driver: (facts) =>
        function* (w) {
          const [p] = freePfns(w.guest, 1, { from: 1500 });
          facts.p = p!;
          yield* waitUntil(() => w.progress.hasSent(p!), `pfn ${p} to be sent`);
          yield* w.guest.balloonOut(p!);
          facts.done = 1;
        },
      after: (r, facts, w, what) => {
        if (r.save.strategy === 'deep-tracking') {
          // Option 2 found the changed entry and resent P as XTAB.
          assert.equal(w.progress.lastSentType(facts.p!), XEN_DOMCTL_PFINFO_XTAB, what);
          assert.ok(r.save.resentP2m >= 1, `${what}: ${summary(r)}`);
        } else {
          // Upstream: P went once, with data, and never again; the receiver keeps a page the guest gave back.
          assert.equal(w.progress.lastSentType(facts.p!), XEN_DOMCTL_PFINFO_NOTAB, what);
          assert.ok(r.differingPfns.some((d) => d.pfn === facts.p || d.detail.includes(`pfn 0x${facts.p!.toString(16)} `)), `${what}: P named: ${summary(r)}`);
        }
      },
    });
  });

  describe('balloon out of pfn P after P was sent (Linux scrub on): P resent as XTAB', () => {
    // §1.9 says "corrupted" here because stock libxc restore never unpopulates a pfn that turns
    // XTAB. The kit's Restorer frees such a pfn once the state is whole (issue 5: "handle XTAB
    // (including freeing a pfn that became XTAB)"), so with the scrub's write dirtying P, even the
    // upstream senders' streams restore identically. What stays true is the sender side: P went
    // with data, then as XTAB — the stream on which stock libxc would leak P.
    matrix('balloon out after sent, scrub on', {
      guests: ['linear', 'legacy-tree'],
      scrub: true,
      expect: allIdentical,
      driver: (facts) =>
        function* (w) {
          const [p] = freePfns(w.guest, 1, { from: 1500 });
          facts.p = p!;
          yield* waitUntil(() => w.progress.hasSent(p!), `pfn ${p} to be sent`);
          facts.sentWith = w.progress.lastSentType(p!)!;
          yield* w.guest.balloonOut(p!);
          facts.done = 1;
        },
      after: (r, facts, w, what) => {
        assert.equal(facts.sentWith, XEN_DOMCTL_PFINFO_NOTAB, `${what}: P first went with data`);
        assert.equal(w.progress.lastSentType(facts.p!), XEN_DOMCTL_PFINFO_XTAB, `${what}: then as XTAB: ${summary(r)}`);
      },
    });
  });

  describe('balloon in of pfn Q that was sent as XTAB (same leaf, no structural change)', () => {
    // §1.9: "P is resent only if the guest writes P". In a plain live migration that does not
    // hold: Q went as XTAB because its entry was INVALID, which libxc defers, and the final pass
    // resends every deferred pfn (§1.4, §0 item 7) — now with data. The test asserts that path.
    matrix('balloon in of an XTAB pfn', {
      guests: ['linear', 'legacy-tree'],
      expect: allIdentical,
      driver: (facts) =>
        function* (w) {
          const [q] = balloonedPfns(w.guest, SMALL_GUEST_PAGES, 3072);
          facts.q = q!;
          yield* waitUntil(() => sentAsXtab(w, q!), `pfn ${q} to go as XTAB`);
          yield* w.guest.balloonIn(q!);
          facts.done = 1;
        },
      after: (r, facts, w, what) => {
        assert.equal(w.progress.lastSentType(facts.q!), XEN_DOMCTL_PFINFO_NOTAB, `${what}: Q resent with data in the final pass: ${summary(r)}`);
      },
    });
  });

  describe('balloon in needing a new p2m leaf (the shared missing leaf replaced)', () => {
    // linear / tree+linear: alloc_p2m bumps the generation -> abort-on-change aborts. legacy-tree:
    // the tree gains a leaf nobody looks at -> stale mapping, silent. map-once never sees the leaf:
    // the new pfn is beyond the p2m it mapped, so the direct-map PTE to it cannot be normalised
    // and its L1 table is dropped in the final pass (see the PTE hazard below).
    // Balloon *out* needing a new leaf happens only in a shared identity (1:1) leaf; runMigration
    // builds guests without identity ranges, so only the balloon-in side is scripted here.
    matrix('balloon in needing a new leaf', {
      guests: ['linear', 'tree+linear', 'legacy-tree'],
      expect: structural,
      driver: (facts) =>
        function* (w) {
          yield* waitUntil(() => w.progress.hasSent(2000), 'the full pass to be under way');
          const ok = yield* w.guest.balloonIn(GROWTH_PFN);
          assert.ok(ok, 'balloon in refused');
          yield* stampPages(w.guest, [GROWTH_PFN], 1);
          facts.done = 1;
        },
      after: (r, _facts, _w, what) => {
        if (r.save.strategy === 'deep-tracking') {
          assert.ok(r.save.remaps >= 1 && r.save.p2mFramesRecords >= 2, `${what}: remapped and resent the frame list: ${summary(r)}`);
        }
      },
    });
  });

  describe('page-table PTE to a new mfn the stale p2m does not know, in the final pass', () => {
    // The L1 table mapping the grown pfn fails mfn_in_pseudophysmap: EAGAIN -> XTAB, deferred,
    // and in the final pass (libxl suspends but does not pause, §1.4 caveat) XTAB again and then
    // dropped. The receiver never gets that L1: pinning the L4/L3 above it fails.
    matrix('PTE to a new mfn (growth)', {
      guests: ['linear', 'legacy-tree'],
      expect: structural,
      driver: (facts) =>
        function* (w) {
          yield* waitUntil(() => w.progress.hasSent(2000), 'the full pass to be under way');
          yield* w.guest.balloonIn(GROWTH_PFN);
          facts.l1 = w.guest.mm.tableAt(1, w.guest.mm.directVa(GROWTH_PFN)) ?? -1;
          facts.done = 1;
        },
      after: (r, facts, w, what) => {
        if (r.outcome !== 'corrupted') return;
        assert.ok(facts.l1! >= 0, `${what}: L1 of the grown pfn found`);
        assert.equal(w.progress.lastSentType(facts.l1!), XEN_DOMCTL_PFINFO_XTAB, `${what}: the L1 table went as XTAB last: ${summary(r)}`);
        assert.match(r.reason ?? '', /refused to pin pfn 0x[0-9a-f]+ as an L[34] table/, `${what}: ${summary(r)}`);
      },
    });

    // legacy-tree, no growth: after a relayout the stale leaves still name the exchanged pfns' old
    // frames, so the PTEs the exchange rewrote point at mfns the stale p2m does not have.
    matrix('PTE to a new mfn (relayout, then exchange)', {
      guests: ['legacy-tree'],
      expect: upstreamCorrupts,
      driver: (facts) =>
        function* (w) {
          const g = w.guest;
          const first = freeRun(g, 2, 1600);
          facts.first = first;
          yield* g.operation('relayout+exchange', (function* () {
            yield* g.tree!.relayout();
            yield* waitUntil(() => w.progress.hasSent(first + 3), 'the region to be sent');
            assert.ok(yield* exchangeRegion(g, first, 2), 'exchange refused');
          })());
          facts.done = 1;
        },
    });
  });

  describe('XENMEM_exchange where the stale p2m maps P to a frame now owned by another domain', () => {
    // §1.9: the type query says XTAB (not ours), which libxc does not defer: P is lost. Here the
    // stale p2m comes from a tree relayout (legacy-tree, where abort-on-change has no check); the
    // old frames of the exchange go straight to the peer domain (Xen reuses freed frames first).
    matrix('exchange, stale p2m, frame now the peer\'s', {
      guests: ['legacy-tree'],
      expect: upstreamCorrupts,
      driver: (facts) =>
        function* (w) {
          const g = w.guest;
          const peer = w.peer!;
          const first = freeRun(g, 2, 1600);
          const [x] = freePfns(peer, 1, { from: 1000 });
          facts.p = first + 3;
          yield* stampPages(g, [first, first + 1, first + 2, first + 3], 2);
          // Done as one guest operation so that the guest is not suspended half-way.
          yield* g.operation('hazard', (function* () {
            yield* balloonOut(peer, x!);
            yield* g.tree!.relayout();
            yield* waitUntil(() => w.progress.hasSent(first + 3), 'the region to be sent');
            facts.oldMfn = Number(g.mfnOf(first + 3));
            assert.ok(yield* exchangeRegion(g, first, 2), 'exchange refused');
            assert.ok(yield* balloonIn(peer, x!), 'peer balloon in refused');
            facts.peerMfn = Number(peer.mfnOf(x!));
          })());
          facts.done = 1;
        },
      after: (r, facts, w, what) => {
        // The precondition of the hazard: the frame P had is now the peer's.
        assert.equal(facts.peerMfn, facts.oldMfn, `${what}: P's old frame went to the peer`);
        if (r.save.strategy !== 'deep-tracking') {
          assert.equal(w.progress.lastSentType(facts.p!), XEN_DOMCTL_PFINFO_XTAB, `${what}: P went as XTAB (not ours), not deferred: ${summary(r)}`);
        }
      },
    });

    // Control: with the linear list the leaves are mapped live, so an exchange alone (no
    // structural change) is seen by every strategy: the region's zeroing dirties its pfns.
    matrix('exchange on a linear guest (no stale mapping)', {
      guests: ['linear'],
      expect: allIdentical,
      driver: (facts) =>
        function* (w) {
          const g = w.guest;
          const first = freeRun(g, 2, 1600);
          yield* stampPages(g, [first, first + 1, first + 2, first + 3], 3);
          yield* waitUntil(() => w.progress.hasSent(first + 3), 'the region to be sent');
          assert.ok(yield* g.exchange(first, 2), 'exchange refused');
          facts.done = 1;
        },
    });
  });

  describe('stale p2m gives P an mfn the domain owns at another pfn Q', () => {
    // After a relayout the stale leaf says P -> M; P is ballooned out and Q ballooned in gets M
    // (Xen reuses the freed frame first). The saver reads Q's page and sends it as P: silent.
    matrix('stale p2m, frame owned at another pfn', {
      guests: ['legacy-tree'],
      expect: upstreamCorrupts,
      driver: (facts) =>
        function* (w) {
          const g = w.guest;
          const [p] = freePfns(g, 1, { from: 1500 });
          const [q] = balloonedPfns(g, SMALL_GUEST_PAGES, 3072);
          facts.p = p!;
          facts.q = q!;
          yield* stampPages(g, [p!], 4);
          yield* g.operation('hazard', (function* () {
            yield* g.tree!.relayout();
            yield* waitUntil(() => w.progress.hasSent(p!), `pfn ${p} to be sent`);
            facts.m = Number(g.mfnOf(p!));
            yield* balloonOut(g, p!);
            assert.ok(yield* balloonIn(g, q!), 'balloon in refused');
            facts.qMfn = Number(g.mfnOf(q!));
          })());
          yield* stampPages(g, [q!], 5);
          facts.done = 1;
        },
      after: (r, facts, w, what) => {
        assert.equal(facts.qMfn, facts.m, `${what}: Q got P's old frame`);
        if (r.save.strategy !== 'deep-tracking') {
          // P has no frame on the source, yet it was last sent with data: Q's page, read through the stale leaf.
          assert.equal(w.progress.lastSentType(facts.p!), XEN_DOMCTL_PFINFO_NOTAB, `${what}: ${summary(r)}`);
        } else {
          assert.equal(w.progress.lastSentType(facts.p!), XEN_DOMCTL_PFINFO_XTAB, `${what}: ${summary(r)}`);
        }
      },
    });
  });

  describe('Remus: the hazards after checkpoint 1 (no generation check once not live)', () => {
    // After the first checkpoint libxc sets save.live = false: abort-on-change checks nothing,
    // even for list guests, and the secondary silently diverges.
    matrix('Remus: balloon in needing a new leaf after checkpoint 1', {
      guests: ['linear', 'tree+linear', 'legacy-tree'],
      checkpoints: 3,
      expect: upstreamCorrupts,
      driver: (facts) =>
        function* (w) {
          yield* afterCheckpoint1(w);
          assert.ok(yield* w.guest.balloonIn(GROWTH_PFN), 'balloon in refused');
          yield* stampPages(w.guest, [GROWTH_PFN], 6);
          facts.done = 1;
        },
      after: (r, _f, _w, what) => {
        if (r.outcome === 'corrupted') {
          // The first checkpoint was still right; the divergence starts after it.
          assert.equal(r.checkpoints[0]?.differing, 0, `${what}: ${summary(r)}`);
          assert.ok(r.checkpoints.slice(1).some((c) => c.differing > 0), `${what}: a later checkpoint diverged: ${summary(r)}`);
        }
      },
    });

    matrix('Remus: balloon out after checkpoint 1 (no scrub)', {
      guests: ['linear', 'legacy-tree'],
      checkpoints: 3,
      scrub: false,
      expect: upstreamCorrupts,
      driver: (facts) =>
        function* (w) {
          const [p] = freePfns(w.guest, 1, { from: 1500 });
          yield* afterCheckpoint1(w);
          yield* w.guest.balloonOut(p!);
          facts.done = 1;
        },
    });

    matrix('Remus: tree relayout after checkpoint 1', {
      guests: ['legacy-tree'],
      checkpoints: 3,
      expect: upstreamCorrupts,
      driver: (facts) =>
        function* (w) {
          yield* afterCheckpoint1(w);
          yield* w.guest.relayoutTree();
          facts.done = 1;
        },
    });

    // §1.9 row 2 under Remus: Q goes as XTAB in checkpoint 1's final pass, is deferred, and the
    // deferred set is cleared at the checkpoint; ballooned in afterwards and never written, it is
    // not resent. It still arrives whole: the balloon driver maps Q in the direct map, that L1
    // table is resent, and restore's localisation populates every pfn a PTE names (as libxc's
    // does). A fresh page is zero on both sides, so the secondary matches. The reference's hazard
    // would need a pfn no resent page table names (x86_32 highmem), beyond these small guests.
    matrix('Remus: balloon in of an XTAB pfn after checkpoint 1', {
      guests: ['linear', 'legacy-tree'],
      checkpoints: 3,
      expect: allIdentical,
      driver: (facts) =>
        function* (w) {
          const [q] = balloonedPfns(w.guest, SMALL_GUEST_PAGES, 3072);
          facts.q = q!;
          yield* afterCheckpoint1(w);
          assert.equal(w.progress.lastSentType(q!), XEN_DOMCTL_PFINFO_XTAB);
          yield* w.guest.balloonIn(q!);
          facts.done = 1;
        },
      after: (r, facts, w, what) => {
        if (r.save.strategy === 'deep-tracking') assert.equal(w.progress.lastSentType(facts.q!), XEN_DOMCTL_PFINFO_NOTAB, what);
        else assert.equal(w.progress.lastSentType(facts.q!), XEN_DOMCTL_PFINFO_XTAB, `${what}: upstream never resent Q: ${summary(r)}`);
      },
    });
  });
});
