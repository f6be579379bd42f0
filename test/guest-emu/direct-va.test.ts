/**
 * `KernelMm.directVa` adds the pfn's offset to the direct map's base with one BigInt operation when
 * the sum needs no wrap or canonicalisation; here it is checked against the general BigInt form
 * (`toVa(base + pfn * PAGE_SIZE)`) on both ABIs, up to and past the point where the address space
 * ends, and on bad pfns (negative, fractional), whose errors must stay the same.
 */

import { expect } from 'chai';
import { X86_32, X86_64, type GuestAbi } from '../../abi/index.js';
import { KernelMm, type MmContext } from '../../guest-emu/kernel-mm.js';

/** A KernelMm whose context answers only what the direct-map helpers use. */
function kernelMm(abi: GuestAbi, virtBase: bigint, lowmemPfns: number): KernelMm {
  const ctx = { abi, pages: { isLowmem: (pfn: number) => pfn < lowmemPfns } } as unknown as MmContext;
  return new KernelMm(ctx, { rootPfn: 1, virtBase, bootstrapPfns: 64, lowmemPfns });
}

function outcome(f: () => bigint): string {
  try {
    return `0x${f().toString(16)}`;
  } catch (e) {
    return `${(e as Error).constructor.name}: ${(e as Error).message}`;
  }
}

describe('guest-emu: direct-map addresses computed with numbers agree with the BigInt form', () => {
  const setups: [string, GuestAbi, bigint, number][] = [
    // x86_64: the map ends 0x778000000000 bytes above 0xffff888000000000; pfns past it wrap.
    ['x86_64', X86_64, 0x400000n, 2 ** 36],
    ['x86_32', X86_32, 0xc0000000n, 0x35800],
  ];
  for (const [name, abi, virtBase, lowmemPfns] of setups) {
    it(`${name}: directVa of every interesting pfn`, () => {
      const mm = kernelMm(abi, virtBase, lowmemPfns);
      const room = Number(((abi.wordSize === 8 ? 1n << 64n : 1n << 32n) - mm.directBase) / 4096n);
      const pfns = [0, 1, 2, 511, 512, 12345, 0x7ffff, 2 ** 27 + 3, room - 1, room, room + 1, lowmemPfns - 1, lowmemPfns, -1, -4096, 1.5, Number.NaN];
      for (const pfn of pfns) {
        const reference = outcome(() => {
          if (!(pfn < lowmemPfns)) return mm.directVa(pfn); // the highmem error, unchanged
          return mm.toVa(mm.directBase + BigInt(pfn) * 4096n);
        });
        expect(outcome(() => mm.directVa(pfn)), `pfn ${pfn}`).to.equal(reference);
      }
    });
  }
});
