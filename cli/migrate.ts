/**
 * `xenabi migrate`: one live migration of an emulated PV guest, end to end (conformance/migration.ts
 * `runMigration`): the guest runs a seeded workload while a reference toolstack saves it, the
 * stream is restored on a second emulated Xen, and the destination is compared with the source.
 * Prints the rounds, the pages sent and resent because of p2m changes, and the verdict (text or
 * `--json`); on anything but `identical`, the command line that replays the run. Exit 0 for
 * `identical`, 1 for `aborted` or `corrupted`, 2 for bad arguments (one line).
 *
 * Only argument parsing and printing happen here.
 */

import { randomInt } from 'node:crypto';
import { rmSync, existsSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { MigrationConfigError, abiByName, runMigration, type MigrationResult } from '../conformance/migration.js';
import { GuestConfigError, WorkloadSpecError } from '../guest-emu/errors.js';
import { GUEST_VARIANT_NAMES } from '../guest-emu/variants.js';
import { formatWorkloadRates, parseWorkloadRates } from '../guest-emu/workload.js';
import { MECHANISMS, STRATEGIES, type Mechanism, type StrategyName } from '../toolstack/save.js';
import { FdOutput, type ByteOutput } from '../toolstack/stream/byte-output.js';
import { DomainBuildError } from '../xen-emu/builder.js';
import { GUEST_ABI_NAMES, type GuestAbiName } from '../abi/guest-abi.js';
import { CliExit, CliFailure, EXIT_FAILURE, UsageError, commanderExit, describeFsError, requireChoice, withChoices } from './errors.js';
import type { CliIo } from './io.js';

const PAGE_SIZE = 4096;
/** The largest guest whose stream `--stream` writes: every page is 4 KiB in the file. */
export const MAX_STREAM_BYTES = 4 * 2 ** 30;
const UNITS = ['', 'K', 'M', 'G', 'T'] as const;
const MAX_CHECKPOINTS = 1000;

export const DEFAULTS = Object.freeze({
  arch: 'x86_64' as GuestAbiName,
  guest: 'linear',
  memory: '64M',
  toolstack: 'deep-tracking' as StrategyName,
  workload: 'balloon=10%,writes=50%',
  checkpoints: 0,
});

/** Options as commander hands them over, before checking. */
export interface RawMigrateOptions {
  readonly arch?: string;
  readonly guest?: string;
  readonly memory?: string;
  readonly toolstack?: string;
  readonly mechanisms?: string;
  readonly workload?: string;
  readonly seed?: string;
  readonly checkpoints?: string;
  readonly stream?: string;
  readonly json?: boolean;
}

export interface MigrateRequest {
  readonly arch: GuestAbiName;
  readonly guest: string;
  readonly memoryBytes: number;
  readonly memoryPages: number;
  readonly toolstack: StrategyName;
  /** Only when given (deep-tracking). */
  readonly mechanisms?: readonly Mechanism[];
  /** Canonical form (formatWorkloadRates). */
  readonly workload: string;
  readonly seed: number;
  /** Whether the seed was drawn at random (it is printed either way). */
  readonly randomSeed: boolean;
  readonly checkpoints: number;
  readonly stream?: string;
  readonly json: boolean;
}

/**
 * `64M`, `1G`, `512G`, `4096`, `16K`: bytes, with an optional K/M/G/T suffix (powers of two; a
 * trailing `B` or `iB` is taken too). Must be a whole number of 4 KiB pages.
 */
export function parseMemorySize(text: string): number {
  const m = /^(\d+)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  const help = 'bytes, or a whole number with K, M, G or T (powers of two), e.g. 64M, 1G, 512G';
  if (!m) throw new UsageError(`bad memory size '${text}': expected ${help}`);
  const unit = UNITS.indexOf(m[2]!.toUpperCase() as (typeof UNITS)[number]);
  const bytes = BigInt(m[1]!) << BigInt(10 * unit);
  if (bytes === 0n) throw new UsageError(`bad memory size '${text}': must be more than 0`);
  if (bytes % BigInt(PAGE_SIZE) !== 0n) throw new UsageError(`bad memory size '${text}': ${bytes} bytes is not a whole number of 4 KiB pages`);
  if (bytes > 2n ** 44n) throw new UsageError(`bad memory size '${text}': more than 16T`);
  return Number(bytes);
}

/** The shortest exact form of a size: `64M`, `1G`, `12K`, `4100096`. */
export function formatMemorySize(bytes: number): string {
  let unit = 0;
  let n = bytes;
  while (unit < UNITS.length - 1 && n % 1024 === 0 && n > 0) {
    n /= 1024;
    unit++;
  }
  return `${n}${UNITS[unit]}`;
}

/** `1 MiB`-style, for the human line. */
function humanSize(bytes: number): string {
  const names = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let unit = 0;
  let n = bytes;
  while (unit < names.length - 1 && n % 1024 === 0 && n > 0) {
    n /= 1024;
    unit++;
  }
  return `${n} ${names[unit]}`;
}

function parseCount(option: string, text: string, max: number): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`option '${option}' takes a whole number >= 0, not '${text}'`);
  const n = Number(text.trim());
  if (!Number.isSafeInteger(n) || n > max) throw new UsageError(`option '${option}' ${text} is out of range (at most ${max})`);
  return n;
}

