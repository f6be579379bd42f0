/**
 * How the recorder sees a guest's p2m structure from machine memory, as a toolstack would (design
 * decision 6): the linear list walked from p2m_cr3 over [p2m_vaddr, p2m_vaddr + extent pages), and
 * the 3-level tree read from pfn_to_mfn_frame_list_list. Each view says which frame backs each p2m
 * page and which table frames it read, so that stores into those frames can be recognised.
 */

import { PAGE_SIZE, xen_cr3_to_pfn, type GuestAbi } from '../../abi/index.js';
import type { Machine } from '../../xen-emu/machine.js';
import { FRAME_LARGE, FRAME_UNMAPPED } from './format.js';

/** A frame backing more pages than this is only counted: Linux's shared missing page backs most of the list. */
const MANY = 64;

type Backed = number | Set<number> | { many: number };

/**
 * Which frame backs each page, and the pages each frame backs. The reverse index is built on the
 * first question and kept up to date from then on; a frame that backs many pages (the shared
 * missing page) is only counted there, and asked for by a scan (a store into it is a rare event).
 */
export class Backing {
  readonly pageFrame: Float64Array;
  private byFrame: Map<number, Backed> | undefined;

  constructor(readonly pages: number) {
    this.pageFrame = new Float64Array(pages).fill(FRAME_UNMAPPED);
  }

  get(page: number): number {
    return page < this.pages ? this.pageFrame[page]! : FRAME_UNMAPPED;
  }

  set(page: number, mfn: number): void {
    const old = this.pageFrame[page]!;
    if (old === mfn) return;
    this.pageFrame[page] = mfn;
    const index = this.byFrame;
    if (index === undefined) return;
    if (old >= 0) remove(index, old, page);
    if (mfn >= 0) add(index, mfn, page);
  }

  /** The pages `mfn` backs (none when it backs none). */
  pagesOf(mfn: number): number | ReadonlySet<number> | undefined {
    if (this.byFrame === undefined) {
      const index = new Map<number, Backed>();
      const frames = this.pageFrame;
      for (let page = 0; page < frames.length; page++) if (frames[page]! >= 0) add(index, frames[page]!, page);
      this.byFrame = index;
    }
    const e = this.byFrame.get(mfn);
    if (e === undefined || typeof e === 'number' || e instanceof Set) return e;
    const pages = new Set<number>();
    for (let page = 0; page < this.pageFrame.length; page++) if (this.pageFrame[page] === mfn) pages.add(page);
    return pages;
  }
}

function add(index: Map<number, Backed>, mfn: number, page: number): void {
  const e = index.get(mfn);
  if (e === undefined) index.set(mfn, page);
  else if (typeof e === 'number') index.set(mfn, new Set([e, page]));
  else if (e instanceof Set) {
    e.add(page);
    if (e.size > MANY) index.set(mfn, { many: e.size });
  } else e.many++;
}

function remove(index: Map<number, Backed>, mfn: number, page: number): void {
  const e = index.get(mfn)!;
  if (typeof e === 'number') index.delete(mfn);
  else if (e instanceof Set) {
    e.delete(page);
    if (e.size === 1) index.set(mfn, e.values().next().value!);
  } else if (--e.many === 0) index.delete(mfn);
}

/** One place a page-table frame appears on the walk: its level, and the VA (masked) of its entry 0. */
export interface TablePos {
  readonly level: number;
  readonly tableVa: number;
}

export interface ListWalk {
  readonly vaddr: bigint;
  /** Masked VA of the list's first page. */
  readonly base: number;
  readonly extent: number;
  readonly backing: Backing;
  /** Page-table frames on the walk, with where they appear. */
  readonly tables: Map<number, TablePos[]>;
  readonly error?: string;
}

const GIB = 2 ** 30;
/** At most this many pages are followed (1 GiB of list VA is 2^18 pages). */
export const MAX_EXTENT_PAGES = 2 ** 19;

export interface PagingInfo {
  readonly levels: number;
  readonly vaBits: number;
}

export function pagingOf(abi: GuestAbi): PagingInfo {
  return abi.wordSize === 8 ? { levels: 4, vaBits: 48 } : { levels: 3, vaBits: 32 };
}

