/**
 * The number-based page-table walks and L1 promotion (xen-emu/xen.ts `translate`, pagetable.ts
 * `findGuestL1e`, `promoteTable`) against reference implementations written with BigInt entries, the
 * way Xen's C reads them: on booted guests of both ABIs (many tables, read-only mappings, shared
 * p2m pages, unmapped ranges) and on hostile input (non-canonical, negative and oversized VAs,
 * entries naming foreign, free, page-table, Xen heap and nonexistent frames).
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
  _PAGE_GLOBAL,
  _PAGE_NX,
  _PAGE_PCD,
  _PAGE_PSE,
  _PAGE_PWT,
  _PAGE_USER,
  type GuestAbi,
} from '../../abi/index.js';
import { buildDomain } from '../../xen-emu/builder.js';
import type { Domain } from '../../xen-emu/domain.js';
import { PageType } from '../../xen-emu/machine.js';
import { PAE_XEN_L2_FIRST_SLOT, _PAGE_GUEST_KERNEL, addrOk, findGuestL1e, pinTable } from '../../xen-emu/pagetable.js';
import { Xen, type Translation } from '../../xen-emu/xen.js';
import { PvGuest } from '../../guest-emu/guest.js';
import { entry, l1Targets } from './support/l1-fixture.js';
import { startInfoFlagsFor } from '../../guest-emu/variants.js';
import { Rng } from '../../xen-emu/rng.js';

const ABIS: readonly GuestAbi[] = [X86_32, X86_64];
const FRAME_MASK = 0x000ffffffffff000n;


/** The walk as it was written with BigInt shifts and entries (the reference). */
function referenceTranslate(xen: Xen, dom: Domain, va: bigint, write: boolean): Translation | undefined {
  if (dom.baseptrMfn < 0) return undefined;
  const compat = dom.isCompat;
  if (compat ? va > 0xffffffffn || va < 0n : va < 0n || va > 0xffffffffffffffffn) return undefined;
  if (!compat) {
    const top = va >> 47n;
    if (top !== 0n && top !== 0x1ffffn) return undefined;
  }
  let mfn = dom.baseptrMfn;
  const shifts = compat ? [30n, 21n, 12n] : [39n, 30n, 21n, 12n];
  for (let i = 0; i < shifts.length; i++) {
    const index = Number((va >> shifts[i]!) & (compat && i === 0 ? 3n : 511n));
    const pte = entry(xen, mfn, index);
    if ((pte & 1n) === 0n) return undefined;
    if (write && (pte & 2n) === 0n && !(compat && i === 0)) return undefined;
    const next = Number((pte & FRAME_MASK) >> 12n);
    if (!xen.machine.isValidMfn(next) || xen.machine.ownerOf(next) === undefined) return undefined;
    mfn = next;
  }
  return { mfn, offset: Number(va & 0xfffn) };
}

/** `map_guest_l1e` with BigInt entries (the reference). */
function referenceFindL1e(xen: Xen, d: Domain, va: bigint): { mfn: number; index: number } | undefined {
  if (d.baseptrMfn < 0) return undefined;
  if (d.isCompat ? va > 0xffffffffn : !addrOk(va)) return undefined;
  const shifts = d.isCompat ? [30n, 21n] : [39n, 30n, 21n];
  let mfn = d.baseptrMfn;
  for (let i = 0; i < shifts.length; i++) {
    const index = Number((va >> shifts[i]!) & (d.isCompat && i === 0 ? 3n : 511n));
    if (d.isCompat && i === 1 && index >= PAE_XEN_L2_FIRST_SLOT && Number((va >> 30n) & 3n) === 3) return undefined;
    const e = entry(xen, mfn, index);
    if ((e & 1n) === 0n) return undefined;
    if (i === shifts.length - 1 && (e & _PAGE_PSE) !== 0n) return undefined;
    const frame = (e & FRAME_MASK) >> 12n;
    mfn = frame < BigInt(xen.machine.maxPage) ? Number(frame) : -1;
    if (mfn < 0 || xen.machine.ownerOf(mfn) === undefined) return undefined;
  }
  return { mfn, index: Number((va >> 12n) & 511n) };
}

function bootedGuest(abi: GuestAbi): { xen: Xen; g: PvGuest } {
  const xen = new Xen({ maxPage: 1 << 15 });
  const built = buildDomain(xen, { abi, memoryPages: 6000, maxPages: 7000, flags: startInfoFlagsFor('linear') });
  const g = PvGuest.start(built, xen, { variant: 'linear', identityRanges: [{ start: 7200, end: 7300 }] });
  return { xen, g };
}

/** VAs worth walking: every page the guest's structures use, their neighbours, and hostile values. */
function interestingVas(g: PvGuest, rng: Rng): bigint[] {
  const vas: bigint[] = [];
  const page = BigInt(PAGE_SIZE);
  const around = (va: bigint): void => {
    for (const d of [-page, -8n, 0n, 8n, 0xff8n, page]) vas.push(va + d);
  };
  for (let slot = 0; slot < 8; slot++) around(g.mm.fixmapVa(slot));
  for (let pfn = 0; pfn < 7400; pfn += 37) {
    around(g.list.elementVa(pfn));
    if (g.mm.isLowmem(pfn)) around(g.mm.directVa(pfn));
  }
  around(g.built.virtBase);
  around(g.built.scratchVa);
  around(g.list.base + (1n << 30n));
  for (let i = 0; i < 2000; i++) vas.push((BigInt(rng.u32()) << 32n) | BigInt(rng.u32()));
  vas.push(-1n, -4096n, -(1n << 63n), 1n << 64n, (1n << 64n) + 4096n, 1n << 80n, 0x00007ffffffff000n, 0x0000800000000000n, 0xffff7ffffffff000n, 0xffff800000000000n, 0xffffffffffffffffn, 0xfffffffff000n, 0x100000000n, 0xfffff000n);
  return vas;
}

