/**
 * `npm run bench`: runs every benchmark module of issue 8 in one process, prints one table and
 * writes bench/results/latest.json. Each figure carries its value, unit, the machine, and where one
 * applies a baseline measured in this same run (bench/baseline.ts) and the ratio to it. Targets are
 * reported, not asserted.
 *
 *   npm run bench                       # the full run (about two minutes)
 *   npm run bench -- --quick            # the smoke run CI executes (a few seconds per figure)
 *   npm run bench -- --only hypercalls  # some modules only; latest.json is then left alone
 *
 * Exit codes: 0 when every benchmark ran (whether or not targets were met), 1 when one is broken
 * (it threw: an exception, a hypercall returning an unexpected count, a child process failing),
 * 2 for a bad command line.
 */

import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Baselines } from './baseline.js';
import { DEFAULT_BTF_FILE, checkKernelModule } from './check-kernel.js';
import type { BenchContext, BenchModule } from './context.js';
import { hypercallsModule } from './hypercalls.js';
import { p2mReadModule } from './p2m-read.js';
import { RESULTS_FILE, fmt, machine, table, writeResults, type BenchRun, type Figure, type Skipped } from './results.js';
import { scaleModule } from './scale.js';
import { migrationModule } from './migration.js';
import { conformanceModule } from './conformance.js';

/** Every benchmark, in the order they run and appear. */
export const MODULES: readonly BenchModule[] = Object.freeze([hypercallsModule, checkKernelModule, p2mReadModule, scaleModule, migrationModule, conformanceModule]);

/** Issue 8's figures that need code that does not exist yet. No value is printed for them. */
export const NOT_MEASURABLE = Object.freeze({ figures: Object.freeze([] as string[]), reason: 'every figure is measurable' });

export const USAGE = `usage: npm run bench -- [--quick] [--only ID[,ID...]] [--file BTF]
  --quick        small smoke run (fewer samples, no 512 GiB build), as CI runs it
  --only IDS     run only these modules (${MODULES.map((m) => m.id).join(', ')}); latest.json is not written
  --file BTF     the kernel BTF for figure 5 (default ${DEFAULT_BTF_FILE})
  --help         print this and exit`;

export interface BenchOptions {
  readonly quick: boolean;
  readonly btfFile: string;
  /** Module ids to run; undefined: all. */
  readonly only: readonly string[] | undefined;
  readonly help: boolean;
}

/** A bad command line: `main` prints the message as one line and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function parseArgs(argv: readonly string[]): BenchOptions {
  let quick = false;
  let help = false;
  let btfFile = DEFAULT_BTF_FILE;
  let only: string[] | undefined;
  const valueOf = (flag: string, i: number): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const [flag, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    switch (flag) {
      case '--quick':
      case '--help':
        if (inline !== undefined) throw new UsageError(`${flag} takes no value`);
        if (flag === '--quick') quick = true;
        else help = true;
        break;
      case '--file':
        btfFile = inline ?? valueOf(flag, i++);
        if (btfFile === '') throw new UsageError('--file needs a value');
        break;
      case '--only': {
        const ids = (inline ?? valueOf(flag, i++)).split(',').filter((s) => s !== '');
        const known = MODULES.map((m) => m.id);
        const unknown = ids.find((id) => !known.includes(id));
        if (unknown !== undefined) throw new UsageError(`--only: unknown benchmark '${unknown}' (valid: ${known.join(', ')})`);
        if (ids.length === 0) throw new UsageError('--only needs a value');
        only = [...(only ?? []), ...ids];
        break;
      }
      default:
        throw new UsageError(`unknown argument '${a}' (valid: --quick, --only IDS, --file BTF, --help)`);
    }
  }
  return { quick, btfFile, only, help };
}

export interface BenchIo {
  out(line: string): void;
  err(line: string): void;
}

function baselineFigures(baselines: Baselines, host: string): Figure[] {
  return baselines.all.map((b) => ({
    figure: 'baseline',
    name: `scan + copy of ${b.entries} 8-byte entries (Uint32Array pairs, BigUint64Array.set)`,
    value: b.totalNs,
    unit: 'ns/entry',
    machine: host,
    detail: `scan ${fmt(b.scanNs)} + copy ${fmt(b.copyNs)} ns/entry, medians of ${b.samples}`,
  }));
}

/** What `main` runs and where it writes: the real modules and latest.json unless a test says otherwise. */
export interface BenchSetup {
  readonly modules?: readonly BenchModule[];
  readonly resultsFile?: string;
}

/** Runs the selected benchmarks and returns the exit code. */
export async function main(argv: readonly string[], io: BenchIo, setup: BenchSetup = {}): Promise<number> {
  const modules = setup.modules ?? MODULES;
  const resultsFile = setup.resultsFile ?? RESULTS_FILE;
  let options: BenchOptions;
  try {
    options = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`bench: ${err.message}`);
    return 2;
  }
  if (options.help) {
    io.out(USAGE);
    return 0;
  }

  const host = machine();
  const started = new Date().toISOString();
  const loadAverage = loadavg().map((l) => Math.round(l * 100) / 100);
  const ctx: BenchContext = {
    quick: options.quick,
    machine: host,
    btfFile: options.btfFile,
    baselines: new Baselines(options.quick ? 5 : 11),
    log: (line) => io.err(line),
  };
  const selected = modules.filter((m) => options.only === undefined || options.only.includes(m.id));
  const figures: Figure[] = [];
  const skipped: Skipped[] = [];
  const broken: string[] = [];
  for (const m of selected) {
    ctx.log(`bench: ${m.id} (${m.title})${options.quick ? ', quick' : ''}...`);
    const t0 = performance.now();
    try {
      const r = await m.run(ctx);
      figures.push(...r.figures);
      skipped.push(...(r.skipped ?? []));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      broken.push(`${m.id}: ${message}`);
      ctx.log(`bench: ${m.id} is broken: ${message}`);
      if (err instanceof Error && err.stack) ctx.log(err.stack);
    }
    ctx.log(`bench: ${m.id} took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }

  const run: BenchRun = {
    command: ['npm run bench', ...(argv.length ? ['--', ...argv] : [])].join(' '),
    quick: options.quick,
    machine: host,
    loadAverage,
    started,
    figures: [...figures, ...baselineFigures(ctx.baselines, host)],
    skipped,
    notMeasurable: NOT_MEASURABLE,
  };
  io.out(`machine: ${host}; load average at start ${loadAverage.join(' ')}`);
  io.out(`${options.quick ? '--quick: a smoke run; the full figures come from npm run bench' : 'full run'}, ${started}\n`);
  io.out(table(run));
  if (broken.length) {
    io.out(`\nbroken benchmarks (latest.json not written):\n${broken.map((b) => `  ${b}`).join('\n')}`);
    return 1;
  }
  if (options.only) {
    io.out('\n--only: latest.json not written');
  } else {
    writeResults(run, resultsFile);
    io.out(`\nwritten: ${resultsFile}`);
  }
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await main(process.argv.slice(2), {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
  });
}
