/**
 * `--reporter junit`: JUnit XML, one testsuite per scenario, one testcase per cell. A testcase
 * fails when the cell did not meet its expectation (built-in) or is FAILURE (user subjects);
 * ERROR and CRASH are errors; SKIP is skipped. Expected FAILUREs pass, with the verdict in system-out.
 */

import { describeExpectation, replayCommand, type JudgedResult, type RunReport } from '../report.js';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');
}

function kind(r: JudgedResult): 'pass' | 'failure' | 'error' | 'skipped' {
  if (r.verdict === 'SKIP' && !r.unexpected) return 'skipped';
  if ((r.verdict === 'ERROR' || r.verdict === 'CRASH') && r.unexpected) return 'error';
  return r.unexpected ? 'failure' : 'pass';
}

export function junitReport(report: RunReport): string {
  const byScenario = new Map<string, JudgedResult[]>();
  for (const r of report.results) byScenario.set(r.scenario, [...(byScenario.get(r.scenario) ?? []), r]);
  const count = (rs: readonly JudgedResult[], k: string): number => rs.filter((r) => kind(r) === k).length;
  const all = report.results;
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="xenabi conformance" tests="${all.length}" failures="${count(all, 'failure')}" errors="${count(all, 'error')}" skipped="${count(all, 'skipped')}" time="${report.summary.seconds}">`,
  ];
  for (const [scenario, rs] of byScenario) {
    const time = rs.reduce((t, r) => t + r.ms, 0) / 1000;
    lines.push(`  <testsuite name="${esc(scenario)}" tests="${rs.length}" failures="${count(rs, 'failure')}" errors="${count(rs, 'error')}" skipped="${count(rs, 'skipped')}" time="${time.toFixed(3)}">`);
    for (const r of rs) {
      lines.push(`    <testcase classname="${esc(`${r.scenario}.${r.arch}`)}" name="${esc(`${r.guest} × ${r.toolstack}`)}" time="${(r.ms / 1000).toFixed(3)}">`);
      const detail = `${r.verdict}${r.outcome ? ` ${r.outcome}` : ''}${r.rules_violated.length ? ` [${r.rules_violated.join(', ')}]` : ''}; expected ${describeExpectation(r.expected)}`;
      const k = kind(r);
      if (k === 'skipped') lines.push(`      <skipped message="${esc(r.reason ?? 'skipped')}"/>`);
      else if (k === 'failure' || k === 'error') {
        lines.push(`      <${k} message="${esc(detail)}" type="${r.verdict}">${esc(`${r.reason ?? ''}\nreplay: ${replayCommand(r)}`)}</${k}>`);
      }
      lines.push(`      <system-out>${esc(`${detail}${r.reason ? `\n${r.reason}` : ''}`)}</system-out>`);
      lines.push('    </testcase>');
    }
    lines.push('  </testsuite>');
  }
  lines.push('</testsuites>');
  return `${lines.join('\n')}\n`;
}
