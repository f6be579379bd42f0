/**
 * The online recorder: attaches to an emulated Xen's event bus and to a guest's own events, and
 * turns what happens into guest-level trace events (format.ts): stores into shared_info's p2m
 * fields; stores into the frames that back p2m pages (element stores); writes into the page-table
 * frames on the walk of the linear list (with the pages they remap); changes of the tree's leaves;
 * m2p changes and frames gained or lost; operations, quiescent points, publication, suspend and
 * resume. It starts with a `state` event and the structure it finds, so it may attach to a guest
 * at any point.
 *
 * Cost: element and data stores cost a few Map lookups; the list is walked again only when
 * p2m_cr3 or p2m_vaddr change, when max_pfn moves the walked extent, or after a write into an
 * upper-level table of the walk (rare); a PTE write updates one page.
 *
 * Limits: it follows the domain it was attached to (a resume into another domain is not
 * followed), and the tree for its first 2^18 leaf pages.
 */

import { PAGE_SIZE, shared_info, start_info, type GuestAbi } from '../../abi/index.js';
import type { GuestEvent, GuestListener } from '../../guest-emu/guest.js';
import type { StoreEvent, XenEvent } from '../../xen-emu/events.js';
import { INVALID_M2P, type Machine } from '../../xen-emu/machine.js';
import type { Xen } from '../../xen-emu/xen.js';
import {
  FRAME_UNMAPPED,
  SHARED_FIELDS,
  TRACE_FORMAT,
  TRACE_VERSION,
  type M2pRun,
  type MfnRun,
  type Remap,
  type SharedField,
  type TraceEvent,
  type TraceHeader,
  type WordRun,
} from './format.js';
import { WordRunBuilder, frameRuns, p2mRuns, pageRuns } from './runs.js';
import { listExtent, readMidSlot, rewalkEntry, readPte, readTree, tableGeometry, pagingOf, topSlots, walkList, type Backing, type ListWalk, type TablePos, type TreeRead } from './views.js';

/** What the recorder needs of a guest (PvGuest has it). */
export interface RecordableGuest {
  readonly abi: GuestAbi;
  readonly domid: number;
  readonly booted: boolean;
  readonly suspended: boolean;
  readonly operationInProgress: string | undefined;
  listen(listener: GuestListener): () => void;
  /** Where start_info is, to read its flags (otherwise `RecorderOptions.startInfoFlags`). */
  readonly built?: { readonly startInfoMfn: number };
  /** The variant name, for the header. */
  readonly variant?: { readonly name: string };
}

export interface RecorderOptions {
  /** start_info.flags when the guest has no `built.startInfoMfn`. */
  readonly startInfoFlags?: number;
  readonly seed?: number;
  readonly source?: string;
}

export type TraceSink = (event: TraceEvent) => void;

export class TraceRecorder {
  readonly header: TraceHeader;
  private readonly abi: GuestAbi;
  private readonly ws: 4 | 8;
  private readonly fpp: number;
  private readonly domid: number;
  private readonly sharedInfoMfn: number;
  private readonly fieldAt: { field: SharedField; offset: number }[];
  private readonly shared = new Map<SharedField, bigint>();
  private list: ListWalk | undefined;
  private tree: TreeRead | undefined;
  /** The view whose frames hold the p2m the guest uses: the list when published, else the tree. */
  private authority: Backing | undefined;
  private readonly unsubscribe: (() => void)[] = [];
  private stopped = false;

  constructor(
    private readonly xen: Xen,
    private readonly guest: RecordableGuest,
    private readonly sink: TraceSink,
    options: RecorderOptions = {},
  ) {
    this.abi = guest.abi;
    this.ws = guest.abi.wordSize;
    this.fpp = PAGE_SIZE / this.ws;
    this.domid = guest.domid;
    const dom = xen.domain(this.domid);
    if (!dom) throw new Error(`recorder: domain ${this.domid} does not exist`);
    this.sharedInfoMfn = dom.sharedInfoMfn;
    this.fieldAt = SHARED_FIELDS.map((field) => ({ field, offset: shared_info.offsetOf(this.abi, `arch.${field}`) }));
    this.header = {
      format: TRACE_FORMAT,
      version: TRACE_VERSION,
      abi: this.abi.name as 'x86_32' | 'x86_64',
      domid: this.domid,
      source: options.source ?? 'xenabi recorder',
      ...(guest.variant ? { guest: guest.variant.name } : {}),
      ...(options.seed === undefined ? {} : { seed: options.seed }),
    };
    this.snapshot(options.startInfoFlags);
    this.unsubscribe.push(xen.events.subscribe((e) => this.onXen(e)));
    this.unsubscribe.push(guest.listen((e) => this.onGuest(e)));
  }

