/**
 * A finished run, ready for the reporters: each result with its expectation (built-in cells) and
 * whether it met it, the summary, the exit code, and the command that replays a cell.
 */

import type { CellResult } from './cell.js';
import { expectationFor, meetsExpectation, type Expectation } from './expected.js';
import { EXIT_CODES, VERDICTS, worst, type Verdict } from './verdict.js';

export interface JudgedResult extends CellResult {
  readonly expected?: Expectation;
  /** Built-in cell whose result differs from its expectation, or user cell that is not SUCCESS/SKIP. */
  readonly unexpected: boolean;
}

export interface RunSummary {
  readonly total: number;
  readonly verdicts: Readonly<Record<Verdict, number>>;
  readonly expected: number;
  readonly unexpected: number;
  readonly worst: Verdict;
  readonly exit_code: number;
  readonly seconds: number;
}

export interface RunReport {
  readonly seed: number;
  readonly memoryPages: number;
  readonly results: readonly JudgedResult[];
  readonly summary: RunSummary;
}

/** The exit code: for built-in cells, 0 when all met their expectations; otherwise the worst verdict (unexpected ones at least FAILURE). */
export function exitCodeOf(results: readonly JudgedResult[]): number {
  const judged = results.filter((r) => r.expected !== undefined);
  const user = results.filter((r) => r.expected === undefined);
  const fromBuiltin = judged.filter((r) => r.unexpected).map((r) => worst([r.verdict, 'FAILURE']));
  const w = worst([...fromBuiltin, ...user.map((r) => r.verdict)]);
  return EXIT_CODES[w];
}

export function judge(results: readonly CellResult[], seed: number, memoryPages: number, seconds: number): RunReport {
  const judged: JudgedResult[] = results.map((r) => {
    const expected = expectationFor(r);
    const unexpected = expected ? !meetsExpectation(r, expected) : r.verdict !== 'SUCCESS' && r.verdict !== 'SKIP';
    return { ...r, ...(expected ? { expected } : {}), unexpected };
  });
  const verdicts = Object.fromEntries(VERDICTS.map((v) => [v, judged.filter((r) => r.verdict === v).length])) as Record<Verdict, number>;
  const unexpected = judged.filter((r) => r.unexpected).length;
  return {
    seed,
    memoryPages,
    results: judged,
    summary: {
      total: judged.length,
      verdicts,
      expected: judged.filter((r) => r.expected !== undefined && !r.unexpected).length,
      unexpected,
      worst: worst(judged.map((r) => r.verdict)),
      exit_code: exitCodeOf(judged),
      seconds: Math.round(seconds * 10) / 10,
    },
  };
}

function memoryArg(pages: number): string {
  return pages % 256 === 0 ? `${pages / 256}M` : `${pages * 4}K`;
}

/** The one command that replays a cell. */
export function replayCommand(r: CellResult): string {
  const q = (s: string): string => (/^[A-Za-z0-9._/+=-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);
  return `xenabi conformance --scenario ${q(r.scenario)} --arch ${r.arch} --guest ${q(r.guest)} --toolstack ${q(r.toolstack)} --memory ${memoryArg(r.memoryPages)} --seed ${r.seed}`;
}

/** `expected FAILURE corrupted [T-SILENT-01]` */
export function describeExpectation(e: Expectation | undefined): string {
  if (!e) return 'no expectation (user subject)';
  return [e.verdict, e.outcome, e.rules && e.rules.length > 0 ? `[${e.rules.join(', ')}]` : undefined].filter(Boolean).join(' ');
}
