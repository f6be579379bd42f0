/**
 * mapGuestP2m (libxc `map_p2m`, reference §2.2 and §2.6) against booted guest-emu guests of every
 * personality on both ABIs: the mapping equals the guest's own p2m, the leaves are its leaf frames,
 * structural growth leaves an old mapping stale, hostile shared_info values fail with libxc's
 * errnos, and libxc's trims (quirks included) are reproduced.
 */

import { expect } from 'chai';
import { EINVAL, ENOENT, ERANGE, PAGE_SIZE, TOOLS_INVALID_MFN, wordMask, xen_pfn_to_cr3, type GuestAbi } from '../../abi/index.js';
import { PrivilegedInterface } from '../../xen-emu/privileged.js';
import type { Xen } from '../../xen-emu/xen.js';
import type { PvGuest } from '../../guest-emu/guest.js';
import { mapGuestP2m, P2mMapError, type MappedP2m, type P2mMapFailure } from '../../toolstack/index.js';
import { ABIS, PERSONALITIES, finish, makeGuest } from '../guest-emu/support/world.js';

const fppOf = (abi: GuestAbi): number => PAGE_SIZE / abi.wordSize;
/** Pfns one L2 entry of the list's mapping covers: 512 leaf pages. */
const pfnsPerPmd = (abi: GuestAbi): number => 512 * fppOf(abi);

type Field = 'max_pfn' | 'pfn_to_mfn_frame_list_list' | 'p2m_cr3' | 'p2m_vaddr' | 'p2m_generation';

function setShared(g: PvGuest, field: Field, value: bigint): void {
  finish(g.storeShared(field, value, `test: ${field}`));
}

function tools(xen: Xen): PrivilegedInterface {
  return new PrivilegedInterface(xen);
}

function expectFailure(fn: () => unknown, errno: number, failure: P2mMapFailure): P2mMapError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a P2mMapError').to.be.instanceOf(P2mMapError);
  const err = caught as P2mMapError;
  expect(err.failure, err.message).to.equal(failure);
  expect(err.errno, err.message).to.equal(errno);
  return err;
}

/** Stores one guest word into a frame, as a guest store (the test's hostile edit of a table). */
function storeFrameWord(g: PvGuest, mfn: bigint, index: number, value: bigint, width: 4 | 8): void {
  g.xen.storeWord({ domid: g.domid, by: 'guest' }, Number(mfn), index * width, value, width);
}

/** Hot-plugs a leaf's worth of pfns at `first` and balloons the first in: a new PTE page and leaf. */
function growAt(g: PvGuest, first: number): void {
  finish(g.hotplug(first, fppOf(g.abi)));
  finish(g.balloonOut(3000));
  expect(finish(g.balloonIn(first))).to.equal(true);
}

function expectMatchesGuest(m: MappedP2m, g: PvGuest): void {
  for (let pfn = 0; pfn < m.p2mSize; pfn++) {
    const own = g.list.read(pfn);
    if (m.rawEntry(pfn) !== own) expect.fail(`pfn ${pfn}: mapped ${m.rawEntry(pfn)}, guest ${own}`);
  }
  m.leafMfns.forEach((mfn, leaf) => {
    expect(mfn, `leaf ${leaf}`).to.equal(g.mfnOf(g.list.leafPagePfn(leaf)));
    expect(m.leafPfns[leaf], `leaf pfn ${leaf}`).to.equal(g.list.leafPagePfn(leaf));
  });
}