/** Entries of a table at `level`, and the VA bytes one entry covers. */
export function tableGeometry(p: PagingInfo, level: number): { entries: number; span: number } {
  return { entries: level === p.levels && p.levels === 3 ? 4 : 512, span: 2 ** (12 + 9 * (level - 1)) };
}

/** A PTE read as two 32-bit halves: present, PSE, frame. */
export function readPte(m: Machine, mfn: number, index: number): { present: boolean; large: boolean; frame: number; value: bigint } {
  const page = m.bytes(mfn);
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  const lo = view.getUint32(index * 8, true);
  const hi = view.getUint32(index * 8 + 4, true);
  return { present: (lo & 1) !== 0, large: (lo & 0x80) !== 0, frame: (hi & 0xfffff) * 2 ** 20 + (lo >>> 12), value: (BigInt(hi) << 32n) | BigInt(lo) };
}

/** The pages the recorder follows for a list at `vaddr` with `maxPfn` entries: the list, up to the next 1 GiB boundary (where it grows without a new L2 table). */
export function listExtent(abi: GuestAbi, vaddr: bigint, maxPfn: bigint): { base: number; extent: number } {
  const p = pagingOf(abi);
  const base = Number(vaddr & ((1n << BigInt(p.vaBits)) - 1n));
  const fpp = PAGE_SIZE / abi.wordSize;
  const pages = Math.max(1, Math.ceil(Number(maxPfn > BigInt(2 ** 40) ? BigInt(2 ** 40) : maxPfn) / fpp));
  const end = Math.min(Math.ceil((base + pages * PAGE_SIZE) / GIB) * GIB, 2 ** p.vaBits);
  return { base, extent: Math.max(0, Math.min(MAX_EXTENT_PAGES, Math.floor((end - base) / PAGE_SIZE))) };
}

interface WalkContext {
  readonly m: Machine;
  readonly domid: number;
  readonly p: PagingInfo;
}

/** Walks the table `mfn` at `level` (its entry 0 at masked VA `tableVa`) over the walk's range, recording tables and leaves. */
function walkTable(w: ListWalk, c: WalkContext, level: number, mfn: number, tableVa: number): void {
  const list = w.tables.get(mfn);
  if (list) list.push({ level, tableVa });
  else w.tables.set(mfn, [{ level, tableVa }]);
  const { entries, span } = tableGeometry(c.p, level);
  const end = w.base + w.extent * PAGE_SIZE;
  const first = Math.max(0, Math.floor((w.base - tableVa) / span));
  const last = Math.min(entries - 1, Math.floor((end - 1 - tableVa) / span));
  for (let i = first; i <= last; i++) walkEntry(w, c, level, mfn, tableVa, i);
}

/** Whether `f` is one of the walked domain's frames (what the tools could map). */
function usableFrame(c: WalkContext, f: number): boolean {
  return c.m.isValidMfn(f) && c.m.ownerOf(f) === c.domid;
}

/**
 * The frame each entry of the L1 table `mfn` maps (FRAME_UNMAPPED for absent or foreign ones),
 * read once per walk: Linux maps the list beyond its last leaf with one shared PTE page, so the
 * same table appears hundreds of times in one walk.
 */
function leafKinds(w: ListWalk, c: WalkContext, mfn: number): Float64Array {
  const memo = (w as { memo?: Map<number, Float64Array> }).memo ?? new Map<number, Float64Array>();
  (w as { memo?: Map<number, Float64Array> }).memo = memo;
  let kinds = memo.get(mfn);
  if (kinds) return kinds;
  kinds = new Float64Array(512);
  const page = c.m.bytes(mfn);
  const words = new Uint32Array(page.buffer, page.byteOffset, PAGE_SIZE / 4);
  for (let i = 0; i < 512; i++) {
    const lo = words[2 * i]!;
    const frame = (words[2 * i + 1]! & 0xfffff) * 2 ** 20 + (lo >>> 12);
    kinds[i] = (lo & 1) !== 0 && usableFrame(c, frame) ? frame : FRAME_UNMAPPED;
  }
  memo.set(mfn, kinds);
  return kinds;
}

