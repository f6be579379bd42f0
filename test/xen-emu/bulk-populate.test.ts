/**
 * The bulk paths of issue 8 against the per-frame paths they stand in for: `Machine.allocFramesWithM2p`
 * against `allocFrame` + `setM2p` per frame, `populate_physmap`'s order-0 bulk step against its
 * per-extent loop (forced by observing events), the builder's bulk populate likewise, and the
 * slab-backed frame bytes (independent pages; a freed frame's old bytes never alias another's).
 * Each comparison runs the same history on two fresh worlds and compares every frame.
 */

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DOMID_SELF, X86_32, X86_64, XENMEMF_address_bits, XENMEMF_exact_node, XENMEM_populate_physmap, type GuestAbi } from '../../abi/index.js';
import { DomainBuildError, buildDomain } from '../../xen-emu/builder.js';
import type { Domain } from '../../xen-emu/domain.js';
import { EventBus } from '../../xen-emu/events.js';
import { reservationOp, type ExtentArray } from '../../xen-emu/hypercalls/memory_op/reservation.js';
import { XlatPfnList, type PfnList } from '../../xen-emu/hypercalls/memory_op/pfn-list.js';
import { INVALID_M2P, Machine, PageType, fillFromStamp } from '../../xen-emu/machine.js';
import { Xen } from '../../xen-emu/xen.js';

/** Everything the machine says about every frame, plus its counters and reuse stack. */
function snapshot(m: Machine): unknown {
  const frames: unknown[] = [];
  for (let mfn = 0; mfn < m.maxPage; mfn++) {
    const owner = m.ownerOf(mfn);
    const stamp = m.stampOf(mfn);
    const info = [m.pageType(mfn), m.isPinned(mfn), m.isXenHeap(mfn), m.isMaterialised(mfn)];
    if (owner === undefined && m.m2pOf(mfn) === INVALID_M2P && stamp === 0 && !info.some(Boolean)) continue;
    frames.push([mfn, owner, m.m2pOf(mfn), stamp, ...info, stamp === undefined ? [...m.bytes(mfn).subarray(0, 16)] : null]);
  }
  return { frames, used: m.usedFrames, free: m.freeFrames, pool: [...m.freePool()] };
}

/**
 * A machine with a past: frames of domain 0 with stamps, bytes and page types, a third of them
 * freed (so the reuse stack holds frames on both sides of a low limit), and frames written while
 * free, freed ones and never allocated ones (leftovers a claim must clear).
 */
function machineWithHistory(maxPage: number, used: number): Machine {
  const m = new Machine({ maxPage });
  for (let i = 0; i < used; i++) {
    const mfn = m.allocFrame(0)!;
    m.setM2p(mfn, 1000 + i);
    if (i % 5 === 0) m.setStamp(mfn, 0x1234 + i);
    if (i % 7 === 0) m.bytes(mfn)[3] = i & 0xff;
    if (i % 11 === 0) m.setPageType(mfn, PageType.L1);
    if (i % 13 === 0) m.setPinned(mfn, true);
  }
  for (let mfn = 0; mfn < used; mfn += 3) m.freeFrame(mfn);
  m.setStamp(3, 77);
  m.bytes(6)[0] = 9;
  m.setPageType(9, PageType.L3);
  m.setPinned(used, true);
  m.setStamp(used + 1, 99);
  m.bytes(used + 2)[0] = 1;
  m.setPageType(used + 3, PageType.L2);
  return m;
}

function perFrame(m: Machine, domid: number, count: number, limit: number, pfnOf: (i: number) => number): number[] {
  const mfns: number[] = [];
  for (let i = 0; i < count; i++) {
    const mfn = m.allocFrame(domid, limit);
    if (mfn === undefined) break;
    m.setM2p(mfn, pfnOf(i));
    mfns.push(mfn);
  }
  return mfns;
}

