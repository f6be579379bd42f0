/**
 * Benchmark (issue 8, figure 5): `xenabi check-kernel` parsing and checking a kernel's BTF, side by
 * side with `pahole` printing every struct of the same file (`pahole -F btf FILE > /dev/null`).
 * Both run as processes, alternately, several times; the medians and their ratio (target ≤ 5) go
 * to the table. Also: the check in process (parse + check, no start-up) and the command's peak RSS,
 * measured from outside with /usr/bin/time.
 *
 *   npm run bench                              # 10 runs each
 *   npm run bench -- --quick                   # 3 runs each (CI smoke run)
 *   npm run bench -- --only check-kernel --file vmlinux
 *
 * `npm run bench` builds dist/ first: the command is timed as users run it, `node dist/cli/xenabi.js`.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkKernel } from '../abi/check/index.js';
import type { BenchContext, BenchModule, BenchOutput } from './context.js';
import { median, type Figure } from './results.js';

const TARGET_RATIO = 5;

/** The BTF figure 5 reads unless --file names another. */
export const DEFAULT_BTF_FILE = '/sys/kernel/btf/vmlinux';

export interface CheckKernelOptions {
  readonly quick: boolean;
  readonly file: string;
  readonly machine: string;
}

function timeProcess(command: string, args: readonly string[]): { ms: number; status: number | null } {
  const started = performance.now();
  const r = spawnSync(command, [...args], { stdio: ['ignore', 'ignore', 'ignore'] });
  const ms = performance.now() - started;
  if (r.error) throw r.error;
  return { ms, status: r.status };
}

/** Peak resident set of one run in MiB, from /usr/bin/time -f %M (KiB); undefined without it. */
function peakRssMiB(command: string, args: readonly string[]): number | undefined {
  if (!existsSync('/usr/bin/time')) return undefined;
  const r = spawnSync('/usr/bin/time', ['-f', '%M', command, ...args], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  const kib = Number(r.stderr.trim().split('\n').pop());
  return Number.isFinite(kib) && kib > 0 ? kib / 1024 : undefined;
}

export function benchCheckKernel(options: CheckKernelOptions): Figure[] {
  const runs = options.quick ? 3 : 10;
  const host = options.machine;
  const cli = fileURLToPath(new URL('../dist/cli/xenabi.js', import.meta.url));
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build (npm run bench does)`);
  const xenabi = [cli, 'check-kernel', options.file, '--format', 'json'];
  const pahole = ['-F', 'btf', options.file];
  const havePahole = !spawnSync('pahole', ['--version']).error;

  // Exit 1 means "something incompatible": a finding, not a broken run. Anything else breaks it.
  const ourRun = (): number => {
    const r = timeProcess(process.execPath, xenabi);
    if (r.status !== 0 && r.status !== 1) throw new Error(`xenabi check-kernel ${options.file} exited ${r.status}`);
    return r.ms;
  };
  const theirRun = (): number => {
    const r = timeProcess('pahole', pahole);
    if (r.status !== 0) throw new Error(`pahole -F btf ${options.file} exited ${r.status}`);
    return r.ms;
  };
  // One untimed run of each warms the page cache; then they alternate.
  ourRun();
  if (havePahole) theirRun();
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let i = 0; i < runs; i++) {
    ours.push(ourRun());
    if (havePahole) theirs.push(theirRun());
  }

  const bytes = readFileSync(options.file);
  const inProcess: number[] = [];
  let types = 0;
  for (let i = 0; i < runs + 1; i++) {
    const started = performance.now();
    const report = checkKernel(bytes, { file: options.file });
    if (i > 0) inProcess.push(performance.now() - started);
    types = report.btf.types;
  }

  const ms = median(ours);
  const figures: Figure[] = [
    {
      figure: '5',
      name: `check-kernel ${options.file} (${types} types), process, median of ${runs}`,
      value: ms,
      unit: 'ms',
      machine: host,
      ...(havePahole
        ? { baseline: median(theirs), ratio: ms / median(theirs), target: { of: 'ratio', op: '<=', bound: TARGET_RATIO } as const }
        : { detail: 'pahole is not installed (Debian package pahole): no baseline' }),
    },
  ];
  if (havePahole) figures.push({ figure: '5', name: `pahole -F btf ${options.file} > /dev/null, median of ${runs}`, value: median(theirs), unit: 'ms', machine: host });
  figures.push({ figure: '5', name: `check-kernel in process (parse + check, no start-up), median of ${runs}`, value: median(inProcess), unit: 'ms', machine: host });
  const rss = peakRssMiB(process.execPath, xenabi);
  if (rss !== undefined) figures.push({ figure: '5', name: 'check-kernel peak RSS (/usr/bin/time)', value: rss, unit: 'MiB', machine: host });
  return figures;
}

export function runCheckKernel(ctx: BenchContext): BenchOutput {
  if (!existsSync(ctx.btfFile)) {
    return {
      figures: [],
      skipped: [{ figure: '5', name: 'check-kernel vs pahole', reason: `${ctx.btfFile} does not exist (pass --file with a vmlinux or raw BTF)` }],
    };
  }
  return { figures: benchCheckKernel({ quick: ctx.quick, file: ctx.btfFile, machine: ctx.machine }) };
}

export const checkKernelModule: BenchModule = {
  id: 'check-kernel',
  title: 'figure 5: xenabi check-kernel vs pahole on a kernel BTF',
  run: runCheckKernel,
};