function parseMechanisms(text: string): Mechanism[] {
  const valid = MECHANISMS.join(', ');
  const out: Mechanism[] = [];
  for (const item of text.split(',')) {
    const t = item.trim();
    if (!MECHANISMS.map(String).includes(t)) {
      throw new UsageError(`unknown mechanism '${t}' in --mechanisms '${text}' (valid: ${valid}; e.g. --mechanisms 2,3,4)`);
    }
    const m = Number(t) as Mechanism;
    if (out.includes(m)) throw new UsageError(`mechanism ${m} given twice in --mechanisms '${text}'`);
    out.push(m);
  }
  return out.sort();
}

/** Checks every option; bad ones are one-line UsageErrors. No work is done. */
export function parseMigrateOptions(raw: RawMigrateOptions, randomSeed: () => number = () => randomInt(0, 2 ** 32)): MigrateRequest {
  const arch = requireChoice('arch', raw.arch ?? DEFAULTS.arch, GUEST_ABI_NAMES);
  const guest = requireChoice('guest', raw.guest ?? DEFAULTS.guest, GUEST_VARIANT_NAMES);
  const memoryBytes = parseMemorySize(raw.memory ?? DEFAULTS.memory);
  const toolstack = requireChoice('toolstack', raw.toolstack ?? DEFAULTS.toolstack, STRATEGIES);
  let mechanisms: Mechanism[] | undefined;
  if (raw.mechanisms !== undefined) {
    if (toolstack !== 'deep-tracking') throw new UsageError(`--mechanisms applies to --toolstack deep-tracking only, not ${toolstack}`);
    mechanisms = parseMechanisms(raw.mechanisms);
  }
  let workload: string;
  try {
    workload = formatWorkloadRates(parseWorkloadRates(raw.workload ?? DEFAULTS.workload));
  } catch (err) {
    if (err instanceof WorkloadSpecError) throw new UsageError(err.message);
    throw err;
  }
  const seed = raw.seed === undefined ? randomSeed() : parseCount('--seed', raw.seed, 2 ** 32 - 1);
  const checkpoints = raw.checkpoints === undefined ? DEFAULTS.checkpoints : parseCount('--checkpoints', raw.checkpoints, MAX_CHECKPOINTS);
  if (raw.stream !== undefined) {
    if (raw.stream === '') throw new UsageError("option '--stream' needs a file path");
    if (memoryBytes > MAX_STREAM_BYTES) {
      throw new UsageError(
        `--stream keeps every page's 4 KiB: the stream of a ${formatMemorySize(memoryBytes)} guest would be over ${humanSize(memoryBytes)}; ` +
          `--stream takes --memory up to ${formatMemorySize(MAX_STREAM_BYTES)} (without --stream the migration runs in process, with content stamps)`,
      );
    }
  }
  return {
    arch,
    guest,
    memoryBytes,
    memoryPages: memoryBytes / PAGE_SIZE,
    toolstack,
    ...(mechanisms ? { mechanisms } : {}),
    workload,
    seed,
    randomSeed: raw.seed === undefined,
    checkpoints,
    ...(raw.stream !== undefined ? { stream: raw.stream } : {}),
    json: raw.json === true,
  };
}

