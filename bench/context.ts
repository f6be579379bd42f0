/**
 * What the runner (bench/index.ts) hands every benchmark module, and what a module gives back.
 */

import type { Baselines } from './baseline.js';
import type { Figure, Skipped } from './results.js';

export interface BenchContext {
  /** The small smoke run CI executes: fewer samples, shorter windows, no 512 GiB build. */
  readonly quick: boolean;
  readonly machine: string;
  /** The kernel BTF figure 5 reads (--file). */
  readonly btfFile: string;
  /** The same-run baselines, measured on first use for each entry count. */
  readonly baselines: Baselines;
  /** A progress line on stderr (stdout carries only the table). */
  log(line: string): void;
}

export interface BenchOutput {
  readonly figures: readonly Figure[];
  readonly skipped?: readonly Skipped[];
}

export interface BenchModule {
  /** The name `--only` takes. */
  readonly id: string;
  readonly title: string;
  /** Throws when the benchmark itself is broken (an exception, a wrong hypercall result). */
  run(ctx: BenchContext): BenchOutput | Promise<BenchOutput>;
}
