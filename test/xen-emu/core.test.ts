/**
 * The emulated Xen's core: machine frames (machine.ts), the store choke point, guest virtual memory
 * and hypercall dispatch (xen.ts), logdirty (logdirty.ts) and the event bus (events.ts). Page tables
 * here are built by hand (not by the domain builder) so that translation is tested on its own.
 */

import { expect } from 'chai';
import {
  EFAULT,
  EINVAL,
  ENOSYS,
  ESRCH,
  PAGE_SIZE,
  X86_32,
  X86_64,
  XENMEM_maximum_ram_page,
  __HYPERVISOR_memory_op,
  type GuestAbi,
} from '../../abi/index.js';
import { INVALID_M2P, LogDirty, Machine, Xen, fillFromStamp, type Domain, type Writer, type XenEvent } from '../../xen-emu/index.js';

const ABIS: readonly GuestAbi[] = [X86_32, X86_64];
const BUILDER = (dom: Domain): Writer => ({ domid: dom.domid, by: 'builder' });

/** An unused hypercall number (none of Xen's is this high). */
const UNKNOWN_HYPERCALL = 63;

/**
 * Maps `va` → `mfn` in `dom`'s page tables, creating the top table and intermediate tables as
 * needed (frames owned by `dom`): 4 levels on x86_64, PAE 3 levels on x86_32, MFNs in entries.
 */
function mapPage(xen: Xen, dom: Domain, va: bigint, mfn: number, rw = true): void {
  const w = BUILDER(dom);
  if (dom.baseptrMfn < 0) dom.baseptrMfn = xen.machine.allocFrame(dom.domid)!;
  const compat = dom.isCompat;
  const shifts = compat ? [30n, 21n] : [39n, 30n, 21n];
  let table = dom.baseptrMfn;
  shifts.forEach((shift, i) => {
    const index = Number((va >> shift) & (compat && i === 0 ? 3n : 511n));
    const page = xen.machine.bytes(table);
    const entry = new DataView(page.buffer, page.byteOffset, PAGE_SIZE).getBigUint64(index * 8, true);
    if ((entry & 1n) === 0n) {
      const next = xen.machine.allocFrame(dom.domid)!;
      xen.storeWord(w, table, index * 8, (BigInt(next) << 12n) | 0x67n, 8);
      table = next;
    } else {
      table = Number((entry & 0x000ffffffffff000n) >> 12n);
    }
  });
  const index = Number((va >> 12n) & 511n);
  xen.storeWord(w, table, index * 8, (BigInt(mfn) << 12n) | (rw ? 0x23n : 0x21n), 8);
}

/** A domain with `pages` data frames (pfn i at m2p i) mapped at `base`, page by page. */
function domainWithPages(abi: GuestAbi, pages: number, base: bigint, maxPage = 4096): { xen: Xen; dom: Domain; mfns: number[] } {
  const xen = new Xen({ maxPage });
  const dom = xen.createDomain({ abi, maxPages: 1024 });
  const mfns: number[] = [];
  for (let pfn = 0; pfn < pages; pfn++) {
    const mfn = xen.machine.allocFrame(dom.domid)!;
    xen.setM2p(mfn, pfn);
    dom.totPages++;
    mfns.push(mfn);
    mapPage(xen, dom, base + BigInt(pfn * PAGE_SIZE), mfn);
  }
  return { xen, dom, mfns };
}

const baseOf = (abi: GuestAbi): bigint => (abi.wordSize === 8 ? 0xffff880000000000n : 0xc0000000n);

