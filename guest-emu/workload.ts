/**
 * A seeded workload: rounds of guest operations mixed at configurable rates, as one party for the
 * scheduler (xen-emu/scheduler.ts). A rate is the expected number of operations of that kind per
 * round: `balloon=1%` is one balloon operation every hundred rounds on average, `writes=2.5` two
 * or three data writes every round. Every choice (which pfn, which direction, which order) comes
 * from the workload's own `Rng`, so one seed replays the same run.
 *
 * Operations: `balloon` (out, or back in when the balloon holds pages and max_pages allows),
 * `exchange` (a 2^1..2^maxExchangeOrder page region made machine-contiguous), `grants` (share a
 * page with the peer guest in either direction, or end such a share), `growth` (hotplug one leaf's
 * worth of pfns above the guest's memory, then populate its first pfn, which grows the p2m: a new
 * leaf, and at the start of a new mid range a new PTE page and mid page, and max_pfn raised),
 * `writes` (ordinary data writes), `relayout` (legacy-tree only: a completely new tree).
 *
 * The guest stops only between operations: when asked to suspend (`requestSuspend`), the workload
 * runs the guest's suspend at its next quiescent point and returns.
 */

import { Rng } from '../xen-emu/rng.js';
import { balloonIn, balloonOut } from './balloon.js';
import { GuestStateError, WorkloadSpecError } from './errors.js';
import { shareGrant, unshareGrant, type SharedGrant } from './grants.js';
import type { PvGuest } from './guest.js';
import { PageUse } from './page-state.js';
import type { Operation } from './steps.js';

export const WORKLOAD_OPS = ['balloon', 'exchange', 'grants', 'growth', 'writes', 'relayout'] as const;
export type WorkloadOp = (typeof WORKLOAD_OPS)[number];

/** Expected operations of each kind per round. */
export type WorkloadRates = Readonly<Record<WorkloadOp, number>>;

export const NO_OPERATIONS: WorkloadRates = Object.freeze({ balloon: 0, exchange: 0, grants: 0, growth: 0, writes: 0, relayout: 0 });

function isWorkloadOp(key: string): key is WorkloadOp {
  return (WORKLOAD_OPS as readonly string[]).includes(key);
}

/**
 * Parses `balloon=1%,exchange=0.1%,writes=50%` (or bare numbers: operations per round). Keys not
 * named are 0; the empty string names none. Bad input is a one-line WorkloadSpecError naming the
 * valid keys.
 */
export function parseWorkloadRates(spec: string): WorkloadRates {
  const rates: Record<WorkloadOp, number> = { ...NO_OPERATIONS };
  const seen = new Set<string>();
  const valid = `valid keys: ${WORKLOAD_OPS.join(', ')}; values like 1% or 0.5 (operations per round)`;
  for (const raw of spec.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    const key = (eq < 0 ? item : item.slice(0, eq)).trim();
    if (!isWorkloadOp(key)) throw new WorkloadSpecError(`workload "${spec}": unknown operation "${key}"; ${valid}`);
    if (eq < 0) throw new WorkloadSpecError(`workload "${spec}": "${item}" has no rate (write ${key}=1%); ${valid}`);
    if (seen.has(key)) throw new WorkloadSpecError(`workload "${spec}": ${key} given twice; ${valid}`);
    seen.add(key);
    const text = item.slice(eq + 1).trim();
    const m = /^(\d+(?:\.\d+)?|\.\d+)(%?)$/.exec(text);
    if (!m) throw new WorkloadSpecError(`workload "${spec}": rate "${text}" of ${key} is not a number >= 0; ${valid}`);
    const value = Number(m[1]) / (m[2] === '%' ? 100 : 1);
    if (!Number.isFinite(value) || value > 1e6) throw new WorkloadSpecError(`workload "${spec}": rate ${text} of ${key} is out of range; ${valid}`);
    rates[key] = value;
  }
  return Object.freeze(rates);
}

