/**
 * Helpers for the save/restore tests: one migration with small-guest defaults, a one-line summary
 * of its result for failure messages, and building blocks for drivers that script the guest's
 * actions against the save's progress (conformance/migration.ts `driver`).
 */

import { X86_32, X86_64, XEN_DOMCTL_PFINFO_XTAB, type GuestAbi } from '../../../abi/index.js';
import { runMigration, type DriverWorld, type MigrationOptions, type MigrationResult } from '../../../conformance/migration.js';
import type { PvGuest } from '../../../guest-emu/guest.js';
import { PageUse } from '../../../guest-emu/page-state.js';
import type { StrategyName } from '../../../toolstack/save.js';

export const ABIS: readonly GuestAbi[] = [X86_64, X86_32];
export const STRATEGY_NAMES: readonly StrategyName[] = ['map-once', 'abort-on-change', 'deep-tracking'];

/**
 * Guest memory for the scripted cases: 3000 pages (~12 MiB) is not a multiple of a leaf (512 or
 * 1024 entries), so the last real leaf holds ballooned pfns [3000, 3072) and the balloon reaches
 * beyond it, where ballooning in grows the p2m (a new leaf).
 */
export const SMALL_GUEST_PAGES = 3000;

export type Driver = NonNullable<MigrationOptions['driver']>;

export interface Migrate {
  readonly abi: GuestAbi;
  readonly guest: string;
  readonly toolstack: StrategyName;
  readonly seed: number;
  readonly memoryPages?: number;
  readonly workload?: string;
  readonly driver?: Driver;
  readonly scrub?: boolean;
  readonly checkpoints?: number;
  readonly checkpointInterval?: number;
  readonly mechanisms?: MigrationOptions['mechanisms'];
  readonly stepsPerBatch?: number;
}

export function migrate(m: Migrate): MigrationResult {
  return runMigration({
    abi: m.abi,
    guest: m.guest,
    memoryPages: m.memoryPages ?? SMALL_GUEST_PAGES,
    toolstack: m.toolstack,
    workload: m.workload ?? '',
    seed: m.seed,
    ...(m.driver ? { driver: m.driver } : {}),
    ...(m.scrub !== undefined ? { scrub: m.scrub } : {}),
    ...(m.checkpoints !== undefined ? { checkpoints: m.checkpoints } : {}),
    ...(m.checkpointInterval !== undefined ? { checkpointInterval: m.checkpointInterval } : {}),
    ...(m.mechanisms ? { mechanisms: m.mechanisms } : {}),
    ...(m.stepsPerBatch !== undefined ? { stepsPerBatch: m.stepsPerBatch } : {}),
    maxSteps: 5_000_000,
  });
}

/** One line describing a result, for assertion messages (seed included). */
export function describe(r: MigrationResult): string {
  const cps = r.checkpoints.map((c) => `${c.checkpoint}:${c.differing}`).join(',');
  return (
    `seed ${r.seed}: ${r.outcome}${r.reason ? ` (${r.reason})` : ''}; rounds ${r.save.rounds}, resent_p2m ${r.save.resentP2m}, ` +
    `remaps ${r.save.remaps}, p2m_frames ${r.save.p2mFramesRecords}, differing ${r.differing}` +
    (cps ? `, checkpoints [${cps}]` : '') +
    `; ops ${JSON.stringify(r.guestOperations)}`
  );
}

/** Yields (as idle guest steps) until `cond` holds. */
export function* waitUntil(cond: () => boolean, label: string, limit = 2_000_000): Generator<string, void, undefined> {
  for (let i = 0; !cond(); i++) {
    if (i >= limit) throw new Error(`driver: gave up waiting for ${label}`);
    yield `driver: waiting for ${label}`;
  }
}

/** Free (ordinary) pfns of the guest, lowmem only if asked, in pfn order, from `from`. */
export function freePfns(g: PvGuest, count: number, options: { from?: number; lowmem?: boolean } = {}): number[] {
  const out: number[] = [];
  for (let pfn = options.from ?? 0; pfn < g.pages.end && out.length < count; pfn++) {
    if (g.pages.use(pfn) === PageUse.Free && (!options.lowmem || g.mm.isLowmem(pfn))) out.push(pfn);
  }
  if (out.length < count) throw new Error(`only ${out.length} free pfns from ${options.from ?? 0}`);
  return out;
}

/** The first free run of 2^order lowmem pfns at or above `from`, aligned to its size. */
export function freeRun(g: PvGuest, order: number, from = 0): number {
  const n = 2 ** order;
  for (let first = Math.ceil(from / n) * n; first + n <= g.pages.end; first += n) {
    let ok = true;
    for (let pfn = first; pfn < first + n && ok; pfn++) ok = g.pages.use(pfn) === PageUse.Free && g.mm.isLowmem(pfn);
    if (ok) return first;
  }
  throw new Error(`no free run of ${n} lowmem pfns from ${from}`);
}

/** Ballooned pfns of the guest in [from, to). */
export function balloonedPfns(g: PvGuest, from: number, to: number): number[] {
  const out: number[] = [];
  for (let pfn = from; pfn < to && pfn < g.pages.end; pfn++) if (g.pages.use(pfn) === PageUse.Ballooned) out.push(pfn);
  return out;
}

/** Whether the save sent `pfn` last as XTAB. */
export function sentAsXtab(w: DriverWorld, pfn: number): boolean {
  return w.progress.lastSentType(pfn) === XEN_DOMCTL_PFINFO_XTAB;
}

/** Gives every page in `pfns` distinct contents, so that a page sent for another shows. */
export function* stampPages(g: PvGuest, pfns: readonly number[], salt: number): Generator<string, void, undefined> {
  for (const pfn of pfns) yield* g.writePage(pfn, (0x5eed0000 + salt * 0x1000 + pfn) >>> 0);
}
