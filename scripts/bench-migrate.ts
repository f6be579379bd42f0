/**
 * One measured migration for bench figures 2 and 3, run as a child process so that its wall time
 * and peak RSS are measured from outside (bench/migration.ts runs it under /usr/bin/time -v).
 *
 *   npx tsx scripts/bench-migrate.ts size --gib 4           # figure 2: linear x86_64, deep-tracking,
 *                                                           #   1% of pages ballooned per round
 *   npx tsx scripts/bench-migrate.ts precision --mechanisms 2,3,4 --changes 64
 *                                                           # figure 3: resend precision
 *
 * Prints one JSON line. Exits 1 when the migration is not `identical` (the figure would be void).
 */

import { X86_64 } from '../abi/index.js';
import { XEN_DOMCTL_PFINFO_XTAB } from '../abi/index.js';
import { runMigration, type DriverWorld } from '../conformance/migration.js';
import type { Mechanism } from '../toolstack/save.js';
import { PageUse } from '../guest-emu/page-state.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const mode = process.argv[2];
const seed = Number(arg('seed', '1'));

if (mode === 'size') {
  const gib = Number(arg('gib', '1'));
  const pages = Math.round(gib * 262144);
  // "1% of pages ballooned per round": the guest runs one operation per workload round
  // (balloon=100%), a balloon operation takes about 5 guest steps, and the scheduler gives the guest
  // about as many steps as the toolstack, which takes STEPS_PER_BATCH steps per PAGE_DATA batch of
  // 1024 pfns. So one pass over all of memory sees pages/1024 · STEPS_PER_BATCH / 5 operations:
  // 54 gives about 1% of the pages (measured, and printed as `ballooned per pass`).
  const STEPS_PER_BATCH = 54;
  const t0 = performance.now();
  const r = runMigration({ abi: X86_64, guest: 'linear', memoryPages: pages, toolstack: 'deep-tracking', workload: 'balloon=100%', seed, stepsPerBatch: STEPS_PER_BATCH });
  const seconds = (performance.now() - t0) / 1000;
  const pfnRounds = r.save.roundLog.reduce((n, x) => n + x.pfns, 0);
  console.log(
    JSON.stringify({
      mode,
      gib,
      pages,
      outcome: r.outcome,
      reason: r.reason,
      seconds,
      rounds: r.save.rounds,
      pfnRounds,
      pagesSent: r.save.pagesSent,
      resentP2m: r.save.resentP2m,
      balloonOps: (r.guestOperations['balloon-out'] ?? 0) + (r.guestOperations['balloon-in'] ?? 0),
      // Balloon operations per pass over the guest's memory (pfn-sends / pages passes), in % of pages.
      balloonedPerPass: (100 * ((r.guestOperations['balloon-out'] ?? 0) + (r.guestOperations['balloon-in'] ?? 0))) / pages / (pfnRounds / pages),
      timings: Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [k, Math.round(v)])),
    }),
  );
  process.exit(r.outcome === 'identical' ? 0 : 1);
} else if (mode === 'precision') {
  const mechanisms = arg('mechanisms', '2,3,4')
    .split(',')
    .map(Number) as Mechanism[];
  const changes = Number(arg('changes', '64'));
  const pages = Number(arg('pages', '65536'));
  const changed = new Set<number>();
  // Scripted: during the first full pass, balloon out `changes` distinct pfns, each just after it
  // was sent as data, spread over the guest, scrub off (so logdirty does not see the pfns
  // themselves: only the p2m frames holding their entries are dirtied, and only p2m tracking can
  // resend them).
  function* driver(w: DriverWorld): Generator<string, void, undefined> {
    const stride = Math.floor(pages / (changes + 1));
    for (let k = 1; k <= changes; k++) {
      const pfn = k * stride + w.rng.below(64);
      while (!w.progress.hasSent(pfn)) yield 'waiting for the pfn to be sent';
      if (w.progress.lastSentType(pfn) === XEN_DOMCTL_PFINFO_XTAB || w.guest.pages.use(pfn) !== PageUse.Free) continue;
      yield* w.guest.balloonOut(pfn);
      changed.add(pfn);
    }
    for (;;) yield 'idle';
  }
  const r = runMigration({ abi: X86_64, guest: 'linear', memoryPages: pages, toolstack: 'deep-tracking', mechanisms, workload: '', seed, scrub: false, driver });
  console.log(JSON.stringify({ mode, mechanisms, pages, outcome: r.outcome, reason: r.reason, changed: changed.size, resentP2m: r.save.resentP2m, precision: r.save.resentP2m / Math.max(1, changed.size) }));
  process.exit(r.outcome === 'identical' ? 0 : 1);
} else {
  console.error('usage: bench-migrate.ts size --gib N | precision --mechanisms 2,3,4 --changes N [--pages N] [--seed N]');
  process.exit(2);
}