/** The canonical string of a rate table (percentages), which parses back to the same rates. */
export function formatWorkloadRates(rates: WorkloadRates): string {
  return WORKLOAD_OPS.filter((k) => rates[k] > 0)
    .map((k) => `${k}=${+(rates[k] * 100).toPrecision(12)}%`)
    .join(',');
}

export interface WorkloadOptions {
  /** A rate table or its string form. */
  readonly rates: WorkloadRates | string;
  readonly seed: number;
  /** The other guest grants go to and come from; required when `grants` > 0. */
  readonly peer?: PvGuest;
  /** Most pages shared with the peer at once (default 8). */
  readonly maxSharedGrants?: number;
  /** Largest exchange order (default 3: 8 pages; at most 9). */
  readonly maxExchangeOrder?: number;
  /**
   * Pfns growth may hotplug above the guest's memory and max_pages (default four mid ranges of
   * the tree: 4 GiB of x86_64 guest memory, 16 GiB of x86_32), as Linux's hotplug limit bounds it.
   */
  readonly maxGrowthPfns?: number;
}

export interface WorkloadStats {
  rounds: number;
  steps: number;
  /** Operations done by kind (a growth counts once however many balloon steps it took). */
  readonly operations: Record<WorkloadOp, number>;
  /** Operations that could not be done (no free region, no headroom, p2m area full), by kind. */
  readonly skipped: Record<WorkloadOp, number>;
  suspended: boolean;
}

export class Workload {
  readonly rng: Rng;
  readonly rates: WorkloadRates;
  readonly stats: WorkloadStats;
  private readonly maxSharedGrants: number;
  private readonly maxExchangeOrder: number;
  /** Next pfn growth hotplugs at. */
  private growthCursor: number;
  /** Growth never hotplugs at or above this pfn. */
  private readonly growthEnd: number;

  constructor(
    readonly guest: PvGuest,
    private readonly options: WorkloadOptions,
  ) {
    this.rates = typeof options.rates === 'string' ? parseWorkloadRates(options.rates) : options.rates;
    for (const k of WORKLOAD_OPS) {
      const v = this.rates[k];
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new WorkloadSpecError(`rate of ${k} is ${String(v)}, not a number >= 0; valid keys: ${WORKLOAD_OPS.join(', ')}`);
    }
    if (this.rates.grants > 0 && !options.peer) throw new WorkloadSpecError(`grants=${this.rates.grants} needs a peer guest to share pages with`);
    if (this.rates.relayout > 0 && guest.personality !== 'legacy-tree') {
      throw new WorkloadSpecError(`relayout=${this.rates.relayout} applies to legacy-tree guests only; this one is ${guest.personality}`);
    }
    this.maxSharedGrants = options.maxSharedGrants ?? 8;
    this.maxExchangeOrder = options.maxExchangeOrder ?? 3;
    if (!Number.isInteger(this.maxExchangeOrder) || this.maxExchangeOrder < 1 || this.maxExchangeOrder > 9) {
      throw new WorkloadSpecError(`maxExchangeOrder ${this.maxExchangeOrder} is not an integer in [1, 9]`);
    }
    this.rng = new Rng(options.seed);
    const zero = (): Record<WorkloadOp, number> => ({ ...NO_OPERATIONS });
    this.stats = { rounds: 0, steps: 0, operations: zero(), skipped: zero(), suspended: false };
    const fpp = guest.list.fpp;
    this.growthCursor = Math.ceil(Math.max(guest.maxPages, guest.nrPages, guest.pages.end) / fpp) * fpp;
    const maxGrowth = options.maxGrowthPfns ?? 4 * fpp * fpp;
    if (!Number.isInteger(maxGrowth) || maxGrowth < 0) throw new WorkloadSpecError(`maxGrowthPfns ${maxGrowth} is not an integer >= 0`);
    this.growthEnd = Math.min(this.growthCursor + maxGrowth, guest.list.areaPfns, 2 ** 32 - 1);
  }