describe('toolstack: mapGuestP2m (libxc map_p2m)', function () {
  this.timeout(60_000);

  for (const abi of ABIS) {
    const fpp = fppOf(abi);
    for (const personality of PERSONALITIES) {
      const listMode = personality !== 'legacy-tree';
      describe(`${abi.name} ${personality}`, () => {
        it(`maps the ${listMode ? 'linear list' : 'tree'} and equals the guest's own p2m for every pfn`, () => {
          const { xen, g } = makeGuest({ abi, variant: personality });
          finish(g.balloonOut(3000));
          const m = mapGuestP2m(tools(xen), g.domid);
          expect(m.source).to.equal(listMode ? 'list' : 'tree');
          expect(m.width).to.equal(abi.wordSize);
          expect(m.levels).to.equal(abi.wordSize === 8 ? 4 : 3);
          expect(m.maxPfn).to.equal(Number(g.readShared('max_pfn')) - 1);
          expect(m.p2mSize).to.equal(g.lastPfn);
          expect(m.leafMfns.length).to.equal(Math.ceil(g.lastPfn / fpp));
          expect(m.maxMfn).to.equal(BigInt(xen.machine.maxPage));
          expectMatchesGuest(m, g);
          // A ballooned-out pfn reads INVALID, widened to the tools' 64-bit INVALID_MFN.
          expect(m.entry(3000)).to.equal(TOOLS_INVALID_MFN);
          expect(m.rawEntry(3000)).to.equal(wordMask(abi));
          expect(m.entry(5)).to.equal(g.list.read(5));
          const snap = m.snapshot();
          expect(snap.length).to.equal(m.p2mSize);
          expect(snap.get(7)).to.equal(g.list.read(7));
          expect(() => m.entry(m.p2mSize)).to.throw(RangeError);
          if (listMode) {
            expect(m.p2mCr3).to.equal(g.readShared('p2m_cr3'));
            expect(m.p2mVaddr).to.equal(g.list.base);
            expect(m.fll).to.equal(undefined);
          } else {
            expect(m.p2mCr3).to.equal(0n);
            expect(m.fll).to.equal(g.mfnOf(g.tree!.fllPfn));
            expect(m.p2mGeneration).to.equal(TOOLS_INVALID_MFN);
          }
        });

        it('reads element stores live through the mapping', () => {
          const { xen, g } = makeGuest({ abi, variant: personality });
          const m = mapGuestP2m(tools(xen), g.domid);
          const before = m.rawEntry(2500);
          expect(before).to.not.equal(wordMask(abi));
          finish(g.balloonOut(2500));
          expect(m.rawEntry(2500)).to.equal(wordMask(abi));
          expect(m.entry(2500)).to.equal(TOOLS_INVALID_MFN);
        });

        if (listMode) {
          it('records the p2m_generation baseline as it reads', () => {
            const { xen, g } = makeGuest({ abi, variant: personality });
            setShared(g, 'p2m_generation', 6n);
            expect(mapGuestP2m(tools(xen), g.domid).p2mGeneration).to.equal(6n);
          });
        }

        it('an old mapping keeps the old structure after a new leaf; a fresh map sees it', () => {
          const { xen, g } = makeGuest({ abi, variant: personality, memoryPages: 4096, maxPages: 4096 + 2 * fpp });
          const old = mapGuestP2m(tools(xen), g.domid);
          const pfn = Math.ceil(4096 / fpp) * fpp + 10;
          expect(finish(g.balloonIn(pfn))).to.equal(true);
          const leaf = g.list.leafIndex(pfn);
          const newLeafMfn = g.mfnOf(g.list.leafPagePfn(leaf));
          expect(old.leafMfns).to.not.include(newLeafMfn);
          expect(old.p2mSize).to.equal(4096);
          expect(() => old.entry(pfn)).to.throw(RangeError);
          const fresh = mapGuestP2m(tools(xen), g.domid);
          expect(fresh.leafMfns[leaf]).to.equal(newLeafMfn);
          expect(fresh.maxPfn).to.be.at.least(pfn);
          expect(fresh.rawEntry(pfn)).to.equal(g.list.read(pfn));
          expect(fresh.rawEntry(pfn)).to.not.equal(wordMask(abi));
          expect(fresh.leafMfns.slice(0, old.leafMfns.length)).to.deep.equal(old.leafMfns);
          if (listMode) {
            expect(old.p2mGeneration).to.equal(0n);
            expect(fresh.p2mGeneration).to.equal(2n);
          }
        });
      });
    }

    describe(`${abi.name} choice and hostile shared_info`, () => {
      it('tree+linear: p2m_cr3 set means the list; with p2m_cr3 0 the tree gives the same p2m', () => {
        const { xen, g } = makeGuest({ abi, variant: 'tree+linear' });
        // A bad fll is never looked at while p2m_cr3 is set.
        const fll = g.readShared('pfn_to_mfn_frame_list_list');
        setShared(g, 'pfn_to_mfn_frame_list_list', 0n);
        const list = mapGuestP2m(tools(xen), g.domid);
        expect(list.source).to.equal('list');
        setShared(g, 'pfn_to_mfn_frame_list_list', fll);
        setShared(g, 'p2m_cr3', 0n);
        const tree = mapGuestP2m(tools(xen), g.domid);
        expect(tree.source).to.equal('tree');
        expect(tree.fll).to.equal(fll);
        expect(tree.leafMfns).to.deep.equal(list.leafMfns);
        expect(tree.p2mSize).to.equal(list.p2mSize);
        expectMatchesGuest(tree, g);
      });

      it('linear guest with p2m_cr3 0 falls to the tree and its ~0 fll fails (EINVAL)', () => {
        const { xen, g } = makeGuest({ abi, variant: 'linear' });
        setShared(g, 'p2m_cr3', 0n);
        const err = expectFailure(() => mapGuestP2m(tools(xen), g.domid), EINVAL, 'bad-fll');
        expect(err.detail.fll).to.equal(wordMask(abi));
      });

      it('fll 0 fails with bad-fll', () => {
        const { xen, g } = makeGuest({ abi, variant: 'legacy-tree' });
        setShared(g, 'pfn_to_mfn_frame_list_list', 0n);
        const err = expectFailure(() => mapGuestP2m(tools(xen), g.domid), EINVAL, 'bad-fll');
        expect(err.detail.fll).to.equal(0n);
      });

      it('fll > max_mfn fails; fll == max_mfn passes the check (off by one) and the mapping refuses it', () => {
        const { xen, g } = makeGuest({ abi, variant: 'legacy-tree' });
        const maxMfn = BigInt(xen.machine.maxPage);
        setShared(g, 'pfn_to_mfn_frame_list_list', maxMfn + 1n);
        const err = expectFailure(() => mapGuestP2m(tools(xen), g.domid), EINVAL, 'bad-fll');
        expect(err.detail).to.include({ fll: maxMfn + 1n, maxMfn });
        setShared(g, 'pfn_to_mfn_frame_list_list', maxMfn);
        const mapErr = expectFailure(() => mapGuestP2m(tools(xen), g.domid), EINVAL, 'map-failed');
        expect(mapErr.detail.mfn).to.equal(maxMfn);
      });

      it('max_pfn too large for one top page fails', () => {
        const { xen, g } = makeGuest({ abi, variant: 'legacy-tree' });
        setShared(g, 'max_pfn', BigInt(fpp ** 3 + 1));
        expectFailure(() => mapGuestP2m(tools(xen), g.domid), EINVAL, 'tree-too-large');
      });

      it('max_pfn 0 (wrapping to ~0) is refused rather than read past the frame list', () => {
        const { xen, g } = makeGuest({ abi, variant: 'legacy-tree' });
        setShared(g, 'max_pfn', 0n);
        expect(expectFailure(() => mapGuestP2m(tools(xen), g.domid), EINVAL, 'empty-p2m').detail.maxPfn).to.equal((1n << 64n) - 1n);
      });

      it('a zero entry in the top page or a mid page fails with its index', () => {
        const { xen, g } = makeGuest({ abi, variant: 'legacy-tree' });
        const m = mapGuestP2m(tools(xen), g.domid);
        const midMfn = g.mfnOf(g.tree!.midPfn[0]!);
        storeFrameWord(g, midMfn, 3, 0n, abi.wordSize);
        const fl = expectFailure(() => mapGuestP2m(tools(xen), g.domid), EINVAL, 'bad-fl-entry');
        expect(fl.detail).to.include({ index: 3, mfn: 0n });
        storeFrameWord(g, midMfn, 3, m.leafMfns[3]!, abi.wordSize);
        storeFrameWord(g, m.fll!, 0, 0n, abi.wordSize);
        const fll = expectFailure(() => mapGuestP2m(tools(xen), g.domid), EINVAL, 'bad-fll-entry');
        expect(fll.detail).to.include({ index: 0, mfn: 0n });
      });

      it('a mid entry naming a frame that is not a p2m leaf fails mfn_in_pseudophysmap (ERANGE)', () => {
        const { xen, g } = makeGuest({ abi, variant: 'legacy-tree' });
        const midMfn = g.mfnOf(g.tree!.midPfn[0]!);
        // pfn 100's frame: its m2p is 100, and p2m[100] is that frame, but as leaf 2 it is read as
        // p2m entries, so p2m[100] is no longer that mfn.
        const data = g.mfnOf(100);
        storeFrameWord(g, midMfn, 0, data, abi.wordSize);
        const err = expectFailure(() => mapGuestP2m(tools(xen), g.domid), ERANGE, 'bad-leaf');
        expect(err.detail).to.include({ index: 0, mfn: data });
      });

      it('a p2m_cr3 whose root is above max_mfn fails (ERANGE); a root of 0 is refused (libxc asserts)', () => {
        const { xen, g } = makeGuest({ abi, variant: 'linear' });
        const maxMfn = BigInt(xen.machine.maxPage);
        setShared(g, 'p2m_cr3', xen_pfn_to_cr3(abi, maxMfn + 1n));
        const err = expectFailure(() => mapGuestP2m(tools(xen), g.domid), ERANGE, 'bad-p2m-cr3');
        expect(err.detail).to.include({ mfn: maxMfn + 1n, maxMfn });
        if (abi.wordSize === 8) {
          setShared(g, 'p2m_cr3', 0x800n);
          expectFailure(() => mapGuestP2m(tools(xen), g.domid), EINVAL, 'root-mfn-zero');
        } else {
          // PAE folding moves low bits up: 0x800 is mfn 0x80000000, out of range, not 0.
          setShared(g, 'p2m_cr3', 0x800n);
          expect(expectFailure(() => mapGuestP2m(tools(xen), g.domid), ERANGE, 'bad-p2m-cr3').detail.mfn).to.equal(0x80000000n);
        }
      });

      it("a p2m_vaddr range overlapping Xen's area fails (ERANGE)", () => {
        const { xen, g } = makeGuest({ abi, variant: 'linear' });
        const xenStart = abi.wordSize === 8 ? 0xffff800000000000n : 0xf5800000n;
        setShared(g, 'p2m_vaddr', xenStart - 2n * BigInt(PAGE_SIZE));
        const err = expectFailure(() => mapGuestP2m(tools(xen), g.domid), ERANGE, 'bad-vaddr-range');
        expect(err.detail.vaddr).to.equal(xenStart - 2n * BigInt(PAGE_SIZE));
        // Clear of the area (x86_64: just above it, below it is non-canonical; x86_32: ending just
        // below it) the range check passes and the walk runs into unmapped tables.
        const frames = BigInt(Math.ceil(g.lastPfn / fpp));
        setShared(g, 'p2m_vaddr', abi.wordSize === 8 ? 0xffff880000000000n : xenStart - frames * BigInt(PAGE_SIZE));
        expect(() => mapGuestP2m(tools(xen), g.domid)).to.throw(P2mMapError).that.satisfies((e: P2mMapError) => e.failure !== 'bad-vaddr-range');
      });

      it('a non-canonical (x86_64) or past-4-GiB (x86_32) range fails (ERANGE)', () => {
        const { xen, g } = makeGuest({ abi, variant: 'linear' });
        const va = abi.wordSize === 8 ? 0x0000800000000000n - BigInt(PAGE_SIZE) : 0xfffff000n;
        setShared(g, 'p2m_vaddr', va);
        const err = expectFailure(() => mapGuestP2m(tools(xen), g.domid), ERANGE, 'bad-vaddr-range');
        expect(err.detail.vaddrEnd! > err.detail.vaddr!).to.equal(true);
        if (abi.wordSize === 8) {
          setShared(g, 'p2m_vaddr', 0x0000800000000000n);
          expectFailure(() => mapGuestP2m(tools(xen), g.domid), ERANGE, 'bad-vaddr-range');
        }
      });

      it('a zero frame in a page table of the list fails at its level and index (ERANGE)', () => {
        const { xen, g } = makeGuest({ abi, variant: 'linear' });
        const m = mapGuestP2m(tools(xen), g.domid);
        // The L1 page mapping the first leaves: zero its third PTE.
        const l1Mfn = g.mfnOf(g.list.ptePfn[0]!);
        const l1Index = Number((m.p2mVaddr! >> 12n) & 511n) + 2;
        storeFrameWord(g, l1Mfn, l1Index, 0n, 8);
        const err = expectFailure(() => mapGuestP2m(tools(xen), g.domid), ERANGE, 'bad-pte-frame');
        expect(err.detail).to.include({ level: 1, mfn: 0n, index: l1Index });
        // libxc reports the address with its walk offset, masked to the 48-bit index space.
        expect(err.detail.vaddr).to.equal((m.p2mVaddr! & 0xffffffffffffn) + 2n * BigInt(PAGE_SIZE));
      });

      it('tree trim: trailing repeats of the missing mid page lower max_pfn, keeping the first', () => {
        const { xen, g } = makeGuest({ abi, variant: 'legacy-tree' });
        const perMid = fpp * fpp;
        setShared(g, 'max_pfn', BigInt(3 * perMid));
        const m = mapGuestP2m(tools(xen), g.domid);
        expect(m.maxPfn).to.equal(2 * perMid - 1);
        expect(m.leafMfns.length).to.equal(2 * fpp);
        expect(m.rawEntry(10)).to.equal(g.list.read(10));
        expect(m.entry(perMid + 5)).to.equal(TOOLS_INVALID_MFN);
        // Two distinct trailing entries: nothing to trim beyond the last distinct one.
        setShared(g, 'max_pfn', BigInt(perMid));
        expect(mapGuestP2m(tools(xen), g.domid).maxPfn).to.equal(perMid - 1);
      });

      it('list trim at level 2: a trailing run of one PTE page is dropped whole, first entry included', () => {
        const { xen, g } = makeGuest({ abi, variant: 'linear' });
        const pmd = pfnsPerPmd(abi);
        // The guest has real PTE pages for its first mid's PMDs (1 on x86_64, 2 on x86_32); beyond
        // them every L2 entry is the shared missing PTE page.
        const real = g.list.pmdsPerMid;
        expect(g.list.ptePfn[real]).to.be.below(0);
        setShared(g, 'max_pfn', BigInt(4 * pmd));
        const m = mapGuestP2m(tools(xen), g.domid);
        expect(m.maxPfn).to.equal(real * pmd - 1);
        expect(m.leafMfns.length).to.equal(real * 512);
        expectMatchesGuest(m, g);
      });

      it('list trim with 1 GiB-aligned p2m_vaddr: a distinct last PMD trims nothing', () => {
        const { xen, g } = makeGuest({ abi, variant: 'linear' });
        const pmd = pfnsPerPmd(abi);
        growAt(g, 2 * pmd);
        setShared(g, 'max_pfn', BigInt(3 * pmd));
        const m = mapGuestP2m(tools(xen), g.domid);
        expect(m.maxPfn).to.equal(3 * pmd - 1);
        expect(m.rawEntry(2 * pmd)).to.equal(g.list.read(2 * pmd));
        expect(m.leafMfns[(2 * pmd) / fpp]).to.equal(g.mfnOf(g.list.leafPagePfn((2 * pmd) / fpp)));
      });

      it('list trim quirk: p2m_vaddr not 1 GiB-aligned and a distinct last PMD cuts that PMD off', () => {
        const { xen, g } = makeGuest({ abi, variant: 'linear' });
        const pmd = pfnsPerPmd(abi);
        growAt(g, 2 * pmd);
        // From the second PMD (the shared missing PTE page) to the third (a real one): two L2 entries.
        setShared(g, 'p2m_vaddr', g.list.base + 2n * 1024n * 1024n);
        setShared(g, 'max_pfn', BigInt(2 * pmd));
        // libxc compares a relative index with an absolute one and trims to one PMD; the remaining
        // leaves are the shared missing page, whose pfn then reads INVALID: mfn_in_pseudophysmap fails.
        const err = expectFailure(() => mapGuestP2m(tools(xen), g.domid), ERANGE, 'bad-leaf');
        expect(err.detail.maxPfn).to.equal(BigInt(pmd - 1));
        expect(err.detail.mfn).to.equal(g.mfnOf(g.list.missingPfn));
      });

      it('an unknown domain fails in the privileged interface (ESRCH), not here', () => {
        const { xen } = makeGuest({ abi, variant: 'linear' });
        expect(() => mapGuestP2m(tools(xen), 99)).to.throw().with.property('name', 'PrivilegedError');
      });
    });
  }

  it('a frame of another domain in the tree is refused by the mapping (ENOENT)', () => {
    const { xen, g } = makeGuest({ abi: ABIS[1]!, variant: 'legacy-tree' });
    const other = makeGuest({ abi: ABIS[1]!, variant: 'linear', memoryPages: 1400, maxPages: 1400 }, xen).g;
    setShared(g, 'pfn_to_mfn_frame_list_list', other.mfnOf(10));
    const err = expectFailure(() => mapGuestP2m(tools(xen), g.domid), ENOENT, 'map-failed');
    expect(err.detail.mfn).to.equal(other.mfnOf(10));
  });
});
