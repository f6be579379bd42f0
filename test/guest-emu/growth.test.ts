/**
 * guest-emu p2m growth and the generation protocol (reference §2.5, Linux `xen_alloc_p2m_entry`,
 * `alloc_p2m_pmd`): a new leaf in place of the shared missing page and a new PTE page in place of
 * the shared missing PTE page, each one mmu_update inside `++ / PT update / ++`; a new mid page in
 * the tree; max_pfn raised outside the bracket; legacy-tree's relayout onto a new fll.
 */

import { expect } from 'chai';
import { PAGE_SIZE, __HYPERVISOR_mmu_update, shared_info, type GuestAbi } from '../../abi/index.js';
import { PageUse } from '../../guest-emu/page-state.js';
import { GuestStateError } from '../../guest-emu/errors.js';
import { checkP2mM2p, checkTreeMatchesList, checkWalkYieldsGuestLeaves } from './support/checks.js';
import { monitorGeneration } from './support/monitor.js';
import { flatP2m, readP2mTree, readSharedP2m } from './support/tools-view.js';
import { ABIS, finish, labels, makeGuest } from './support/world.js';

const fppOf = (abi: GuestAbi): number => PAGE_SIZE / abi.wordSize;

describe('guest-emu: p2m growth and the generation protocol', () => {
  for (const abi of ABIS) {
    const fpp = fppOf(abi);
    for (const personality of ['linear', 'tree+linear'] as const) {
      describe(`${abi.name} ${personality}`, () => {
        it('a new leaf replaces the shared missing page with one mmu_update between the two bumps', () => {
          const { xen, g } = makeGuest({ abi, variant: personality, memoryPages: 4096, maxPages: 4096 + 2 * fpp });
          const pfn = Math.ceil(4096 / fpp) * fpp + 10;
          expect(g.list.leafPfn[g.list.leafIndex(pfn)]).to.equal(-1);
          const mon = monitorGeneration(g);
          const seq: string[] = [];
          const genAt = shared_info.offsetOf(abi, 'arch.p2m_generation');
          const stop = xen.events.subscribe((e) => {
            if (e.type === 'store' && e.mfn === g.binding.dom.sharedInfoMfn && e.offset === genAt) seq.push(`gen=${e.value}`);
            if (e.type === 'hypercall' && e.nr === __HYPERVISOR_mmu_update) seq.push('mmu_update');
          });
          const steps = labels(g.balloonIn(pfn));
          stop();
          mon.stop();
          expect(seq.slice(seq.indexOf('gen=1'), seq.indexOf('gen=2') + 1)).to.deep.equal(['gen=1', 'mmu_update', 'gen=2']);
          expect(seq.filter((x) => x.startsWith('gen='))).to.deep.equal(['gen=1', 'gen=2']);
          expect(steps.findIndex((s) => s.startsWith('set_pte of p2m leaf'))).to.be.greaterThan(steps.indexOf('p2m_generation 0 -> 1'));
          expect(steps.indexOf('p2m_generation 1 -> 2')).to.be.greaterThan(steps.findIndex((s) => s.startsWith('set_pte of p2m leaf')));
          expect(mon.problems).to.deep.equal([]);
          expect(mon.ptWrites.map((w) => w.generation)).to.deep.equal([1n]);
          expect(g.readShared('p2m_generation')).to.equal(2n);
          expect(g.stats.structuralChanges).to.equal(1);
          expect(checkWalkYieldsGuestLeaves(g)).to.deep.equal([]);
          if (personality === 'tree+linear') expect(checkTreeMatchesList(xen, g.domid, abi)).to.deep.equal([]);
          expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
        });

        it('max_pfn is raised to the end of the new leaf, by a store outside the bracket', () => {
          const { xen, g } = makeGuest({ abi, variant: personality, memoryPages: 4096, maxPages: 4096 + 2 * fpp });
          const pfn = Math.ceil(4096 / fpp) * fpp + fpp + 3;
          const maxAt = shared_info.offsetOf(abi, 'arch.max_pfn');
          let genAtMaxStore: bigint | undefined;
          const stop = xen.events.subscribe((e) => {
            if (e.type === 'store' && e.mfn === g.binding.dom.sharedInfoMfn && e.offset === maxAt) genAtMaxStore = g.readShared('p2m_generation');
          });
          finish(g.balloonIn(pfn));
          stop();
          expect(Number(readSharedP2m(xen, g.domid, abi).maxPfn)).to.equal(Math.ceil((pfn + 1) / fpp) * fpp);
          expect(genAtMaxStore).to.equal(2n);
        });

        it('growth into a fresh mid range makes a PTE page (one bracket per PMD) and then the leaf, +2 each', () => {
          const { xen, g } = makeGuest({ abi, variant: personality });
          const first = fpp * fpp;
          finish(g.hotplug(first, fpp));
          finish(g.balloonOut(3000));
          const mon = monitorGeneration(g);
          finish(g.balloonIn(first));
          mon.stop();
          const changes = g.list.pmdsPerMid + 1;
          expect(g.stats.structuralChanges).to.equal(changes);
          expect(g.readShared('p2m_generation')).to.equal(BigInt(2 * changes));
          expect(mon.problems).to.deep.equal([]);
          expect(mon.ptWrites.every((w) => (w.generation & 1n) === 1n)).to.equal(true);
          expect(g.list.ptePfn[g.list.pmdsPerMid]! >= 0).to.equal(true);
          expect(checkWalkYieldsGuestLeaves(g)).to.deep.equal([]);
          if (personality === 'tree+linear') {
            expect(g.tree!.midPfn[1]! >= 0).to.equal(true);
            expect(checkTreeMatchesList(xen, g.domid, abi)).to.deep.equal([]);
            const tree = readP2mTree(xen, g.domid, abi);
            expect(tree.midMfns[1]).to.equal(g.mfnOf(g.tree!.midPfn[1]!));
            expect(tree.leafMfns[fpp]).to.equal(g.mfnOf(g.list.leafPfn[fpp]!));
          }
          expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
        });

        it('element stores and max_pfn stores do not touch the generation', () => {
          const { g } = makeGuest({ abi, variant: personality });
          const mon = monitorGeneration(g);
          for (const pfn of [3000, 3001, 3002]) finish(g.balloonOut(pfn));
          for (const pfn of [3000, 3001]) finish(g.balloonIn(pfn));
          finish(g.exchange(2000, 2));
          mon.stop();
          expect(mon.values).to.deep.equal([]);
          expect(g.readShared('p2m_generation')).to.equal(0n);
        });
      });
    }

    describe(`${abi.name} legacy-tree`, () => {
      it('grows its tree without any generation store, and p2m_cr3 stays 0', () => {
        const { xen, g } = makeGuest({ abi, variant: 'legacy-tree' });
        const first = fpp * fpp;
        finish(g.hotplug(first, fpp));
        finish(g.balloonOut(3000));
        const mon = monitorGeneration(g);
        finish(g.balloonIn(first));
        mon.stop();
        expect(mon.values).to.deep.equal([]);
        const s = readSharedP2m(xen, g.domid, abi);
        expect([s.p2mCr3, s.generation]).to.deep.equal([0n, 0n]);
        const tree = readP2mTree(xen, g.domid, abi);
        expect(tree.error).to.equal(undefined);
        expect(tree.leafMfns[fpp]).to.equal(g.mfnOf(g.list.leafPfn[fpp]!));
        expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
      });

      it('relayout moves the p2m onto a completely new tree: new fll, mid pages and leaves, same entries, old pages freed', () => {
        const { xen, g } = makeGuest({ abi, variant: 'legacy-tree' });
        const before = readP2mTree(xen, g.domid, abi);
        const entriesBefore = flatP2m(xen, g.domid, before.leafMfns);
        const oldFllMfn = readSharedP2m(xen, g.domid, abi).fll;
        const { oldFll, newFll } = finish(g.relayoutTree());
        const after = readP2mTree(xen, g.domid, abi);
        expect(readSharedP2m(xen, g.domid, abi).fll).to.equal(g.mfnOf(newFll));
        expect(g.mfnOf(newFll)).to.not.equal(oldFllMfn);
        expect(after.leafMfns.length).to.equal(before.leafMfns.length);
        after.leafMfns.forEach((mfn, i) => expect(mfn).to.not.equal(before.leafMfns[i]));
        expect(flatP2m(xen, g.domid, after.leafMfns)).to.deep.equal(entriesBefore);
        expect(g.pages.use(oldFll)).to.equal(PageUse.Free);
        expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
      });

      it('relayout is refused for the list personalities', () => {
        const { g } = makeGuest({ abi, variant: 'tree+linear' });
        expect(() => finish(g.relayoutTree())).to.throw(GuestStateError, 'tree relayout is a legacy-tree operation');
      });
    });
  }
});
