/**
 * guest-emu suspend and resume (Linux `xen_pv_pre_suspend` / `xen_pv_post_suspend`): the guest
 * stops only at a quiescent point between operations, lets go of its grants, turns start_info's
 * ring mfns into pfns and unmaps shared_info; on resume it rebuilds the tree's mfns, maps
 * shared_info again and republishes with p2m_generation reset to 0.
 */

import { expect } from 'chai';
import { shared_info, start_info } from '../../abi/index.js';
import { Rng } from '../../xen-emu/rng.js';
import { Scheduler } from '../../xen-emu/scheduler.js';
import { GuestConfigError, GuestStateError } from '../../guest-emu/errors.js';
import { FIX_GRANT_FRAME, FIX_SHARED_INFO } from '../../guest-emu/kernel-mm.js';
import { Workload } from '../../guest-emu/workload.js';
import { shareGrant } from '../../guest-emu/grants.js';
import type { PvGuest } from '../../guest-emu/guest.js';
import { checkP2mM2p, checkTreeMatchesList, checkWalkYieldsGuestLeaves } from './support/checks.js';
import { readSharedP2m } from './support/tools-view.js';
import { ABIS, PERSONALITIES, finish, makeGuest, makePeer } from './support/world.js';

function startInfoWord(g: PvGuest, field: 'store_mfn' | 'console.domU.mfn'): bigint {
  return g.xen.guestLoadWord(g.binding.dom, g.startInfoVa + BigInt(start_info.offsetOf(g.abi, field)), g.abi.wordSize)!;
}

/** A party that asks the guest to suspend at its `at`-th step, then keeps stepping until it is suspended. */
function* suspender(g: PvGuest, at: number): Generator<string, void, undefined> {
  for (let i = 0; i < at; i++) yield 'toolstack: live round';
  g.requestSuspend();
  yield 'toolstack: suspend requested';
  while (!g.suspended) yield 'toolstack: waiting for the guest';
}

describe('guest-emu: suspend and resume', () => {
  for (const abi of ABIS) {
    for (const personality of PERSONALITIES) {
      it(`${abi.name} ${personality}: suspends only between operations, whatever step the request lands on`, function () {
        this.timeout(30_000);
        for (const seed of [1, 2, 3]) {
          const { xen, g } = makeGuest({ abi, variant: personality });
          const peer = makePeer(xen);
          let open = 0;
          let openAtSuspend = -1;
          g.listen((e) => {
            if (e.type === 'operation') open += e.phase === 'start' ? 1 : -1;
            if (e.type === 'suspended') openAtSuspend = open;
          });
          const w = new Workload(g, { rates: 'balloon=30%,exchange=10%,grants=20%,growth=5%,writes=100%', seed, peer });
          const s = new Scheduler(new Rng(seed));
          s.add('guest', w.run());
          s.add('toolstack', suspender(g, 50 + seed * 37));
          s.run(1_000_000);
          expect(g.suspended).to.equal(true);
          expect(openAtSuspend).to.equal(0);
          expect(w.stats.suspended).to.equal(true);
          expect(s.isDone('guest')).to.equal(true);
          expect(g.grants.given.size + g.grants.mapped.size).to.equal(0);
          expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
        }
      });
    }

    describe(abi.name, () => {
      it('suspend turns the ring mfns into pfns and unmaps shared_info and the grant frame; operations are refused', () => {
        const { xen, g } = makeGuest({ abi });
        const peer = makePeer(xen);
        finish(peer.balloonOut(1300));
        finish(shareGrant(g, peer, 3000, 1300));
        finish(g.suspend());
        expect(startInfoWord(g, 'store_mfn')).to.equal(BigInt(g.storePfn));
        expect(startInfoWord(g, 'console.domU.mfn')).to.equal(BigInt(g.consolePfn));
        expect(xen.translate(g.binding.dom, g.mm.fixmapVa(FIX_SHARED_INFO))).to.equal(undefined);
        expect(xen.translate(g.binding.dom, g.mm.fixmapVa(FIX_GRANT_FRAME))).to.equal(undefined);
        expect(peer.list.read(1300)).to.equal(0xffffffffffffffffn);
        expect(() => finish(g.writePage(3001, 1))).to.throw(GuestStateError, 'on a suspended guest');
        expect(() => finish(g.suspend())).to.throw(GuestStateError, 'suspended already');
      });

      for (const personality of PERSONALITIES) {
        it(`${personality}: a cancelled suspend republishes in boot order with p2m_generation reset to 0`, () => {
          const { xen, g } = makeGuest({ abi, variant: personality, maxPages: 4096 + 2048 });
          finish(g.balloonIn(4096 + 2047)); // grows the p2m: the generation moves
          if (personality !== 'legacy-tree') expect(g.readShared('p2m_generation')).to.equal(2n);
          const storeMfn = startInfoWord(g, 'store_mfn');
          finish(g.suspend());
          const fields = ['max_pfn', 'pfn_to_mfn_frame_list_list', 'p2m_generation', 'p2m_vaddr', 'p2m_cr3'];
          const at = new Map(fields.map((f) => [shared_info.offsetOf(abi, `arch.${f}`), f]));
          const order: string[] = [];
          const stop = xen.events.subscribe((e) => {
            if (e.type === 'store' && e.mfn === g.binding.dom.sharedInfoMfn && e.by === 'guest' && at.has(e.offset)) order.push(`${at.get(e.offset)}=${e.value}`);
          });
          finish(g.resume({ cancelled: true }));
          stop();
          const s = readSharedP2m(xen, g.domid, abi);
          if (personality === 'legacy-tree') {
            expect(order.map((o) => o.split('=')[0])).to.deep.equal(['pfn_to_mfn_frame_list_list', 'max_pfn']);
          } else {
            expect(order.map((o) => o.split('=')[0])).to.deep.equal(['pfn_to_mfn_frame_list_list', 'max_pfn', 'p2m_generation', 'p2m_vaddr', 'p2m_cr3']);
            expect(order[2]).to.equal('p2m_generation=0');
            expect(s.generation).to.equal(0n);
            expect(checkWalkYieldsGuestLeaves(g)).to.deep.equal([]);
          }
          if (personality === 'tree+linear') expect(checkTreeMatchesList(xen, g.domid, abi)).to.deep.equal([]);
          expect(startInfoWord(g, 'store_mfn')).to.equal(storeMfn);
          expect(g.suspended).to.equal(false);
          finish(g.writePage(3001, 5));
          expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
        });
      }

      it('resume refuses a domain that does not exist, and a guest that is not suspended', () => {
        const { g } = makeGuest({ abi });
        expect(() => finish(g.resume())).to.throw(GuestStateError, 'which is not suspended');
        finish(g.suspend());
        expect(() => finish(g.resume({ domid: 4321 }))).to.throw(GuestConfigError, 'resume into domain 4321, which does not exist');
      });
    });
  }
});
