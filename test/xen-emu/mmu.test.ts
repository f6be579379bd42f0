/**
 * mmu_update, mmuext_op and update_va_mapping against Xen's do_mmu_update / do_mmuext_op /
 * __do_update_va_mapping (xen/arch/x86/mm.c), on domains built by xen-emu/builder.ts, both ABIs.
 * Arguments are written into the guest's own scratch pages and passed by VIRTUAL address.
 */

import { expect } from 'chai';
import {
  DOMID_IO,
  DOMID_SELF,
  EBUSY,
  EFAULT,
  EINVAL,
  ENOSYS,
  EOPNOTSUPP,
  EPERM,
  ESRCH,
  MMUEXT_CLEAR_PAGE,
  MMUEXT_COPY_PAGE,
  MMUEXT_INVLPG_ALL,
  MMUEXT_INVLPG_LOCAL,
  MMUEXT_INVLPG_MULTI,
  MMUEXT_MARK_SUPER,
  MMUEXT_NEW_BASEPTR,
  MMUEXT_NEW_USER_BASEPTR,
  MMUEXT_PIN_L1_TABLE,
  MMUEXT_PIN_L2_TABLE,
  MMUEXT_PIN_L3_TABLE,
  MMUEXT_PIN_L4_TABLE,
  MMUEXT_TLB_FLUSH_ALL,
  MMUEXT_TLB_FLUSH_LOCAL,
  MMUEXT_TLB_FLUSH_MULTI,
  MMUEXT_UNPIN_TABLE,
  MMU_MACHPHYS_UPDATE,
  MMU_NORMAL_PT_UPDATE,
  MMU_PT_UPDATE_NO_TRANSLATE,
  MMU_PT_UPDATE_PRESERVE_AD,
  PAGE_SIZE,
  UVMF_ALL,
  UVMF_INVLPG,
  UVMF_NONE,
  UVMF_TLB_FLUSH,
  X86_32,
  X86_64,
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_NX,
  _PAGE_PRESENT,
  _PAGE_PSE,
  _PAGE_RW,
  _PAGE_USER,
  __HYPERVISOR_mmu_update,
  __HYPERVISOR_mmuext_op,
  __HYPERVISOR_update_va_mapping,
  encodeForeignDom,
  makePte,
  mmuext_op,
  type GuestAbi,
} from '../../abi/index.js';
import { buildDomain, type BuiltDomain } from '../../xen-emu/builder.js';
import type { Domain } from '../../xen-emu/domain.js';
import { PageType } from '../../xen-emu/machine.js';
import { _PAGE_GUEST_KERNEL } from '../../xen-emu/pagetable.js';
import type { XenEvent } from '../../xen-emu/events.js';
import { Xen } from '../../xen-emu/xen.js';

const MEMORY_PAGES = 2048;
const P_RW_A = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED;
const P_A = _PAGE_PRESENT | _PAGE_ACCESSED;
/** Upper-level entry flags as libxc's builder writes them. */
const P_RW_A_D_US = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_USER;
const PAGE = BigInt(PAGE_SIZE);
const MIB2 = 2n << 20n;
/** Pfns beyond the bootstrap mapping (and the x86_64 p2m list): populated, mapped nowhere. */
const FREE_PFN = 1500;
const SENTINEL = 0xdeadbeef;

const neg = (errno: number): bigint => BigInt(-errno);

interface Guest {
  readonly xen: Xen;
  readonly b: BuiltDomain;
  readonly dom: Domain;
  readonly abi: GuestAbi;
}

function build(xen: Xen, abi: GuestAbi, privileged = false): Guest {
  const b = buildDomain(xen, { abi, memoryPages: MEMORY_PAGES, privileged });
  return { xen, b, dom: b.dom, abi };
}

function world(abi: GuestAbi, privileged = false): Guest {
  return build(new Xen({ maxPage: 1 << 14 }), abi, privileged);
}

// Scratch layout: page 0 the request / op array, page 1 words (pdone, bitmaps), page 15 remapped.
const reqsVa = (g: Guest): bigint => g.b.scratchVa;
const pdoneVa = (g: Guest): bigint => g.b.scratchVa + PAGE;
const remapVa = (g: Guest): bigint => g.b.scratchVa + 15n * PAGE;
/** A VA whose L2 slot (100 slots above the bootstrap mapping's first) holds no L1. */
const holeVa = (g: Guest): bigint => g.b.virtBase + 100n * MIB2;

const mfnOf = (g: Guest, pfn: number): number => Number(g.b.p2mEntry(pfn));
const pfnOf = (g: Guest, mfn: number): number => g.xen.machine.m2pOf(mfn);
const pte = (mfn: number, flags: bigint): bigint => makePte(BigInt(mfn), flags);

function entryAt(g: Guest, mfn: number, index: number): bigint {
  const page = g.xen.machine.bytes(mfn);
  return new DataView(page.buffer, page.byteOffset, PAGE_SIZE).getBigUint64(index * 8, true);
}

function readMaddr(g: Guest, maddr: bigint): bigint {
  return entryAt(g, Number(maddr >> 12n), Number((maddr & 0xfffn) >> 3n));
}

/** The MACHINE address of the entry for `va` at `level` (4/3 = the top … 1), walking the guest's tables. */
function entryMaddr(g: Guest, va: bigint, level: number): bigint {
  const shifts = g.abi === X86_64 ? [39n, 30n, 21n, 12n] : [30n, 21n, 12n];
  const top = shifts.length;
  let mfn = g.dom.baseptrMfn;
  for (let l = top; ; l--) {
    const shift = shifts[top - l]!;
    const index = Number((va >> shift) & (g.abi === X86_32 && l === 3 ? 3n : 511n));
    if (l === level) return BigInt(mfn) * PAGE + BigInt(index * 8);
    const e = entryAt(g, mfn, index);
    if ((e & _PAGE_PRESENT) === 0n) throw new Error(`no level-${l - 1} table for 0x${va.toString(16)}`);
    mfn = Number((e >> 12n) & 0xffffffffffn);
  }
}

/** The frame holding the table at `level` on `va`'s walk. */
const tableMfn = (g: Guest, va: bigint, level: number): number => Number(entryMaddr(g, va, level) >> 12n);

function putU32(g: Guest, va: bigint, value: number): void {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, true);
  expect(g.xen.guestStore(g.dom, va, bytes)).to.equal(0);
}

function getU32(g: Guest, va: bigint): number {
  const raw = g.xen.guestLoad(g.dom, va, 4)!;
  return new DataView(raw.buffer, raw.byteOffset, 4).getUint32(0, true);
}

/** Writes `mmu_update` requests (16 bytes each on both ABIs) at `va`. */
function putReqs(g: Guest, va: bigint, reqs: readonly { ptr: bigint; val: bigint }[]): void {
  const bytes = new Uint8Array(reqs.length * 16);
  const view = new DataView(bytes.buffer);
  reqs.forEach((r, i) => {
    view.setBigUint64(i * 16, r.ptr, true);
    view.setBigUint64(i * 16 + 8, r.val, true);
  });
  expect(g.xen.guestStore(g.dom, va, bytes)).to.equal(0);
}

