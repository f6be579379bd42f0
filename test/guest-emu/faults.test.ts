/**
 * guest-emu faulty variants: each breaks exactly one rule, and each fault is observable from
 * outside the guest (the Xen event stream, or guest memory read as the tools read it). The
 * correct guest goes through the same scenario as a control.
 */

import { expect } from 'chai';
import { PAGE_SIZE, X86_64, shared_info, type GuestAbi } from '../../abi/index.js';
import { FAULTS, FAULT_NAMES, faultInfo } from '../../guest-emu/variants.js';
import type { PvGuest } from '../../guest-emu/guest.js';
import { checkP2mM2p, checkTreeMatchesList } from './support/checks.js';
import { monitorGeneration } from './support/monitor.js';
import { readSharedP2m, walkP2mCr3 } from './support/tools-view.js';
import { ABIS, finish, makeGuest } from './support/world.js';

const fppOf = (abi: GuestAbi): number => PAGE_SIZE / abi.wordSize;

/** A guest with extra memory above nr_pages whose leaves are the shared missing page. */
function grower(abi: GuestAbi, variant: string) {
  const fpp = fppOf(abi);
  return makeGuest({ abi, variant, memoryPages: 4096, maxPages: 4096 + 3 * fpp });
}

/** A pfn in extra memory whose leaf is still shared: populating it grows the p2m. */
function missingLeafPfn(g: PvGuest): number {
  const fpp = g.list.fpp;
  for (let pfn = Math.ceil(g.nrPages / fpp) * fpp; ; pfn += fpp) if (g.list.leafPfn[g.list.leafIndex(pfn)] === -1) return pfn + 1;
}

