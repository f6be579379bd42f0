/**
 * `xenabi conformance`: runs the conformance matrix (conformance/) and reports it. With no
 * arguments: every built-in guest × toolstack × scenario × ABI, judged against the expected table
 * (exit 0 when the kit behaves as documented). `--guest ./my-guest.js` / `--toolstack
 * ./my-toolstack.js` judge a user's subject against the rules (docs/conformance-interfaces.md).
 * Exit codes as XTF's runner: 0 success, 3 skip, 4 error, 5 failure, 6 crash; 2 bad arguments.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { ARCHES, type Arch } from '../conformance/cell.js';
import { allCells, defaultSelection, shardCells, type MatrixSelection } from '../conformance/matrix.js';
import { humanReport, progressLine } from '../conformance/reporters/human.js';
import { jsonReport } from '../conformance/reporters/json.js';
import { junitReport } from '../conformance/reporters/junit.js';
import { tapReport } from '../conformance/reporters/tap.js';
import { judge, type RunReport } from '../conformance/report.js';
import { runCells } from '../conformance/runner.js';
import { SCENARIOS, SCENARIO_IDS } from '../conformance/scenarios/index.js';
import { absoluteModulePath, BUILTIN_GUESTS, BUILTIN_TOOLSTACKS, isModulePath, loadGuestSubject, loadToolstackSubject, SubjectError } from '../conformance/subjects.js';
import { CliExit, CliFailure, UsageError, commanderExit, describeFsError, requireChoice, withChoices } from './errors.js';
import type { CliIo } from './io.js';

export const REPORTERS = ['human', 'json', 'junit', 'tap'] as const;
export type ReporterName = (typeof REPORTERS)[number];

export interface RawConformanceOptions {
  readonly guest?: string[];
  readonly toolstack?: string[];
  readonly scenario?: string[];
  readonly arch?: string;
  readonly memory?: string;
  readonly seed?: string;
  readonly repeat?: string;
  readonly jobs?: string;
  readonly shard?: string;
  readonly reporter?: string;
  readonly out?: string;
  readonly record?: string;
  readonly list?: boolean;
}

function integer(name: string, text: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${name} '${text}' is not an integer >= ${min}`);
  const n = Number(text);
  if (n < min || n > max) throw new UsageError(`${name} ${text} is out of range [${min}, ${max}]`);
  return n;
}

/** `16M`, `16MiB`, `1G`, `8192K` or a bare number of MiB, as guest pages (at least 8 MiB). */
export function parseMemory(text: string): number {
  const m = /^(\d+)\s*(k|kib|m|mib|g|gib)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`--memory '${text}' is not a size (valid: e.g. 16M, 64MiB, 1G)`);
  const unit = (m[2] ?? 'm').toLowerCase()[0]!;
  const kib = Number(m[1]) * (unit === 'k' ? 1 : unit === 'm' ? 1024 : 1024 * 1024);
  if (kib % 4 !== 0) throw new UsageError(`--memory ${text} is not a whole number of 4 KiB pages`);
  const pages = kib / 4;
  if (pages < 2048) throw new UsageError(`--memory ${text} is below the 8 MiB minimum`);
  if (pages > 1 << 24) throw new UsageError(`--memory ${text} is above the 64 GiB the matrix allows`);
  return pages;
}

function subjects(noun: string, given: readonly string[] | undefined, builtins: readonly string[]): string[] {
  if (!given || given.length === 0) return [...builtins];
  return given.map((g) => (isModulePath(g) ? absoluteModulePath(g) : requireChoice(noun, g, builtins)));
}

/** The run a command line asks for. */
export function selectionFrom(raw: RawConformanceOptions): { selection: MatrixSelection; jobs: number; reporter: ReporterName } {
  const d = defaultSelection();
  const scenarios = raw.scenario && raw.scenario.length > 0 ? raw.scenario.map((s) => requireChoice('scenario', s, SCENARIO_IDS)) : d.scenarios;
  const arches: readonly Arch[] = raw.arch === undefined ? ARCHES : [requireChoice('arch', raw.arch, ARCHES)];
  let shard: { index: number; count: number } | undefined;
  if (raw.shard !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(raw.shard);
    if (!m) throw new UsageError(`--shard '${raw.shard}' is not I/N (e.g. 1/4)`);
    const index = Number(m[1]);
    const count = Number(m[2]);
    if (count < 1 || index < 1 || index > count) throw new UsageError(`--shard ${raw.shard}: I must be in [1, N] and N >= 1`);
    shard = { index, count };
  }
  const selection: MatrixSelection = {
    guests: subjects('guest', raw.guest, BUILTIN_GUESTS),
    toolstacks: subjects('toolstack', raw.toolstack, BUILTIN_TOOLSTACKS),
    scenarios,
    arches,
    memoryPages: raw.memory === undefined ? d.memoryPages : parseMemory(raw.memory),
    seed: raw.seed === undefined ? d.seed : integer('--seed', raw.seed, 0, 2 ** 32 - 1),
    repeat: raw.repeat === undefined ? 1 : integer('--repeat', raw.repeat, 1, 1000),
    ...(shard ? { shard } : {}),
    ...(raw.record ? { record: raw.record } : {}),
  };
  const jobs = raw.jobs === undefined ? 2 : integer('--jobs', raw.jobs, 1, 64);
  const reporter = requireChoice('reporter', raw.reporter ?? 'human', REPORTERS);
  return { selection, jobs, reporter };
}