describe('xen-emu/machine: allocation', () => {
  it('conserves frames across allocations and frees (free + used = max_page) and never gives one frame two owners', () => {
    const m = new Machine({ maxPage: 300 });
    const owner = new Map<number, number>();
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let step = 0; step < 2000; step++) {
      if (rnd(3) > 0) {
        const domid = rnd(4);
        const mfn = m.allocFrame(domid);
        if (mfn === undefined) {
          expect(owner.size).to.equal(300);
          continue;
        }
        expect(owner.has(mfn), `mfn ${mfn} handed out twice`).to.equal(false);
        owner.set(mfn, domid);
      } else if (owner.size > 0) {
        const mfns = [...owner.keys()];
        const mfn = mfns[rnd(mfns.length)]!;
        m.freeFrame(mfn);
        owner.delete(mfn);
        expect(m.m2pOf(mfn)).to.equal(INVALID_M2P);
      }
      expect(m.usedFrames + m.freeFrames).to.equal(300);
      expect(m.usedFrames).to.equal(owner.size);
    }
    for (let mfn = 0; mfn < 300; mfn++) expect(m.ownerOf(mfn)).to.equal(owner.get(mfn));
  });

  it('throws on a double free and on reassigning a free frame (internal bugs)', () => {
    const m = new Machine({ maxPage: 8 });
    const mfn = m.allocFrame(1)!;
    m.freeFrame(mfn);
    expect(() => m.freeFrame(mfn)).to.throw(/double free/);
    expect(() => m.reassign(mfn, 2)).to.throw(/free/);
    expect(m.usedFrames).to.equal(0);
  });

  it('gives a reused frame a clean state: zero bytes, invalid m2p, no type, not pinned', () => {
    const m = new Machine({ maxPage: 1 });
    const mfn = m.allocFrame(0)!;
    m.bytes(mfn).fill(0xaa);
    m.setM2p(mfn, 5);
    m.setPageType(mfn, 1);
    m.setPinned(mfn, true);
    m.freeFrame(mfn);
    expect(m.allocFrame(3)).to.equal(mfn);
    expect(m.ownerOf(mfn)).to.equal(3);
    expect(m.bytes(mfn).every((b) => b === 0)).to.equal(true);
    expect(m.m2pOf(mfn)).to.equal(INVALID_M2P);
    expect(m.pageType(mfn)).to.equal(0);
    expect(m.isPinned(mfn)).to.equal(false);
  });

  it('keeps frames in different metadata chunks apart, and refuses a metadata write outside the machine (an internal bug)', () => {
    // Chunks hold 65536 frames; a frame number past 2^32 still lands in its own chunk.
    const m = new Machine({ maxPage: 2 ** 32 + 2 ** 17 });
    const far = 2 ** 32 + 5;
    m.setM2p(far, 7);
    m.setPageType(far, 2);
    m.setStamp(far, 0x1234);
    expect([m.m2pOf(far), m.pageType(far), m.stampOf(far)]).to.deep.equal([7, 2, 0x1234]);
    for (const other of [5, 2 ** 16 + 5, far - 2 ** 16, far + 1]) {
      expect([m.m2pOf(other), m.pageType(other), m.stampOf(other)], `mfn 0x${other.toString(16)}`).to.deep.equal([INVALID_M2P, 0, 0]);
    }
    expect(m.ownerOf(-1)).to.equal(undefined);
    expect(m.m2pOf(-1)).to.equal(INVALID_M2P);
    expect(() => m.setM2p(m.maxPage, 1)).to.throw(RangeError, /mfn 0x100020000 outside/);
    expect(() => m.setPageType(-1, 1)).to.throw(RangeError, /mfn -1 outside/);
  });

  it('drops bytes materialised on a never-allocated frame when it is first allocated', () => {
    const m = new Machine({ maxPage: 4 });
    m.bytes(0).fill(0x55); // someone read (and scribbled on) a frame nobody owns
    expect(m.allocFrame(0)).to.equal(0);
    expect(m.bytes(0).every((b) => b === 0)).to.equal(true);
  });

  for (const order of [1, 3, 9]) {
    it(`allocExtent(order ${order}) returns ${2 ** order} contiguous, naturally aligned frames, all owned`, () => {
      const m = new Machine({ maxPage: 4096 });
      m.allocFrame(0); // misalign the high-water mark
      const base = m.allocExtent(1, order)!;
      expect(base % 2 ** order).to.equal(0);
      for (let i = 0; i < 2 ** order; i++) expect(m.ownerOf(base + i)).to.equal(1);
      expect(m.usedFrames).to.equal(1 + 2 ** order);
      expect(m.ownerOf(base + 2 ** order)).to.equal(undefined);
    });
  }

  it('allocExtent finds an aligned run among freed frames when the top of the machine is used', () => {
    const m = new Machine({ maxPage: 16 });
    for (let i = 0; i < 16; i++) m.allocFrame(0);
    for (const mfn of [5, 8, 9, 10, 11, 13]) m.freeFrame(mfn);
    expect(m.allocExtent(2, 2)).to.equal(8);
    expect(m.allocExtent(2, 2)).to.equal(undefined);
    expect(m.allocExtent(2, 1)).to.equal(undefined); // 5 and 13 are not an aligned pair
    expect(m.allocFrame(2)).to.not.equal(undefined);
    expect(m.usedFrames).to.equal(15);
  });

  it('never allocates at or above the limit: allocFrame and allocExtent return undefined instead', () => {
    const m = new Machine({ maxPage: 64 });
    const got: number[] = [];
    for (;;) {
      const mfn = m.allocFrame(0, 10);
      if (mfn === undefined) break;
      got.push(mfn);
    }
    expect(got.sort((a, b) => a - b)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(m.allocExtent(0, 2, 12)).to.equal(undefined);
    m.freeFrame(3);
    expect(m.allocFrame(0, 10)).to.equal(3);
    expect(m.allocFrame(0)).to.equal(10);
  });
});

