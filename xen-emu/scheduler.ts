/**
 * A deterministic, seeded interleaver of parties (design decision 4). A party is an iterator of
 * atomic steps: each call of its `next()` performs exactly one step (one store into guest memory,
 * one hypercall, one toolstack action) and returns that step's label. A generator function is the
 * natural way to write one: the code between two `yield`s is the step, and the yielded string
 * says what it was.
 *
 * The scheduler picks which party steps next with the `Rng` it was given, weighted per party, so
 * that any interleaving, down to a single store, is reproduced from the seed. It can also run one
 * party alone, and it records a trace of (party, label) for replay and diagnosis.
 *
 * Nothing here knows about guests or toolstacks: `xen-emu` is the layer both import.
 */

import type { Rng } from './rng.js';

/** What a party's `next()` yields: a short description of the step it just performed. */
export type StepLabel = string;

/** One party: its steps, and the result it returns when it has none left. */
export type PartySteps = Iterator<StepLabel, unknown, undefined>;

/** Bad use of the scheduler: unknown or duplicate parties, impossible weights. */
export class SchedulerError extends Error {
  override name = 'SchedulerError';
}

export interface PartyOptions {
  /**
   * Relative chance of being picked by `step()` (default 1). 0 keeps the party out of random
   * picks; `runAlone` still runs it.
   */
  readonly weight?: number;
}

/** One step as the trace records it. */
export interface TraceEntry {
  /** 0 for the first step the scheduler ever ran. */
  readonly index: number;
  readonly party: string;
  readonly label: StepLabel;
}

export interface SchedulerOptions {
  /**
   * Most trace entries kept (default 100000): the oldest are dropped beyond it, so long runs stay
   * bounded. 0 keeps none.
   */
  readonly traceLimit?: number;
}

interface PartyState {
  readonly name: string;
  readonly steps: PartySteps;
  weight: number;
  done: boolean;
  result: unknown;
  stepsTaken: number;
}

function checkWeight(name: string, weight: number): number {
  if (!Number.isFinite(weight) || weight < 0) throw new SchedulerError(`party ${name}: weight ${weight} is not a finite number >= 0`);
  return weight;
}

export class Scheduler {
  private readonly parties: PartyState[] = [];
  private readonly entries: TraceEntry[] = [];
  private readonly traceLimit: number;
  private traceStart = 0;
  private taken = 0;

  constructor(
    /** The source of every choice; its seed replays the interleaving. */
    private readonly rng: Rng,
    options: SchedulerOptions = {},
  ) {
    const limit = options.traceLimit ?? 100_000;
    if (!Number.isInteger(limit) || limit < 0) throw new SchedulerError(`traceLimit ${limit} is not an integer >= 0`);
    this.traceLimit = limit;
  }

  /** Adds a party under a unique name. */
  add(name: string, steps: PartySteps, options: PartyOptions = {}): void {
    if (this.parties.some((p) => p.name === name)) throw new SchedulerError(`party ${name} already added`);
    this.parties.push({ name, steps, weight: checkWeight(name, options.weight ?? 1), done: false, result: undefined, stepsTaken: 0 });
  }

  /** Removes a party (finished or not); its iterator is not resumed again. */
  remove(name: string): void {
    const i = this.parties.findIndex((p) => p.name === name);
    if (i < 0) throw new SchedulerError(`no party ${name}; parties: ${this.names().join(', ') || 'none'}`);
    this.parties.splice(i, 1);
  }

  setWeight(name: string, weight: number): void {
    this.party(name).weight = checkWeight(name, weight);
  }

  has(name: string): boolean {
    return this.parties.some((p) => p.name === name);
  }

  /** Whether the party has returned (its iterator is exhausted). */
  isDone(name: string): boolean {
    return this.party(name).done;
  }

  /** What the party's iterator returned, once done. */
  resultOf(name: string): unknown {
    return this.party(name).result;
  }

  /** Steps the party has taken so far. */
  stepsOf(name: string): number {
    return this.party(name).stepsTaken;
  }

  names(): string[] {
    return this.parties.map((p) => p.name);
  }

  /** Steps taken by all parties since construction. */
  get stepsTaken(): number {
    return this.taken;
  }

  /** The kept trace, oldest first (see `traceLimit`). */
  get trace(): readonly TraceEntry[] {
    return this.entries;
  }

  /** Index of the oldest kept trace entry (entries before it were dropped). */
  get traceOffset(): number {
    return this.traceStart;
  }

  /**
   * One step of a party picked at random, weighted, among those not done and with weight > 0.
   * Undefined when no party can be picked. A party found exhausted uses up the pick without a
   * step being recorded.
   */
  step(): TraceEntry | undefined {
    let total = 0;
    for (const p of this.parties) if (!p.done && p.weight > 0) total += p.weight;
    if (total === 0) return undefined;
    let x = (this.rng.u32() / 2 ** 32) * total;
    let chosen: PartyState | undefined;
    for (const p of this.parties) {
      if (p.done || p.weight <= 0) continue;
      chosen = p;
      x -= p.weight;
      if (x < 0) break;
    }
    return this.advance(chosen!);
  }

  /** Runs `name` alone until it is done or took `maxSteps` steps; returns the steps taken. */
  runAlone(name: string, maxSteps = Infinity): number {
    const p = this.party(name);
    let n = 0;
    while (n < maxSteps && !p.done) if (this.advance(p)) n++;
    return n;
  }

  /**
   * Interleaves parties with `step()` until none can be picked, `maxSteps` steps were taken, or
   * `until()` (checked before each step) says stop. Returns the steps taken.
   */
  run(maxSteps = Infinity, until?: () => boolean): number {
    let n = 0;
    while (n < maxSteps && !(until?.() ?? false)) {
      const before = this.taken;
      const e = this.step();
      if (e === undefined && !this.parties.some((p) => !p.done && p.weight > 0)) break;
      if (this.taken > before) n++;
    }
    return n;
  }

  private party(name: string): PartyState {
    const p = this.parties.find((x) => x.name === name);
    if (!p) throw new SchedulerError(`no party ${name}; parties: ${this.names().join(', ') || 'none'}`);
    return p;
  }

  private advance(p: PartyState): TraceEntry | undefined {
    const r = p.steps.next();
    if (r.done) {
      p.done = true;
      p.result = r.value;
      return undefined;
    }
    const entry: TraceEntry = { index: this.taken, party: p.name, label: r.value };
    this.taken++;
    p.stepsTaken++;
    if (this.traceLimit > 0) {
      this.entries.push(entry);
      if (this.entries.length > this.traceLimit) {
        // Drop in blocks so a full trace does not cost a shift per step.
        const drop = Math.max(1, this.traceLimit >> 4);
        this.entries.splice(0, drop);
        this.traceStart += drop;
      }
    }
    return entry;
  }
}
