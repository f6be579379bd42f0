/**
 * The p2m (pfn → mfn table) as a PV guest keeps it and a toolstack reads it: the 3-level tree
 * geometry, the entry encoding Linux uses (INVALID, foreign and identity markers), the
 * `pfn_to_mfn_frame_list_list` states, the `p2m_generation` protocol, and `P2mArray`, the typed-array
 * path for reading and writing elements.
 *
 * No Xen public header defines any of this beyond the `arch_shared_info` fields (shared_info.ts):
 * the geometry follows from the page size and the guest word (Linux `arch/x86/xen/p2m.c`, libxc
 * `xg_sr_save_x86_pv.c`), the markers are Linux's (`arch/x86/include/asm/xen/page.h`), and the
 * generation protocol is the one `arch-x86/xen.h` describes in prose and Linux implements.
 *
 * Entries (MFNs) are `bigint` on both ABIs; pfns used as indices are `number` (a p2m never holds
 * more than 2^30 of them).
 */

import { externalConstants } from './constants.js';
import { AbiRangeError, AbiViewError } from './errors.js';
import { PAGE_SIZE, wordMask, type GuestAbi, type GuestAbiName } from './guest-abi.js';
import { TOOLS_INVALID_MFN } from './page.js';

/** Hex for frame numbers, addresses and flags in messages (the kit's one failure shape); other values as they are. */
function hex(value: unknown): string {
  return (typeof value === 'bigint' && value >= 0n) || (typeof value === 'number' && Number.isInteger(value) && value >= 0)
    ? `0x${value.toString(16)}`
    : String(value);
}

// ---------------------------------------------------------------------------------------------
// Tree geometry: top page (the fll) → mid pages → leaf pages, each one page of guest words.
// ---------------------------------------------------------------------------------------------

/** Linux `P2M_PER_PAGE` (= mid and top entries per page too) for each ABI: PAGE_SIZE / word. */
export const P2M_PER_PAGE_X86_64 = 512;
export const P2M_PER_PAGE_X86_32 = 1024;
/** Linux `MAX_P2M_PFN`: pfns one top page can reach, P2M_PER_PAGE³ (512 GiB / 4 TiB of guest RAM). */
export const MAX_P2M_PFN_X86_64 = 2 ** 27;
export const MAX_P2M_PFN_X86_32 = 2 ** 30;

/** Linux `INVALID_P2M_ENTRY` (`~0UL`): no frame — missing, ballooned out, or beyond the p2m. */
export const INVALID_P2M_ENTRY_X86_64 = 0xffffffffffffffffn;
export const INVALID_P2M_ENTRY_X86_32 = 0xffffffffn;
/** Linux `FOREIGN_FRAME_BIT` (top bit of the word): the entry holds a grant-mapped foreign MFN. */
export const FOREIGN_FRAME_BIT_X86_64 = 1n << 63n;
export const FOREIGN_FRAME_BIT_X86_32 = 1n << 31n;
/** Linux `IDENTITY_FRAME_BIT` (next bit down): a 1:1 (MMIO/ACPI) pfn, stored as `pfn | bit`. */
export const IDENTITY_FRAME_BIT_X86_64 = 1n << 62n;
export const IDENTITY_FRAME_BIT_X86_32 = 1n << 30n;

export const P2M_LINUX_CONSTANTS = externalConstants(
  'Linux 6.1 arch/x86/include/asm/xen/page.h (INVALID_P2M_ENTRY, FOREIGN_FRAME_BIT, IDENTITY_FRAME_BIT) ' +
    'and arch/x86/xen/p2m.c (P2M_PER_PAGE, MAX_P2M_PFN), per guest ABI. Linux 6.1 builds PV for x86_64 ' +
    'only; the x86_32 values are the same formulas with a 32-bit long, as libxc assumes for 32-bit guests',
  {
    P2M_PER_PAGE_X86_64,
    P2M_PER_PAGE_X86_32,
    MAX_P2M_PFN_X86_64,
    MAX_P2M_PFN_X86_32,
    INVALID_P2M_ENTRY_X86_64,
    INVALID_P2M_ENTRY_X86_32,
    FOREIGN_FRAME_BIT_X86_64,
    FOREIGN_FRAME_BIT_X86_32,
    IDENTITY_FRAME_BIT_X86_64,
    IDENTITY_FRAME_BIT_X86_32,
  },
);

