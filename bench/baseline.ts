/**
 * The same-run baseline of issue 8: a sequential scan and a copy of N 8-byte entries in a typed
 * array, in ns per entry, measured in the process that measures the figure it is compared with.
 *
 * Scan: the entries are read as (low, high) `Uint32Array` pairs and folded with xor. That is how
 * the kit's hot paths read 8-byte entries (`P2mArray` compares its `words`, the machine and the
 * log-dirty bitmap are 32-bit arrays), and it is the fastest way JavaScript has to touch every
 * byte: reading a `BigUint64Array` element makes a heap BigInt each time (about twice as slow here,
 * which would flatter every ratio), and a `Float64Array` reads arbitrary 64-bit patterns as NaNs
 * and denormals (`NaN !== NaN`, so it cannot even compare entries). Copy:
 * `BigUint64Array.prototype.set` into a second array of N entries, a memmove (the element type does
 * not matter to a copy). Both arrays are allocated and touched before timing: the baseline is the
 * steady state, not page faults.
 */

import { median } from './results.js';

export interface Baseline {
  readonly entries: number;
  /** Sequential scan, ns per entry (median). */
  readonly scanNs: number;
  /** Copy into a second array, ns per entry (median). */
  readonly copyNs: number;
  /** scanNs + copyNs: what figures are compared with. */
  readonly totalNs: number;
  readonly samples: number;
  /** The scan's result, so that no compiler can drop the scan. */
  readonly checksum: number;
}

/** Xor of every (low, high) pair of `words[0, 2 * entries)`. */
function scan(words: Uint32Array, entries: number): number {
  let x = 0;
  const end = 2 * entries;
  for (let i = 0; i < end; i += 2) x ^= words[i]! ^ words[i + 1]!;
  return x;
}

/** Samples of at least this many entries: small N is repeated inside one timing. */
const MIN_ENTRIES_PER_SAMPLE = 1 << 20;

export function measureBaseline(entries: number, samples: number): Baseline {
  if (!Number.isSafeInteger(entries) || entries < 1) throw new RangeError(`baseline of ${entries} entries`);
  const src = new BigUint64Array(entries);
  const dst = new BigUint64Array(entries);
  const words = new Uint32Array(src.buffer);
  // Entries that look like p2m entries (mfns with a few high bits), written as words: fast to fill.
  for (let i = 0; i < entries; i++) {
    words[2 * i] = Math.imul(i, 0x9e3779b1) >>> 0;
    words[2 * i + 1] = i & 0xff;
  }
  const inner = Math.max(1, Math.ceil(MIN_ENTRIES_PER_SAMPLE / entries));
  let checksum = 0;
  // Warm-up: both functions optimised, dst touched.
  for (let i = 0; i < Math.min(3, inner * 2); i++) {
    checksum ^= scan(words, entries);
    dst.set(src);
  }
  const scanNs: number[] = [];
  const copyNs: number[] = [];
  for (let s = 0; s < samples; s++) {
    let t = process.hrtime.bigint();
    for (let k = 0; k < inner; k++) checksum ^= scan(words, entries);
    scanNs.push(Number(process.hrtime.bigint() - t) / (inner * entries));
    t = process.hrtime.bigint();
    for (let k = 0; k < inner; k++) dst.set(src);
    copyNs.push(Number(process.hrtime.bigint() - t) / (inner * entries));
  }
  if (dst[entries - 1] !== src[entries - 1]) throw new Error('baseline: the copy did not copy');
  const scanMedian = median(scanNs);
  const copyMedian = median(copyNs);
  return { entries, scanNs: scanMedian, copyNs: copyMedian, totalNs: scanMedian + copyMedian, samples, checksum };
}

/** Measures each N once per run; the figures that share an N share its baseline. */
export class Baselines {
  private readonly measured = new Map<number, Baseline>();

  constructor(private readonly samples: number) {}

  of(entries: number): Baseline {
    let b = this.measured.get(entries);
    if (!b) {
      b = measureBaseline(entries, this.samples);
      this.measured.set(entries, b);
    }
    return b;
  }

  get all(): readonly Baseline[] {
    return [...this.measured.values()];
  }
}
