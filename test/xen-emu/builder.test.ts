/**
 * The PV domain builder (xen-emu/builder.ts), against what libxenguest's xc_dom builds for an x86 PV
 * guest: start_info, the initial p2m at mfn_list, m2p consistency, page tables (typed, pinned, read-only
 * mappings of themselves), shared_info, and the options it refuses.
 */

import { expect } from 'chai';
import {
  EFAULT,
  PAGE_SIZE,
  SIF_PRIVILEGED,
  SIF_VIRT_P2M_4TOOLS,
  X86_32,
  X86_64,
  decodeCString,
  shared_info,
  start_info,
  xen_pfn_to_cr3,
  type GuestAbi,
} from '../../abi/index.js';
import { DomainBuildError, INVALID_M2P, PageType, Xen, buildDomain, type BuiltDomain, type StoreEvent } from '../../xen-emu/index.js';

const ABIS: readonly GuestAbi[] = [X86_32, X86_64];
const hex = (v: number | bigint): string => `0x${v.toString(16)}`;

/** Reads a 64-bit PTE straight from machine memory. */
function pte(xen: Xen, mfn: number, index: number): bigint {
  const page = xen.machine.bytes(mfn);
  return new DataView(page.buffer, page.byteOffset, PAGE_SIZE).getBigUint64(index * 8, true);
}

function build(abi: GuestAbi, memoryPages = 3000, extra: Partial<Parameters<typeof buildDomain>[1]> = {}): { xen: Xen; b: BuiltDomain } {
  const xen = new Xen({ maxPage: 1 << 14 });
  const b = buildDomain(xen, { abi, memoryPages, ...extra });
  return { xen, b };
}

describe('xen-emu/builder: start_info', () => {
  for (const abi of ABIS) {
    it(`fills start_info as libxenguest does, read back through the guest mapping, on ${abi.name}`, () => {
      const { xen, b } = build(abi, 3000, { cmdLine: 'console=hvc0', storeEvtchn: 5, consoleEvtchn: 6 });
      const size = start_info.sizeOf(abi);
      const raw = xen.copyFromGuest(b.dom, b.startInfoVa, size);
      expect(raw, 'start_info mapped at startInfoVa').to.not.equal(undefined);
      const bytes = Buffer.from(raw!);
      expect(bytes.equals(Buffer.from(xen.machine.bytes(b.startInfoMfn).subarray(0, size)))).to.equal(true);
      const si = start_info.view(abi, bytes);
      expect(decodeCString(si.magic)).to.equal(abi.name === 'x86_64' ? 'xen-3.0-x86_64' : 'xen-3.0-x86_32p');
      expect(si.nr_pages).to.equal(3000n);
      expect(si.shared_info).to.equal(BigInt(b.dom.sharedInfoMfn) * 4096n);
      expect(si.flags).to.equal(SIF_VIRT_P2M_4TOOLS);
      expect(si.store_mfn).to.equal(BigInt(b.storeMfn));
      expect(si.store_evtchn).to.equal(5);
      expect(si.console.domU.mfn).to.equal(BigInt(b.consoleMfn));
      expect(si.console.domU.evtchn).to.equal(6);
      expect(si.pt_base).to.equal(b.ptBaseVa);
      expect(si.nr_pt_frames).to.equal(BigInt(b.nrPtFrames));
      expect(si.mfn_list).to.equal(b.p2mVa);
      expect(si.mod_start).to.equal(0n);
      const at = start_info.offsetOf(abi, 'cmd_line');
      expect(decodeCString(bytes.subarray(at, at + 1024))).to.equal('console=hvc0');
      expect(b.p2mEntry(b.storePfn)).to.equal(BigInt(b.storeMfn));
      expect(b.p2mEntry(b.consolePfn)).to.equal(BigInt(b.consoleMfn));
      expect(b.p2mEntry(b.startInfoPfn)).to.equal(BigInt(b.startInfoMfn));
    });
  }

  it('places the x86_64 p2m at Linux INIT_P2M VA 0x8000000000 and reports its frames and tables in first_p2m_pfn/nr_p2m_frames', () => {
    const { xen, b } = build(X86_64, 3000);
    const si = start_info.view(X86_64, Buffer.from(xen.machine.bytes(b.startInfoMfn)));
    expect(b.p2mVa).to.equal(0x8000000000n);
    expect(b.p2mSeparate).to.equal(true);
    expect(b.p2mPfn).to.equal(b.bootstrapPfns);
    expect(si.first_p2m_pfn).to.equal(BigInt(b.bootstrapPfns));
    // 3000 entries × 8 bytes = 6 frames, plus one L3, one L2 and one L1 mapping them.
    expect(b.p2mFrames).to.equal(6);
    expect(si.nr_p2m_frames).to.equal(9n);
  });

  it('keeps the x86_64 p2m in the bootstrap area when initP2mVaddr is null, with first_p2m_pfn = nr_p2m_frames = 0', () => {
    const { xen, b } = build(X86_64, 3000, { initP2mVaddr: null });
    const si = start_info.view(X86_64, Buffer.from(xen.machine.bytes(b.startInfoMfn)));
    expect(b.p2mSeparate).to.equal(false);
    expect(b.p2mVa).to.equal(0xffffffff80000000n + BigInt(b.scratchPages * PAGE_SIZE));
    expect(si.first_p2m_pfn).to.equal(0n);
    expect(si.nr_p2m_frames).to.equal(0n);
  });

  it('puts the x86_32 p2m right after the scratch pages at 0xC0000000 and leaves first_p2m_pfn 0', () => {
    const { xen, b } = build(X86_32, 3000);
    const si = start_info.view(X86_32, Buffer.from(xen.machine.bytes(b.startInfoMfn)));
    expect(b.virtBase).to.equal(0xc0000000n);
    expect(b.p2mVa).to.equal(0xc0000000n + 16n * 4096n);
    expect(b.p2mFrames).to.equal(3); // 3000 × 4 bytes
    expect(si.first_p2m_pfn).to.equal(0n);
    expect(si.nr_p2m_frames).to.equal(0n);
  });

  it('copies the SIF flags it is given, 0 included (an xl-built domU)', () => {
    for (const flags of [0, SIF_PRIVILEGED | SIF_VIRT_P2M_4TOOLS, 0x0100]) {
      const { xen, b } = build(X86_64, 2048, { flags });
      expect(start_info.view(X86_64, Buffer.from(xen.machine.bytes(b.startInfoMfn))).flags).to.equal(flags);
      expect(b.flags).to.equal(flags);
    }
  });
});

