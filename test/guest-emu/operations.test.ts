/**
 * guest-emu operations as sequences of atomic steps, both ABIs: balloon out and in (Linux
 * balloon.c / mem-reservation.c order), XENMEM_exchange for a machine-contiguous region
 * (mmu_pv.c `xen_create_contiguous_region`), grants as backend (FOREIGN_FRAME entries) and as
 * frontend (grant access, the peer's write dirtying our pfn), ordinary data writes.
 */

import { expect } from 'chai';
import {
  FOREIGN_FRAME_BIT,
  GTF_permit_access,
  GTF_reading,
  GTF_writing,
  INVALID_P2M_ENTRY,
  PAGE_SIZE,
  XENMEM_decrease_reservation,
  XENMEM_exchange,
  XENMEM_populate_physmap,
  __HYPERVISOR_memory_op,
  __HYPERVISOR_mmu_update,
  __HYPERVISOR_multicall,
  __HYPERVISOR_update_va_mapping,
} from '../../abi/index.js';
import { INVALID_M2P } from '../../xen-emu/machine.js';
import { PageUse } from '../../guest-emu/page-state.js';
import { shareGrant, unshareGrant } from '../../guest-emu/grants.js';
import { GuestStateError } from '../../guest-emu/errors.js';
import { checkP2mM2p } from './support/checks.js';
import { ABIS, finish, labels, makeGuest, makePeer } from './support/world.js';

