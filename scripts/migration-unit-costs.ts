/**
 * The unit costs behind figure 2 (docs/performance.md, "Where the 512 GiB run's time goes"): what
 * one guest balloon operation, one new direct-map page table, one page walk, one pfn_to_mfn, one
 * frame's metadata and one first-touched page cost in this emulator, against the same-run baseline.
 * Multiplied by the counts of a figure-2 run they account for its wall time.
 *
 *   npx tsx scripts/migration-unit-costs.ts [--gib 16] [--ops 20000] [--seed 1] [--json]
 *
 * A `linear` x86_64 guest of --gib GiB is built and booted; --ops distinct free pfns, never touched
 * (no direct-map PTE yet, as almost every pfn of a large guest), are drawn with the seeded PRNG, then
 * ballooned out, in, out and in again. Hypercalls are timed by number through a wrapper on this
 * Xen instance (about 0.1 us of the figures is the wrapper's own).
 */

import { X86_64 } from '../abi/index.js';
import { buildDomain } from '../xen-emu/builder.js';
import { Xen } from '../xen-emu/xen.js';
import { Machine } from '../xen-emu/machine.js';
import { PvGuest, PageUse, parseGuestVariant, startInfoFlagsFor, type Operation } from '../guest-emu/index.js';
import { measureBaseline } from '../bench/baseline.js';

function fail(message: string): never {
  console.error(`migration-unit-costs: ${message}`);
  process.exit(2);
}

function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) fail(`--${name} needs a positive number, got ${process.argv[i + 1] ?? 'nothing'}`);
  return v;
}

for (const a of process.argv.slice(2)) {
  if (a.startsWith('--') && !['--gib', '--ops', '--seed', '--json'].includes(a)) fail(`unknown option ${a} (options: --gib N, --ops N, --seed N, --json)`);
}
const gib = numberArg('gib', 16);
const ops = Math.floor(numberArg('ops', 20000));
const seed = Math.floor(numberArg('seed', 1)) >>> 0;
const json = process.argv.includes('--json');
const pages = Math.round(gib * 262144);
if (ops * 4 > pages) fail(`--ops ${ops} is too many for a ${gib} GiB guest (at most a quarter of its ${pages} pages)`);