  /** Detaches from Xen and the guest. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const u of this.unsubscribe) u();
  }

  // ----------------------------------------------------------------------------------------------
  // The state at attach time
  // ----------------------------------------------------------------------------------------------

  private readSharedField(field: SharedField): bigint {
    const at = this.fieldAt.find((f) => f.field === field)!.offset;
    const page = this.xen.machine.bytes(this.sharedInfoMfn);
    const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
    return this.ws === 8 ? view.getBigUint64(at, true) : BigInt(view.getUint32(at, true));
  }

  private snapshot(flagsOption: number | undefined): void {
    const m = this.xen.machine;
    for (const f of SHARED_FIELDS) this.shared.set(f, this.readSharedField(f));
    let flags = flagsOption ?? 0;
    if (this.guest.built) {
      const page = m.bytes(this.guest.built.startInfoMfn);
      flags = new DataView(page.buffer, page.byteOffset, PAGE_SIZE).getUint32(start_info.offsetOf(this.abi, 'flags'), true);
    }
    const owned: [number, number][] = [];
    const xenHeap: number[] = [];
    const m2p: [number, number, number][] = [];
    const pairs: [number, number][] = [];
    for (const mfn of this.xen.framesOf(this.domid)) {
      if (m.isXenHeap(mfn)) {
        xenHeap.push(mfn);
        continue;
      }
      const last = owned[owned.length - 1];
      if (last && last[0] + last[1] === mfn) last[1]++;
      else owned.push([mfn, 1]);
      const pfn = m.m2pOf(mfn);
      if (pfn === INVALID_M2P) continue;
      pairs.push([pfn, mfn]);
      const r = m2p[m2p.length - 1];
      if (r && r[0] + r[2] === mfn && r[1] + r[2] === pfn) r[2]++;
      else m2p.push([mfn, pfn, 1]);
    }
    const phase = !this.guest.booted ? 'booting' : this.guest.suspended ? 'suspended' : 'running';
    this.sink({
      type: 'state',
      phase,
      start_info_flags: flags,
      shared: Object.fromEntries(SHARED_FIELDS.map((f) => [f, this.shared.get(f)!])) as Record<SharedField, bigint>,
      owned: owned as MfnRun[],
      xen_heap: xenHeap,
      m2p: m2p as M2pRun[],
    });
    if (this.guest.operationInProgress !== undefined) this.sink({ type: 'op', phase: 'start', name: this.guest.operationInProgress });
    this.retree(false);
    this.relist(false);
    this.chooseAuthority();
    if (this.authority === undefined) {
      // No structure published yet: the p2m is what the builder made, the m2p read backwards.
      pairs.sort((a, b) => a[0] - b[0]);
      const b = new WordRunBuilder();
      for (const [pfn, mfn] of pairs) b.push(pfn, mfn % 2 ** 32, Math.floor(mfn / 2 ** 32));
      const count = pairs.length === 0 ? 0 : pairs[pairs.length - 1]![0] + 1;
      this.sink({ type: 'p2m', first: 0, count, entries: b.done() });
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Views
  // ----------------------------------------------------------------------------------------------

  /** Reads the tree again from the fll; `choose`: then pick the view the p2m is read through. */
  private retree(choose = true): void {
    const fll = this.shared.get('pfn_to_mfn_frame_list_list')!;
    const had = this.tree !== undefined;
    const t = readTree(this.abi, this.xen.machine, this.domid, fll);
    this.tree = t.fll < 0 ? undefined : t;
    if (this.tree || had) this.sink({ type: 'tree', full: true, pages: this.tree ? frameRuns(this.tree.backing.pageFrame) : [] });
    if (choose) this.chooseAuthority();
  }

  /** Walks the list again from p2m_cr3; `choose`: then pick the view the p2m is read through. */
  private relist(choose = true): void {
    const cr3 = this.shared.get('p2m_cr3')!;
    const had = this.list !== undefined;
    this.list = cr3 === 0n ? undefined : walkList(this.abi, this.xen.machine, this.domid, cr3, this.shared.get('p2m_vaddr')!, this.shared.get('max_pfn')!);
    const l = this.list;
    if (l) this.sink({ type: 'list', vaddr: l.vaddr, extent: l.extent, pages: frameRuns(l.backing.pageFrame), ...(l.error === undefined ? {} : { error: l.error }) });
    else if (had) this.sink({ type: 'list', vaddr: this.shared.get('p2m_vaddr')!, extent: 0, pages: [] });
    if (choose) this.chooseAuthority();
  }

