/**
 * The frame-number arrays of memory_op (`XEN_GUEST_HANDLE(xen_pfn_t) extent_start`): Xen's
 * `__copy_from_guest_offset` / `__copy_to_guest_offset` on one element at a time, done here a page
 * run at a time with the same outcome. A read stops at the first element with an unmapped byte; a
 * write stores whole elements up to the first one with an unwritable byte, of which it stores the
 * bytes before the fault, as Xen's copy does. Elements are handed around as (low, high) 32-bit
 * word pairs so 64-bit frame numbers stay exact.
 *
 * Two kinds: an array in guest memory (4-byte `compat_pfn_t` or 8-byte `xen_pfn_t`), and the
 * compat argument translation area, Xen's own memory where the x86_32 path stages a native copy of
 * the array (xen/common/compat/memory.c).
 */

import { PAGE_SIZE } from '../../../abi/index.js';
import type { Domain } from '../../domain.js';
import type { Xen } from '../../xen.js';
import { U64_MASK, u32At } from './common.js';

export interface PfnList {
  /**
   * Copies elements [from, from + count) into `dst` as (low, high) pairs; returns how many leading
   * elements could be read.
   */
  read(from: bigint, count: number, dst: Uint32Array): number;
  /** How many leading elements of [from, from + count) a store would write whole. */
  writable(from: bigint, count: number): number;
  /**
   * Stores elements [from, from + count) from (low, high) pairs in `src`; false on a fault, with
   * the bytes before the fault written.
   */
  write(from: bigint, count: number, src: Uint32Array): boolean;
}

/** An array of `width`-byte frame numbers at guest virtual address `base` of `dom`. */
export class GuestPfnList implements PfnList {
  private readonly w: bigint;

  constructor(
    private readonly xen: Xen,
    private readonly dom: Domain,
    readonly base: bigint,
    readonly width: 4 | 8,
  ) {
    this.w = BigInt(width);
  }

  /** Address of element `index`: pointer arithmetic on a 64-bit Xen, wrapping at 2^64. */
  private va(index: bigint): bigint {
    return (this.base + index * this.w) & U64_MASK;
  }

  /** Bytes reachable from `va` for `length` bytes before the first page that does not translate. */
  private reach(va: bigint, length: number, write: boolean, copyInto?: Uint8Array): number {
    let got = 0;
    let at = va;
    while (got < length) {
      const t = this.xen.translate(this.dom, at, write);
      if (!t) break;
      const len = Math.min(length - got, PAGE_SIZE - t.offset);
      if (copyInto) copyInto.set(this.xen.machine.bytes(t.mfn).subarray(t.offset, t.offset + len), got);
      got += len;
      if (got < length) at = (at + BigInt(len)) & U64_MASK;
    }
    return got;
  }

  read(from: bigint, count: number, dst: Uint32Array): number {
    if (count === 0) return 0;
    const width = this.width;
    const bytes = elementBytes(count * width);
    const n = Math.floor(this.reach(this.va(from), bytes.length, false, bytes) / width);
    // Assembled from the bytes rather than viewed (see u32At).
    if (width === 8) {
      for (let i = 0; i < 2 * n; i++) dst[i] = u32At(bytes, 4 * i);
    } else {
      for (let i = 0; i < n; i++) {
        dst[2 * i] = u32At(bytes, 4 * i);
        dst[2 * i + 1] = 0;
      }
    }
    return n;
  }

  writable(from: bigint, count: number): number {
    if (count === 0) return 0;
    return Math.floor(this.reach(this.va(from), count * this.width, true) / this.width);
  }

  write(from: bigint, count: number, src: Uint32Array): boolean {
    if (count === 0) return true;
    const width = this.width;
    const bytes = elementBytes(count * width);
    // Word i of the stored elements: every word for 8-byte elements, the low ones for 4-byte ones.
    const words = width === 8 ? 2 * count : count;
    const step = width === 8 ? 1 : 2;
    for (let i = 0; i < words; i++) {
      const w = src[i * step]!;
      bytes[4 * i] = w;
      bytes[4 * i + 1] = w >>> 8;
      bytes[4 * i + 2] = w >>> 16;
      bytes[4 * i + 3] = w >>> 24;
    }
    return this.xen.copyToGuest(this.dom, this.va(from), bytes);
  }
}

/**
 * Byte buffers for elements in transit, reused by every call (a hypercall handler never runs inside
 * another; a store copies the bytes): views by length, made once each. Callers fill every byte
 * they use.
 */
const elementBytesScratch = new Uint8Array(2 * PAGE_SIZE);
const elementBytesViews: (Uint8Array | undefined)[] = [];

function elementBytes(length: number): Uint8Array {
  if (length > elementBytesScratch.length) return new Uint8Array(length);
  return (elementBytesViews[length] ??= elementBytesScratch.subarray(0, length));
}

/**
 * Part of the compat translation area holding native `xen_pfn_t` elements [first, first + length):
 * Xen's memory, so reads and writes never fault.
 */
export class XlatPfnList implements PfnList {
  /** The elements as (low, high) pairs. */
  readonly words: Uint32Array;

  constructor(
    readonly first: bigint,
    readonly length: number,
  ) {
    this.words = new Uint32Array(2 * length);
  }

  private offset(from: bigint, count: number): number {
    const at = Number(from - this.first);
    if (at < 0 || at + count > this.length) {
      throw new RangeError(`xlat area: elements ${from}+${count} outside [${this.first}, +${this.length})`);
    }
    return 2 * at;
  }

  read(from: bigint, count: number, dst: Uint32Array): number {
    const at = this.offset(from, count);
    dst.set(this.words.subarray(at, at + 2 * count));
    return count;
  }

  writable(from: bigint, count: number): number {
    this.offset(from, count);
    return count;
  }

  write(from: bigint, count: number, src: Uint32Array): boolean {
    this.words.set(src.subarray(0, 2 * count), this.offset(from, count));
    return true;
  }
}

/**
 * Stores elements [from, from + count) as Xen does one by one: whole elements up to the first that
 * faults, and that one's bytes before the fault. Returns how many elements were stored whole.
 */
export function storeElements(list: PfnList, from: bigint, count: number, src: Uint32Array): number {
  const whole = list.writable(from, count);
  list.write(from, whole, src);
  if (whole < count) list.write(from + BigInt(whole), 1, src.subarray(2 * whole));
  return whole;
}