describe('xen-emu/builder: memory, p2m and m2p', () => {
  for (const abi of ABIS) {
    it(`mfn_list entry i, read through the guest's page tables, is an owned frame whose m2p is i, on ${abi.name}`, () => {
      const { xen, b } = build(abi, 3000);
      const word = abi.wordSize;
      const seen = new Set<bigint>();
      for (let i = 0; i < 3000; i++) {
        const va = b.p2mVa + BigInt(i * word);
        const t = xen.translate(b.dom, va);
        expect(t, `p2m entry ${i} mapped`).to.not.equal(undefined);
        const entry = xen.guestLoadWord(b.dom, va, word as 4 | 8)!;
        const mfn = Number(entry);
        if (xen.machine.m2pOf(mfn) !== i) expect.fail(`Fail: m2p[p2m[${hex(i)}] = ${hex(entry)}], expected ${hex(i)}, got ${hex(xen.machine.m2pOf(mfn))}`);
        expect(xen.machine.ownerOf(mfn)).to.equal(b.dom.domid);
        seen.add(entry);
      }
      expect(seen.size).to.equal(3000);
    });

    it(`owns exactly nr_pages frames plus shared_info, with tot_pages = nr_pages and every m2p entry matching the p2m, on ${abi.name}`, () => {
      const { xen, b } = build(abi, 2600, { maxPages: 4000 });
      expect(b.dom.totPages).to.equal(2600);
      expect(b.dom.maxPages).to.equal(4000);
      const owned = [...xen.framesOf(b.dom.domid)];
      expect(owned.length).to.equal(2601);
      expect(xen.machine.usedFrames).to.equal(2601);
      for (const mfn of owned) {
        const pfn = xen.machine.m2pOf(mfn);
        if (mfn === b.dom.sharedInfoMfn) {
          expect(pfn).to.equal(INVALID_M2P);
          expect(xen.machine.isXenHeap(mfn)).to.equal(true);
          continue;
        }
        expect(pfn).to.be.below(2600);
        expect(b.p2mEntry(pfn)).to.equal(BigInt(mfn));
      }
    });

    it(`with superpages, populates whole 512-pfn runs with naturally aligned 2 MiB extents, like meminit_pv, on ${abi.name}`, () => {
      const { b } = build(abi, 1536 + 100, { superpages: true });
      for (const run of [0, 512, 1024]) {
        const base = b.p2mEntry(run);
        expect(Number(base) % 512, `run at pfn ${run}`).to.equal(0);
        for (let i = 1; i < 512; i++) expect(b.p2mEntry(run + i)).to.equal(base + BigInt(i));
      }
      // The tail is single frames, here the ones the first extent's alignment skipped.
      expect(Number(b.p2mEntry(1536 + 99))).to.be.below(512);
    });

    it(`by default populates one frame at a time in pfn order: on a fresh machine pfn i gets the frame after pfn i-1's, on ${abi.name}`, () => {
      const { xen, b } = build(abi, 1636);
      const first = Number(b.p2mEntry(0));
      expect(first).to.equal(b.dom.sharedInfoMfn + 1);
      for (let pfn = 1; pfn < 1636; pfn++) if (Number(b.p2mEntry(pfn)) !== first + pfn) expect.fail(`Fail: p2m[${pfn}], expected ${hex(first + pfn)}, got ${hex(b.p2mEntry(pfn))}`);
      expect(xen.machine.usedFrames).to.equal(1637);
    });

    it(`zero-fills the tail of the last p2m frame, on ${abi.name}`, () => {
      const { xen, b } = build(abi, 2000);
      const last = xen.machine.bytes(b.p2mMfns[b.p2mMfns.length - 1]!);
      const used = (2000 * abi.wordSize) % PAGE_SIZE;
      expect(used).to.be.above(0);
      expect(last.subarray(used).every((x) => x === 0)).to.equal(true);
      expect(last.subarray(0, used).some((x) => x !== 0)).to.equal(true);
    });
  }

  it('keeps every frame of an x86_32 domain below the compat allocation clamp', () => {
    const xen = new Xen({ maxPage: 1 << 14, compatMaxMfn: 6000 });
    const b = buildDomain(xen, { abi: X86_32, memoryPages: 4000 });
    for (const mfn of xen.framesOf(b.dom.domid)) expect(mfn).to.be.below(6000);
  });

  it('gives two domains built on one Xen disjoint frames', () => {
    const xen = new Xen({ maxPage: 1 << 14 });
    const a = buildDomain(xen, { abi: X86_64, memoryPages: 2048 });
    const c = buildDomain(xen, { abi: X86_32, memoryPages: 2048 });
    expect(a.dom.domid).to.not.equal(c.dom.domid);
    const mine = new Set(xen.framesOf(a.dom.domid));
    for (const mfn of xen.framesOf(c.dom.domid)) expect(mine.has(mfn)).to.equal(false);
    expect(xen.machine.usedFrames).to.equal(2 * 2049);
  });
});

