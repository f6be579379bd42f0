/**
 * Benchmark (issue 8, figure 5): `xenabi check-kernel` parsing and checking a kernel's BTF, side by
 * side with `pahole` printing every struct of the same file (`pahole -F btf FILE > /dev/null`).
 * Both run as processes, alternately, several times; the medians and their ratio (target ≤ 5) go
 * to the table and to bench/results/latest.json. Also: the check in process (parse + check, no
 * start-up) and the command's peak RSS, measured from outside with /usr/bin/time.
 *
 *   npm run bench                  # 10 runs each
 *   npm run bench -- --quick       # 3 runs each (CI smoke run)
 *   npm run bench -- --file vmlinux
 *
 * `npm run bench` builds dist/ first: the command is timed as users run it, `node dist/cli/xenabi.js`.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkKernel } from '../abi/check/index.js';
import { machine, median, table, writeFigures, type Figure } from './results.js';

const TARGET_RATIO = 5;
const PREFIXES = ['check-kernel', 'pahole'];

interface Options {
  readonly quick: boolean;
  readonly file: string;
}

function parseArgs(argv: readonly string[]): Options {
  let quick = false;
  let file = '/sys/kernel/btf/vmlinux';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') quick = true;
    else if (a === '--file' && argv[i + 1] !== undefined) file = argv[++i]!;
    else throw new Error(`unknown argument '${a}' (valid: --quick, --file FILE)`);
  }
  return { quick, file };
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

export function benchCheckKernel(options: Options): Figure[] {
  const runs = options.quick ? 3 : 10;
  const host = machine();
  const cli = fileURLToPath(new URL('../dist/cli/xenabi.js', import.meta.url));
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build (npm run bench does)`);
  const xenabi = [cli, 'check-kernel', options.file, '--format', 'json'];
  const pahole = ['-F', 'btf', options.file];
  const havePahole = !spawnSync('pahole', ['--version']).error;

  // One untimed run of each warms the page cache; then they alternate.
  const first = timeProcess(process.execPath, xenabi);
  if (first.status !== 0 && first.status !== 1) throw new Error(`xenabi check-kernel ${options.file} exited ${first.status}`);
  if (havePahole) timeProcess('pahole', pahole);
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let i = 0; i < runs; i++) {
    ours.push(timeProcess(process.execPath, xenabi).ms);
    if (havePahole) theirs.push(timeProcess('pahole', pahole).ms);
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
      name: `check-kernel ${options.file} (${types} types), process, median of ${runs}`,
      value: ms,
      unit: 'ms',
      machine: host,
      ...(havePahole ? { baseline: median(theirs), ratio: ms / median(theirs), target: TARGET_RATIO } : {}),
    },
  ];
  if (havePahole) figures.push({ name: `pahole -F btf ${options.file} > /dev/null, median of ${runs}`, value: median(theirs), unit: 'ms', machine: host });
  figures.push({ name: `check-kernel in process (parse + check, no start-up), median of ${runs}`, value: median(inProcess), unit: 'ms', machine: host });
  const rss = peakRssMiB(process.execPath, xenabi);
  if (rss !== undefined) figures.push({ name: 'check-kernel peak RSS (/usr/bin/time)', value: rss, unit: 'MiB', machine: host });
  return figures;
}

function main(): number {
  const options = parseArgs(process.argv.slice(2));
  if (!existsSync(options.file)) {
    console.log(`check-kernel benchmark skipped: ${options.file} does not exist (pass --file with a vmlinux or raw BTF)`);
    return 0;
  }
  const figures = benchCheckKernel(options);
  console.log(`machine: ${figures[0]!.machine}\n`);
  console.log(table(figures));
  writeFigures(figures, PREFIXES);
  const head = figures[0]!;
  if (head.ratio !== undefined) {
    console.log(`\ncheck-kernel / pahole = ${head.ratio.toFixed(2)} (target ≤ ${TARGET_RATIO}): ${head.ratio <= TARGET_RATIO ? 'met' : 'MISSED'}`);
  } else {
    console.log('\npahole is not installed: no baseline (Debian package pahole)');
  }
  console.log('written: bench/results/latest.json');
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main();