describe('xen-emu/machine: allocFramesWithM2p', () => {
  const cases: { what: string; maxPage: number; used: number; count: number; limit: number }[] = [
    { what: 'reused frames first, then a run from the high-water mark', maxPage: 4096, used: 600, count: 1000, limit: 4096 },
    { what: 'a limit below some reused frames (a 32-bit clamp)', maxPage: 4096, used: 600, count: 1000, limit: 300 },
    { what: 'a run across a metadata chunk boundary', maxPage: 65536 + 4096, used: 65000, count: 3000, limit: 65536 + 4096 },
    { what: 'a machine that fills up part-way', maxPage: 1200, used: 600, count: 1000, limit: 1200 },
    { what: 'nothing left below the limit', maxPage: 2048, used: 600, count: 50, limit: 1 },
  ];
  for (const c of cases) {
    it(`takes the same frames with the same m2p as allocFrame + setM2p per frame: ${c.what}`, () => {
      // Consecutive pfns (the builder) wrapping past 2^32, and listed ones (populate_physmap).
      const first = 0xffffff00;
      const listed = new Uint32Array(2 * c.count);
      for (let i = 0; i < c.count; i++) listed[2 * i] = i % 97 === 0 ? INVALID_M2P : (i * 2654435761) >>> 0;
      for (const pfns of [first, listed] as const) {
        const pfnOf = (i: number): number => (typeof pfns === 'number' ? pfns + i : pfns[2 * i]!);
        const slow = machineWithHistory(c.maxPage, c.used);
        const fast = machineWithHistory(c.maxPage, c.used);
        const expected = perFrame(slow, 3, c.count, c.limit, pfnOf);
        const out = new Float64Array(c.count + 2).fill(-1);
        const got = fast.allocFramesWithM2p(3, c.count, c.limit, pfns, 2, out, 2);
        expect(got).to.equal(expected.length);
        expect([...out.subarray(2, 2 + got)]).to.deep.equal(expected);
        expect(out[0]).to.equal(-1);
        expect(snapshot(fast)).to.deep.equal(snapshot(slow));
        // And the machines go on alike.
        expect(fast.allocFrame(4)).to.equal(slow.allocFrame(4));
      }
    });
  }

  it('refuses to run while events are observed (it tells no ownership changes)', () => {
    const events = new EventBus();
    const m = new Machine({ maxPage: 64, events });
    events.subscribe(() => {});
    expect(() => m.allocFramesWithM2p(0, 1, 64, 0, 1, new Float64Array(1), 0)).to.throw(/events/);
    expect(m.usedFrames).to.equal(0);
  });
});

describe('xen-emu/machine: bulk metadata reads', () => {
  it('ownedFramesInto and m2psInto answer as the per-frame calls, for owned, foreign, free, materialised, typed and invalid frames', () => {
    const m = machineWithHistory(70000, 700);
    m.setXenHeap(5);
    const other = m.allocFrame(1)!;
    const mfns = [0, 1, 2, 5, 7, 14, 22, 33, 699, 700, 701, 702, 703, 704, other, 69999, 70000, 1e9, -1, 1.5, NaN];
    const n = mfns.length;
    for (const domid of [0, 1]) {
      const infos = new Uint8Array(n);
      const m2ps = new Uint32Array(n);
      const stamps = new Uint32Array(n).fill(9);
      const materialised = new Uint8Array(n).fill(9);
      m.ownedFramesInto(domid, mfns, n, infos, m2ps, stamps, materialised);
      const m2psAlone = new Uint32Array(n);
      m.m2psInto(mfns, n, m2psAlone);
      expect(Array.from(m2psAlone)).to.deep.equal(Array.from(m2ps));
      let owned = 0;
      mfns.forEach((mfn, i) => {
        const valid = Number.isInteger(mfn) && mfn >= 0 && mfn < m.maxPage;
        expect(m2ps[i], `m2p of ${mfn}`).to.equal(valid ? m.m2pOf(mfn) : INVALID_M2P);
        if (!valid || m.ownerOf(mfn) !== domid) {
          expect([infos[i], stamps[i], materialised[i]], `${mfn}, not domain ${domid}'s`).to.deep.equal([Machine.NOT_OWNED, 0, 0]);
          return;
        }
        owned++;
        const info = m.pageType(mfn) | (m.isPinned(mfn) ? 0x08 : 0) | (m.isXenHeap(mfn) ? 0x10 : 0) | (m.isMaterialised(mfn) ? 0x20 : 0);
        expect(infos[i], `info of ${mfn}`).to.equal(info);
        const stamp = m.stampOf(mfn);
        expect([stamps[i], materialised[i]], `stamp of ${mfn}`).to.deep.equal(stamp === undefined ? [0, 1] : [stamp, 0]);
      });
      expect(owned, `frames of domain ${domid} in the sample`).to.be.greaterThan(0);
    }
  });
});

// ------------------------------------------------------------------------------------------------
// populate_physmap: the order-0 bulk step against the per-extent loop
// ------------------------------------------------------------------------------------------------

/** An extent array in Xen's memory whose elements from `faultAt` on cannot be written back. */
class FaultingList implements PfnList {
  constructor(
    readonly inner: XlatPfnList,
    private readonly faultAt: number,
  ) {}
  read(from: bigint, count: number, dst: Uint32Array): number {
    return this.inner.read(from, count, dst);
  }
  writable(from: bigint, count: number): number {
    return Math.max(0, Math.min(count, this.faultAt - Number(from)));
  }
  write(from: bigint, count: number, src: Uint32Array): boolean {
    const whole = this.writable(from, count);
    this.inner.write(from, whole, src);
    return whole === count;
  }
}

