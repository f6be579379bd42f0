/**
 * What every benchmark shares: the machine description, the figure record, the printed table and
 * bench/results/latest.json ({ figures: [...] }), where a run replaces only its own figures.
 */

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Figure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly machine: string;
  /** The same-run baseline this figure is compared with, in the same unit. */
  readonly baseline?: number;
  readonly ratio?: number;
  /** The target for `ratio` (at most), where the issue sets one. */
  readonly target?: number;
}

export const RESULTS_FILE = fileURLToPath(new URL('./results/latest.json', import.meta.url));

export function machine(): string {
  const cpu = cpus();
  return `${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${cpu.length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}`;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Writes `figures` into latest.json, keeping figures of other benchmarks (by name prefix). */
export function writeFigures(figures: readonly Figure[], ownPrefixes: readonly string[], file = RESULTS_FILE): void {
  let previous: Figure[] = [];
  try {
    previous = (JSON.parse(readFileSync(file, 'utf8')) as { figures?: Figure[] }).figures ?? [];
  } catch {
    previous = [];
  }
  const kept = previous.filter((f) => !ownPrefixes.some((p) => f.name.startsWith(p)));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ figures: [...kept, ...figures] }, null, 2)}\n`);
}

function fmt(n: number | undefined): string {
  if (n === undefined) return '';
  return Number.isInteger(n) ? String(n) : n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2);
}

export function table(figures: readonly Figure[]): string {
  const rows = [['figure', 'value', 'unit', 'baseline', 'ratio', 'target'], ...figures.map((f) => [f.name, fmt(f.value), f.unit, fmt(f.baseline), fmt(f.ratio), f.target === undefined ? '' : `≤ ${f.target}`])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')).join('\n');
}