describe('xen-emu/machine: content stamps and bytes', () => {
  it('reads a stamped page byte-wise the same way every time, and materialising keeps those bytes', () => {
    const m = new Machine({ maxPage: 4 });
    const mfn = m.allocFrame(0)!;
    m.setStamp(mfn, 0xdeadbeef);
    expect(m.stampOf(mfn)).to.equal(0xdeadbeef);
    const expected = new Uint8Array(PAGE_SIZE);
    fillFromStamp(expected, 0xdeadbeef);
    const first = m.bytes(mfn).slice();
    expect(first).to.deep.equal(expected);
    expect(m.isMaterialised(mfn)).to.equal(true);
    expect(m.stampOf(mfn)).to.equal(undefined);
    expect(m.bytes(mfn)).to.deep.equal(first);
  });

  it('gives different stamps different bytes, and stamp 0 a zero page', () => {
    const pages = [1, 2, 0x80000000, 0xffffffff].map((stamp) => {
      const p = new Uint8Array(PAGE_SIZE);
      fillFromStamp(p, stamp);
      return Buffer.from(p).toString('hex');
    });
    expect(new Set(pages).size).to.equal(4);
    const zero = new Uint8Array(PAGE_SIZE).fill(9);
    fillFromStamp(zero, 0);
    expect(zero.every((b) => b === 0)).to.equal(true);
  });

  it('replaces materialised bytes when a new stamp is stored, and a partial store keeps the stamp-derived rest', () => {
    const xen = new Xen({ maxPage: 16 });
    const dom = xen.createDomain({ abi: X86_64, maxPages: 4 });
    const mfn = xen.machine.allocFrame(dom.domid)!;
    xen.storeBytes(BUILDER(dom), mfn, 0, new Uint8Array([1, 2, 3]));
    xen.storeStamp(BUILDER(dom), mfn, 42);
    expect(xen.machine.stampOf(mfn)).to.equal(42);
    xen.storeBytes(BUILDER(dom), mfn, 8, new Uint8Array([0xee]));
    const expected = new Uint8Array(PAGE_SIZE);
    fillFromStamp(expected, 42);
    expected[8] = 0xee;
    expect(xen.machine.bytes(mfn)).to.deep.equal(expected);
  });

  it('refuses a store that crosses the end of a frame (an internal bug)', () => {
    const xen = new Xen({ maxPage: 16 });
    const dom = xen.createDomain({ abi: X86_64, maxPages: 4 });
    expect(() => xen.storeBytes(BUILDER(dom), dom.sharedInfoMfn, 4095, new Uint8Array(2))).to.throw(RangeError);
    expect(() => xen.storeWord(BUILDER(dom), dom.sharedInfoMfn, 4092, 1n, 8)).to.throw(RangeError);
  });
});

