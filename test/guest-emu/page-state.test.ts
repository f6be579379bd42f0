/**
 * The guest's page states (guest-emu/page-state.ts) against a reference model kept in plain maps
 * and arrays: the bulk paths (whole-block fills, the free counts rebuilt when the pfn range grows)
 * and the balloon list's typed index must give the same uses, mapped bits, free counts, k-th free
 * pfns and balloon order as one pfn at a time.
 */

import { expect } from 'chai';
import { PageStates, PageUse, PfnIndexTable } from '../../guest-emu/page-state.js';
import { Rng } from '../../xen-emu/rng.js';

/** setUse one pfn at a time, with a Map for the balloon index: the semantics the fast paths keep. */
class ReferenceStates {
  readonly uses = new Map<number, PageUse>();
  readonly mapped = new Set<number>();
  readonly balloon: number[] = [];
  private readonly index = new Map<number, number>();

  setUse(first: number, use: PageUse, count = 1): void {
    for (let pfn = first; pfn < first + count; pfn++) {
      const old = this.uses.get(pfn) ?? PageUse.Hole;
      if (old === use) continue;
      if (old === PageUse.Ballooned) {
        const i = this.index.get(pfn)!;
        const last = this.balloon.pop()!;
        if (last !== pfn) {
          this.balloon[i] = last;
          this.index.set(last, i);
        }
        this.index.delete(pfn);
      }
      if (use === PageUse.Ballooned) {
        this.index.set(pfn, this.balloon.length);
        this.balloon.push(pfn);
      }
      this.uses.set(pfn, use);
    }
  }

  free(): number[] {
    return [...this.uses].filter(([, u]) => u === PageUse.Free).map(([p]) => p).sort((a, b) => a - b);
  }
}

describe('guest-emu: page states', () => {
  it('PfnIndexTable agrees with a Map through inserts, updates, deletes (backward shifts) and rehashes', function () {
    this.timeout(20_000);
    const rng = new Rng(3);
    const table = new PfnIndexTable();
    const ref = new Map<number, number>();
    for (let step = 0; step < 200_000; step++) {
      // Clustered keys (runs of pfns) and scattered ones, so probe runs wrap and shift.
      const pfn = rng.chance(0.5) ? rng.below(4096) : rng.below(1 << 28);
      const r = rng.below(10);
      if (r < 5) {
        table.set(pfn, step);
        ref.set(pfn, step);
      } else if (r < 8) {
        table.delete(pfn);
        ref.delete(pfn);
      } else {
        expect(table.get(pfn)).to.equal(ref.get(pfn) ?? -1);
      }
      if (step % 50_000 === 0) for (const [k, v] of ref) if (table.get(k) !== v) expect.fail(`pfn ${k}: ${table.get(k)} instead of ${v}`);
    }
    expect(table.size).to.equal(ref.size);
    for (const [k, v] of ref) if (table.get(k) !== v) expect.fail(`pfn ${k}: ${table.get(k)} instead of ${v}`);
  });

  it('setUse over mixed ranges (fresh, mapped, ballooned, free, growing) matches the reference model', function () {
    this.timeout(20_000);
    const rng = new Rng(11);
    const s = new PageStates(3000, 100, 9000);
    const ref = new ReferenceStates();
    const uses = [PageUse.Hole, PageUse.Free, PageUse.Ballooned, PageUse.Reserved, PageUse.Kernel, PageUse.Transit];
    for (let step = 0; step < 3000; step++) {
      const first = rng.below(12_000);
      const count = rng.chance(0.2) ? 1 + rng.below(5000) : 1 + rng.below(8);
      const use = uses[rng.below(uses.length)]!;
      s.setUse(first, use, count);
      ref.setUse(first, use, count);
      if (rng.chance(0.3)) {
        const pfn = rng.below(12_000);
        const on = rng.chance(0.5);
        s.setMapped(pfn, on);
        if (on) ref.mapped.add(pfn);
        else ref.mapped.delete(pfn);
      }
    }
    for (let pfn = 0; pfn < 18_000; pfn++) {
      expect(s.use(pfn), `use of ${pfn}`).to.equal(ref.uses.get(pfn) ?? PageUse.Hole);
      expect(s.isMapped(pfn), `mapped ${pfn}`).to.equal(ref.mapped.has(pfn));
    }
    const free = ref.free();
    expect(s.freeCount).to.equal(free.length);
    for (let k = 0; k < free.length; k += 97) expect(s.freeAt(k)).to.equal(free[k]);
    expect(s.freeLowmemCount).to.equal(free.filter((p) => p < 8192).length);
    expect(s.balloonSize).to.equal(ref.balloon.length);
    ref.balloon.forEach((pfn, i) => expect(s.balloonAt(i)).to.equal(pfn));
    expect(() => s.balloonAt(ref.balloon.length)).to.throw(`balloon index ${ref.balloon.length} outside the ${ref.balloon.length} ballooned pfns`);
    expect(() => s.balloonAt(-1)).to.throw('balloon index -1 outside');
    expect(() => s.balloonAt(0.5)).to.throw('balloon index 0.5 outside');
  });
});
