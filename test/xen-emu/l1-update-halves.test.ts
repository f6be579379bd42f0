/**
 * `modL1Entry` (every update_va_mapping and MMU_NORMAL_PT_UPDATE of an L1 entry) and `storeWord`
 * compute on 32-bit halves of the entries; here they are checked against the BigInt arithmetic
 * they replaced: Xen's adjustments, the disallow mask, the fast path, PRESERVE_AD, the errno of
 * every refusal (foreign, free, page-table, nonexistent and INVALID frames), values with high
 * bits (NX, available bits) or out of the 64-bit range, and the store events observers see.
 */

import { expect } from 'chai';
import {
  EBUSY,
  EINVAL,
  EPERM,
  PAGE_SIZE,
  X86_32,
  X86_64,
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_GLOBAL,
  _PAGE_NX,
  _PAGE_PCD,
  _PAGE_PSE,
  _PAGE_PWT,
  _PAGE_USER,
  type GuestAbi,
} from '../../abi/index.js';
import { buildDomain } from '../../xen-emu/builder.js';
import { PageType } from '../../xen-emu/machine.js';
import { _PAGE_GUEST_KERNEL, modL1Entry, pinTable } from '../../xen-emu/pagetable.js';
import { Xen } from '../../xen-emu/xen.js';
import { PvGuest } from '../../guest-emu/guest.js';
import { entry, l1Targets } from './support/l1-fixture.js';
import { startInfoFlagsFor } from '../../guest-emu/variants.js';

const U64 = (1n << 64n) - 1n;


function bootedGuest(abi: GuestAbi): { xen: Xen; g: PvGuest } {
  const xen = new Xen({ maxPage: 1 << 15 });
  const built = buildDomain(xen, { abi, memoryPages: 9000, maxPages: 9000, flags: startInfoFlagsFor('linear') });
  const g = PvGuest.start(built, xen, { variant: 'linear' });
  return { xen, g };
}