describe('xen-emu/xen: domains and the compat clamp', () => {
  it('clamps x86_32 allocations below compatMaxMfn and leaves x86_64 unclamped', () => {
    const xen = new Xen({ maxPage: 4096, compatMaxMfn: 100 });
    const d32 = xen.createDomain({ abi: X86_32, maxPages: 4096 });
    const d64 = xen.createDomain({ abi: X86_64, maxPages: 4096 });
    expect(xen.allocLimit(d32)).to.equal(100);
    expect(xen.allocLimit(d64)).to.equal(4096);
    const got: number[] = [];
    for (;;) {
      const mfn = xen.machine.allocFrame(d32.domid, xen.allocLimit(d32));
      if (mfn === undefined) break;
      got.push(mfn);
    }
    expect(Math.max(...got)).to.be.below(100);
    expect(xen.machine.allocFrame(d64.domid, xen.allocLimit(d64))).to.be.at.least(100);
  });

  it("defaults the compat clamp as Xen: 2^25 frames once the machine outgrows the compat m2p's 0x2980000 entries", () => {
    const small = new Xen({ maxPage: 0x2980000 });
    const big = new Xen({ maxPage: 0x2980001 });
    expect(small.allocLimit(small.createDomain({ abi: X86_32, maxPages: 1 }))).to.equal(0x2980000);
    expect(big.allocLimit(big.createDomain({ abi: X86_32, maxPages: 1 }))).to.equal(2 ** 25);
  });

  it('gives an x86_32 domain a shared_info frame below 4 GiB even when a higher free frame would be reused first', () => {
    const xen = new Xen({ maxPage: (1 << 20) + 64 });
    const hog = xen.createDomain({ abi: X86_64, maxPages: 1 << 21 });
    const above = (1 << 20) + 3; // machine address 4 GiB + 12 KiB
    while (xen.machine.ownerOf(above) === undefined) xen.machine.allocFrame(hog.domid);
    xen.machine.freeFrame(5);
    xen.machine.freeFrame(above); // now the top of the free stack
    const d32 = xen.createDomain({ abi: X86_32, maxPages: 16 });
    expect(d32.sharedInfoMfn).to.equal(5);
    const d64 = xen.createDomain({ abi: X86_64, maxPages: 16 });
    expect(d64.sharedInfoMfn).to.equal(above);
  });

  it('destroys a domain: every frame it owned is free with an invalid m2p, and it answers -ESRCH', () => {
    const { xen, dom, mfns } = domainWithPages(X86_64, 4, baseOf(X86_64));
    const before = xen.machine.usedFrames;
    expect(before).to.be.above(4);
    xen.destroyDomain(dom.domid);
    expect(xen.machine.usedFrames).to.equal(0);
    for (const mfn of [...mfns, dom.sharedInfoMfn]) {
      expect(xen.machine.ownerOf(mfn)).to.equal(undefined);
      expect(xen.machine.m2pOf(mfn)).to.equal(INVALID_M2P);
    }
    expect(xen.hypercall(dom.domid, UNKNOWN_HYPERCALL)).to.equal(BigInt(-ESRCH));
    expect(() => xen.destroyDomain(dom.domid)).to.throw(/no domain/);
  });

  it('refuses a domid in use and a reserved domid (internal bugs)', () => {
    const xen = new Xen({ maxPage: 64 });
    xen.createDomain({ abi: X86_64, maxPages: 1, domid: 3 });
    expect(() => xen.createDomain({ abi: X86_64, maxPages: 1, domid: 3 })).to.throw(/exists/);
    expect(() => xen.createDomain({ abi: X86_64, maxPages: 1, domid: 0x7ff0 })).to.throw(/reserved/);
    expect(xen.createDomain({ abi: X86_64, maxPages: 1 }).domid).to.equal(0);
  });
});

