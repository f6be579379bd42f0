/** Each toolstack rule fires where it should, from a real migration, and stays silent on deep-tracking. */

import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { runCell, type CellSpec } from '../../conformance/cell.js';
import { DEFAULT_MEMORY_PAGES } from '../../conformance/matrix.js';

const cell = (scenario: string, guest: string, toolstack: string): CellSpec => ({ scenario, arch: 'x86_64', guest, toolstack, memoryPages: DEFAULT_MEMORY_PAGES, seed: 1 });

describe('toolstack rules', function () {
  this.timeout(300_000);
  const cases: [string, string, string, string][] = [
    ['T-REMAP-01', 'p2m-growth', 'linear', 'map-once'],
    ['T-RESEND-01', 'balloon-out-after-sent', 'linear', 'abort-on-change'],
    ['T-SILENT-01', 'balloon-out-after-sent', 'linear', 'map-once'],
    ['T-REMUS-01', 'remus-balloon', 'linear', 'map-once'],
    ['T-DEFER-01', 'balloon-steady', 'forgotten-m2p', 'map-once'],
  ];
  for (const [rule, scenario, guest, toolstack] of cases) {
    it(`${rule} fires on ${guest} × ${toolstack} in ${scenario} and stays silent on deep-tracking`, async () => {
      const bad = await runCell(cell(scenario, guest, toolstack));
      expect(bad.rules_violated, bad.reason).to.include(rule);
      const good = await runCell(cell(scenario, guest, 'deep-tracking'));
      expect(good.rules_violated.filter((id) => id.startsWith('T-')), good.reason).to.deep.equal([]);
    });
  }
});

describe('toolstack rules: T-ABORT-01', function () {
  this.timeout(120_000);
  const givesUp = fileURLToPath(new URL('../fixtures/toolstacks/gives-up.js', import.meta.url));

  it('fires on a toolstack that aborts the save of a guest that changed nothing', async () => {
    const r = await runCell(cell('quiet', 'linear', givesUp));
    expect(r.outcome, r.reason).to.equal('aborted');
    expect(r.rules_violated).to.deep.equal(['T-ABORT-01']);
    expect(r.verdict).to.equal('FAILURE');
  });

  it('stays silent where an abort has a reason: abort-on-change on a growing list guest', async () => {
    const r = await runCell(cell('p2m-growth', 'linear', 'abort-on-change'));
    expect(r.outcome, r.reason).to.equal('aborted');
    expect(r.rules_violated).to.not.include('T-ABORT-01');
  });
});