export function renderReport(report: RunReport, reporter: ReporterName, jobs?: number): string {
  switch (reporter) {
    case 'human':
      return humanReport(report, jobs ? { jobs } : {});
    case 'json':
      return jsonReport(report);
    case 'junit':
      return junitReport(report);
    case 'tap':
      return tapReport(report);
  }
}

function listing(selection: MatrixSelection): string {
  const lines = ['scenarios:'];
  for (const s of SCENARIOS) lines.push(`  ${s.id.padEnd(24)} ${s.title}`);
  lines.push(`guests: ${BUILTIN_GUESTS.join(', ')} (or ./module.js)`);
  lines.push(`toolstacks: ${BUILTIN_TOOLSTACKS.join(', ')} (or ./module.js)`);
  lines.push(`arches: ${ARCHES.join(', ')}`);
  const cells = shardCells(allCells(selection), selection.shard);
  lines.push(`cells selected: ${cells.length}`);
  return `${lines.join('\n')}\n`;
}

export async function runConformance(raw: RawConformanceOptions, io: CliIo, isTty: boolean): Promise<number> {
  const { selection, jobs, reporter } = selectionFrom(raw);
  if (raw.list) {
    io.out(listing(selection));
    return 0;
  }
  if (selection.record) {
    try {
      mkdirSync(selection.record, { recursive: true });
    } catch (err) {
      throw new CliFailure(`--record ${selection.record}: ${describeFsError(err)}`);
    }
  }
  // A user module that does not meet the contract is bad input: one line, exit 2, before any cell runs.
  try {
    for (const g of selection.guests) if (isModulePath(g)) await loadGuestSubject(g);
    for (const t of selection.toolstacks) if (isModulePath(t)) await loadToolstackSubject(t);
  } catch (err) {
    if (err instanceof SubjectError) throw new UsageError(err.message);
    throw err;
  }
  const cells = shardCells(allCells(selection), selection.shard);
  const t0 = performance.now();
  const showProgress = isTty && reporter === 'human' && raw.out === undefined;
  let unexpected = 0;
  const results = await runCells(cells, {
    jobs,
    onResult: (r, done, total) => {
      if (!showProgress) return;
      if (r.verdict === 'ERROR' || r.verdict === 'CRASH') unexpected++;
      io.err(progressLine(done, total, unexpected));
    },
  });
  if (showProgress) io.err('\r\x1b[K');
  const report = judge(results, selection.seed, selection.memoryPages, (performance.now() - t0) / 1000);
  const text = renderReport(report, reporter, jobs);
  if (raw.out !== undefined) {
    try {
      writeFileSync(raw.out, text);
    } catch (err) {
      throw new CliFailure(`--out ${raw.out}: ${describeFsError(err)}`);
    }
    if (reporter !== 'human') io.out(humanReport(report, { jobs }));
  } else io.out(text);
  return report.summary.exit_code;
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

export function addConformanceCommand(program: Command, io: CliIo, isTty: () => boolean = () => process.stdout.isTTY === true): void {
  const cmd = program
    .command('conformance')
    .description('run the conformance matrix: guests × toolstacks × scenarios × ABIs, XTF verdicts (exit 0 success, 3 skip, 4 error, 5 failure, 6 crash, 2 bad arguments)')
    .option('--guest <name>', `a built-in guest (${BUILTIN_GUESTS.join(', ')}) or ./module.js; repeatable`, collect)
    .option('--toolstack <name>', `a built-in toolstack (${BUILTIN_TOOLSTACKS.join(', ')}) or ./module.js; repeatable`, collect)
    .option('--scenario <id>', `a scenario (${SCENARIO_IDS.join(', ')}); repeatable`, collect)
    .addOption(withChoices(new Option('--arch <abi>', 'one ABI only'), ARCHES))
    .option('--memory <size>', 'guest memory (default 16M)')
    .option('--seed <n>', 'the run\'s seed (default 1); repeat k uses seed + k')
    .option('--repeat <n>', 'run each cell n times with seeds seed..seed+n-1')
    .option('--jobs <n>', 'worker threads (default 2)')
    .option('--shard <i/n>', 'run slice i of n (deterministic; the n slices cover the matrix)')
    .addOption(withChoices(new Option('--reporter <name>', 'output format (default human)'), REPORTERS))
    .option('--out <file>', 'write the report here (the human summary still goes to stdout)')
    .option('--record <dir>', 'write each cell\'s guest trace to DIR/<cell id>.jsonl')
    .option('--list', 'list scenarios, subjects and the number of cells selected, run nothing')
    .action(async (raw: RawConformanceOptions) => {
      const code = await runConformance(raw, io, isTty());
      if (code !== 0) throw new CliExit(code);
    });
  cmd.exitOverride(commanderExit(cmd));
}
