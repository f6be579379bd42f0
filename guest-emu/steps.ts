/**
 * The step model (design decision 4): a guest operation is a generator; the code between two
 * `yield`s is one atomic step (one store into guest memory or one hypercall), and the yielded
 * string labels it. Generators compose with `yield*`, so an operation is its sub-operations'
 * steps in order. The scheduler in xen-emu/scheduler.ts interleaves such generators with other
 * parties' steps.
 */

import type { StepLabel } from '../xen-emu/scheduler.js';

/** An operation: yields one label per atomic step, returns its result. */
export type Operation<T = void> = Generator<StepLabel, T, undefined>;

/** Runs an operation to completion on its own; returns its result and how many steps it took. */
export function runOperation<T>(op: Operation<T>): { result: T; steps: number } {
  let steps = 0;
  for (;;) {
    const r = op.next();
    if (r.done) return { result: r.value, steps };
    steps++;
  }
}