describe('xen-emu/builder: page tables', () => {
  for (const abi of ABIS) {
    const top = abi.name === 'x86_64' ? PageType.L4 : PageType.L3;

    it(`pins the top-level table (${abi.name === 'x86_64' ? 'L4' : 'L3'}), types every table by level and sets baseptr and cr3, on ${abi.name}`, () => {
      const { xen, b } = build(abi, 3000);
      expect(b.dom.baseptrMfn).to.equal(b.topPtMfn);
      expect(xen.machine.pageType(b.topPtMfn)).to.equal(top);
      expect(xen.machine.isPinned(b.topPtMfn)).to.equal(true);
      expect(b.cr3).to.equal(xen_pfn_to_cr3(abi, BigInt(b.topPtMfn)));
      for (const f of b.ptFrames) {
        expect(xen.machine.pageType(f.mfn), `pt pfn ${f.pfn}`).to.equal(f.level);
        expect(xen.machine.isPinned(f.mfn)).to.equal(f.mfn === b.topPtMfn);
        expect(b.p2mEntry(f.pfn)).to.equal(BigInt(f.mfn));
      }
      expect(b.ptFrames.filter((f) => f.level === top).length).to.equal(1);
      expect(b.ptMfns).to.deep.equal(b.ptFrames.map((f) => f.mfn));
      // Bootstrap tables are the nr_pt_frames consecutive pfns from ptPfn, the top one first.
      expect(b.ptFrames.filter((f) => f.pfn >= b.ptPfn && f.pfn < b.ptPfn + b.nrPtFrames).length).to.equal(b.nrPtFrames);
      expect(b.ptFrames[0]!.pfn).to.equal(b.ptPfn);
      expect(b.ptBaseVa).to.equal(b.vaOfPfn(b.ptPfn));
    });

    it(`maps every bootstrap pfn at virtBase + pfn * 4 KiB to its own frame, on ${abi.name}`, () => {
      const { xen, b } = build(abi, 3000);
      expect(b.bootstrapPfns).to.equal(1024); // 4 MiB alignment of the mapping
      for (let pfn = 0; pfn < b.bootstrapPfns; pfn++) {
        const t = xen.translate(b.dom, b.vaOfPfn(pfn));
        expect(t?.mfn, `pfn ${pfn}`).to.equal(Number(b.p2mEntry(pfn)));
      }
      expect(xen.translate(b.dom, b.virtBase + BigInt(b.bootstrapPfns * PAGE_SIZE))).to.equal(undefined);
      expect(xen.translate(b.dom, b.virtBase - 4096n)).to.equal(undefined);
      expect(() => b.vaOfPfn(b.bootstrapPfns + (b.p2mSeparate ? b.p2mFrames : 0))).to.throw(RangeError);
      expect(b.isMappedPfn(2999)).to.equal(false);
    });

    it(`maps page-table frames read-only: a guest store into one is -EFAULT and leaves it unchanged, on ${abi.name}`, () => {
      const { xen, b } = build(abi, 3000);
      for (const f of b.ptFrames.filter((x) => b.isMappedPfn(x.pfn))) {
        const va = b.vaOfPfn(f.pfn);
        const before = xen.guestLoadWord(b.dom, va, 8);
        expect(before, `pt pfn ${f.pfn} readable`).to.not.equal(undefined);
        expect(xen.guestStoreWord(b.dom, va, 0x1234n, 8)).to.equal(-EFAULT);
        expect(xen.guestLoadWord(b.dom, va, 8)).to.equal(before);
      }
      expect(xen.translate(b.dom, b.ptBaseVa, true)).to.equal(undefined);
      expect(xen.translate(b.dom, b.ptBaseVa, false)?.mfn).to.equal(b.topPtMfn);
    });

    it(`maps scratch, start_info, store, console, boot stack and p2m frames writable, on ${abi.name}`, () => {
      const { xen, b } = build(abi, 3000);
      const data = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
      for (let i = 0; i + 1 < b.scratchPages; i++) {
        const va = b.scratchVa + BigInt(i * PAGE_SIZE) + 4092n; // straddles into the next scratch page
        expect(xen.guestStore(b.dom, va, data)).to.equal(0);
        expect(xen.copyFromGuest(b.dom, va, 8)).to.deep.equal(data);
      }
      for (const pfn of [b.startInfoPfn, b.storePfn, b.consolePfn, b.bootStackPfn, b.p2mPfn, b.p2mPfn + b.p2mFrames - 1]) {
        expect(xen.translate(b.dom, b.vaOfPfn(pfn), true), `pfn ${pfn}`).to.not.equal(undefined);
      }
      expect(xen.guestStoreWord(b.dom, b.p2mVa, 0x77n, abi.wordSize as 4 | 8)).to.equal(0);
      expect(b.p2mEntry(0)).to.equal(0x77n);
    });

    it(`sets libxenguest's entry flags: L1 present|rw|accessed, upper levels also dirty|user, MFNs in the frame field, on ${abi.name}`, () => {
      const { xen, b } = build(abi, 3000);
      const l1 = b.ptFrames.find((f) => f.level === 1 && f.pfn >= b.ptPfn && f.pfn < b.ptPfn + b.nrPtFrames)!;
      // virtBase is 2 MiB aligned: entry i of the first bootstrap L1 maps pfn i.
      const e0 = pte(xen, l1.mfn, 0);
      expect(e0 & 0xfffn).to.equal(0x23n);
      expect((e0 & 0x000ffffffffff000n) >> 12n).to.equal(b.p2mEntry(0));
      const ro = pte(xen, l1.mfn, b.ptPfn);
      expect(ro & 0xfffn).to.equal(0x21n);
      const upper = b.ptFrames.find((f) => f.level === 2)!;
      const walk = abi.name === 'x86_64' ? [511, 510] : [3];
      let table = b.topPtMfn;
      for (const index of walk) {
        const e = pte(xen, table, index);
        expect(e & 0xfffn).to.equal(0x67n);
        table = Number((e & 0x000ffffffffff000n) >> 12n);
      }
      expect(table).to.equal(upper.mfn);
    });
  }

  it('fills only the 4 meaningful entries of the x86_32 PAE L3, slot 3 present', () => {
    const { xen, b } = build(X86_32, 3000);
    expect(pte(xen, b.topPtMfn, 3) & 1n).to.equal(1n);
    for (let i = 4; i < 512; i++) expect(pte(xen, b.topPtMfn, i)).to.equal(0n);
  });

  it('maps the separate x86_64 p2m through its own L3/L2/L1, which are typed but not mapped themselves', () => {
    const { xen, b } = build(X86_64, 3000);
    const own = b.ptFrames.filter((f) => f.pfn >= b.p2mPfn + b.p2mFrames);
    expect(own.map((f) => f.level)).to.deep.equal([3, 2, 1]);
    expect(pte(xen, b.topPtMfn, 1) & 0x000ffffffffff000n).to.equal(BigInt(own[0]!.mfn) << 12n);
    for (const f of own) expect(b.isMappedPfn(f.pfn)).to.equal(false);
    expect(b.firstP2mPfn + b.nrP2mFrames).to.equal(own[own.length - 1]!.pfn + 1);
  });

  it('extends the PAE mapping with L2 tables up to L3 slot 3 when virtBase is low, as count_pgtables does', () => {
    const { xen, b } = build(X86_32, 3000, { virtBase: 0x00400000n });
    const l2 = b.ptFrames.filter((f) => f.level === 2);
    expect(l2.length).to.equal(4);
    for (let i = 0; i < 4; i++) expect(pte(xen, b.topPtMfn, i) & 1n, `L3 slot ${i}`).to.equal(1n);
    expect(xen.translate(b.dom, 0x00400000n)?.mfn).to.equal(Number(b.p2mEntry(0)));
  });
});

