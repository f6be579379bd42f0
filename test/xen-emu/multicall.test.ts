/**
 * multicall against Xen's xen/common/multicall.c (do_multicall / compat_multicall) and
 * pv_do_multicall_call, on domains built by xen-emu/builder.ts, both ABIs. The entry list is
 * written into the guest's scratch pages in the guest's own `multicall_entry` layout.
 */

import { expect } from 'chai';
import {
  DOMID_SELF,
  EFAULT,
  EINVAL,
  ENOSYS,
  MMU_MACHPHYS_UPDATE,
  PAGE_SIZE,
  UVMF_INVLPG,
  UVMF_NONE,
  X86_32,
  X86_64,
  _PAGE_ACCESSED,
  _PAGE_NX,
  _PAGE_PRESENT,
  _PAGE_RW,
  __HYPERVISOR_mmu_update,
  __HYPERVISOR_multicall,
  __HYPERVISOR_update_va_mapping,
  makePte,
  multicall_entry,
  wordMask,
  type GuestAbi,
} from '../../abi/index.js';
import { buildDomain, type BuiltDomain } from '../../xen-emu/builder.js';
import type { Domain } from '../../xen-emu/domain.js';
import type { XenEvent } from '../../xen-emu/events.js';
import { Xen } from '../../xen-emu/xen.js';

const PAGE = BigInt(PAGE_SIZE);
const P_RW_A = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED;
const FREE_PFN = 1500;
const RESULT_UNTOUCHED = 0x5a5a5a5an;

interface Guest {
  readonly xen: Xen;
  readonly b: BuiltDomain;
  readonly dom: Domain;
  readonly abi: GuestAbi;
}

function world(abi: GuestAbi): Guest {
  const xen = new Xen({ maxPage: 1 << 14 });
  const b = buildDomain(xen, { abi, memoryPages: 2048 });
  return { xen, b, dom: b.dom, abi };
}

interface Call {
  readonly op: number | bigint;
  readonly args: readonly bigint[];
}

/** Scratch layout: page 0 the call list, page 2 argument data for sub-calls, page 15 remapped. */
const listVa = (g: Guest): bigint => g.b.scratchVa;
const dataVa = (g: Guest): bigint => g.b.scratchVa + 2n * PAGE;
const remapVa = (g: Guest): bigint => g.b.scratchVa + 15n * PAGE;
const unmappedVa = (g: Guest): bigint => g.b.virtBase + BigInt(g.b.bootstrapPfns) * PAGE;
const mfnOf = (g: Guest, pfn: number): number => Number(g.b.p2mEntry(pfn));
const neg = (g: Guest, errno: number): bigint => BigInt.asUintN(g.abi.wordSize * 8, BigInt(-errno));

/** Writes `calls` as the guest's multicall_entry array at `va`; every `result` preset to a marker. */
function putCalls(g: Guest, va: bigint, calls: readonly Call[]): void {
  const size = multicall_entry.sizeOf(g.abi);
  const w = g.abi.wordSize;
  const bytes = new Uint8Array(calls.length * size);
  const view = new DataView(bytes.buffer);
  const put = (at: number, v: bigint): void => {
    if (w === 8) view.setBigUint64(at, v, true);
    else view.setUint32(at, Number(v & 0xffffffffn), true);
  };
  calls.forEach((c, i) => {
    const at = i * size;
    put(at + multicall_entry.offsetOf(g.abi, 'op'), BigInt(c.op));
    put(at + multicall_entry.offsetOf(g.abi, 'result'), RESULT_UNTOUCHED);
    c.args.forEach((a, k) => put(at + multicall_entry.offsetOf(g.abi, 'args') + k * w, a));
  });
  expect(g.xen.guestStore(g.dom, va, bytes)).to.equal(0);
}

/** The `result` word of entry `i` as the guest reads it. */
function resultOf(g: Guest, va: bigint, i: number): bigint {
  const at = va + BigInt(i * multicall_entry.sizeOf(g.abi) + multicall_entry.offsetOf(g.abi, 'result'));
  return g.xen.guestLoadWord(g.dom, at, g.abi.wordSize)!;
}

function multicall(g: Guest, va: bigint, calls: readonly Call[]): bigint {
  putCalls(g, va, calls);
  return g.xen.hypercall(g.dom.domid, __HYPERVISOR_multicall, va, BigInt(calls.length));
}

/** An update_va_mapping sub-call in the guest's register convention (x86_32: lo, hi). */
function uvm(g: Guest, va: bigint, val: bigint, flags = UVMF_NONE): Call {
  const args = g.abi === X86_32 ? [va, val & 0xffffffffn, val >> 32n, flags] : [va, val, flags];
  return { op: __HYPERVISOR_update_va_mapping, args };
}