  /**
   * The workload as a party: `rounds` rounds (default: until suspended). Each yield is one atomic
   * step of the guest; an idle round yields one step that does nothing.
   */
  *run(rounds = Infinity): Generator<string, WorkloadStats, undefined> {
    const g = this.guest;
    if (g.suspended) throw new GuestStateError(`workload on suspended domain ${g.domid}`);
    for (let r = 0; r < rounds; r++) {
      let ops = 0;
      for (const op of WORKLOAD_OPS) {
        const rate = this.rates[op];
        if (rate === 0) continue;
        const count = Math.floor(rate) + (this.rng.chance(rate - Math.floor(rate)) ? 1 : 0);
        for (let i = 0; i < count; i++) {
          if (g.suspendRequested) return yield* this.suspend();
          ops++;
          this.stats.steps += yield* counted(this.one(op));
        }
      }
      this.stats.rounds++;
      if (ops === 0) {
        this.stats.steps++;
        yield 'idle';
      }
      if (g.suspendRequested) return yield* this.suspend();
    }
    return this.stats;
  }

  private *suspend(): Generator<string, WorkloadStats, undefined> {
    this.stats.steps += yield* counted(this.guest.suspend());
    this.stats.suspended = true;
    return this.stats;
  }

  private *one(op: WorkloadOp): Operation {
    const done = yield* this.dispatch(op);
    if (done) this.stats.operations[op]++;
    else this.stats.skipped[op]++;
  }

  private dispatch(op: WorkloadOp): Operation<boolean> {
    switch (op) {
      case 'balloon':
        return this.balloon();
      case 'exchange':
        return this.exchange();
      case 'grants':
        return this.grants();
      case 'growth':
        return this.growth();
      case 'writes':
        return this.write();
      case 'relayout':
        return this.relayout();
    }
  }

  /** A random free (ordinary) pfn of `g`, lowmem only if asked; undefined when there is none. */
  pickFree(g: PvGuest, lowmemOnly = false): number | undefined {
    const n = lowmemOnly ? g.pages.freeLowmemCount : g.pages.freeCount;
    return n === 0 ? undefined : g.pages.freeAt(this.rng.below(n), lowmemOnly);
  }

  /**
   * A random pfn of the balloon list; for a grant mapping (`forMapping`) only a lowmem one whose
   * p2m leaf is a real page, so that mapping it never grows another guest's p2m behind its back.
   */
  private pickBallooned(g: PvGuest, forMapping: boolean): number | undefined {
    const n = g.pages.balloonSize;
    if (n === 0) return undefined;
    const start = this.rng.below(n);
    for (let i = 0; i < Math.min(n, 64); i++) {
      const pfn = g.pages.balloonAt((start + i) % n);
      if (!forMapping || (g.mm.isLowmem(pfn) && g.list.leafPfn[g.list.leafIndex(pfn)]! >= 0)) return pfn;
    }
    return undefined;
  }

  private *balloon(): Operation<boolean> {
    const g = this.guest;
    const canIn = g.pages.balloonSize > 0 && g.currentPages < g.maxPages;
    if (canIn && this.rng.chance(0.5)) {
      const pfn = this.pickBallooned(g, false)!;
      return yield* g.balloonIn(pfn);
    }
    const pfn = this.pickFree(g);
    if (pfn === undefined) return false;
    yield* g.balloonOut(pfn);
    return true;
  }

  private *exchange(): Operation<boolean> {
    const g = this.guest;
    const order = 1 + this.rng.below(this.maxExchangeOrder);
    const n = 2 ** order;
    for (let tries = 0; tries < 16; tries++) {
      const first = this.pickFree(g, true);
      if (first === undefined) return false;
      let ok = true;
      for (let pfn = first; pfn < first + n && ok; pfn++) ok = g.pages.use(pfn) === PageUse.Free && g.mm.isLowmem(pfn);
      if (ok) return yield* g.exchange(first, order);
    }
    return false;
  }

