/**
 * The expected table holds for a reduced but representative slice of the built-in matrix (the
 * whole matrix is `xenabi conformance`, timed by bench figure 4), and the shards of the full cell
 * list are disjoint and cover it.
 */

import { expect } from 'chai';
import { runCell, type CellSpec } from '../../conformance/cell.js';
import { expectationFor, meetsExpectation, FAULT_EXPECTATIONS } from '../../conformance/expected.js';
import { allCells, defaultSelection, shardCells, DEFAULT_MEMORY_PAGES } from '../../conformance/matrix.js';
import { FAULT_NAMES } from '../../guest-emu/variants.js';

const cell = (scenario: string, guest: string, toolstack: string, arch: 'x86_64' | 'x86_32' = 'x86_64'): CellSpec => ({ scenario, arch, guest, toolstack, memoryPages: DEFAULT_MEMORY_PAGES, seed: 1 });

describe('conformance matrix: expected cells', function () {
  this.timeout(300_000);
  const slice: CellSpec[] = [
    cell('quiet', 'linear', 'map-once'),
    cell('balloon-storm', 'linear', 'map-once', 'x86_32'),
    cell('balloon-storm', 'legacy-tree', 'deep-tracking'),
    cell('p2m-growth', 'tree+linear', 'abort-on-change'),
    cell('p2m-growth', 'legacy-tree', 'abort-on-change', 'x86_32'),
    cell('tree-relayout', 'linear', 'deep-tracking'),
    cell('remus-balloon', 'linear', 'abort-on-change'),
    cell('p2m-growth', 'skip-bump', 'deep-tracking'),
    cell('quiet', 'early-p2m-cr3', 'map-once', 'x86_32'),
  ];
  for (const spec of slice) {
    it(`${spec.scenario} ${spec.arch} ${spec.guest} × ${spec.toolstack} meets its expectation`, async () => {
      const r = await runCell(spec);
      const e = expectationFor(r)!;
      expect(e, 'every built-in cell has an expectation').to.not.equal(undefined);
      expect(meetsExpectation(r, e), `got ${r.verdict} ${r.outcome} [${r.rules_violated}] (${r.reason}); expected ${e.verdict} ${e.outcome} [${e.rules}]`).to.equal(true);
    });
  }

  it('every built-in cell has an expectation, and every fault is expected to be caught by a guest rule somewhere', () => {
    for (const c of allCells(defaultSelection())) expect(expectationFor(c), JSON.stringify(c)).to.not.equal(undefined);
    for (const f of FAULT_NAMES) expect(FAULT_EXPECTATIONS[f].rules.every((id) => id.startsWith('G-'))).to.equal(true);
  });

  it('the --shard slices are disjoint and their union is the full cell list', () => {
    const full = allCells(defaultSelection());
    const key = (c: CellSpec): string => `${c.scenario}/${c.arch}/${c.guest}/${c.toolstack}/${c.seed}`;
    const seen = new Map<string, number>();
    for (let i = 1; i <= 4; i++) for (const c of shardCells(full, { index: i, count: 4 })) seen.set(key(c), (seen.get(key(c)) ?? 0) + 1);
    expect(seen.size).to.equal(full.length);
    expect([...seen.values()].every((n) => n === 1)).to.equal(true);
  });
});