for (const abi of [X86_32, X86_64]) {
  describe(`xen-emu multicall (${abi.name})`, () => {
    it('runs each entry through the hypercall table and writes every result back; returns 0', () => {
      const g = world(abi);
      const target = mfnOf(g, FREE_PFN);
      // An mmu_update request for entry 2, in the data page.
      const req = new Uint8Array(16);
      new DataView(req.buffer).setBigUint64(0, (BigInt(target) << 12n) | BigInt(MMU_MACHPHYS_UPDATE), true);
      new DataView(req.buffer).setBigUint64(8, 1777n, true);
      expect(g.xen.guestStore(g.dom, dataVa(g), req)).to.equal(0);
      const rc = multicall(g, listVa(g), [
        uvm(g, remapVa(g), makePte(BigInt(target), P_RW_A) | _PAGE_NX, UVMF_INVLPG),
        { op: 99, args: [] },
        { op: __HYPERVISOR_mmu_update, args: [dataVa(g), 1n, 0n, BigInt(DOMID_SELF)] },
        uvm(g, g.b.virtBase + 100n * (2n << 20n), makePte(BigInt(target), P_RW_A)),
      ]);
      expect(rc).to.equal(0n);
      expect(resultOf(g, listVa(g), 0)).to.equal(0n);
      expect(resultOf(g, listVa(g), 1)).to.equal(neg(g, ENOSYS));
      expect(resultOf(g, listVa(g), 2)).to.equal(0n);
      expect(resultOf(g, listVa(g), 3)).to.equal(neg(g, EINVAL));
      expect(g.xen.translate(g.dom, remapVa(g), true)?.mfn).to.equal(target);
      expect(g.xen.machine.m2pOf(target)).to.equal(1777);
    });

    it('stores a -errno result as the guest\'s unsigned word (two\'s complement at its width)', () => {
      const g = world(abi);
      expect(multicall(g, listVa(g), [{ op: 99, args: [] }])).to.equal(0n);
      expect(resultOf(g, listVa(g), 0)).to.equal(wordMask(abi) - BigInt(ENOSYS) + 1n);
    });

    it('refuses a nested multicall entry with -EINVAL (its calls never run) and goes on with the batch', () => {
      const g = world(abi);
      const target = mfnOf(g, FREE_PFN);
      const inner = dataVa(g);
      putCalls(g, inner, [uvm(g, remapVa(g), makePte(BigInt(target), P_RW_A))]);
      const before = g.xen.translate(g.dom, remapVa(g), false)?.mfn;
      const outer = [{ op: __HYPERVISOR_multicall, args: [inner, 1n] }, { op: 99, args: [] }];
      expect(multicall(g, listVa(g), outer)).to.equal(0n);
      expect(resultOf(g, listVa(g), 0)).to.equal(neg(g, EINVAL));
      expect(resultOf(g, listVa(g), 1)).to.equal(neg(g, ENOSYS));
      expect(resultOf(g, inner, 0)).to.equal(RESULT_UNTOUCHED);
      expect(g.xen.translate(g.dom, remapVa(g), false)?.mfn).to.equal(before);
    });

    it('gives -EFAULT for an unreadable call list, and nothing runs', () => {
      const g = world(abi);
      expect(g.xen.hypercall(g.dom.domid, __HYPERVISOR_multicall, unmappedVa(g), 1n)).to.equal(BigInt(-EFAULT));
      const outside = abi === X86_64 ? 0xffff800000000000n : 0xf5800000n; // Xen's range / compat limit
      expect(g.xen.hypercall(g.dom.domid, __HYPERVISOR_multicall, outside, 1n)).to.equal(BigInt(-EFAULT));
      // No calls: nothing is read, not even from an unmapped list.
      expect(g.xen.hypercall(g.dom.domid, __HYPERVISOR_multicall, unmappedVa(g), 0n)).to.equal(0n);
    });

    it('an entry running into an unmapped page is -EFAULT after the entries before it ran', () => {
      const g = world(abi);
      const size = BigInt(multicall_entry.sizeOf(abi));
      const at = unmappedVa(g) - size;
      const rc = multicall(g, at, [{ op: 99, args: [] }]);
      expect(rc).to.equal(0n);
      expect(g.xen.hypercall(g.dom.domid, __HYPERVISOR_multicall, at, 2n)).to.equal(BigInt(-EFAULT));
      expect(resultOf(g, at, 0)).to.equal(neg(g, ENOSYS));
    });

    it('a result it cannot write back (read-only list page) is -EFAULT after that entry ran, and stops the batch', () => {
      const g = world(abi);
      const target = mfnOf(g, FREE_PFN);
      const listPage = g.b.scratchVa + 14n * PAGE;
      putCalls(g, listPage, [uvm(g, remapVa(g), makePte(BigInt(target), P_RW_A)), { op: __HYPERVISOR_multicall, args: [] }]);
      // Make the list page read-only (its own frame, US/RW dropped).
      const listMfn = g.xen.translate(g.dom, listPage, false)!.mfn;
      const ro = multicall(g, listVa(g), [uvm(g, listPage, makePte(BigInt(listMfn), _PAGE_PRESENT | _PAGE_ACCESSED))]);
      expect(ro).to.equal(0n);
      expect(g.xen.translate(g.dom, listPage, true)).to.equal(undefined);
      expect(g.xen.hypercall(g.dom.domid, __HYPERVISOR_multicall, listPage, 2n)).to.equal(BigInt(-EFAULT));
      expect(g.xen.translate(g.dom, remapVa(g), false)?.mfn).to.equal(target);
      expect(resultOf(g, listPage, 0)).to.equal(RESULT_UNTOUCHED);
    });

    it('sub-calls reach observers as hypercall events, before the multicall\'s own', () => {
      const g = world(abi);
      const seen: XenEvent[] = [];
      g.xen.events.subscribe((e) => {
        if (e.type === 'hypercall') seen.push(e);
      });
      expect(multicall(g, listVa(g), [uvm(g, remapVa(g), 0n), { op: 99, args: [] }])).to.equal(0n);
      expect(seen.map((e) => (e.type === 'hypercall' ? [e.nr, e.result] : []))).to.deep.equal([
        [__HYPERVISOR_update_va_mapping, 0n],
        [99, BigInt(-ENOSYS)],
        [__HYPERVISOR_multicall, 0n],
      ]);
    });
  });
}
