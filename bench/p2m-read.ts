/**
 * Figure 6 of issue 8: reading p2m elements through the abi/ accessors against reading the raw
 * typed array, for both guest ABIs. Three readers of the same bytes, each a sequential pass over
 * every entry that counts the INVALID ones (a compare, as a toolstack's consistency check does; no
 * arithmetic that would itself allocate):
 *
 * - raw: the typed array of the guest width — `BigUint64Array` on x86_64; on x86_32 the entries are
 *   4 bytes, so the raw array is a `Uint32Array` (widened with `BigInt()` as the accessor does);
 * - `P2mArray.get(pfn)` (abi/p2m.ts), the kit's typed-array path, bounds-checked;
 * - a struct view: a leaf page declared with abi/'s `defineStruct` as `unsigned long entries[N]`,
 *   one long-lived view per page, read with `entries.get(i)` (typed-struct underneath).
 *
 * Both ABIs run interleaved in each sample, so `P2mArray.get` is measured in the state a process
 * that handles both ABIs keeps it in (one `get` serving two array types), and drift hits all six
 * readers alike. The ratio is accessor / raw, medians of the samples.
 */

import {
  INVALID_P2M_ENTRY,
  P2mArray,
  PAGE_SIZE,
  X86_32,
  X86_64,
  array,
  defineStruct,
  field,
  perAbi,
  unsigned_long,
  type GuestAbi,
} from '../abi/index.js';
import type { BenchContext, BenchModule, BenchOutput } from './context.js';
import { median, spread, type Figure } from './results.js';

/** A p2m leaf page as a struct: what "reading the p2m through a struct view" means here. */
const p2m_leaf_page = defineStruct({
  name: 'p2m_leaf_page',
  header: '(none: a benchmark-local declaration of one p2m leaf page)',
  doc: 'One leaf page of the p2m tree: PAGE_SIZE / word entries.',
  fields: [field('entries', perAbi(array(unsigned_long, 1024), array(unsigned_long, 512)), 'pfn → mfn entries of this leaf.')] as const,
});

type Reader = () => number;

interface AbiReaders {
  readonly abi: GuestAbi;
  readonly raw: Reader;
  readonly get: Reader;
  readonly view: Reader;
  readonly expected: number;
}

function readersFor(abi: GuestAbi, entries: number): AbiReaders {
  const p2m = P2mArray.alloc(abi, entries, 0n);
  // Every 7th entry INVALID, the others mfns: the count is known, so every reader is checked.
  let expected = 0;
  for (let pfn = 0; pfn < entries; pfn++) {
    if (pfn % 7 === 0) {
      p2m.set(pfn, INVALID_P2M_ENTRY(abi));
      expected++;
    } else {
      p2m.set(pfn, BigInt(0x100000 + pfn));
    }
  }
  const invalid = INVALID_P2M_ENTRY(abi);
  const perPage = PAGE_SIZE / abi.wordSize;
  const bytes = p2m.asBytes();
  const pages = Array.from({ length: entries / perPage }, (_, i) => p2m_leaf_page.view(abi, bytes, i * PAGE_SIZE).entries);

  const get: Reader = () => {
    let n = 0;
    for (let pfn = 0; pfn < entries; pfn++) if (p2m.get(pfn) === invalid) n++;
    return n;
  };
  const view: Reader = () => {
    let n = 0;
    for (const page of pages) for (let i = 0; i < perPage; i++) if (page.get(i) === invalid) n++;
    return n;
  };
  let raw: Reader;
  if (p2m.elements instanceof BigUint64Array) {
    const e = p2m.elements;
    raw = () => {
      let n = 0;
      for (let pfn = 0; pfn < entries; pfn++) if (e[pfn] === invalid) n++;
      return n;
    };
  } else {
    const e = p2m.elements;
    raw = () => {
      let n = 0;
      for (let pfn = 0; pfn < entries; pfn++) if (BigInt(e[pfn]!) === invalid) n++;
      return n;
    };
  }
  return { abi, raw, get, view, expected };
}

function timeNs(reader: Reader, expected: number, what: string): number {
  const t = process.hrtime.bigint();
  const n = reader();
  const ns = Number(process.hrtime.bigint() - t);
  if (n !== expected) throw new Error(`Fail: ${what} counted INVALID entries, expected ${expected}, got ${n}`);
  return ns;
}

export function benchP2mRead(ctx: BenchContext): BenchOutput {
  const entries = ctx.quick ? 1 << 18 : 1 << 20;
  const samples = ctx.quick ? 5 : 11;
  const abis = [readersFor(X86_64, entries), readersFor(X86_32, entries)];
  const kinds = ['raw', 'get', 'view'] as const;
  const times = new Map<string, number[]>();
  for (let s = -2; s < samples; s++) {
    // Two untimed rounds first: every reader optimised, with both ABIs seen.
    for (const r of abis) {
      for (const kind of kinds) {
        const ns = timeNs(r[kind], r.expected, `${r.abi.name} ${kind}`);
        if (s < 0) continue;
        const key = `${r.abi.name} ${kind}`;
        times.set(key, [...(times.get(key) ?? []), ns / entries]);
      }
    }
  }

  const figures: Figure[] = [];
  for (const r of abis) {
    const raw = times.get(`${r.abi.name} raw`)!;
    const rawName = r.abi.wordSize === 8 ? 'BigUint64Array' : 'Uint32Array';
    for (const [kind, label] of [
      ['get', 'P2mArray.get'],
      ['view', 'struct view (entries.get)'],
    ] as const) {
      const t = times.get(`${r.abi.name} ${kind}`)!;
      const value = median(t);
      figures.push({
        figure: '6',
        name: `p2m read, ${r.abi.name}: ${label} vs raw ${rawName}`,
        value,
        unit: 'ns/entry',
        machine: ctx.machine,
        baseline: median(raw),
        ratio: value / median(raw),
        detail: `median of ${samples} sequential passes over ${entries} entries (${spread(t)}; raw ${spread(raw)})`,
      });
    }
  }
  return { figures };
}

export const p2mReadModule: BenchModule = {
  id: 'p2m-read',
  title: 'figure 6: p2m elements through abi/ accessors vs a raw typed array',
  run: benchP2mRead,
};
