/**
 * xen-emu/hypercalls/memory_op.ts: `memory_op` as Xen's do_memory_op (xen/common/memory.c) and, for
 * x86_32 callers, compat_memory_op (xen/common/compat/memory.c) answer a PV guest. Every call goes
 * through guest memory: the argument structs and extent arrays are written into the guest's own
 * pages in its ABI, and results are read back from there.
 */

import { expect } from 'chai';
import {
  DOMID_SELF,
  E2BIG,
  EFAULT,
  EINVAL,
  ENOMEM,
  ENOSYS,
  EPERM,
  ESRCH,
  X86_32,
  X86_64,
  XENMEMF_address_bits,
  XENMEMF_exact_node,
  XENMEMF_node,
  XENMEMF_populate_on_demand,
  XENMEMF_vnode,
  XENMEM_current_reservation,
  XENMEM_decrease_reservation,
  XENMEM_exchange,
  XENMEM_increase_reservation,
  XENMEM_maximum_gpfn,
  XENMEM_maximum_ram_page,
  XENMEM_maximum_reservation,
  XENMEM_populate_physmap,
  __HYPERVISOR_memory_op,
  memopCmd,
  shared_info,
  xen_memory_domain,
  xen_memory_exchange,
  xen_memory_reservation,
  type GuestAbi,
} from '../../abi/index.js';
import { buildDomain, type BuiltDomain } from '../../xen-emu/builder.js';
import type { Domain } from '../../xen-emu/domain.js';
import type { XenEvent } from '../../xen-emu/events.js';
import { INVALID_M2P } from '../../xen-emu/machine.js';
import { Xen } from '../../xen-emu/xen.js';

const ABIS: readonly GuestAbi[] = [X86_32, X86_64];
const PAGE = 4096n;
/** Pfns at and above this are not populated by the builder: free for populate tests. */
const MEMORY_PAGES = 2048;
const FRESH = MEMORY_PAGES;

interface Env {
  readonly xen: Xen;
  readonly b: BuiltDomain;
  readonly dom: Domain;
  readonly abi: GuestAbi;
  readonly w: 4 | 8;
  /** Scratch page 0: argument structs. */
  readonly arg: bigint;
  /** Scratch pages 1-3: a first array; pages 4-6: a second one. */
  readonly list: bigint;
  readonly list2: bigint;
  /** The first VA after the bootstrap mapping: nothing is mapped there. */
  readonly unmapped: bigint;
}

interface EnvOptions {
  readonly maxPage?: number;
  readonly compatMaxMfn?: number;
  readonly maxPages?: number;
  readonly privileged?: boolean;
  readonly xen?: Xen;
}

function env(abi: GuestAbi, o: EnvOptions = {}): Env {
  const xen =
    o.xen ?? new Xen({ maxPage: o.maxPage ?? 1 << 16, ...(o.compatMaxMfn === undefined ? {} : { compatMaxMfn: o.compatMaxMfn }) });
  const b = buildDomain(xen, { abi, memoryPages: MEMORY_PAGES, maxPages: o.maxPages ?? 8192, privileged: o.privileged ?? false });
  return {
    xen,
    b,
    dom: b.dom,
    abi,
    w: abi.wordSize,
    arg: b.scratchVa,
    list: b.scratchVa + PAGE,
    list2: b.scratchVa + 4n * PAGE,
    unmapped: b.virtBase + BigInt(b.bootstrapPfns) * PAGE,
  };
}

interface Res {
  readonly list?: bigint;
  readonly nr: number | bigint;
  readonly order?: number;
  readonly flags?: number;
  readonly domid?: number;
}

function reservationBytes(e: Env, r: Res): Buffer {
  const { bytes, view } = xen_memory_reservation.alloc(e.abi);
  view.extent_start = r.list ?? e.list;
  view.nr_extents = BigInt(r.nr);
  view.extent_order = r.order ?? 0;
  view.mem_flags = r.flags ?? 0;
  view.domid = r.domid ?? DOMID_SELF;
  return bytes;
}

function store(e: Env, va: bigint, bytes: Uint8Array): void {
  expect(e.xen.guestStore(e.dom, va, bytes), `guest store at 0x${va.toString(16)}`).to.equal(0);
}

function putReservation(e: Env, r: Res, va = e.arg): void {
  store(e, va, reservationBytes(e, r));
}

function wordsBytes(e: Env, values: readonly (number | bigint)[]): Uint8Array {
  const bytes = new Uint8Array(values.length * e.w);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => {
    if (e.w === 8) view.setBigUint64(i * 8, BigInt(v), true);
    else view.setUint32(i * 4, Number(v), true);
  });
  return bytes;
}

function putWords(e: Env, va: bigint, values: readonly (number | bigint)[]): void {
  store(e, va, wordsBytes(e, values));
}

