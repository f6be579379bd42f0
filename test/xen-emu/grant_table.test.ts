/**
 * xen-emu/hypercalls/grant_table_op.ts: GNTTABOP_* with v1 grant tables, on both guest ABIs, with
 * Xen's results (xen/common/grant_table.c, compat/grant_table.c; reference §3.4).
 *
 * Every call goes through guest memory: the guest writes its argument structs into its scratch
 * pages and issues `__HYPERVISOR_grant_table_op` with their addresses; results are read back from
 * guest memory. A guest makes a grant as Linux does: it learns its grant frames from setup_table,
 * maps them into its own address space with update_va_mapping, and writes the entry with ordinary
 * stores, `domid` and `frame` first and `flags` last.
 */

import { expect } from 'chai';
import {
  DOMID_SELF,
  EFAULT,
  EINVAL,
  ENOSYS,
  EPERM,
  ESRCH,
  GNTCOPY_dest_gref,
  GNTCOPY_source_gref,
  GNTMAP_application_map,
  GNTMAP_contains_pte,
  GNTMAP_device_map,
  GNTMAP_host_map,
  GNTMAP_readonly,
  GNTST_address_too_big,
  GNTST_bad_copy_arg,
  GNTST_bad_dev_addr,
  GNTST_bad_domain,
  GNTST_bad_gntref,
  GNTST_bad_handle,
  GNTST_bad_page,
  GNTST_bad_virt_addr,
  GNTST_eagain,
  GNTST_general_error,
  GNTST_no_space,
  GNTST_okay,
  GNTST_permission_denied,
  GNTTABOP_cache_flush,
  GNTTABOP_copy,
  GNTTABOP_dump_table,
  GNTTABOP_get_status_frames,
  GNTTABOP_get_version,
  GNTTABOP_map_grant_ref,
  GNTTABOP_query_size,
  GNTTABOP_set_version,
  GNTTABOP_setup_table,
  GNTTABOP_swap_grant_ref,
  GNTTABOP_transfer,
  GNTTABOP_unmap_and_replace,
  GNTTABOP_unmap_grant_ref,
  GTF_accept_transfer,
  GTF_permit_access,
  GTF_readonly,
  GTF_reading,
  GTF_sub_page,
  GTF_transfer_committed,
  GTF_transfer_completed,
  GTF_writing,
  PAGE_SIZE,
  X86_32,
  X86_64,
  _PAGE_NX,
  _PAGE_PRESENT,
  _PAGE_RW,
  _PAGE_USER,
  __HYPERVISOR_grant_table_op,
  __HYPERVISOR_update_va_mapping,
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  makePte,
  gnttab_copy,
  gnttab_get_status_frames,
  gnttab_get_version,
  gnttab_map_grant_ref,
  gnttab_query_size,
  gnttab_set_version,
  gnttab_setup_table,
  gnttab_swap_grant_ref,
  gnttab_transfer,
  gnttab_unmap_and_replace,
  gnttab_unmap_grant_ref,
  pteFrame,
  type GuestAbi,
  type StructDef,
  type StructView,
} from '../../abi/index.js';
import type { FieldDecl } from '../../abi/ctype.js';
import { buildDomain, type BuiltDomain } from '../../xen-emu/builder.js';
import { INVALID_M2P, PageType } from '../../xen-emu/machine.js';
import { Xen, type XenOptions } from '../../xen-emu/xen.js';
import type { StoreEvent } from '../../xen-emu/events.js';
import { releaseGrantMappings } from '../../xen-emu/hypercalls/grant/map.js';
import { guestL1Slot, _PAGE_GUEST_KERNEL } from '../../xen-emu/hypercalls/grant/pte.js';

const ABIS: readonly GuestAbi[] = [X86_32, X86_64];
/** Smallest memory the builder accepts per ABI (its bootstrap mapping is 4 MiB aligned). */
const PAGES: Readonly<Record<string, number>> = { x86_32: 1024, x86_64: 1100 };

/** Scratch layout: page 0 argument structs, page 1 frame lists, pages 4.. granted data. */
const ARG_PAGE = 0;
const LIST_PAGE = 1;
const DATA_PAGE = 4;

/** A built PV guest as a test drives it: argument structs in its scratch pages, hypercalls by number. */
class Guest {
  constructor(
    readonly xen: Xen,
    readonly built: BuiltDomain,
  ) {}

  get dom() {
    return this.built.dom;
  }
  get domid(): number {
    return this.built.dom.domid;
  }
  get abi(): GuestAbi {
    return this.built.abi;
  }

  /** VIRTUAL address of byte `offset` of scratch page `page`. */
  va(page: number, offset = 0): bigint {
    return this.built.scratchVa + BigInt(page * PAGE_SIZE + offset);
  }

  /** MFN behind scratch page `page`. */
  mfn(page: number): number {
    return this.xen.translate(this.dom, this.va(page))!.mfn;
  }

  /** Pfn of scratch page `page`. */
  pfn(page: number): number {
    return this.built.scratchPfn + page;
  }

  /** A mapped padding page of the bootstrap area, free for grant host mappings (`k` from the end, 2 or more). */
  spareVa(k = 2): bigint {
    return this.built.vaOfPfn(this.built.bootstrapPfns - k);
  }

  /** The last mapped page of the bootstrap area: the page after it is unmapped. */
  lastMappedVa(): bigint {
    return this.built.vaOfPfn(this.built.bootstrapPfns - 1);
  }

  op(cmd: number | bigint, uop: bigint, count: number | bigint): bigint {
    return this.xen.hypercall(this.domid, __HYPERVISOR_grant_table_op, BigInt(cmd), uop, BigInt(count));
  }

  /** Writes `count` structs at `va` (each filled by `fill(view, i)`), as the guest does. */
  put<F extends readonly FieldDecl[]>(def: StructDef<F>, va: bigint, fill: (v: StructView<F>, i: number) => void, count = 1): bigint {
    const size = def.sizeOf(this.abi);
    const bytes = Buffer.alloc(size * count);
    for (let i = 0; i < count; i++) fill(def.view(this.abi, bytes, i * size), i);
    expect(this.xen.guestStore(this.dom, va, bytes), 'argument store').to.equal(0);
    return va;
  }

  /** Reads struct `index` of the array at `va` (a view over a copy). */
  read<F extends readonly FieldDecl[]>(def: StructDef<F>, va: bigint, index = 0): StructView<F> {
    const size = def.sizeOf(this.abi);
    const bytes = this.xen.guestLoad(this.dom, va + BigInt(index * size), size);
    if (!bytes) throw new Error(`struct at 0x${va.toString(16)} unreadable`);
    return def.view(this.abi, Buffer.from(bytes));
  }

  readWord(va: bigint): bigint {
    return this.xen.guestLoadWord(this.dom, va, this.abi.wordSize)!;
  }

  /** GNTTABOP_setup_table for `dom` with the list in LIST_PAGE: [rc, status, frames]. */
  setupTable(nrFrames: number, dom = DOMID_SELF): { rc: bigint; status: number; frames: bigint[] } {
    const uop = this.put(gnttab_setup_table, this.va(ARG_PAGE), (v) => {
      v.dom = dom;
      v.nr_frames = nrFrames;
      v.status = 0x7777;
      v.frame_list = this.va(LIST_PAGE);
    });
    const rc = this.op(GNTTABOP_setup_table, uop, 1);
    const status = this.read(gnttab_setup_table, uop).status;
    const frames: bigint[] = [];
    for (let i = 0; i < nrFrames && status === GNTST_okay; i++) frames.push(this.readWord(this.va(LIST_PAGE, i * this.abi.wordSize)));
    return { rc, status, frames };
  }

  /** VIRTUAL addresses where this guest mapped its grant frames, by frame index. */
  private readonly grantVas = new Map<number, bigint>();

  /** update_va_mapping(va, pte, UVMF_NONE) as the guest issues it; the hypercall's result. */
  updateVaMapping(va: bigint, pte: bigint): bigint {
    const args = this.abi === X86_32 ? [va, pte & 0xffffffffn, pte >> 32n, 0n] : [va, pte, 0n];
    return this.xen.hypercall(this.domid, __HYPERVISOR_update_va_mapping, ...args);
  }

  /** VIRTUAL address of grant frame `index`, mapping it (writable) on first use, as Linux does. */
  grantFrameVa(index: number): bigint {
    let va = this.grantVas.get(index);
    if (va === undefined) {
      const mfn = this.dom.grantTable.frames[index];
      if (mfn === undefined) throw new Error(`d${this.domid} has no grant frame ${index}: call setupTable first`);
      va = this.built.vaOfPfn(this.built.bootstrapPfns - 16 - index);
      const pte = makePte(BigInt(mfn), _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY);
      expect(this.updateVaMapping(va, pte), 'update_va_mapping of a grant frame').to.equal(0n);
      this.grantVas.set(index, va);
    }
    return va;
  }

  /** Publishes grant entry `ref` with guest stores: domid and frame, then flags. */
  grant(ref: number, flags: number, domid: number, frame: number): void {
    const at = this.grantFrameVa(Math.floor(ref / 512)) + BigInt((ref % 512) * 8);
    const u16 = (value: number) => new Uint8Array(new Uint16Array([value]).buffer);
    expect(this.xen.guestStore(this.dom, at + 2n, u16(domid))).to.equal(0);
    expect(this.xen.guestStoreWord(this.dom, at + 4n, BigInt(frame), 4)).to.equal(0);
    expect(this.xen.guestStore(this.dom, at, u16(flags))).to.equal(0);
  }

