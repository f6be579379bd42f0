/**
 * What every benchmark shares: the figure record, the machine description, the median, the printed
 * table and bench/results/latest.json. Targets are reported (met or missed), never asserted: only a
 * broken benchmark fails a run.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A bound from the issue: `value` or `ratio` must be at most / at least `bound`. */
export interface Target {
  readonly of: 'value' | 'ratio';
  readonly op: '<=' | '>=';
  readonly bound: number;
}

export interface Figure {
  /** The issue's figure number ('1'…'6'), 'scale', or 'baseline'. */
  readonly figure: string;
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly machine: string;
  /** The same-run baseline this figure is compared with, in `baselineUnit` (default: `unit`). */
  readonly baseline?: number;
  readonly baselineUnit?: string;
  /** value / baseline: above 1 is slower than the baseline when the unit is a time. */
  readonly ratio?: number;
  readonly target?: Target;
  /** How it was measured, the spread of the samples, what it includes. */
  readonly detail?: string;
}

/** A figure that was not measured in this run, and why (e.g. skipped in --quick). */
export interface Skipped {
  readonly figure: string;
  readonly name: string;
  readonly reason: string;
}

export interface BenchRun {
  readonly command: string;
  readonly quick: boolean;
  readonly machine: string;
  /** os.loadavg() when the run started: other processes on the machine make figures noisy. */
  readonly loadAverage: readonly number[];
  readonly started: string;
  readonly figures: readonly Figure[];
  readonly skipped: readonly Skipped[];
  /** Figures of the issue that cannot be measured yet, with the reason (one line in the table). */
  readonly notMeasurable: { readonly figures: readonly string[]; readonly reason: string };
}

export const RESULTS_FILE = fileURLToPath(new URL('./results/latest.json', import.meta.url));

export function machine(): string {
  const cpu = cpus();
  return `${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${cpu.length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}`;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** "range 5.1–6.0" of samples, in the figure's formatting. */
export function spread(values: readonly number[]): string {
  return `range ${fmt(Math.min(...values))}–${fmt(Math.max(...values))}`;
}

/** Whether the figure meets its target; undefined when it has none (or lacks the ratio). */
export function met(f: Figure): boolean | undefined {
  if (!f.target) return undefined;
  const x = f.target.of === 'value' ? f.value : f.ratio;
  if (x === undefined) return undefined;
  return f.target.op === '<=' ? x <= f.target.bound : x >= f.target.bound;
}

export function fmt(n: number | undefined): string {
  if (n === undefined) return '';
  if (Number.isInteger(n)) return String(n);
  const abs = Math.abs(n);
  return n.toFixed(abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3);
}

function targetText(t: Target | undefined): string {
  if (!t) return '';
  return `${t.of === 'ratio' ? 'ratio ' : ''}${t.op === '<=' ? '≤' : '≥'} ${t.bound}`;
}

/** The printed table: one row per figure, then skipped figures, then the ones not measurable yet. */
export function table(run: Pick<BenchRun, 'figures' | 'skipped' | 'notMeasurable'>): string {
  const header = ['fig', 'figure', 'value', 'unit', 'baseline', 'ratio', 'target', 'met'];
  const rows = run.figures.map((f) => {
    const ok = met(f);
    const base = f.baseline === undefined ? '' : `${fmt(f.baseline)}${f.baselineUnit && f.baselineUnit !== f.unit ? ` ${f.baselineUnit}` : ''}`;
    return [f.figure, f.name, fmt(f.value), f.unit, base, fmt(f.ratio), targetText(f.target), ok === undefined ? '' : ok ? 'yes' : 'MISSED'];
  });
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const left = new Set([0, 1, 3]);
  const line = (r: readonly string[]): string =>
    r.map((cell, i) => (left.has(i) ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd();
  const out = [line(header), ...rows.map(line)];
  for (const s of run.skipped) out.push(`${s.figure.padEnd(widths[0]!)}  ${s.name}: skipped, ${s.reason}`);
  const nm = run.notMeasurable;
  if (nm.figures.length) out.push(`${nm.figures.join(', ').padEnd(widths[0]!)}  not measurable yet: ${nm.reason}`);
  return out.join('\n');
}

/** Writes the run to `file` (bench/results/latest.json by default), replacing what was there. */
export function writeResults(run: BenchRun, file = RESULTS_FILE): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(run, null, 2)}\n`);
}