function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The command line that runs `r` again: every option explicit, the seed included. */
export function replayCommand(r: MigrateRequest): string {
  const args = [
    'xenabi',
    'migrate',
    '--arch',
    r.arch,
    '--guest',
    r.guest,
    '--memory',
    formatMemorySize(r.memoryBytes),
    '--toolstack',
    r.toolstack,
    ...(r.mechanisms ? ['--mechanisms', r.mechanisms.join(',')] : []),
    '--workload',
    r.workload,
    '--seed',
    String(r.seed),
    ...(r.checkpoints > 0 ? ['--checkpoints', String(r.checkpoints)] : []),
    ...(r.stream !== undefined ? ['--stream', r.stream] : []),
    ...(r.json ? ['--json'] : []),
  ];
  return args.map(shellWord).join(' ');
}

/** Counts what passes to the file. */
class CountingOutput implements ByteOutput {
  bytes = 0;
  constructor(private readonly inner: ByteOutput) {}
  write(chunk: Uint8Array): void {
    this.inner.write(chunk);
    this.bytes += chunk.length;
  }
}

export interface MigrateJson {
  readonly outcome: MigrationResult['outcome'];
  readonly reason: string | null;
  readonly seed: number;
  readonly arch: GuestAbiName;
  readonly guest: string;
  readonly memory: string;
  readonly memory_pages: number;
  readonly toolstack: StrategyName;
  readonly mechanisms: readonly number[];
  readonly workload: string;
  readonly checkpoints: number;
  readonly p2m_source: 'tree' | 'list' | null;
  readonly rounds: number;
  readonly round_log: readonly { round: number; checkpoint: number; kind: string; pfns: number; resent_p2m: number; deferred: number }[];
  readonly pages_sent: number;
  readonly xtab_sent: number;
  readonly resent_p2m: number;
  readonly p2m_frames_records: number;
  readonly remaps: number;
  readonly differing: number;
  readonly differing_pfns: readonly { pfn: number; kind: string; detail: string }[];
  readonly checkpoint_verdicts: readonly { checkpoint: number; differing: number }[];
  readonly abort_pfn: number | null;
  readonly steps: number;
  readonly guest_operations: Readonly<Record<string, number>>;
  readonly stream: { file: string; bytes: number } | null;
  readonly replay: string | null;
}

export function migrateJson(req: MigrateRequest, r: MigrationResult, stream: { file: string; bytes: number } | null): MigrateJson {
  const s = r.save;
  return {
    outcome: r.outcome,
    reason: r.reason ?? null,
    seed: r.seed,
    arch: req.arch,
    guest: req.guest,
    memory: formatMemorySize(req.memoryBytes),
    memory_pages: req.memoryPages,
    toolstack: req.toolstack,
    mechanisms: [...s.mechanisms],
    workload: r.workload,
    checkpoints: req.checkpoints,
    p2m_source: s.source ?? null,
    rounds: s.rounds,
    round_log: s.roundLog.map((x) => ({ round: x.round, checkpoint: x.checkpoint, kind: x.kind, pfns: x.pfns, resent_p2m: x.resentP2m, deferred: x.deferred })),
    pages_sent: s.pagesSent,
    xtab_sent: s.xtabSent,
    resent_p2m: s.resentP2m,
    p2m_frames_records: s.p2mFramesRecords,
    remaps: s.remaps,
    differing: r.differing,
    differing_pfns: r.differingPfns.map((d) => ({ pfn: d.pfn, kind: d.kind, detail: d.detail })),
    checkpoint_verdicts: r.checkpoints.map((c) => ({ checkpoint: c.checkpoint, differing: c.differing })),
    abort_pfn: s.pfn ?? null,
    steps: r.steps,
    guest_operations: r.guestOperations,
    stream,
    replay: r.outcome === 'identical' ? null : replayCommand(req),
  };
}