  /** Grant entry `ref` as it is in the shared frame now. */
  entry(ref: number): { flags: number; domid: number; frame: number } {
    const mfn = this.dom.grantTable.frames[Math.floor(ref / 512)]!;
    const page = this.xen.machine.bytes(mfn);
    const v = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
    const at = (ref % 512) * 8;
    return { flags: v.getUint16(at, true), domid: v.getUint16(at + 2, true), frame: v.getUint32(at + 4, true) };
  }

  /** The PTE mapping `va` now (through the L1 slot Xen would use). */
  pte(va: bigint): bigint {
    const slot = guestL1Slot(this.xen, this.dom, va)!;
    const page = this.xen.machine.bytes(slot.l1mfn);
    return new DataView(page.buffer, page.byteOffset, PAGE_SIZE).getBigUint64(slot.offset, true);
  }

  /** Machine address of the PTE mapping `va`. */
  pteMaddr(va: bigint): bigint {
    const slot = guestL1Slot(this.xen, this.dom, va)!;
    return BigInt(slot.l1mfn) * BigInt(PAGE_SIZE) + BigInt(slot.offset);
  }

  /** Makes the page at `va` read-only with update_va_mapping. */
  makeReadOnly(va: bigint): void {
    expect(this.updateVaMapping(va, this.pte(va) & ~_PAGE_RW)).to.equal(0n);
  }

  /** Fills scratch page `page` with a byte pattern (a guest store). */
  fill(page: number, seed: number): Uint8Array {
    const bytes = new Uint8Array(PAGE_SIZE);
    for (let i = 0; i < PAGE_SIZE; i++) bytes[i] = (seed + i * 7) & 0xff;
    expect(this.xen.guestStore(this.dom, this.va(page), bytes)).to.equal(0);
    return bytes;
  }

  /** Frames it owns that count in tot_pages (everything but Xen heap pages). */
  countedFrames(): number {
    let n = 0;
    for (const mfn of this.xen.framesOf(this.domid)) if (!this.xen.machine.isXenHeap(mfn)) n++;
    return n;
  }
}

interface World {
  readonly xen: Xen;
  readonly dom0: Guest;
  readonly a: Guest;
  readonly b: Guest;
}

/** dom0 (privileged, x86_64), then guests a and b, each having set up its one-frame grant table. */
function world(abiA: GuestAbi, abiB: GuestAbi = abiA, options: Partial<XenOptions> = {}): World {
  const xen = new Xen({ maxPage: 16384, ...options });
  const dom0 = new Guest(xen, buildDomain(xen, { abi: X86_64, memoryPages: PAGES.x86_64!, privileged: true, domid: 0 }));
  const a = new Guest(xen, buildDomain(xen, { abi: abiA, memoryPages: PAGES[abiA.name]! }));
  const b = new Guest(xen, buildDomain(xen, { abi: abiB, memoryPages: PAGES[abiB.name]! }));
  for (const g of [dom0, a, b]) expect(g.setupTable(1).status).to.equal(GNTST_okay);
  return { xen, dom0, a, b };
}

/** Maps grant `ref` of `granter` into `mapper`; returns the element as Xen wrote it back. */
function mapGrant(mapper: Guest, granter: number, ref: number, flags: number, hostAddr: bigint, at = mapper.va(ARG_PAGE)) {
  mapper.put(gnttab_map_grant_ref, at, (v) => {
    v.host_addr = hostAddr;
    v.flags = flags;
    v.ref = ref;
    v.dom = granter;
    v.status = 0x7777;
    v.handle = 0xdead;
    v.dev_bus_addr = 0n;
  });
  const rc = mapper.op(GNTTABOP_map_grant_ref, at, 1);
  const out = mapper.read(gnttab_map_grant_ref, at);
  return { rc, status: out.status, handle: out.handle, devBusAddr: out.dev_bus_addr };
}

function unmapGrant(mapper: Guest, handle: number, hostAddr: bigint, devBusAddr = 0n, at = mapper.va(ARG_PAGE)) {
  mapper.put(gnttab_unmap_grant_ref, at, (v) => {
    v.host_addr = hostAddr;
    v.dev_bus_addr = devBusAddr;
    v.handle = handle;
    v.status = 0x7777;
  });
  const rc = mapper.op(GNTTABOP_unmap_grant_ref, at, 1);
  return { rc, status: mapper.read(gnttab_unmap_grant_ref, at).status };
}

interface CopySpec {
  readonly src: { ref?: number; gmfn?: number; domid: number; offset: number };
  readonly dest: { ref?: number; gmfn?: number; domid: number; offset: number };
  readonly len: number;
}

function putCopies(g: Guest, specs: readonly CopySpec[], at = g.va(ARG_PAGE)): bigint {
  return g.put(
    gnttab_copy,
    at,
    (v, i) => {
      const s = specs[i]!;
      let flags = 0;
      if (s.src.ref !== undefined) {
        v.source.u.ref = s.src.ref;
        flags |= GNTCOPY_source_gref;
      } else v.source.u.gmfn = BigInt(s.src.gmfn!);
      if (s.dest.ref !== undefined) {
        v.dest.u.ref = s.dest.ref;
        flags |= GNTCOPY_dest_gref;
      } else v.dest.u.gmfn = BigInt(s.dest.gmfn!);
      v.source.domid = s.src.domid;
      v.source.offset = s.src.offset;
      v.dest.domid = s.dest.domid;
      v.dest.offset = s.dest.offset;
      v.len = s.len;
      v.flags = flags;
      v.status = 0x7777;
    },
    specs.length,
  );
}

function copy(g: Guest, specs: readonly CopySpec[]): { rc: bigint; statuses: number[] } {
  const at = putCopies(g, specs);
  const rc = g.op(GNTTABOP_copy, at, specs.length);
  return { rc, statuses: specs.map((_, i) => g.read(gnttab_copy, at, i).status) };
}

function transfer(g: Guest, mfn: number, domid: number, ref: number): { rc: bigint; status: number } {
  const at = g.put(gnttab_transfer, g.va(ARG_PAGE), (v) => {
    v.mfn = BigInt(mfn);
    v.domid = domid;
    v.ref = ref;
    v.status = 0x7777;
  });
  const rc = g.op(GNTTABOP_transfer, at, 1);
  return { rc, status: g.read(gnttab_transfer, at).status };
}

function querySize(g: Guest, dom: number) {
  const at = g.put(gnttab_query_size, g.va(ARG_PAGE), (v) => {
    v.dom = dom;
    v.nr_frames = 0x1111;
    v.max_nr_frames = 0x2222;
    v.status = 0x7777;
  });
  const rc = g.op(GNTTABOP_query_size, at, 1);
  const v = g.read(gnttab_query_size, at);
  return { rc, status: v.status, nrFrames: v.nr_frames, maxNrFrames: v.max_nr_frames };
}

const ERR = (e: number): bigint => BigInt(-e);