export interface P2mGeometry {
  readonly abi: GuestAbiName;
  /** Bytes per entry: the guest word. */
  readonly entryBytes: 4 | 8;
  /** Entries in one page, the same for leaf, mid and top pages (libxc's `fpp`). */
  readonly entriesPerPage: 512 | 1024;
  /** log2(entriesPerPage): 9 or 10. */
  readonly indexBits: 9 | 10;
  /** Pfns one leaf page covers (2 MiB / 4 MiB of guest RAM). */
  readonly pfnsPerLeaf: number;
  /** Pfns one mid page covers (1 GiB / 4 GiB of guest RAM). */
  readonly pfnsPerMid: number;
  /** Pfns the whole tree can hold: 2^27 (512 GiB) / 2^30 (4 TiB). */
  readonly maxPfns: number;
}

const P2M_X86_64: P2mGeometry = Object.freeze({
  abi: 'x86_64',
  entryBytes: 8,
  entriesPerPage: P2M_PER_PAGE_X86_64,
  indexBits: 9,
  pfnsPerLeaf: P2M_PER_PAGE_X86_64,
  pfnsPerMid: P2M_PER_PAGE_X86_64 ** 2,
  maxPfns: MAX_P2M_PFN_X86_64,
});

const P2M_X86_32: P2mGeometry = Object.freeze({
  abi: 'x86_32',
  entryBytes: 4,
  entriesPerPage: P2M_PER_PAGE_X86_32,
  indexBits: 10,
  pfnsPerLeaf: P2M_PER_PAGE_X86_32,
  pfnsPerMid: P2M_PER_PAGE_X86_32 ** 2,
  maxPfns: MAX_P2M_PFN_X86_32,
});

export function p2mGeometry(abi: GuestAbi): P2mGeometry {
  return abi.name === 'x86_64' ? P2M_X86_64 : P2M_X86_32;
}

function checkTreePfn(g: P2mGeometry, pfn: number): number {
  if (!Number.isInteger(pfn) || pfn < 0 || pfn >= g.maxPfns) {
    throw new AbiViewError(`pfn ${hex(pfn)} outside the ${g.abi} p2m tree [0, ${hex(g.maxPfns)})`);
  }
  return pfn;
}

/** Slot of the top page (fll) whose mid page covers `pfn`: `pfn >> 18` / `pfn >> 20`. */
export function p2mTopIndex(abi: GuestAbi, pfn: number): number {
  const g = p2mGeometry(abi);
  return checkTreePfn(g, pfn) >>> (2 * g.indexBits);
}

/** Slot of the mid page whose leaf covers `pfn`: `(pfn >> 9) & 511` / `(pfn >> 10) & 1023`. */
export function p2mMidIndex(abi: GuestAbi, pfn: number): number {
  const g = p2mGeometry(abi);
  return (checkTreePfn(g, pfn) >>> g.indexBits) & (g.entriesPerPage - 1);
}

/** Slot of `pfn` in its leaf page: `pfn & 511` / `pfn & 1023`. */
export function p2mLeafIndex(abi: GuestAbi, pfn: number): number {
  const g = p2mGeometry(abi);
  return checkTreePfn(g, pfn) & (g.entriesPerPage - 1);
}

/** Leaf pages needed for `pfnCount` entries (libxc's `p2m_frames` for `max_pfn + 1` entries). */
export function p2mLeafFrames(abi: GuestAbi, pfnCount: number): number {
  if (!Number.isInteger(pfnCount) || pfnCount < 0) throw new AbiViewError(`pfn count ${pfnCount} is not a count`);
  return Math.ceil(pfnCount / p2mGeometry(abi).entriesPerPage);
}

// ---------------------------------------------------------------------------------------------
// Entry encoding (Linux)
// ---------------------------------------------------------------------------------------------

/** `INVALID_P2M_ENTRY`: all ones at guest width. */
export function INVALID_P2M_ENTRY(abi: GuestAbi): bigint {
  return abi.name === 'x86_64' ? INVALID_P2M_ENTRY_X86_64 : INVALID_P2M_ENTRY_X86_32;
}

/** `FOREIGN_FRAME_BIT`: the top bit of the guest word. */
export function FOREIGN_FRAME_BIT(abi: GuestAbi): bigint {
  return abi.name === 'x86_64' ? FOREIGN_FRAME_BIT_X86_64 : FOREIGN_FRAME_BIT_X86_32;
}