/** Follows entry `i` of a table at `level`: a leaf, a superpage, or a lower table. */
function walkEntry(w: ListWalk, c: WalkContext, level: number, mfn: number, tableVa: number, i: number): void {
  const { span } = tableGeometry(c.p, level);
  const pte = readPte(c.m, mfn, i);
  if (!pte.present) return;
  const va = tableVa + i * span;
  if (level === 1 || (pte.large && !(c.p.levels === 3 && level === 3))) {
    const kind = level === 1 ? (usableFrame(c, pte.frame) ? pte.frame : FRAME_UNMAPPED) : FRAME_LARGE;
    const from = Math.max(0, Math.floor((va - w.base) / PAGE_SIZE));
    const to = Math.min(w.extent, Math.floor((va + span - w.base) / PAGE_SIZE));
    for (let page = from; page < to; page++) w.backing.set(page, kind);
    return;
  }
  // A table that is not the domain's maps nothing the tools could use: its pages stay unmapped.
  if (!usableFrame(c, pte.frame)) return;
  if (level === 2) {
    // An L1 table: its entries all lead to leaves, read once per walk whatever its repeats.
    const list = w.tables.get(pte.frame);
    if (list) list.push({ level: 1, tableVa: va });
    else w.tables.set(pte.frame, [{ level: 1, tableVa: va }]);
    const kinds = leafKinds(w, c, pte.frame);
    const end = w.base + w.extent * PAGE_SIZE;
    const first = Math.max(0, Math.floor((w.base - va) / PAGE_SIZE));
    const last = Math.min(511, Math.floor((end - 1 - va) / PAGE_SIZE));
    for (let k = first; k <= last; k++) {
      const page = (va + k * PAGE_SIZE - w.base) / PAGE_SIZE;
      if (page >= 0 && page < w.extent) w.backing.set(page, kinds[k]!);
    }
    return;
  }
  walkTable(w, c, level - 1, pte.frame, va);
}

/** Walks the list from `cr3` (the guest's folded value) over its extent. */
export function walkList(abi: GuestAbi, m: Machine, domid: number, cr3: bigint, vaddr: bigint, maxPfn: bigint): ListWalk {
  const p = pagingOf(abi);
  const { base, extent } = listExtent(abi, vaddr, maxPfn);
  const w: { -readonly [K in keyof ListWalk]: ListWalk[K] } = { vaddr, base, extent, backing: new Backing(extent), tables: new Map() };
  const root = Number(xen_cr3_to_pfn(abi, cr3) & 0xffffffffffn);
  if (extent === 0) w.error = `p2m_vaddr 0x${vaddr.toString(16)} leaves no room for the list`;
  else if (!(m.isValidMfn(root) && m.ownerOf(root) === domid)) w.error = `root frame ${hex(root)} of p2m_cr3 0x${cr3.toString(16)} is not the domain's`;
  else walkTable(w, { m, domid, p }, p.levels, root, 0);
  delete (w as { memo?: unknown }).memo;
  return w;
}

/**
 * After a write into entry `entry` of the level-`level` table at `tableVa`: forgets what the walk
 * found under that entry and follows it again. Returns the pages whose frame changed, with the old frame.
 */
export function rewalkEntry(abi: GuestAbi, m: Machine, domid: number, w: ListWalk, level: number, mfn: number, tableVa: number, entry: number): [number, number][] {
  const p = pagingOf(abi);
  const { span } = tableGeometry(p, level);
  const va0 = tableVa + entry * span;
  const va1 = va0 + span;
  for (const [t, positions] of w.tables) {
    const kept = positions.filter((pos) => !(pos.level < level && pos.tableVa >= va0 && pos.tableVa < va1));
    if (kept.length === 0) w.tables.delete(t);
    else if (kept.length !== positions.length) w.tables.set(t, kept);
  }
  const from = Math.max(0, Math.floor((va0 - w.base) / PAGE_SIZE));
  const to = Math.min(w.extent, Math.ceil((va1 - w.base) / PAGE_SIZE));
  const before: number[] = [];
  for (let page = from; page < to; page++) {
    before.push(w.backing.get(page));
    w.backing.set(page, FRAME_UNMAPPED);
  }
  // Tables may have changed since the memo of L1 contents was made: it lives for one (re)walk.
  delete (w as { memo?: unknown }).memo;
  walkEntry(w, { m, domid, p }, level, mfn, tableVa, entry);
  delete (w as { memo?: unknown }).memo;
  const changed: [number, number][] = [];
  for (let page = from; page < to; page++) if (w.backing.get(page) !== before[page - from]) changed.push([page, before[page - from]!]);
  return changed;
}

