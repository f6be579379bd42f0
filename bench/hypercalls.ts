/**
 * Figure 1 of issue 8: hypercall throughput. An x86_64 guest balloons as a balloon driver does:
 * `XENMEM_decrease_reservation` of 512 order-0 extents (the mfns the last populate returned), then
 * the guest writes 512 pfns into the extent list and `XENMEM_populate_physmap` takes 512 frames back
 * — repeated. Every extent of either call counts (1024 per cycle); the guest's store of the pfn list
 * is inside the timing. Target: at least 5 million extents per second.
 *
 * Honesty: a warm-up (which also calibrates the window), then several timed windows of a fixed
 * number of cycles, each timed by the wall clock and by the process's CPU time (which includes the
 * GC's helper threads); the medians are reported with their range. Every call must return 512, and
 * afterwards the domain's accounting, the extent list, the owners and the m2p are checked: a
 * hypercall that did less than it said breaks the run.
 */

import {
  X86_64,
  XENMEM_decrease_reservation,
  XENMEM_populate_physmap,
  __HYPERVISOR_memory_op,
  xen_memory_reservation,
  DOMID_SELF,
} from '../abi/index.js';
import { buildDomain } from '../xen-emu/builder.js';
import { Xen } from '../xen-emu/xen.js';
import type { BenchContext, BenchModule, BenchOutput } from './context.js';
import { median, spread, type Figure } from './results.js';

const BATCH = 512;
const TARGET_EXTENTS_PER_S = 5e6;

/** One guest and its 512-entry extent list, ready to balloon. */
class Balloon {
  readonly xen = new Xen({ maxPage: 1 << 16 });
  readonly built = buildDomain(this.xen, { abi: X86_64, memoryPages: 4096, maxPages: 8192 });
  private readonly argVa = this.built.scratchVa;
  private readonly listVa = this.built.scratchVa + 4096n;
  /** The pfns ballooned out and in: just above the populated range. */
  private readonly gpfns = new Uint8Array(BATCH * 8);
  private readonly decreaseCmd = BigInt(XENMEM_decrease_reservation);
  private readonly populateCmd = BigInt(XENMEM_populate_physmap);
  /** tot_pages with the 512 pfns populated: the same after every cycle. */
  private readonly totPagesPopulated: number;
  /** Frames in use in the machine with the 512 pfns populated: no frame may leak. */
  private readonly usedFramesPopulated: number;

  constructor() {
    const { bytes, view } = xen_memory_reservation.alloc(X86_64);
    view.extent_start = this.listVa;
    view.nr_extents = BigInt(BATCH);
    view.extent_order = 0;
    view.mem_flags = 0;
    view.domid = DOMID_SELF;
    if (this.xen.guestStore(this.built.dom, this.argVa, bytes) !== 0) throw new Error('hypercalls: argument page not writable');
    const gv = new DataView(this.gpfns.buffer);
    for (let i = 0; i < BATCH; i++) gv.setBigUint64(i * 8, BigInt(this.built.memoryPages + i), true);
    this.populate();
    this.totPagesPopulated = this.built.dom.totPages;
    this.usedFramesPopulated = this.xen.machine.usedFrames;
  }

  /** The guest names the pfns; Xen overwrites each slot with the mfn it allocated. */
  populate(): void {
    const dom = this.built.dom;
    if (this.xen.guestStore(dom, this.listVa, this.gpfns) !== 0) throw new Error('hypercalls: extent list not writable');
    const rc = this.xen.hypercall(dom.domid, __HYPERVISOR_memory_op, this.populateCmd, this.argVa);
    if (rc !== BigInt(BATCH)) throw new Error(`Fail: populate_physmap of ${BATCH} extents, expected ${BATCH}, got ${rc}`);
  }

  /** Gives back the frames the list holds (the mfns populate wrote). */
  decrease(): void {
    const rc = this.xen.hypercall(this.built.dom.domid, __HYPERVISOR_memory_op, this.decreaseCmd, this.argVa);
    if (rc !== BigInt(BATCH)) throw new Error(`Fail: decrease_reservation of ${BATCH} extents, expected ${BATCH}, got ${rc}`);
  }

  cycles(n: number): void {
    for (let i = 0; i < n; i++) {
      this.decrease();
      this.populate();
    }
  }