/** Runs mmu_update with the requests placed at the scratch array and pdone in scratch page 1. */
function mmuUpdate(g: Guest, reqs: readonly { ptr: bigint; val: bigint }[], foreigndom = DOMID_SELF, caller = g.dom): { rc: bigint; done: number } {
  putReqs(g, reqsVa(g), reqs);
  putU32(g, pdoneVa(g), SENTINEL);
  const rc = g.xen.hypercall(caller.domid, __HYPERVISOR_mmu_update, reqsVa(g), BigInt(reqs.length), pdoneVa(g), BigInt(foreigndom));
  return { rc, done: getU32(g, pdoneVa(g)) };
}

const ptUpdate = (maddr: bigint, val: bigint, cmd = MMU_NORMAL_PT_UPDATE): { ptr: bigint; val: bigint } => ({ ptr: maddr | BigInt(cmd), val });
const machphys = (mfn: number, pfn: bigint): { ptr: bigint; val: bigint } => ({ ptr: (BigInt(mfn) << 12n) | BigInt(MMU_MACHPHYS_UPDATE), val: pfn });

interface ExtOp {
  cmd: number;
  arg1?: bigint;
  arg2?: bigint;
}

function putOps(g: Guest, va: bigint, ops: readonly ExtOp[]): void {
  const size = mmuext_op.sizeOf(g.abi);
  const w = g.abi.wordSize;
  const bytes = new Uint8Array(ops.length * size);
  const view = new DataView(bytes.buffer);
  ops.forEach((op, i) => {
    const at = i * size;
    view.setUint32(at + mmuext_op.offsetOf(g.abi, 'cmd'), op.cmd, true);
    for (const [name, value] of [['arg1', op.arg1 ?? 0n], ['arg2', op.arg2 ?? 0n]] as const) {
      const off = at + mmuext_op.offsetOf(g.abi, name);
      if (w === 8) view.setBigUint64(off, value, true);
      else view.setUint32(off, Number(value), true);
    }
  });
  expect(g.xen.guestStore(g.dom, va, bytes)).to.equal(0);
}

function mmuextOp(g: Guest, ops: readonly ExtOp[], foreigndom = DOMID_SELF, caller = g.dom): { rc: bigint; done: number } {
  putOps(g, reqsVa(g), ops);
  putU32(g, pdoneVa(g), SENTINEL);
  const rc = g.xen.hypercall(caller.domid, __HYPERVISOR_mmuext_op, reqsVa(g), BigInt(ops.length), pdoneVa(g), BigInt(foreigndom));
  return { rc, done: getU32(g, pdoneVa(g)) };
}

/** update_va_mapping in the caller's register convention: x86_32 splits the PTE into lo, hi. */
function updateVaMapping(g: Guest, va: bigint, val: bigint, flags: bigint): bigint {
  return g.abi === X86_32
    ? g.xen.hypercall(g.dom.domid, __HYPERVISOR_update_va_mapping, va, val & 0xffffffffn, val >> 32n, flags)
    : g.xen.hypercall(g.dom.domid, __HYPERVISOR_update_va_mapping, va, val, flags);
}

/** What Xen stores for a present L1 entry the guest wrote without US: x86_64 kernels get US + GUEST_KERNEL. */
const storedL1 = (g: Guest, val: bigint): bigint => (g.abi === X86_64 ? val | _PAGE_USER | _PAGE_GUEST_KERNEL : val);

/** Fills an unmapped frame with L1 entries through plain mmu_update stores (it is an ordinary page). */
function writeTable(g: Guest, tableMfnValue: number, entries: readonly [number, bigint][]): void {
  const { rc } = mmuUpdate(
    g,
    entries.map(([i, v]) => ptUpdate(BigInt(tableMfnValue) * PAGE + BigInt(i * 8), v)),
  );
  expect(rc).to.equal(0n);
}

