/** `--reporter json`: `{"seed", "results": [...], "summary": {...}}`, one document. */

import type { RunReport } from '../report.js';
import { replayCommand } from '../report.js';

export function jsonReport(report: RunReport): string {
  const doc = {
    seed: report.seed,
    memory_pages: report.memoryPages,
    results: report.results.map((r) => ({
      id: r.id,
      scenario: r.scenario,
      arch: r.arch,
      guest: r.guest,
      toolstack: r.toolstack,
      seed: r.seed,
      verdict: r.verdict,
      outcome: r.outcome ?? null,
      expected: r.expected ? { verdict: r.expected.verdict, outcome: r.expected.outcome ?? null, rules: r.expected.rules ?? [], reason: r.expected.reason } : null,
      unexpected: r.unexpected,
      rules_violated: r.rules_violated,
      violations: r.violations.map((v) => v.message),
      reason: r.reason ?? null,
      save: r.save ?? null,
      ms: r.ms,
      replay: replayCommand(r),
    })),
    summary: report.summary,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
