/**
 * Seeded fuzzing of the emulated Xen: random, mostly-plausible and sometimes hostile hypercalls
 * from guests of both ABIs. After every call: no exception escaped, the result is a legal Xen result
 * for that hypercall, and the machine invariants hold (frames conserved, none both owned and free,
 * freed frames with an invalid m2p, tot_pages = frames owned).
 *
 *   XENABI_FUZZ_SEED=<n>        seed (default fixed, printed)
 *   XENABI_FUZZ_CALLS=<n>       calls per ABI (default 50000, so 100000 per run)
 *   XENABI_FUZZ_EPISODE=<abi>:<k>  replay one episode only
 */

import { expect } from 'chai';
import {
  DOMID_SELF,
  ERRNO_CONSTANTS,
  X86_32,
  X86_64,
  __HYPERVISOR_grant_table_op,
  __HYPERVISOR_memory_op,
  __HYPERVISOR_mmu_update,
  __HYPERVISOR_mmuext_op,
  __HYPERVISOR_multicall,
  __HYPERVISOR_update_va_mapping,
  gnttab_copy,
  gnttab_map_grant_ref,
  gnttab_setup_table,
  gnttab_transfer,
  gnttab_unmap_grant_ref,
  mmuext_op,
  multicall_entry,
  xen_memory_domain,
  xen_memory_exchange,
  xen_memory_reservation,
  type GuestAbi,
} from '../../abi/index.js';
import { buildDomain, type BuiltDomain } from '../../xen-emu/builder.js';
import { checkInvariants } from '../../xen-emu/invariants.js';
import { Xen } from '../../xen-emu/xen.js';
import { Rng } from '../../xen-emu/rng.js';

const DEFAULT_SEED = 20261126;
const seed = Number(process.env['XENABI_FUZZ_SEED'] ?? DEFAULT_SEED);
const callsPerAbi = Number(process.env['XENABI_FUZZ_CALLS'] ?? 50_000);
const only = process.env['XENABI_FUZZ_EPISODE'];
const CALLS_PER_EPISODE = 2_000;

const LEGAL_ERRNOS = new Set(Object.values(ERRNO_CONSTANTS.values).map((v) => Number(v)));
const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

interface World {
  readonly xen: Xen;
  readonly guests: readonly BuiltDomain[];
}

function makeWorld(abi: GuestAbi): World {
  const xen = new Xen({ maxPage: 6144 });
  // A privileged guest of the other ABI, and two guests of the ABI under test.
  const dom0 = buildDomain(xen, { abi: abi === X86_64 ? X86_32 : X86_64, memoryPages: 1100, maxPages: 1400, privileged: true });
  const a = buildDomain(xen, { abi, memoryPages: 1100, maxPages: 1500 });
  const b = buildDomain(xen, { abi, memoryPages: 1100, maxPages: 1300 });
  return { xen, guests: [a, b, dom0] };
}

/** One random call, described well enough to replay by reading. */
interface Call {
  readonly caller: BuiltDomain;
  readonly nr: number;
  readonly args: bigint[];
  readonly what: string;
  /** Checks the result beyond "0, a count or -errno"; returns a failure text or undefined. */
  readonly check?: (r: bigint) => string | undefined;
}

class Fuzzer {
  constructor(
    private readonly rng: Rng,
    private readonly world: World,
  ) {}

  private get xen(): Xen {
    return this.world.xen;
  }

  /** A frame: mostly one the caller owns, sometimes anybody's, sometimes out of range. */
  private mfn(caller: BuiltDomain): number {
    const r = this.rng;
    const max = this.xen.machine.maxPage;
    if (r.chance(0.05)) return r.int(max, max + 100);
    for (let i = 0; i < 6; i++) {
      const m = r.below(max);
      if (this.xen.machine.ownerOf(m) === caller.dom.domid || r.chance(0.15)) return m;
    }
    return r.below(max);
  }

  private pfn(caller: BuiltDomain): number {
    return this.rng.chance(0.9) ? this.rng.below(caller.memoryPages + 200) : this.rng.u32();
  }

  private domid(caller: BuiltDomain): number {
    const r = this.rng;
    const x = r.below(10);
    if (x < 7) return DOMID_SELF;
    if (x < 8) return caller.dom.domid;
    if (x < 9) return r.pick(this.world.guests).dom.domid;
    return r.below(0x10000);
  }

