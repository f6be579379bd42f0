/** Reporter output shapes, from a small synthetic run (no migration needed). */

import { expect } from 'chai';
import type { CellResult } from '../../conformance/cell.js';
import { judge } from '../../conformance/report.js';
import { humanReport } from '../../conformance/reporters/human.js';
import { jsonReport } from '../../conformance/reporters/json.js';
import { junitReport } from '../../conformance/reporters/junit.js';
import { tapReport } from '../../conformance/reporters/tap.js';

const base = { arch: 'x86_64' as const, seed: 7, memoryPages: 4096, ms: 10, violations: [] };
const results: CellResult[] = [
  { ...base, id: 'a', scenario: 'quiet', guest: 'linear', toolstack: 'map-once', verdict: 'SUCCESS', outcome: 'identical', rules_violated: [] },
  { ...base, id: 'b', scenario: 'p2m-growth', guest: 'linear', toolstack: 'map-once', verdict: 'FAILURE', outcome: 'corrupted', rules_violated: ['T-REMAP-01', 'T-SILENT-01'], reason: 'x' },
  { ...base, id: 'c', scenario: 'tree-relayout', guest: 'linear', toolstack: 'map-once', verdict: 'SKIP', reason: 'legacy-tree only', rules_violated: [] },
  { ...base, id: 'd', scenario: 'quiet', guest: 'linear', toolstack: 'deep-tracking', verdict: 'FAILURE', outcome: 'corrupted', rules_violated: ['T-SILENT-01'], reason: 'y' },
];

describe('conformance reporters', () => {
  const report = judge(results, 7, 4096, 1.5);

  it('judges against the expected table: one unexpected cell, exit 5', () => {
    expect(report.summary.unexpected).to.equal(1);
    expect(report.summary.exit_code).to.equal(5);
  });

  it('json has seed, results with the issue\'s fields, and summary', () => {
    const doc = JSON.parse(jsonReport(report)) as { seed: number; results: Record<string, unknown>[]; summary: Record<string, unknown> };
    expect(doc.seed).to.equal(7);
    expect(doc.results).to.have.length(4);
    for (const k of ['scenario', 'arch', 'guest', 'toolstack', 'verdict', 'outcome', 'expected', 'rules_violated']) expect(doc.results[0]).to.have.property(k);
    expect(doc.summary).to.include({ total: 4, unexpected: 1, exit_code: 5 });
  });

  it('junit is well-formed XML with the right counts', () => {
    const xml = junitReport(report);
    expect(xml.startsWith('<?xml')).to.equal(true);
    expect(xml).to.match(/<testsuites [^>]*tests="4" failures="1" errors="0" skipped="1"/);
    expect((xml.match(/<testcase /g) ?? []).length).to.equal(4);
    // Balanced tags: every opened element is closed.
    for (const tag of ['testsuites', 'testsuite', 'testcase', 'failure', 'system-out']) {
      expect((xml.match(new RegExp(`<${tag}[ >]`, 'g')) ?? []).length, tag).to.equal((xml.match(new RegExp(`</${tag}>`, 'g')) ?? []).length);
    }
  });

  it('tap 13 has a plan, one line per cell, SKIP directives and not ok for the unexpected cell', () => {
    const tap = tapReport(report).split('\n');
    expect(tap[0]).to.equal('TAP version 13');
    expect(tap[1]).to.equal('1..4');
    expect(tap.filter((l) => /^(not )?ok \d+ /.test(l))).to.have.length(4);
    expect(tap.some((l) => /^ok 3 - c # SKIP legacy-tree only/.test(l))).to.equal(true);
    expect(tap.filter((l) => l.startsWith('not ok'))).to.have.length(1);
  });

  it('human prints the matrix, the summary and a replay command for each failing cell', () => {
    const text = humanReport(report);
    expect(text).to.match(/linear × map-once\s+ok\s+CORR\s+skip/);
    expect(text).to.match(/CORR!/);
    expect(text).to.include('xenabi conformance --scenario quiet --arch x86_64 --guest linear --toolstack deep-tracking --memory 16M --seed 7');
    expect(text).to.match(/summary: 4 cells/);
  });
});
