/**
 * The shortcuts a balloon operation takes through Xen, each against the general path it sits
 * beside: the machine's cache of materialised pages (`Machine.bytes`), the L1 promotion of a frame
 * still carrying the zero stamp (`promoteTable`), `array_access_ok` from a struct's first byte and
 * the one-page `copyToGuest`.
 */

import { expect } from 'chai';
import { EINVAL, PAGE_SIZE, X86_32, X86_64, type GuestAbi } from '../../abi/index.js';
import { buildDomain } from '../../xen-emu/builder.js';
import type { XenEvent } from '../../xen-emu/events.js';
import { Machine, PageType, STAMP_ZERO } from '../../xen-emu/machine.js';
import { getTableType, isPaeXenL2, pinTable } from '../../xen-emu/pagetable.js';
import { U64_MASK, nativeArrayAccessOk } from '../../xen-emu/hypercalls/memory_op/common.js';
import { Xen } from '../../xen-emu/xen.js';
import { PvGuest } from '../../guest-emu/guest.js';
import { startInfoFlagsFor } from '../../guest-emu/variants.js';

const ABIS: readonly GuestAbi[] = [X86_32, X86_64];

function bootedGuest(abi: GuestAbi): { xen: Xen; g: PvGuest } {
  const xen = new Xen({ maxPage: 1 << 15 });
  const built = buildDomain(xen, { abi, memoryPages: 6000, maxPages: 7000, flags: startInfoFlagsFor('linear') });
  return { xen, g: PvGuest.start(built, xen, { variant: 'linear' }) };
}

/** Events with the frame and pfn numbers replaced by their order of appearance, so that two runs on different frames compare. */
function normalised(events: XenEvent[], mfn: number, pfn: number): string[] {
  return events.map((e) => JSON.stringify(e, (k, v) => (typeof v === 'bigint' ? v.toString(16) : k === 'mfn' && v === mfn ? 'MFN' : k === 'pfn' && v === pfn ? 'PFN' : v)));
}