const hex = (n: number): string => `0x${n.toString(16)}`;

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd() + '\n').join('');
}

/** The verdict line: `identical`, `aborted: <reason>`, `corrupted: <n> pfns differ`. */
export function verdictLine(r: MigrationResult): string {
  if (r.outcome === 'identical') return 'identical';
  if (r.outcome === 'aborted') return `aborted: ${r.reason ?? 'no reason given'}`;
  return r.differing > 0 ? `corrupted: ${r.differing} pfns differ` : `corrupted: ${r.reason ?? 'no reason given'}`;
}

export function migrateText(req: MigrateRequest, r: MigrationResult, stream: { file: string; bytes: number } | null): string {
  const s = r.save;
  const mech = s.mechanisms.length > 0 ? ` (mechanisms ${s.mechanisms.join(',')})` : '';
  let out =
    `migrate: ${req.arch} ${req.guest} guest, ${formatMemorySize(req.memoryBytes)} (${req.memoryPages} pages), ` +
    `toolstack ${req.toolstack}${mech}, workload ${r.workload === '' ? '(none)' : r.workload}, ` +
    `${req.checkpoints > 0 ? `${req.checkpoints} Remus checkpoints, ` : ''}seed ${r.seed}${req.randomSeed ? ' (random)' : ''}\n`;
  out += `p2m read from the ${s.source === 'list' ? 'linear list' : s.source === 'tree' ? '3-level tree' : '(not mapped)'}; ${r.steps} scheduler steps\n\n`;
  const rows: string[][] = [['round', 'checkpoint', 'kind', 'pfns', 'resent (p2m)', 'deferred']];
  for (const x of s.roundLog) rows.push([String(x.round), String(x.checkpoint), x.kind, String(x.pfns), String(x.resentP2m), String(x.deferred)]);
  out += table(rows);
  out += '\n';
  out += `pages sent: ${s.pagesSent} (and ${s.xtabSent} pfns as XTAB)\n`;
  out += `pages resent because of p2m changes: ${s.resentP2m}\n`;
  out += `X86_PV_P2M_FRAMES records: ${s.p2mFramesRecords}\n`;
  out += `p2m remaps: ${s.remaps}\n`;
  if (stream) out += `stream: ${stream.file}, ${stream.bytes} bytes${r.outcome === 'aborted' ? ' (incomplete: the save aborted)' : ''}\n`;
  out += `verdict: ${verdictLine(r)}\n`;
  if (r.outcome === 'corrupted') {
    if (r.reason !== undefined && !r.reason.startsWith(`${r.differing} pfns differ`) && r.differing > 0) out += `  ${r.reason}\n`;
    for (const d of r.differingPfns.slice(0, 10)) out += `  pfn ${hex(d.pfn)} ${d.kind}: ${d.detail}\n`;
    if (r.differing > 10) out += `  (${r.differing - Math.min(10, r.differingPfns.length)} more)\n`;
  }
  if (r.outcome !== 'identical') out += `replay: ${replayCommand(req)}\n`;
  return out;
}

function isConfigError(err: unknown): err is Error {
  return err instanceof MigrationConfigError || err instanceof GuestConfigError || err instanceof WorkloadSpecError || err instanceof DomainBuildError;
}