describe('xen-emu/xen: translation and guest copies', () => {
  for (const abi of ABIS) {
    const base = baseOf(abi);

    it(`translates a mapped VA to its frame and offset, and refuses a write through a read-only entry, on ${abi.name}`, () => {
      const { xen, dom, mfns } = domainWithPages(abi, 2, base);
      expect(xen.translate(dom, base + 0x123n)).to.deep.equal({ mfn: mfns[0], offset: 0x123 });
      expect(xen.translate(dom, base + 0x1fffn, true)).to.deep.equal({ mfn: mfns[1], offset: 0xfff });
      const ro = xen.machine.allocFrame(dom.domid)!;
      mapPage(xen, dom, base + 0x10000n, ro, false);
      expect(xen.translate(dom, base + 0x10000n)?.mfn).to.equal(ro);
      expect(xen.translate(dom, base + 0x10000n, true)).to.equal(undefined);
      expect(xen.guestStoreWord(dom, base + 0x10000n, 1n, 4)).to.equal(-EFAULT);
    });

    it(`gives undefined for unmapped VAs, VAs outside the guest's range, and a domain without page tables, on ${abi.name}`, () => {
      const { xen, dom } = domainWithPages(abi, 1, base);
      expect(xen.translate(dom, base + 0x1000n)).to.equal(undefined); // next page: L1 entry not present
      expect(xen.translate(dom, base + 0x40000000n)).to.equal(undefined); // no L2 there
      expect(xen.translate(dom, -1n)).to.equal(undefined);
      if (abi.wordSize === 8) {
        expect(xen.translate(dom, 0x0000800000000000n)).to.equal(undefined); // non-canonical
        expect(xen.translate(dom, 0x1_0000_0000_0000_0000n)).to.equal(undefined);
        // Dropping bits 63..48 of a mapped canonical VA gives a different, non-canonical VA.
        expect(xen.translate(dom, base & 0x0000ffffffffffffn)).to.equal(undefined);
      } else {
        expect(xen.translate(dom, 0x1_0000_0000n + base)).to.equal(undefined); // beyond 32 bits
      }
      const bare = xen.createDomain({ abi, maxPages: 1 });
      expect(xen.translate(bare, base)).to.equal(undefined);
    });

    it(`refuses a PTE naming a free frame, on ${abi.name}`, () => {
      const { xen, dom } = domainWithPages(abi, 1, base);
      const gone = xen.machine.allocFrame(dom.domid)!;
      mapPage(xen, dom, base + 0x2000n, gone);
      expect(xen.translate(dom, base + 0x2000n)?.mfn).to.equal(gone);
      xen.machine.freeFrame(gone);
      expect(xen.translate(dom, base + 0x2000n)).to.equal(undefined);
    });

    it(`copyFromGuest across a page boundary reads both pages, and is undefined when the second page is unmapped, on ${abi.name}`, () => {
      const { xen, dom } = domainWithPages(abi, 2, base);
      const data = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
      expect(xen.copyToGuest(dom, base + 0xff8n, data)).to.equal(true);
      expect(xen.copyFromGuest(dom, base + 0xff8n, 16)).to.deep.equal(data);
      expect(xen.copyFromGuest(dom, base + 0x1ff8n, 16)).to.equal(undefined);
      expect(xen.copyFromGuest(dom, base + 0x1ff8n, 8)).to.deep.equal(new Uint8Array(8));
    });

    it(`copyToGuest stops at the faulting page but keeps the bytes before it, on ${abi.name}`, () => {
      const { xen, dom, mfns } = domainWithPages(abi, 1, base);
      const data = new Uint8Array(16).fill(0xab);
      expect(xen.copyToGuest(dom, base + 0xff8n, data)).to.equal(false);
      expect(Array.from(xen.machine.bytes(mfns[0]!).subarray(0xff8))).to.deep.equal(new Array(8).fill(0xab));
    });

    it(`a guest store that straddles into an unmapped page is -EFAULT and writes nothing, on ${abi.name}`, () => {
      const { xen, dom, mfns } = domainWithPages(abi, 1, base);
      expect(xen.guestStore(dom, base + 0xffcn, new Uint8Array(8).fill(1))).to.equal(-EFAULT);
      expect(xen.machine.bytes(mfns[0]!).subarray(0xffc).every((b) => b === 0)).to.equal(true);
      expect(xen.guestStorePage(dom, base + 0x1000n, 5)).to.equal(-EFAULT);
      expect(xen.guestStorePage(dom, base, 5)).to.equal(0);
      expect(xen.machine.stampOf(mfns[0]!)).to.equal(5);
    });

    it(`guest word stores and loads round-trip at guest addresses, on ${abi.name}`, () => {
      const { xen, dom } = domainWithPages(abi, 1, base);
      expect(xen.guestStoreWord(dom, base + 8n, 0x1122334455667788n, 8)).to.equal(0);
      expect(xen.guestLoadWord(dom, base + 8n, 8)).to.equal(0x1122334455667788n);
      expect(xen.guestLoadWord(dom, base + 12n, 4)).to.equal(0x11223344n);
      expect(xen.guestLoadWord(dom, base + 0x1000n, 4)).to.equal(undefined);
      expect(() => xen.guestStoreWord(dom, base + 2n, 1n, 4)).to.throw(RangeError);
    });
  }
});