interface PopulateCase {
  readonly what: string;
  readonly abi: GuestAbi;
  readonly maxPage: number;
  readonly compatMaxMfn?: number;
  /** Frames another domain takes and then partly frees before the call. */
  readonly before: number;
  readonly maxPages: number;
  readonly nr: number;
  readonly start?: number;
  readonly memFlags?: number;
  readonly faultAt?: number;
  readonly privileged?: boolean;
}

function populateWorld(c: PopulateCase, observed: boolean) {
  const xen = new Xen({ maxPage: c.maxPage, ...(c.compatMaxMfn === undefined ? {} : { compatMaxMfn: c.compatMaxMfn }) });
  const other = xen.createDomain({ abi: X86_64, maxPages: c.before });
  for (let i = 0; i < c.before; i++) xen.machine.allocFrame(other.domid);
  for (let mfn = 1; mfn < c.before; mfn += 2) if (xen.machine.ownerOf(mfn) === other.domid) xen.machine.freeFrame(mfn);
  const dom: Domain = xen.createDomain({ abi: c.abi, maxPages: c.maxPages, privileged: c.privileged ?? false });
  const list = new XlatPfnList(0n, c.nr);
  for (let i = 0; i < c.nr; i++) {
    list.words[2 * i] = i % 50 === 7 ? 0xffffffff : 0x10000 + 3 * i; // one pfn is INVALID_M2P's value
    list.words[2 * i + 1] = i % 64 === 9 ? 1 : 0; // pfns at or above 2^32: the m2p takes them modulo 2^32
  }
  const array: ExtentArray = { list: c.faultAt === undefined ? list : new FaultingList(list, c.faultAt), isNull: false, rangeOk: () => true };
  if (observed) xen.events.subscribe(() => {});
  const done = reservationOp(
    { xen, dom },
    XENMEM_populate_physmap,
    BigInt(c.start ?? 0),
    { extentStart: 1n, nrExtents: BigInt(c.nr), extentOrder: 0, memFlags: c.memFlags ?? 0, domid: DOMID_SELF },
    array,
  );
  return { done, words: [...list.words], totPages: dom.totPages, machine: snapshot(xen.machine) };
}

describe('xen-emu/memory_op: populate_physmap order-0 bulk step', () => {
  const cases: PopulateCase[] = [
    { what: 'several batches, reusing freed frames', abi: X86_64, maxPage: 8192, before: 1500, maxPages: 4000, nr: 2500, start: 3 },
    { what: 'max_pages reached part-way through a batch', abi: X86_64, maxPage: 8192, before: 100, maxPages: 1500, nr: 2500 },
    { what: 'no room under max_pages', abi: X86_64, maxPage: 8192, before: 0, maxPages: 0, nr: 10 },
    { what: 'the machine full part-way', abi: X86_64, maxPage: 2000, before: 600, maxPages: 4000, nr: 2500 },
    { what: 'an x86_32 guest under the compat clamp, freed frames on both sides of it', abi: X86_32, maxPage: 8192, compatMaxMfn: 1800, before: 1500, maxPages: 4000, nr: 2000 },
    { what: 'a write-back fault inside the second batch', abi: X86_64, maxPage: 8192, before: 300, maxPages: 4000, nr: 2500, faultAt: 1500 },
    { what: 'a write-back fault at the first extent', abi: X86_64, maxPage: 8192, before: 300, maxPages: 4000, nr: 20, faultAt: 0 },
    { what: 'an address-width limit (XENMEMF_address_bits)', abi: X86_64, maxPage: 8192, before: 300, maxPages: 4000, nr: 500, memFlags: XENMEMF_address_bits(20) },
    { what: 'an exact request for a node the machine lacks', abi: X86_64, maxPage: 8192, before: 0, maxPages: 4000, nr: 5, memFlags: XENMEMF_exact_node(1), privileged: true },
  ];
  for (const c of cases) {
    it(`answers, writes back and allocates exactly as the per-extent loop: ${c.what}`, () => {
      const general = populateWorld(c, true);
      const bulk = populateWorld(c, false);
      expect(bulk).to.deep.equal(general);
    });
  }
});

// ------------------------------------------------------------------------------------------------
// The builder's bulk populate
// ------------------------------------------------------------------------------------------------