describe('xen-emu: number-based walks and promotion agree with the BigInt reference', () => {
  for (const abi of ABIS) {
    it(`${abi.name}: translate (read and write) and findGuestL1e on every interesting VA of a booted guest`, function () {
      this.timeout(30_000);
      const { xen, g } = bootedGuest(abi);
      const dom = g.binding.dom;
      // A few pages mapped read-only, so that write walks fail where read walks succeed.
      const vas = interestingVas(g, new Rng(7));
      let mapped = 0;
      let readOnly = 0;
      for (const va of vas) {
        for (const write of [false, true]) {
          const want = referenceTranslate(xen, dom, va, write);
          expect(xen.translate(dom, va, write), `${write ? 'write' : 'read'} 0x${va.toString(16)}`).to.deep.equal(want);
          if (want) mapped++;
        }
        if (referenceTranslate(xen, dom, va, false) && !referenceTranslate(xen, dom, va, true)) readOnly++;
        expect(findGuestL1e(xen, dom, va), `findGuestL1e 0x${va.toString(16)}`).to.deep.equal(referenceFindL1e(xen, dom, va));
      }
      expect(mapped).to.be.greaterThan(1000);
      expect(readOnly).to.be.greaterThan(10);
    });

    it(`${abi.name}: translate records the entries it read as mfn * 512 + index, top level first`, () => {
      const { xen, g } = bootedGuest(abi);
      const dom = g.binding.dom;
      const path: number[] = [];
      const t = xen.translate(dom, g.list.elementVa(1000), false, path)!;
      expect(path).to.have.length(abi === X86_64 ? 4 : 3);
      expect(path[0]).to.equal(dom.baseptrMfn * 512 + Number((g.list.elementVa(1000) >> (abi === X86_64 ? 39n : 30n)) & (abi === X86_64 ? 511n : 3n)));
      // The last entry read is the L1 entry mapping the page.
      const last = path[path.length - 1]!;
      expect(Number((entry(xen, Math.floor(last / 512), last % 512) & FRAME_MASK) >> 12n)).to.equal(t.mfn);
    });

    it(`${abi.name}: pinning an L1 of mixed entries gives the reference's rc and adjusted entries`, () => {
      const { xen, g } = bootedGuest(abi);
      const m = xen.machine;
      const { dom, own, peer, freeMfn, pinnedL1, pte, P, PRW } = l1Targets(xen, g);
      const good: bigint[] = [
        0n,
        pte(own(4000), PRW),
        pte(own(4001), P),
        pte(own(4002), PRW | _PAGE_USER),
        pte(own(4003), PRW | _PAGE_USER | _PAGE_GUEST_KERNEL),
        pte(own(4004), P | _PAGE_GUEST_KERNEL),
        pte(own(4005), PRW | _PAGE_NX),
        pte(own(4006), PRW | (0x7ffn << 52n) | (7n << 9n)),
        pte(pinnedL1, P | _PAGE_ACCESSED),
        pte(BigInt(dom.sharedInfoMfn), PRW),
        0xfffffffffffffffen, // not present: anything goes
      ];
      const bad: [bigint, number][] = [
        [pte(pinnedL1, PRW), -EBUSY],
        [pte(BigInt(peer.p2mEntry(100)), PRW), -EBUSY],
        [pte(BigInt(freeMfn), PRW), -EBUSY],
        [pte(BigInt(m.maxPage), PRW), -EPERM],
        [pte((1n << 40n) - 1n, PRW), -EINVAL],
        [pte(own(4007), PRW | _PAGE_PWT), -EINVAL],
        [pte(own(4007), PRW | _PAGE_PCD), -EINVAL],
        [pte(own(4007), PRW | _PAGE_PSE), -EINVAL],
        [pte(own(4007), PRW | _PAGE_GLOBAL), 0],
      ];
      const adjust = (e: bigint): bigint => {
        if ((e & 1n) === 0n || abi === X86_32) return e;
        let v = e;
        if ((v & _PAGE_USER) === 0n) v |= _PAGE_GUEST_KERNEL | _PAGE_USER;
        if ((v & _PAGE_GUEST_KERNEL) === 0n) v |= _PAGE_GLOBAL | _PAGE_USER;
        return v;
      };
      for (const [last, rc] of [[0n, 0] as [bigint, number], ...bad]) {
        const pfn = g.allocKernelPage('walk test L1');
        const mfn = Number(own(pfn));
        const entries = [...good, last];
        const bytes = m.bytes(mfn);
        const view = new DataView(bytes.buffer, bytes.byteOffset, PAGE_SIZE);
        bytes.fill(0);
        // Spread over the table: the adjusted span is written back in one store.
        entries.forEach((e, i) => view.setBigUint64((i * 37) % 512 * 8, e, true));
        expect(pinTable(xen, dom, dom, mfn, PageType.L1), `last entry 0x${last.toString(16)}`).to.equal(rc);
        const order = entries.map((e, i) => ({ e, slot: (i * 37) % 512 })).sort((a, b) => a.slot - b.slot);
        const failedAt = rc === 0 ? Infinity : order.findIndex((x) => x.e === last);
        order.forEach((x, k) => expect(view.getBigUint64(x.slot * 8, true), `slot ${x.slot}`).to.equal(k < failedAt ? adjust(x.e) : x.e));
        expect(m.pageType(mfn)).to.equal(rc === 0 ? PageType.L1 : PageType.None);
      }
    });
  }
});
