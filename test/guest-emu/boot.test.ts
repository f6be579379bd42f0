/**
 * guest-emu boot and publication (reference §2.3–2.7, §6), both ABIs, all three personalities:
 * the linear list at a 1 GiB-aligned p2m_vaddr under the kernel's top-level table, 4 KiB leaves,
 * shared read-only missing/identity pages and shared PTE pages, the tree unless
 * SIF_VIRT_P2M_4TOOLS, and publication into shared_info in Linux's order.
 */

import { expect } from 'chai';
import {
  IDENTITY_FRAME_BIT,
  INVALID_P2M_ENTRY,
  PAGE_SIZE,
  X86_32,
  X86_64,
  _PAGE_RW,
  identityFrame,
  shared_info,
  wordMask,
  xen_pfn_to_cr3,
} from '../../abi/index.js';
import { buildDomain } from '../../xen-emu/builder.js';
import { PageType } from '../../xen-emu/machine.js';
import { Xen } from '../../xen-emu/xen.js';
import { GuestConfigError } from '../../guest-emu/errors.js';
import { PvGuest } from '../../guest-emu/guest.js';
import { FIX_KMAP_DATA } from '../../guest-emu/kernel-mm.js';
import { parseGuestVariant, startInfoFlagsFor } from '../../guest-emu/variants.js';
import { checkP2mM2p, checkTreeMatchesList, checkWalkYieldsGuestLeaves } from './support/checks.js';
import { readP2mTree, readSharedP2m, walkP2mCr3 } from './support/tools-view.js';
import { ABIS, PERSONALITIES, finish, makeGuest } from './support/world.js';

const GIB = 1n << 30n;

function entry(xen: Xen, mfn: bigint, index: number): bigint {
  const page = xen.machine.bytes(Number(mfn));
  return new DataView(page.buffer, page.byteOffset, PAGE_SIZE).getBigUint64(index * 8, true);
}

