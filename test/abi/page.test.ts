import { expect } from 'chai';
import { AbiRangeError, AbiViewError } from '../../abi/errors.js';
import { X86_32, X86_64 } from '../../abi/guest-abi.js';
import {
  HYPERVISOR_VIRT_END_X86_64,
  HYPERVISOR_VIRT_START_PAE,
  HYPERVISOR_VIRT_START_X86_64,
  PTE_FRAME_MASK,
  TOOLS_INVALID_MFN,
  _PAGE_ACCESSED,
  _PAGE_NX,
  _PAGE_PAT,
  _PAGE_PRESENT,
  _PAGE_PSE,
  _PAGE_RW,
  canonicalVa,
  isCanonicalVa,
  makePte,
  overlapsXenReservedVa,
  pageOffset,
  pageTableIndex,
  pageTableIndices,
  pagingGeometry,
  pteFlags,
  pteFrame,
  pteIsPresent,
  toolsCr3ToMfn,
  xenReservedVaRange,
  xen_cr3_to_pfn,
  xen_pfn_to_cr3,
} from '../../abi/page.js';

describe('abi/page: cr3 folding', () => {
  it('folds MFN 0x123456 to cr3 0x23456001 on x86_32 and back', () => {
    expect(xen_pfn_to_cr3(X86_32, 0x123456n)).to.equal(0x23456001n);
    expect(xen_cr3_to_pfn(X86_32, 0x23456001n)).to.equal(0x123456n);
  });

  it('shifts by 12 on x86_64', () => {
    expect(xen_pfn_to_cr3(X86_64, 0x123456n)).to.equal(0x123456000n);
    expect(xen_cr3_to_pfn(X86_64, 0x123456000n)).to.equal(0x123456n);
  });

  it('round-trips every 32-bit MFN shape on x86_32, including the top 12 bits', () => {
    for (const mfn of [0n, 1n, 0xfffffn, 0x100000n, 0xfff00000n, 0xffffffffn, 0x89abcdefn]) {
      const cr3 = xen_pfn_to_cr3(X86_32, mfn);
      expect(cr3 <= 0xffffffffn, `cr3 of 0x${mfn.toString(16)}`).to.equal(true);
      expect(xen_cr3_to_pfn(X86_32, cr3)).to.equal(mfn);
    }
  });

  it('round-trips 52-bit frames on x86_64 and drops higher bits as the C macro does', () => {
    for (const mfn of [0n, 0xffffffffffn, (1n << 52n) - 1n]) {
      expect(xen_cr3_to_pfn(X86_64, xen_pfn_to_cr3(X86_64, mfn))).to.equal(mfn);
    }
    expect(xen_pfn_to_cr3(X86_64, 1n << 52n)).to.equal(0n);
  });

  it('rejects a 32-bit guest cr3 or pfn with bits above 31', () => {
    expect(() => xen_cr3_to_pfn(X86_32, 0x123456001n)).to.throw(AbiRangeError);
    expect(() => xen_pfn_to_cr3(X86_32, 1n << 32n)).to.throw(AbiRangeError);
  });

  it("returns libxc's INVALID_MFN for a 32-bit guest cr3 with bits above 31", () => {
    expect(toolsCr3ToMfn(X86_32, 0x100000000n)).to.equal(TOOLS_INVALID_MFN);
    expect(TOOLS_INVALID_MFN).to.equal(0xffffffffffffffffn);
    expect(toolsCr3ToMfn(X86_32, 0x23456001n)).to.equal(0x123456n);
    expect(toolsCr3ToMfn(X86_64, 0x123456000n)).to.equal(0x123456n);
  });
});

describe('abi/page: PTEs', () => {
  it('builds a PTE from an MFN and flags, and takes the frame back with PTE_FRAME_MASK', () => {
    const pte = makePte(0x1234n, _PAGE_PRESENT | _PAGE_RW | _PAGE_NX);
    expect(pte).to.equal(0x8000000001234003n);
    expect(pteFrame(pte)).to.equal(0x1234n);
    expect(pteFlags(pte)).to.equal(_PAGE_PRESENT | _PAGE_RW | _PAGE_NX);
    expect(pteIsPresent(pte)).to.equal(true);
    expect(pteIsPresent(pte & ~_PAGE_PRESENT)).to.equal(false);
  });

  it('ignores bits 52..62 and 63 when taking the frame, as libxc does', () => {
    expect(pteFrame(0xfff0000000abc000n | _PAGE_ACCESSED)).to.equal(0xabcn);
  });

  it('uses bit 7 for both PSE (L2/L3) and PAT (L1), and bit 63 for NX', () => {
    expect(_PAGE_PSE).to.equal(0x80n);
    expect(_PAGE_PAT).to.equal(_PAGE_PSE);
    expect(_PAGE_NX).to.equal(0x8000000000000000n);
    expect(PTE_FRAME_MASK).to.equal(0x000ffffffffff000n);
  });

  it('rejects an MFN wider than 40 bits and flags that overlap the frame field', () => {
    expect(makePte((1n << 40n) - 1n, 0n)).to.equal(0x000ffffffffff000n);
    expect(() => makePte(1n << 40n, 0n)).to.throw(AbiRangeError);
    expect(() => makePte(1n, 1n << 12n)).to.throw(AbiViewError);
  });
});