  /** An argument address: mostly in the caller's scratch pages, sometimes anywhere. */
  private va(caller: BuiltDomain, bytes: number): bigint {
    const r = this.rng;
    const x = r.below(20);
    const span = caller.scratchPages * 4096;
    if (x < 17) return caller.scratchVa + BigInt(r.below(Math.max(1, span - bytes)) & ~7);
    if (x < 18) return caller.virtBase - BigInt(r.int(1, 64)); // straddles into unmapped memory
    if (x < 19) return 0n;
    return caller.abi === X86_64 ? r.u64() : BigInt(r.u32());
  }

  private store(caller: BuiltDomain, va: bigint, bytes: Uint8Array): void {
    // Writes that fault are fine: the call then sees whatever is (not) there.
    this.xen.guestStore(caller.dom, va, bytes);
  }

  private words(caller: BuiltDomain, values: readonly bigint[]): Uint8Array {
    const w = caller.abi.wordSize;
    const out = Buffer.alloc(values.length * w);
    values.forEach((v, i) => (w === 8 ? out.writeBigUInt64LE(BigInt.asUintN(64, v), i * 8) : out.writeUInt32LE(Number(BigInt.asUintN(32, v)), i * 4)));
    return out;
  }

  private reservation(caller: BuiltDomain): Call {
    const r = this.rng;
    const abi = caller.abi;
    const op = r.pick([0, 1, 6]);
    const nr = r.chance(0.95) ? r.int(0, 40) : r.int(0, 2 ** 30);
    const order = r.chance(0.85) ? r.int(0, 2) : r.int(0, 20);
    const list = Array.from({ length: Math.min(nr, 40) }, () => BigInt(op === 1 ? this.mfn(caller) : this.pfn(caller)));
    const listVa = r.chance(0.1) ? 0n : this.va(caller, list.length * abi.wordSize);
    this.store(caller, listVa, this.words(caller, list));
    const { bytes, view } = xen_memory_reservation.alloc(abi);
    view.extent_start = listVa & (abi.wordSize === 8 ? 0xffffffffffffffffn : 0xffffffffn);
    view.nr_extents = BigInt(nr);
    view.extent_order = order;
    view.mem_flags = r.chance(0.9) ? 0 : r.u32();
    view.domid = this.domid(caller);
    const va = this.va(caller, bytes.length);
    this.store(caller, va, bytes);
    const start = r.chance(0.9) ? 0 : r.int(0, 50);
    const cmd = BigInt(op) | (BigInt(start) << 6n);
    return {
      caller,
      nr: __HYPERVISOR_memory_op,
      args: [cmd, va],
      what: `memory_op(${op}, start ${start}, nr ${nr}, order ${order}, domid ${hex(view.domid)}, arg ${hex(va)})`,
      // Reservation ops return a count, never -errno.
      check: (res) => (res < 0n ? `a count, got ${res}` : undefined),
    };
  }

  private exchange(caller: BuiltDomain): Call {
    const r = this.rng;
    const abi = caller.abi;
    const inOrder = r.int(0, 2);
    const nrIn = r.int(0, 6);
    const outOrder = r.chance(0.8) ? r.int(0, 3) : r.int(0, 40);
    const nrOut = r.chance(0.8) ? Math.max(0, Math.floor((nrIn << inOrder) / 2 ** Math.min(outOrder, 30))) : r.int(0, 8);
    const inList = Array.from({ length: nrIn }, () => BigInt(this.mfn(caller)));
    const outList = Array.from({ length: Math.min(nrOut, 16) }, () => BigInt(this.pfn(caller)));
    const inVa = this.va(caller, inList.length * abi.wordSize);
    this.store(caller, inVa, this.words(caller, inList));
    const outVa = this.va(caller, outList.length * abi.wordSize);
    this.store(caller, outVa, this.words(caller, outList));
    const { bytes, view } = xen_memory_exchange.alloc(abi);
    const mask = abi.wordSize === 8 ? 0xffffffffffffffffn : 0xffffffffn;
    view.in.extent_start = inVa & mask;
    view.in.nr_extents = BigInt(nrIn);
    view.in.extent_order = inOrder;
    view.in.domid = r.chance(0.9) ? DOMID_SELF : this.domid(caller);
    view.out.extent_start = outVa & mask;
    view.out.nr_extents = BigInt(nrOut);
    view.out.extent_order = outOrder;
    view.out.domid = r.chance(0.9) ? view.in.domid : this.domid(caller);
    view.nr_exchanged = r.chance(0.9) ? 0n : BigInt(r.int(0, 10));
    const va = this.va(caller, bytes.length);
    this.store(caller, va, bytes);
    return {
      caller,
      nr: __HYPERVISOR_memory_op,
      args: [11n, va],
      what: `memory_op(exchange, in ${nrIn}×${inOrder}, out ${nrOut}×${outOrder}, arg ${hex(va)})`,
      check: (res) => (res > 0n ? `0 or -errno, got ${res}` : undefined),
    };
  }

