/**
 * The matrix: which cells a run has (guests × toolstacks × scenarios × ABIs × repeats), in a fixed
 * order, and the deterministic slice `--shard I/N` takes of it. A cell's seed depends only on the
 * run's seed and the repeat, never on the cell's position, so a narrowed run (the replay command)
 * gives a cell the same seed it had in the full matrix.
 */

import { ARCHES, type Arch, type CellSpec } from './cell.js';
import { SCENARIO_IDS } from './scenarios/index.js';
import { BUILTIN_GUESTS, BUILTIN_TOOLSTACKS } from './subjects.js';

/** 16 MiB guests: the whole built-in matrix fits in the 60 s budget on two cores (docs/performance.md figure 4). */
export const DEFAULT_MEMORY_PAGES = 4096;
export const DEFAULT_SEED = 1;

export interface MatrixSelection {
  readonly guests: readonly string[];
  readonly toolstacks: readonly string[];
  readonly scenarios: readonly string[];
  readonly arches: readonly Arch[];
  readonly memoryPages: number;
  readonly seed: number;
  readonly repeat: number;
  /** 1-based shard index and shard count. */
  readonly shard?: { readonly index: number; readonly count: number };
  readonly record?: string;
}

export function defaultSelection(): MatrixSelection {
  return {
    guests: BUILTIN_GUESTS,
    toolstacks: BUILTIN_TOOLSTACKS,
    scenarios: SCENARIO_IDS,
    arches: ARCHES,
    memoryPages: DEFAULT_MEMORY_PAGES,
    seed: DEFAULT_SEED,
    repeat: 1,
  };
}

/** Every cell of the selection, before sharding: guest, toolstack, scenario, ABI, repeat order. */
export function allCells(sel: MatrixSelection): CellSpec[] {
  const cells: CellSpec[] = [];
  for (const guest of sel.guests)
    for (const toolstack of sel.toolstacks)
      for (const scenario of sel.scenarios)
        for (const arch of sel.arches)
          for (let r = 0; r < sel.repeat; r++)
            cells.push({ scenario, arch, guest, toolstack, memoryPages: sel.memoryPages, seed: sel.seed + r, ...(sel.record ? { record: sel.record } : {}) });
  return cells;
}

/** The cells of shard `index` of `count`: every count-th cell, starting at index - 1 (balanced, disjoint, covering). */
export function shardCells<T>(cells: readonly T[], shard: { index: number; count: number } | undefined): T[] {
  if (!shard) return [...cells];
  return cells.filter((_, i) => i % shard.count === shard.index - 1);
}

export function selectCells(sel: MatrixSelection): CellSpec[] {
  return shardCells(allCells(sel), sel.shard);
}