function getWords(e: Env, va: bigint, n: number): number[] {
  const bytes = e.xen.guestLoad(e.dom, va, n * e.w);
  if (!bytes) throw new Error(`cannot read 0x${va.toString(16)}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: n }, (_, i) => (e.w === 8 ? Number(view.getBigUint64(i * 8, true)) : view.getUint32(i * 4, true)));
}

function memop(e: Env, op: number, va = e.arg, start = 0, caller: Domain = e.dom): bigint {
  return e.xen.hypercall(caller.domid, __HYPERVISOR_memory_op, memopCmd(op, start, e.abi), va);
}

/** Gives every free frame below `limit` to a filler owner, so allocations there must fail. */
function occupyBelow(e: Env, limit: number, leaveFree = 0): void {
  let free = 0;
  for (let mfn = 0; mfn < limit; mfn++) if (e.xen.machine.ownerOf(mfn) === undefined) free++;
  for (; free > leaveFree; free--) e.xen.machine.allocFrame(0x7000, limit);
}

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);
const err = (errno: number): bigint => BigInt(-errno);

/** Populates `gpfns` (order `order`) through the hypercall and returns the mfns Xen reported. */
function populate(e: Env, gpfns: readonly number[], order = 0, list = e.list): number[] {
  putWords(e, list, gpfns);
  putReservation(e, { list, nr: gpfns.length, order });
  expect(memop(e, XENMEM_populate_physmap)).to.equal(BigInt(gpfns.length));
  return getWords(e, list, gpfns.length);
}

interface Ex {
  readonly inList?: bigint;
  readonly inNr: number | bigint;
  readonly inOrder?: number;
  readonly outList?: bigint;
  readonly outNr: number | bigint;
  readonly outOrder?: number;
  readonly outFlags?: number;
  readonly inDomid?: number;
  readonly outDomid?: number;
  readonly nrExchanged?: number | bigint;
}

function putExchange(e: Env, x: Ex, va = e.arg): Buffer {
  const { bytes, view } = xen_memory_exchange.alloc(e.abi);
  view.in.extent_start = x.inList ?? e.list;
  view.in.nr_extents = BigInt(x.inNr);
  view.in.extent_order = x.inOrder ?? 0;
  view.in.mem_flags = 0;
  view.in.domid = x.inDomid ?? DOMID_SELF;
  view.out.extent_start = x.outList ?? e.list2;
  view.out.nr_extents = BigInt(x.outNr);
  view.out.extent_order = x.outOrder ?? 0;
  view.out.mem_flags = x.outFlags ?? 0;
  view.out.domid = x.outDomid ?? DOMID_SELF;
  view.nr_exchanged = BigInt(x.nrExchanged ?? 0);
  store(e, va, bytes);
  return bytes;
}

function nrExchanged(e: Env, va = e.arg): number {
  return getWords(e, va + BigInt(xen_memory_exchange.offsetOf(e.abi, 'nr_exchanged')), 1)[0]!;
}

function ownerOf(e: Env, mfn: number): number | undefined {
  return e.xen.machine.ownerOf(mfn);
}

for (const abi of ABIS) {
  describe(`memory_op on ${abi.name} (xen-emu/hypercalls/memory_op.ts)`, () => {
    // --------------------------------------------------------------------------------------------
    describe('populate_physmap', () => {
      it('returns nr_extents, writes each new mfn over its gpfn and points the m2p of every page at gpfn + j', () => {
        const e = env(abi);
        const tot = e.dom.totPages;
        const events: XenEvent[] = [];
        e.xen.events.subscribe((ev) => events.push(ev));
        const gpfns = [FRESH, FRESH + 4, FRESH + 8];
        const mfns = populate(e, gpfns, 2);
        expect(e.dom.totPages).to.equal(tot + 12);
        mfns.forEach((mfn, i) => {
          expect(mfn % 4, 'extent aligned to its order').to.equal(0);
          for (let j = 0; j < 4; j++) {
            expect(e.xen.machine.m2pOf(mfn + j)).to.equal(gpfns[i]! + j);
            expect(ownerOf(e, mfn + j)).to.equal(e.dom.domid);
          }
        });
        const m2p = events.filter((ev) => ev.type === 'm2p');
        expect(m2p.map((ev) => (ev.type === 'm2p' ? ev.newPfn : -1))).to.include.members([FRESH, FRESH + 5, FRESH + 11]);
      });

      it('does not mark the populated pfn dirty under log-dirty: only a store to the page does', () => {
        const e = env(abi);
        e.dom.logdirty.enable();
        putWords(e, e.list, [FRESH + 100]);
        putReservation(e, { nr: 1 });
        e.dom.logdirty.clean(1 << 16);
        expect(memop(e, XENMEM_populate_physmap)).to.equal(1n);
        const [mfn] = getWords(e, e.list, 1);
        expect(e.dom.logdirty.isDirty(FRESH + 100), 'populated pfn').to.equal(false);
        // Xen's store of the mfn into the array is a store: the array page's pfn is dirty, and nothing else.
        const listPfn = e.xen.machine.m2pOf(e.xen.translate(e.dom, e.list)!.mfn);
        expect(e.dom.logdirty.isDirty(listPfn), 'array page').to.equal(true);
        expect(e.dom.logdirty.count()).to.equal(1);
        e.xen.storeWord({ domid: e.dom.domid, by: 'guest' }, mfn!, 0, 1n, 4);
        expect(e.dom.logdirty.isDirty(FRESH + 100), 'after a store').to.equal(true);
      });

      it('stops at max_pages: the count says how many extents were done, the rest of the array is untouched', () => {
        const e = env(abi, { maxPages: MEMORY_PAGES + 2 });
        putWords(e, e.list, range(FRESH, 5));
        putReservation(e, { nr: 5 });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(2n);
        expect(e.dom.totPages).to.equal(MEMORY_PAGES + 2);
        expect(getWords(e, e.list, 5).slice(2)).to.deep.equal([FRESH + 2, FRESH + 3, FRESH + 4]);
      });

      it('resumes at start_extent (cmd >> 6) and counts it in the result', () => {
        const e = env(abi);
        putWords(e, e.list, range(FRESH, 4));
        putReservation(e, { nr: 4 });
        expect(memop(e, XENMEM_populate_physmap, e.arg, 2)).to.equal(4n);
        const after = getWords(e, e.list, 4);
        expect(after.slice(0, 2)).to.deep.equal([FRESH, FRESH + 1]);
        expect(e.xen.machine.m2pOf(after[2]!)).to.equal(FRESH + 2);
        expect(e.dom.totPages).to.equal(MEMORY_PAGES + 2);
      });

      it('returns start_extent unchanged when it is not below nr_extents', () => {
        const e = env(abi);
        putReservation(e, { nr: 4 });
        expect(memop(e, XENMEM_populate_physmap, e.arg, 5)).to.equal(5n);
        expect(memop(e, XENMEM_populate_physmap, e.arg, 4)).to.equal(4n);
        expect(e.dom.totPages).to.equal(MEMORY_PAGES);
      });

      it('completes 0 extents for an order above the caller limit (9 for a domU)', () => {
        const e = env(abi);
        putWords(e, e.list, [FRESH]);
        putReservation(e, { nr: 1, order: 10 });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(0n);
        putReservation(e, { nr: 1, order: 9 });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(1n);
        expect(e.dom.totPages).to.equal(MEMORY_PAGES + 512);
      });

      it('lets the control domain use order 10 (its limit is 18)', () => {
        const e = env(abi, { privileged: true });
        putWords(e, e.list, [FRESH]);
        putReservation(e, { nr: 1, order: 10 });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(1n);
        expect(getWords(e, e.list, 1)[0]! % 1024).to.equal(0);
      });

      it('completes 0 extents when nr_extents exceeds UINT_MAX >> 6', () => {
        const e = env(abi);
        putWords(e, e.list, [FRESH]);
        putReservation(e, { nr: 0x4000000 });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(0n);
        expect(memop(e, XENMEM_populate_physmap, e.arg, 3)).to.equal(3n);
      });

      it('completes 0 extents for an unknown domid, and for another domain named by an unprivileged caller (XSM)', () => {
        const e = env(abi);
        const other = env(abi, { xen: e.xen });
        putWords(e, e.list, [FRESH]);
        putReservation(e, { nr: 1, domid: 0x1234 });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(0n);
        putReservation(e, { nr: 1, domid: other.dom.domid });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(0n);
        expect(other.dom.totPages).to.equal(MEMORY_PAGES);
        putReservation(e, { nr: 1, domid: e.dom.domid }); // naming itself by id is allowed
        expect(memop(e, XENMEM_populate_physmap)).to.equal(1n);
      });

      it('lets the control domain populate another domain', () => {
        const ctl = env(abi, { privileged: true });
        const domU = env(abi, { xen: ctl.xen });
        putWords(ctl, ctl.list, [FRESH + 7]);
        putReservation(ctl, { nr: 1, domid: domU.dom.domid });
        expect(memop(ctl, XENMEM_populate_physmap)).to.equal(1n);
        const [mfn] = getWords(ctl, ctl.list, 1);
        expect(ownerOf(ctl, mfn!)).to.equal(domU.dom.domid);
        expect(ctl.xen.machine.m2pOf(mfn!)).to.equal(FRESH + 7);
        expect(domU.dom.totPages).to.equal(MEMORY_PAGES + 1);
      });

      it('completes 0 extents for address_bits <= 12 when a limit applies; 13 leaves only mfns 0-1, here taken', () => {
        const e = env(abi);
        occupyBelow(e, 2);
        putWords(e, e.list, [FRESH]);
        for (const bits of [1, 12, 13]) {
          putReservation(e, { nr: 1, flags: XENMEMF_address_bits(bits) });
          expect(memop(e, XENMEM_populate_physmap), `address_bits ${bits}`).to.equal(0n);
        }
        // 28 bits cover a 2^16-frame machine: no limit at all.
        putReservation(e, { nr: 1, flags: XENMEMF_address_bits(28) });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(1n);
      });

      it('allocates below the address_bits limit', () => {
        const e = env(abi);
        const machine = e.xen.machine;
        // Fill the machine up to mfn 5000 with another owner, then free 3000 and 4500: without a
        // limit the allocator hands out 4500 (freed last), below 2^12 frames it must take 3000.
        while (machine.usedFrames < 5000) machine.allocFrame(0x7000);
        machine.freeFrame(3000);
        machine.freeFrame(4500);
        putWords(e, e.list, [FRESH]);
        putReservation(e, { nr: 1, flags: XENMEMF_address_bits(12 + 12) });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(1n);
        expect(getWords(e, e.list, 1)[0]).to.equal(3000);
        putWords(e, e.list, [FRESH + 1]);
        putReservation(e, { nr: 1 });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(1n);
        expect(getWords(e, e.list, 1)[0]).to.equal(4500);
      });

      it('refuses an exact node from an unprivileged caller, ignores a plain node, and ignores XENMEMF_vnode (no vNUMA)', () => {
        const e = env(abi);
        putWords(e, e.list, [FRESH]);
        putReservation(e, { nr: 1, flags: XENMEMF_exact_node(0) });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(0n);
        putReservation(e, { nr: 1, flags: XENMEMF_node(3) });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(1n);
        putWords(e, e.list, [FRESH + 1]);
        putReservation(e, { nr: 1, flags: XENMEMF_exact_node(5) | XENMEMF_vnode });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(1n);
      });

      it('for the control domain: node 64 is -EINVAL (0 extents), an exact absent node fails to allocate, node 0 works', () => {
        const e = env(abi, { privileged: true });
        putWords(e, e.list, [FRESH]);
        putReservation(e, { nr: 1, flags: XENMEMF_node(64) });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(0n);
        putReservation(e, { nr: 1, flags: XENMEMF_exact_node(1) });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(0n);
        putReservation(e, { nr: 1, flags: XENMEMF_node(1) });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(1n);
        putWords(e, e.list, [FRESH + 1]);
        putReservation(e, { nr: 1, flags: XENMEMF_exact_node(0) });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(1n);
      });

      it('with XENMEMF_populate_on_demand: stops at once on oneself; on another PV domain counts each extent and allocates nothing', () => {
        const ctl = env(abi, { privileged: true });
        const domU = env(abi, { xen: ctl.xen });
        putWords(ctl, ctl.list, range(FRESH, 3));
        putReservation(ctl, { nr: 3, flags: XENMEMF_populate_on_demand });
        expect(memop(ctl, XENMEM_populate_physmap)).to.equal(0n);
        putReservation(ctl, { nr: 3, flags: XENMEMF_populate_on_demand, domid: domU.dom.domid });
        expect(memop(ctl, XENMEM_populate_physmap)).to.equal(3n);
        expect(domU.dom.totPages).to.equal(MEMORY_PAGES);
        expect(getWords(ctl, ctl.list, 3)).to.deep.equal(range(FRESH, 3));
      });

      it('with an array that is readable but not writable: the first extent is allocated and its m2p set, yet not counted', () => {
        const e = env(abi);
        // The top-level page table is mapped read-only; its first entry serves as a "gpfn".
        putReservation(e, { list: e.b.ptBaseVa, nr: 2 });
        const tot = e.dom.totPages;
        expect(memop(e, XENMEM_populate_physmap)).to.equal(0n);
        // x86_64 allocates one extent before the write fails; x86_32 stages the batch, populates it
        // whole, and fails copying the first mfn back.
        expect(e.dom.totPages).to.equal(tot + (abi === X86_64 ? 1 : 2));
      });
    });

    // --------------------------------------------------------------------------------------------
    describe('increase_reservation', () => {
      it('writes each extent mfn and leaves the m2p invalid (the guest sets it itself)', () => {
        const e = env(abi);
        putWords(e, e.list, [0, 0, 0]);
        putReservation(e, { nr: 3, order: 1 });
        expect(memop(e, XENMEM_increase_reservation)).to.equal(3n);
        const mfns = getWords(e, e.list, 3);
        for (const mfn of mfns) {
          expect(mfn % 2).to.equal(0);
          expect(ownerOf(e, mfn)).to.equal(e.dom.domid);
          expect(e.xen.machine.m2pOf(mfn)).to.equal(INVALID_M2P);
          expect(e.xen.machine.m2pOf(mfn + 1)).to.equal(INVALID_M2P);
        }
        expect(e.dom.totPages).to.equal(MEMORY_PAGES + 6);
      });

      it('with a NULL extent_start allocates and reports nothing', () => {
        const e = env(abi);
        let xenStores = 0;
        e.xen.events.subscribe((ev) => {
          if (ev.type === 'store' && ev.by === 'xen') xenStores++;
        });
        putReservation(e, { list: 0n, nr: 5 });
        expect(memop(e, XENMEM_increase_reservation)).to.equal(5n);
        expect(e.dom.totPages).to.equal(MEMORY_PAGES + 5);
        expect(xenStores).to.equal(0);
      });

      it('completes 0 extents above the order limit, and stops at max_pages', () => {
        const e = env(abi, { maxPages: MEMORY_PAGES + 3 });
        putReservation(e, { list: 0n, nr: 1, order: 10 });
        expect(memop(e, XENMEM_increase_reservation)).to.equal(0n);
        putReservation(e, { list: 0n, nr: 4, order: 1 });
        expect(memop(e, XENMEM_increase_reservation)).to.equal(1n);
        expect(e.dom.totPages).to.equal(MEMORY_PAGES + 2);
      });

      it('with an array running into an unmapped page: counts the extents reported; the one that could not be is still allocated', () => {
        const e = env(abi);
        const list = e.unmapped - BigInt(2 * e.w);
        putReservation(e, { list, nr: 4 });
        expect(memop(e, XENMEM_increase_reservation)).to.equal(2n);
        // x86_64 stops after allocating the third; x86_32 allocated the whole batch first.
        expect(e.dom.totPages).to.equal(MEMORY_PAGES + (abi === X86_64 ? 3 : 4));
      });
    });

    // --------------------------------------------------------------------------------------------
    describe('decrease_reservation', () => {
      it('frees every page of each extent: no owner, m2p invalid, tot_pages lowered', () => {
        const e = env(abi);
        const mfns = populate(e, [FRESH, FRESH + 2], 1);
        const events: XenEvent[] = [];
        e.xen.events.subscribe((ev) => events.push(ev));
        putReservation(e, { nr: 2, order: 1 });
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(2n);
        for (const mfn of mfns) {
          for (const f of [mfn, mfn + 1]) {
            expect(ownerOf(e, f)).to.equal(undefined);
            expect(e.xen.machine.m2pOf(f)).to.equal(INVALID_M2P);
          }
        }
        expect(e.dom.totPages).to.equal(MEMORY_PAGES);
        expect(events.filter((ev) => ev.type === 'm2p' && ev.newPfn === INVALID_M2P)).to.have.length(4);
      });

      it('stops at the first frame the domain does not own and reports the extents done before it', () => {
        const e = env(abi);
        const other = env(abi, { xen: e.xen });
        const mine = populate(e, range(FRESH, 3));
        const foreign = other.b.startInfoMfn;
        putWords(e, e.list, [mine[0]!, mine[1]!, foreign, mine[2]!]);
        putReservation(e, { nr: 4 });
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(2n);
        expect(ownerOf(e, foreign)).to.equal(other.dom.domid);
        expect(ownerOf(e, mine[2]!)).to.equal(e.dom.domid);
        expect(e.dom.totPages).to.equal(MEMORY_PAGES + 1);
      });

      it('XSA-277: an already-removed frame is removed once: 1, then 0, then 0', () => {
        const e = env(abi);
        const [mfn] = populate(e, [FRESH]);
        putWords(e, e.list, [mfn!]);
        putReservation(e, { nr: 1 });
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(1n);
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(0n);
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(0n);
        expect(e.dom.totPages).to.equal(MEMORY_PAGES);
      });

      it('completes 0 extents for an mfn beyond max_page', () => {
        const e = env(abi, { maxPage: 1 << 16 });
        putWords(e, e.list, [(1 << 16) + 5]);
        putReservation(e, { nr: 1 });
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(0n);
      });

      it('stops inside an extent at a page it cannot remove: the pages before it are freed, the extent is not counted', () => {
        const e = env(abi);
        const [a, b] = populate(e, [FRESH, FRESH + 1]).sort((x, y) => x - y);
        expect(b, 'precondition: adjacent frames').to.equal(a! + 1);
        putWords(e, e.list, [b!]);
        putReservation(e, { nr: 1 });
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(1n);
        // Now an order-1 extent at a: page a is ours, page a + 1 is free.
        putWords(e, e.list, [a!]);
        putReservation(e, { nr: 1, order: 1 });
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(0n);
        expect(ownerOf(e, a!)).to.equal(undefined);
        expect(e.dom.totPages).to.equal(MEMORY_PAGES);
      });

      it('of a pinned page-table frame: counts as done (Xen only drops its allocation reference) and the frame stays', () => {
        const e = env(abi);
        const top = e.b.topPtMfn;
        putWords(e, e.list, [top]);
        putReservation(e, { nr: 1 });
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(1n);
        expect(ownerOf(e, top)).to.equal(e.dom.domid);
        expect(e.xen.machine.isPinned(top)).to.equal(true);
        expect(e.dom.totPages).to.equal(MEMORY_PAGES);
        expect(e.xen.translate(e.dom, e.arg), 'address space still works').to.not.equal(undefined);
      });

      it('of the shared_info frame (a Xen heap page): counts as done and frees nothing', () => {
        const e = env(abi);
        putWords(e, e.list, [e.dom.sharedInfoMfn]);
        putReservation(e, { nr: 1 });
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(1n);
        expect(ownerOf(e, e.dom.sharedInfoMfn)).to.equal(e.dom.domid);
        expect(e.xen.machine.isXenHeap(e.dom.sharedInfoMfn)).to.equal(true);
      });

      it('completes 0 extents above the order limit', () => {
        const e = env(abi);
        const [mfn] = populate(e, [FRESH]);
        putWords(e, e.list, [mfn!]);
        putReservation(e, { nr: 1, order: 10 });
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(0n);
        expect(ownerOf(e, mfn!)).to.equal(e.dom.domid);
      });

      it('completes 0 extents for address_bits <= 12 too (the flags are checked for every reservation op)', () => {
        const e = env(abi);
        const [mfn] = populate(e, [FRESH]);
        putWords(e, e.list, [mfn!]);
        putReservation(e, { nr: 1, flags: XENMEMF_address_bits(12) });
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(0n);
        putReservation(e, { nr: 1, flags: XENMEMF_address_bits(20) });
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(1n);
      });
    });

    // --------------------------------------------------------------------------------------------
    describe('reservation argument buffers', () => {
      it('an unmapped struct completes 0 extents (start_extent when resuming)', () => {
        const e = env(abi);
        expect(memop(e, XENMEM_populate_physmap, e.unmapped)).to.equal(0n);
        expect(memop(e, XENMEM_increase_reservation, e.unmapped, 7)).to.equal(7n);
        expect(e.dom.totPages).to.equal(MEMORY_PAGES);
      });

      it('a struct straddling into an unmapped page completes 0 extents', () => {
        const e = env(abi);
        const va = e.unmapped - 8n;
        const bytes = reservationBytes(e, { list: 0n, nr: 1 });
        store(e, va, bytes.subarray(0, 8));
        expect(memop(e, XENMEM_increase_reservation, va)).to.equal(0n);
        expect(e.dom.totPages).to.equal(MEMORY_PAGES);
      });

      it('an unmapped extent array completes 0 extents', () => {
        const e = env(abi);
        putReservation(e, { list: e.unmapped, nr: 2 });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(0n);
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(0n);
        expect(e.dom.totPages).to.equal(MEMORY_PAGES);
      });

      it('an extent array running into an unmapped page completes the extents before the page end (also across x86_32 batches)', () => {
        const e = env(abi);
        const n = 1100; // more than one x86_32 translation batch (1020 extents)
        const mappedElems = 1050;
        const list = e.unmapped - BigInt(mappedElems * e.w);
        putWords(e, list, range(FRESH, mappedElems));
        putReservation(e, { list, nr: n });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(BigInt(mappedElems));
        expect(e.dom.totPages).to.equal(MEMORY_PAGES + mappedElems);
        const mfns = getWords(e, list, mappedElems);
        expect(e.xen.machine.m2pOf(mfns[1049]!)).to.equal(FRESH + 1049);
        putReservation(e, { list, nr: n });
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(BigInt(mappedElems));
        expect(e.dom.totPages).to.equal(MEMORY_PAGES);
      });

      it('a NULL array for populate or decrease reads guest address 0, which is unmapped: 0 extents', () => {
        const e = env(abi);
        putReservation(e, { list: 0n, nr: 1 });
        expect(memop(e, XENMEM_populate_physmap)).to.equal(0n);
        expect(memop(e, XENMEM_decrease_reservation)).to.equal(0n);
      });
    });

    // --------------------------------------------------------------------------------------------
    describe('x86_32 clamp', () => {
      it(`gives ${abi.name} ${abi === X86_32 ? 'only mfns that fit (below compatMaxMfn), failing when those run out' : 'mfns above compatMaxMfn as well'}, in populate and exchange`, () => {
        const limit = 3000;
        const xen = new Xen({ maxPage: 1 << 16, compatMaxMfn: limit });
        const e = env(abi, { xen });
        occupyBelow(e, limit, 100); // exactly 100 free frames below the clamp
        putWords(e, e.list, range(FRESH, 300));
        putReservation(e, { nr: 300 });
        const done = memop(e, XENMEM_populate_physmap);
        const mfns = getWords(e, e.list, Number(done));
        if (abi === X86_32) {
          expect(done, 'stops where frames below the clamp run out').to.equal(100n);
          expect(Math.max(...mfns)).to.be.below(limit);
          expect(xen.machine.freeFrames, 'though the machine has more').to.be.above(60000);
        } else {
          expect(done).to.equal(300n);
          expect(Math.max(...mfns)).to.be.at.least(limit);
        }
        // Exchange allocates its output under the same clamp, before it frees the input.
        putWords(e, e.list2, [FRESH + 400]);
        putExchange(e, { inNr: 1, outNr: 1 });
        expect(memop(e, XENMEM_exchange)).to.equal(abi === X86_32 ? err(ENOMEM) : 0n);
        if (abi === X86_64) expect(getWords(e, e.list2, 1)[0]).to.be.at.least(limit);
      });
    });

    // --------------------------------------------------------------------------------------------
    describe('exchange', () => {
      /** Populates 2^k fresh pfns and returns their mfns (ordinary, unmapped frames). */
      function ins(e: Env, count: number, base = FRESH): number[] {
        const mfns = populate(e, range(base, count));
        return mfns;
      }

      it('trades 2^k order-0 extents for one machine-contiguous, aligned order-k extent', () => {
        const e = env(abi);
        const old = ins(e, 8);
        const tot = e.dom.totPages;
        putWords(e, e.list, old);
        putWords(e, e.list2, [FRESH + 16]);
        putExchange(e, { inNr: 8, outNr: 1, outOrder: 3 });
        expect(memop(e, XENMEM_exchange)).to.equal(0n);
        expect(nrExchanged(e)).to.equal(8);
        const [mfn] = getWords(e, e.list2, 1);
        expect(mfn! % 8).to.equal(0);
        for (let j = 0; j < 8; j++) {
          expect(e.xen.machine.m2pOf(mfn! + j)).to.equal(FRESH + 16 + j);
          expect(ownerOf(e, mfn! + j)).to.equal(e.dom.domid);
        }
        for (const m of old) {
          expect(ownerOf(e, m)).to.equal(undefined);
          expect(e.xen.machine.m2pOf(m)).to.equal(INVALID_M2P);
        }
        expect(e.dom.totPages).to.equal(tot);
      });

      it('trades one order-2 extent for four order-0 extents', () => {
        const e = env(abi);
        const [base] = populate(e, [FRESH], 2);
        putWords(e, e.list, [base!]);
        putWords(e, e.list2, [FRESH + 40, FRESH + 50, FRESH + 60, FRESH + 70]);
        putExchange(e, { inNr: 1, inOrder: 2, outNr: 4 });
        expect(memop(e, XENMEM_exchange)).to.equal(0n);
        expect(nrExchanged(e)).to.equal(1);
        const out = getWords(e, e.list2, 4);
        expect(out.map((m) => e.xen.machine.m2pOf(m))).to.deep.equal([FRESH + 40, FRESH + 50, FRESH + 60, FRESH + 70]);
        for (let j = 0; j < 4; j++) expect(ownerOf(e, base! + j)).to.equal(undefined);
      });

      it('XSA-212: a forged nr_exchanged above in.nr_extents is -EINVAL and changes nothing', () => {
        const e = env(abi);
        const old = ins(e, 2);
        putWords(e, e.list, old);
        putWords(e, e.list2, [FRESH + 20, FRESH + 21]);
        const before = putExchange(e, { inNr: 2, outNr: 2, nrExchanged: 0x10000 });
        const used = e.xen.machine.usedFrames;
        expect(memop(e, XENMEM_exchange)).to.equal(err(EINVAL));
        expect(Buffer.from(e.xen.guestLoad(e.dom, e.arg, before.length)!)).to.deep.equal(before);
        expect(getWords(e, e.list2, 2)).to.deep.equal([FRESH + 20, FRESH + 21]);
        expect(old.map((m) => ownerOf(e, m))).to.deep.equal([e.dom.domid, e.dom.domid]);
        expect(e.xen.machine.usedFrames).to.equal(used);
      });

      it('returns 0 without doing anything when nr_exchanged already equals in.nr_extents', () => {
        const e = env(abi);
        const old = ins(e, 2);
        putWords(e, e.list, old);
        putExchange(e, { inNr: 2, outNr: 2, nrExchanged: 2 });
        expect(memop(e, XENMEM_exchange)).to.equal(0n);
        expect(old.map((m) => ownerOf(e, m))).to.deep.equal([e.dom.domid, e.dom.domid]);
      });

      it('-EPERM for an order above the caller limit, with nr_exchanged left as it was', () => {
        const e = env(abi);
        putWords(e, e.list, [0]);
        putWords(e, e.list2, [0]);
        putExchange(e, { inNr: 1, inOrder: 10, outNr: 1, outOrder: 10 });
        expect(memop(e, XENMEM_exchange)).to.equal(err(EPERM));
        expect(nrExchanged(e)).to.equal(0);
      });

      it(`checks order against sizes in ${abi === X86_32 ? 'compat order: sizes first (-EINVAL)' : 'native order: the order limit first (-EPERM)'}`, () => {
        const e = env(abi);
        putExchange(e, { inNr: 1, inOrder: 10, outNr: 3, outOrder: 0 });
        expect(memop(e, XENMEM_exchange)).to.equal(abi === X86_32 ? err(EINVAL) : err(EPERM));
      });

      it('-EINVAL for mismatched domids and for mismatched sizes', () => {
        const e = env(abi);
        putExchange(e, { inNr: 1, outNr: 1, inDomid: DOMID_SELF, outDomid: e.dom.domid });
        expect(memop(e, XENMEM_exchange)).to.equal(err(EINVAL));
        putExchange(e, { inNr: 2, outNr: 1 });
        expect(memop(e, XENMEM_exchange)).to.equal(err(EINVAL));
        putExchange(e, { inNr: 4, outNr: 1, outOrder: 1 });
        expect(memop(e, XENMEM_exchange)).to.equal(err(EINVAL));
      });

      it('-EINVAL for a non-zero start extent in cmd', () => {
        const e = env(abi);
        const old = ins(e, 1);
        putWords(e, e.list, old);
        putWords(e, e.list2, [FRESH + 9]);
        putExchange(e, { inNr: 1, outNr: 1 });
        expect(memop(e, XENMEM_exchange, e.arg, 1)).to.equal(err(EINVAL));
        expect(ownerOf(e, old[0]!)).to.equal(e.dom.domid);
      });

      it('-ESRCH for an unknown domain; -EPERM for another domain without privilege; the control domain may', () => {
        const ctl = env(abi, { privileged: true });
        const domU = env(abi, { xen: ctl.xen });
        const old = populate(domU, [FRESH]);
        putWords(ctl, ctl.list, old);
        putWords(ctl, ctl.list2, [FRESH + 3]);
        putExchange(ctl, { inNr: 1, outNr: 1, inDomid: 0x1234, outDomid: 0x1234 });
        expect(memop(ctl, XENMEM_exchange)).to.equal(err(ESRCH));
        // domU naming the control domain
        putWords(domU, domU.list, [ctl.b.startInfoMfn]);
        putWords(domU, domU.list2, [FRESH + 3]);
        putExchange(domU, { inNr: 1, outNr: 1, inDomid: ctl.dom.domid, outDomid: ctl.dom.domid });
        expect(memop(domU, XENMEM_exchange)).to.equal(err(EPERM));
        putExchange(ctl, { inNr: 1, outNr: 1, inDomid: domU.dom.domid, outDomid: domU.dom.domid });
        expect(memop(ctl, XENMEM_exchange)).to.equal(0n);
        const [mfn] = getWords(ctl, ctl.list2, 1);
        expect(ownerOf(ctl, mfn!)).to.equal(domU.dom.domid);
        expect(ownerOf(ctl, old[0]!)).to.equal(undefined);
      });

      it('-ENOMEM when the output cannot be allocated (address_bits 13: mfns 0-1 only, here taken); the input stays', () => {
        const e = env(abi);
        occupyBelow(e, 2);
        const old = ins(e, 1);
        putWords(e, e.list, old);
        putWords(e, e.list2, [FRESH + 9]);
        putExchange(e, { inNr: 1, outNr: 1, outFlags: XENMEMF_address_bits(13) });
        expect(memop(e, XENMEM_exchange)).to.equal(err(ENOMEM));
        expect(nrExchanged(e)).to.equal(0);
        expect(ownerOf(e, old[0]!)).to.equal(e.dom.domid);
        expect(e.xen.machine.m2pOf(old[0]!)).to.equal(FRESH);
      });

      it('-EINVAL for an input frame the domain does not own, a pinned page table, or shared_info; nothing is stolen', () => {
        const e = env(abi);
        const other = env(abi, { xen: e.xen });
        const [mine] = ins(e, 1);
        for (const bad of [other.b.startInfoMfn, e.b.topPtMfn, e.dom.sharedInfoMfn, e.xen.machine.maxPage + 3]) {
          putWords(e, e.list, [mine!, bad]);
          putWords(e, e.list2, [FRESH + 30]);
          putExchange(e, { inNr: 2, outNr: 1, outOrder: 1 });
          expect(memop(e, XENMEM_exchange), `mfn 0x${bad.toString(16)}`).to.equal(err(EINVAL));
          expect(nrExchanged(e)).to.equal(0);
          expect(ownerOf(e, mine!)).to.equal(e.dom.domid);
        }
        // The same frame listed twice in one chunk: the second steal fails.
        putWords(e, e.list, [mine!, mine!]);
        putExchange(e, { inNr: 2, outNr: 1, outOrder: 1 });
        expect(memop(e, XENMEM_exchange)).to.equal(err(EINVAL));
        expect(ownerOf(e, mine!)).to.equal(e.dom.domid);
      });

      it(`on failure after two chunks: ${abi === X86_64 ? 'nr_exchanged = 2 and the first two out entries hold mfns' : 'x86_32 gets the error only, with nr_exchanged and the out array untouched, though two chunks were exchanged'}`, () => {
        const e = env(abi);
        const other = env(abi, { xen: e.xen });
        const old = ins(e, 2);
        putWords(e, e.list, [old[0]!, old[1]!, other.b.startInfoMfn]);
        putWords(e, e.list2, [FRESH + 20, FRESH + 21, FRESH + 22]);
        putExchange(e, { inNr: 3, outNr: 3 });
        expect(memop(e, XENMEM_exchange)).to.equal(err(EINVAL));
        // The first two chunks happened: the input frames were freed (and may be reused as outputs).
        expect(e.xen.machine.m2pOf(old[0]!)).to.not.equal(FRESH);
        expect(e.xen.machine.m2pOf(old[1]!)).to.not.equal(FRESH + 1);
        const out = getWords(e, e.list2, 3);
        if (abi === X86_64) {
          expect(nrExchanged(e)).to.equal(2);
          expect(e.xen.machine.m2pOf(out[0]!)).to.equal(FRESH + 20);
          expect(e.xen.machine.m2pOf(out[1]!)).to.equal(FRESH + 21);
          expect(out[2]).to.equal(FRESH + 22);
        } else {
          expect(nrExchanged(e)).to.equal(0);
          expect(out).to.deep.equal([FRESH + 20, FRESH + 21, FRESH + 22]);
        }
      });

      it('-EFAULT for an unmapped struct, a struct straddling into an unmapped page, and unmapped arrays', () => {
        const e = env(abi);
        const old = ins(e, 1);
        expect(memop(e, XENMEM_exchange, e.unmapped)).to.equal(err(EFAULT));
        const straddle = e.unmapped - 16n;
        store(e, straddle, new Uint8Array(16));
        expect(memop(e, XENMEM_exchange, straddle)).to.equal(err(EFAULT));

        putWords(e, e.list2, [FRESH + 5]);
        putExchange(e, { inList: e.unmapped, inNr: 1, outNr: 1 });
        expect(memop(e, XENMEM_exchange)).to.equal(err(EFAULT));
        expect(nrExchanged(e)).to.equal(0);

        putWords(e, e.list, old);
        putExchange(e, { outList: e.unmapped, inNr: 1, outNr: 1 });
        expect(memop(e, XENMEM_exchange)).to.equal(err(EFAULT));
        if (abi === X86_32) {
          // compat copies the out array in before anything happens
          expect(ownerOf(e, old[0]!)).to.equal(e.dom.domid);
        } else {
          // native reads each out gpfn after the chunk is done: the input is gone, nr_exchanged 0
          expect(ownerOf(e, old[0]!)).to.equal(undefined);
          expect(nrExchanged(e)).to.equal(0);
        }
      });

      it('-EFAULT for an array pointer in Xen\'s virtual range, before the domain is even looked up', () => {
        const e = env(abi);
        const xenVa = abi === X86_64 ? 0xffff800000000000n : 0xf5800000n;
        putExchange(e, { inList: xenVa, inNr: 1, outNr: 1, inDomid: 0x1234, outDomid: 0x1234 });
        expect(memop(e, XENMEM_exchange)).to.equal(err(EFAULT));
        putExchange(e, { inNr: 1, outNr: 1, inDomid: 0x1234, outDomid: 0x1234 });
        putWords(e, e.list, [0]);
        putWords(e, e.list2, [0]);
        expect(memop(e, XENMEM_exchange)).to.equal(err(ESRCH));
      });

      if (abi === X86_32) {
        it('x86_32: -EPERM for an order of 32 or more, -E2BIG for an order difference of 10 or more', () => {
          const e = env(abi);
          putExchange(e, { inNr: 1, inOrder: 32, outNr: 1, outOrder: 32 });
          expect(memop(e, XENMEM_exchange)).to.equal(err(EPERM));
          putExchange(e, { inNr: 1024, outNr: 1, outOrder: 10 });
          expect(memop(e, XENMEM_exchange)).to.equal(err(E2BIG));
        });

        it('x86_32: -EINVAL for an nr_exchanged that is not a whole output chunk', () => {
          const e = env(abi);
          putExchange(e, { inNr: 4, outNr: 1, outOrder: 2, nrExchanged: 1 });
          expect(memop(e, XENMEM_exchange)).to.equal(err(EINVAL));
        });

        it('x86_32: a second translation batch (507 order-0 extents each) is refused with -EINVAL after the first is reported', () => {
          const e = env(abi);
          const n = 600;
          const old = populate(e, range(FRESH, n), 0, e.list);
          putWords(e, e.list2, range(FRESH + 1000, n));
          putExchange(e, { inNr: n, outNr: n });
          expect(memop(e, XENMEM_exchange)).to.equal(err(EINVAL));
          expect(nrExchanged(e)).to.equal(507);
          const out = getWords(e, e.list2, n);
          expect(e.xen.machine.m2pOf(out[506]!)).to.equal(FRESH + 1000 + 506);
          expect(out[507]).to.equal(FRESH + 1000 + 507);
          expect(ownerOf(e, old[507]!)).to.equal(e.dom.domid);
        });
      } else {
        it('x86_64: -EPERM (not -E2BIG) for an order difference of 10, and 600 extents go in one call', () => {
          const e = env(abi);
          putExchange(e, { inNr: 1024, outNr: 1, outOrder: 10 });
          expect(memop(e, XENMEM_exchange)).to.equal(err(EPERM));
          const n = 600;
          populate(e, range(FRESH, n), 0, e.list);
          putWords(e, e.list2, range(FRESH + 1000, n));
          putExchange(e, { inNr: n, outNr: n });
          expect(memop(e, XENMEM_exchange)).to.equal(0n);
          expect(nrExchanged(e)).to.equal(n);
        });
      }
    });

    // --------------------------------------------------------------------------------------------
    describe('status ops', () => {
      function putDomid(e: Env, domid: number): void {
        const { bytes, view } = xen_memory_domain.alloc(e.abi);
        view.domid = domid;
        store(e, e.arg, bytes);
      }

      it('maximum_ram_page returns max_page; -EINVAL with a start extent', () => {
        const e = env(abi, { maxPage: 50000 });
        expect(memop(e, XENMEM_maximum_ram_page, 0n)).to.equal(50000n);
        expect(memop(e, XENMEM_maximum_ram_page, 0n, 1)).to.equal(err(EINVAL));
      });

      it(`maximum_ram_page on a 2^32-frame machine: ${abi === X86_32 ? 'clamped to INT_MAX for x86_32' : '2^32'}`, () => {
        const e = env(abi, { maxPage: 2 ** 32 });
        expect(memop(e, XENMEM_maximum_ram_page, 0n)).to.equal(abi === X86_32 ? 0x7fffffffn : 2n ** 32n);
      });

      it('current_reservation and maximum_reservation return tot_pages and max_pages, for DOMID_SELF or the own id', () => {
        const e = env(abi, { maxPages: 5000 });
        populate(e, [FRESH]);
        putDomid(e, DOMID_SELF);
        expect(memop(e, XENMEM_current_reservation)).to.equal(BigInt(MEMORY_PAGES + 1));
        expect(memop(e, XENMEM_maximum_reservation)).to.equal(5000n);
        putDomid(e, e.dom.domid);
        expect(memop(e, XENMEM_current_reservation)).to.equal(BigInt(MEMORY_PAGES + 1));
      });

      it('-ESRCH for an unknown domain, -EPERM for another one without privilege, the value with privilege', () => {
        const ctl = env(abi, { privileged: true });
        const domU = env(abi, { xen: ctl.xen, maxPages: 6000 });
        putDomid(domU, 0x1234);
        expect(memop(domU, XENMEM_current_reservation)).to.equal(err(ESRCH));
        putDomid(domU, ctl.dom.domid);
        expect(memop(domU, XENMEM_maximum_reservation)).to.equal(err(EPERM));
        expect(memop(domU, XENMEM_maximum_gpfn)).to.equal(err(EPERM));
        putDomid(ctl, domU.dom.domid);
        expect(memop(ctl, XENMEM_maximum_reservation)).to.equal(6000n);
        expect(memop(ctl, XENMEM_current_reservation)).to.equal(BigInt(MEMORY_PAGES));
      });

      it('-EFAULT for an unmapped struct, -EINVAL for a start extent', () => {
        const e = env(abi);
        expect(memop(e, XENMEM_current_reservation, e.unmapped)).to.equal(err(EFAULT));
        expect(memop(e, XENMEM_maximum_gpfn, e.unmapped)).to.equal(err(EFAULT));
        putDomid(e, DOMID_SELF);
        expect(memop(e, XENMEM_maximum_reservation, e.arg, 2)).to.equal(err(EINVAL));
      });

      it("maximum_gpfn is the guest's shared_info arch.max_pfn - 1 (0 when max_pfn is 0)", () => {
        const e = env(abi);
        putDomid(e, DOMID_SELF);
        expect(memop(e, XENMEM_maximum_gpfn)).to.equal(0n);
        const at = shared_info.offsetOf(abi, 'arch.max_pfn');
        const guest = { domid: e.dom.domid, by: 'guest' as const };
        e.xen.storeWord(guest, e.dom.sharedInfoMfn, at, 0x12345n, abi.wordSize);
        expect(memop(e, XENMEM_maximum_gpfn)).to.equal(0x12344n);
        e.xen.storeWord(guest, e.dom.sharedInfoMfn, at, 0x90000000n, abi.wordSize);
        expect(memop(e, XENMEM_maximum_gpfn)).to.equal(abi === X86_32 ? 0x7fffffffn : 0x8fffffffn);
      });
    });

    it('answers -ENOSYS for an unknown op', () => {
      const e = env(abi);
      expect(memop(e, 63, e.arg)).to.equal(err(ENOSYS));
      expect(memop(e, 40, e.arg)).to.equal(err(ENOSYS));
    });
  });
}