/** `IDENTITY_FRAME_BIT`: the bit below the foreign bit. */
export function IDENTITY_FRAME_BIT(abi: GuestAbi): bigint {
  return abi.name === 'x86_64' ? IDENTITY_FRAME_BIT_X86_64 : IDENTITY_FRAME_BIT_X86_32;
}

function checkEntry(abi: GuestAbi, entry: bigint, what = 'p2m entry'): bigint {
  if (typeof entry !== 'bigint' || entry < 0n || entry > wordMask(abi)) {
    throw new AbiRangeError(what, hex(entry), abi.wordSize, false);
  }
  return entry;
}

/** The largest frame or pfn number an entry can carry without touching a marker bit. */
export function maxP2mFrame(abi: GuestAbi): bigint {
  return IDENTITY_FRAME_BIT(abi) - 1n;
}

export function isInvalidEntry(abi: GuestAbi, entry: bigint): boolean {
  return checkEntry(abi, entry) === INVALID_P2M_ENTRY(abi);
}

/** A grant-mapped foreign frame: the foreign bit is set and the entry is not INVALID. */
export function isForeignFrame(abi: GuestAbi, entry: bigint): boolean {
  checkEntry(abi, entry);
  return entry !== INVALID_P2M_ENTRY(abi) && (entry & FOREIGN_FRAME_BIT(abi)) !== 0n;
}

/** A 1:1 entry: the identity bit is set and the entry is not INVALID. */
export function isIdentityFrame(abi: GuestAbi, entry: bigint): boolean {
  checkEntry(abi, entry);
  return entry !== INVALID_P2M_ENTRY(abi) && (entry & IDENTITY_FRAME_BIT(abi)) !== 0n;
}

/** Linux `FOREIGN_FRAME(mfn)`. */
export function foreignFrame(abi: GuestAbi, mfn: bigint): bigint {
  if (checkEntry(abi, mfn, 'foreign mfn') > maxP2mFrame(abi)) {
    throw new AbiRangeError('foreign mfn (below the marker bits)', hex(mfn), abi.wordSize, false);
  }
  return mfn | FOREIGN_FRAME_BIT(abi);
}

/** Linux `IDENTITY_FRAME(pfn)`: what a 1:1 pfn's entry holds. */
export function identityFrame(abi: GuestAbi, pfn: bigint): bigint {
  if (checkEntry(abi, pfn, 'identity pfn') > maxP2mFrame(abi)) {
    throw new AbiRangeError('identity pfn (below the marker bits)', hex(pfn), abi.wordSize, false);
  }
  return pfn | IDENTITY_FRAME_BIT(abi);
}

/** Linux `pfn_to_mfn` on an entry: both marker bits stripped, except that INVALID stays INVALID. */
export function pfnToMfnEntry(abi: GuestAbi, entry: bigint): bigint {
  checkEntry(abi, entry);
  if (entry === INVALID_P2M_ENTRY(abi)) return entry;
  return entry & ~(FOREIGN_FRAME_BIT(abi) | IDENTITY_FRAME_BIT(abi));
}

/**
 * An element as libxc's `xc_pfn_to_mfn` hands it to the save loop: a 32-bit guest's `~0` widens to
 * the toolstack's 64-bit `INVALID_MFN`; everything else (markers included) passes unchanged.
 */
export function toolsP2mEntry(abi: GuestAbi, entry: bigint): bigint {
  checkEntry(abi, entry);
  return abi.name === 'x86_32' && entry === INVALID_P2M_ENTRY_X86_32 ? TOOLS_INVALID_MFN : entry;
}

// ---------------------------------------------------------------------------------------------
// pfn_to_mfn_frame_list_list
// ---------------------------------------------------------------------------------------------

/**
 * What `arch_shared_info.pfn_to_mfn_frame_list_list` says:
 * - `not-set-up`: 0, the guest has not published a tree (yet, or again after restore);
 * - `invalid-use-linear`: all ones at guest width, deliberately no tree: use the linear list;
 * - `valid`: an MFN no greater than `maxMfn`;
 * - `out-of-range`: any other value.
 */
export type FllState = 'not-set-up' | 'invalid-use-linear' | 'valid' | 'out-of-range';

/**
 * Classifies an fll value read at guest width. `maxMfn` is the bound the caller applies with `<=`;
 * libxc passes `XENMEM_maximum_ram_page`, which is the highest MFN + 1, so it admits one frame too
 * many (reference §2.6).
 */