describe('guest-emu: boot and publication', () => {
  for (const abi of ABIS) {
    for (const personality of PERSONALITIES) {
      describe(`${abi.name} ${personality}`, () => {
        it('publishes in Linux\'s order: fll, max_pfn, then (list personalities) p2m_generation = 0, p2m_vaddr, p2m_cr3', () => {
          const { xen, g } = makeGuest({ abi, variant: personality, boot: false });
          const fields = ['max_pfn', 'pfn_to_mfn_frame_list_list', 'p2m_generation', 'p2m_vaddr', 'p2m_cr3'];
          const at = new Map(fields.map((f) => [shared_info.offsetOf(abi, `arch.${f}`), f]));
          const order: string[] = [];
          const stop = xen.events.subscribe((e) => {
            if (e.type === 'store' && e.mfn === g.binding.dom.sharedInfoMfn && e.by === 'guest' && at.has(e.offset)) order.push(at.get(e.offset)!);
          });
          finish(g.boot());
          stop();
          const expected = personality === 'legacy-tree'
            ? ['pfn_to_mfn_frame_list_list', 'max_pfn']
            : ['pfn_to_mfn_frame_list_list', 'max_pfn', 'p2m_generation', 'p2m_vaddr', 'p2m_cr3'];
          expect(order).to.deep.equal(expected);
        });

        it('publishes max_pfn = nr_pages rounded to a leaf, and the fll, p2m_cr3 and generation its personality implies', () => {
          const { xen, g } = makeGuest({ abi, variant: personality, memoryPages: 3000 });
          const s = readSharedP2m(xen, g.domid, abi);
          const fpp = PAGE_SIZE / abi.wordSize;
          expect(Number(s.maxPfn)).to.equal(Math.ceil(3000 / fpp) * fpp);
          if (personality === 'linear') expect(s.fll).to.equal(wordMask(abi));
          else expect(s.fll).to.equal(g.mfnOf(g.tree!.fllPfn));
          if (personality === 'legacy-tree') {
            expect([s.p2mCr3, s.p2mVaddr, s.generation]).to.deep.equal([0n, 0n, 0n]);
          } else {
            expect(s.generation).to.equal(0n);
            expect(s.p2mVaddr % GIB).to.equal(0n);
            expect(s.p2mCr3).to.equal(xen_pfn_to_cr3(abi, BigInt(g.built.topPtMfn)));
          }
        });

        it('the tools find the p2m where the guest keeps it, and p2m and m2p agree', () => {
          const { xen, g } = makeGuest({ abi, variant: personality });
          if (personality !== 'legacy-tree') expect(checkWalkYieldsGuestLeaves(g)).to.deep.equal([]);
          if (personality !== 'linear') {
            const tree = readP2mTree(xen, g.domid, abi);
            expect(tree.error).to.equal(undefined);
            tree.leafMfns.forEach((mfn, leaf) => expect(mfn).to.equal(g.mfnOf(g.list.leafPagePfn(leaf))));
          }
          if (personality === 'tree+linear') expect(checkTreeMatchesList(xen, g.domid, abi)).to.deep.equal([]);
          expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
        });
      });
    }

    describe(`${abi.name} linear list layout`, () => {
      it('the builder\'s frames become the leaves for RAM; the tail of the last leaf is INVALID', () => {
        const { xen, g } = makeGuest({ abi, memoryPages: 3000 });
        const walk = walkP2mCr3(xen, g.domid, abi);
        expect(walk.leafMfns).to.deep.equal(g.built.p2mMfns.map(BigInt));
        const invalid = INVALID_P2M_ENTRY(abi);
        const fpp = PAGE_SIZE / abi.wordSize;
        for (let pfn = 3000; pfn < Math.ceil(3000 / fpp) * fpp; pfn++) expect(g.list.read(pfn)).to.equal(invalid);
        for (const pfn of [0, 1, 2999]) expect(g.list.read(pfn)).to.equal(g.built.p2mEntry(pfn));
      });

      it('beyond RAM, PMDs point at one shared PTE page, pinned as an L1, whose PTEs all map p2m_missing read-only', () => {
        const { xen, g } = makeGuest({ abi });
        const pmdTable = g.mfnOf(g.list.pmdTablePfn);
        const missingPte = g.mfnOf(g.list.missingPtePfn);
        const missing = g.mfnOf(g.list.missingPfn);
        const pmds = g.list.ptePfn.length;
        const shared = Array.from({ length: pmds }, (_, p) => (entry(xen, pmdTable, p) >> 12n) & 0xffffffffffn).filter((f) => f === missingPte);
        expect(shared.length).to.equal(pmds - g.list.pmdsPerMid);
        expect(xen.machine.pageType(Number(missingPte))).to.equal(PageType.L1);
        expect(xen.machine.isPinned(Number(missingPte))).to.equal(true);
        for (let i = 0; i < 512; i++) {
          const pte = entry(xen, missingPte, i);
          expect((pte >> 12n) & 0xffffffffffn).to.equal(missing);
          expect(pte & _PAGE_RW).to.equal(0n);
        }
        // Leaves of the first PTE page beyond RAM map the shared missing leaf, read-only.
        const firstPte = g.mfnOf(g.list.ptePfn[0]!);
        const leaf = Math.ceil(g.nrPages / g.list.fpp) + 1;
        const pte = entry(xen, firstPte, leaf);
        expect([(pte >> 12n) & 0xffffffffffn, pte & _PAGE_RW]).to.deep.equal([missing, 0n]);
      });

      it('1:1 ranges use the shared identity leaf and PTE page; a partial leaf is a real page of IDENTITY_FRAME values', () => {
        const fpp = PAGE_SIZE / abi.wordSize;
        const mid = fpp * fpp;
        const partial = { start: 8 * fpp, end: 11 * fpp + 100 };
        const wholeMid = { start: mid, end: 2 * mid };
        const { xen, g } = makeGuest({ abi, identityRanges: [partial, wholeMid] });
        const list = g.list;
        expect(list.leafPfn[9]).to.equal(-2);
        expect(list.leafPfn[11]! >= 0).to.equal(true);
        expect(list.read(9 * fpp + 5)).to.equal(identityFrame(abi, BigInt(9 * fpp + 5)));
        expect(list.read(11 * fpp + 99)).to.equal(identityFrame(abi, BigInt(11 * fpp + 99)));
        expect(list.read(11 * fpp + 100)).to.equal(INVALID_P2M_ENTRY(abi));
        // The real partial leaf holds the values; the shared identity page holds INVALID.
        const real = xen.machine.bytes(Number(g.mfnOf(list.leafPfn[11]!)));
        const w = abi.wordSize;
        const v = w === 8 ? new DataView(real.buffer, real.byteOffset).getBigUint64(99 * 8, true) : BigInt(new DataView(real.buffer, real.byteOffset).getUint32(99 * 4, true));
        expect(v & IDENTITY_FRAME_BIT(abi)).to.equal(IDENTITY_FRAME_BIT(abi));
        const idPage = xen.machine.bytes(Number(g.mfnOf(list.identityPfn)));
        expect(idPage.every((b) => b === 0xff)).to.equal(true);
        // A whole identity mid range: its PMDs name the shared identity PTE page.
        const idPte = g.mfnOf(list.identityPtePfn);
        const pmdTable = g.mfnOf(list.pmdTablePfn);
        for (let p = list.pmdsPerMid; p < 2 * list.pmdsPerMid; p++) expect((entry(xen, pmdTable, p) >> 12n) & 0xffffffffffn).to.equal(idPte);
        expect(checkP2mM2p(xen, g.domid, abi)).to.deep.equal([]);
      });
    });
  }

  it('x86_32 highmem pages are reached through a kmap slot, which is cleared before a page is ballooned out', () => {
    const { xen, g } = makeGuest({ abi: X86_32, lowmemPfns: 2048 });
    const pfn = 3000;
    expect(g.mm.isLowmem(pfn)).to.equal(false);
    finish(g.writePage(pfn, 0x1234));
    const slot = g.mm.fixmapVa(FIX_KMAP_DATA);
    expect(xen.translate(g.binding.dom, slot)?.mfn).to.equal(Number(g.mfnOf(pfn)));
    finish(g.balloonOut(pfn));
    expect(xen.translate(g.binding.dom, slot)).to.equal(undefined);
    expect(checkP2mM2p(xen, g.domid, X86_32)).to.deep.equal([]);
    expect(finish(g.balloonIn(pfn))).to.equal(true);
    expect(checkP2mM2p(xen, g.domid, X86_32)).to.deep.equal([]);
  });

  it('refuses a modern personality on a domain built with the other SIF_VIRT_P2M_4TOOLS, naming the flags', () => {
    const xen = new Xen({ maxPage: 1 << 14 });
    const built = buildDomain(xen, { abi: X86_64, memoryPages: 2048, flags: startInfoFlagsFor('tree+linear') });
    expect(() => new PvGuest(built, xen, { variant: 'linear' })).to.throw(GuestConfigError, 'personality linear needs start_info.flags with SIF_VIRT_P2M_4TOOLS (0x10); got 0x0');
    // legacy-tree builds its tree whatever the flags say.
    const legacy = PvGuest.start(built, xen, { variant: 'legacy-tree' });
    expect(legacy.tree).to.not.equal(undefined);
  });

  it('names the valid guests for an unknown one; a fault name brings its personality', () => {
    expect(() => parseGuestVariant('nope')).to.throw(GuestConfigError, 'unknown guest "nope"; valid: legacy-tree, linear, tree+linear, skip-bump,');
    expect(parseGuestVariant('stale-mid-page')).to.deep.equal({ name: 'stale-mid-page', personality: 'tree+linear', fault: 'stale-mid-page' });
  });

  it('refuses identity ranges that overlap RAM, with the numbers', () => {
    expect(() => makeGuest({ abi: X86_64, identityRanges: [{ start: 100, end: 200 }] })).to.throw(GuestConfigError, 'identity range [0x64, 0xc8) must be non-empty, above nr_pages 0x1000');
  });
});