  /** Picks the view the guest's p2m is read through; when it changed, the whole p2m is emitted from it. */
  private chooseAuthority(): void {
    const next = this.list && this.list.error === undefined ? this.list.backing : this.tree?.backing;
    if (next === this.authority) return;
    this.authority = next;
    if (next) this.sink({ type: 'p2m', first: 0, count: next.pages * this.fpp, entries: p2mRuns(this.xen.machine, next, this.ws) });
  }

  /** Tells the contents of pages whose frame changed in the authoritative view. */
  private pagesChanged(view: Backing, pages: readonly number[]): void {
    if (view !== this.authority) return;
    // One event per run of consecutive pages.
    const emptyFrames = new Map<number, boolean>();
    for (let i = 0; i < pages.length; ) {
      let j = i + 1;
      while (j < pages.length && pages[j] === pages[j - 1]! + 1) j++;
      const entries: WordRun[] = [];
      for (let k = i; k < j; k++) {
        const frame = view.get(pages[k]!);
        // Linux's shared missing page backs most of a new PTE page's span: all INVALID, no runs.
        let empty = emptyFrames.get(frame);
        if (empty === undefined) emptyFrames.set(frame, (empty = isAllInvalid(this.xen.machine, frame)));
        if (!empty) for (const run of pageRuns(this.xen.machine, frame, pages[k]!, this.ws)) entries.push(run);
      }
      this.sink({ type: 'p2m', first: pages[i]! * this.fpp, count: (j - i) * this.fpp, entries });
      i = j;
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Xen events
  // ----------------------------------------------------------------------------------------------

  private onXen(e: XenEvent): void {
    switch (e.type) {
      case 'store':
        if (e.domid === this.domid) this.onStore(e);
        return;
      case 'm2p':
        if (this.xen.machine.ownerOf(e.mfn) === this.domid) this.sink({ type: 'm2p', mfn: e.mfn, pfn: e.newPfn === INVALID_M2P ? null : e.newPfn });
        return;
      case 'ownership':
        if (e.domid === this.domid) this.sink({ type: 'frame', mfn: e.mfn, owned: e.owned, ...(e.xenHeap ? { xen_heap: true } : {}) });
        return;
      case 'hypercall':
        return;
    }
  }

  private onStore(e: StoreEvent): void {
    const mfn = e.mfn;
    if (mfn === this.sharedInfoMfn) {
      this.onSharedStore(e);
      return;
    }
    const positions = this.list?.tables.get(mfn);
    if (positions) this.onPtStore(e, positions);
    if (this.tree && (mfn === this.tree.fll || this.tree.mids.has(mfn))) this.onTreeStore(e);
    const pages = this.authority?.pagesOf(mfn);
    if (pages !== undefined) this.onLeafStore(e, pages);
  }

  /** The little-endian value of the stored bytes. */
  private storedValue(e: StoreEvent): bigint {
    if (e.value !== undefined && (e.length === 4 || e.length === 8)) return e.value;
    const bytes = this.xen.machine.bytes(e.mfn).subarray(e.offset, e.offset + e.length);
    let v = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
    return v;
  }

  private onSharedStore(e: StoreEvent): void {
    let list = false;
    let tree = false;
    for (const { field, offset } of this.fieldAt) {
      if (offset + this.ws <= e.offset || offset >= e.offset + e.length) continue;
      const value = this.readSharedField(field);
      const old = this.shared.get(field)!;
      this.shared.set(field, value);
      this.sink({ type: 'shared', field, value });
      if (value === old) continue;
      if (field === 'p2m_cr3' || field === 'p2m_vaddr') list = true;
      if (field === 'pfn_to_mfn_frame_list_list') tree = true;
      if (field === 'max_pfn' && this.list && listExtent(this.abi, this.shared.get('p2m_vaddr')!, value).extent !== this.list.extent) list = true;
    }
    if (tree) this.retree();
    if (list) this.relist();
  }

  private onPtStore(e: StoreEvent, positions: readonly TablePos[]): void {
    const l = this.list!;
    const m = this.xen.machine;
    const paging = pagingOf(this.abi);
    const end = l.base + l.extent * PAGE_SIZE;
    const firstEntry = Math.floor(e.offset / 8);
    const lastEntry = Math.floor((e.offset + e.length - 1) / 8);
    for (const pos of [...positions]) {
      const { entries, span } = tableGeometry(paging, pos.level);
      const lo = Math.max(firstEntry, Math.max(0, Math.floor((l.base - pos.tableVa) / span)));
      const hi = Math.min(lastEntry, entries - 1, Math.floor((end - 1 - pos.tableVa) / span));
      for (let entry = lo; entry <= hi; entry++) {
        const pte = readPte(m, e.mfn, entry);
        if (pos.level > 1) {
          // An upper-level write (a new PTE page: growth into a new mid range): follow that entry again.
          const changed = rewalkEntry(this.abi, m, this.domid, l, pos.level, e.mfn, pos.tableVa, entry);
          const remap: Remap[] = changed.map(([page, before]) => [page, before, l.backing.get(page)]);
          this.sink({ type: 'pt_write', level: pos.level, mfn: e.mfn, entry, value: pte.value, remap });
          this.pagesChanged(l.backing, changed.map(([page]) => page));
          continue;
        }
        const page = Math.floor((pos.tableVa + entry * span - l.base) / PAGE_SIZE);
        const after = pte.present && m.isValidMfn(pte.frame) && m.ownerOf(pte.frame) === this.domid ? pte.frame : FRAME_UNMAPPED;
        const before = l.backing.get(page);
        const remap: Remap[] = before === after ? [] : [[page, before, after]];
        this.sink({ type: 'pt_write', level: 1, mfn: e.mfn, entry, value: pte.value, remap });
        if (before !== after) {
          l.backing.set(page, after);
          this.pagesChanged(l.backing, [page]);
        }
      }
    }
  }

  private onTreeStore(e: StoreEvent): void {
    const t = this.tree!;
    const m = this.xen.machine;
    const slots = new Set<number>();
    if (e.mfn === t.fll) {
      const first = Math.floor(e.offset / this.ws);
      const last = Math.min(Math.floor((e.offset + e.length - 1) / this.ws), topSlots(this.abi) - 1);
      for (let s = first; s <= last; s++) slots.add(s);
    }
    for (const s of t.mids.get(e.mfn) ?? []) slots.add(s);
    const changed: number[] = [];
    for (const s of [...slots].sort((a, b) => a - b)) changed.push(...readMidSlot(this.abi, m, this.domid, t.fll, s, t.backing, t.mids));
    if (changed.length === 0) return;
    const frames = changed.map((p) => t.backing.get(p));
    const pages = changed.map((page, i) => [page, frames[i]!, 1, 0] as const);
    this.sink({ type: 'tree', full: false, pages });
    this.pagesChanged(t.backing, changed);
  }

  private onLeafStore(e: StoreEvent, pages: number | ReadonlySet<number>): void {
    const value = this.storedValue(e);
    const by = e.by === 'guest' ? {} : { by: e.by };
    const inElement = e.offset % this.ws;
    const element = Math.floor(e.offset / this.ws);
    for (const page of typeof pages === 'number' ? [pages] : pages) {
      this.sink({ type: 'p2m_store', pfn: page * this.fpp + element, offset: inElement, width: e.length, value, ...by });
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Guest events
  // ----------------------------------------------------------------------------------------------

  private onGuest(e: GuestEvent): void {
    if (e.domid !== this.domid) return;
    switch (e.type) {
      case 'operation':
        this.sink({ type: 'op', phase: e.phase, name: e.name });
        if (e.phase === 'end') this.sink({ type: 'quiescent', reason: `end of ${e.name}` });
        return;
      case 'published':
        this.sink({ type: 'published', reason: e.reason });
        this.sink({ type: 'quiescent', reason: `published (${e.reason})` });
        return;
      case 'suspended':
      case 'resumed':
        this.sink({ type: e.type });
        this.sink({ type: 'quiescent', reason: e.type });
        return;
    }
  }
}

/** Whether every word of frame `mfn` is all ones (an all-INVALID p2m page), or there is no frame. */
function isAllInvalid(m: Machine, mfn: number): boolean {
  if (mfn < 0) return true;
  const bytes = m.bytes(mfn);
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, PAGE_SIZE / 4);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0xffffffff) return false;
  return true;
}