describe('xen-emu: balloon fast paths agree with the general paths', () => {
  describe('Machine.bytes page cache', () => {
    it('hands out the current bytes of every frame, also after they are dropped, freed or collide in the cache', () => {
      const m = new Machine({ maxPage: 4096 });
      const frames: number[] = [];
      for (let i = 0; i < 1024; i++) frames.push(m.allocFrame(0)!);
      // Frames 256 apart share a cache entry.
      for (const mfn of frames) m.bytes(mfn)[0] = mfn & 0xff;
      for (const mfn of frames) expect(m.bytes(mfn)[0]).to.equal(mfn & 0xff);
      const mfn = frames[300]!;
      const before = m.bytes(mfn);
      m.setStamp(mfn, 42);
      const after = m.bytes(mfn);
      expect(after).to.not.equal(before);
      expect(after[0]).to.not.equal(300 & 0xff);
      expect(m.isMaterialised(mfn)).to.equal(true);
      const other = frames[301]!;
      m.bytes(other).fill(9);
      m.freeFrame(other);
      const again = m.allocFrame(0)!;
      expect(again).to.equal(other);
      expect(m.bytes(again).every((b) => b === 0)).to.equal(true);
    });

    it('keeps the answers for fractions, negatives, NaN and frames outside the machine', () => {
      const m = new Machine({ maxPage: 16 });
      m.allocFrame(0);
      m.allocFrame(0);
      m.bytes(1)[5] = 7;
      // A fraction reaches its integer frame's bytes, before and after that frame's bytes change.
      expect(m.bytes(1.5)).to.equal(m.bytes(1));
      m.setStamp(1, 3);
      // Without bytes, a fraction is refused (it cannot be materialised); once frame 1 has its new bytes, reached again.
      expect(() => m.bytes(1.5)).to.throw(RangeError);
      const fresh = m.bytes(1);
      expect(m.bytes(1.5)).to.equal(fresh);
      expect(m.bytes(1.5)[5]).to.not.equal(7);
      for (const bad of [-1, -256, 16, 272, NaN, Infinity, -Infinity]) expect(() => m.bytes(bad), String(bad)).to.throw(RangeError);
    });
  });

  for (const abi of ABIS) {
    it(`${abi.name}: pinning a zero-stamped L1 gives what pinning the same zeros materialised gives`, () => {
      const results: { rc: number; events: string[]; type: PageType; pinned: boolean; materialised: boolean; zero: boolean; dirty: boolean }[] = [];
      for (const materialise of [false, true]) {
        const { xen, g } = bootedGuest(abi);
        const dom = g.binding.dom;
        const pfn = g.allocKernelPage('fast path test L1');
        const mfn = Number(g.mfnOf(pfn));
        xen.storeStamp({ domid: dom.domid, by: 'guest' }, mfn, STAMP_ZERO);
        if (materialise) xen.machine.bytes(mfn);
        expect(xen.machine.stampOf(mfn)).to.equal(materialise ? undefined : STAMP_ZERO);
        dom.logdirty.enable();
        const events: XenEvent[] = [];
        const stop = xen.events.subscribe((e) => events.push(e));
        const rc = pinTable(xen, dom, dom, mfn, PageType.L1);
        stop();
        results.push({
          rc,
          events: normalised(events, mfn, pfn),
          type: xen.machine.pageType(mfn),
          pinned: xen.machine.isPinned(mfn),
          materialised: xen.machine.isMaterialised(mfn),
          zero: xen.machine.bytes(mfn).every((b) => b === 0),
          dirty: dom.logdirty.isDirty(pfn),
        });
      }
      expect(results[0]).to.deep.equal(results[1]);
      expect(results[0]!.rc).to.equal(0);
      expect(results[0]!.type).to.equal(PageType.L1);
    });

    it(`${abi.name}: pinning a frame stamped with data validates its derived entries as the materialised bytes do`, () => {
      const rcs: number[] = [];
      for (const materialise of [false, true]) {
        const { xen, g } = bootedGuest(abi);
        const dom = g.binding.dom;
        const mfn = Number(g.mfnOf(g.allocKernelPage('fast path test L1')));
        xen.storeStamp({ domid: dom.domid, by: 'guest' }, mfn, 0x1234567);
        if (materialise) xen.machine.bytes(mfn);
        rcs.push(pinTable(xen, dom, dom, mfn, PageType.L1));
        expect(xen.machine.isMaterialised(mfn)).to.equal(true);
      }
      expect(rcs[0]).to.equal(rcs[1]);
      expect(rcs[0]).to.not.equal(0); // pseudo-random words set disallowed bits
    });
  }

  for (const abi of ABIS) {
    it(`${abi.name}: a type reference on a frame that already has the type changes nothing and answers as a promotion would`, () => {
      const { xen, g } = bootedGuest(abi);
      const dom = g.binding.dom;
      const peer = buildDomain(xen, { abi: X86_64, memoryPages: 1100, maxPages: 1100 });
      const m = xen.machine;
      const snapshot = (mfn: number) => [m.pageType(mfn), m.isPinned(mfn), m.stampOf(mfn)];
      let checked = 0;
      for (let mfn = 0; mfn < 12000; mfn++) {
        const type = m.pageType(mfn);
        const owned = m.ownerOf(mfn) === dom.domid;
        if (type === PageType.None && mfn % 97 !== 0) continue; // typed frames, and a sample of the rest
        for (const level of [PageType.L1, PageType.L2, PageType.L3, PageType.L4]) {
          if (type !== level && type !== PageType.None) {
            expect(getTableType(xen, dom, dom, mfn, level), `mfn ${mfn} L${level}`).to.equal(-EINVAL);
            continue;
          }
          if (type !== level) continue; // promotions of untyped frames are the general path's (walk.test.ts)
          const before = snapshot(mfn);
          const want = !owned || (level === PageType.L2 && isPaeXenL2(xen, dom, mfn)) ? -EINVAL : 0;
          expect(getTableType(xen, dom, dom, mfn, level), `mfn ${mfn} L${level}`).to.equal(want);
          expect(snapshot(mfn)).to.deep.equal(before);
          checked++;
        }
      }
      expect(checked).to.be.greaterThan(10);
      // The peer's typed tables are not this domain's to reference.
      expect(getTableType(xen, dom, dom, peer.dom.baseptrMfn, abi === X86_64 ? PageType.L4 : PageType.L3)).to.equal(-EINVAL);
    });
  }

  it('array_access_ok from the first element equals the general address arithmetic', () => {
    const general = (base: bigint, first: bigint, size: number): boolean => {
      const addr = (base + first * BigInt(size)) & U64_MASK;
      return addr < 1n << 47n || addr >= 0xffff880000000000n;
    };
    const bases = [0n, 8n, (1n << 47n) - 8n, 1n << 47n, 0xffff87fffffffff8n, 0xffff880000000000n, U64_MASK, U64_MASK + 1n, U64_MASK + 0x1000n, -1n, -(1n << 64n), -(1n << 17n)];
    for (const base of bases) {
      for (const size of [4, 8, 16, 48]) {
        expect(nativeArrayAccessOk(base, 0n, 1n, size), `${base} ${size}`).to.equal(general(base, 0n, size));
        expect(nativeArrayAccessOk(base, 3n, 1n, size), `${base}+3 ${size}`).to.equal(general(base, 3n, size));
      }
    }
    expect(nativeArrayAccessOk(0x1000n, 0n, U64_MASK, 8)).to.equal(false);
  });

  for (const abi of ABIS) {
    it(`${abi.name}: copyToGuest within one page writes and faults as the page-by-page copy does`, () => {
      const { xen, g } = bootedGuest(abi);
      const dom = g.binding.dom;
      const va = g.built.scratchVa + BigInt(PAGE_SIZE - 16);
      const data = Uint8Array.from({ length: 24 }, (_, i) => i + 1);
      // 16 bytes fit the page; 24 cross into the next scratch page.
      expect(xen.copyToGuest(dom, va, data.subarray(0, 16))).to.equal(true);
      expect([...xen.copyFromGuest(dom, va, 16)!]).to.deep.equal([...data.subarray(0, 16)]);
      expect(xen.copyToGuest(dom, va, data)).to.equal(true);
      expect([...xen.copyFromGuest(dom, va, 24)!]).to.deep.equal([...data]);
      const unmapped = abi === X86_64 ? 0x0000700000000000n : 0x10000000n;
      expect(xen.translate(dom, unmapped, true)).to.equal(undefined);
      expect(xen.copyToGuest(dom, unmapped, data.subarray(0, 8))).to.equal(false);
      expect(xen.copyToGuest(dom, 1n << 64n, data.subarray(0, 8))).to.equal(false);
      expect(xen.copyToGuest(dom, va, new Uint8Array(0))).to.equal(true);
    });
  }
});