export function classifyFll(abi: GuestAbi, fll: bigint, maxMfn: bigint): FllState {
  checkEntry(abi, fll, 'pfn_to_mfn_frame_list_list');
  if (typeof maxMfn !== 'bigint' || maxMfn < 0n) throw new AbiRangeError('max mfn', hex(maxMfn), 8, false);
  if (fll === 0n) return 'not-set-up';
  if (fll === wordMask(abi)) return 'invalid-use-linear';
  return fll <= maxMfn ? 'valid' : 'out-of-range';
}

// ---------------------------------------------------------------------------------------------
// p2m_generation: 0 on (re)publication; the guest adds 1 before and 1 after every change of which
// frame backs a page of the linear list, so it is odd during a change and even at rest. Element
// stores and max_pfn updates are not bracketed.
// ---------------------------------------------------------------------------------------------

/** The value the guest stores on every (re)publication of the p2m. */
export const P2M_GENERATION_RESET = 0n;
/** What one structural change (one PMD or PTE replaced in the linear list) adds. */
export const P2M_GENERATION_PER_CHANGE = 2n;

function checkGeneration(abi: GuestAbi, gen: bigint): bigint {
  return checkEntry(abi, gen, 'p2m_generation');
}

/** Even: no mapping change of the linear list is in progress. */
export function isGenerationAtRest(gen: bigint): boolean {
  if (typeof gen !== 'bigint' || gen < 0n) throw new AbiRangeError('p2m_generation', hex(gen), 8, false);
  return (gen & 1n) === 0n;
}

/** One bump, as the guest's plain `++` on an unsigned long does it (wrapping at guest width). */
export function bumpGeneration(abi: GuestAbi, gen: bigint): bigint {
  return (checkGeneration(abi, gen) + 1n) & wordMask(abi);
}

/** How a counter moved between two readings, assuming no republication (reset) in between. */
export interface GenerationDelta {
  /** Single increments, modulo 2^(guest word bits). */
  readonly bumps: bigint;
  /** Changes whose opening bump (even → odd) happened after the first reading. */
  readonly started: bigint;
  /** Changes whose closing bump (odd → even) happened after the first reading. */
  readonly completed: bigint;
}

export function generationChangesBetween(abi: GuestAbi, before: bigint, after: bigint): GenerationDelta {
  checkGeneration(abi, before);
  checkGeneration(abi, after);
  const bumps = (after - before) & wordMask(abi);
  const half = bumps >> 1n;
  const odd = bumps & 1n;
  return isGenerationAtRest(before)
    ? { bumps, started: half + odd, completed: half }
    : { bumps, started: half, completed: half + odd };
}

/**
 * Whether what was read between two readings of the counter saw one stable set of mappings: both
 * readings equal and even. (libxc only tests equality with its baseline and aborts on any change.)
 */
export function isSnapshotConsistent(before: bigint, after: bigint): boolean {
  return before === after && isGenerationAtRest(before);
}

// ---------------------------------------------------------------------------------------------
// P2mArray: elements of one ABI in a typed array — a leaf page, or a whole flat p2m.
// ---------------------------------------------------------------------------------------------

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const U32_MAX = 0xffffffffn;
const U64_MAX = 0xffffffffffffffffn;
/** Pages compared as one block before a scan looks at single pages (a memcmp each). */
const SCAN_BLOCK_PAGES = 64;

export type P2mElements = Uint32Array | BigUint64Array;

/**
 * p2m elements of one guest ABI held in a `Uint32Array` (x86_32) or `BigUint64Array` (x86_64), so
 * the bytes are exactly the guest's (little-endian, guest width) and every `set` is one store of the
 * guest width. Views share memory with what they were made over.
 */
export class P2mArray {
  readonly abi: GuestAbi;
  /** The typed array itself, for loops that need no checks. */
  readonly elements: P2mElements;
  readonly length: number;
  /** The same bytes as 32-bit words: comparisons never allocate bigints. */
  private readonly words: Uint32Array;
  private readonly bytes: Buffer;

  constructor(abi: GuestAbi, elements: P2mElements) {
    if (!HOST_LITTLE_ENDIAN) throw new AbiViewError('P2mArray needs a little-endian host (guest memory is little-endian)');
    const wide = elements instanceof BigUint64Array;
    if (wide !== (abi.wordSize === 8) || (!wide && !(elements instanceof Uint32Array))) {
      throw new AbiViewError(`${abi.name} p2m elements need a ${abi.wordSize === 8 ? 'BigUint64Array' : 'Uint32Array'}`);
    }
    this.abi = abi;
    this.elements = elements;
    this.length = elements.length;
    this.words = new Uint32Array(elements.buffer, elements.byteOffset, elements.byteLength / 4);
    this.bytes = Buffer.from(elements.buffer, elements.byteOffset, elements.byteLength);
  }