describe('xen-emu/xen: the store choke point and logdirty', () => {
  it('marks the pfn the m2p names at the instant of the store: change the m2p, store again, the other pfn is dirty', () => {
    const { xen, dom, mfns } = domainWithPages(X86_64, 1, baseOf(X86_64));
    dom.logdirty.enable();
    const mfn = mfns[0]!;
    expect(xen.guestStoreWord(dom, baseOf(X86_64), 1n, 8)).to.equal(0);
    expect(dom.logdirty.isDirty(0)).to.equal(true);
    dom.logdirty.clean(64);
    xen.setM2p(mfn, 37);
    expect(xen.guestStoreWord(dom, baseOf(X86_64), 2n, 8)).to.equal(0);
    expect(dom.logdirty.isDirty(37)).to.equal(true);
    expect(dom.logdirty.isDirty(0)).to.equal(false);
    // A frame with an invalid m2p entry dirties nothing (shared_info).
    xen.storeWord(BUILDER(dom), dom.sharedInfoMfn, 0, 1n, 4);
    expect(dom.logdirty.count()).to.equal(1);
  });

  it("marks the frame owner's bitmap when Xen writes on another domain's behalf, and nothing while logdirty is off", () => {
    const xen = new Xen({ maxPage: 64 });
    const a = xen.createDomain({ abi: X86_64, maxPages: 8 });
    const b = xen.createDomain({ abi: X86_32, maxPages: 8 });
    const mfn = xen.machine.allocFrame(b.domid)!;
    xen.setM2p(mfn, 3);
    xen.storeBytes({ domid: a.domid, by: 'xen' }, mfn, 0, new Uint8Array(4));
    expect(b.logdirty.count()).to.equal(0);
    b.logdirty.enable();
    a.logdirty.enable();
    xen.storeStamp({ domid: a.domid, by: 'xen' }, mfn, 9);
    expect(b.logdirty.isDirty(3)).to.equal(true);
    expect(a.logdirty.count()).to.equal(0);
  });

  it('logdirty peek leaves bits set, clean returns them then clears; disable forgets everything', () => {
    const ld = new LogDirty();
    ld.enable();
    for (const pfn of [0, 31, 32, 100]) ld.mark(pfn);
    const peek = ld.peek(128);
    expect(Array.from(peek)).to.deep.equal([0x80000001, 1, 0, 1 << 4]);
    expect(ld.count()).to.equal(4);
    expect(Array.from(ld.clean(128))).to.deep.equal(Array.from(peek));
    expect(ld.count()).to.equal(0);
    ld.mark(5);
    ld.disable();
    expect(ld.isDirty(5)).to.equal(false);
    ld.mark(6);
    expect(ld.count()).to.equal(0);
  });

  it('logdirty peek reports whole bytes as Xen copies them; bits beyond that are cut', () => {
    const ld = new LogDirty();
    ld.enable();
    ld.mark(9);
    ld.mark(15);
    ld.mark(16);
    expect(Array.from(ld.peek(10))).to.deep.equal([(1 << 9) | (1 << 15)]);
  });

  it('logdirty clean clears whole 32768-pfn leaves up to the requested size, as Xen does; later leaves stay dirty', () => {
    const ld = new LogDirty();
    ld.enable();
    for (const pfn of [1, 40000, 70000]) ld.mark(pfn);
    ld.clean(2);
    expect(ld.isDirty(1)).to.equal(false);
    expect(ld.isDirty(40000)).to.equal(true);
    ld.clean(32769);
    expect(ld.isDirty(40000)).to.equal(false);
    expect(ld.isDirty(70000)).to.equal(true);
    ld.clean(0);
    expect(ld.isDirty(70000)).to.equal(true);
  });

  it('logdirty grows to any 32-bit pfn and still counts exactly', () => {
    const ld = new LogDirty();
    ld.enable();
    ld.mark(0x3fffff);
    ld.mark(31);
    expect(ld.isDirty(0x3fffff)).to.equal(true);
    expect(ld.size).to.be.at.least(0x400000);
    expect(ld.count()).to.equal(2);
  });
});