  /** After a populate: the list holds owned mfns whose m2p names the pfns, and tot_pages is right. */
  verify(): void {
    const { xen, built } = this;
    const dom = built.dom;
    if (dom.totPages !== this.totPagesPopulated) {
      throw new Error(`Fail: tot_pages after the benchmark, expected ${this.totPagesPopulated}, got ${dom.totPages}`);
    }
    if (xen.machine.usedFrames !== this.usedFramesPopulated) {
      throw new Error(`Fail: machine frames in use after the benchmark, expected ${this.usedFramesPopulated}, got ${xen.machine.usedFrames}`);
    }
    const list = xen.guestLoad(dom, this.listVa, BATCH * 8);
    if (!list) throw new Error('hypercalls: extent list unreadable');
    const view = new DataView(list.buffer, list.byteOffset, list.byteLength);
    const seen = new Set<number>();
    for (let i = 0; i < BATCH; i++) {
      const mfn = Number(view.getBigUint64(i * 8, true));
      const pfn = built.memoryPages + i;
      if (xen.machine.ownerOf(mfn) !== dom.domid || xen.machine.m2pOf(mfn) !== pfn || seen.has(mfn)) {
        throw new Error(
          `Fail: extent ${i} after populate_physmap, expected an owned mfn with m2p 0x${pfn.toString(16)}, got mfn 0x${mfn.toString(16)} (owner ${xen.machine.ownerOf(mfn)}, m2p 0x${xen.machine.m2pOf(mfn).toString(16)})`,
        );
      }
      seen.add(mfn);
    }
  }
}

interface Window {
  readonly wallNs: number;
  readonly cpuNs: number;
}

function timeWindow(balloon: Balloon, cycles: number): Window {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  balloon.cycles(cycles);
  const wallNs = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  return { wallNs, cpuNs: (cpu.user + cpu.system) * 1000 };
}

export function benchHypercalls(ctx: BenchContext): BenchOutput {
  const warmupSeconds = ctx.quick ? 0.3 : 1;
  const windowSeconds = ctx.quick ? 0.2 : 0.5;
  const windows = ctx.quick ? 5 : 9;
  const balloon = new Balloon();

  // Warm-up until the JIT has settled, measuring the rate to size the windows.
  let warmCycles = 0;
  const w0 = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < warmupSeconds * 1e9) {
    balloon.cycles(50);
    warmCycles += 50;
    elapsed = Number(process.hrtime.bigint() - w0);
  }
  const cyclesPerWindow = Math.max(10, Math.round((warmCycles / elapsed) * windowSeconds * 1e9));

  const samples: Window[] = [];
  for (let i = 0; i < windows; i++) samples.push(timeWindow(balloon, cyclesPerWindow));
  balloon.verify();

  const extents = cyclesPerWindow * 2 * BATCH;
  const wallRates = samples.map((s) => extents / s.wallNs * 1e3); // M extents/s
  const cpuRates = samples.map((s) => extents / s.cpuNs * 1e3);
  const wall = median(wallRates);
  const cpu = median(cpuRates);
  const nsPerExtent = 1e3 / wall;
  const base = ctx.baselines.of(extents);
  const how = `median of ${windows} windows of ${cyclesPerWindow} cycles (${extents} extents, ~${windowSeconds} s)`;
  const name = 'memory_op decrease+populate, order 0, 512/call, x86_64';
  const figures: Figure[] = [
    {
      figure: '1',
      name: `${name}: wall clock`,
      value: wall,
      unit: 'M extents/s',
      machine: ctx.machine,
      target: { of: 'value', op: '>=', bound: TARGET_EXTENTS_PER_S / 1e6 },
      detail: `${how}, ${spread(wallRates)}; both calls' extents counted, the guest's store of the pfn list included`,
    },
    {
      figure: '1',
      name: `${name}: CPU time`,
      value: cpu,
      unit: 'M extents/s',
      machine: ctx.machine,
      detail: `${how}, ${spread(cpuRates)}; process CPU time (user + system, GC helper threads included)`,
    },
    {
      figure: '1',
      name: `${name}: time per extent vs baseline`,
      value: nsPerExtent,
      unit: 'ns/extent',
      machine: ctx.machine,
      baseline: base.totalNs,
      baselineUnit: 'ns/entry',
      ratio: nsPerExtent / base.totalNs,
      detail: `wall-clock median; baseline: scan + copy of ${extents} 8-byte entries (one window's extents)`,
    },
  ];
  return { figures };
}

export const hypercallsModule: BenchModule = {
  id: 'hypercalls',
  title: 'figure 1: memory_op extents per second',
  run: benchHypercalls,
};