  /** A new p2m of `length` entries, all `fill` (default INVALID_P2M_ENTRY, i.e. no frame). */
  static alloc(abi: GuestAbi, length: number, fill: bigint = INVALID_P2M_ENTRY(abi)): P2mArray {
    if (!Number.isInteger(length) || length < 0) throw new AbiViewError(`p2m length ${length} is not a count`);
    const p2m = new P2mArray(abi, abi.wordSize === 8 ? new BigUint64Array(length) : new Uint32Array(length));
    if (fill !== 0n) p2m.fill(fill);
    return p2m;
  }

  /**
   * A view over existing memory (a leaf page, a mapped run of p2m frames): `length` elements from
   * `byteOffset`, by default as many as fit. The offset must be aligned to the guest word.
   */
  static over(abi: GuestAbi, memory: ArrayBuffer | ArrayBufferView, byteOffset = 0, length?: number): P2mArray {
    const buffer = memory instanceof ArrayBuffer ? memory : memory.buffer;
    const base = memory instanceof ArrayBuffer ? 0 : memory.byteOffset;
    const available = memory.byteLength;
    const size = abi.wordSize;
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset > available) {
      throw new AbiViewError(`p2m view offset ${byteOffset} outside ${available} bytes`);
    }
    const count = length ?? Math.floor((available - byteOffset) / size);
    if (!Number.isInteger(count) || count < 0 || byteOffset + count * size > available) {
      throw new AbiViewError(`${count} ${abi.name} p2m elements at offset ${byteOffset} do not fit ${available} bytes`);
    }
    if ((base + byteOffset) % size !== 0) {
      throw new AbiViewError(`${abi.name} p2m elements must be ${size}-byte aligned, got address offset ${base + byteOffset}`);
    }
    const elements =
      size === 8
        ? new BigUint64Array(buffer as ArrayBuffer, base + byteOffset, count)
        : new Uint32Array(buffer as ArrayBuffer, base + byteOffset, count);
    return new P2mArray(abi, elements);
  }

  /** A view over one leaf page (4 KiB): 512 or 1024 elements. */
  static page(abi: GuestAbi, page: ArrayBuffer | ArrayBufferView, byteOffset = 0): P2mArray {
    return P2mArray.over(abi, page, byteOffset, PAGE_SIZE / abi.wordSize);
  }

  private check(pfn: number): number {
    if (pfn >>> 0 !== pfn || pfn >= this.length) {
      throw new AbiViewError(`pfn ${hex(pfn)} outside the p2m [0, ${hex(this.length)})`);
    }
    return pfn;
  }

  get(pfn: number): bigint {
    const i = this.check(pfn);
    return this.elements instanceof BigUint64Array ? this.elements[i]! : BigInt(this.elements[i]!);
  }

  /** Stores one element with a single store of the guest width; values outside the word throw. */
  set(pfn: number, mfn: bigint): void {
    const i = this.check(pfn);
    if (this.elements instanceof BigUint64Array) {
      if (typeof mfn !== 'bigint' || mfn < 0n || mfn > U64_MAX) throw new AbiRangeError(`p2m[${hex(pfn)}]`, hex(mfn), 8, false);
      this.elements[i] = mfn;
    } else {
      if (typeof mfn !== 'bigint' || mfn < 0n || mfn > U32_MAX) throw new AbiRangeError(`p2m[${hex(pfn)}]`, hex(mfn), 4, false);
      this.elements[i] = Number(mfn);
    }
  }

  /** INVALID_P2M_ENTRY at `pfn`, tested without building a bigint. */
  isInvalid(pfn: number): boolean {
    const i = this.check(pfn);
    const w = this.words;
    return this.abi.wordSize === 8 ? w[2 * i] === 0xffffffff && w[2 * i + 1] === 0xffffffff : w[i] === 0xffffffff;
  }

  /** Sets entries [start, end) to `value`. */
  fill(value: bigint, start = 0, end = this.length): this {
    this.checkRange(start, end);
    checkEntry(this.abi, value);
    if (this.elements instanceof BigUint64Array) this.elements.fill(value, start, end);
    else this.elements.fill(Number(value), start, end);
    return this;
  }

  /** The first pfn at or after `from` whose entry is `mfn`, or -1. */
  indexOf(mfn: bigint, from = 0): number {
    checkEntry(this.abi, mfn);
    return this.elements instanceof BigUint64Array ? this.elements.indexOf(mfn, from) : this.elements.indexOf(Number(mfn), from);
  }

  /** An independent copy (e.g. the p2m "as last sent"). */
  snapshot(): P2mArray {
    return new P2mArray(this.abi, this.elements.slice());
  }

  /** Copies `source`'s entries [start, end) over this one's, same pfns. */
  copyFrom(source: P2mArray, start = 0, end = Math.min(this.length, source.length)): this {
    this.checkOther(source, start, end);
    this.words.set(source.words.subarray(this.wordIndex(start), this.wordIndex(end)), this.wordIndex(start));
    return this;
  }

  /** The underlying bytes, exactly as the guest holds them. */
  asBytes(): Buffer {
    return this.bytes;
  }

  /** Whether entries [start, end) are identical in both. */
  equals(other: P2mArray, start = 0, end = Math.min(this.length, other.length)): boolean {
    this.checkOther(other, start, end);
    const from = start * this.abi.wordSize;
    const to = end * this.abi.wordSize;
    return this.bytes.compare(other.bytes, from, to, from, to) === 0;
  }

  /** The first pfn in [start, end) whose entry differs from `other`'s, or -1. */
  firstChanged(other: P2mArray, start = 0, end = Math.min(this.length, other.length)): number {
    let found = -1;
    this.scanChanged(other, start, end, (pfn) => {
      found = pfn;
      return false;
    });
    return found;
  }

  /**
   * Every pfn in [start, end) whose entry differs from `other`'s, ascending. Unchanged runs of
   * pages are skipped with a memcmp; only pages that differ are scanned word by word.
   */
  findChanged(other: P2mArray, start = 0, end = Math.min(this.length, other.length)): number[] {
    const changed: number[] = [];
    this.scanChanged(other, start, end, (pfn) => {
      changed.push(pfn);
      return true;
    });
    return changed;
  }

  /** Calls `visit` for each changed pfn in order until it returns false. */
  scanChanged(other: P2mArray, start: number, end: number, visit: (pfn: number) => boolean): void {
    this.checkOther(other, start, end);
    const size = this.abi.wordSize;
    const perPage = PAGE_SIZE / size;
    const a = this.words;
    const b = other.words;
    const wide = size === 8;
    const same = (from: number, to: number): boolean =>
      this.bytes.compare(other.bytes, from * size, to * size, from * size, to * size) === 0;
    // Blocks of SCAN_BLOCK_PAGES p2m pages, then pages, end on page boundaries of the pfn space.
    const perBlock = perPage * SCAN_BLOCK_PAGES;
    for (let blockStart = start; blockStart < end; ) {
      const blockEnd = Math.min(end, (Math.floor(blockStart / perBlock) + 1) * perBlock);
      if (!same(blockStart, blockEnd)) {
        for (let pageStart = blockStart; pageStart < blockEnd; ) {
          const pageEnd = Math.min(blockEnd, (Math.floor(pageStart / perPage) + 1) * perPage);
          if (!same(pageStart, pageEnd)) {
            for (let pfn = pageStart; pfn < pageEnd; pfn++) {
              const differs = wide ? a[2 * pfn] !== b[2 * pfn] || a[2 * pfn + 1] !== b[2 * pfn + 1] : a[pfn] !== b[pfn];
              if (differs && !visit(pfn)) return;
            }
          }
          pageStart = pageEnd;
        }
      }
      blockStart = blockEnd;
    }
  }

  private wordIndex(pfn: number): number {
    return this.abi.wordSize === 8 ? 2 * pfn : pfn;
  }

  private checkRange(start: number, end: number): void {
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > this.length) {
      throw new AbiViewError(`pfn range [${hex(start)}, ${hex(end)}) outside the p2m [0, ${hex(this.length)})`);
    }
  }

  private checkOther(other: P2mArray, start: number, end: number): void {
    if (other.abi.name !== this.abi.name) {
      throw new AbiViewError(`cannot compare an ${this.abi.name} p2m with an ${other.abi.name} one`);
    }
    this.checkRange(start, end);
    if (end > other.length) throw new AbiViewError(`pfn range [${hex(start)}, ${hex(end)}) outside the other p2m [0, ${hex(other.length)})`);
  }
}