  private memoryOther(caller: BuiltDomain): Call {
    const r = this.rng;
    const op = r.chance(0.8) ? r.pick([2, 3, 4, 14]) : r.below(64);
    const { bytes, view } = xen_memory_domain.alloc(caller.abi);
    view.domid = this.domid(caller);
    const va = op === 2 && r.chance(0.5) ? 0n : this.va(caller, bytes.length);
    this.store(caller, va, bytes);
    const cmd = BigInt(op) | (r.chance(0.9) ? 0n : BigInt(r.int(1, 9)) << 6n);
    return { caller, nr: __HYPERVISOR_memory_op, args: [cmd, va], what: `memory_op(${op}, cmd ${hex(cmd)}, arg ${hex(va)})` };
  }

  private pte(caller: BuiltDomain): bigint {
    const r = this.rng;
    if (r.chance(0.05)) return r.u64();
    const flags = BigInt(r.below(0x200) | 1) & (r.chance(0.7) ? 0x67n : 0x1ffn);
    return (BigInt(this.mfn(caller)) << 12n) | flags | (r.chance(0.1) ? 1n << 63n : 0n);
  }

  private mmuUpdate(caller: BuiltDomain): Call {
    const r = this.rng;
    const count = r.int(0, 4);
    const reqs = Buffer.alloc(count * 16);
    for (let i = 0; i < count; i++) {
      const x = r.below(10);
      let ptr: bigint;
      let val: bigint;
      if (x < 5) {
        const pt = r.chance(0.9) ? r.pick(caller.ptMfns) : this.mfn(caller);
        ptr = (BigInt(pt) << 12n) | (BigInt(r.below(512)) << 3n) | BigInt(r.chance(0.9) ? 0 : r.below(8));
        val = this.pte(caller);
      } else if (x < 8) {
        ptr = (BigInt(this.mfn(caller)) << 12n) | 1n;
        val = BigInt(this.pfn(caller));
      } else {
        ptr = r.u64();
        val = r.u64();
      }
      reqs.writeBigUInt64LE(ptr, i * 16);
      reqs.writeBigUInt64LE(val, i * 16 + 8);
    }
    const va = this.va(caller, reqs.length);
    this.store(caller, va, reqs);
    const pdone = r.chance(0.5) ? 0n : this.va(caller, 4);
    const fd = r.chance(0.85) ? DOMID_SELF : this.domid(caller);
    const pfd = r.chance(0.9) ? 0 : r.int(0, 5);
    const foreigndom = BigInt(fd | (pfd << 16));
    return {
      caller,
      nr: __HYPERVISOR_mmu_update,
      args: [va, BigInt(count), pdone, foreigndom],
      what: `mmu_update(${count} reqs at ${hex(va)}, pdone ${hex(pdone)}, foreigndom ${hex(foreigndom)})`,
      check: (res) => (res > 0n ? `0 or -errno, got ${res}` : undefined),
    };
  }

  private mmuextOp(caller: BuiltDomain): Call {
    const r = this.rng;
    const count = r.int(0, 2);
    const size = mmuext_op.sizeOf(caller.abi);
    const ops = Buffer.alloc(count * size);
    for (let i = 0; i < count; i++) {
      const view = mmuext_op.view(caller.abi, ops, i * size);
      view.cmd = r.chance(0.8) ? r.int(0, 21) : r.u32();
      view.arg1.mfn = BigInt(r.chance(0.5) ? r.pick(caller.ptMfns) : this.mfn(caller));
      view.arg2.nr_ents = r.below(4);
    }
    const va = this.va(caller, ops.length);
    this.store(caller, va, ops);
    const pdone = r.chance(0.5) ? 0n : this.va(caller, 4);
    return {
      caller,
      nr: __HYPERVISOR_mmuext_op,
      args: [va, BigInt(count), pdone, BigInt(r.chance(0.9) ? DOMID_SELF : this.domid(caller))],
      what: `mmuext_op(${count} ops at ${hex(va)})`,
      check: (res) => (res > 0n ? `0 or -errno, got ${res}` : undefined),
    };
  }