describe('guest-emu: faulty variants', () => {
  it('every fault has a rule and a personality to run on', () => {
    expect(FAULTS.map((f) => f.name)).to.deep.equal([...FAULT_NAMES]);
    for (const f of FAULTS) expect(f.rule.length).to.be.greaterThan(20);
    expect(faultInfo('stale-mid-page').personality).to.equal('tree+linear');
  });

  for (const abi of ABIS) {
    describe(abi.name, () => {
      it('control: the correct guest grows with +2, odd during the PT write, tree matching the list', () => {
        for (const variant of ['linear', 'tree+linear']) {
          const { xen, g } = grower(abi, variant);
          const mon = monitorGeneration(g);
          finish(g.balloonIn(missingLeafPfn(g)));
          mon.stop();
          expect(mon.problems).to.deep.equal([]);
          expect(mon.values).to.deep.equal([1n, 2n]);
          if (variant === 'tree+linear') expect(checkTreeMatchesList(xen, g.domid, abi)).to.deep.equal([]);
          expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
        }
      });

      it('skip-bump: the leaf PTE is written while the generation stays 0', () => {
        const { g } = grower(abi, 'skip-bump');
        const mon = monitorGeneration(g);
        finish(g.balloonIn(missingLeafPfn(g)));
        mon.stop();
        expect(mon.values).to.deep.equal([]);
        expect(mon.ptWrites.map((w) => w.generation)).to.deep.equal([0n]);
        expect(mon.problems[0]).to.match(/expected an odd p2m_generation, got 0/);
        expect(g.stats.structuralChanges).to.equal(1);
      });

      it('bump-once: the generation is left odd after the change', () => {
        const { g } = grower(abi, 'bump-once');
        finish(g.balloonIn(missingLeafPfn(g)));
        expect(g.operationInProgress).to.equal(undefined);
        expect(g.readShared('p2m_generation')).to.equal(1n);
      });

      it('bump-after: the PT write happens while the generation is still even', () => {
        const { g } = grower(abi, 'bump-after');
        const mon = monitorGeneration(g);
        finish(g.balloonIn(missingLeafPfn(g)));
        mon.stop();
        expect(mon.ptWrites.map((w) => w.generation)).to.deep.equal([0n]);
        expect(mon.values).to.deep.equal([1n, 2n]);
        expect(mon.problems).to.have.length(1);
      });

      it('non-monotonic-generation: the counter goes up and back down, so a change leaves it unchanged', () => {
        const { g } = grower(abi, 'non-monotonic-generation');
        const mon = monitorGeneration(g);
        finish(g.balloonIn(missingLeafPfn(g)));
        finish(g.balloonIn(missingLeafPfn(g)));
        mon.stop();
        expect(mon.values).to.deep.equal([1n, 0n, 1n, 0n]);
        expect(g.stats.structuralChanges).to.equal(2);
        expect(g.readShared('p2m_generation')).to.equal(0n);
      });

      it('torn-element-write: an element is written in two half-width stores, and between them it holds neither value', () => {
        const { xen, g } = makeGuest({ abi, variant: 'torn-element-write' });
        const pfn = 3000;
        const old = g.list.read(pfn);
        const leafPfn = g.list.leafPfn[g.list.leafIndex(pfn)]!;
        const seen: { length: number; value: bigint }[] = [];
        const stop = xen.events.subscribe((e) => {
          if (e.type === 'store' && e.by === 'guest' && e.pfn === leafPfn) {
            const page = xen.machine.bytes(e.mfn);
            const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
            const at = (pfn % g.list.fpp) * abi.wordSize;
            seen.push({ length: e.length, value: abi.wordSize === 8 ? view.getBigUint64(at, true) : BigInt(view.getUint32(at, true)) });
          }
        });
        finish(g.balloonOut(pfn));
        stop();
        const invalid = abi.wordSize === 8 ? 0xffffffffffffffffn : 0xffffffffn;
        expect(seen.map((s) => s.length)).to.deep.equal([abi.wordSize / 2, abi.wordSize / 2]);
        expect(seen[0]!.value).to.not.equal(old);
        expect(seen[0]!.value).to.not.equal(invalid);
        expect(seen[1]!.value).to.equal(invalid);
      });

      it('forgotten-m2p: after a balloon in, p2m and m2p disagree at a quiescent point', () => {
        const { xen, g } = makeGuest({ abi, variant: 'forgotten-m2p' });
        expect(g.balloonInMethod).to.equal('increase_reservation');
        finish(g.balloonOut(3000));
        expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
        finish(g.balloonIn(3000));
        expect(g.operationInProgress).to.equal(undefined);
        const mfn = g.mfnOf(3000);
        // Seen from both sides: the frame has no m2p entry, and the p2m entry's frame does not map back.
        expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([
          `Fail: m2p of d${g.domid}'s mfn 0x${mfn.toString(16)}, expected a pfn, got INVALID`,
          `Fail: m2p[0x${mfn.toString(16)}] (p2m[0xbb8] of d${g.domid}), expected 0xbb8, got 0xffffffff`,
        ]);
      });

      it('early-p2m-cr3: when p2m_cr3 is published the tools cannot walk the list yet', () => {
        for (const variant of ['early-p2m-cr3', 'linear']) {
          const { xen, g } = makeGuest({ abi, variant, boot: false });
          const cr3At = shared_info.offsetOf(abi, 'arch.p2m_cr3');
          const walks: (string | undefined)[] = [];
          const stop = xen.events.subscribe((e) => {
            if (e.type === 'store' && e.mfn === g.binding.dom.sharedInfoMfn && e.offset === cr3At) walks.push(walkP2mCr3(xen, g.domid, abi).error);
          });
          finish(g.boot());
          stop();
          expect(walks).to.have.length(1);
          if (variant === 'linear') expect(walks[0]).to.equal(undefined);
          else expect(walks[0]).to.match(/Bad mfn 0x0 during page table walk/);
        }
      });

      it('short-max-pfn: a populated pfn lies at or above max_pfn', () => {
        const { xen, g } = grower(abi, 'short-max-pfn');
        const pfn = missingLeafPfn(g) + g.list.fpp;
        finish(g.balloonIn(pfn));
        const maxPfn = Number(readSharedP2m(xen, g.domid, abi).maxPfn);
        expect(pfn).to.be.at.least(maxPfn);
        expect(xen.machine.m2pOf(Number(g.mfnOf(pfn)))).to.equal(pfn);
      });

      it('stale-mid-page: after a new leaf, the tree still names the missing page where the list has the leaf', () => {
        const { xen, g } = grower(abi, 'stale-mid-page');
        finish(g.balloonIn(missingLeafPfn(g)));
        const problems = checkTreeMatchesList(xen, g.domid, abi);
        expect(problems).to.have.length(1);
        expect(problems[0]).to.match(/expected the tree's mfn/);
      });
    });
  }

  it('faults are rules of list personalities (the tree one on tree+linear)', () => {
    const { g } = makeGuest({ abi: X86_64, variant: 'stale-mid-page' });
    expect(g.personality).to.equal('tree+linear');
    expect(g.tree).to.not.equal(undefined);
  });
});
