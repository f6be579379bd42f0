/**
 * What a conformance scenario is: metadata (an id to grep for, a title, what it exercises, the
 * hazard or seed paragraph it encodes) and a driver that times guest operations against the save
 * (conformance/migration.ts `driver`). Scenarios hold no state of their own: every run gets a
 * fresh driver generator, whose state lives in its closure.
 */

import type { DriverWorld } from '../migration.js';
import type { PvGuest } from '../../guest-emu/guest.js';
import type { Personality } from '../../guest-emu/variants.js';
import { PageUse } from '../../guest-emu/page-state.js';

export interface ScenarioMeta {
  /** e.g. `balloon-steady`: stable, results are compared by it. */
  readonly id: string;
  readonly title: string;
  /** What the guest does, and when, against the save. */
  readonly exercises: string;
  /** The hazard (reference §1.9 row) or seed mail paragraph it encodes. */
  readonly hazard: string;
}

export interface ScenarioRun {
  /** Remus/COLO checkpoints (0: a plain live migration). */
  readonly checkpoints?: number;
  /** Scrub before balloon out (default: the guest's own default, Linux's true). */
  readonly scrub?: boolean;
  /** Scheduler steps one PAGE_DATA batch takes (default DEFAULT_STEPS_PER_BATCH): how much the guest does meanwhile. */
  readonly stepsPerBatch?: number;
  readonly driver: (world: DriverWorld) => Generator<string, void, undefined>;
  /** The driver uses `world.peer` (the grant peer guest); only then is it booted. */
  readonly peer?: boolean;
}

/**
 * A 1024-pfn batch takes this many steps, so that the guest gets a few hundred steps per pass of
 * a 16 MiB guest: room for its operations to land in the live passes, not only in the first.
 */
export const DEFAULT_STEPS_PER_BATCH = 64;

export interface Scenario extends ScenarioMeta {
  /** Why the scenario does not apply to a guest of this personality (SKIP), or undefined. */
  skipReason?(personality: Personality): string | undefined;
  /** The run's options and driver. */
  run(): ScenarioRun;
}

/** Idles until `ready()` (a step each), or until the toolstack asks the guest to suspend. */
export function* waitUntil(world: DriverWorld, ready: () => boolean, label: string): Generator<string, boolean, undefined> {
  while (!ready()) {
    if (world.guest.suspendRequested) return false;
    yield `idle: ${label}`;
  }
  return true;
}

/**
 * One step between two operations. The runner suspends the guest only at a step boundary where no
 * operation is open, so a driver that starts its next operation in the same step as the last one
 * ended would never let the guest suspend.
 */
export function* between(): Generator<string, void, undefined> {
  yield 'idle: between operations';
}

/** `n` idle steps. */
export function* idle(n: number, label = 'idle'): Generator<string, void, undefined> {
  for (let i = 0; i < n; i++) yield label;
}

/** The save is past its setup: the p2m is mapped and pages are going out. */
export function saving(world: DriverWorld): boolean {
  return world.progress.phase === 'live';
}

/** A random free ordinary pfn (lowmem only if asked), or undefined. */
export function pickFree(world: DriverWorld, g: PvGuest = world.guest, lowmemOnly = false): number | undefined {
  const n = lowmemOnly ? g.pages.freeLowmemCount : g.pages.freeCount;
  return n === 0 ? undefined : g.pages.freeAt(world.rng.below(n), lowmemOnly);
}

/** A random free pfn in the upper half of the guest's memory (sent late in the full pass). */
export function pickFreeHigh(world: DriverWorld): number | undefined {
  const g = world.guest;
  for (let tries = 0; tries < 64; tries++) {
    const pfn = pickFree(world);
    if (pfn !== undefined && pfn >= g.nrPages / 2 && pfn < g.nrPages) return pfn;
  }
  return pickFree(world);
}

export function isFree(g: PvGuest, pfn: number): boolean {
  return g.pages.use(pfn) === PageUse.Free;
}

export function isBallooned(g: PvGuest, pfn: number): boolean {
  return g.pages.use(pfn) === PageUse.Ballooned;
}