describe('xen-emu/builder: shared_info and stores', () => {
  for (const abi of ABIS) {
    it(`zeroes shared_info and sets evtchn_upcall_mask in all 32 vcpu_info slots, on ${abi.name}`, () => {
      const { xen, b } = build(abi, 2048);
      const si = shared_info.view(abi, Buffer.from(xen.machine.bytes(b.dom.sharedInfoMfn)));
      expect(si.vcpu_info.length).to.equal(32);
      for (const v of si.vcpu_info) {
        expect(v.evtchn_upcall_mask).to.equal(1);
        expect(v.evtchn_upcall_pending).to.equal(0);
        expect(v.evtchn_pending_sel).to.equal(0n);
      }
      expect(si.arch.pfn_to_mfn_frame_list_list).to.equal(0n);
      expect(si.arch.p2m_cr3).to.equal(0n);
    });
  }

  it('writes through the choke point as the builder: store events by "builder", no logdirty marks', () => {
    const xen = new Xen({ maxPage: 1 << 14 });
    const stores: StoreEvent[] = [];
    const m2p: number[] = [];
    xen.events.subscribe((e) => {
      if (e.type === 'store') stores.push(e);
      else if (e.type === 'm2p') m2p.push(e.newPfn);
    });
    const b = buildDomain(xen, { abi: X86_64, memoryPages: 2048 });
    expect(stores.every((e) => e.by === 'builder' && e.domid === b.dom.domid)).to.equal(true);
    const written = new Set(stores.map((e) => e.mfn));
    for (const mfn of [...b.p2mMfns, ...b.ptMfns, b.startInfoMfn, b.dom.sharedInfoMfn]) expect(written.has(mfn)).to.equal(true);
    expect(m2p.length).to.equal(2048);
    expect(b.dom.logdirty.count()).to.equal(0);
  });
});