  private updateVaMapping(caller: BuiltDomain): Call {
    const r = this.rng;
    const va = r.chance(0.8) ? caller.scratchVa + BigInt(r.int(8, caller.scratchPages - 1) * 4096) : this.va(caller, 8);
    const pte = this.pte(caller);
    const flags = BigInt(r.chance(0.9) ? r.below(8) : r.u32());
    const args = caller.abi === X86_64 ? [va, pte, flags] : [va, pte & 0xffffffffn, pte >> 32n, flags];
    return {
      caller,
      nr: __HYPERVISOR_update_va_mapping,
      args,
      what: `update_va_mapping(${hex(va)}, ${hex(pte)}, ${hex(flags)})`,
      check: (res) => (res > 0n ? `0 or -errno, got ${res}` : undefined),
    };
  }

  private grantOp(caller: BuiltDomain): Call {
    const r = this.rng;
    const abi = caller.abi;
    const op = r.chance(0.9) ? r.pick([0, 0, 1, 2, 4, 5, 5, 6]) : r.below(16);
    const count = op === 2 || op === 6 ? (r.chance(0.9) ? 1 : r.int(-1, 3)) : r.int(0, 3);
    const other = r.pick(this.world.guests).dom.domid;
    const defs = { 0: gnttab_map_grant_ref, 1: gnttab_unmap_grant_ref, 2: gnttab_setup_table, 4: gnttab_transfer, 5: gnttab_copy } as const;
    let bytes = Buffer.alloc(64);
    const def = defs[op as keyof typeof defs];
    if (def) {
      const size = def.sizeOf(abi);
      bytes = Buffer.alloc(Math.max(0, count) * size);
      for (let i = 0; i < Math.max(0, count); i++) {
        const v = def.view(abi, bytes, i * size) as Record<string, unknown>;
        if (op === 0) {
          Object.assign(v, {
            host_addr: caller.scratchVa + BigInt(r.int(8, 15) * 4096),
            flags: r.chance(0.8) ? r.pick([2, 6, 1, 3]) : r.below(32),
            ref: r.chance(0.8) ? r.below(16) : r.u32(),
            dom: r.chance(0.8) ? other : r.below(0x8000),
          });
        } else if (op === 1) {
          Object.assign(v, { host_addr: caller.scratchVa + BigInt(r.int(8, 15) * 4096), handle: r.chance(0.8) ? r.below(4) : r.u32() });
        } else if (op === 2) {
          Object.assign(v, { dom: r.chance(0.8) ? DOMID_SELF : r.below(0x8000), nr_frames: r.chance(0.8) ? r.int(1, 4) : r.u32(), frame_list: this.va(caller, 32) & (abi.wordSize === 8 ? 0xffffffffffffffffn : 0xffffffffn) });
        } else if (op === 4) {
          Object.assign(v, { mfn: BigInt(this.mfn(caller)), domid: r.chance(0.8) ? other : r.below(0x8000), ref: r.below(16) });
        } else {
          const c = v as { source: Record<string, unknown> & { u: Record<string, unknown> }; dest: Record<string, unknown> & { u: Record<string, unknown> }; len: number; flags: number };
          for (const side of [c.source, c.dest]) {
            if (r.chance(0.5)) side.u['ref'] = r.below(16);
            else side.u['gmfn'] = BigInt(this.mfn(caller));
            side['domid'] = r.chance(0.6) ? DOMID_SELF : other;
            side['offset'] = r.chance(0.8) ? r.below(4096) : r.below(0x10000);
          }
          c.len = r.chance(0.8) ? r.below(256) : r.below(0x10000);
          c.flags = r.below(4);
        }
      }
    } else {
      for (let i = 0; i < bytes.length; i++) bytes[i] = r.below(256);
    }
    const va = this.va(caller, bytes.length);
    this.store(caller, va, bytes);
    const cmd = BigInt(op) | (r.chance(0.95) ? 0n : BigInt(r.u32()) << 12n);
    return {
      caller,
      nr: __HYPERVISOR_grant_table_op,
      args: [cmd, va, BigInt.asUintN(32, BigInt(count))],
      what: `grant_table_op(${hex(cmd)}, ${hex(va)}, ${count})`,
      check: (res) => (res > 0n ? `0 or -errno, got ${res}` : undefined),
    };
  }