describe('xen-emu/events', () => {
  it('delivers store, m2p and hypercall events to a subscriber, and none after it unsubscribes', () => {
    const { xen, dom, mfns } = domainWithPages(X86_64, 1, baseOf(X86_64));
    const seen: XenEvent[] = [];
    expect(xen.events.active).to.equal(false);
    const off = xen.events.subscribe((e) => seen.push(e));
    expect(xen.events.active).to.equal(true);
    xen.guestStoreWord(dom, baseOf(X86_64) + 16n, 0xabcn, 8);
    xen.setM2p(mfns[0]!, 9);
    xen.hypercall(dom.domid, UNKNOWN_HYPERCALL, 1n, 2n);
    expect(seen).to.deep.equal([
      { type: 'store', domid: dom.domid, writer: dom.domid, by: 'guest', mfn: mfns[0], pfn: 0, offset: 16, length: 8, value: 0xabcn },
      { type: 'm2p', mfn: mfns[0], oldPfn: 0, newPfn: 9 },
      { type: 'hypercall', domid: dom.domid, nr: UNKNOWN_HYPERCALL, args: [1n, 2n, 0n, 0n, 0n], result: BigInt(-ENOSYS) },
    ]);
    off();
    expect(xen.events.active).to.equal(false);
    xen.guestStoreWord(dom, baseOf(X86_64) + 16n, 1n, 8);
    xen.setM2p(mfns[0]!, 0);
    xen.hypercall(dom.domid, UNKNOWN_HYPERCALL);
    expect(seen.length).to.equal(3);
  });

  it('reports a word store with the value as stored in memory (unsigned, at the store width)', () => {
    const xen = new Xen({ maxPage: 16 });
    const dom = xen.createDomain({ abi: X86_32, maxPages: 4 });
    const mfn = xen.machine.allocFrame(dom.domid)!;
    const values: (bigint | undefined)[] = [];
    xen.events.subscribe((e) => {
      if (e.type === 'store') values.push(e.value);
    });
    xen.storeWord(BUILDER(dom), mfn, 0, -1n, 4);
    xen.storeWord(BUILDER(dom), mfn, 8, 0x1_0000_0002n, 4);
    xen.storeWord(BUILDER(dom), mfn, 16, -2n, 8);
    expect(values).to.deep.equal([0xffffffffn, 2n, 0xfffffffffffffffen]);
    const page = xen.machine.bytes(mfn);
    const view = new DataView(page.buffer, page.byteOffset, page.byteLength);
    expect(view.getUint32(8, true)).to.equal(2);
  });

  it('reports a stamp store with its stamp, and keeps other subscribers when one unsubscribes during an event', () => {
    const xen = new Xen({ maxPage: 16 });
    const dom = xen.createDomain({ abi: X86_32, maxPages: 4 });
    const mfn = xen.machine.allocFrame(dom.domid)!;
    const a: XenEvent[] = [];
    const b: XenEvent[] = [];
    const offA = xen.events.subscribe((e) => {
      a.push(e);
      offA();
    });
    xen.events.subscribe((e) => b.push(e));
    xen.storeStamp(BUILDER(dom), mfn, 0x1234);
    xen.storeStamp(BUILDER(dom), mfn, 0x1235);
    expect(a.length).to.equal(1);
    expect(b.map((e) => (e.type === 'store' ? e.stamp : undefined))).to.deep.equal([0x1234, 0x1235]);
    expect(b[0]).to.include({ pfn: INVALID_M2P, offset: 0, length: PAGE_SIZE, by: 'builder' });
  });
});

