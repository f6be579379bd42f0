/**
 * `--reporter tap`: TAP version 13. `ok` when the cell met its expectation (built-in) or is
 * SUCCESS (user subjects); SKIP cells carry `# SKIP reason`; a YAML block gives the details.
 */

import { describeExpectation, replayCommand, type RunReport } from '../report.js';

function yamlString(s: string): string {
  return JSON.stringify(s);
}

export function tapReport(report: RunReport): string {
  const lines = ['TAP version 13', `1..${report.results.length}`];
  report.results.forEach((r, i) => {
    const skip = r.verdict === 'SKIP' && !r.unexpected ? ` # SKIP ${r.reason ?? ''}` : '';
    lines.push(`${r.unexpected ? 'not ok' : 'ok'} ${i + 1} - ${r.id}${skip}`);
    lines.push('  ---');
    lines.push(`  verdict: ${r.verdict}`);
    if (r.outcome) lines.push(`  outcome: ${r.outcome}`);
    lines.push(`  expected: ${yamlString(describeExpectation(r.expected))}`);
    lines.push(`  rules_violated: [${r.rules_violated.join(', ')}]`);
    if (r.reason) lines.push(`  reason: ${yamlString(r.reason)}`);
    if (r.unexpected || r.verdict === 'FAILURE') lines.push(`  replay: ${yamlString(replayCommand(r))}`);
    lines.push('  ...');
  });
  lines.push(`# seed ${report.seed}; ${report.summary.total} cells, ${report.summary.unexpected} unexpected; exit ${report.summary.exit_code}`);
  return `${lines.join('\n')}\n`;
}