describe('xen-emu: L1 entry updates and word stores on 32-bit halves agree with BigInt arithmetic', () => {
  for (const abi of [X86_32, X86_64]) {
    it(`${abi.name}: modL1Entry's rc, stored entry and store event match the BigInt reference`, () => {
      const { xen, g } = bootedGuest(abi);
      const m = xen.machine;
      const { dom, own, peer, freeMfn, pinnedL1, pte, P, PRW } = l1Targets(xen, g);
      // [new value, expected rc when validated]
      const cases: [bigint, number][] = [
        [0n, 0],
        [pte(own(4000), PRW), 0],
        [pte(own(4000), P), 0], // same frame: the fast path (RW differs: validated, allowed)
        [pte(own(4000), PRW), 0], // same frame and attributes: not validated
        [pte(own(4000), PRW | _PAGE_PWT), -EINVAL], // the disallow mask comes before the fast path
        [pte(own(4001), P), 0],
        [pte(own(4002), PRW | _PAGE_USER), 0],
        [pte(own(4003), PRW | _PAGE_USER | _PAGE_GUEST_KERNEL), 0],
        [pte(own(4004), P | _PAGE_GUEST_KERNEL), 0],
        [pte(own(4005), PRW | _PAGE_NX), 0],
        [pte(own(4006), PRW | (0x7ffn << 52n) | (7n << 9n)), 0],
        [pte(pinnedL1, P | _PAGE_ACCESSED), 0],
        [pte(BigInt(dom.sharedInfoMfn), PRW), 0],
        [0xfffffffffffffffen, 0], // not present: anything goes
        [-2n, 0], // beyond the 64-bit range (two's complement), not present
        [-(1n << 63n) + pte(own(4008), PRW), 0], // a negative BigInt whose bit 63 is NX
        [(1n << 64n) + pte(own(4009), PRW), 0], // bits above 63 are dropped by the store
        [pte(pinnedL1, PRW), -EBUSY],
        [pte(BigInt(peer.p2mEntry(100)), PRW), -EBUSY],
        [pte(BigInt(freeMfn), PRW), -EBUSY],
        [pte(BigInt(m.maxPage), PRW), -EPERM],
        [pte((1n << 40n) - 1n, PRW), -EINVAL],
        [pte(own(4007), PRW | _PAGE_PWT), -EINVAL],
        [pte(own(4007), PRW | _PAGE_PCD), -EINVAL],
        [pte(own(4007), PRW | _PAGE_PSE), -EINVAL],
        [pte(own(4007), PRW | _PAGE_GLOBAL), 0],
        [-1n, -EINVAL],
      ];
      const adjust = (e: bigint): bigint => {
        if ((e & 1n) === 0n || abi === X86_32) return e;
        let v = e;
        if ((v & _PAGE_USER) === 0n) v |= _PAGE_GUEST_KERNEL | _PAGE_USER;
        if ((v & _PAGE_GUEST_KERNEL) === 0n) v |= _PAGE_GLOBAL | _PAGE_USER;
        return v;
      };
      const pfn = g.allocKernelPage('halves test L1');
      const mfn = Number(own(pfn));
      m.bytes(mfn).fill(0);
      expect(pinTable(xen, dom, dom, mfn, PageType.L1)).to.equal(0);
      const stores: { value?: bigint; offset: number; length: number }[] = [];
      const stop = xen.events.subscribe((e) => {
        if (e.type === 'store') stores.push({ value: (e as { value?: bigint }).value, offset: e.offset, length: e.length });
      });
      const oldEntry = pte(own(4000), PRW | _PAGE_DIRTY | _PAGE_USER);
      let index = 3;
      for (const preserveAd of [false, true]) {
        for (const [value, rc] of cases) {
          // Each case replaces an entry with A and D set that maps own(4000): the fast path's "same frame".
          index = (index + 1) % 512;
          expect(modL1Entry({ xen, caller: dom, ptOwner: dom, pgOwner: dom, mfn, index, value: oldEntry, preserveAd: false })).to.equal(0);
          const old = entry(xen, mfn, index);
          expect(old).to.equal(adjust(oldEntry));
          stores.length = 0;
          const got = modL1Entry({ xen, caller: dom, ptOwner: dom, pgOwner: dom, mfn, index, value, preserveAd });
          const what = `0x${value.toString(16)} preserveAd=${preserveAd}`;
          expect(got, what).to.equal(rc);
          if (rc !== 0) {
            expect(entry(xen, mfn, index), what).to.equal(old);
            expect(stores, what).to.deep.equal([]);
            continue;
          }
          const written = BigInt.asUintN(64, (preserveAd ? adjust(value) | (old & (_PAGE_ACCESSED | _PAGE_DIRTY)) : adjust(value)) & U64);
          expect(entry(xen, mfn, index), what).to.equal(written);
          expect(stores, what).to.deep.equal([{ value: written, offset: index * 8, length: 8 }]);
        }
      }
      stop();
    });
  }

  it('storeWord stores and reports every value as BigInt masking does, at both widths', () => {
    const { xen, g } = bootedGuest(X86_64);
    const mfn = Number(g.mfnOf(g.allocKernelPage('storeWord test')));
    const values = [0n, 1n, 0xffffffffn, 0x100000000n, 0x1fffffffffffffn, 0x20000000000000n, 0x8000000000000067n, U64, 1n << 64n, (1n << 64n) + 5n, -1n, -2n, -(1n << 40n), -(1n << 70n) + 3n];
    const events: (bigint | undefined)[] = [];
    const stop = xen.events.subscribe((e) => {
      if (e.type === 'store') events.push((e as { value?: bigint }).value);
    });
    for (const width of [4, 8] as const) {
      for (const value of values) {
        events.length = 0;
        xen.storeWord({ domid: 0, by: 'xen' }, mfn, 16, value, width);
        const page = xen.machine.bytes(mfn);
        const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
        const stored = width === 8 ? view.getBigUint64(16, true) : BigInt(view.getUint32(16, true));
        const expected = BigInt.asUintN(width * 8, value);
        expect(stored, `${width} 0x${value.toString(16)}`).to.equal(expected);
        expect(events, `${width} 0x${value.toString(16)}`).to.deep.equal([expected]);
      }
    }
    stop();
    // Unobserved stores store the same bytes.
    xen.storeWord({ domid: 0, by: 'xen' }, mfn, 24, -(1n << 40n), 8);
    const page = xen.machine.bytes(mfn);
    expect(new DataView(page.buffer, page.byteOffset, PAGE_SIZE).getBigUint64(24, true)).to.equal(BigInt.asUintN(64, -(1n << 40n)));
  });
});
