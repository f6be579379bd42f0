/**
 * The human report: the matrix (rows guest × toolstack, columns scenario × ABI, one short verdict
 * per cell, `!` where a cell did not meet its expectation), a summary, and for every failing or
 * unexpected cell the one command that replays it. The progress bar is separate (`progressLine`)
 * and only drawn on a terminal.
 */

import { SCENARIOS } from '../scenarios/index.js';
import { describeExpectation, replayCommand, type JudgedResult, type RunReport } from '../report.js';
import { severity, type Verdict } from '../verdict.js';

/** One short word per cell. */
export function cellText(r: Pick<JudgedResult, 'verdict' | 'outcome'>): string {
  switch (r.verdict) {
    case 'SUCCESS':
      return r.outcome === 'aborted' ? 'abort' : 'ok';
    case 'SKIP':
      return 'skip';
    case 'ERROR':
      return 'ERR';
    case 'CRASH':
      return 'CRASH';
    case 'FAILURE':
      return r.outcome === 'corrupted' ? 'CORR' : r.outcome === 'rule-violation' ? 'RULE' : 'FAIL';
  }
}

const ARCH_SHORT: Readonly<Record<string, string>> = { x86_64: '64', x86_32: '32' };

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function humanReport(report: RunReport, options: { jobs?: number } = {}): string {
  const rs = report.results;
  const out: string[] = [];
  const scenarioIds = SCENARIOS.map((s) => s.id).filter((id) => rs.some((r) => r.scenario === id));
  const arches = ['x86_64', 'x86_32'].filter((a) => rs.some((r) => r.arch === a));
  const rows: string[] = [];
  for (const r of rs) {
    const k = `${r.guest} × ${r.toolstack}`;
    if (!rows.includes(k)) rows.push(k);
  }
  out.push(`xenabi conformance: ${rs.length} cells, seed ${report.seed}, ${report.memoryPages / 256} MiB guests${options.jobs ? `, ${options.jobs} jobs` : ''}`);
  out.push('');
  out.push(`columns: ${scenarioIds.map((id, i) => `${i + 1} ${id}`).join('  ')}; ·64 x86_64, ·32 x86_32`);
  const W = 7;
  const label = Math.max(...rows.map((r) => r.length), 4) + 2;
  const cols: { scenario: string; arch: string; head: string }[] = [];
  scenarioIds.forEach((s, i) => arches.forEach((a) => cols.push({ scenario: s, arch: a, head: `${i + 1}·${ARCH_SHORT[a]}` })));
  out.push(pad('', label) + cols.map((c) => pad(c.head, W)).join(''));
  for (const row of rows) {
    const line = cols.map((c) => {
      const cell = rs.filter((r) => `${r.guest} × ${r.toolstack}` === row && r.scenario === c.scenario && r.arch === c.arch);
      if (cell.length === 0) return pad('-', W);
      const w = cell.reduce((a, b) => (severity(b.verdict) > severity(a.verdict) ? b : a));
      return pad(cellText(w) + (cell.some((x) => x.unexpected) ? '!' : ''), W);
    });
    out.push(pad(row, label) + line.join(''));
  }
  out.push('');
  out.push('ok identical · abort clean abort · CORR corrupted destination · RULE a guest rule caught the guest · FAIL a toolstack rule · skip · ERR harness error · CRASH no verdict; ! not as expected');
  out.push('');
  const s = report.summary;
  const counts = (Object.entries(s.verdicts) as [Verdict, number][]).filter(([, n]) => n > 0).map(([v, n]) => `${n} ${v}`).join(', ');
  const builtin = rs.some((r) => r.expected !== undefined);
  out.push(`summary: ${s.total} cells: ${counts}${builtin ? `; ${s.expected} as expected, ${s.unexpected} unexpected` : ''}; ${s.seconds} s; exit ${s.exit_code}`);
  const failing = rs.filter((r) => r.verdict === 'FAILURE' || r.verdict === 'ERROR' || r.verdict === 'CRASH' || r.unexpected);
  const unexpected = failing.filter((r) => r.unexpected);
  if (unexpected.length > 0) {
    out.push('');
    out.push(`unexpected cells (${unexpected.length}):`);
    for (const r of unexpected) {
      out.push(`  ${r.id}: got ${r.verdict}${r.outcome ? ` ${r.outcome}` : ''}${r.rules_violated.length ? ` [${r.rules_violated.join(', ')}]` : ''}, expected ${describeExpectation(r.expected)}`);
      if (r.reason) out.push(`    ${r.reason}`);
      out.push(`    replay: ${replayCommand(r)}`);
    }
  }
  const expectedFailures = failing.filter((r) => !r.unexpected);
  if (expectedFailures.length > 0) {
    out.push('');
    out.push(`failing cells as expected (${expectedFailures.length}), each with its replay command:`);
    for (const r of expectedFailures) out.push(`  ${pad(`${cellText(r)} [${r.rules_violated.join(',')}]`, 44)} ${replayCommand(r)}`);
  }
  return `${out.join('\n')}\n`;
}

/** `[#####.....] 123/720 cells, 2 unexpected` for a terminal (carriage return, no newline). */
export function progressLine(done: number, total: number, unexpected: number, width = 30): string {
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} cells${unexpected ? `, ${unexpected} unexpected` : ''}`;
}