  private multicall(caller: BuiltDomain): Call {
    const r = this.rng;
    const n = r.int(0, 3);
    const size = multicall_entry.sizeOf(caller.abi);
    const list = Buffer.alloc(n * size);
    for (let i = 0; i < n; i++) {
      const inner = this.simple(caller);
      const v = multicall_entry.view(caller.abi, list, i * size);
      v.op = BigInt(r.chance(0.95) ? inner.nr : r.below(64));
      inner.args.slice(0, 6).forEach((a, j) => v.args.set(j, BigInt.asUintN(caller.abi.wordSize * 8, a)));
    }
    const va = this.va(caller, list.length);
    this.store(caller, va, list);
    return {
      caller,
      nr: __HYPERVISOR_multicall,
      args: [va, BigInt(n)],
      what: `multicall(${n} entries at ${hex(va)})`,
      check: (res) => (res > 0n ? `0 or -errno, got ${res}` : undefined),
    };
  }

  private simple(caller: BuiltDomain): Call {
    const x = this.rng.below(100);
    if (x < 30) return this.reservation(caller);
    if (x < 40) return this.exchange(caller);
    if (x < 48) return this.memoryOther(caller);
    if (x < 63) return this.mmuUpdate(caller);
    if (x < 70) return this.mmuextOp(caller);
    if (x < 78) return this.updateVaMapping(caller);
    return this.grantOp(caller);
  }

  next(): Call {
    const r = this.rng;
    const caller = r.chance(0.7) ? this.world.guests[0]! : r.pick(this.world.guests);
    return r.chance(0.05) ? this.multicall(caller) : this.simple(caller);
  }
}

function legal(result: bigint): boolean {
  return result >= 0n || LEGAL_ERRNOS.has(Number(-result));
}

function runEpisode(abi: GuestAbi, episode: number, calls: number): void {
  const episodeSeed = Rng.derive(seed, abi.wordSize, episode);
  const replay = `XENABI_FUZZ_SEED=${seed} XENABI_FUZZ_EPISODE=${abi.name}:${episode} npx mocha --no-config --node-option import=tsx/esm --extension ts test/xen-emu/fuzz.test.ts`;
  const world = makeWorld(abi);
  const fuzzer = new Fuzzer(new Rng(episodeSeed), world);
  for (let i = 0; i < calls; i++) {
    const call = fuzzer.next();
    const where = `seed ${seed}, ${abi.name} episode ${episode}, call ${i}: ${call.what} by domain ${call.caller.dom.domid}`;
    let result: bigint;
    try {
      result = world.xen.hypercall(call.caller.dom.domid, call.nr, ...call.args);
    } catch (e) {
      throw new Error(`Fail: ${where}, expected a Xen result, got exception ${(e as Error).stack ?? e}\nreplay: ${replay}`);
    }
    const bad = !legal(result) ? `a count, 0 or -errno, got ${result}` : call.check?.(result);
    if (bad) throw new Error(`Fail: ${where}, expected ${bad}\nreplay: ${replay}`);
    const problems = checkInvariants(world.xen);
    if (problems.length) throw new Error(`${problems[0]} (after ${where}; ${problems.length} problems)\nreplay: ${replay}`);
  }
}

describe('xen-emu fuzz: random hypercalls keep Xen results and machine invariants', function () {
  this.timeout(600_000);
  before(function () {
    console.log(`      fuzz seed ${seed} (XENABI_FUZZ_SEED), ${callsPerAbi} calls per ABI`);
  });

  for (const abi of [X86_32, X86_64]) {
    it(`${abi.name}: ${callsPerAbi} calls`, function () {
      const episodes = Math.ceil(callsPerAbi / CALLS_PER_EPISODE);
      let done = 0;
      for (let e = 0; e < episodes; e++) {
        if (only && only !== `${abi.name}:${e}`) continue;
        const calls = Math.min(CALLS_PER_EPISODE, callsPerAbi - e * CALLS_PER_EPISODE);
        runEpisode(abi, e, calls);
        done += calls;
      }
      expect(done).to.equal(only ? (only.startsWith(abi.name) ? Math.min(CALLS_PER_EPISODE, callsPerAbi) : 0) : callsPerAbi);
    });
  }
});