/** Pages the recorder follows in the tree (all of x86_64's 2^27 pfns; 2^28 pfns on x86_32). */
export const TREE_PAGES = 2 ** 18;

export interface TreeRead {
  readonly backing: Backing;
  /** The fll frame, or -1 when the fll is not a usable frame. */
  readonly fll: number;
  /** Mid frames and the top slots that name them. */
  readonly mids: Map<number, Set<number>>;
}

export function readWord(m: Machine, mfn: number, index: number, width: 4 | 8): number {
  const page = m.bytes(mfn);
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  if (width === 4) return view.getUint32(index * 4, true);
  const hi = view.getUint32(index * 8 + 4, true);
  const lo = view.getUint32(index * 8, true);
  return hi >= 0x100000 ? -1 : hi * 2 ** 32 + lo;
}

/** A tree entry as a frame, or FRAME_UNMAPPED when it names none of the domain's frames. */
export function treeFrame(m: Machine, domid: number, word: number): number {
  return word > 0 && m.isValidMfn(word) && m.ownerOf(word) === domid ? word : FRAME_UNMAPPED;
}

export function topSlots(abi: GuestAbi): number {
  const fpp = PAGE_SIZE / abi.wordSize;
  return Math.min(fpp, TREE_PAGES / fpp);
}

/** Reads the tree from the fll value. */
export function readTree(abi: GuestAbi, m: Machine, domid: number, fllValue: bigint): TreeRead {
  const backing = new Backing(TREE_PAGES);
  const mids = new Map<number, Set<number>>();
  const fll = fllValue > BigInt(Number.MAX_SAFE_INTEGER) ? FRAME_UNMAPPED : treeFrame(m, domid, Number(fllValue));
  if (fll < 0) return { backing, fll: -1, mids };
  // Linux points every unused top slot at one shared all-missing mid page: read each mid once.
  const memo = new Map<number, Float64Array>();
  for (let t = 0; t < topSlots(abi); t++) readMidSlot(abi, m, domid, fll, t, backing, mids, memo);
  return { backing, fll, mids };
}

/** The leaf frame each entry of mid page `mid` names (FRAME_UNMAPPED where none of the domain's). */
function midLeaves(m: Machine, domid: number, mid: number, width: 4 | 8): Float64Array {
  const fpp = PAGE_SIZE / width;
  const out = new Float64Array(fpp);
  const page = m.bytes(mid);
  const words = new Uint32Array(page.buffer, page.byteOffset, PAGE_SIZE / 4);
  for (let i = 0; i < fpp; i++) {
    let word: number;
    if (width === 4) word = words[i]!;
    else {
      const hi = words[2 * i + 1]!;
      word = hi >= 0x100000 ? -1 : hi * 2 ** 32 + words[2 * i]!;
    }
    out[i] = treeFrame(m, domid, word);
  }
  return out;
}

/** (Re)reads top slot `t`: its mid frame and that mid's leaves. Returns the pages whose leaf changed. */
export function readMidSlot(
  abi: GuestAbi,
  m: Machine,
  domid: number,
  fll: number,
  t: number,
  backing: Backing,
  mids: Map<number, Set<number>>,
  memo?: Map<number, Float64Array>,
): number[] {
  const width = abi.wordSize as 4 | 8;
  const fpp = PAGE_SIZE / width;
  for (const [mfn, slots] of mids) {
    if (slots.delete(t) && slots.size === 0) mids.delete(mfn);
  }
  const mid = treeFrame(m, domid, readWord(m, fll, t, width));
  if (mid >= 0) {
    const slots = mids.get(mid);
    if (slots) slots.add(t);
    else mids.set(mid, new Set([t]));
  }
  let leaves: Float64Array | undefined;
  if (mid >= 0) {
    leaves = memo?.get(mid);
    if (!leaves) {
      leaves = midLeaves(m, domid, mid, width);
      memo?.set(mid, leaves);
    }
  }
  const changed: number[] = [];
  for (let i = 0; i < fpp; i++) {
    const page = t * fpp + i;
    const leaf = leaves === undefined ? FRAME_UNMAPPED : leaves[i]!;
    if (backing.get(page) !== leaf) {
      backing.set(page, leaf);
      changed.push(page);
    }
  }
  return changed;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