export function runMigrate(raw: RawMigrateOptions, io: CliIo): void {
  const req = parseMigrateOptions(raw);
  let file: FdOutput | undefined;
  let counter: CountingOutput | undefined;
  const created = req.stream !== undefined && !existsSync(req.stream);
  if (req.stream !== undefined) {
    try {
      file = FdOutput.create(req.stream);
    } catch (err) {
      throw new UsageError(`cannot write '${req.stream}': ${describeFsError(err)}`);
    }
    counter = new CountingOutput(file);
  }
  let result: MigrationResult;
  try {
    result = runMigration({
      abi: abiByName(req.arch),
      guest: req.guest,
      memoryPages: req.memoryPages,
      toolstack: req.toolstack,
      ...(req.mechanisms ? { mechanisms: req.mechanisms } : {}),
      workload: req.workload,
      seed: req.seed,
      checkpoints: req.checkpoints,
      ...(counter ? { streamOutput: counter } : {}),
    });
  } catch (err) {
    file?.close();
    file = undefined;
    if (isConfigError(err)) {
      if (created && req.stream !== undefined) rmSync(req.stream, { force: true });
      throw new UsageError(err.message);
    }
    if (req.stream !== undefined && err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string') {
      throw new CliFailure(`cannot write '${req.stream}': ${describeFsError(err)}`);
    }
    throw err;
  } finally {
    file?.close();
  }
  const stream = req.stream !== undefined && counter ? { file: req.stream, bytes: counter.bytes } : null;
  if (req.json) io.out(`${JSON.stringify(migrateJson(req, result, stream), null, 2)}\n`);
  else io.out(migrateText(req, result, stream));
  if (result.outcome !== 'identical') throw new CliExit(EXIT_FAILURE);
}

export function addMigrateCommand(program: Command, io: CliIo): Command {
  const cmd = program
    .command('migrate')
    .summary('live-migrate an emulated PV guest with a reference toolstack and check the result')
    .description(
      'Run one live migration end to end: an emulated PV guest runs a seeded workload while a reference ' +
        'toolstack saves it (live rounds driven by log-dirty, then a final round with the guest suspended), ' +
        'the stream is restored into a fresh domain on a second emulated Xen, and the destination is ' +
        'compared with the source: identical, aborted (with the reason) or corrupted (with the first ' +
        'differing pfns). The stream goes in process, with content stamps for pages nobody inspects; ' +
        '--stream also writes it as a real libxc stream file.',
    )
    .addOption(withChoices(new Option('--arch <abi>', `guest ABI (default: ${DEFAULTS.arch})`), GUEST_ABI_NAMES))
    .addOption(withChoices(new Option('--guest <name>', `guest personality or faulty variant (default: ${DEFAULTS.guest})`), GUEST_VARIANT_NAMES))
    .addOption(new Option('--memory <size>', `guest memory: bytes or K/M/G/T (powers of two), a whole number of 4 KiB pages (default: ${DEFAULTS.memory})`))
    .addOption(withChoices(new Option('--toolstack <name>', `reference toolstack (default: ${DEFAULTS.toolstack})`), STRATEGIES))
    .addOption(new Option('--mechanisms <list>', "deep-tracking only: the seed's mechanisms to use, e.g. 2,3,4 (default: all)"))
    .addOption(new Option('--workload <spec>', `guest workload, operations per round: balloon, exchange, grants, growth, writes, relayout (default: ${DEFAULTS.workload})`))
    .addOption(new Option('--seed <n>', 'seed of the workload and the interleaving, 0..4294967295 (default: random, printed)'))
    .addOption(new Option('--checkpoints <n>', 'Remus/COLO checkpoints, the guest running in between (default: 0, a plain migration)'))
    .addOption(new Option('--stream <file>', `also write the stream as a real libxc stream file (guests up to ${formatMemorySize(MAX_STREAM_BYTES)})`))
    .addOption(new Option('--json', 'print one JSON object instead of the report'))
    .addHelpText(
      'after',
      '\nExit status: 0 identical, 1 aborted or corrupted, 2 bad arguments.\n' +
        '\nExamples:\n' +
        '  xenabi migrate --arch x86_32 --toolstack map-once --workload balloon=100%,writes=100% --seed 1\n' +
        '  xenabi migrate --memory 1G --toolstack deep-tracking --mechanisms 3 --json\n' +
        '  xenabi migrate --memory 16M --checkpoints 2 --stream remus.stream && xenabi verify-stream remus.stream',
    )
    .action((raw: RawMigrateOptions) => runMigrate(raw, io));
  cmd.exitOverride(commanderExit(cmd));
  return cmd;
}