for (const abi of [X86_32, X86_64]) {
  const topPin = abi === X86_64 ? MMUEXT_PIN_L4_TABLE : MMUEXT_PIN_L3_TABLE;
  const topType = abi === X86_64 ? PageType.L4 : PageType.L3;

  describe(`xen-emu mmu_update (${abi.name})`, () => {
    it('maps a frame with MMU_NORMAL_PT_UPDATE; the VA then translates to it and takes guest stores', () => {
      const g = world(abi);
      const target = mfnOf(g, FREE_PFN);
      const maddr = entryMaddr(g, remapVa(g), 1);
      const { rc, done } = mmuUpdate(g, [ptUpdate(maddr, pte(target, P_RW_A))]);
      expect(rc).to.equal(0n);
      expect(done).to.equal(1);
      expect(readMaddr(g, maddr)).to.equal(storedL1(g, pte(target, P_RW_A)));
      expect(g.xen.translate(g.dom, remapVa(g) + 0x18n, true)).to.deep.equal({ mfn: target, offset: 0x18 });
      expect(g.xen.guestStoreWord(g.dom, remapVa(g) + 0x18n, 0x1122334455667788n, 8)).to.equal(0);
      expect(new DataView(g.xen.machine.bytes(target).buffer, g.xen.machine.bytes(target).byteOffset).getBigUint64(0x18, true)).to.equal(0x1122334455667788n);
    });

    it('MMU_PT_UPDATE_NO_TRANSLATE behaves as a normal update for a PV guest', () => {
      const g = world(abi);
      const target = mfnOf(g, FREE_PFN);
      const { rc } = mmuUpdate(g, [ptUpdate(entryMaddr(g, remapVa(g), 1), pte(target, P_RW_A), MMU_PT_UPDATE_NO_TRANSLATE)]);
      expect(rc).to.equal(0n);
      expect(g.xen.translate(g.dom, remapVa(g), false)?.mfn).to.equal(target);
    });

    it('logdirty marks the page-table page\'s pfn (through the store choke point), not the mapped pfn', () => {
      const g = world(abi);
      const maddr = entryMaddr(g, remapVa(g), 1);
      const l1Pfn = pfnOf(g, Number(maddr >> 12n));
      g.dom.logdirty.enable();
      const stores: XenEvent[] = [];
      g.xen.events.subscribe((e) => {
        if (e.type === 'store' && e.mfn === Number(maddr >> 12n)) stores.push(e);
      });
      const { rc } = mmuUpdate(g, [ptUpdate(maddr, pte(mfnOf(g, FREE_PFN), P_RW_A))]);
      expect(rc).to.equal(0n);
      expect(g.dom.logdirty.isDirty(l1Pfn)).to.equal(true);
      expect(g.dom.logdirty.isDirty(FREE_PFN)).to.equal(false);
      expect(stores).to.have.length(1);
      expect(stores[0]).to.include({ by: 'xen', length: 8, offset: Number(maddr & 0xfffn), pfn: l1Pfn });
    });

    it('MMU_MACHPHYS_UPDATE sets the m2p and marks the new pfn dirty (not the old one)', () => {
      const g = world(abi);
      const mfn = mfnOf(g, FREE_PFN);
      g.dom.logdirty.enable();
      const { rc, done } = mmuUpdate(g, [machphys(mfn, 1700n)]);
      expect(rc).to.equal(0n);
      expect(done).to.equal(1);
      expect(g.xen.machine.m2pOf(mfn)).to.equal(1700);
      expect(g.dom.logdirty.isDirty(1700)).to.equal(true);
      expect(g.dom.logdirty.isDirty(FREE_PFN)).to.equal(false);
    });

    it('MMU_MACHPHYS_UPDATE of another domain\'s frame is -EINVAL; with a foreign PFD it is -EPERM', () => {
      const xen = new Xen({ maxPage: 1 << 14 });
      const g = build(xen, abi);
      const other = build(xen, abi);
      const foreign = mfnOf(other, FREE_PFN);
      expect(mmuUpdate(g, [machphys(foreign, 5n)]).rc).to.equal(neg(EINVAL));
      expect(xen.machine.m2pOf(foreign)).to.equal(FREE_PFN);
      const pfdOther = encodeForeignDom(DOMID_SELF, other.dom.domid);
      expect(mmuUpdate(g, [machphys(mfnOf(g, FREE_PFN), 5n)], pfdOther).rc).to.equal(neg(EPERM));
    });

    it('refuses to map another domain\'s frame with FD = DOMID_SELF: -EBUSY, as get_page_from_l1e\'s "could not pin"', () => {
      const xen = new Xen({ maxPage: 1 << 14 });
      const g = build(xen, abi);
      const other = build(xen, abi);
      const maddr = entryMaddr(g, remapVa(g), 1);
      const before = readMaddr(g, maddr);
      const { rc, done } = mmuUpdate(g, [ptUpdate(maddr, pte(mfnOf(other, FREE_PFN), P_RW_A))]);
      expect(rc).to.equal(neg(EBUSY));
      expect(done).to.equal(0);
      expect(readMaddr(g, maddr)).to.equal(before);
    });

    it('refuses a free frame (-EBUSY) and a frame beyond the machine (-EPERM, no I/O memory permission)', () => {
      const g = world(abi);
      const maddr = entryMaddr(g, remapVa(g), 1);
      const free = g.xen.machine.maxPage - 1;
      expect(g.xen.machine.ownerOf(free)).to.equal(undefined);
      expect(mmuUpdate(g, [ptUpdate(maddr, pte(free, P_RW_A))]).rc).to.equal(neg(EBUSY));
      expect(mmuUpdate(g, [ptUpdate(maddr, pte(1 << 20, P_RW_A))]).rc).to.equal(neg(EPERM));
      expect(mmuUpdate(g, [ptUpdate(maddr, pte(2 ** 40 - 1, P_RW_A))]).rc).to.equal(neg(EINVAL));
    });

    it('an unprivileged caller naming another domain as FD gets -EPERM (XSM); a privileged one maps the frame', () => {
      const xen = new Xen({ maxPage: 1 << 14 });
      const dom0 = build(xen, abi, true);
      const domU = build(xen, abi);
      const foreign = mfnOf(domU, FREE_PFN);
      // domU naming dom0 as FD.
      const uMaddr = entryMaddr(domU, remapVa(domU), 1);
      expect(mmuUpdate(domU, [ptUpdate(uMaddr, pte(mfnOf(dom0, FREE_PFN), P_RW_A))], dom0.dom.domid).rc).to.equal(neg(EPERM));
      // dom0 mapping domU's frame into its own table (a foreign mapping, as libxc's do).
      const maddr = entryMaddr(dom0, remapVa(dom0), 1);
      const { rc } = mmuUpdate(dom0, [ptUpdate(maddr, pte(foreign, P_A))], domU.dom.domid);
      expect(rc).to.equal(0n);
      expect(xen.translate(dom0.dom, remapVa(dom0), false)?.mfn).to.equal(foreign);
    });

    it('refuses a writable mapping of a page-table frame (-EBUSY) but maps it read-only', () => {
      const g = world(abi);
      const maddr = entryMaddr(g, remapVa(g), 1);
      const l1 = Number(maddr >> 12n);
      expect(g.xen.machine.pageType(l1)).to.equal(PageType.L1);
      expect(mmuUpdate(g, [ptUpdate(maddr, pte(l1, P_RW_A))]).rc).to.equal(neg(EBUSY));
      expect(mmuUpdate(g, [ptUpdate(maddr, pte(g.dom.baseptrMfn, P_RW_A))]).rc).to.equal(neg(EBUSY));
      expect(mmuUpdate(g, [ptUpdate(maddr, pte(l1, P_A))]).rc).to.equal(0n);
      expect(g.xen.translate(g.dom, remapVa(g), false)?.mfn).to.equal(l1);
      expect(g.xen.translate(g.dom, remapVa(g), true)).to.equal(undefined);
    });

    it('refuses cache attributes in an L1 entry of an unprivileged domain (-EINVAL)', () => {
      const g = world(abi);
      const maddr = entryMaddr(g, remapVa(g), 1);
      expect(mmuUpdate(g, [ptUpdate(maddr, pte(mfnOf(g, FREE_PFN), P_RW_A | 0x10n))]).rc).to.equal(neg(EINVAL));
    });

    it('gives -ENOSYS for commands 4 to 7', () => {
      const g = world(abi);
      const maddr = entryMaddr(g, remapVa(g), 1);
      for (let cmd = 4; cmd <= 7; cmd++) {
        const { rc, done } = mmuUpdate(g, [ptUpdate(maddr, 0n, cmd)]);
        expect(rc, `cmd ${cmd}`).to.equal(neg(ENOSYS));
        expect(done).to.equal(0);
      }
    });

    it('stops at the first failing request and reports the count done in pdone', () => {
      const g = world(abi);
      const maddr = entryMaddr(g, remapVa(g), 1);
      const { rc, done } = mmuUpdate(g, [machphys(mfnOf(g, FREE_PFN), 1701n), ptUpdate(maddr, pte(mfnOf(g, FREE_PFN), P_RW_A)), ptUpdate(maddr, 0n, 5), machphys(mfnOf(g, FREE_PFN), 1702n)]);
      expect(rc).to.equal(neg(ENOSYS));
      expect(done).to.equal(2);
      expect(g.xen.machine.m2pOf(mfnOf(g, FREE_PFN))).to.equal(1701);
      expect(g.xen.translate(g.dom, remapVa(g), false)?.mfn).to.equal(mfnOf(g, FREE_PFN));
    });

    it('reads each request through the tables as they are then: a request remapping the array\'s own page redirects the rest', () => {
      const g = world(abi);
      const arrayVa = g.b.scratchVa + 3n * PAGE;
      const other = mfnOf(g, FREE_PFN);
      const subject = mfnOf(g, FREE_PFN + 1);
      // The frame that will replace the array's page holds a different request 1.
      writeTable(g, other, [
        [2, machphys(subject, 1800n).ptr],
        [3, machphys(subject, 1800n).val],
      ]);
      putReqs(g, arrayVa, [ptUpdate(entryMaddr(g, arrayVa, 1), pte(other, P_RW_A)), machphys(subject, 1801n)]);
      expect(g.xen.hypercall(g.dom.domid, __HYPERVISOR_mmu_update, arrayVa, 2n, 0n, BigInt(DOMID_SELF))).to.equal(0n);
      expect(g.xen.machine.m2pOf(subject)).to.equal(1800);
    });

    it('a continuation count (MMU_UPDATE_PREEMPTED) adds to the count already in pdone', () => {
      const g = world(abi);
      putReqs(g, reqsVa(g), [machphys(mfnOf(g, FREE_PFN), 1703n)]);
      putU32(g, pdoneVa(g), 5);
      const rc = g.xen.hypercall(g.dom.domid, __HYPERVISOR_mmu_update, reqsVa(g), 0x80000001n, pdoneVa(g), BigInt(DOMID_SELF));
      expect(rc).to.equal(0n);
      expect(getU32(g, pdoneVa(g))).to.equal(6);
    });

    it('gives -EFAULT for an unmapped request array, and for the first unreadable element', () => {
      const g = world(abi);
      const unmapped = g.b.virtBase + BigInt(g.b.bootstrapPfns) * PAGE;
      expect(g.xen.translate(g.dom, unmapped, false)).to.equal(undefined);
      putU32(g, pdoneVa(g), SENTINEL);
      expect(g.xen.hypercall(g.dom.domid, __HYPERVISOR_mmu_update, unmapped, 1n, pdoneVa(g), BigInt(DOMID_SELF))).to.equal(neg(EFAULT));
      expect(getU32(g, pdoneVa(g))).to.equal(0);
      // An array straddling into the unmapped page: element 0 runs, element 1 faults.
      putReqs(g, unmapped - 16n, [machphys(mfnOf(g, FREE_PFN), 1704n)]);
      expect(g.xen.hypercall(g.dom.domid, __HYPERVISOR_mmu_update, unmapped - 16n, 2n, pdoneVa(g), BigInt(DOMID_SELF))).to.equal(neg(EFAULT));
      expect(getU32(g, pdoneVa(g))).to.equal(1);
      expect(g.xen.machine.m2pOf(mfnOf(g, FREE_PFN))).to.equal(1704);
    });

    if (abi === X86_64) {
      it('refuses a request array in Xen\'s range up front (-EFAULT, pdone untouched)', () => {
        const g = world(abi);
        putU32(g, pdoneVa(g), SENTINEL);
        expect(g.xen.hypercall(g.dom.domid, __HYPERVISOR_mmu_update, 0xffff800000000000n, 1n, pdoneVa(g), BigInt(DOMID_SELF))).to.equal(neg(EFAULT));
        expect(getU32(g, pdoneVa(g))).to.equal(SENTINEL);
      });
    }

    it('foreigndom: an unknown PFD is -ESRCH without pdone; an unknown FD or the caller\'s own id is -ESRCH with pdone 0', () => {
      const g = world(abi);
      const maddr = entryMaddr(g, remapVa(g), 1);
      const req = [ptUpdate(maddr, 0n)];
      const badPfd = mmuUpdate(g, req, encodeForeignDom(DOMID_SELF, 77));
      expect(badPfd).to.deep.equal({ rc: neg(ESRCH), done: SENTINEL });
      expect(mmuUpdate(g, req, 77)).to.deep.equal({ rc: neg(ESRCH), done: 0 });
      expect(mmuUpdate(g, req, g.dom.domid)).to.deep.equal({ rc: neg(ESRCH), done: 0 });
      // PFD naming the caller itself is fine.
      expect(mmuUpdate(g, req, encodeForeignDom(DOMID_SELF, g.dom.domid))).to.deep.equal({ rc: 0n, done: 1 });
    });

    it('foreigndom: a foreign PFD is -EPERM for an unprivileged caller; DOMID_IO cannot map RAM (-EBUSY)', () => {
      const xen = new Xen({ maxPage: 1 << 14 });
      const g = build(xen, abi);
      const other = build(xen, abi);
      const otherMaddr = entryMaddr(other, remapVa(other), 1);
      expect(mmuUpdate(g, [ptUpdate(otherMaddr, 0n)], encodeForeignDom(DOMID_SELF, other.dom.domid))).to.deep.equal({ rc: neg(EPERM), done: 0 });
      const maddr = entryMaddr(g, remapVa(g), 1);
      expect(mmuUpdate(g, [ptUpdate(maddr, pte(mfnOf(g, FREE_PFN), P_RW_A))], DOMID_IO).rc).to.equal(neg(EBUSY));
      expect(mmuUpdate(g, [ptUpdate(maddr, 0n)], DOMID_IO).rc).to.equal(0n);
    });

    it('a privileged caller updates another domain\'s L1 with PFD = FD = that domain', () => {
      const xen = new Xen({ maxPage: 1 << 14 });
      const dom0 = build(xen, abi, true);
      const domU = build(xen, abi);
      const maddr = entryMaddr(domU, remapVa(domU), 1);
      putReqs(dom0, reqsVa(dom0), [ptUpdate(maddr, pte(mfnOf(domU, FREE_PFN), P_RW_A))]);
      const fd = encodeForeignDom(domU.dom.domid, domU.dom.domid);
      expect(xen.hypercall(dom0.dom.domid, __HYPERVISOR_mmu_update, reqsVa(dom0), 1n, 0n, BigInt(fd))).to.equal(0n);
      expect(xen.translate(domU.dom, remapVa(domU), false)?.mfn).to.equal(mfnOf(domU, FREE_PFN));
    });

    it('an update of an ordinary page is a plain store of the value, marking that page dirty', () => {
      const g = world(abi);
      const scratchMfn = mfnOf(g, g.b.scratchPfn + 2);
      g.dom.logdirty.enable();
      const { rc } = mmuUpdate(g, [ptUpdate(BigInt(scratchMfn) * PAGE + 0x40n, 0x8000000000000abcn)]);
      expect(rc).to.equal(0n);
      expect(entryAt(g, scratchMfn, 8)).to.equal(0x8000000000000abcn);
      expect(g.dom.logdirty.isDirty(g.b.scratchPfn + 2)).to.equal(true);
    });

    it('a page-table update of a frame the PFD does not own is -EINVAL', () => {
      const xen = new Xen({ maxPage: 1 << 14 });
      const g = build(xen, abi);
      const other = build(xen, abi);
      expect(mmuUpdate(g, [ptUpdate(entryMaddr(other, remapVa(other), 1), 0n)]).rc).to.equal(neg(EINVAL));
      expect(mmuUpdate(g, [ptUpdate(BigInt(1 << 20) * PAGE, 0n)]).rc).to.equal(neg(EINVAL));
    });

    it('MMU_PT_UPDATE_PRESERVE_AD keeps the A and D bits already in the entry', () => {
      const g = world(abi);
      const maddr = entryMaddr(g, remapVa(g), 1);
      const target = mfnOf(g, FREE_PFN);
      expect(mmuUpdate(g, [ptUpdate(maddr, pte(target, P_RW_A | _PAGE_DIRTY))]).rc).to.equal(0n);
      expect(mmuUpdate(g, [ptUpdate(maddr, pte(target, _PAGE_PRESENT), MMU_PT_UPDATE_PRESERVE_AD)]).rc).to.equal(0n);
      expect(readMaddr(g, maddr)).to.equal(storedL1(g, pte(target, _PAGE_PRESENT | _PAGE_ACCESSED | _PAGE_DIRTY)));
    });

    it('an L2 update hooks a new L1 table, promoting it (typed L1, dirtied) and the VA then translates', () => {
      const g = world(abi);
      const newL1 = mfnOf(g, FREE_PFN);
      const target = mfnOf(g, FREE_PFN + 1);
      writeTable(g, newL1, [[0, pte(target, P_RW_A)]]);
      expect(g.xen.machine.pageType(newL1)).to.equal(PageType.None);
      g.dom.logdirty.enable();
      const l2e = entryMaddr(g, holeVa(g), 2);
      const { rc } = mmuUpdate(g, [ptUpdate(l2e, pte(newL1, P_RW_A_D_US))]);
      expect(rc).to.equal(0n);
      expect(g.xen.machine.pageType(newL1)).to.equal(PageType.L1);
      expect(g.xen.machine.isPinned(newL1)).to.equal(false);
      expect(g.dom.logdirty.isDirty(FREE_PFN)).to.equal(true);
      expect(g.dom.logdirty.isDirty(pfnOf(g, Number(l2e >> 12n)))).to.equal(true);
      // Xen's adjustment of the promoted entries is visible in the table.
      expect(entryAt(g, newL1, 0)).to.equal(storedL1(g, pte(target, P_RW_A)));
      expect(g.xen.translate(g.dom, holeVa(g), true)?.mfn).to.equal(target);
      // Clearing the entry releases the table again.
      expect(mmuUpdate(g, [ptUpdate(l2e, 0n)]).rc).to.equal(0n);
      expect(g.xen.machine.pageType(newL1)).to.equal(PageType.None);
      expect(g.xen.translate(g.dom, holeVa(g), false)).to.equal(undefined);
    });

    it('one upper-level update promotes a whole new subtree; a bad leaf fails it all and types nothing', () => {
      for (const bad of [false, true]) {
        const g = world(abi);
        const [l3, l2, l1, data] = [0, 1, 2, 3].map((k) => mfnOf(g, FREE_PFN + k)) as [number, number, number, number];
        writeTable(g, l2, [[0, pte(l1, P_RW_A_D_US)]]);
        // The bad variant's L1 maps the L2 (being promoted) writable.
        writeTable(g, l1, [[0, pte(data, P_RW_A)], ...(bad ? ([[1, pte(l2, P_RW_A)]] as [number, bigint][]) : [])]);
        let va: bigint;
        let slot: bigint;
        let subtree: number[];
        if (abi === X86_64) {
          writeTable(g, l3, [[0, pte(l2, P_RW_A_D_US)]]);
          va = 5n << 39n;
          slot = BigInt(g.dom.baseptrMfn) * PAGE + 5n * 8n;
          subtree = [l3, l2, l1];
        } else {
          va = 0n;
          slot = BigInt(g.dom.baseptrMfn) * PAGE;
          subtree = [l2, l1];
        }
        const rc = mmuUpdate(g, [ptUpdate(slot, pte(subtree[0]!, abi === X86_64 ? P_RW_A_D_US : _PAGE_PRESENT))]).rc;
        if (bad) {
          expect(rc).to.equal(neg(EBUSY));
          expect(subtree.map((m) => g.xen.machine.pageType(m))).to.deep.equal(subtree.map(() => PageType.None));
          expect(readMaddr(g, slot)).to.equal(0n);
        } else {
          expect(rc).to.equal(0n);
          const levels = abi === X86_64 ? [PageType.L3, PageType.L2, PageType.L1] : [PageType.L2, PageType.L1];
          expect(subtree.map((m) => g.xen.machine.pageType(m))).to.deep.equal(levels);
          expect(g.xen.translate(g.dom, va + 0x10n, true)).to.deep.equal({ mfn: data, offset: 0x10 });
        }
      }
    });

    it('an L2 entry naming a frame that fails validation as L1 is refused and leaves it untyped', () => {
      const g = world(abi);
      const bad = mfnOf(g, FREE_PFN);
      writeTable(g, bad, [[0, pte(mfnOf(g, FREE_PFN + 1), P_RW_A)], [1, pte(bad, P_RW_A)]]); // maps itself writable
      const l2e = entryMaddr(g, holeVa(g), 2);
      expect(mmuUpdate(g, [ptUpdate(l2e, pte(bad, P_RW_A_D_US))]).rc).to.equal(neg(EBUSY));
      expect(g.xen.machine.pageType(bad)).to.equal(PageType.None);
      expect(readMaddr(g, l2e)).to.equal(0n);
    });

    it('refuses an L2 entry with a disallowed flag (PSE) or naming a frame of the wrong level (-EINVAL)', () => {
      const g = world(abi);
      const l2e = entryMaddr(g, holeVa(g), 2);
      expect(mmuUpdate(g, [ptUpdate(l2e, pte(mfnOf(g, FREE_PFN), P_RW_A_D_US | _PAGE_PSE))]).rc).to.equal(neg(EINVAL));
      const anL2 = tableMfn(g, remapVa(g), 2);
      expect(mmuUpdate(g, [ptUpdate(l2e, pte(anL2, P_RW_A_D_US))]).rc).to.equal(neg(EINVAL));
    });

    it('L2 to L4 updates with a foreign FD are -EINVAL', () => {
      const xen = new Xen({ maxPage: 1 << 14 });
      const dom0 = build(xen, abi, true);
      const domU = build(xen, abi);
      const l2e = entryMaddr(dom0, holeVa(dom0), 2);
      expect(mmuUpdate(dom0, [ptUpdate(l2e, 0n)], domU.dom.domid).rc).to.equal(neg(EINVAL));
    });

    if (abi === X86_64) {
      it('L4 slots 256 to 271 are Xen\'s: -EINVAL; other slots take a validated L3', () => {
        const g = world(abi);
        const l4 = BigInt(g.dom.baseptrMfn) * PAGE;
        const l3 = tableMfn(g, remapVa(g), 3);
        expect(mmuUpdate(g, [ptUpdate(l4 + 256n * 8n, 0n)]).rc).to.equal(neg(EINVAL));
        expect(mmuUpdate(g, [ptUpdate(l4 + 271n * 8n, pte(l3, P_RW_A_D_US))]).rc).to.equal(neg(EINVAL));
        expect(mmuUpdate(g, [ptUpdate(l4 + 272n * 8n, pte(l3, P_RW_A_D_US))]).rc).to.equal(0n);
        expect(entryAt(g, g.dom.baseptrMfn, 272)).to.equal(pte(l3, P_RW_A_D_US));
        expect(g.xen.translate(g.dom, 0xffff880000000000n + (remapVa(g) & ((1n << 39n) - 1n)), false)?.mfn).to.equal(mfnOf(g, g.b.scratchPfn + 15));
      });
    } else {
      it('PAE L3: slot 3 and above cannot be changed (-EINVAL); disallowed bits such as NX are -EINVAL', () => {
        const g = world(abi);
        const l3 = BigInt(g.dom.baseptrMfn) * PAGE;
        const l2 = tableMfn(g, remapVa(g), 2);
        expect(mmuUpdate(g, [ptUpdate(l3 + 3n * 8n, entryAt(g, g.dom.baseptrMfn, 3))]).rc).to.equal(neg(EINVAL));
        expect(mmuUpdate(g, [ptUpdate(l3 + 4n * 8n, 0n)]).rc).to.equal(neg(EINVAL));
        const fresh = mfnOf(g, FREE_PFN);
        expect(mmuUpdate(g, [ptUpdate(l3, pte(fresh, _PAGE_PRESENT | _PAGE_NX))]).rc).to.equal(neg(EINVAL));
        // The Xen L2 in slot 3 cannot also appear in slots 0-2.
        expect(mmuUpdate(g, [ptUpdate(l3, pte(l2, _PAGE_PRESENT))]).rc).to.equal(neg(EINVAL));
        // A fresh L2 in slot 0: validated, and Xen adds US and RW to the L3 entry.
        expect(mmuUpdate(g, [ptUpdate(l3, pte(fresh, _PAGE_PRESENT))]).rc).to.equal(0n);
        expect(g.xen.machine.pageType(fresh)).to.equal(PageType.L2);
        expect(entryAt(g, g.dom.baseptrMfn, 0)).to.equal(pte(fresh, _PAGE_PRESENT | _PAGE_USER | _PAGE_RW));
      });

      it('the PAE Xen L2\'s slots from 0xF5800000 are refused with -EPERM', () => {
        const g = world(abi);
        const l2e = entryMaddr(g, 0xf5800000n, 2);
        expect(Number((l2e & 0xfffn) >> 3n)).to.equal(428);
        expect(mmuUpdate(g, [ptUpdate(l2e, 0n)]).rc).to.equal(neg(EPERM));
        expect(mmuUpdate(g, [ptUpdate(l2e - 8n, 0n)]).rc).to.equal(0n);
      });
    }
  });

  describe(`xen-emu mmuext_op (${abi.name})`, () => {
    it('pins a new L1 table (validated, typed, dirtied); pinning again is -EINVAL; unpin drops pin and type', () => {
      const g = world(abi);
      const t = mfnOf(g, FREE_PFN);
      writeTable(g, t, [[7, pte(mfnOf(g, FREE_PFN + 1), P_RW_A)]]);
      g.dom.logdirty.enable();
      expect(mmuextOp(g, [{ cmd: MMUEXT_PIN_L1_TABLE, arg1: BigInt(t) }])).to.deep.equal({ rc: 0n, done: 1 });
      expect(g.xen.machine.pageType(t)).to.equal(PageType.L1);
      expect(g.xen.machine.isPinned(t)).to.equal(true);
      expect(g.dom.logdirty.isDirty(FREE_PFN)).to.equal(true);
      expect(entryAt(g, t, 7)).to.equal(storedL1(g, pte(mfnOf(g, FREE_PFN + 1), P_RW_A)));
      expect(mmuextOp(g, [{ cmd: MMUEXT_PIN_L1_TABLE, arg1: BigInt(t) }])).to.deep.equal({ rc: neg(EINVAL), done: 0 });
      expect(mmuextOp(g, [{ cmd: MMUEXT_PIN_L2_TABLE, arg1: BigInt(t) }]).rc).to.equal(neg(EINVAL));
      // A pinned table cannot be mapped writable.
      expect(mmuUpdate(g, [ptUpdate(entryMaddr(g, remapVa(g), 1), pte(t, P_RW_A))]).rc).to.equal(neg(EBUSY));
      expect(mmuextOp(g, [{ cmd: MMUEXT_UNPIN_TABLE, arg1: BigInt(t) }])).to.deep.equal({ rc: 0n, done: 1 });
      expect(g.xen.machine.isPinned(t)).to.equal(false);
      expect(g.xen.machine.pageType(t)).to.equal(PageType.None);
      expect(mmuextOp(g, [{ cmd: MMUEXT_UNPIN_TABLE, arg1: BigInt(t) }]).rc).to.equal(neg(EINVAL));
    });

    it('pinning a table that maps another domain\'s frame fails validation (-EBUSY) and types nothing', () => {
      const xen = new Xen({ maxPage: 1 << 14 });
      const g = build(xen, abi);
      const other = build(xen, abi);
      const t = mfnOf(g, FREE_PFN);
      writeTable(g, t, [[0, pte(mfnOf(other, FREE_PFN), P_A)]]);
      expect(mmuextOp(g, [{ cmd: MMUEXT_PIN_L1_TABLE, arg1: BigInt(t) }]).rc).to.equal(neg(EBUSY));
      expect(xen.machine.pageType(t)).to.equal(PageType.None);
      expect(mmuextOp(g, [{ cmd: MMUEXT_PIN_L1_TABLE, arg1: BigInt(mfnOf(other, FREE_PFN)) }]).rc).to.equal(neg(EINVAL));
    });

    it(`pins the top level (${abi === X86_64 ? 'L4' : 'PAE L3'}); the builder's pinned top is already pinned (-EINVAL)`, () => {
      const g = world(abi);
      expect(mmuextOp(g, [{ cmd: topPin, arg1: BigInt(g.dom.baseptrMfn) }]).rc).to.equal(neg(EINVAL));
      expect(mmuextOp(g, [{ cmd: MMUEXT_PIN_L2_TABLE, arg1: BigInt(tableMfn(g, holeVa(g), 2)) }]).rc).to.equal(abi === X86_64 ? 0n : neg(EINVAL));
      if (abi === X86_32) {
        // PIN_L4 on a 32-bit domain is accepted and does nothing.
        const f = mfnOf(g, FREE_PFN);
        expect(mmuextOp(g, [{ cmd: MMUEXT_PIN_L4_TABLE, arg1: BigInt(f) }])).to.deep.equal({ rc: 0n, done: 1 });
        expect(g.xen.machine.isPinned(f)).to.equal(false);
      }
    });

    it('NEW_BASEPTR switches to a validated copy of the top table; translations follow it', () => {
      const g = world(abi);
      const oldTop = g.dom.baseptrMfn;
      const newTop = mfnOf(g, FREE_PFN);
      const ops: ExtOp[] = [{ cmd: MMUEXT_COPY_PAGE, arg1: BigInt(newTop), arg2: BigInt(oldTop) }];
      if (abi === X86_32) {
        // The Xen L2 in slot 3 may not be shared: give the new L3 its own copy.
        const newXenL2 = mfnOf(g, FREE_PFN + 1);
        ops.push({ cmd: MMUEXT_COPY_PAGE, arg1: BigInt(newXenL2), arg2: BigInt(tableMfn(g, remapVa(g), 2)) });
        expect(mmuextOp(g, ops).rc).to.equal(0n);
        // A copy still sharing slot 3's L2 is refused.
        expect(mmuextOp(g, [{ cmd: MMUEXT_NEW_BASEPTR, arg1: BigInt(newTop) }]).rc).to.equal(neg(EINVAL));
        writeTable(g, newTop, [[3, pte(newXenL2, _PAGE_PRESENT)]]);
      } else {
        expect(mmuextOp(g, ops).rc).to.equal(0n);
      }
      expect(mmuextOp(g, [{ cmd: MMUEXT_NEW_BASEPTR, arg1: BigInt(newTop) }])).to.deep.equal({ rc: 0n, done: 1 });
      expect(g.dom.baseptrMfn).to.equal(newTop);
      expect(g.xen.machine.pageType(newTop)).to.equal(topType);
      expect(g.xen.machine.isPinned(oldTop)).to.equal(true);
      expect(g.xen.machine.pageType(oldTop)).to.equal(topType);
      expect(g.xen.translate(g.dom, remapVa(g), true)?.mfn).to.equal(mfnOf(g, g.b.scratchPfn + 15));
      // Back to the old top: the unpinned copy loses its type.
      expect(mmuextOp(g, [{ cmd: MMUEXT_NEW_BASEPTR, arg1: BigInt(oldTop) }]).rc).to.equal(0n);
      expect(g.xen.machine.pageType(newTop)).to.equal(PageType.None);
    });

    it('NEW_BASEPTR refuses a frame that is not a validatable top table (-EINVAL) and a foreign FD (-EPERM)', () => {
      const xen = new Xen({ maxPage: 1 << 14 });
      const dom0 = build(xen, abi, true);
      const domU = build(xen, abi);
      const l1 = tableMfn(dom0, remapVa(dom0), 1);
      expect(mmuextOp(dom0, [{ cmd: MMUEXT_NEW_BASEPTR, arg1: BigInt(l1) }]).rc).to.equal(neg(EINVAL));
      expect(mmuextOp(dom0, [{ cmd: MMUEXT_NEW_BASEPTR, arg1: BigInt(domU.dom.baseptrMfn) }]).rc).to.equal(neg(EINVAL));
      expect(mmuextOp(dom0, [{ cmd: MMUEXT_NEW_BASEPTR, arg1: BigInt(dom0.dom.baseptrMfn) }], domU.dom.domid).rc).to.equal(neg(EPERM));
      expect(dom0.dom.baseptrMfn).to.equal(dom0.b.topPtMfn);
    });

    if (abi === X86_64) {
      it('NEW_USER_BASEPTR takes a validated L4 (or 0 for none)', () => {
        const g = world(abi);
        const user = mfnOf(g, FREE_PFN);
        expect(mmuextOp(g, [{ cmd: MMUEXT_NEW_USER_BASEPTR, arg1: BigInt(user) }]).rc).to.equal(0n);
        expect(g.dom.userBaseptrMfn).to.equal(user);
        expect(g.xen.machine.pageType(user)).to.equal(PageType.L4);
        expect(mmuextOp(g, [{ cmd: MMUEXT_NEW_USER_BASEPTR, arg1: 0n }]).rc).to.equal(0n);
        expect(g.dom.userBaseptrMfn).to.equal(0);
        expect(g.xen.machine.pageType(user)).to.equal(PageType.None);
        expect(mmuextOp(g, [{ cmd: MMUEXT_NEW_USER_BASEPTR, arg1: BigInt(tableMfn(g, remapVa(g), 1)) }]).rc).to.equal(neg(EINVAL));
      });
    } else {
      it('NEW_USER_BASEPTR is -EINVAL for a 32-bit guest', () => {
        const g = world(abi);
        expect(mmuextOp(g, [{ cmd: MMUEXT_TLB_FLUSH_LOCAL }, { cmd: MMUEXT_NEW_USER_BASEPTR, arg1: 0n }])).to.deep.equal({ rc: neg(EINVAL), done: 1 });
      });
    }

    it('TLB flush and INVLPG variants succeed; *_MULTI reads its vCPU bitmap (unmapped: -EINVAL)', () => {
      const g = world(abi);
      const bitmap = pdoneVa(g) + 64n;
      const unmapped = g.b.virtBase + BigInt(g.b.bootstrapPfns) * PAGE;
      const ok = [
        { cmd: MMUEXT_TLB_FLUSH_LOCAL },
        { cmd: MMUEXT_TLB_FLUSH_ALL },
        { cmd: MMUEXT_INVLPG_LOCAL, arg1: remapVa(g) },
        { cmd: MMUEXT_INVLPG_ALL, arg1: remapVa(g) },
        { cmd: MMUEXT_TLB_FLUSH_MULTI, arg2: bitmap },
        { cmd: MMUEXT_INVLPG_MULTI, arg1: remapVa(g), arg2: bitmap },
      ];
      expect(mmuextOp(g, ok)).to.deep.equal({ rc: 0n, done: ok.length });
      expect(mmuextOp(g, [{ cmd: MMUEXT_TLB_FLUSH_MULTI, arg2: unmapped }])).to.deep.equal({ rc: neg(EINVAL), done: 0 });
    });

    it('unknown commands are -ENOSYS, MARK_SUPER -EOPNOTSUPP, and pdone counts the ops done before', () => {
      const g = world(abi);
      expect(mmuextOp(g, [{ cmd: MMUEXT_TLB_FLUSH_LOCAL }, { cmd: MMUEXT_TLB_FLUSH_LOCAL }, { cmd: 14 }])).to.deep.equal({ rc: neg(ENOSYS), done: 2 });
      expect(mmuextOp(g, [{ cmd: 99 }])).to.deep.equal({ rc: neg(ENOSYS), done: 0 });
      expect(mmuextOp(g, [{ cmd: MMUEXT_MARK_SUPER, arg1: BigInt(mfnOf(g, FREE_PFN)) }]).rc).to.equal(neg(EOPNOTSUPP));
    });

    it('foreigndom: unknown or own numeric id is -ESRCH, another domain -EPERM, before any op and without pdone', () => {
      const xen = new Xen({ maxPage: 1 << 14 });
      const g = build(xen, abi);
      const other = build(xen, abi);
      const flush = [{ cmd: MMUEXT_TLB_FLUSH_LOCAL }];
      expect(mmuextOp(g, flush, 77)).to.deep.equal({ rc: neg(ESRCH), done: SENTINEL });
      expect(mmuextOp(g, flush, g.dom.domid)).to.deep.equal({ rc: neg(ESRCH), done: SENTINEL });
      expect(mmuextOp(g, flush, other.dom.domid)).to.deep.equal({ rc: neg(EPERM), done: SENTINEL });
      // Only bits 15:0 count: a PFD field is ignored here.
      expect(mmuextOp(g, flush, encodeForeignDom(DOMID_SELF, 77))).to.deep.equal({ rc: 0n, done: 1 });
    });

    it('gives -EFAULT for an unmapped op array', () => {
      const g = world(abi);
      const unmapped = g.b.virtBase + BigInt(g.b.bootstrapPfns) * PAGE;
      putU32(g, pdoneVa(g), SENTINEL);
      expect(g.xen.hypercall(g.dom.domid, __HYPERVISOR_mmuext_op, unmapped, 1n, pdoneVa(g), BigInt(DOMID_SELF))).to.equal(neg(EFAULT));
      expect(getU32(g, pdoneVa(g))).to.equal(0);
      if (abi === X86_32) {
        // compat_mmuext_op checks that the whole array lies below 0xF5800000 first.
        expect(g.xen.hypercall(g.dom.domid, __HYPERVISOR_mmuext_op, 0xf57ffff8n, 1n, pdoneVa(g), BigInt(DOMID_SELF))).to.equal(neg(EFAULT));
        expect(getU32(g, pdoneVa(g))).to.equal(0);
      }
    });

    it('CLEAR_PAGE and COPY_PAGE work on ordinary frames and refuse page tables (-EINVAL)', () => {
      const g = world(abi);
      const a = mfnOf(g, FREE_PFN);
      const bFrame = mfnOf(g, FREE_PFN + 1);
      g.xen.storeStamp({ domid: g.dom.domid, by: 'guest' }, a, 0x1234);
      g.dom.logdirty.enable();
      expect(mmuextOp(g, [{ cmd: MMUEXT_COPY_PAGE, arg1: BigInt(bFrame), arg2: BigInt(a) }]).rc).to.equal(0n);
      expect(Buffer.compare(g.xen.machine.bytes(bFrame), g.xen.machine.bytes(a))).to.equal(0);
      expect(g.dom.logdirty.isDirty(FREE_PFN + 1)).to.equal(true);
      expect(mmuextOp(g, [{ cmd: MMUEXT_CLEAR_PAGE, arg1: BigInt(a) }]).rc).to.equal(0n);
      expect(g.xen.machine.bytes(a).every((x) => x === 0)).to.equal(true);
      expect(mmuextOp(g, [{ cmd: MMUEXT_CLEAR_PAGE, arg1: BigInt(g.dom.baseptrMfn) }]).rc).to.equal(neg(EINVAL));
      expect(mmuextOp(g, [{ cmd: MMUEXT_COPY_PAGE, arg1: BigInt(g.dom.baseptrMfn), arg2: BigInt(a) }]).rc).to.equal(neg(EINVAL));
    });
  });

  describe(`xen-emu update_va_mapping (${abi.name})`, () => {
    it(`maps a frame at a VA in the caller's tables (${abi === X86_32 ? 'PTE split into lo/hi registers' : 'one 64-bit PTE register'})`, () => {
      const g = world(abi);
      const target = mfnOf(g, FREE_PFN);
      const val = pte(target, P_RW_A) | _PAGE_NX; // NX lives in the high half
      g.dom.logdirty.enable();
      expect(updateVaMapping(g, remapVa(g), val, UVMF_INVLPG)).to.equal(0n);
      expect(readMaddr(g, entryMaddr(g, remapVa(g), 1))).to.equal(storedL1(g, val));
      expect(g.xen.translate(g.dom, remapVa(g), true)?.mfn).to.equal(target);
      expect(g.dom.logdirty.isDirty(pfnOf(g, tableMfn(g, remapVa(g), 1)))).to.equal(true);
      expect(g.xen.guestStoreWord(g.dom, remapVa(g), 42n, 4)).to.equal(0);
      expect(g.xen.machine.bytes(target)[0]).to.equal(42);
    });

    if (abi === X86_32) {
      it('takes the PTE from the lo/hi registers, not from a 64-bit second argument', () => {
        const g = world(abi);
        const target = mfnOf(g, FREE_PFN);
        // As an x86_64 caller would pass it: (va, val, flags). The 32-bit ABI reads lo = val, hi = flags = 0.
        const rc = g.xen.hypercall(g.dom.domid, __HYPERVISOR_update_va_mapping, remapVa(g), pte(target, P_RW_A) | _PAGE_NX, UVMF_NONE, 0n);
        expect(rc).to.equal(0n);
        expect(readMaddr(g, entryMaddr(g, remapVa(g), 1))).to.equal(pte(target, P_RW_A));
      });
    }

    it('is -EINVAL for a VA with no L1 (no present L2 entry)', () => {
      const g = world(abi);
      expect(updateVaMapping(g, holeVa(g), pte(mfnOf(g, FREE_PFN), P_RW_A), UVMF_NONE)).to.equal(neg(EINVAL));
      if (abi === X86_64) {
        expect(updateVaMapping(g, 0xffff800000000000n, 0n, UVMF_NONE)).to.equal(neg(EINVAL)); // Xen's range
        expect(updateVaMapping(g, 0x0000800000000000n, 0n, UVMF_NONE)).to.equal(neg(EINVAL)); // non-canonical
      } else {
        expect(updateVaMapping(g, 0xf5800000n, 0n, UVMF_NONE)).to.equal(neg(EINVAL)); // Xen's L2 slots
      }
    });

    it('validates like MMU_NORMAL_PT_UPDATE: another domain\'s frame -EBUSY, a writable page table -EBUSY', () => {
      const xen = new Xen({ maxPage: 1 << 14 });
      const g = build(xen, abi);
      const other = build(xen, abi);
      const before = readMaddr(g, entryMaddr(g, remapVa(g), 1));
      expect(updateVaMapping(g, remapVa(g), pte(mfnOf(other, FREE_PFN), P_RW_A), UVMF_NONE)).to.equal(neg(EBUSY));
      expect(updateVaMapping(g, remapVa(g), pte(g.dom.baseptrMfn, P_RW_A), UVMF_NONE)).to.equal(neg(EBUSY));
      expect(readMaddr(g, entryMaddr(g, remapVa(g), 1))).to.equal(before);
      // Unmapping is always fine.
      expect(updateVaMapping(g, remapVa(g), 0n, UVMF_TLB_FLUSH | UVMF_ALL)).to.equal(0n);
      expect(xen.translate(g.dom, remapVa(g), false)).to.equal(undefined);
    });

    it('accepts the UVMF flush flags; a vCPU bitmap that faults is -EFAULT after the entry is written', () => {
      const g = world(abi);
      const target = mfnOf(g, FREE_PFN);
      const unmapped = g.b.virtBase + BigInt(g.b.bootstrapPfns) * PAGE;
      for (const flags of [UVMF_NONE, UVMF_TLB_FLUSH, UVMF_INVLPG, UVMF_TLB_FLUSH | UVMF_ALL, UVMF_INVLPG | (pdoneVa(g) + 64n)]) {
        expect(updateVaMapping(g, remapVa(g), pte(target, P_RW_A), flags), `flags 0x${flags.toString(16)}`).to.equal(0n);
      }
      expect(updateVaMapping(g, remapVa(g), pte(mfnOf(g, FREE_PFN + 1), P_RW_A), UVMF_TLB_FLUSH | unmapped)).to.equal(neg(EFAULT));
      expect(g.xen.translate(g.dom, remapVa(g), false)?.mfn).to.equal(mfnOf(g, FREE_PFN + 1));
    });

    it('flags 0 (the early return) and flush type NONE with a faulting bitmap agree: written, 0, the bitmap never read', () => {
      const g = world(abi);
      const unmapped = g.b.virtBase + BigInt(g.b.bootstrapPfns) * PAGE;
      for (const [flags, pfn] of [[UVMF_NONE, FREE_PFN], [UVMF_NONE | unmapped, FREE_PFN + 1]] as const) {
        expect(updateVaMapping(g, remapVa(g), pte(mfnOf(g, pfn), P_RW_A), flags), `flags 0x${flags.toString(16)}`).to.equal(0n);
        expect(g.xen.translate(g.dom, remapVa(g), false)?.mfn).to.equal(mfnOf(g, pfn));
      }
      // The entry check answers before the flags are looked at: the same answer with either form.
      for (const flags of [UVMF_NONE, UVMF_NONE | unmapped]) {
        expect(updateVaMapping(g, remapVa(g), pte(mfnOf(g, FREE_PFN), P_RW_A) | (1n << 7n), flags)).to.equal(updateVaMapping(g, remapVa(g), pte(mfnOf(g, FREE_PFN), P_RW_A) | (1n << 7n), UVMF_INVLPG));
      }
    });
  });
}