  private *write(): Operation<boolean> {
    const g = this.guest;
    const pfn = this.pickFree(g);
    if (pfn === undefined) return false;
    yield* g.writePage(pfn, this.rng.u32());
    return true;
  }

  private *relayout(): Operation<boolean> {
    yield* this.guest.relayoutTree();
    return true;
  }

  /** Hotplug one leaf's worth of pfns, then populate the first (growing the p2m). */
  private *growth(): Operation<boolean> {
    const g = this.guest;
    const fpp = g.list.fpp;
    const midSpan = fpp * fpp;
    // Now and then start a fresh mid range: a new PTE page and, with a tree, a new mid page.
    // A jump keeps a mid range's worth of room for the sequential growth after it.
    const jump = Math.ceil(this.growthCursor / midSpan) * midSpan;
    let first = this.rng.chance(1 / 8) && jump + midSpan <= this.growthEnd ? jump : this.growthCursor;
    while (first + fpp <= this.growthEnd && g.list.identityRanges.some((r) => r.start < first + fpp && r.end > first)) first += fpp;
    if (first + fpp > this.growthEnd) {
      yield 'growth: the hotplug limit is reached';
      return false;
    }
    this.growthCursor = first + fpp;
    yield* g.hotplug(first, fpp);
    return yield* g.operation('growth', this.populateGrown(first));
  }

  /** Populates hotplugged `pfn`, ballooning out a page first when the guest is at max_pages. */
  private *populateGrown(pfn: number): Operation<boolean> {
    const g = this.guest;
    if (g.currentPages >= g.maxPages) {
      const out = this.pickFree(g);
      if (out === undefined) return false;
      yield* balloonOut(g, out);
    }
    return yield* balloonIn(g, pfn);
  }

  private *grants(): Operation<boolean> {
    const g = this.guest;
    const peer = this.options.peer!;
    const shared: SharedGrant[] = [...g.grants.given.values(), ...g.grants.mapped.values()];
    if (shared.length > 0 && (shared.length >= this.maxSharedGrants || this.rng.chance(0.5))) {
      const s = shared[this.rng.below(shared.length)]!;
      yield* g.operation('grant-end', unshareGrant(s));
      return true;
    }
    const asBackend = this.rng.chance(0.5);
    return yield* g.operation(asBackend ? 'grant-map' : 'grant-access', asBackend ? this.share(peer, g, undefined) : this.share(g, peer, this.rng.u32()));
  }

  /** Shares a random free page of `granter` with `grantee` (which writes it when `stamp` is given). */
  private *share(granter: PvGuest, grantee: PvGuest, stamp: number | undefined): Operation<boolean> {
    // alloc_xenballooned_pages: take a ballooned page, or balloon one out for the purpose.
    let granteePfn = this.pickBallooned(grantee, true);
    if (granteePfn === undefined) {
      const out = this.pickFree(grantee, true);
      if (out === undefined) return false;
      yield* balloonOut(grantee, out, true);
      granteePfn = out;
    }
    // Picked only now: the other guest may have used its pages while the balloon driver ran.
    const granterPfn = this.pickFree(granter);
    if (granterPfn === undefined) {
      if (grantee.pages.use(granteePfn) === PageUse.Transit) grantee.pages.setUse(granteePfn, PageUse.Ballooned);
      return false;
    }
    return (yield* shareGrant(granter, grantee, granterPfn, granteePfn, stamp)) !== undefined;
  }
}

/** Runs an operation inside a party, counting its steps. */
function* counted(op: Operation<unknown>): Generator<string, number, undefined> {
  let n = 0;
  for (;;) {
    const r = op.next();
    if (r.done) return n;
    n++;
    yield r.value;
  }
}
