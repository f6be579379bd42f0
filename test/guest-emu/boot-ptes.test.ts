/**
 * Boot builds the p2m list's PTE pages from `pfn_to_mfn` of every leaf, read a list page at a time
 * (p2m-list.ts, P2mBatchReader): every entry must be what one `mfnOf` per leaf gives, on both ABIs,
 * with real, shared missing, shared identity and mixed leaves, and with the list's last leaf short.
 */

import { expect } from 'chai';
import { PAGE_SIZE, X86_32, X86_64 } from '../../abi/index.js';
import { buildDomain } from '../../xen-emu/builder.js';
import { adjustGuestL1e } from '../../xen-emu/pagetable.js';
import { Xen } from '../../xen-emu/xen.js';
import { PvGuest } from '../../guest-emu/guest.js';
import { PTE_KERNEL, PTE_KERNEL_RO } from '../../guest-emu/kernel-mm.js';
import { startInfoFlagsFor } from '../../guest-emu/variants.js';

describe('guest-emu: boot PTE pages of the p2m list', () => {
  for (const abi of [X86_32, X86_64]) {
    it(`${abi.name}: every PTE maps mfnOf(its leaf page), writable for real leaves, read-only for shared ones`, function () {
      this.timeout(20_000);
      const xen = new Xen({ maxPage: 1 << 16 });
      const built = buildDomain(xen, { abi, memoryPages: 9001, maxPages: 12000, flags: startInfoFlagsFor('linear') });
      const fpp = PAGE_SIZE / abi.wordSize;
      // A mixed leaf (part identity), whole identity leaves, then missing ones.
      const identityRanges = [{ start: 32 * fpp + 5, end: 32 * fpp + 9 }, { start: 34 * fpp, end: 37 * fpp }];
      const g = PvGuest.start(built, xen, { variant: 'linear', identityRanges });
      const dom = g.binding.dom;
      let checked = 0;
      for (let pmd = 0; pmd < g.list.ptePfn.length; pmd++) {
        const ptePfn = g.list.ptePfn[pmd]!;
        if (ptePfn < 0) continue;
        const page = xen.machine.bytes(Number(g.mfnOf(ptePfn)));
        const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
        for (let e = 0; e < 512; e++) {
          const leaf = pmd * 512 + e;
          if (leaf >= g.list.leafPfn.length) break;
          const real = g.list.leafPfn[leaf]! >= 0;
          const want = adjustGuestL1e((g.mfnOf(g.list.leafPagePfn(leaf)) << 12n) | (real ? PTE_KERNEL : PTE_KERNEL_RO), dom);
          expect(view.getBigUint64(e * 8, true), `PMD ${pmd} entry ${e}`).to.equal(want);
          checked++;
        }
      }
      expect(checked).to.be.at.least(512);
    });
  }
});