for (const abi of ABIS) {
  describe(`grant_table_op (${abi.name} caller)`, function () {
    // --------------------------------------------------------------------------------------------
    describe('hypercall-level results', function () {
      it('(int)count < 0 is -EINVAL for every op, before anything is read', function () {
        const { a } = world(abi);
        for (const cmd of [GNTTABOP_map_grant_ref, GNTTABOP_unmap_grant_ref, GNTTABOP_setup_table, GNTTABOP_copy, GNTTABOP_transfer, GNTTABOP_query_size, 99]) {
          expect(a.op(cmd, 0n, 0x80000000), `cmd ${cmd}`).to.equal(ERR(EINVAL));
        }
      });

      it('setup_table, query_size and get_status_frames with count 2 are -EINVAL', function () {
        const { a } = world(abi);
        expect(a.op(GNTTABOP_setup_table, a.va(ARG_PAGE), 2)).to.equal(ERR(EINVAL));
        expect(a.op(GNTTABOP_query_size, a.va(ARG_PAGE), 2)).to.equal(ERR(EINVAL));
        expect(a.op(GNTTABOP_get_status_frames, a.va(ARG_PAGE), 2)).to.equal(ERR(EINVAL));
      });

      it(
        abi === X86_32
          ? 'count 0: the translated setup_table and get_status_frames return 0, query_size -EINVAL'
          : 'count 0: setup_table, get_status_frames and query_size are -EINVAL',
        function () {
          const { a } = world(abi);
          const expected = abi === X86_32 ? 0n : ERR(EINVAL);
          expect(a.op(GNTTABOP_setup_table, a.va(ARG_PAGE), 0)).to.equal(expected);
          expect(a.op(GNTTABOP_get_status_frames, a.va(ARG_PAGE), 0)).to.equal(expected);
          expect(a.op(GNTTABOP_query_size, a.va(ARG_PAGE), 0)).to.equal(ERR(EINVAL));
        },
      );

      it('an unknown op is -ENOSYS, and so are dump_table and (on x86) cache_flush, even with upper bits', function () {
        const { a } = world(abi);
        for (const cmd of [13, 0xfff, GNTTABOP_dump_table, GNTTABOP_cache_flush, GNTTABOP_cache_flush | (5 << 12)]) {
          expect(a.op(cmd, a.va(ARG_PAGE), 1), `cmd 0x${cmd.toString(16)}`).to.equal(ERR(ENOSYS));
        }
      });

      it('stray cmd bits above GNTTABOP_CMD_MASK are -EINVAL', function () {
        const { a } = world(abi);
        for (const cmd of [GNTTABOP_map_grant_ref, GNTTABOP_setup_table, GNTTABOP_copy, GNTTABOP_query_size, GNTTABOP_transfer, 13]) {
          expect(a.op(cmd | (1 << 12), a.va(ARG_PAGE), 1), `cmd ${cmd}`).to.equal(ERR(EINVAL));
          expect(a.op((cmd | 0x80000000) >>> 0, a.va(ARG_PAGE), 1), `cmd ${cmd} | bit 31`).to.equal(ERR(EINVAL));
        }
      });

      it('cmd and count are 32-bit: register bits above 31 are ignored', function () {
        const { a } = world(abi);
        const at = a.put(gnttab_query_size, a.va(ARG_PAGE), (v) => {
          v.dom = DOMID_SELF;
        });
        expect(a.op((1n << 32n) | BigInt(GNTTABOP_query_size), at, (1n << 40n) | 1n)).to.equal(0n);
        expect(a.read(gnttab_query_size, at).status).to.equal(GNTST_okay);
      });

      it('an unmapped argument array is -EFAULT for every op', function () {
        const { a } = world(abi);
        const hole = a.lastMappedVa() + BigInt(PAGE_SIZE);
        for (const cmd of [
          GNTTABOP_map_grant_ref,
          GNTTABOP_unmap_grant_ref,
          GNTTABOP_unmap_and_replace,
          GNTTABOP_setup_table,
          GNTTABOP_copy,
          GNTTABOP_transfer,
          GNTTABOP_query_size,
          GNTTABOP_set_version,
          GNTTABOP_get_version,
          GNTTABOP_get_status_frames,
          GNTTABOP_swap_grant_ref,
        ]) {
          expect(a.op(cmd, hole, 1), `cmd ${cmd}`).to.equal(ERR(EFAULT));
        }
      });

      it('an array straddling into an unmapped page: the elements before the fault are done, then -EFAULT', function () {
        const { a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        const size = gnttab_map_grant_ref.sizeOf(abi);
        const at = a.lastMappedVa() + BigInt(PAGE_SIZE - size);
        a.put(gnttab_map_grant_ref, at, (v) => {
          v.flags = GNTMAP_device_map;
          v.ref = 10;
          v.dom = b.domid;
        });
        expect(a.op(GNTTABOP_map_grant_ref, at, 2)).to.equal(ERR(EFAULT));
        const first = a.read(gnttab_map_grant_ref, at);
        expect(first.status).to.equal(GNTST_okay);
        expect(first.dev_bus_addr).to.equal(BigInt(b.mfn(DATA_PAGE)) << 12n);
        expect(b.entry(10).flags).to.equal(GTF_permit_access | GTF_reading | GTF_writing);
      });

      it('a failed copy-back of a status is -EFAULT after the element was done', function () {
        const { a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        const h = mapGrant(a, b.domid, 10, GNTMAP_device_map, 0n);
        expect(h.status).to.equal(GNTST_okay);
        const at = a.va(ARG_PAGE + 2);
        a.put(gnttab_unmap_grant_ref, at, (v) => {
          v.dev_bus_addr = BigInt(b.mfn(DATA_PAGE)) << 12n;
          v.handle = h.handle;
          v.status = 0x7777;
        });
        a.makeReadOnly(at);
        expect(a.op(GNTTABOP_unmap_grant_ref, at, 1)).to.equal(ERR(EFAULT));
        expect(a.read(gnttab_unmap_grant_ref, at).status).to.equal(0x7777);
        expect(b.entry(10).flags, 'unmapped all the same').to.equal(GTF_permit_access);
        expect(a.dom.grantTable.mapping(h.handle)).to.equal(undefined);
        // query_size copies back the whole struct: the same -EFAULT.
        expect(a.op(GNTTABOP_query_size, at, 1)).to.equal(ERR(EFAULT));
      });

      if (abi === X86_64) {
        it("an array in Xen's virtual range is -EFAULT before any element runs", function () {
          const { a } = world(abi);
          expect(a.op(GNTTABOP_map_grant_ref, 0xffff800000001000n, 0)).to.equal(ERR(EFAULT));
          expect(a.op(GNTTABOP_copy, 0xffff800000001000n, 0)).to.equal(ERR(EFAULT));
          expect(a.op(GNTTABOP_map_grant_ref, 0x0000800000000000n, 0), 'non-canonical').to.equal(ERR(EFAULT));
          expect(a.op(GNTTABOP_map_grant_ref, a.va(ARG_PAGE), 0), 'count 0 elsewhere').to.equal(0n);
        });
      }
    });

    // --------------------------------------------------------------------------------------------
    describe('setup_table and query_size', function () {
      it('grows the table with zeroed Xen heap frames that are not in tot_pages and lists their MFNs', function () {
        const { xen, a } = world(abi);
        const tot = a.dom.totPages;
        const r = a.setupTable(4);
        expect([r.rc, r.status]).to.deep.equal([0n, GNTST_okay]);
        expect(r.frames).to.have.length(4);
        expect(r.frames.map(Number)).to.deep.equal(a.dom.grantTable.frames);
        for (const f of r.frames.map(Number)) {
          expect(xen.machine.ownerOf(f)).to.equal(a.domid);
          expect(xen.machine.isXenHeap(f)).to.equal(true);
          expect(xen.machine.m2pOf(f)).to.equal(INVALID_M2P);
        }
        expect(xen.machine.bytes(r.frames.map(Number)[3]!).every((x) => x === 0)).to.equal(true);
        expect(a.dom.totPages).to.equal(tot);
        expect(a.countedFrames()).to.equal(tot);
        expect(querySize(a, DOMID_SELF)).to.deep.equal({ rc: 0n, status: GNTST_okay, nrFrames: 4, maxNrFrames: 64 });
      });

      it('a smaller nr_frames lists the first frames and does not shrink the table', function () {
        const { a } = world(abi);
        const all = a.setupTable(3).frames;
        const r = a.setupTable(2);
        expect(r.status).to.equal(GNTST_okay);
        expect(r.frames).to.deep.equal(all.slice(0, 2));
        expect(querySize(a, DOMID_SELF).nrFrames).to.equal(3);
      });

      it('beyond max_nr_frames is GNTST_general_error and the table is unchanged', function () {
        const { a } = world(abi);
        const r = a.setupTable(65);
        expect([r.rc, r.status]).to.deep.equal([0n, GNTST_general_error]);
        expect(querySize(a, DOMID_SELF).nrFrames).to.equal(1);
        expect(a.setupTable(64).status, 'the limit itself').to.equal(GNTST_okay);
        expect(querySize(a, DOMID_SELF).nrFrames).to.equal(64);
      });

      it('its own domid works like DOMID_SELF; another domain is GNTST_permission_denied, an unknown one GNTST_bad_domain', function () {
        const { a, b } = world(abi);
        expect(a.setupTable(2, a.domid).status).to.equal(GNTST_okay);
        expect(a.setupTable(2, b.domid).status).to.equal(GNTST_permission_denied);
        expect(b.dom.grantTable.frames).to.have.length(1);
        expect(a.setupTable(1, 0x7000).status).to.equal(GNTST_bad_domain);
        expect(querySize(a, b.domid).status).to.equal(GNTST_permission_denied);
        expect(querySize(a, 0x7000).status).to.equal(GNTST_bad_domain);
      });

      it("a privileged caller sets up and queries another domain's table", function () {
        const { xen, a } = world(abi);
        const caller = new Guest(xen, buildDomain(xen, { abi, memoryPages: PAGES[abi.name]!, privileged: true }));
        const r = caller.setupTable(2, a.domid);
        expect(r.status).to.equal(GNTST_okay);
        expect(r.frames.map(Number)).to.deep.equal(a.dom.grantTable.frames);
        expect(querySize(caller, a.domid)).to.deep.include({ status: GNTST_okay, nrFrames: 2 });
      });

      it('query_size copies back the whole struct; on an error nr_frames and max_nr_frames keep what the guest wrote', function () {
        const { a } = world(abi);
        expect(querySize(a, DOMID_SELF)).to.deep.equal({ rc: 0n, status: GNTST_okay, nrFrames: 1, maxNrFrames: 64 });
        expect(querySize(a, 0x7000)).to.deep.equal({ rc: 0n, status: GNTST_bad_domain, nrFrames: 0x1111, maxNrFrames: 0x2222 });
      });

      it('a frame list in unmapped memory is GNTST_bad_virt_addr with rc 0, the frames before it written', function () {
        const { a } = world(abi);
        const list = a.lastMappedVa() + BigInt(PAGE_SIZE - a.abi.wordSize);
        const uop = a.put(gnttab_setup_table, a.va(ARG_PAGE), (v) => {
          v.dom = DOMID_SELF;
          v.nr_frames = 2;
          v.frame_list = list;
        });
        expect(a.op(GNTTABOP_setup_table, uop, 1)).to.equal(0n);
        expect(a.read(gnttab_setup_table, uop).status).to.equal(GNTST_bad_virt_addr);
        expect(a.readWord(list)).to.equal(BigInt(a.dom.grantTable.frames[0]!));
        expect(a.dom.grantTable.frames, 'grown before the copy').to.have.length(2);
      });

      it(
        abi === X86_32
          ? "a frame list reaching Xen's area (0xF5800000) is -EFAULT before anything grows"
          : "a frame list in Xen's virtual range is -EFAULT before anything grows",
        function () {
          const { a } = world(abi);
          const list = abi === X86_32 ? 0xf57ffffcn : 0xffff800000000000n;
          const uop = a.put(gnttab_setup_table, a.va(ARG_PAGE), (v) => {
            v.dom = DOMID_SELF;
            v.nr_frames = 2;
            v.frame_list = list;
          });
          expect(a.op(GNTTABOP_setup_table, uop, 1)).to.equal(ERR(EFAULT));
          expect(a.dom.grantTable.frames).to.have.length(1);
        },
      );

      if (abi === X86_32) {
        it('the translated setup_table reports a frame above 2^32 as GNTST_address_too_big (frame planted in Xen state)', function () {
          // The emulator allocates a 32-bit guest's Xen heap frames below 2^32; Xen does not clamp
          // them (alloc_xenheap_page), so on a large host a compat guest can be given such a frame.
          const { a } = world(abi);
          a.dom.grantTable.frames.push(2 ** 32 + 5);
          const r = a.setupTable(2);
          expect([r.rc, r.status]).to.deep.equal([0n, GNTST_address_too_big]);
          expect(a.readWord(a.va(LIST_PAGE))).to.equal(BigInt(a.dom.grantTable.frames[0]!));
        });
      }
    });

    // --------------------------------------------------------------------------------------------
    describe('map_grant_ref and unmap_grant_ref', function () {
      it('XSA-316: mapping its own grant with the wrong dom gives rc 0 and GNTST_general_error', function () {
        const { a, dom0 } = world(abi);
        expect(dom0.domid).to.equal(0);
        expect(a.domid).to.not.equal(0);
        a.grant(8, GTF_permit_access, a.domid, a.mfn(DATA_PAGE));
        const r = mapGrant(a, 0, 8, GNTMAP_host_map, a.spareVa());
        expect(r.rc).to.equal(0n);
        expect(r.status).to.equal(GNTST_general_error);
        expect(a.entry(8).flags, 'own entry untouched').to.equal(GTF_permit_access);
        expect(dom0.entry(8).flags, "dom0's entry untouched").to.equal(0);
      });

      it('mapping its own grant with the right dom works (self-map)', function () {
        const { a } = world(abi);
        a.grant(8, GTF_permit_access, a.domid, a.mfn(DATA_PAGE));
        const r = mapGrant(a, a.domid, 8, GNTMAP_host_map, a.spareVa());
        expect(r.status).to.equal(GNTST_okay);
        expect(a.xen.translate(a.dom, a.spareVa())!.mfn).to.equal(a.mfn(DATA_PAGE));
      });

      it('a map without GNTMAP_host_map or GNTMAP_device_map is GNTST_bad_gntref', function () {
        const { a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        for (const flags of [0, GNTMAP_readonly, GNTMAP_application_map | GNTMAP_contains_pte]) {
          expect(mapGrant(a, b.domid, 10, flags, a.spareVa())).to.deep.include({ rc: 0n, status: GNTST_bad_gntref, handle: 0xdead });
        }
        expect(b.entry(10).flags).to.equal(GTF_permit_access);
      });

      it('a ref beyond the granter\'s entries is GNTST_bad_gntref', function () {
        const { a, b } = world(abi);
        expect(mapGrant(a, b.domid, 512, GNTMAP_device_map, 0n).status).to.equal(GNTST_bad_gntref);
        expect(b.setupTable(2).status).to.equal(GNTST_okay);
        expect(mapGrant(a, b.domid, 1024, GNTMAP_device_map, 0n).status).to.equal(GNTST_bad_gntref);
        expect(mapGrant(a, b.domid, 0xffffffff, GNTMAP_device_map, 0n).status).to.equal(GNTST_bad_gntref);
      });

      it('an unknown dom, and DOMID_SELF (looked up by id), are GNTST_bad_domain', function () {
        const { a } = world(abi);
        a.grant(10, GTF_permit_access, a.domid, a.mfn(DATA_PAGE));
        expect(mapGrant(a, 0x7000, 10, GNTMAP_device_map, 0n).status).to.equal(GNTST_bad_domain);
        expect(mapGrant(a, DOMID_SELF, 10, GNTMAP_device_map, 0n).status).to.equal(GNTST_bad_domain);
      });

      it('an entry for another domain, not permit_access, or sub-page is GNTST_general_error', function () {
        const { a, b, dom0 } = world(abi);
        const frame = b.mfn(DATA_PAGE);
        b.grant(10, GTF_permit_access, dom0.domid, frame);
        b.grant(11, GTF_accept_transfer, a.domid, frame);
        b.grant(12, GTF_permit_access | GTF_sub_page, a.domid, frame);
        b.grant(13, 0, a.domid, frame);
        for (const ref of [10, 11, 12, 13]) {
          expect(mapGrant(a, b.domid, ref, GNTMAP_device_map, 0n).status, `ref ${ref}`).to.equal(GNTST_general_error);
        }
        expect(b.entry(12).flags).to.equal(GTF_permit_access | GTF_sub_page);
      });

      it("host_map installs the PTE, sets GTF_reading|GTF_writing in the granter's entry and returns handle and dev_bus_addr", function () {
        const { xen, a, b } = world(abi, abi === X86_32 ? X86_64 : X86_32);
        const data = b.fill(DATA_PAGE, 3);
        const frame = b.mfn(DATA_PAGE);
        b.grant(10, GTF_permit_access, a.domid, frame);
        const host = a.spareVa();
        const r = mapGrant(a, b.domid, 10, GNTMAP_host_map, host);
        expect(r).to.deep.equal({ rc: 0n, status: GNTST_okay, handle: 0, devBusAddr: BigInt(frame) << 12n });
        expect(b.entry(10)).to.deep.equal({ flags: GTF_permit_access | GTF_reading | GTF_writing, domid: a.domid, frame });
        expect(xen.translate(a.dom, host, true)!.mfn).to.equal(frame);
        expect(Buffer.from(xen.guestLoad(a.dom, host, PAGE_SIZE)!).equals(Buffer.from(data)), 'the mapper sees the granted bytes').to.equal(true);
        expect(a.dom.grantTable.mapping(0)).to.deep.equal({ flags: GNTMAP_host_map, ref: 10, domid: b.domid });
      });

      it('the grant PTE has Xen\'s PV flags: present, RW, accessed, dirty, NX' + (abi === X86_64 ? ', USER and GUEST_KERNEL' : ''), function () {
        const { a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        b.grant(11, GTF_permit_access, a.domid, b.mfn(DATA_PAGE + 1));
        expect(mapGrant(a, b.domid, 10, GNTMAP_host_map, a.spareVa(2)).status).to.equal(GNTST_okay);
        expect(mapGrant(a, b.domid, 11, GNTMAP_host_map | GNTMAP_readonly | GNTMAP_application_map | (5 << 16), a.spareVa(3)).status).to.equal(GNTST_okay);
        const kernel = a.pte(a.spareVa(2));
        const app = a.pte(a.spareVa(3));
        expect(pteFrame(kernel)).to.equal(BigInt(b.mfn(DATA_PAGE)));
        expect(kernel & 0xfffn).to.equal(abi === X86_64 ? 0x067n : 0x063n);
        expect(kernel & _PAGE_NX).to.equal(_PAGE_NX);
        expect(kernel & _PAGE_GUEST_KERNEL).to.equal(abi === X86_64 ? _PAGE_GUEST_KERNEL : 0n);
        // readonly, application_map (USER; x86_64 adds GLOBAL), avail bits 16-18 -> PTE bits 9-11.
        expect(app & (_PAGE_RW | _PAGE_USER | _PAGE_PRESENT)).to.equal(_PAGE_USER | _PAGE_PRESENT);
        expect(app & 0xe00n).to.equal(0xa00n);
        expect(app & 0x100n).to.equal(abi === X86_64 ? 0x100n : 0n);
        expect(app & _PAGE_GUEST_KERNEL).to.equal(0n);
      });

      it('unmap clears the PTE, drops GTF_reading|GTF_writing and frees the handle', function () {
        const { xen, a, b } = world(abi);
        const frame = b.mfn(DATA_PAGE);
        b.grant(10, GTF_permit_access, a.domid, frame);
        const host = a.spareVa();
        const m = mapGrant(a, b.domid, 10, GNTMAP_host_map, host);
        const u = unmapGrant(a, m.handle, host);
        expect(u).to.deep.equal({ rc: 0n, status: GNTST_okay });
        expect(a.pte(host)).to.equal(0n);
        expect(xen.translate(a.dom, host)).to.equal(undefined);
        expect(b.entry(10)).to.deep.equal({ flags: GTF_permit_access, domid: a.domid, frame });
        expect(a.dom.grantTable.mapping(m.handle)).to.equal(undefined);
        expect(unmapGrant(a, m.handle, host).status, 'a second unmap').to.equal(GNTST_bad_handle);
      });

      it('the handshake is a store by Xen into the granter\'s grant frame, seen by observers', function () {
        const { xen, a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        const stores: StoreEvent[] = [];
        const off = xen.events.subscribe((e) => {
          if (e.type === 'store' && e.mfn === b.dom.grantTable.frames[0]) stores.push(e);
        });
        const m = mapGrant(a, b.domid, 10, GNTMAP_host_map, a.spareVa());
        unmapGrant(a, m.handle, a.spareVa());
        off();
        expect(stores.map((s) => [s.domid, s.writer, s.by, s.offset, s.length])).to.deep.equal([
          [b.domid, a.domid, 'xen', 80, 4],
          [b.domid, a.domid, 'xen', 80, 2],
        ]);
        expect(stores[0]!.value).to.equal(BigInt(((a.domid << 16) | GTF_permit_access | GTF_reading | GTF_writing) >>> 0));
      });

      it('with two mappings of one grant the flags stay until the last unmap', function () {
        const { a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        const m1 = mapGrant(a, b.domid, 10, GNTMAP_host_map, a.spareVa(2));
        const m2 = mapGrant(a, b.domid, 10, GNTMAP_host_map | GNTMAP_readonly, a.spareVa(3));
        expect([m1.handle, m2.handle]).to.deep.equal([0, 1]);
        expect(unmapGrant(a, m1.handle, a.spareVa(2)).status).to.equal(GNTST_okay);
        expect(b.entry(10).flags, 'writable pin gone, read pin left').to.equal(GTF_permit_access | GTF_reading);
        expect(unmapGrant(a, m2.handle, a.spareVa(3)).status).to.equal(GNTST_okay);
        expect(b.entry(10).flags).to.equal(GTF_permit_access);
      });

      it('a readonly grant refuses a writable map and accepts GNTMAP_readonly, setting only GTF_reading', function () {
        const { xen, a, b } = world(abi);
        const frame = b.mfn(DATA_PAGE);
        b.grant(10, GTF_permit_access | GTF_readonly, a.domid, frame);
        expect(mapGrant(a, b.domid, 10, GNTMAP_host_map, a.spareVa()).status).to.equal(GNTST_general_error);
        expect(mapGrant(a, b.domid, 10, GNTMAP_device_map, 0n).status).to.equal(GNTST_general_error);
        expect(b.entry(10).flags).to.equal(GTF_permit_access | GTF_readonly);
        const m = mapGrant(a, b.domid, 10, GNTMAP_host_map | GNTMAP_readonly, a.spareVa());
        expect(m.status).to.equal(GNTST_okay);
        expect(b.entry(10).flags).to.equal(GTF_permit_access | GTF_readonly | GTF_reading);
        expect(a.pte(a.spareVa()) & _PAGE_RW).to.equal(0n);
        expect(xen.translate(a.dom, a.spareVa(), true), 'not writable').to.equal(undefined);
        expect(xen.translate(a.dom, a.spareVa())!.mfn).to.equal(frame);
        expect(unmapGrant(a, m.handle, a.spareVa()).status).to.equal(GNTST_okay);
        expect(b.entry(10).flags).to.equal(GTF_permit_access | GTF_readonly);
      });

      it('GNTMAP_contains_pte writes the PTE at the given machine address', function () {
        const { xen, a, b } = world(abi);
        const frame = b.mfn(DATA_PAGE);
        b.grant(10, GTF_permit_access, a.domid, frame);
        const maddr = a.pteMaddr(a.spareVa());
        const m = mapGrant(a, b.domid, 10, GNTMAP_host_map | GNTMAP_contains_pte, maddr);
        expect(m.status).to.equal(GNTST_okay);
        expect(xen.translate(a.dom, a.spareVa())!.mfn).to.equal(frame);
        expect(mapGrant(a, b.domid, 10, GNTMAP_host_map | GNTMAP_contains_pte, maddr + 4n).status, 'misaligned').to.equal(GNTST_general_error);
        expect(mapGrant(a, b.domid, 10, GNTMAP_host_map | GNTMAP_contains_pte, BigInt(a.mfn(DATA_PAGE)) << 12n).status, 'not an L1').to.equal(GNTST_general_error);
        expect(unmapGrant(a, m.handle, maddr).status).to.equal(GNTST_okay);
        expect(xen.translate(a.dom, a.spareVa())).to.equal(undefined);
      });

      it('a host_addr with no L1 table of the caller is GNTST_general_error and the handshake is undone', function () {
        const { a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        const unmapped = abi === X86_32 ? 0x10000000n : 0x0000100000000000n;
        const r = mapGrant(a, b.domid, 10, GNTMAP_host_map, unmapped);
        expect(r.status).to.equal(GNTST_general_error);
        expect(b.entry(10).flags).to.equal(GTF_permit_access);
        expect(b.dom.grantTable.activeEntry(10)).to.equal(undefined);
        if (abi === X86_32) expect(mapGrant(a, b.domid, 10, GNTMAP_host_map, 1n << 32n).status, 'above 4 GiB').to.equal(GNTST_general_error);
      });

      it('device_map alone writes no PTE and returns the bus address', function () {
        const { a, b } = world(abi);
        const frame = b.mfn(DATA_PAGE);
        b.grant(10, GTF_permit_access, a.domid, frame);
        const before = a.pte(a.spareVa());
        const m = mapGrant(a, b.domid, 10, GNTMAP_device_map, a.spareVa());
        expect(m).to.deep.include({ status: GNTST_okay, devBusAddr: BigInt(frame) << 12n });
        expect(a.pte(a.spareVa())).to.equal(before);
        expect(unmapGrant(a, m.handle, 0n, (BigInt(frame) << 12n) + 4096n).status).to.equal(GNTST_bad_dev_addr);
        expect(b.entry(10).flags, 'still mapped').to.equal(GTF_permit_access | GTF_reading | GTF_writing);
        expect(unmapGrant(a, m.handle, 0n, BigInt(frame) << 12n).status).to.equal(GNTST_okay);
        expect(b.entry(10).flags).to.equal(GTF_permit_access);
      });

      it('unmap with a bad handle is GNTST_bad_handle', function () {
        const { a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        expect(unmapGrant(a, 0, a.spareVa())).to.deep.equal({ rc: 0n, status: GNTST_bad_handle });
        const m = mapGrant(a, b.domid, 10, GNTMAP_device_map, 0n);
        expect(m.status).to.equal(GNTST_okay);
        for (const handle of [m.handle + 1, 255, 256, 0xffffffff]) {
          expect(unmapGrant(a, handle, a.spareVa()).status, `handle ${handle}`).to.equal(GNTST_bad_handle);
        }
        expect(b.entry(10).flags).to.equal(GTF_permit_access | GTF_reading | GTF_writing);
      });

      it('unmap at a host_addr that does not map the grant is GNTST_general_error and keeps the mapping', function () {
        const { xen, a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        const m = mapGrant(a, b.domid, 10, GNTMAP_host_map, a.spareVa(2));
        expect(unmapGrant(a, m.handle, a.spareVa(3)).status).to.equal(GNTST_general_error);
        expect(xen.translate(a.dom, a.spareVa(2))!.mfn).to.equal(b.mfn(DATA_PAGE));
        expect(unmapGrant(a, m.handle, 0n).status, 'host_addr 0 leaves the host mapping').to.equal(GNTST_okay);
        expect(a.dom.grantTable.mapping(m.handle)).to.deep.include({ flags: GNTMAP_host_map });
        expect(unmapGrant(a, m.handle, a.spareVa(2)).status).to.equal(GNTST_okay);
        expect(b.entry(10).flags).to.equal(GTF_permit_access);
      });

      it("unmapping a writable mapping marks the granter's frame dirty; a readonly one does not", function () {
        const { a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        b.grant(11, GTF_permit_access, a.domid, b.mfn(DATA_PAGE + 1));
        const w = mapGrant(a, b.domid, 10, GNTMAP_host_map, a.spareVa(2));
        const r = mapGrant(a, b.domid, 11, GNTMAP_host_map | GNTMAP_readonly, a.spareVa(3));
        b.dom.logdirty.enable();
        expect(unmapGrant(a, r.handle, a.spareVa(3)).status).to.equal(GNTST_okay);
        expect(b.dom.logdirty.isDirty(b.pfn(DATA_PAGE + 1))).to.equal(false);
        expect(unmapGrant(a, w.handle, a.spareVa(2)).status).to.equal(GNTST_okay);
        expect(b.dom.logdirty.isDirty(b.pfn(DATA_PAGE))).to.equal(true);
      });

      it('a granted frame the granter does not own is GNTST_bad_page and the flags are cleared again', function () {
        const { a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, a.mfn(DATA_PAGE));
        b.grant(11, GTF_permit_access, a.domid, 0xfffffff0);
        expect(mapGrant(a, b.domid, 10, GNTMAP_host_map, a.spareVa()).status).to.equal(GNTST_bad_page);
        expect(mapGrant(a, b.domid, 11, GNTMAP_device_map, 0n).status).to.equal(GNTST_bad_page);
        expect(b.entry(10).flags).to.equal(GTF_permit_access);
        expect(b.entry(11).flags).to.equal(GTF_permit_access);
      });

      it('a writable map of a page-table frame is refused; a readonly one is allowed', function () {
        const { a, b } = world(abi);
        const pt = b.built.ptFrames.find((f) => f.level === 1)!.mfn;
        b.grant(10, GTF_permit_access, a.domid, pt);
        expect(mapGrant(a, b.domid, 10, GNTMAP_device_map, 0n).status).to.equal(GNTST_general_error);
        expect(b.entry(10).flags).to.equal(GTF_permit_access);
        expect(mapGrant(a, b.domid, 10, GNTMAP_device_map | GNTMAP_readonly, 0n).status).to.equal(GNTST_okay);
      });

      it('handles are allocated in order, and a freed handle is reused only after the rest (Xen\'s FIFO free list)', function () {
        const { a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        const h = [0, 1, 2].map(() => mapGrant(a, b.domid, 10, GNTMAP_device_map | GNTMAP_readonly, 0n).handle);
        expect(h).to.deep.equal([0, 1, 2]);
        expect(unmapGrant(a, 1, 0n, BigInt(b.mfn(DATA_PAGE)) << 12n).status).to.equal(GNTST_okay);
        expect(mapGrant(a, b.domid, 10, GNTMAP_device_map | GNTMAP_readonly, 0n).handle).to.equal(3);
        // A failed map after the handle was taken puts it back at the tail too.
        expect(mapGrant(a, b.domid, 4000, GNTMAP_device_map, 0n).status).to.equal(GNTST_bad_gntref);
        expect(mapGrant(a, b.domid, 10, GNTMAP_device_map | GNTMAP_readonly, 0n).handle).to.equal(5);
      });

      it('an exhausted maptrack is GNTST_no_space', function () {
        const { a, b } = world(abi);
        a.dom.grantTable.maxMaptrackFrames = 1;
        const frame = b.mfn(DATA_PAGE);
        for (let ref = 8; ref < 8 + 256; ref++) b.grant(ref, GTF_permit_access, a.domid, frame);
        const at = a.put(
          gnttab_map_grant_ref,
          a.va(ARG_PAGE),
          (v, i) => {
            v.flags = GNTMAP_device_map | GNTMAP_readonly;
            v.ref = 8 + i;
            v.dom = b.domid;
          },
          256,
        );
        expect(a.op(GNTTABOP_map_grant_ref, at, 256)).to.equal(0n);
        // One frame holds 256 handles, one of which always stays free as the list's tail.
        expect(a.read(gnttab_map_grant_ref, at, 254).status).to.equal(GNTST_okay);
        expect(a.read(gnttab_map_grant_ref, at, 255).status).to.equal(GNTST_no_space);
        expect(b.entry(8 + 255).flags).to.equal(GTF_permit_access);
      });

      it('a pin counter stops at 128: the 129th device map of one grant is GNTST_general_error', function () {
        const { a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        const at = a.put(
          gnttab_map_grant_ref,
          a.va(ARG_PAGE),
          (v) => {
            v.flags = GNTMAP_device_map;
            v.ref = 10;
            v.dom = b.domid;
          },
          129,
        );
        expect(a.op(GNTTABOP_map_grant_ref, at, 129)).to.equal(0n);
        expect(a.read(gnttab_map_grant_ref, at, 127).status).to.equal(GNTST_okay);
        expect(a.read(gnttab_map_grant_ref, at, 128).status).to.equal(GNTST_general_error);
      });

      it("when a mapper dies, releaseGrantMappings drops its pins and clears the granters' flags", function () {
        const { xen, a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        b.grant(11, GTF_permit_access, a.domid, b.mfn(DATA_PAGE + 1));
        expect(mapGrant(a, b.domid, 10, GNTMAP_host_map, a.spareVa(2)).status).to.equal(GNTST_okay);
        expect(mapGrant(a, b.domid, 11, GNTMAP_device_map | GNTMAP_readonly, 0n).status).to.equal(GNTST_okay);
        releaseGrantMappings(xen, a.dom);
        expect([b.entry(10).flags, b.entry(11).flags]).to.deep.equal([GTF_permit_access, GTF_permit_access]);
        expect([...b.dom.grantTable.pinned()]).to.deep.equal([]);
        expect([...a.dom.grantTable.mappings()]).to.deep.equal([]);
      });

      it('unmap_and_replace puts the PTE from new_addr at host_addr and clears new_addr', function () {
        const { xen, a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        const host = a.spareVa(2);
        const other = a.spareVa(3);
        const otherMfn = xen.translate(a.dom, other)!.mfn;
        const m = mapGrant(a, b.domid, 10, GNTMAP_host_map, host);
        const at = a.put(gnttab_unmap_and_replace, a.va(ARG_PAGE), (v) => {
          v.host_addr = host;
          v.new_addr = other;
          v.handle = m.handle;
          v.status = 0x7777;
        });
        expect(a.op(GNTTABOP_unmap_and_replace, at, 1)).to.equal(0n);
        expect(a.read(gnttab_unmap_and_replace, at).status).to.equal(GNTST_okay);
        expect(xen.translate(a.dom, host)!.mfn).to.equal(otherMfn);
        expect(xen.translate(a.dom, other)).to.equal(undefined);
        expect(b.entry(10).flags).to.equal(GTF_permit_access);
      });
    });

    // --------------------------------------------------------------------------------------------
    describe('copy', function () {
      it('copies from a granted frame into an own frame; the destination pfn is dirty, the granter\'s flags restored', function () {
        const { xen, a, b } = world(abi, abi === X86_32 ? X86_64 : X86_32);
        const data = b.fill(DATA_PAGE, 9);
        b.grant(10, GTF_permit_access | GTF_readonly, a.domid, b.mfn(DATA_PAGE));
        a.dom.logdirty.enable();
        const r = copy(a, [{ src: { ref: 10, domid: b.domid, offset: 100 }, dest: { gmfn: a.mfn(DATA_PAGE), domid: DOMID_SELF, offset: 200 }, len: 300 }]);
        expect(r).to.deep.equal({ rc: 0n, statuses: [GNTST_okay] });
        expect(Buffer.from(xen.guestLoad(a.dom, a.va(DATA_PAGE, 200), 300)!).equals(Buffer.from(data.subarray(100, 400)))).to.equal(true);
        expect(a.dom.logdirty.isDirty(a.pfn(DATA_PAGE))).to.equal(true);
        expect(b.entry(10).flags).to.equal(GTF_permit_access | GTF_readonly);
        expect(b.dom.grantTable.activeEntry(10)).to.equal(undefined);
      });

      it("copies into a granted frame: the granter's frame is written and dirty in the granter's logdirty", function () {
        const { xen, a, b } = world(abi);
        const data = a.fill(DATA_PAGE, 1);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        b.dom.logdirty.enable();
        const stores: StoreEvent[] = [];
        const off = xen.events.subscribe((e) => {
          if (e.type === 'store' && e.mfn === b.mfn(DATA_PAGE)) stores.push(e);
        });
        const r = copy(a, [{ src: { gmfn: a.mfn(DATA_PAGE), domid: DOMID_SELF, offset: 0 }, dest: { ref: 10, domid: b.domid, offset: 4000 }, len: 96 }]);
        off();
        expect(r.statuses).to.deep.equal([GNTST_okay]);
        expect(Buffer.from(xen.guestLoad(b.dom, b.va(DATA_PAGE, 4000), 96)!).equals(Buffer.from(data.subarray(0, 96)))).to.equal(true);
        expect(b.dom.logdirty.isDirty(b.pfn(DATA_PAGE))).to.equal(true);
        expect(stores.map((s) => [s.domid, s.writer, s.by, s.pfn, s.offset, s.length])).to.deep.equal([[b.domid, a.domid, 'xen', b.pfn(DATA_PAGE), 4000, 96]]);
        expect(b.entry(10).flags).to.equal(GTF_permit_access);
      });

      it('a copy crossing a page on either side is GNTST_bad_copy_arg', function () {
        const { a, b } = world(abi);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        const own = a.mfn(DATA_PAGE);
        const r = copy(a, [
          { src: { ref: 10, domid: b.domid, offset: 4000 }, dest: { gmfn: own, domid: DOMID_SELF, offset: 0 }, len: 97 },
          { src: { ref: 10, domid: b.domid, offset: 0 }, dest: { gmfn: own, domid: DOMID_SELF, offset: 4095 }, len: 2 },
          { src: { ref: 10, domid: b.domid, offset: 0 }, dest: { gmfn: own, domid: DOMID_SELF, offset: 0 }, len: 4096 },
          { src: { ref: 10, domid: b.domid, offset: 4096 }, dest: { gmfn: own, domid: DOMID_SELF, offset: 0 }, len: 1 },
        ]);
        expect(r).to.deep.equal({ rc: 0n, statuses: [GNTST_bad_copy_arg, GNTST_bad_copy_arg, GNTST_okay, GNTST_bad_copy_arg] });
        expect(b.entry(10).flags).to.equal(GTF_permit_access);
      });

      it('copy by frame with a foreign domid is GNTST_permission_denied, on either side', function () {
        const { a, b } = world(abi);
        const r = copy(a, [
          { src: { gmfn: b.mfn(DATA_PAGE), domid: b.domid, offset: 0 }, dest: { gmfn: a.mfn(DATA_PAGE), domid: DOMID_SELF, offset: 0 }, len: 8 },
          { src: { gmfn: a.mfn(DATA_PAGE), domid: DOMID_SELF, offset: 0 }, dest: { gmfn: b.mfn(DATA_PAGE), domid: b.domid, offset: 0 }, len: 8 },
          { src: { gmfn: a.mfn(DATA_PAGE), domid: a.domid, offset: 0 }, dest: { gmfn: a.mfn(DATA_PAGE + 1), domid: DOMID_SELF, offset: 0 }, len: 8 },
        ]);
        expect(r.statuses, 'even its own domid by number').to.deep.equal([GNTST_permission_denied, GNTST_permission_denied, GNTST_permission_denied]);
      });

      it('a frame the caller does not own is GNTST_bad_page; a bad gref GNTST_bad_gntref; an unknown domain GNTST_bad_domain', function () {
        const { a, b } = world(abi);
        const own = a.mfn(DATA_PAGE);
        const r = copy(a, [
          { src: { gmfn: b.mfn(DATA_PAGE), domid: DOMID_SELF, offset: 0 }, dest: { gmfn: own, domid: DOMID_SELF, offset: 0 }, len: 8 },
          { src: { ref: 600, domid: b.domid, offset: 4090 }, dest: { gmfn: own, domid: DOMID_SELF, offset: 0 }, len: 100 },
          { src: { ref: 10, domid: 0x7000, offset: 0 }, dest: { gmfn: own, domid: DOMID_SELF, offset: 0 }, len: 8 },
          { src: { gmfn: 0xffffffff, domid: DOMID_SELF, offset: 0 }, dest: { gmfn: own, domid: DOMID_SELF, offset: 0 }, len: 8 },
        ]);
        expect(r.statuses).to.deep.equal([GNTST_bad_page, GNTST_bad_gntref, GNTST_bad_domain, GNTST_bad_page]);
      });

      it('a zero-length element succeeds without any check', function () {
        const { a, b } = world(abi);
        const r = copy(a, [{ src: { gmfn: 1, domid: b.domid, offset: 4096 }, dest: { ref: 9999, domid: 0x7000, offset: 4096 }, len: 0 }]);
        expect(r.statuses).to.deep.equal([GNTST_okay]);
      });

      it('copying into a readonly grant or an entry for another domain is GNTST_general_error', function () {
        const { a, b, dom0 } = world(abi);
        b.grant(10, GTF_permit_access | GTF_readonly, a.domid, b.mfn(DATA_PAGE));
        b.grant(11, GTF_permit_access, dom0.domid, b.mfn(DATA_PAGE));
        const src = { gmfn: a.mfn(DATA_PAGE), domid: DOMID_SELF, offset: 0 };
        const r = copy(a, [
          { src, dest: { ref: 10, domid: b.domid, offset: 0 }, len: 8 },
          { src, dest: { ref: 11, domid: b.domid, offset: 0 }, len: 8 },
        ]);
        expect(r.statuses).to.deep.equal([GNTST_general_error, GNTST_general_error]);
        expect(b.entry(10).flags).to.equal(GTF_permit_access | GTF_readonly);
        expect(b.entry(11).flags).to.equal(GTF_permit_access);
      });

      it('a destination frame that is a page table is GNTST_general_error and stays untouched', function () {
        const { xen, a } = world(abi);
        const pt = a.built.ptFrames.find((f) => f.level === 1)!.mfn;
        const before = Buffer.from(xen.machine.bytes(pt));
        const r = copy(a, [{ src: { gmfn: a.mfn(DATA_PAGE), domid: DOMID_SELF, offset: 0 }, dest: { gmfn: pt, domid: DOMID_SELF, offset: 0 }, len: 64 }]);
        expect(r.statuses).to.deep.equal([GNTST_general_error]);
        expect(Buffer.from(xen.machine.bytes(pt)).equals(before)).to.equal(true);
      });

      it('a batch reuses a held grant; the handshake flags are gone after the call', function () {
        const { xen, a, b } = world(abi);
        b.fill(DATA_PAGE, 5);
        b.grant(10, GTF_permit_access, a.domid, b.mfn(DATA_PAGE));
        const headers: number[] = [];
        const off = xen.events.subscribe((e) => {
          if (e.type === 'store' && e.mfn === b.dom.grantTable.frames[0]) headers.push(e.length);
        });
        const specs = [0, 1, 2].map((i) => ({ src: { ref: 10, domid: b.domid, offset: i * 8 }, dest: { gmfn: a.mfn(DATA_PAGE), domid: DOMID_SELF, offset: i * 8 }, len: 8 }));
        expect(copy(a, specs).statuses).to.deep.equal([GNTST_okay, GNTST_okay, GNTST_okay]);
        off();
        expect(headers, 'one acquire, one release').to.deep.equal([4, 2]);
        expect(b.entry(10).flags).to.equal(GTF_permit_access);
      });

      if (abi === X86_32) {
        it('translated copy: a fault reading a later element fails the call before its batch runs', function () {
          const { xen, a } = world(abi);
          const size = gnttab_copy.sizeOf(abi);
          const at = a.lastMappedVa() + BigInt(PAGE_SIZE - size);
          putCopies(a, [{ src: { gmfn: a.mfn(DATA_PAGE), domid: DOMID_SELF, offset: 0 }, dest: { gmfn: a.mfn(DATA_PAGE + 1), domid: DOMID_SELF, offset: 0 }, len: 16 }], at);
          a.fill(DATA_PAGE, 2);
          const before = Buffer.from(xen.guestLoad(a.dom, a.va(DATA_PAGE + 1), 16)!);
          expect(a.op(GNTTABOP_copy, at, 2)).to.equal(ERR(EFAULT));
          expect(a.read(gnttab_copy, at).status, 'status untouched').to.equal(0x7777);
          expect(Buffer.from(xen.guestLoad(a.dom, a.va(DATA_PAGE + 1), 16)!).equals(before), 'nothing copied').to.equal(true);
        });
      } else {
        it('native copy: a fault reading a later element comes after the earlier ones were done', function () {
          const { xen, a } = world(abi);
          const size = gnttab_copy.sizeOf(abi);
          const at = a.lastMappedVa() + BigInt(PAGE_SIZE - size);
          putCopies(a, [{ src: { gmfn: a.mfn(DATA_PAGE), domid: DOMID_SELF, offset: 0 }, dest: { gmfn: a.mfn(DATA_PAGE + 1), domid: DOMID_SELF, offset: 0 }, len: 16 }], at);
          const data = a.fill(DATA_PAGE, 2);
          expect(a.op(GNTTABOP_copy, at, 2)).to.equal(ERR(EFAULT));
          expect(a.read(gnttab_copy, at).status).to.equal(GNTST_okay);
          expect(Buffer.from(xen.guestLoad(a.dom, a.va(DATA_PAGE + 1), 16)!).equals(Buffer.from(data.subarray(0, 16)))).to.equal(true);
        });
      }
    });

    // --------------------------------------------------------------------------------------------
    describe('transfer', function () {
      it('moves the page to the grantee: owner, tot_pages, m2p, entry frame, GTF_transfer_committed|completed', function () {
        const { xen, a, b } = world(abi, abi === X86_32 ? X86_64 : X86_32);
        const data = a.fill(DATA_PAGE, 4);
        const mfn = a.mfn(DATA_PAGE);
        const [totA, totB] = [a.dom.totPages, b.dom.totPages];
        b.dom.maxPages = totB + 16;
        b.grant(20, GTF_accept_transfer, a.domid, 0x3000);
        const r = transfer(a, mfn, b.domid, 20);
        expect(r).to.deep.equal({ rc: 0n, status: GNTST_okay });
        expect(xen.machine.ownerOf(mfn)).to.equal(b.domid);
        expect([a.dom.totPages, b.dom.totPages]).to.deep.equal([totA - 1, totB + 1]);
        expect([a.countedFrames(), b.countedFrames()]).to.deep.equal([totA - 1, totB + 1]);
        expect(xen.machine.m2pOf(mfn)).to.equal(0x3000);
        expect(b.entry(20)).to.deep.equal({ flags: GTF_accept_transfer | GTF_transfer_committed | GTF_transfer_completed, domid: a.domid, frame: mfn });
        expect(Buffer.from(xen.machine.bytes(mfn)).equals(Buffer.from(data)), 'contents travel with the page').to.equal(true);
      });

      it('an entry that is not exactly accept_transfer for the caller is GNTST_general_error, and the caller loses the page', function () {
        const { xen, a, b, dom0 } = world(abi);
        const used = xen.machine.usedFrames;
        b.grant(20, GTF_permit_access, a.domid, 0);
        b.grant(21, GTF_accept_transfer, dom0.domid, 0);
        b.grant(22, GTF_accept_transfer | GTF_transfer_committed, a.domid, 0);
        const tot = a.dom.totPages;
        const totB = b.dom.totPages;
        for (const [i, ref] of [20, 21, 22, 5000].entries()) {
          const mfn = a.mfn(DATA_PAGE + i);
          expect(transfer(a, mfn, b.domid, ref), `ref ${ref}`).to.deep.equal({ rc: 0n, status: GNTST_general_error });
          expect(xen.machine.ownerOf(mfn), 'freed').to.equal(undefined);
          expect(xen.machine.m2pOf(mfn)).to.equal(INVALID_M2P);
        }
        expect(a.dom.totPages).to.equal(tot - 4);
        expect(b.dom.totPages).to.equal(totB);
        expect(xen.machine.usedFrames).to.equal(used - 4);
        expect(b.entry(21).flags).to.equal(GTF_accept_transfer);
      });

      it('a frame the caller cannot give is GNTST_bad_page and the caller keeps it', function () {
        const { xen, a, b } = world(abi);
        b.grant(20, GTF_accept_transfer, a.domid, 0);
        const tot = a.dom.totPages;
        const pt = a.built.ptFrames.find((f) => f.level === 1)!.mfn;
        a.grant(30, GTF_permit_access, b.domid, a.mfn(DATA_PAGE + 1));
        expect(mapGrant(b, a.domid, 30, GNTMAP_device_map, 0n).status).to.equal(GNTST_okay);
        for (const mfn of [b.mfn(DATA_PAGE), a.dom.grantTable.frames[0]!, a.dom.sharedInfoMfn, pt, a.mfn(DATA_PAGE + 1), xen.machine.maxPage]) {
          expect(transfer(a, mfn, b.domid, 20).status, `mfn 0x${mfn.toString(16)}`).to.equal(GNTST_bad_page);
        }
        expect(a.dom.totPages).to.equal(tot);
        expect(xen.machine.ownerOf(pt)).to.equal(a.domid);
        expect(b.entry(20).flags).to.equal(GTF_accept_transfer);
      });

      it('an unknown grantee, or DOMID_SELF, is GNTST_bad_domain and the page is lost', function () {
        const { xen, a } = world(abi);
        const tot = a.dom.totPages;
        const m1 = a.mfn(DATA_PAGE);
        const m2 = a.mfn(DATA_PAGE + 1);
        expect(transfer(a, m1, 0x7000, 20).status).to.equal(GNTST_bad_domain);
        expect(transfer(a, m2, DOMID_SELF, 20).status).to.equal(GNTST_bad_domain);
        expect([xen.machine.ownerOf(m1), xen.machine.ownerOf(m2)]).to.deep.equal([undefined, undefined]);
        expect(a.dom.totPages).to.equal(tot - 2);
      });

      it('a grantee at max_pages is GNTST_general_error and the page is lost', function () {
        const { xen, a, b } = world(abi);
        b.dom.maxPages = b.dom.totPages;
        b.grant(20, GTF_accept_transfer, a.domid, 0);
        const mfn = a.mfn(DATA_PAGE);
        expect(transfer(a, mfn, b.domid, 20).status).to.equal(GNTST_general_error);
        expect(xen.machine.ownerOf(mfn)).to.equal(undefined);
        expect(b.entry(20).flags).to.equal(GTF_accept_transfer);
      });
    });

    // --------------------------------------------------------------------------------------------
    describe('set_version, get_version, get_status_frames, swap_grant_ref', function () {
      it('set_version: 1 is 0, 2 is -ENOSYS (v2 not permitted), 0 and 3 are -EINVAL; the version in effect is written back', function () {
        const { a } = world(abi);
        for (const [want, rc] of [
          [1, 0n],
          [2, ERR(ENOSYS)],
          [0, ERR(EINVAL)],
          [3, ERR(EINVAL)],
        ] as const) {
          const at = a.put(gnttab_set_version, a.va(ARG_PAGE), (v) => {
            v.version = want;
          });
          expect(a.op(GNTTABOP_set_version, at, 1), `version ${want}`).to.equal(rc);
          expect(a.read(gnttab_set_version, at).version).to.equal(1);
        }
      });

      it('get_version: 1 for itself or (privileged) another; -ESRCH unknown; -EPERM for another unprivileged', function () {
        const { a, b, dom0 } = world(abi);
        const get = (g: Guest, dom: number) => {
          const at = g.put(gnttab_get_version, g.va(ARG_PAGE), (v) => {
            v.dom = dom;
            v.pad = 0x5555;
            v.version = 0x7777;
          });
          const rc = g.op(GNTTABOP_get_version, at, 1);
          const v = g.read(gnttab_get_version, at);
          return [rc, v.version, v.pad];
        };
        expect(get(a, DOMID_SELF)).to.deep.equal([0n, 1, 0x5555]);
        expect(get(dom0, a.domid)).to.deep.equal([0n, 1, 0x5555]);
        expect(get(a, 0x7000)).to.deep.equal([ERR(ESRCH), 0x7777, 0x5555]);
        expect(get(a, b.domid)).to.deep.equal([ERR(EPERM), 0x7777, 0x5555]);
      });

      it('get_status_frames: a v1 table has none, so 0 frames is okay and 1 is GNTST_general_error', function () {
        const { a } = world(abi);
        const ask = (n: number) => {
          const at = a.put(gnttab_get_status_frames, a.va(ARG_PAGE), (v) => {
            v.nr_frames = n;
            v.dom = DOMID_SELF;
            v.frame_list = a.va(LIST_PAGE);
          });
          const rc = a.op(GNTTABOP_get_status_frames, at, 1);
          return [rc, a.read(gnttab_get_status_frames, at).status];
        };
        expect(ask(0)).to.deep.equal([0n, GNTST_okay]);
        expect(ask(1)).to.deep.equal([0n, GNTST_general_error]);
      });

      it('swap_grant_ref exchanges two entries; a pinned one is GNTST_eagain; a bad ref GNTST_bad_gntref', function () {
        const { a, b } = world(abi);
        a.grant(10, GTF_permit_access, b.domid, 0x1234);
        a.grant(11, GTF_permit_access | GTF_readonly, 0, 0x5678);
        const swap = (refA: number, refB: number) => {
          const at = a.put(gnttab_swap_grant_ref, a.va(ARG_PAGE), (v) => {
            v.ref_a = refA;
            v.ref_b = refB;
          });
          expect(a.op(GNTTABOP_swap_grant_ref, at, 1)).to.equal(0n);
          return a.read(gnttab_swap_grant_ref, at).status;
        };
        expect(swap(10, 11)).to.equal(GNTST_okay);
        expect(a.entry(10)).to.deep.equal({ flags: GTF_permit_access | GTF_readonly, domid: 0, frame: 0x5678 });
        expect(a.entry(11)).to.deep.equal({ flags: GTF_permit_access, domid: b.domid, frame: 0x1234 });
        a.grant(12, GTF_permit_access, b.domid, a.mfn(DATA_PAGE));
        expect(mapGrant(b, a.domid, 12, GNTMAP_device_map, 0n).status).to.equal(GNTST_okay);
        expect(swap(12, 10)).to.equal(GNTST_eagain);
        expect(swap(10, 512)).to.equal(GNTST_bad_gntref);
        expect(swap(10, 10)).to.equal(GNTST_okay);
      });
    });
  });
}

// ------------------------------------------------------------------------------------------------
// Transfers to a 32-bit grantee of a frame above its physaddr limit (`compatMaxMfn`, Xen's
// physaddr_bitsize clamp): the grantee and a filler domain take every frame below the limit, so the
// 64-bit granter's frames above it are "high".
// ------------------------------------------------------------------------------------------------

describe('grant_table_op transfer to a 32-bit grantee of a high frame', function () {
  const LIMIT = 2560;

  function highWorld() {
    const xen = new Xen({ maxPage: 8192, compatMaxMfn: LIMIT });
    const b = new Guest(xen, buildDomain(xen, { abi: X86_32, memoryPages: PAGES.x86_32!, maxPages: 2048 }));
    expect(b.setupTable(1).status).to.equal(GNTST_okay);
    const filler = buildDomain(xen, { abi: X86_64, memoryPages: PAGES.x86_64!, maxPages: LIMIT });
    const a = new Guest(xen, buildDomain(xen, { abi: X86_64, memoryPages: PAGES.x86_64! }));
    expect(a.setupTable(1).status).to.equal(GNTST_okay);
    // Test setup standing in for the filler populating more memory: it takes every free frame
    // below the limit (the builder's 2 MiB alignment leaves some), as populate_physmap would.
    for (let mfn = xen.machine.allocFrame(filler.dom.domid, LIMIT), pfn = filler.memoryPages; mfn !== undefined; mfn = xen.machine.allocFrame(filler.dom.domid, LIMIT), pfn++) {
      xen.setM2p(mfn, pfn);
      filler.dom.totPages++;
    }
    // A frame of a above the limit, and none free below it.
    let highPfn = -1;
    for (let pfn = 0; pfn < a.built.bootstrapPfns && highPfn < 0; pfn++) {
      if (Number(a.built.p2mEntry(pfn)) >= LIMIT && pfn > a.built.bootStackPfn) highPfn = pfn;
    }
    expect(highPfn).to.be.greaterThan(0);
    return { xen, a, b, filler, highVa: a.built.vaOfPfn(highPfn), highMfn: Number(a.built.p2mEntry(highPfn)) };
  }

  it('with no free frame below the limit: GNTST_address_too_big, and the page is lost', function () {
    const { xen, a, b, highMfn } = highWorld();
    for (let m = 0; m < LIMIT; m++) expect(xen.machine.ownerOf(m), `mfn ${m}`).to.not.equal(undefined);
    b.grant(20, GTF_accept_transfer, a.domid, 0x500);
    const [totA, totB] = [a.dom.totPages, b.dom.totPages];
    expect(transfer(a, highMfn, b.domid, 20)).to.deep.equal({ rc: 0n, status: GNTST_address_too_big });
    expect(xen.machine.ownerOf(highMfn)).to.equal(undefined);
    expect([a.dom.totPages, b.dom.totPages]).to.deep.equal([totA - 1, totB]);
    expect(b.entry(20).flags).to.equal(GTF_accept_transfer);
  });

  it('with a free frame below the limit: the contents are copied there and that frame is transferred', function () {
    const { xen, a, b, filler, highVa, highMfn } = highWorld();
    const bytes = new Uint8Array(PAGE_SIZE).map((_, i) => (i * 13) & 0xff);
    expect(xen.guestStore(a.dom, highVa, bytes)).to.equal(0);
    xen.destroyDomain(filler.dom.domid);
    b.grant(20, GTF_accept_transfer, a.domid, 0x500);
    const totB = b.dom.totPages;
    expect(transfer(a, highMfn, b.domid, 20)).to.deep.equal({ rc: 0n, status: GNTST_okay });
    const e = b.entry(20);
    expect(e.frame).to.be.lessThan(LIMIT);
    expect(e.flags).to.equal(GTF_accept_transfer | GTF_transfer_committed | GTF_transfer_completed);
    expect(xen.machine.ownerOf(e.frame)).to.equal(b.domid);
    expect(xen.machine.m2pOf(e.frame)).to.equal(0x500);
    expect(Buffer.from(xen.machine.bytes(e.frame)).equals(Buffer.from(bytes))).to.equal(true);
    expect(xen.machine.ownerOf(highMfn), 'the high frame is freed').to.equal(undefined);
    expect(b.dom.totPages).to.equal(totB + 1);
    expect(b.countedFrames()).to.equal(totB + 1);
  });

  it('a 64-bit grantee takes the same high frame as it is (below 2^32)', function () {
    const { xen, a, highMfn } = highWorld();
    const c = new Guest(xen, buildDomain(xen, { abi: X86_64, memoryPages: PAGES.x86_64!, maxPages: 2048 }));
    expect(c.setupTable(1).status).to.equal(GNTST_okay);
    c.grant(20, GTF_accept_transfer, a.domid, 0x500);
    expect(transfer(a, highMfn, c.domid, 20).status).to.equal(GNTST_okay);
    expect(c.entry(20).frame).to.equal(highMfn);
    expect(xen.machine.ownerOf(highMfn)).to.equal(c.domid);
    expect(xen.machine.pageType(highMfn)).to.equal(PageType.None);
  });
});
