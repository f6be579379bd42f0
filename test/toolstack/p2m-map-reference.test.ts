/**
 * mapGuestP2m's walk reads 32-bit halves and keeps frames in typed arrays (issue 8). This holds the
 * implementation it replaced, unchanged but for its name (`referenceMapGuestP2m`: DataView and a
 * bigint per entry, a P2mArray per leaf), and checks that both give the same mapping, entry for
 * entry, or the same P2mMapError (errno, failure, detail, message) on tree and list layouts of both
 * ABIs, on every hostile shared_info, frame-list and page-table case of p2m-map.test.ts, and on
 * edge values the fast checks treat specially (a 32-bit ~0, high halves, PTE flag bits, max_mfn).
 */

import { expect } from 'chai';
import {
  EINVAL,
  ERANGE,
  HYPERVISOR_VIRT_START_PAE,
  HYPERVISOR_VIRT_START_X86_64,
  P2mArray,
  PAGE_SIZE,
  PTE_FRAME_MASK,
  TOOLS_INVALID_MFN,
  shared_info,
  toolsCr3ToMfn,
  toolsP2mEntry,
  xen_pfn_to_cr3,
  type GuestAbi,
} from '../../abi/index.js';
import { INVALID_M2P } from '../../xen-emu/machine.js';
import { PrivilegedInterface } from '../../xen-emu/privileged.js';
import type { PvGuest } from '../../guest-emu/guest.js';
import { mapGuestP2m, P2mMapError, type MappedP2m } from '../../toolstack/index.js';
import { ABIS, PERSONALITIES, finish, makeGuest, type World } from '../guest-emu/support/world.js';

/** The reference's result: the MappedP2m of before (per-leaf P2mArrays, bigint frame lists). */
type ReferenceMapping = Omit<MappedP2m, 'leafMfnArray' | 'leafPfnArray' | 'leafWords'>;

// ---------------------------------------------------------------------------------------------
// The reference: toolstack/p2m-map.ts as it was before the typed-array walk.
// ---------------------------------------------------------------------------------------------

const U64 = (1n << 64n) - 1n;
const U32 = (1n << 32n) - 1n;

/** libxc's bounds of Xen's virtual area as `map_p2m_list` tests them (inclusive ends). */
const XEN_VA_X86_64 = { start: HYPERVISOR_VIRT_START_X86_64, end: 0xffff87ffffffffffn } as const;
const XEN_VA_X86_32 = { start: HYPERVISOR_VIRT_START_PAE, end: 0xffffffffn } as const;
/** Virtual-address masks of the walk: 48 bits of index space on x86_64, 32 on PAE. */
const VA_MASK_X86_64 = 0x0000ffffffffffffn;
const VA_MASK_X86_32 = 0xffffffffn;
const PTES_PER_PAGE = PAGE_SIZE / 8;

interface Ctx {
  readonly tools: PrivilegedInterface;
  readonly domid: number;
  readonly abi: GuestAbi;
  readonly width: 4 | 8;
  readonly fpp: number;
  readonly maxMfn: bigint;
}

function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** `xc_map_foreign_pages`: all frames or a failure with privcmd's errno. */
function mapFrames(c: Ctx, mfns: readonly bigint[], what: string): Uint8Array[] {
  // Every mfn here already passed a `≤ max_mfn` check, so it is a safe integer.
  const { pages, errors } = c.tools.mapForeign(c.domid, mfns.map(Number));
  const bad = errors.findIndex((e) => e !== 0);
  if (bad >= 0) {
    throw new P2mMapError(-errors[bad]!, 'map-failed', { maxMfn: c.maxMfn, mfn: mfns[bad]!, index: bad }, `failed to map ${what}: mfn ${hex(mfns[bad]!)} (index ${bad}) errno ${-errors[bad]!}`);
  }
  return pages as Uint8Array[];
}

/** Guest word `i` of a run of mapped pages, as the toolstack copies it (32-bit ~0 widened). */
function guestWord(c: Ctx, pages: readonly Uint8Array[], i: number): bigint {
  const perPage = c.fpp;
  const page = pages[Math.floor(i / perPage)]!;
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  const at = (i % perPage) * c.width;
  return c.width === 8 ? view.getBigUint64(at, true) : toolsP2mEntry(c.abi, BigInt(view.getUint32(at, true)));
}

function pte(pages: readonly Uint8Array[], i: number): bigint {
  const page = pages[Math.floor(i / PTES_PER_PAGE)];
  // libxc indexes past its mapping here only if the walk's arithmetic is inconsistent; say so.
  if (!page) throw new RangeError(`page-table index ${i} beyond the ${pages.length} mapped pages`);
  return new DataView(page.buffer, page.byteOffset, PAGE_SIZE).getBigUint64((i % PTES_PER_PAGE) * 8, true);
}