describe('xen-emu/builder: bulk populate', () => {
  function build(abi: GuestAbi, observed: boolean, memoryPages: number, maxPage: number, compatMaxMfn?: number) {
    const xen = new Xen({ maxPage, ...(compatMaxMfn === undefined ? {} : { compatMaxMfn }) });
    // A destroyed domain leaves its frames on the reuse stack, the builder takes them first.
    const gone = buildDomain(xen, { abi: X86_64, memoryPages: 1500 });
    xen.destroyDomain(gone.dom.domid);
    if (observed) xen.events.subscribe(() => {});
    try {
      const b = buildDomain(xen, { abi, memoryPages });
      const p2m: bigint[] = [];
      for (let pfn = 0; pfn < memoryPages; pfn++) p2m.push(b.p2mEntry(pfn));
      return { p2m, p2mMfns: b.p2mMfns, ptMfns: b.ptMfns, totPages: b.dom.totPages, machine: snapshot(xen.machine) };
    } catch (error) {
      expect(error).to.be.instanceOf(DomainBuildError);
      return { error: (error as Error).message, machine: snapshot(xen.machine) };
    }
  }

  for (const abi of [X86_32, X86_64]) {
    it(`gives every pfn the same frame and m2p as the per-frame path, over freed frames, on ${abi.name}`, () => {
      expect(build(abi, false, 5000, 16384)).to.deep.equal(build(abi, true, 5000, 16384));
    });
  }

  it('runs out of frames below the compat clamp at the same pfn with the same error', () => {
    const fast = build(X86_32, false, 3000, 16384, 2600);
    expect(fast).to.have.property('error').that.matches(/out of memory populating pfn/);
    expect(fast).to.deep.equal(build(X86_32, true, 3000, 16384, 2600));
  });
});

// ------------------------------------------------------------------------------------------------
// Frame bytes in slabs
// ------------------------------------------------------------------------------------------------

describe('xen-emu/machine: materialised frame bytes', () => {
  it('gives each frame its own 4096 bytes, derived from its stamp', () => {
    const m = new Machine({ maxPage: 256 });
    const pages = [];
    for (let mfn = 0; mfn < 100; mfn++) {
      m.allocFrame(0);
      if (mfn % 2) m.setStamp(mfn, mfn);
      pages.push(m.bytes(mfn));
    }
    for (const p of pages) p.fill(0x5a, 0, 1);
    pages[10]!.fill(0xff);
    for (let mfn = 0; mfn < 100; mfn++) {
      const p = pages[mfn]!;
      expect(p.byteLength).to.equal(4096);
      expect(m.bytes(mfn)).to.equal(p);
      if (mfn !== 10) expect(p[0]).to.equal(0x5a);
      if (mfn === 10) continue;
      const expected = new Uint8Array(4096);
      fillFromStamp(expected, mfn % 2 ? mfn : 0);
      expected[0] = 0x5a;
      expect(Buffer.from(p.buffer, p.byteOffset, 4096).equals(expected), `bytes of mfn ${mfn}`).to.equal(true);
    }
    const other = new Machine({ maxPage: 1 });
    const fresh = other.bytes(0);
    expect(Buffer.from(fresh.buffer, fresh.byteOffset, 4096).equals(new Uint8Array(4096))).to.equal(true);
  });

  it("keeps a freed frame's old bytes in the view a caller still holds, never another frame's", () => {
    const m = new Machine({ maxPage: 4096 });
    const mfn = m.allocFrame(0)!;
    const held = m.bytes(mfn);
    held.fill(0x77);
    m.freeFrame(mfn);
    for (let i = 0; i < 2000; i++) {
      const next = m.allocFrame(0)!;
      m.bytes(next).fill(0x11);
    }
    expect(held.every((b) => b === 0x77)).to.equal(true);
    expect(m.isMaterialised(mfn)).to.equal(true); // mfn was reused first, and written
    expect(m.bytes(mfn)).to.not.equal(held);
  });

  it('drops the bytes of a frame given a stamp and reads the stamp back', () => {
    const m = new Machine({ maxPage: 16 });
    const mfn = m.allocFrame(0)!;
    m.bytes(mfn).fill(3);
    m.setStamp(mfn, 42);
    expect(m.isMaterialised(mfn)).to.equal(false);
    expect(m.stampOf(mfn)).to.equal(42);
    expect(m.bytes(mfn)[0]).to.not.equal(3);
    expect(() => m.bytes(16)).to.throw(RangeError);
    expect(() => m.bytes(-1)).to.throw(RangeError);
  });

  it('reuses the host memory of dropped bytes once nobody holds them', function () {
    this.timeout(60_000);
    const probe = fileURLToPath(new URL('./support/slab-reuse-probe.ts', import.meta.url));
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', probe], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout.trim()) as { released: number[]; hostBytesAfterFirst: number; hostBytesAfterLast: number; zeroFilled: number };
    // Every cycle drops 512 materialised frames; each time all 512 slots come back, the next cycle
    // takes them again (no new slab), and a reused slot reads as zeros.
    expect(out.released).to.deep.equal([512, 512, 512, 512, 512]);
    expect(out.hostBytesAfterLast).to.equal(out.hostBytesAfterFirst);
    expect(out.zeroFilled).to.equal(512);
  });
});