/** mulberry32: a small seeded PRNG (the draw only has to be repeatable). */
function prng(s: number): () => number {
  let a = s;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function finish<T>(op: Operation<T>): T {
  for (;;) {
    const r = op.next();
    if (r.done) return r.value;
  }
}

const HYPERCALL_NAMES: Record<number, string> = { 1: 'mmu_update', 12: 'memory_op', 14: 'update_va_mapping', 26: 'mmuext_op' };

const xen = new Xen({ maxPage: pages + 2 ** 16 });
const built = buildDomain(xen, { abi: X86_64, memoryPages: pages, maxPages: pages + 4096, flags: startInfoFlagsFor('linear') });
const g = PvGuest.start(built, xen, { variant: parseGuestVariant('linear') });

// Every hypercall of this Xen, timed by number.
const hypercallStats = new Map<number, { calls: number; ms: number }>();
const untimed = xen.hypercall.bind(xen);
xen.hypercall = (domid: number, nr: number, ...args: bigint[]): bigint => {
  const t = performance.now();
  try {
    return untimed(domid, nr, ...args);
  } finally {
    const s = hypercallStats.get(nr) ?? { calls: 0, ms: 0 };
    s.calls++;
    s.ms += performance.now() - t;
    hypercallStats.set(nr, s);
  }
};

interface Row {
  readonly what: string;
  readonly count: number;
  /** Microseconds per unit, wall. */
  readonly us: number;
  /** Of which inside hypercalls, per unit. */
  readonly xenUs?: number;
  /** Hypercalls per unit, by name. */
  readonly hypercalls?: Record<string, number>;
}
const rows: Row[] = [];

function measure(what: string, count: number, body: () => void): void {
  hypercallStats.clear();
  const t = performance.now();
  body();
  const ms = performance.now() - t;
  let xenMs = 0;
  const hypercalls: Record<string, number> = {};
  for (const [nr, s] of hypercallStats) {
    xenMs += s.ms;
    hypercalls[HYPERCALL_NAMES[nr] ?? `#${nr}`] = s.calls / count;
  }
  rows.push({ what, count, us: (ms * 1000) / count, ...(hypercallStats.size > 0 ? { xenUs: (xenMs * 1000) / count, hypercalls } : {}) });
}

// The pfns: distinct, free, without a direct-map PTE. A quarter more are drawn for a warm-up round
// (the JIT's compilations would otherwise land in the first measurement).
const random = prng(seed);
const warmCount = Math.ceil(ops / 4);
const drawn = new Set<number>();
for (let tries = 0; drawn.size < ops + warmCount && tries < ops * 100; tries++) {
  const pfn = Math.floor(random() * pages);
  if (g.pages.use(pfn) === PageUse.Free && !g.pages.isMapped(pfn)) drawn.add(pfn);
}
if (drawn.size < ops + warmCount) fail(`found only ${drawn.size} untouched free pfns`);
const all = [...drawn];

/** Balloons `pfns` out (untouched), in, out (mapped) and in again; measured unless `warmUp`. Returns the pfns that went out. */
function balloonRounds(pfns: readonly number[], warmUp: boolean): number[] {
  const run = (what: string, count: number, body: () => void): void => (warmUp ? body() : measure(what, count, body));
  run('balloon out, untouched page (direct-map PTE, and for some its PTE page, made first)', pfns.length, () => {
    for (const pfn of pfns) if (g.pages.use(pfn) === PageUse.Free) finish(g.balloonOut(pfn));
  });
  const out = pfns.filter((pfn) => g.pages.use(pfn) === PageUse.Ballooned);
  run('balloon in (populate_physmap, p2m store, direct-map PTE)', out.length, () => {
    for (const pfn of out) finish(g.balloonIn(pfn));
  });
  run("balloon out, mapped page (Linux's case: scrub, zap, p2m store, decrease)", out.length, () => {
    for (const pfn of out) finish(g.balloonOut(pfn));
  });
  run('balloon in, again', out.length, () => {
    for (const pfn of out) finish(g.balloonIn(pfn));
  });
  return out;
}
balloonRounds(all.slice(ops), true);
const pfns = all.slice(0, ops);
const out = balloonRounds(pfns, false);
const newTables = rows[0]!.hypercalls?.['mmuext_op'] ?? 0;

// New direct-map PTE pages on their own: 2 MiB regions nobody has touched.
const regionSet = new Set<bigint>();
for (let tries = 0; regionSet.size < Math.min(5000, ops / 4) && tries < ops * 100; tries++) {
  const va = g.mm.directVa(Math.floor(random() * (pages / 512)) * 512);
  if (g.mm.tableAt(1, va) === undefined) regionSet.add(va);
}
const regions = [...regionSet];
measure('new direct-map PTE page (ensureTable: alloc, kmap, zero, kunmap, pin L1, link)', regions.length, () => {
  for (const va of regions) finish(g.mm.ensureTable(1, va));
});

// Page walks and pfn_to_mfn at random over the guest (the mapped pfns from above).
const dom = g.binding.dom;
const vas = out.map((pfn) => g.mm.directVa(pfn));
let sink = 0;
const REPEAT = 5;
measure('page walk (Xen translate of a random direct-map VA)', vas.length * REPEAT, () => {
  for (let r = 0; r < REPEAT; r++) for (const va of vas) sink += xen.translate(dom, va)?.offset ?? 1;
});
measure('pfn_to_mfn of a random pfn (a load through the linear p2m list)', out.length * REPEAT, () => {
  for (let r = 0; r < REPEAT; r++) for (const pfn of out) sink += Number(g.mfnOf(pfn) & 1n);
});

// One frame's metadata (owner, m2p, type, stamp), in bulk as the saver and the verifier read it.
const machine: Machine = xen.machine;
const BATCH = 1024;
const mfns = new Float64Array(BATCH);
const infos = new Uint8Array(BATCH);
const m2ps = new Uint32Array(BATCH);
const stamps = new Uint32Array(BATCH);
const materialised = new Uint8Array(BATCH);
const frames = Math.floor(pages / BATCH) * BATCH;
for (let pass = 0; pass < 2; pass++) {
  // The first pass warms the code; the second is measured.
  const body = (): void => {
    for (let base = 0; base < frames; base += BATCH) {
      for (let i = 0; i < BATCH; i++) mfns[i] = base + i;
      machine.ownedFramesInto(dom.domid, mfns, BATCH, infos, m2ps, stamps, materialised);
      sink += m2ps[0]!;
    }
  };
  if (pass === 0) body();
  else measure('frame metadata in bulk (ownedFramesInto, batches of 1024)', frames, body);
}

// 4 KiB stores into memory never touched before (a restored page's first bytes) and into the same memory again.
const SLAB = 64 << 20;
const page = new Uint8Array(4096).fill(0xa5);
const fresh = new Uint8Array(new ArrayBuffer(SLAB));
measure('4 KiB store into fresh memory (first touch)', SLAB / 4096, () => {
  for (let at = 0; at < SLAB; at += 4096) fresh.set(page, at);
});
measure('4 KiB store into touched memory', SLAB / 4096, () => {
  for (let at = 0; at < SLAB; at += 4096) fresh.set(page, at);
});

// A dependent random 4-byte read in a small and in a large array: what a cache and TLB miss costs
// here (the emulator's state is gigabytes at 512 GiB, and a guest operation touches it at random).
for (const mib of [16, 2048]) {
  const words = new Uint32Array((mib * 2 ** 20) / 4);
  // A random cycle through the array, so that every read depends on the one before.
  const next = prng(seed ^ mib);
  for (let i = 0; i < words.length; i++) words[i] = Math.floor(next() * words.length);
  const READS = 2_000_000;
  let at = 0;
  for (let i = 0; i < 100_000; i++) at = words[at]!;
  measure(`dependent random 4-byte read in a ${mib} MiB array`, READS, () => {
    for (let i = 0; i < READS; i++) at = words[at]!;
  });
  sink += at;
}

const baseline = measureBaseline(pages, 5);
if (sink === 0.5) console.log(''); // keeps the measured loops' results alive

if (json) {
  console.log(JSON.stringify({ gib, pages, ops, seed, newTablesPerUntouchedBalloonOut: newTables, baselineNsPerEntry: baseline.totalNs, rows }));
} else {
  console.log(`linear x86_64 guest of ${gib} GiB (${pages} pages); ${ops} untouched pfns drawn with seed ${seed} (replay: npx tsx scripts/migration-unit-costs.ts --gib ${gib} --ops ${ops} --seed ${seed})`);
  console.log(`${(100 * newTables).toFixed(0)}% of the balloon-outs of untouched pages made a new direct-map PTE page`);
  console.log(`baseline: scan + copy of one 8-byte entry ${baseline.totalNs.toFixed(2)} ns`);
  for (const r of rows) {
    const per = r.us >= 1 ? `${r.us.toFixed(2)} us` : `${(r.us * 1000).toFixed(1)} ns`;
    const ratio = r.us < 1 ? ` (${((r.us * 1000) / baseline.totalNs).toFixed(1)}x baseline)` : '';
    const inXen = r.xenUs === undefined ? '' : `; in hypercalls ${r.xenUs.toFixed(2)} us: ${Object.entries(r.hypercalls ?? {}).map(([name, n]) => `${n.toFixed(2)} ${name}`).join(', ')}`;
    console.log(`  ${r.what}: ${per}${ratio} each, ${r.count} measured${inXen}`);
  }
}