interface Shared {
  readonly maxPfnField: bigint;
  readonly fll: bigint;
  readonly p2mCr3: bigint;
  readonly p2mVaddr: bigint;
  readonly generation: bigint;
}

function readShared(c: Ctx): Shared {
  const page = c.tools.sharedInfo(c.domid);
  const si = shared_info.view(c.abi, Buffer.from(page.buffer, page.byteOffset, PAGE_SIZE));
  const a = si.arch;
  return {
    maxPfnField: BigInt(a.max_pfn),
    fll: BigInt(a.pfn_to_mfn_frame_list_list),
    p2mCr3: BigInt(a.p2m_cr3),
    p2mVaddr: BigInt(a.p2m_vaddr),
    generation: BigInt(a.p2m_generation),
  };
}

interface Walked {
  readonly maxPfn: bigint;
  readonly leafMfns: bigint[];
  /** The frames above the leaves that the walk read: the fll and mid pages, or the page tables. */
  readonly structureMfns: bigint[];
}

/** `map_p2m_tree` up to the leaves: fll → mids → leaf mfns, with the trailing-duplicate trim. */
function walkTree(c: Ctx, fll: bigint, maxPfnIn: bigint): Walked {
  const fpp = BigInt(c.fpp);
  const fpp2 = fpp * fpp;
  let maxPfn = maxPfnIn;
  // libxc computes this in an unsigned int: a huge max_pfn truncates, and 0 means "copy nothing".
  let fllEntries = Number((maxPfn / fpp2 + 1n) & U32);
  if (fllEntries > c.fpp) {
    throw new P2mMapError(EINVAL, 'tree-too-large', { maxMfn: c.maxMfn, maxPfn }, `max_pfn ${hex(maxPfn)} too large for p2m tree`);
  }
  if (fll === 0n || fll > c.maxMfn) {
    throw new P2mMapError(EINVAL, 'bad-fll', { maxMfn: c.maxMfn, fll, mfn: fll }, `bad mfn ${hex(fll)} for p2m frame list list (max_mfn ${hex(c.maxMfn)})`);
  }
  if (fllEntries === 0) {
    // libxc would go on to read an unallocated frame list; refuse instead of inventing a result.
    throw new P2mMapError(EINVAL, 'empty-p2m', { maxMfn: c.maxMfn, maxPfn, fll }, `max_pfn ${hex(maxPfn)} leaves no frame list list entries`);
  }
  const [top] = mapFrames(c, [fll], 'p2m frame list list');
  const topList: bigint[] = [];
  let savedMfn = 0n;
  let savedX = 0;
  for (let x = 0; x < fllEntries; x++) {
    const mfn = guestWord(c, [top!], x);
    if (mfn === 0n || mfn > c.maxMfn) {
      throw new P2mMapError(EINVAL, 'bad-fll-entry', { maxMfn: c.maxMfn, fll, mfn, index: x }, `bad mfn ${hex(mfn)} at index ${x} (of ${fllEntries}) in p2m frame list list`);
    }
    if (mfn !== savedMfn) {
      savedMfn = mfn;
      savedX = x;
    }
    topList.push(mfn);
  }
  // Trailing repeats of one mid mfn are taken as the shared all-missing mid page; the first is kept.
  const trimmed = BigInt(savedX + 1) * fpp2 - 1n;
  if (trimmed < maxPfn) {
    maxPfn = trimmed;
    fllEntries = Number(maxPfn / fpp2 + 1n);
  }
  const flEntries = Number(maxPfn / fpp + 1n);
  const mids = mapFrames(c, topList.slice(0, fllEntries), 'p2m frame list');
  const leafMfns: bigint[] = [];
  for (let x = 0; x < flEntries; x++) {
    const mfn = guestWord(c, mids, x);
    if (mfn === 0n || mfn > c.maxMfn) {
      throw new P2mMapError(EINVAL, 'bad-fl-entry', { maxMfn: c.maxMfn, fll, mfn, index: x }, `bad mfn ${hex(mfn)} at index ${x} (of ${flEntries}) in p2m frame list`);
    }
    leafMfns.push(mfn);
  }
  return { maxPfn, leafMfns, structureMfns: [fll, ...topList.slice(0, fllEntries)] };
}

function isCanonical(va: bigint): boolean {
  const top = va >> 47n;
  return top === 0n || top === (1n << 17n) - 1n;
}