describe('xen-emu/xen: hypercall dispatch', () => {
  for (const abi of ABIS) {
    it(`returns -ENOSYS for an unknown hypercall number, on ${abi.name}`, () => {
      const xen = new Xen({ maxPage: 16 });
      const dom = xen.createDomain({ abi, maxPages: 1 });
      for (const nr of [UNKNOWN_HYPERCALL, 1000, -1]) expect(xen.hypercall(dom.domid, nr)).to.equal(BigInt(-ENOSYS));
    });
  }

  it('truncates a compat guest\'s arguments to 32-bit registers and keeps an x86_64 guest\'s 64 bits', () => {
    const xen = new Xen({ maxPage: 16 });
    const d32 = xen.createDomain({ abi: X86_32, maxPages: 1 });
    const d64 = xen.createDomain({ abi: X86_64, maxPages: 1 });
    const args: bigint[][] = [];
    xen.events.subscribe((e) => {
      if (e.type === 'hypercall') args.push([...e.args]);
    });
    xen.hypercall(d32.domid, UNKNOWN_HYPERCALL, 0x1_0000_0005n, -1n, 0xffff_ffff_8000_0000n);
    xen.hypercall(d64.domid, UNKNOWN_HYPERCALL, 0x1_0000_0005n, -1n, 0x1_0000_0000_0000_0001n);
    expect(args[0]).to.deep.equal([5n, 0xffffffffn, 0x80000000n, 0n, 0n]);
    expect(args[1]).to.deep.equal([0x1_0000_0005n, 0xffff_ffff_ffff_ffffn, 1n, 0n, 0n]);
  });

  it('gives an x86_64 guest a result wider than 32 bits whole, and a compat guest an int (XENMEM_maximum_ram_page above 2^32)', () => {
    const maxPage = 2 ** 32 + 0x80000007; // sparse: nothing is materialised
    const xen = new Xen({ maxPage });
    const d32 = xen.createDomain({ abi: X86_32, maxPages: 1 });
    const d64 = xen.createDomain({ abi: X86_64, maxPages: 1 });
    expect(xen.hypercall(d64.domid, __HYPERVISOR_memory_op, BigInt(XENMEM_maximum_ram_page), 0n)).to.equal(BigInt(maxPage));
    // compat_memory_op returns an int: Xen clamps rc > INT_MAX to INT_MAX.
    const rc = xen.hypercall(d32.domid, __HYPERVISOR_memory_op, BigInt(XENMEM_maximum_ram_page), 0n);
    expect(rc).to.equal(0x7fffffffn);
    // The cmd register was truncated to 32 bits before dispatch: bits above 31 do not change the op.
    expect(xen.hypercall(d32.domid, __HYPERVISOR_memory_op, (1n << 32n) | BigInt(XENMEM_maximum_ram_page), 0n)).to.equal(rc);
    // On x86_64 those bits stay: cmd >> 6 is a non-zero start extent, which this op refuses.
    expect(xen.hypercall(d64.domid, __HYPERVISOR_memory_op, (1n << 32n) | BigInt(XENMEM_maximum_ram_page), 0n)).to.equal(BigInt(-EINVAL));
  });

  it('returns -ESRCH for a domid that names no domain', () => {
    const xen = new Xen({ maxPage: 16 });
    expect(xen.hypercall(5, UNKNOWN_HYPERCALL)).to.equal(BigInt(-ESRCH));
  });
});
