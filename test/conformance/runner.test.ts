/** The runner: results in cell order, SKIP without running, CRASH for a hung cell. */

import { expect } from 'chai';
import { runCell } from '../../conformance/cell.js';
import { runCells } from '../../conformance/runner.js';

describe('conformance runner', function () {
  this.timeout(300_000);

  it('a scenario that does not apply is SKIP with its reason, without running', async () => {
    const r = await runCell({ scenario: 'tree-relayout', arch: 'x86_64', guest: 'linear', toolstack: 'map-once', memoryPages: 4096, seed: 1 });
    expect(r.verdict).to.equal('SKIP');
    expect(r.reason).to.match(/legacy-tree/);
  });

  it('a run that never ends is CRASH (no verdict), not a hang', async () => {
    const r = await runCell({ scenario: 'quiet', arch: 'x86_64', guest: 'linear', toolstack: 'map-once', memoryPages: 4096, seed: 1, maxSteps: 10 });
    expect(r.verdict).to.equal('CRASH');
  });

  it('returns results in cell order and reports each as it finishes', async () => {
    const specs = ['tree-relayout', 'quiet'].map((scenario) => ({ scenario, arch: 'x86_64' as const, guest: 'linear', toolstack: 'map-once', memoryPages: 4096, seed: 1 }));
    const seen: string[] = [];
    const rs = await runCells(specs, { jobs: 2, onResult: (r) => seen.push(r.scenario) });
    expect(rs.map((r) => r.scenario)).to.deep.equal(['tree-relayout', 'quiet']);
    expect(seen).to.have.members(['tree-relayout', 'quiet']);
    expect(rs[1]!.verdict).to.equal('SUCCESS');
  });
});