/** `map_p2m_list` up to the leaves: the page-table walk from p2m_cr3, with the level-2 trim. */
function walkList(c: Ctx, p2mCr3: bigint, p2mVaddr: bigint, maxPfnIn: bigint): Walked {
  const fpp = BigInt(c.fpp);
  const rootMfn = toolsCr3ToMfn(c.abi, p2mCr3);
  if (rootMfn === 0n) {
    throw new P2mMapError(EINVAL, 'root-mfn-zero', { maxMfn: c.maxMfn, p2mCr3, mfn: 0n }, `p2m_cr3 ${hex(p2mCr3)} folds to mfn 0 (libxc asserts)`);
  }
  if (rootMfn > c.maxMfn) {
    throw new P2mMapError(ERANGE, 'bad-p2m-cr3', { maxMfn: c.maxMfn, p2mCr3, mfn: rootMfn }, `bad p2m_cr3 value ${hex(p2mCr3)} (root mfn ${hex(rootMfn)}, max_mfn ${hex(c.maxMfn)})`);
  }
  let maxPfn = maxPfnIn;
  // p2m_frames is an unsigned int in libxc; the end address wraps at 64 bits.
  const endOf = (frames: bigint): bigint => (p2mVaddr + frames * BigInt(PAGE_SIZE) - 1n) & U64;
  let p2mEnd = endOf((maxPfn / fpp + 1n) & U32);
  const wide = c.width === 8;
  const mask = wide ? VA_MASK_X86_64 : VA_MASK_X86_32;
  const xenVa = wide ? XEN_VA_X86_64 : XEN_VA_X86_32;
  const shapeOk = wide ? isCanonical(p2mVaddr) && isCanonical(p2mEnd) : p2mVaddr <= mask && p2mEnd <= mask;
  if (!shapeOk || p2mEnd < p2mVaddr || (p2mVaddr <= xenVa.end && p2mEnd > xenVa.start)) {
    throw new P2mMapError(ERANGE, 'bad-vaddr-range', { maxMfn: c.maxMfn, p2mCr3, vaddr: p2mVaddr, vaddrEnd: p2mEnd }, `bad virtual p2m address range ${hex(p2mVaddr)}-${hex(p2mEnd)}`);
  }

  let mfns: bigint[] = [rootMfn];
  let off = 0n;
  let savedMfn = 0n;
  let idxStart = 0;
  let idxEnd = 0;
  let savedIdx = 0;
  const levels = wide ? 4 : 3;
  const structureMfns: bigint[] = [];
  for (let level = levels; level > 0; level--) {
    const nPages = idxEnd - idxStart + 1;
    structureMfns.push(...mfns.slice(0, nPages));
    const ptes = mapFrames(c, mfns.slice(0, nPages), `${nPages} page-table pages of the p2m list`);
    const shift = BigInt(level * 9 + 3);
    idxStart = Number(((p2mVaddr - off) & mask) >> shift);
    idxEnd = Number(((p2mEnd - off) & mask) >> shift);
    const next: bigint[] = [];
    for (let idx = idxStart; idx <= idxEnd; idx++) {
      const mfn = (pte(ptes, idx) & PTE_FRAME_MASK) >> 12n;
      if (mfn === 0n || mfn > c.maxMfn) {
        const vaddr = (off + (BigInt(idx) << shift)) & U64;
        throw new P2mMapError(ERANGE, 'bad-pte-frame', { maxMfn: c.maxMfn, p2mCr3, mfn, index: idx, level, vaddr }, `bad mfn ${hex(mfn)} during page table walk for vaddr ${hex(vaddr)} at level ${level} of p2m list`);
      }
      next.push(mfn);
      if (level === 2 && mfn !== savedMfn) {
        savedMfn = mfn;
        // Relative to idxStart, yet compared below with the absolute idxEnd: libxc's quirk.
        savedIdx = idx - idxStart;
      }
    }
    if (level === 2) {
      if (savedIdx === idxEnd) savedIdx++;
      // xen_pfn_t arithmetic: savedIdx 0 wraps to ~0 and trims nothing.
      const trimmed = ((BigInt(savedIdx) << 9n) * fpp - 1n) & U64;
      if (trimmed < maxPfn) {
        maxPfn = trimmed;
        p2mEnd = endOf(((maxPfn + fpp) / fpp) & U32);
        idxEnd = idxStart + savedIdx;
      }
    }
    mfns = next;
    off = p2mVaddr & ((mask >> shift) << shift);
  }
  return { maxPfn, leafMfns: mfns.slice(0, idxEnd - idxStart + 1), structureMfns };
}

/**
 * libxc's `map_p2m` for domain `domid`: reads shared_info, walks the list (p2m_cr3 ≠ 0) or the
 * tree, maps the leaves and checks each against the m2p. Throws `P2mMapError` on every failure
 * libxc reports (and `PrivilegedError` from the interface itself, e.g. no such domain).
 */
