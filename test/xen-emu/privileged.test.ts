/**
 * The toolstack's privileged interface: what libxc would see of a domain, and nothing more.
 */

import { expect } from 'chai';
import {
  PAGE_SIZE,
  X86_32,
  X86_64,
  XEN_DOMCTL_PFINFO_L1TAB,
  XEN_DOMCTL_PFINFO_LPINTAB,
  XEN_DOMCTL_PFINFO_LTAB_SHIFT,
  XEN_DOMCTL_PFINFO_NOTAB,
  XEN_DOMCTL_PFINFO_XTAB,
  EINVAL,
  ENOENT,
  EPERM,
  ESRCH,
  ENOMEM,
  shared_info,
} from '../../abi/index.js';
import { buildDomain } from '../../xen-emu/builder.js';
import { INVALID_M2P } from '../../xen-emu/machine.js';
import { PrivilegedError, PrivilegedInterface } from '../../xen-emu/privileged.js';
import { Xen } from '../../xen-emu/xen.js';

for (const abi of [X86_32, X86_64]) {
  describe(`xen-emu privileged interface (${abi.name} guest)`, function () {
    function setup() {
      const xen = new Xen({ maxPage: 8192 });
      const dom0 = buildDomain(xen, { abi: X86_64, memoryPages: 1100, privileged: true });
      const guest = buildDomain(xen, { abi, memoryPages: 1200 });
      return { xen, dom0, guest, tools: new PrivilegedInterface(xen, dom0.dom.domid) };
    }

    it('reports domain info as xc_domain_getinfo would', function () {
      const { guest, tools } = setup();
      const info = tools.domainInfo(guest.dom.domid);
      expect(info).to.deep.include({ domid: guest.dom.domid, totPages: 1200, maxPages: 1200, paused: false, dying: false });
      expect(info.abi).to.equal(abi);
      expect(info.sharedInfoMfn).to.equal(guest.dom.sharedInfoMfn);
    });

    it('refuses unknown domains and unprivileged callers with their errno', function () {
      const { xen, guest, tools } = setup();
      expect(() => tools.domainInfo(999)).to.throw(PrivilegedError).with.property('errno', ESRCH);
      const fromGuest = new PrivilegedInterface(xen, guest.dom.domid);
      expect(() => fromGuest.domainInfo(guest.dom.domid)).to.throw(PrivilegedError).with.property('errno', EPERM);
    });

    it('gives maximum_ram_page and the m2p', function () {
      const { xen, guest, tools } = setup();
      expect(tools.maximumRamPage()).to.equal(xen.machine.maxPage);
      const mfn = guest.p2mEntry(7);
      expect(tools.m2p(Number(mfn))).to.equal(7);
      expect(tools.m2p(xen.machine.maxPage + 5)).to.equal(INVALID_M2P);
    });

    it('maps foreign frames live and reports per-frame errors', function () {
      const { xen, guest, dom0, tools } = setup();
      const mfn = Number(guest.p2mEntry(3));
      const { pages, errors } = tools.mapForeign(guest.dom.domid, [mfn, xen.machine.maxPage, Number(dom0.p2mEntry(0))]);
      expect(errors).to.deep.equal([0, -EINVAL, -ENOENT]);
      expect(pages[1]).to.equal(undefined);
      // Live: a later guest store shows through the mapping.
      expect(xen.guestStoreWord(guest.dom, guest.vaOfPfn(3), 0x1234n, 4)).to.equal(0);
      expect(Buffer.from(pages[0]!).readUInt32LE(0)).to.equal(0x1234);
    });

    it('carries stamps without materialising them, and bytes for inspected frames', function () {
      const { xen, guest, tools } = setup();
      const mfn = Number(guest.p2mEntry(guest.memoryPages - 1));
      xen.storeStamp({ domid: guest.dom.domid, by: 'guest' }, mfn, 77);
      expect(tools.frameContent(guest.dom.domid, mfn)).to.deep.equal({ stamp: 77 });
      expect(xen.machine.isMaterialised(mfn)).to.equal(false);
      const p2mFrame = guest.p2mMfns[0]!;
      const content = tools.frameContent(guest.dom.domid, p2mFrame);
      expect('bytes' in content && content.bytes.length).to.equal(PAGE_SIZE);
    });

    it('reads shared_info as the guest left it', function () {
      const { xen, guest, tools } = setup();
      const view = shared_info.view(abi, Buffer.from(xen.machine.bytes(guest.dom.sharedInfoMfn).buffer, xen.machine.bytes(guest.dom.sharedInfoMfn).byteOffset, PAGE_SIZE));
      view.arch.max_pfn = 1200n;
      const seen = shared_info.view(abi, Buffer.from(tools.sharedInfo(guest.dom.domid)));
      expect(seen.arch.max_pfn).to.equal(1200n);
      expect(seen.vcpu_info[31]!.evtchn_upcall_mask).to.equal(1);
    });

    it('classifies page types: XTAB for foreign or invalid frames, pinned tables with LPINTAB', function () {
      const { xen, guest, dom0, tools } = setup();
      const top = guest.topPtMfn;
      const l1 = guest.ptFrames.find((f) => f.level === 1)!.mfn;
      const data = Number(guest.p2mEntry(guest.memoryPages - 1));
      const types = tools.pageTypes(guest.dom.domid, [top, l1, data, Number(dom0.p2mEntry(0)), xen.machine.maxPage + 1, guest.dom.sharedInfoMfn]);
      const topLevel = abi === X86_64 ? 4 : 3;
      expect(types[0]).to.equal(topLevel * 2 ** XEN_DOMCTL_PFINFO_LTAB_SHIFT + XEN_DOMCTL_PFINFO_LPINTAB);
      expect(types[1]).to.equal(XEN_DOMCTL_PFINFO_L1TAB);
      expect(types[2]).to.equal(XEN_DOMCTL_PFINFO_NOTAB);
      expect(types.slice(3)).to.deep.equal([XEN_DOMCTL_PFINFO_XTAB, XEN_DOMCTL_PFINFO_XTAB, XEN_DOMCTL_PFINFO_XTAB]);
    });

    it('drives logdirty: enable, peek, clean, disable', function () {
      const { xen, guest, tools } = setup();
      const id = guest.dom.domid;
      tools.enableLogDirty(id);
      expect(xen.guestStoreWord(guest.dom, guest.vaOfPfn(5), 1n, 4)).to.equal(0);
      expect(tools.peekDirty(id, 1200)[0]! & (1 << 5)).to.not.equal(0);
      expect(tools.cleanDirty(id, 1200)[0]! & (1 << 5)).to.not.equal(0);
      expect(tools.peekDirty(id, 1200).every((w) => w === 0)).to.equal(true);
      tools.disableLogDirty(id);
      expect(xen.guestStoreWord(guest.dom, guest.vaOfPfn(5), 2n, 4)).to.equal(0);
      expect(tools.peekDirty(id, 1200).every((w) => w === 0)).to.equal(true);
    });

    it('pauses and unpauses', function () {
      const { guest, tools } = setup();
      tools.pause(guest.dom.domid);
      expect(tools.domainInfo(guest.dom.domid).paused).to.equal(true);
      tools.unpause(guest.dom.domid);
      expect(tools.domainInfo(guest.dom.domid).paused).to.equal(false);
    });

    it('restore side: creates a domain, writes frames through the choke point, sets the base pointer, destroys', function () {
      const { xen, guest, tools } = setup();
      const created = tools.createDomain(abi, 64);
      expect(created.totPages).to.equal(0);
      const mfn = Number(guest.p2mEntry(9));
      const seen: number[] = [];
      const off = xen.events.subscribe((e) => e.type === 'store' && seen.push(e.mfn));
      tools.writeFrame(guest.dom.domid, mfn, { stamp: 5 });
      tools.writeFrame(guest.dom.domid, mfn, { bytes: new Uint8Array(PAGE_SIZE).fill(3) });
      off();
      expect(seen).to.deep.equal([mfn, mfn]);
      expect(xen.machine.bytes(mfn)[100]).to.equal(3);
      expect(() => tools.writeFrame(guest.dom.domid, mfn, { bytes: new Uint8Array(10) })).to.throw(PrivilegedError, /4096 bytes/);
      expect(() => tools.writeFrame(created.domid, mfn, { stamp: 1 })).to.throw(PrivilegedError).with.property('errno', ENOENT);
      expect(() => tools.setBaseptr(created.domid, mfn)).to.throw(PrivilegedError).with.property('errno', EINVAL);
      tools.setBaseptr(guest.dom.domid, guest.topPtMfn);
      const mfns = tools.populatePhysmap(created.domid, [0, 1, 40]);
      expect(mfns.map((m) => tools.m2p(m))).to.deep.equal([0, 1, 40]);
      expect(tools.domainInfo(created.domid).totPages).to.equal(3);
      expect(() => tools.populatePhysmap(created.domid, Array.from({ length: 62 }, (_, i) => 100 + i)))
        .to.throw(PrivilegedError, /populated 61 of 62 pfns/)
        .with.property('errno', ENOMEM);
      tools.destroyDomain(created.domid);
      expect(() => tools.domainInfo(created.domid)).to.throw(PrivilegedError);
    });

    it('answers frameInfoInto and m2pInto exactly as the per-frame calls, frame by frame', function () {
      const { xen, guest, dom0, tools } = setup();
      const domid = guest.dom.domid;
      // A mix: the guest's frames (data, stamped, page tables, p2m frames, shared_info), dom0's,
      // free and out-of-machine frames, and non-integers.
      const own = Array.from({ length: guest.memoryPages }, (_, pfn) => Number(guest.p2mEntry(pfn)));
      xen.storeStamp({ domid, by: 'guest' }, own[5]!, 0xabcd);
      xen.machine.bytes(own[6]!);
      const mfns = [...own, guest.dom.sharedInfoMfn, Number(dom0.p2mEntry(1)), xen.machine.maxPage - 1, xen.machine.maxPage, -1, 2.5];
      const n = mfns.length;
      const types = new Uint32Array(n);
      const m2ps = new Uint32Array(n);
      const stamps = new Uint32Array(n);
      const materialised = new Uint8Array(n);
      tools.frameInfoInto(domid, mfns, n, types, m2ps, stamps, materialised);
      expect(Array.from(types)).to.deep.equal(tools.pageTypes(domid, mfns.map((m) => (Number.isInteger(m) && m >= 0 ? m : xen.machine.maxPage)))
        .map((t, i) => (Number.isInteger(mfns[i]) ? t : XEN_DOMCTL_PFINFO_XTAB)));
      expect(types.filter((t) => t === XEN_DOMCTL_PFINFO_NOTAB).length).to.be.greaterThan(1000);
      expect(Array.from(m2ps)).to.deep.equal(mfns.map((m) => tools.m2p(m)));
      const m2pAlone = new Uint32Array(n);
      tools.m2pInto(mfns, n, m2pAlone);
      expect(Array.from(m2pAlone)).to.deep.equal(Array.from(m2ps));
      own.forEach((mfn, i) => {
        const c = tools.frameContent(domid, mfn);
        if ('stamp' in c) expect([materialised[i], stamps[i]], `pfn ${i}`).to.deep.equal([0, c.stamp]);
        else expect(materialised[i], `pfn ${i}`).to.equal(1);
      });
      expect(stamps[5]).to.equal(0xabcd);
      expect(materialised[6]).to.equal(1);
      // The rest are XTAB; those that are not the domain's at all (shared_info is, on Xen's heap)
      // carry no stamp and no bytes.
      for (let i = own.length; i < n; i++) {
        const mfn = mfns[i]!;
        expect(types[i], `mfn ${mfn}`).to.equal(XEN_DOMCTL_PFINFO_XTAB);
        if (mfn !== guest.dom.sharedInfoMfn) expect([stamps[i], materialised[i]], `mfn ${mfn}`).to.deep.equal([0, 0]);
      }
    });

    it('populates and writes stamps in bulk through the store choke point', function () {
      const xen = new Xen({ maxPage: 4096 });
      const dom0 = buildDomain(xen, { abi: X86_64, memoryPages: 1100, privileged: true });
      const tools = new PrivilegedInterface(xen, dom0.dom.domid);
      const target = tools.createDomain(abi, 100);
      const pfns = [3, 0, 70, 99];
      const mfns = new Float64Array(pfns.length);
      tools.populatePhysmapInto(target.domid, pfns, pfns.length, mfns);
      pfns.forEach((pfn, i) => expect(tools.m2p(mfns[i]!)).to.equal(pfn));
      const stores: number[] = [];
      xen.events.subscribe((e) => {
        if (e.type === 'store') stores.push(e.mfn);
      });
      tools.writeStamps(target.domid, mfns, [1, 2, 3, 4], 4);
      expect(Array.from(mfns, (m) => xen.machine.stampOf(m))).to.deep.equal([1, 2, 3, 4]);
      expect(stores).to.deep.equal(Array.from(mfns));
      expect(() => tools.writeStamps(target.domid, [Number(dom0.p2mEntry(0))], [9], 1)).to.throw(PrivilegedError).with.property('errno', ENOENT);
      expect(() => tools.populatePhysmapInto(target.domid, Array.from({ length: 97 }, (_, i) => 100 + i), 97, new Float64Array(97))).to.throw(PrivilegedError).with.property('errno', ENOMEM);
    });

    it('answers frameInfoInto (one pass) as pageTypes, m2p and frameContent do, across chunks', function () {
      // A guest spanning two metadata chunks (65536 frames each) and a third chunk never made.
      const xen = new Xen({ maxPage: 3 * 65536 });
      const dom0 = buildDomain(xen, { abi: X86_64, memoryPages: 1100, privileged: true });
      const guest = buildDomain(xen, { abi, memoryPages: 66000 });
      const tools = new PrivilegedInterface(xen, dom0.dom.domid);
      const domid = guest.dom.domid;
      const own = Array.from({ length: guest.memoryPages }, (_, pfn) => Number(guest.p2mEntry(pfn)));
      expect(Math.max(...own)).to.be.greaterThan(65536);
      xen.storeStamp({ domid, by: 'guest' }, own[5]!, 0xabcd);
      xen.storeStamp({ domid, by: 'guest' }, own[65000]!, 0xfffffff0);
      xen.machine.bytes(own[6]!);
      xen.machine.bytes(own[65001]!);
      // Alternating between the chunks, runs within one, page tables (the guest's own tree is in
      // `own`), shared_info (Xen heap), dom0's, free, never-made chunk, outside, negative, fractions.
      const mixed: number[] = [];
      for (let i = 0; i < 200; i++) mixed.push(own[i]!, own[own.length - 1 - i]!);
      mixed.push(...own.slice(1000, 1300), guest.topPtMfn, guest.dom.sharedInfoMfn, Number(dom0.p2mEntry(1)));
      mixed.push(xen.machine.maxPage - 1, 2 * 65536 + 7, xen.machine.maxPage, xen.machine.maxPage + 1, -1, 2.5, own[7]! + 0.5, Number.NaN, own[8]!);
      for (const mfns of [mixed, Float64Array.from(mixed)]) {
        const n = mfns.length;
        const types = new Uint32Array(n);
        const m2ps = new Uint32Array(n);
        const stamps = new Uint32Array(n).fill(7);
        const materialised = new Uint8Array(n).fill(7);
        tools.frameInfoInto(domid, mfns, n, types, m2ps, stamps, materialised);
        const expectedM2ps = new Uint32Array(n);
        tools.m2pInto(mfns, n, expectedM2ps);
        expect(Array.from(m2ps)).to.deep.equal(Array.from(expectedM2ps));
        expect(Array.from(m2ps)).to.deep.equal(Array.from(mfns, (m) => tools.m2p(m)));
        expect(Array.from(types)).to.deep.equal(Array.from(mfns, (m) => (Number.isInteger(m) && m >= 0 ? tools.pageTypes(domid, [m])[0] : XEN_DOMCTL_PFINFO_XTAB)));
        Array.from(mfns).forEach((mfn, i) => {
          const ownFrame = Number.isInteger(mfn) && mfn >= 0 && mfn < xen.machine.maxPage && xen.machine.ownerOf(mfn) === domid;
          if (!ownFrame) {
            expect([stamps[i], materialised[i]], `mfn ${mfn}`).to.deep.equal([0, 0]);
            return;
          }
          const c = tools.frameContent(domid, mfn);
          expect([stamps[i], materialised[i]], `mfn ${mfn}`).to.deep.equal('bytes' in c ? [0, 1] : [c.stamp, 0]);
        });
        expect(types.filter((t) => (t & XEN_DOMCTL_PFINFO_LPINTAB) !== 0 && t !== XEN_DOMCTL_PFINFO_XTAB).length).to.be.greaterThan(0);
        expect(materialised.filter((m) => m === 1).length).to.be.greaterThan(2);
      }
    });

    it('writes stamps in bulk exactly as storeStamp does frame by frame: logdirty, events, bytes dropped, errors', function () {
      function world(logdirty: boolean) {
        const xen = new Xen({ maxPage: 4096 });
        const dom0 = buildDomain(xen, { abi: X86_64, memoryPages: 1100, privileged: true });
        const guest = buildDomain(xen, { abi, memoryPages: 1200 });
        if (logdirty) guest.dom.logdirty.enable();
        const own = Array.from({ length: 300 }, (_, pfn) => Number(guest.p2mEntry(pfn)));
        xen.machine.bytes(own[3]!);
        return { xen, dom0, guest, own, tools: new PrivilegedInterface(xen, dom0.dom.domid) };
      }
      const writer = { domid: 0, by: 'toolstack' as const };
      for (const logdirty of [true, false]) {
        for (const observed of [false, true]) {
          const one = world(logdirty);
          const bulk = world(logdirty);
          const mfns = [...one.own.slice(0, 200).reverse(), one.own[250]!, one.own[250]!, Number(one.dom0.p2mEntry(4)), one.guest.dom.sharedInfoMfn];
          const stamps = mfns.map((_, i) => (i % 7 === 0 ? 0 : i % 5 === 0 ? -1 : 0x80000000 + i));
          const events: unknown[][] = [[], []];
          if (observed) {
            one.xen.events.subscribe((e) => events[0]!.push(e));
            bulk.xen.events.subscribe((e) => events[1]!.push(e));
          }
          mfns.forEach((mfn, i) => one.xen.storeStamp(writer, mfn, stamps[i]!));
          bulk.xen.storeStamps(writer, mfns, stamps, mfns.length);
          const what = `logdirty ${logdirty}, observed ${observed}`;
          for (const mfn of new Set([...mfns, ...one.own])) {
            expect([bulk.xen.machine.stampOf(mfn), bulk.xen.machine.isMaterialised(mfn)], `${what}: mfn ${mfn}`).to.deep.equal([one.xen.machine.stampOf(mfn), one.xen.machine.isMaterialised(mfn)]);
          }
          expect(Array.from(bulk.guest.dom.logdirty.peek(1200)), what).to.deep.equal(Array.from(one.guest.dom.logdirty.peek(1200)));
          expect(Array.from(bulk.dom0.dom.logdirty.peek(1100)), what).to.deep.equal(Array.from(one.dom0.dom.logdirty.peek(1100)));
          if (logdirty) expect(bulk.guest.dom.logdirty.count(), what).to.equal(201);
          expect(events[1], what).to.deep.equal(events[0]);
          if (observed) expect(events[1]!.length, what).to.equal(mfns.length);
        }
      }
      // A frame outside the machine: the frames before it are stamped and marked, then the same error.
      const one = world(true);
      const bulk = world(true);
      const mfns = [one.own[10]!, one.own[11]!, 4096, one.own[12]!];
      let failure: unknown;
      try {
        mfns.forEach((mfn) => one.xen.storeStamp(writer, mfn, 9));
      } catch (err) {
        failure = err;
      }
      expect(failure).to.be.instanceOf(RangeError);
      expect(() => bulk.xen.storeStamps(writer, mfns, [9, 9, 9, 9], 4)).to.throw(RangeError, (failure as Error).message);
      expect(mfns.map((m) => (m < 4096 ? bulk.xen.machine.stampOf(m) : 0))).to.deep.equal(mfns.map((m) => (m < 4096 ? one.xen.machine.stampOf(m) : 0)));
      expect(Array.from(bulk.guest.dom.logdirty.peek(1200))).to.deep.equal(Array.from(one.guest.dom.logdirty.peek(1200)));
      // writeStamps refuses a fraction or a foreign frame before stamping anything.
      for (const bad of [one.own[20]! + 0.5, Number(bulk.dom0.p2mEntry(0)), -1]) {
        expect(() => bulk.tools.writeStamps(bulk.guest.dom.domid, [bulk.own[30]!, bad], [5, 5], 2)).to.throw(PrivilegedError).with.property('errno', ENOENT);
        expect(bulk.xen.machine.stampOf(bulk.own[30]!)).to.equal(0);
      }
    });
  });
}
