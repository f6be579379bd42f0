/** Run-length encodings used by trace events (format.ts): consecutive entries that repeat a value or count up by one. */

import { PAGE_SIZE } from '../../abi/index.js';
import type { Machine } from '../../xen-emu/machine.js';
import { FRAME_UNMAPPED, type FrameRun, type WordRun } from './format.js';
import type { Backing } from './views.js';

/** Builds WordRuns from (index, value) pairs given in ascending index order; the value is two 32-bit halves. */
export class WordRunBuilder {
  readonly runs: WordRun[] = [];
  private first = -1;
  private lo = 0;
  private hi = 0;
  private count = 0;
  private step: 0 | 1 | -1 = -1;

  push(index: number, lo: number, hi: number): void {
    if (this.count > 0 && index === this.first + this.count) {
      const sameHi = hi === this.hi;
      const eq = sameHi && lo === this.lo;
      const next = sameHi && lo === this.lo + this.count && this.lo + this.count < 2 ** 32;
      if (this.count === 1 && (eq || next)) {
        this.step = eq ? 0 : 1;
        this.count++;
        return;
      }
      if ((this.step === 0 && eq) || (this.step === 1 && next)) {
        this.count++;
        return;
      }
    }
    this.flush();
    this.first = index;
    this.lo = lo;
    this.hi = hi;
    this.count = 1;
    this.step = -1;
  }

  flush(): void {
    if (this.count === 0) return;
    this.runs.push([this.first, (BigInt(this.hi) << 32n) | BigInt(this.lo), this.count, this.step === 1 ? 1 : 0]);
    this.count = 0;
  }

  done(): WordRun[] {
    this.flush();
    return this.runs;
  }
}

/** Builds FrameRuns from one frame per page, in page order. */
export function frameRuns(frames: ArrayLike<number>, from = 0, to = frames.length, skipUnmapped = true): FrameRun[] {
  const runs: FrameRun[] = [];
  let first = -1;
  let mfn = 0;
  let count = 0;
  let step: 0 | 1 = 0;
  const flush = (): void => {
    if (count > 0 && !(skipUnmapped && mfn === FRAME_UNMAPPED)) runs.push([first, mfn, count, step]);
    count = 0;
  };
  for (let page = from; page < to; page++) {
    const f = frames[page]!;
    if (count > 0 && page === first + count) {
      if (f === mfn && (count === 1 || step === 0)) {
        step = 0;
        count++;
        continue;
      }
      if (mfn >= 0 && f === mfn + count && (count === 1 || step === 1)) {
        step = 1;
        count++;
        continue;
      }
    }
    flush();
    first = page;
    mfn = f;
    count = 1;
    step = 0;
  }
  flush();
  return runs;
}

/** The p2m entries held by the frames backing pages [0, backing.pages), as WordRuns (INVALID entries left out). */
export function p2mRuns(m: Machine, backing: Backing, wordSize: 4 | 8): WordRun[] {
  const fpp = PAGE_SIZE / wordSize;
  const b = new WordRunBuilder();
  const allInvalid = new Map<number, boolean>();
  for (let page = 0; page < backing.pages; page++) {
    const mfn = backing.get(page);
    if (mfn < 0 || allInvalid.get(mfn) === true) continue;
    const bytes = m.bytes(mfn);
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, PAGE_SIZE / 4);
    let any = false;
    for (let i = 0; i < fpp; i++) {
      const lo = wordSize === 8 ? words[2 * i]! : words[i]!;
      const hi = wordSize === 8 ? words[2 * i + 1]! : 0;
      if (lo === 0xffffffff && (wordSize === 4 || hi === 0xffffffff)) continue;
      any = true;
      b.push(page * fpp + i, lo, hi);
    }
    if (!any) allInvalid.set(mfn, true);
  }
  return b.done();
}

/** The entries of one page of the p2m held by `mfn` (FRAME_UNMAPPED: none), as WordRuns. */
export function pageRuns(m: Machine, mfn: number, page: number, wordSize: 4 | 8): WordRun[] {
  const fpp = PAGE_SIZE / wordSize;
  const b = new WordRunBuilder();
  if (mfn === FRAME_UNMAPPED || mfn < 0) return [];
  const bytes = m.bytes(mfn);
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, PAGE_SIZE / 4);
  for (let i = 0; i < fpp; i++) {
    const lo = wordSize === 8 ? words[2 * i]! : words[i]!;
    const hi = wordSize === 8 ? words[2 * i + 1]! : 0;
    if (lo === 0xffffffff && (wordSize === 4 || hi === 0xffffffff)) continue;
    b.push(page * fpp + i, lo, hi);
  }
  return b.done();
}