describe('guest-emu: operations', () => {
  for (const abi of ABIS) {
    describe(abi.name, () => {
      const w = abi.wordSize;

      it('balloon out: scrub, zap the direct map PTE, p2m INVALID, decrease_reservation, one step each', () => {
        const { xen, g } = makeGuest({ abi });
        const pfn = 3000;
        finish(g.writePage(pfn, 7)); // mapped, as Linux's direct map always is
        const mfn = g.mfnOf(pfn);
        const leafPfn = g.list.leafPfn[g.list.leafIndex(pfn)]!;
        const order: string[] = [];
        const stop = xen.events.subscribe((e) => {
          if (e.type === 'store' && e.stamp === 0 && e.mfn === Number(mfn)) order.push('scrub');
          if (e.type === 'hypercall' && e.nr === __HYPERVISOR_update_va_mapping) order.push('zap');
          if (e.type === 'store' && e.by === 'guest' && e.pfn === leafPfn) order.push(`p2m store of ${e.length} bytes`);
          if (e.type === 'hypercall' && e.nr === __HYPERVISOR_memory_op && Number(e.args[0]! & 63n) === XENMEM_decrease_reservation) order.push('decrease');
        });
        const steps = labels(g.balloonOut(pfn));
        stop();
        expect(steps).to.have.length(4);
        expect(order).to.deep.equal(['scrub', 'zap', `p2m store of ${w} bytes`, 'decrease']);
        expect(g.list.read(pfn)).to.equal(INVALID_P2M_ENTRY(abi));
        expect(xen.machine.ownerOf(Number(mfn))).to.equal(undefined);
        expect(g.pages.use(pfn)).to.equal(PageUse.Ballooned);
        expect(xen.translate(g.binding.dom, g.mm.directVa(pfn))).to.equal(undefined);
        expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
      });

      it('balloon out scrubs by default, dirtying the pfn; with scrub off only the p2m frame is dirtied (the seed\'s stale target)', () => {
        for (const scrub of [true, false]) {
          const { g } = makeGuest({ abi, scrub });
          const pfn = 3001;
          finish(g.writePage(pfn, 9));
          g.binding.dom.logdirty.enable();
          g.binding.dom.logdirty.clean(1 << 20);
          finish(g.balloonOut(pfn));
          expect(g.binding.dom.logdirty.isDirty(pfn)).to.equal(scrub);
          expect(g.binding.dom.logdirty.isDirty(g.list.leafPfn[g.list.leafIndex(pfn)]!)).to.equal(true);
        }
      });

      it('balloon in with populate_physmap: Xen sets the m2p, then the p2m store, then the direct map', () => {
        const { xen, g } = makeGuest({ abi });
        const pfn = 3002;
        finish(g.balloonOut(pfn));
        const order: string[] = [];
        const stop = xen.events.subscribe((e) => {
          if (e.type === 'm2p' && e.newPfn === pfn) order.push('m2p');
          if (e.type === 'hypercall' && e.nr === __HYPERVISOR_memory_op && Number(e.args[0]! & 63n) === XENMEM_populate_physmap) order.push('populate');
          if (e.type === 'store' && e.by === 'guest' && e.pfn === g.list.leafPfn[g.list.leafIndex(pfn)]) order.push('p2m');
          if (e.type === 'hypercall' && e.nr === __HYPERVISOR_update_va_mapping) order.push('map');
        });
        expect(finish(g.balloonIn(pfn))).to.equal(true);
        stop();
        expect(order).to.deep.equal(['m2p', 'populate', 'p2m', 'map']);
        const mfn = g.mfnOf(pfn);
        expect(xen.machine.m2pOf(Number(mfn))).to.equal(pfn);
        expect(xen.translate(g.binding.dom, g.mm.directVa(pfn))?.mfn).to.equal(Number(mfn));
        expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
      });

      it('balloon in with increase_reservation: the guest\'s own MMU_MACHPHYS_UPDATE comes before the p2m store', () => {
        const { xen, g } = makeGuest({ abi, balloonInMethod: 'increase_reservation' });
        const pfn = 3003;
        finish(g.balloonOut(pfn));
        const order: string[] = [];
        const stop = xen.events.subscribe((e) => {
          if (e.type === 'hypercall' && e.nr === __HYPERVISOR_mmu_update) order.push('mmu_update');
          if (e.type === 'm2p' && e.newPfn === pfn) order.push('m2p');
          if (e.type === 'store' && e.by === 'guest' && e.pfn === g.list.leafPfn[g.list.leafIndex(pfn)]) order.push('p2m');
        });
        expect(finish(g.balloonIn(pfn))).to.equal(true);
        stop();
        expect(order).to.deep.equal(['m2p', 'mmu_update', 'p2m']);
        expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
      });

      it('balloon in fails gracefully, after one refused hypercall, when the domain is at max_pages', () => {
        const { xen, g } = makeGuest({ abi, maxPages: 4096 });
        expect(g.pages.balloonSize).to.equal(0);
        finish(g.balloonOut(3004));
        xen.domain(g.domid)!.maxPages = g.binding.dom.totPages; // the toolstack lowered the target
        expect(labels(g.balloonIn(3004))).to.have.length(1);
        expect(g.pages.use(3004)).to.equal(PageUse.Ballooned);
      });

      it('exchange makes a region machine-contiguous: p2m INVALID stores, one zap multicall, XENMEM_exchange, p2m stores, one remap multicall', () => {
        const { xen, g } = makeGuest({ abi, machinePages: 1 << 16 });
        const first = 2600;
        const order = 3;
        const old = Array.from({ length: 8 }, (_, i) => g.mfnOf(first + i));
        const seq: string[] = [];
        const stop = xen.events.subscribe((e) => {
          if (e.type === 'hypercall' && (e.nr === __HYPERVISOR_multicall || (e.nr === __HYPERVISOR_memory_op && Number(e.args[0]! & 63n) === XENMEM_exchange))) seq.push(e.nr === __HYPERVISOR_multicall ? 'multicall' : 'exchange');
          if (e.type === 'store' && e.by === 'guest' && e.length === w && e.pfn === g.list.leafPfn[g.list.leafIndex(first)]) seq.push('p2m');
        });
        expect(finish(g.exchange(first, order))).to.equal(true);
        stop();
        expect(seq).to.deep.equal([...Array(8).fill('p2m'), 'multicall', 'exchange', ...Array(8).fill('p2m'), 'multicall']);
        const base = g.mfnOf(first);
        expect(Number(base) % 8).to.equal(0);
        for (let i = 0; i < 8; i++) {
          expect(g.mfnOf(first + i)).to.equal(base + BigInt(i));
          expect(xen.machine.m2pOf(Number(base) + i)).to.equal(first + i);
          expect(xen.machine.ownerOf(Number(old[i]!))).to.equal(undefined);
          expect(xen.translate(g.binding.dom, g.mm.directVa(first + i))?.mfn).to.equal(Number(base) + i);
        }
        expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
      });

      it('exchange that Xen cannot satisfy puts the old frames back', () => {
        const { xen, g } = makeGuest({ abi, machinePages: 4096 + 600 });
        const first = 2700;
        const old = Array.from({ length: 8 }, (_, i) => g.mfnOf(first + i));
        // Use up the machine so no aligned 8-frame extent is left.
        while (xen.machine.allocFrame(0x7000) !== undefined);
        expect(finish(g.exchange(first, 3))).to.equal(false);
        for (let i = 0; i < 8; i++) expect(g.mfnOf(first + i)).to.equal(old[i]);
        expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
      });

      it('as a backend, a mapped grant is a FOREIGN_FRAME entry on a ballooned pfn; unmapping puts INVALID back', () => {
        const { xen, g } = makeGuest({ abi });
        const peer = makePeer(xen);
        finish(g.balloonOut(3100));
        const peerPfn = 1300;
        const peerMfn = peer.mfnOf(peerPfn);
        const s = finish(shareGrant(peer, g, peerPfn, 3100));
        expect(s).to.not.equal(undefined);
        expect(g.list.read(3100)).to.equal(peerMfn | FOREIGN_FRAME_BIT(abi));
        expect(xen.translate(g.binding.dom, g.mm.directVa(3100))?.mfn).to.equal(Number(peerMfn));
        const flags = xen.guestLoad(peer.binding.dom, peer.mm.fixmapVa(3) + BigInt(s!.ref * 8), 2)!;
        expect(flags[0]).to.equal(GTF_permit_access | GTF_reading | GTF_writing);
        expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
        finish(unshareGrant(s!));
        expect(g.list.read(3100)).to.equal(INVALID_P2M_ENTRY(abi));
        expect(g.pages.use(3100)).to.equal(PageUse.Ballooned);
        expect(xen.guestLoad(peer.binding.dom, peer.mm.fixmapVa(3) + BigInt(s!.ref * 8), 2)![0]).to.equal(0);
        expect(peer.pages.use(peerPfn)).to.equal(PageUse.Free);
      });

      it('as a frontend, the page granted keeps its p2m entry; the backend\'s write dirties our pfn', () => {
        const { xen, g } = makeGuest({ abi });
        const peer = makePeer(xen);
        finish(peer.balloonOut(1350));
        const pfn = 3200;
        const before = g.list.read(pfn);
        g.binding.dom.logdirty.enable();
        g.binding.dom.logdirty.clean(1 << 20);
        const s = finish(shareGrant(g, peer, pfn, 1350, 0xabcd));
        expect(s).to.not.equal(undefined);
        expect(g.list.read(pfn)).to.equal(before);
        expect(g.binding.dom.logdirty.isDirty(pfn)).to.equal(true);
        expect(xen.machine.stampOf(Number(before))).to.equal(0xabcd);
        expect(g.pages.use(pfn)).to.equal(PageUse.Granted);
        expect(() => finish(g.balloonOut(pfn))).to.throw(GuestStateError, 'not free memory');
        finish(unshareGrant(s!));
        expect(g.pages.use(pfn)).to.equal(PageUse.Free);
      });

      it('a data write replaces the page contents with one store and dirties its pfn', () => {
        const { xen, g } = makeGuest({ abi });
        g.binding.dom.logdirty.enable();
        g.binding.dom.logdirty.clean(1 << 20);
        const steps = labels(g.writePage(3300, 0x5555));
        expect(steps[steps.length - 1]).to.equal('write pfn 0xce4 stamp 0x5555');
        expect(xen.machine.stampOf(Number(g.mfnOf(3300)))).to.equal(0x5555);
        expect(g.binding.dom.logdirty.isDirty(3300)).to.equal(true);
        expect(xen.machine.m2pOf(Number(g.mfnOf(3300)))).to.not.equal(INVALID_M2P);
      });

      it('refuses operations on pages in the wrong state, and nested operations', () => {
        const { g } = makeGuest({ abi });
        expect(() => finish(g.balloonOut(5))).to.throw(GuestStateError, 'balloon out of pfn 0x5, which is not free memory');
        expect(() => finish(g.balloonIn(3000))).to.throw(GuestStateError, 'not in the balloon');
        const outer = g.writePage(3000, 1);
        outer.next();
        expect(() => finish(g.writePage(3001, 1))).to.throw(GuestStateError, 'inside operation write');
        finish(outer);
        expect(PAGE_SIZE).to.equal(4096);
      });
    });
  }
});