describe('xen-emu/builder: bad options', () => {
  const cases: [string, GuestAbi, Record<string, unknown>, RegExp][] = [
    ['memoryPages of 0', X86_64, { memoryPages: 0 }, /memoryPages/],
    ['a fractional memoryPages', X86_64, { memoryPages: 2048.5 }, /memoryPages/],
    ['memoryPages larger than the free frames', X86_64, { memoryPages: 1 << 14 }, /free frames/],
    ['maxPages below memoryPages', X86_64, { memoryPages: 2048, maxPages: 2000 }, /maxPages/],
    ['too few pages for the bootstrap mapping', X86_64, { memoryPages: 1000 }, /initial mapping/],
    ['too few pages for the separate p2m', X86_64, { memoryPages: 1026 }, /initial p2m list/],
    ['too few pages for the separate p2m\'s page tables', X86_64, { memoryPages: 1028 }, /its page tables/],
    ['a reserved domid', X86_64, { memoryPages: 2048, domid: 0x7ff0 }, /reserved/],
    ['an x86_32 guest too big for its VA below 0xF5800000', X86_32, { memoryPages: 1 << 20, virtBase: 0xf5400000n }, /too big for its VA space/],
    ['initP2mVaddr on x86_32', X86_32, { memoryPages: 2048, initP2mVaddr: 0x40000000n }, /x86_32/],
    ['initP2mVaddr at or above virtBase', X86_64, { memoryPages: 2048, initP2mVaddr: 0xffffffffc0000000n }, /below virtBase/],
    ['an unaligned virtBase', X86_64, { memoryPages: 2048, virtBase: 0xffffffff80000800n }, /page aligned/],
    ['a non-canonical initP2mVaddr', X86_64, { memoryPages: 2048, initP2mVaddr: 0x0000900000000000n }, /canonical/],
    ['a bootstrap mapping in Xen\'s range', X86_64, { memoryPages: 2048, virtBase: 0xffff800000000000n, initP2mVaddr: null }, /Xen/],
    ['a p2m overlapping the bootstrap mapping', X86_64, { memoryPages: 2048, initP2mVaddr: 0xffffffff7ffff000n }, /overlaps/],
    ['a virtBase above 4 GiB on x86_32', X86_32, { memoryPages: 2048, virtBase: 0x100000000n }, /virtBase/],
  ];
  for (const [what, abi, opts, message] of cases) {
    it(`rejects ${what} with a DomainBuildError and leaves no frame allocated (${abi.name})`, () => {
      const xen = new Xen({ maxPage: 1 << 14 });
      let caught: unknown;
      try {
        buildDomain(xen, { abi, ...(opts as { memoryPages: number }) });
      } catch (error) {
        caught = error;
      }
      expect(caught).to.be.instanceOf(DomainBuildError);
      expect((caught as Error).message).to.match(message);
      expect((caught as Error).message).to.not.include('\n');
      expect(xen.machine.usedFrames).to.equal(0);
      expect(xen.domainList.length).to.equal(0);
    });
  }

  it('rolls back the domain when an x86_32 build runs out of frames below the compat clamp', () => {
    const xen = new Xen({ maxPage: 1 << 14, compatMaxMfn: 3000 });
    expect(() => buildDomain(xen, { abi: X86_32, memoryPages: 4000 })).to.throw(DomainBuildError, /no free frame below 0xbb8/);
    expect(xen.machine.usedFrames).to.equal(0);
    expect(xen.domainList.length).to.equal(0);
    // The machine is still usable afterwards.
    expect(buildDomain(xen, { abi: X86_32, memoryPages: 2048 }).dom.totPages).to.equal(2048);
  });

  it('rejects a domid already in use without touching the existing domain', () => {
    const xen = new Xen({ maxPage: 1 << 14 });
    const a = buildDomain(xen, { abi: X86_64, memoryPages: 2048, domid: 7 });
    expect(() => buildDomain(xen, { abi: X86_64, memoryPages: 2048, domid: 7 })).to.throw(DomainBuildError, /domid 7 is in use/);
    expect(xen.domain(7)).to.equal(a.dom);
    expect(xen.machine.usedFrames).to.equal(2049);
  });
});