function referenceMapGuestP2m(tools: PrivilegedInterface, domid: number): ReferenceMapping {
  const info = tools.domainInfo(domid);
  const abi = info.abi;
  const width = abi.wordSize as 4 | 8;
  const c: Ctx = { tools, domid, abi, width, fpp: PAGE_SIZE / width, maxMfn: BigInt(tools.maximumRamPage()) };
  const shared = readShared(c);
  // max_pfn - 1 in a 64-bit xen_pfn_t: a zero field wraps.
  const maxPfn0 = (shared.maxPfnField - 1n) & U64;
  const useList = shared.p2mCr3 !== 0n;
  const walked = useList ? walkList(c, shared.p2mCr3, shared.p2mVaddr, maxPfn0) : walkTree(c, shared.fll, maxPfn0);
  const maxPfn = walked.maxPfn;
  if (maxPfn >= BigInt(walked.leafMfns.length * c.fpp)) {
    // libxc would index past its mapping here; refuse instead of reading what is not mapped.
    throw new P2mMapError(EINVAL, 'frames-truncated', { maxMfn: c.maxMfn, maxPfn }, `max_pfn ${hex(maxPfn)} needs more than the ${walked.leafMfns.length} leaves walked`);
  }
  const pages = mapFrames(c, walked.leafMfns, 'p2m frames');
  const leaves = pages.map((p) => P2mArray.page(abi, p));
  const p2mSize = Number(maxPfn + 1n);
  const fpp = c.fpp;

  const rawEntry = (pfn: number): bigint => {
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= p2mSize) throw new RangeError(`pfn ${pfn} outside the mapped p2m [0, ${p2mSize})`);
    return leaves[Math.floor(pfn / fpp)]!.get(pfn % fpp);
  };
  const entry = (pfn: number): bigint => toolsP2mEntry(abi, rawEntry(pfn));

  // mfn_in_pseudophysmap for every leaf: its m2p names a pfn whose entry is that very mfn.
  const leafPfns = walked.leafMfns.map((mfn, x) => {
    const raw = mfn <= c.maxMfn ? tools.m2p(Number(mfn)) : INVALID_M2P;
    // The emulator's "no entry" is 32 bits wide; a 64-bit toolstack's mapped m2p holds ~0UL.
    const pfn = raw === INVALID_M2P ? TOOLS_INVALID_MFN : BigInt(raw);
    const ok = mfn <= c.maxMfn && pfn <= maxPfn && entry(Number(pfn)) === mfn;
    if (!ok) {
      throw new P2mMapError(ERANGE, 'bad-leaf', { maxMfn: c.maxMfn, mfn, index: x, maxPfn }, `bad mfn ${hex(mfn)} in p2m_frame_list[${x}] (m2p ${hex(pfn)}, max_pfn ${hex(maxPfn)})`);
    }
    return Number(pfn);
  });

  return {
    domid,
    abi,
    width,
    levels: width === 8 ? 4 : 3,
    source: useList ? 'list' : 'tree',
    fll: useList ? undefined : shared.fll,
    p2mCr3: shared.p2mCr3,
    p2mVaddr: useList ? shared.p2mVaddr : undefined,
    maxMfn: c.maxMfn,
    maxPfn: Number(maxPfn),
    p2mSize,
    leafMfns: walked.leafMfns,
    structureMfns: walked.structureMfns,
    leafPfns,
    leaves,
    p2mGeneration: useList ? shared.generation : U64,
    entry,
    rawEntry,
    snapshot(): P2mArray {
      const out = P2mArray.alloc(abi, p2mSize);
      for (let x = 0; x < leaves.length; x++) {
        const start = x * fpp;
        const n = Math.min(fpp, p2mSize - start);
        if (n <= 0) break;
        out.elements.set(leaves[x]!.elements.subarray(0, n) as never, start);
      }
      return out;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The comparison.
// ---------------------------------------------------------------------------------------------

type Outcome = { readonly mapping: MappedP2m } | { readonly error: unknown };
type ReferenceOutcome = { readonly mapping: ReferenceMapping } | { readonly error: unknown };

function attempt<T>(fn: () => T): { mapping: T } | { error: unknown } {
  try {
    return { mapping: fn() };
  } catch (error) {
    return { error };
  }
}

/** What `fn` threw, as `describeError` gives it, or 'returned'. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
    return 'returned';
  } catch (e) {
    return describeError(e);
  }
}

function describeError(e: unknown): unknown {
  if (e instanceof P2mMapError) return { cls: 'P2mMapError', errno: e.errno, failure: e.failure, detail: { ...e.detail }, message: e.message };
  if (e instanceof Error) return { cls: e.name, message: e.message };
  return { thrown: String(e) };
}

/** Both implementations on the domain as it is now; returns the P2mMapError's failure, another error's name, or 'mapped'. */
function expectSameMapping(w: World, what: string): string {
  const tools = new PrivilegedInterface(w.xen);
  const ref: ReferenceOutcome = attempt(() => referenceMapGuestP2m(tools, w.g.domid));
  const fast: Outcome = attempt(() => mapGuestP2m(tools, w.g.domid));
  if ('error' in ref || 'error' in fast) {
    expect('error' in fast, `${what}: fast ${'error' in fast ? describeError(fast.error) : 'mapped'}`).to.equal('error' in ref);
    expect(describeError((fast as { error: unknown }).error), what).to.deep.equal(describeError((ref as { error: unknown }).error));
    const error = (ref as { error: unknown }).error;
    return error instanceof P2mMapError ? error.failure : error instanceof Error ? error.name : 'thrown';
  }
  const r = ref.mapping;
  const f = fast.mapping;
  for (const key of ['domid', 'width', 'levels', 'source', 'fll', 'p2mCr3', 'p2mVaddr', 'maxMfn', 'maxPfn', 'p2mSize', 'p2mGeneration'] as const) {
    expect(f[key], `${what}: ${key}`).to.equal(r[key]);
  }
  expect(f.abi, what).to.equal(r.abi);
  expect(f.structureMfns, `${what}: structureMfns`).to.deep.equal(r.structureMfns);
  expect(f.leafMfns, `${what}: leafMfns`).to.deep.equal(r.leafMfns);
  expect(f.leafPfns, `${what}: leafPfns`).to.deep.equal(r.leafPfns);
  expect(Array.from(f.leafMfnArray, BigInt), `${what}: leafMfnArray`).to.deep.equal(r.leafMfns);
  expect(Array.from(f.leafPfnArray), `${what}: leafPfnArray`).to.deep.equal(r.leafPfns);
  expect(f.leaves.length, `${what}: leaves`).to.equal(r.leaves.length);
  expect(f.leafWords.length, `${what}: leafWords`).to.equal(r.leaves.length);
  r.leaves.forEach((leaf, x) => {
    const bytes = Buffer.from(leaf.elements.buffer, leaf.elements.byteOffset, PAGE_SIZE);
    const words = f.leafWords[x]!;
    const fastLeaf = f.leaves[x]!;
    if (fastLeaf.length !== leaf.length || !bytes.equals(Buffer.from(words.buffer, words.byteOffset, words.byteLength)) || !bytes.equals(Buffer.from(fastLeaf.elements.buffer, fastLeaf.elements.byteOffset, fastLeaf.elements.byteLength))) {
      expect.fail(`${what}: leaf ${x} differs`);
    }
  });
  // Every entry on small p2ms; on large ones a stride plus each leaf's first and last entries.
  const fpp = PAGE_SIZE / r.width;
  const step = r.p2mSize <= 16384 ? 1 : 61;
  const check = (pfn: number): void => {
    if (f.rawEntry(pfn) !== r.rawEntry(pfn) || f.entry(pfn) !== r.entry(pfn)) expect.fail(`${what}: pfn ${pfn}: ${f.rawEntry(pfn)} / ${f.entry(pfn)}, reference ${r.rawEntry(pfn)} / ${r.entry(pfn)}`);
  };
  for (let pfn = 0; pfn < r.p2mSize; pfn += step) check(pfn);
  for (let pfn = 0; pfn < r.p2mSize; pfn += fpp) check(pfn), check(Math.min(pfn + fpp, r.p2mSize) - 1);
  for (const pfn of [-1, 0.5, r.p2mSize, r.p2mSize + 1, NaN]) {
    expect(thrownBy(() => f.rawEntry(pfn)), `${what}: rawEntry(${pfn})`).to.deep.equal(thrownBy(() => r.rawEntry(pfn)));
    expect(thrownBy(() => f.entry(pfn)), `${what}: entry(${pfn})`).to.deep.equal(thrownBy(() => r.entry(pfn)));
  }
  const snapF = f.snapshot();
  const snapR = r.snapshot();
  expect(snapF.length, `${what}: snapshot`).to.equal(snapR.length);
  if (!Buffer.from(snapF.elements.buffer).equals(Buffer.from(snapR.elements.buffer))) expect.fail(`${what}: snapshots differ`);
  return 'mapped';
}

const fppOf = (abi: GuestAbi): number => PAGE_SIZE / abi.wordSize;
const pfnsPerPmd = (abi: GuestAbi): number => 512 * fppOf(abi);

type Field = 'max_pfn' | 'pfn_to_mfn_frame_list_list' | 'p2m_cr3' | 'p2m_vaddr' | 'p2m_generation';

function setShared(g: PvGuest, field: Field, value: bigint): void {
  finish(g.storeShared(field, value, `test: ${field}`));
}

function storeFrameWord(g: PvGuest, mfn: bigint, index: number, value: bigint, width: 4 | 8): void {
  g.xen.storeWord({ domid: g.domid, by: 'guest' }, Number(mfn), index * width, value, width);
}

/** Adds an outcome to the set a test checks its coverage with. */
function record(seen: Set<string>, outcome: string): string {
  seen.add(outcome);
  return outcome;
}

describe('toolstack: mapGuestP2m agrees with the per-entry reference walk', function () {
  this.timeout(120_000);

  for (const abi of ABIS) {
    const fpp = fppOf(abi);
    const wide = abi.wordSize === 8;
    const invalidWord = wide ? (1n << 64n) - 1n : 0xffffffffn;
    describe(abi.name, () => {
      for (const personality of PERSONALITIES) {
        it(`${personality}: a booted guest, ballooned, grown, then every max_pfn variant`, () => {
          const w = makeGuest({ abi, variant: personality, memoryPages: 4096, maxPages: 4096 + 2 * fpp });
          const seen = new Set<string>();
          const same = (what: string): string => record(seen, expectSameMapping(w, what));
          same('booted');
          finish(w.g.balloonOut(3000));
          finish(w.g.balloonOut(2500));
          same('ballooned');
          expect(finish(w.g.balloonIn(Math.ceil(4096 / fpp) * fpp + 10))).to.equal(true);
          same('grown');
          const last = BigInt(w.g.lastPfn);
          const perMid = BigInt(fpp * fpp);
          for (const maxPfn of [0n, 1n, 2n, BigInt(fpp), BigInt(fpp) + 1n, last - 1n, last, last + 1n, perMid, perMid + 1n, 3n * perMid, perMid * perMid, perMid * BigInt(fpp) + 1n, (1n << 32n) * perMid + 5n, (1n << 32n) * BigInt(fpp) + 5n * BigInt(fpp), 1n << 40n, (1n << 64n) - 1n]) {
            if (!wide && maxPfn > 0xffffffffn) continue;
            setShared(w.g, 'max_pfn', maxPfn);
            same(`max_pfn ${maxPfn}`);
          }
          expect([...seen]).to.include.members(personality === 'legacy-tree' ? ['mapped', 'empty-p2m', 'tree-too-large', 'bad-leaf'] : ['mapped', 'bad-vaddr-range', 'bad-leaf']);
        });
      }

      it('tree: bad fll values, bad top and mid entries (0, ~0, high halves, max_mfn, max_mfn + 1), foreign frames', () => {
        const w = makeGuest({ abi, variant: 'legacy-tree' });
        const seen = new Set<string>();
        const same = (what: string): string => record(seen, expectSameMapping(w, what));
        const { xen, g } = w;
        const maxMfn = BigInt(xen.machine.maxPage);
        const good = mapGuestP2m(new PrivilegedInterface(xen), g.domid);
        const fll = good.fll!;
        for (const v of [0n, 1n, maxMfn - 1n, maxMfn, maxMfn + 1n, invalidWord, ...(wide ? [1n << 32n, (1n << 32n) | good.leafMfns[0]!, 1n << 63n] : [])]) {
          setShared(g, 'pfn_to_mfn_frame_list_list', v);
          same(`fll ${v}`);
        }
        setShared(g, 'pfn_to_mfn_frame_list_list', fll);
        const midMfn = g.mfnOf(g.tree!.midPfn[0]!);
        const other = makeGuest({ abi, variant: 'linear', memoryPages: 1400, maxPages: 1400 }, xen).g;
        const edits: [bigint, number, bigint][] = [];
        for (const v of [0n, invalidWord, maxMfn, maxMfn + 1n, other.mfnOf(10), g.mfnOf(100), good.leafMfns[2]!, ...(wide ? [1n << 32n, (1n << 32n) | good.leafMfns[3]!, (1n << 52n) | 5n] : [])]) {
          edits.push([midMfn, 3, v], [midMfn, 0, v], [fll, 0, v], [fll, 1, v]);
        }
        for (const [mfn, index, v] of edits) {
          const before = xen.machine.bytes(Number(mfn)).slice(index * abi.wordSize, (index + 1) * abi.wordSize);
          storeFrameWord(g, mfn, index, v, abi.wordSize);
          const err = same(`word ${index} of mfn ${mfn} = ${v}`);
          if (v === 0n && index === 0) expect(err).to.equal(mfn === fll ? 'bad-fll-entry' : 'bad-fl-entry');
          const restore = before.length === 8 ? new BigUint64Array(before.buffer)[0]! : BigInt(new Uint32Array(before.buffer)[0]!);
          storeFrameWord(g, mfn, index, restore, abi.wordSize);
        }
        expect(same('restored')).to.equal('mapped');
        expect([...seen]).to.include.members(['mapped', 'bad-fll', 'map-failed', 'bad-fll-entry', 'bad-fl-entry', 'bad-leaf']);
      });

      it('list: bad p2m_cr3 and p2m_vaddr values, and bad or flagged PTEs at every level', () => {
        const w = makeGuest({ abi, variant: 'linear' });
        const seen = new Set<string>();
        const same = (what: string): string => record(seen, expectSameMapping(w, what));
        const { xen, g } = w;
        const maxMfn = BigInt(xen.machine.maxPage);
        const good = mapGuestP2m(new PrivilegedInterface(xen), g.domid);
        const cr3 = g.readShared('p2m_cr3');
        for (const v of [0x800n, xen_pfn_to_cr3(abi, maxMfn), xen_pfn_to_cr3(abi, maxMfn + 1n), xen_pfn_to_cr3(abi, good.leafMfns[0]!), ...(wide ? [1n << 63n] : [0xffffffffn])]) {
          setShared(g, 'p2m_cr3', v);
          same(`p2m_cr3 ${v}`);
        }
        setShared(g, 'p2m_cr3', cr3);
        const base = g.list.base;
        const xenStart = wide ? HYPERVISOR_VIRT_START_X86_64 : HYPERVISOR_VIRT_START_PAE;
        for (const v of [base + 2n * 1024n * 1024n, base + BigInt(PAGE_SIZE), xenStart - 2n * BigInt(PAGE_SIZE), wide ? 0xffff880000000000n : 0xfffff000n, wide ? 0x0000800000000000n : 0x1000n, 0n]) {
          setShared(g, 'p2m_vaddr', v);
          same(`p2m_vaddr ${v}`);
        }
        setShared(g, 'p2m_vaddr', base);
        // In each page-table page the walk reads, the first entry naming a frame of the walk: zero,
        // above max_mfn, max_mfn, flag bits set, frame bits beyond 40.
        const tables = good.structureMfns;
        const walked = new Set([...tables, ...good.leafMfns]);
        for (let t = 0; t < tables.length; t++) {
          const mfn = tables[t]!;
          const page = new Uint32Array(xen.machine.bytes(Number(mfn)).buffer, xen.machine.bytes(Number(mfn)).byteOffset, PAGE_SIZE / 4);
          // The present entries of this table, and one of them to edit.
          let index = 0;
          while (!walked.has((((BigInt(page[2 * index + 1]!) << 32n) | BigInt(page[2 * index]!)) & PTE_FRAME_MASK) >> 12n)) index++;
          const pte = (BigInt(page[2 * index + 1]!) << 32n) | BigInt(page[2 * index]!);
          const frame = pte & ~PTE_FRAME_MASK;
          for (const v of [0n, frame, frame | (maxMfn << 12n), frame | ((maxMfn + 1n) << 12n), pte | (1n << 63n) | (0x7ffn << 52n), (pte & ~PTE_FRAME_MASK) | (((1n << 40n) - 1n) << 12n), pte | (1n << 40n << 12n)]) {
            storeFrameWord(g, mfn, index, v & ((1n << 64n) - 1n), 8);
            const err = same(`table ${t} (mfn ${mfn}) entry ${index} = ${v}`);
            if (v === 0n) expect(err).to.equal('bad-pte-frame');
          }
          storeFrameWord(g, mfn, index, pte, 8);
        }
        expect(same('restored')).to.equal('mapped');
        expect([...seen]).to.include.members(['mapped', 'bad-p2m-cr3', 'bad-vaddr-range', 'bad-pte-frame', 'map-failed', ...(wide ? ['root-mfn-zero'] : [])]);
      });

      it('list: level-2 trims (shared missing PTE page, a grown PMD, an unaligned p2m_vaddr)', () => {
        const w = makeGuest({ abi, variant: 'linear' });
        const seen = new Set<string>();
        const same = (what: string): string => record(seen, expectSameMapping(w, what));
        const pmd = pfnsPerPmd(abi);
        for (const maxPfn of [4 * pmd, 2 * pmd, pmd, pmd + 1, pmd - 1]) {
          setShared(w.g, 'max_pfn', BigInt(maxPfn));
          same(`max_pfn ${maxPfn}`);
        }
        finish(w.g.hotplug(2 * pmd, fpp));
        finish(w.g.balloonOut(3000));
        expect(finish(w.g.balloonIn(2 * pmd))).to.equal(true);
        for (const maxPfn of [3 * pmd, 2 * pmd, 2 * pmd + 1]) {
          setShared(w.g, 'max_pfn', BigInt(maxPfn));
          same(`grown, max_pfn ${maxPfn}`);
          setShared(w.g, 'p2m_vaddr', w.g.list.base + 2n * 1024n * 1024n);
          same(`grown, unaligned, max_pfn ${maxPfn}`);
          setShared(w.g, 'p2m_vaddr', w.g.list.base);
        }
        if (wide) {
          // p2m_frames (an unsigned int) wraps to 5; an unaligned p2m_vaddr trims nothing at level 2.
          setShared(w.g, 'p2m_vaddr', w.g.list.base + 2n * 1024n * 1024n);
          setShared(w.g, 'max_pfn', (1n << 32n) * BigInt(fpp) + 5n * BigInt(fpp));
          expect(same('p2m_frames wrapped')).to.equal('frames-truncated');
        }
        expect([...seen]).to.include.members(['mapped', 'bad-leaf']);
      });

      it('leaves failing mfn_in_pseudophysmap: m2p changed, entry changed, m2p beyond max_pfn', () => {
        const w = makeGuest({ abi, variant: 'tree+linear' });
        const seen = new Set<string>();
        const same = (what: string): string => record(seen, expectSameMapping(w, what));
        const { xen, g } = w;
        const good = mapGuestP2m(new PrivilegedInterface(xen), g.domid);
        const leaf = Number(good.leafMfns[1]!);
        const pfn = good.leafPfns[1]!;
        for (const m2p of [INVALID_M2P, pfn + 1, good.p2mSize + 5, 0]) {
          xen.machine.setM2p(leaf, m2p);
          same(`m2p of leaf 1 = ${m2p}`);
        }
        xen.machine.setM2p(leaf, pfn);
        // The leaf's own entry in the p2m (pfn's entry) names another frame, or ~0.
        const x = Math.floor(pfn / fpp);
        for (const v of [invalidWord, BigInt(leaf + 1), ...(wide ? [(1n << 32n) | BigInt(leaf)] : [])]) {
          storeFrameWord(g, good.leafMfns[x]!, pfn % fpp, v, abi.wordSize);
          same(`p2m entry of leaf pfn = ${v}`);
        }
        storeFrameWord(g, good.leafMfns[x]!, pfn % fpp, BigInt(leaf), abi.wordSize);
        for (const mode of ['tree', 'list'] as const) {
          if (mode === 'tree') setShared(g, 'p2m_cr3', 0n);
          expect(same(`restored (${mode})`)).to.equal('mapped');
        }
        expect([...seen]).to.include.members(['bad-leaf']);
      });

      it('on a machine of more than 2^32 frames: a 32-bit ~0, high halves and max_mfn itself in the frame lists', () => {
        const w = makeGuest({ abi, variant: 'legacy-tree', machinePages: 2 ** 32 + 16 });
        const seen = new Set<string>();
        const same = (what: string): string => record(seen, expectSameMapping(w, what));
        const maxMfn = BigInt(w.xen.machine.maxPage);
        const good = mapGuestP2m(new PrivilegedInterface(w.xen), w.g.domid);
        const midMfn = w.g.mfnOf(w.g.tree!.midPfn[0]!);
        // A 32-bit guest's ~0 is below this max_mfn, but the tools widen it to INVALID_MFN: refused.
        for (const v of wide ? [invalidWord, 0xffffffffn, maxMfn, maxMfn + 1n, maxMfn - 1n, 1n << 32n, (1n << 33n) | 1n] : [invalidWord, invalidWord - 1n]) {
          storeFrameWord(w.g, midMfn, 1, v, abi.wordSize);
          same(`mid entry 1 = ${v}`);
        }
        storeFrameWord(w.g, midMfn, 1, good.leafMfns[1]!, abi.wordSize);
        expect(same('restored')).to.equal('mapped');
        expect([...seen]).to.include.members(['bad-fl-entry', 'map-failed']);
      });

      it('an unknown domain fails in the privileged interface alike', () => {
        const w = makeGuest({ abi, variant: 'linear' });
        const tools = new PrivilegedInterface(w.xen);
        const err = thrownBy(() => mapGuestP2m(tools, 99));
        expect(err).to.have.property('cls', 'PrivilegedError');
        expect(err).to.deep.equal(thrownBy(() => referenceMapGuestP2m(tools, 99)));
      });
    });
  }
});