describe('abi/page: paging geometry', () => {
  it('walks 4 levels on x86_64 with shifts 39/30/21/12 and 512 entries each', () => {
    const g = pagingGeometry(X86_64);
    expect(g.levels).to.equal(4);
    expect(g.walk.map((l) => [l.level, l.shift, l.entries])).to.deep.equal([
      [4, 39, 512],
      [3, 30, 512],
      [2, 21, 512],
      [1, 12, 512],
    ]);
    expect(g.entryBytes).to.equal(8);
  });

  it('walks 3 PAE levels on x86_32 with a 4-entry L3', () => {
    const g = pagingGeometry(X86_32);
    expect(g.levels).to.equal(X86_32.pagingLevels);
    expect(g.walk.map((l) => [l.level, l.shift, l.entries])).to.deep.equal([
      [3, 30, 4],
      [2, 21, 512],
      [1, 12, 512],
    ]);
    expect(g.entryBytes).to.equal(8);
  });

  it('indexes x86_64 addresses by bits 47:39, 38:30, 29:21, 20:12', () => {
    expect(pageTableIndices(X86_64, 0x40201000n)).to.deep.equal([0, 1, 1, 1]);
    expect(pageTableIndices(X86_64, 0x8000000000n)).to.deep.equal([1, 0, 0, 0]);
    expect(pageTableIndices(X86_64, 0xffffc90000000000n)).to.deep.equal([402, 0, 0, 0]);
    expect(pageTableIndices(X86_64, 0xffffffffffffffffn)).to.deep.equal([511, 511, 511, 511]);
    expect(pageTableIndex(X86_64, HYPERVISOR_VIRT_START_X86_64, 4)).to.equal(256);
    expect(pageTableIndex(X86_64, HYPERVISOR_VIRT_END_X86_64 - 1n, 4)).to.equal(271);
  });

  it('indexes x86_32 addresses by bits 31:30, 29:21, 20:12', () => {
    expect(pageTableIndices(X86_32, 0xc0000000n)).to.deep.equal([3, 0, 0]);
    expect(pageTableIndices(X86_32, 0xf5800000n)).to.deep.equal([3, 428, 0]);
    expect(pageTableIndices(X86_32, 0x7fffffffn)).to.deep.equal([1, 511, 511]);
    expect(pageOffset(0x7fffffffn)).to.equal(0xfff);
  });

  it('rejects a level the ABI does not have and an address wider than the guest word', () => {
    expect(() => pageTableIndex(X86_32, 0n, 4)).to.throw(AbiViewError);
    expect(() => pageTableIndices(X86_32, 0x100000000n)).to.throw(AbiRangeError);
  });
});

describe('abi/page: canonical addresses and Xen reserved ranges', () => {
  it('calls an x86_64 address canonical only when bits 63..47 are equal', () => {
    expect(isCanonicalVa(0x00007fffffffffffn)).to.equal(true);
    expect(isCanonicalVa(0x0000800000000000n)).to.equal(false);
    expect(isCanonicalVa(0xffff800000000000n)).to.equal(true);
    expect(isCanonicalVa(0xfffe800000000000n)).to.equal(false);
    expect(canonicalVa(0x0000800000000000n)).to.equal(0xffff800000000000n);
    expect(canonicalVa(0x1234n)).to.equal(0x1234n);
  });

  it("reserves x86_64 L4 slots 256-271 for Xen", () => {
    expect(xenReservedVaRange(X86_64)).to.deep.equal({ first: 0xffff800000000000n, last: 0xffff87ffffffffffn });
    expect(HYPERVISOR_VIRT_END_X86_64 - HYPERVISOR_VIRT_START_X86_64).to.equal(16n << 39n);
    expect(overlapsXenReservedVa(X86_64, 0xffffc90000000000n, 0xffffc9007fffffffn)).to.equal(false);
    expect(overlapsXenReservedVa(X86_64, 0xffff7ffffffff000n, 0xffff800000000fffn)).to.equal(true);
    expect(overlapsXenReservedVa(X86_64, 0xffff87fffffff000n, 0xffff880000000fffn)).to.equal(true);
    expect(overlapsXenReservedVa(X86_64, 0xffff880000000000n, 0xffff880000000fffn)).to.equal(false);
  });

  it('reserves 0xF5800000 and above on x86_32', () => {
    expect(xenReservedVaRange(X86_32)).to.deep.equal({ first: HYPERVISOR_VIRT_START_PAE, last: 0xffffffffn });
    expect(overlapsXenReservedVa(X86_32, 0xf57ff000n, 0xf57fffffn)).to.equal(false);
    expect(overlapsXenReservedVa(X86_32, 0xf57ff000n, 0xf5800000n)).to.equal(true);
  });

  it('rejects a range that ends before it starts', () => {
    expect(() => overlapsXenReservedVa(X86_32, 0x2000n, 0x1000n)).to.throw(AbiViewError);
  });
});
