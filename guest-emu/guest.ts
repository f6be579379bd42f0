/**
 * The emulated Linux-like PV guest kernel: boot from start_info (Linux `xen_start_kernel` →
 * `xen_pagetable_init`: the linear list, the tree, `xen_setup_mfn_list_list`), the generation
 * bracket around every remap of the list (`p2m_generation++; wmb(); set_pmd/set_pte; wmb();
 * p2m_generation++`, reference §2.5), the max_pfn hint, and suspend/resume (`xen_pv_pre_suspend`,
 * `xen_pv_post_suspend`, reference §2.4).
 *
 * The guest reaches Xen only through hypercalls and loads/stores at its own virtual addresses
 * (design decisions 2 and 3). Its private state (which pfn is what) is held by pfn, never by mfn,
 * so it stays valid when it resumes on other frames after a restore. Operations are generators of
 * atomic steps (steps.ts), which a scheduler interleaves with other parties; the guest runs one
 * operation at a time and suspends only between operations.
 *
 * Where this differs from Linux, on purpose: the personality is fixed at boot. Linux re-reads
 * SIF_VIRT_P2M_4TOOLS on resume, and libxc's restore clears start_info.flags, so a real modern
 * domU starts building the tree after its first restore; the emulated guest keeps what it booted
 * with, so that a conformance cell tests one personality.
 */

import {
  INVALID_P2M_ENTRY,
  PAGE_SIZE,
  SIF_VIRT_P2M_4TOOLS,
  shared_info,
  start_info,
  startInfoMagic,
  wordMask,
  xen_pfn_to_cr3,
  type GuestAbi,
} from '../abi/index.js';
import type { BuiltDomain } from '../xen-emu/builder.js';
import type { Xen } from '../xen-emu/xen.js';
import { GuestConfigError, GuestKernelBug, GuestStateError, hex } from './errors.js';
import { GuestHypercalls, type GuestBinding } from './hypercalls.js';
import { FIX_SHARED_INFO, FIXMAP_SLOTS, KernelMm, reserveFixmapPfns } from './kernel-mm.js';
import { P2mList, type InitialList, type PfnRange } from './p2m-list.js';
import { P2mTree } from './p2m-tree.js';
import { PageStates, PageUse } from './page-state.js';
import { GrantState } from './grants.js';
import { balloonIn, balloonOut, hotplug } from './balloon.js';
import { exchangeRegion } from './exchange.js';
import { writePage } from './data-writes.js';
import type { Operation } from './steps.js';
import { parseGuestVariant, startInfoFlagsFor, type FaultName, type GuestVariant, type Personality } from './variants.js';

export type BalloonInMethod = 'populate_physmap' | 'increase_reservation';

export interface GuestOptions {
  /** A personality or fault name (variants.ts), or a parsed variant. Default `linear`. */
  readonly variant?: string | GuestVariant;
  /** Scrub pages before ballooning them out, as Linux does by default (`xen_scrub_pages`). */
  readonly scrub?: boolean;
  /** How ballooned pages come back: Linux's populate_physmap (default), or the older increase_reservation + MMU_MACHPHYS_UPDATE. */
  readonly balloonInMethod?: BalloonInMethod;
  /** Pfn ranges above nr_pages that are 1:1 (MMIO holes), mapped with the shared identity pages. */
  readonly identityRanges?: readonly PfnRange[];
  /** x86_32: pfns below this are lowmem (direct-mapped); default all the VA below 0xF5800000 allows. */
  readonly lowmemPfns?: number;
}

/** What the guest tells listeners about itself (conformance rules use these to know when it is quiescent). */
export type GuestEvent =
  | { readonly type: 'operation'; readonly phase: 'start' | 'end'; readonly name: string; readonly domid: number }
  | { readonly type: 'published'; readonly domid: number; readonly reason: 'boot' | 'resume' }
  | { readonly type: 'suspended' | 'resumed'; readonly domid: number };

export type GuestListener = (event: GuestEvent) => void;

export interface GuestStats {
  /** Page-table writes that changed which frame backs a page of the p2m (each inside one bracket). */
  structuralChanges: number;
  /** Completed operations by name. */
  readonly operations: Record<string, number>;
}

/** The arch_shared_info fields the guest writes. */
type SharedField = 'max_pfn' | 'pfn_to_mfn_frame_list_list' | 'p2m_cr3' | 'p2m_vaddr' | 'p2m_generation';

const PAGE = BigInt(PAGE_SIZE);
const X86_32_VA_END = 0xf5800000n;

export class PvGuest {
  readonly abi: GuestAbi;
  readonly variant: GuestVariant;
  readonly personality: Personality;
  readonly fault: FaultName | undefined;
  readonly scrub: boolean;
  readonly balloonInMethod: BalloonInMethod;
  readonly binding: GuestBinding;
  readonly hc: GuestHypercalls;
  readonly pages: PageStates;
  readonly mm: KernelMm;
  readonly list: P2mList;
  tree: P2mTree | undefined;
  readonly grants = new GrantState();
  readonly stats: GuestStats = { structuralChanges: 0, operations: {} };
  /** `start_info.nr_pages` at boot. */
  readonly nrPages: number;
  /** `max_pages` (XENMEM_maximum_reservation), read at boot. */
  maxPages = 0;
  /** Frames the guest holds (`balloon_stats.current_pages`). */
  currentPages: number;
  /** `xen_p2m_last_pfn`: what max_pfn is set to. */
  lastPfn: number;
  /** Pfns below this are the builder's and never reused; the allocator starts here. */
  readonly reservedEnd: number;
  readonly startInfoVa: bigint;
  /** Pfns of the xenstore and console rings (start_info holds their mfns, or pfns while suspended). */
  storePfn = -1;
  consolePfn = -1;
  booted = false;
  suspended = false;
  suspendRequested = false;
  private currentOp: string | undefined;
  private listeners: GuestListener[] = [];
  private readonly initial: InitialList;
  private readonly startInfoFlags: number;
  private readonly sharedVas = new Map<SharedField, bigint>();

  constructor(
    /** What the domain builder made: the kernel's image facts (virt base, scratch buffers) and its start_info. */
    readonly built: BuiltDomain,
    xen: Xen,
    options: GuestOptions = {},
  ) {
    this.abi = built.abi;
    this.variant = typeof options.variant === 'object' ? options.variant : parseGuestVariant(options.variant ?? 'linear');
    this.personality = this.variant.personality;
    this.fault = this.variant.fault;
    this.scrub = options.scrub ?? true;
    this.balloonInMethod = this.fault === 'forgotten-m2p' ? 'increase_reservation' : (options.balloonInMethod ?? 'populate_physmap');
    if (this.balloonInMethod !== 'populate_physmap' && this.balloonInMethod !== 'increase_reservation') {
      throw new GuestConfigError(`balloonInMethod "${String(options.balloonInMethod)}"; valid: populate_physmap, increase_reservation`, 'balloonInMethod');
    }
    const dom = xen.domain(built.dom.domid);
    if (!dom) throw new GuestConfigError(`domain ${built.dom.domid} does not exist on this Xen`, 'built');
    this.binding = { xen, dom };
    this.hc = new GuestHypercalls(this.binding, built.scratchVa, built.scratchPages);
    this.startInfoVa = built.startInfoVa;

    const siBytes = this.readStartInfoBytes();
    const si = start_info.view(this.abi, siBytes);
    const magic = startInfoMagic(this.abi);
    if (Buffer.compare(siBytes.subarray(0, magic.length), magic) !== 0) {
      throw new GuestConfigError(`start_info magic is not ${magic.toString()} (the domain was built for another ABI?)`, 'abi');
    }
    this.nrPages = Number(si.nr_pages);
    this.startInfoFlags = si.flags;
    const wantFlags = startInfoFlagsFor(this.personality);
    if (this.personality !== 'legacy-tree' && (si.flags & SIF_VIRT_P2M_4TOOLS) !== (wantFlags & SIF_VIRT_P2M_4TOOLS)) {
      throw new GuestConfigError(
        `personality ${this.personality} needs start_info.flags ${(wantFlags & SIF_VIRT_P2M_4TOOLS) ? 'with' : 'without'} SIF_VIRT_P2M_4TOOLS (${hex(SIF_VIRT_P2M_4TOOLS)}); got ${hex(si.flags)} (build with flags: startInfoFlagsFor(personality))`,
        'flags',
      );
    }

    const virtBase = built.virtBase;
    if (this.abi.wordSize === 4 && virtBase < 0xc0000000n) {
      throw new GuestConfigError(`x86_32 guest needs its kernel at or above 0xc0000000, got virtBase 0x${virtBase.toString(16)}`, 'virtBase');
    }
    const mfnList = si.mfn_list;
    const firstP2mPfn = Number(si.first_p2m_pfn);
    const nrP2mFrames = Number(si.nr_p2m_frames);
    const listFirstPfn = nrP2mFrames > 0 ? firstP2mPfn : Number((mfnList - virtBase) / PAGE);
    this.initial = { va: mfnList, nrPages: this.nrPages, firstPfn: listFirstPfn };
    this.reservedEnd = Math.max(built.bootstrapPfns, nrP2mFrames > 0 ? firstP2mPfn + nrP2mFrames : 0);
    const lowmemDefault = this.abi.wordSize === 8 ? 2 ** 32 : Number((X86_32_VA_END - virtBase) / PAGE);
    const lowmemPfns = options.lowmemPfns ?? lowmemDefault;
    if (!Number.isInteger(lowmemPfns) || lowmemPfns <= this.reservedEnd) {
      throw new GuestConfigError(`lowmemPfns ${lowmemPfns} must be an integer above the reserved pfns [0, ${hex(this.reservedEnd)})`, 'lowmemPfns');
    }
    this.pages = new PageStates(this.nrPages, this.reservedEnd, lowmemPfns);
    this.pages.setUse(0, PageUse.Reserved, this.reservedEnd);
    this.pages.addRam(0, this.nrPages);
    if (this.nrPages > this.reservedEnd) this.pages.setUse(this.reservedEnd, PageUse.Free, this.nrPages - this.reservedEnd);
    this.currentPages = this.nrPages;

    const ptPfn = Number((si.pt_base - virtBase) / PAGE);
    this.mm = new KernelMm(this, { rootPfn: ptPfn, virtBase, bootstrapPfns: built.bootstrapPfns, lowmemPfns });
    reserveFixmapPfns(this.mm, this.pages);
    this.list = new P2mList(this, this.initial, options.identityRanges ?? []);
    this.lastPfn = Math.ceil(this.nrPages / this.list.fpp) * this.list.fpp;
  }

  /** Boots a guest on a built domain, running every boot step at once. */
  static start(built: BuiltDomain, xen: Xen, options: GuestOptions = {}): PvGuest {
    const g = new PvGuest(built, xen, options);
    const boot = g.boot();
    while (!boot.next().done);
    return g;
  }

  get xen(): Xen {
    return this.binding.xen;
  }

  get domid(): number {
    return this.binding.dom.domid;
  }

  /** Whether the guest keeps the linear list with the generation protocol (every personality but legacy-tree). */
  get publishesList(): boolean {
    return this.personality !== 'legacy-tree';
  }

  /** The operation running now, if any (the guest is quiescent when none is and it is not mid-boot). */
  get operationInProgress(): string | undefined {
    return this.currentOp;
  }

  listen(listener: GuestListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  private emit(event: GuestEvent): void {
    for (const l of this.listeners) l(event);
  }

  // ----------------------------------------------------------------------------------------------
  // Kernel services the other files use
  // ----------------------------------------------------------------------------------------------

  /** `pfn_to_mfn` of a pfn the kernel knows to be backed (its own structures, populated pages). */
  mfnOf(pfn: number): bigint {
    const mfn = this.list.mfn(pfn);
    if (mfn === INVALID_P2M_ENTRY(this.abi)) throw new GuestKernelBug('pfn_to_mfn of an unbacked pfn', -22n, pfn);
    return mfn;
  }

  allocKernelPage(what: string): number {
    const pfn = this.pages.allocKernelPage();
    if (pfn === undefined) throw new GuestKernelBug(`out of lowmem allocating ${what}`, -12n);
    return pfn;
  }

  freeKernelPage(pfn: number): void {
    this.pages.freeKernelPage(pfn);
  }

  private readStartInfoBytes(): Buffer {
    const raw = this.binding.xen.guestLoad(this.binding.dom, this.startInfoVa, start_info.sizeOf(this.abi));
    if (!raw) throw new GuestKernelBug('load of start_info', -14n);
    return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  }

  private readStartInfo() {
    return start_info.view(this.abi, this.readStartInfoBytes());
  }

  /** VIRTUAL address of a p2m field of shared_info (through its fixmap slot), computed once per field. */
  private sharedVa(field: SharedField): bigint {
    let va = this.sharedVas.get(field);
    if (va === undefined) {
      va = this.mm.fixmapVa(FIX_SHARED_INFO) + BigInt(shared_info.offsetOf(this.abi, `arch.${field}`));
      this.sharedVas.set(field, va);
    }
    return va;
  }

  /** A p2m field of shared_info as the guest reads it. */
  readShared(field: SharedField): bigint {
    const v = this.xen.guestLoadWord(this.binding.dom, this.sharedVa(field), this.abi.wordSize);
    if (v === undefined) throw new GuestKernelBug(`load of shared_info arch.${field}`, -14n);
    return v;
  }

  /** One store of a p2m field of shared_info. */
  *storeShared(field: SharedField, value: bigint, label: string): Operation {
    const rc = this.xen.guestStoreWord(this.binding.dom, this.sharedVa(field), value & wordMask(this.abi), this.abi.wordSize);
    if (rc !== 0) throw new GuestKernelBug(`store of shared_info arch.${field}`, BigInt(rc));
    yield label;
  }

  private *storeStartInfoWord(field: 'store_mfn' | 'console.domU.mfn', value: bigint, label: string): Operation {
    const at = this.startInfoVa + BigInt(start_info.offsetOf(this.abi, field));
    const rc = this.xen.guestStoreWord(this.binding.dom, at, value, this.abi.wordSize);
    if (rc !== 0) throw new GuestKernelBug(`store of start_info ${field}`, BigInt(rc));
    yield label;
  }

  // ----------------------------------------------------------------------------------------------
  // The generation protocol and max_pfn
  // ----------------------------------------------------------------------------------------------

  private *bumpGeneration(delta: 1n | -1n): Operation {
    const before = this.readShared('p2m_generation');
    const after = (before + delta) & wordMask(this.abi);
    yield* this.storeShared('p2m_generation', after, `p2m_generation ${before} -> ${after}`);
  }

  /**
   * Runs `install` (the one page-table write that remaps a page of the list) inside the bracket
   * `++; wmb(); install; wmb(); ++` — or, for a faulty guest, the way its fault says. The barriers
   * order stores on a real CPU; the emulated steps are already in program order.
   */
  *generationBracket(install: Operation): Operation {
    this.stats.structuralChanges++;
    if (!this.publishesList) {
      yield* install;
      return;
    }
    switch (this.fault) {
      case 'skip-bump':
        yield* install;
        return;
      case 'bump-once':
        yield* this.bumpGeneration(1n);
        yield* install;
        return;
      case 'bump-after':
        yield* install;
        yield* this.bumpGeneration(1n);
        yield* this.bumpGeneration(1n);
        return;
      case 'non-monotonic-generation':
        yield* this.bumpGeneration(1n);
        yield* install;
        yield* this.bumpGeneration(-1n);
        return;
      default:
        yield* this.bumpGeneration(1n);
        yield* install;
        yield* this.bumpGeneration(1n);
    }
  }

  /** The max_pfn hint after the p2m grew to `pfn` (Linux 6.1: ALIGN(pfn + 1, P2M_PER_PAGE)); not bracketed. */
  *raiseMaxPfn(pfn: number): Operation {
    if (this.fault === 'short-max-pfn') return;
    this.lastPfn = Math.ceil((pfn + 1) / this.list.fpp) * this.list.fpp;
    yield* this.storeShared('max_pfn', BigInt(this.lastPfn), `max_pfn = ${hex(this.lastPfn)}`);
  }

  // ----------------------------------------------------------------------------------------------
  // Boot and publication
  // ----------------------------------------------------------------------------------------------

  /** The value published as `pfn_to_mfn_frame_list_list`. */
  private fllValue(): bigint {
    return this.tree ? this.mfnOf(this.tree.fllPfn) : wordMask(this.abi);
  }

  /** legacy-tree relayout: one store of the new fll mfn. */
  *publishFll(): Operation {
    yield* this.storeShared('pfn_to_mfn_frame_list_list', this.fllValue(), `publish fll = mfn ${hex(this.fllValue())}`);
  }

  /**
   * `xen_setup_mfn_list_list`, in Linux's order: fll, max_pfn, p2m_generation = 0, p2m_vaddr,
   * p2m_cr3 (the folded mfn of the kernel's top-level table). legacy-tree writes fll and max_pfn.
   */
  *publish(reason: 'boot' | 'resume'): Operation {
    yield* this.storeShared('pfn_to_mfn_frame_list_list', this.fllValue(), `publish fll = ${hex(this.fllValue())}`);
    yield* this.storeShared('max_pfn', BigInt(this.lastPfn), `publish max_pfn = ${hex(this.lastPfn)}`);
    if (this.publishesList) {
      yield* this.storeShared('p2m_generation', 0n, 'publish p2m_generation = 0');
      yield* this.storeShared('p2m_vaddr', this.list.base, `publish p2m_vaddr = 0x${this.list.base.toString(16)}`);
      const cr3 = xen_pfn_to_cr3(this.abi, this.mfnOf(this.mm.layout.rootPfn));
      yield* this.storeShared('p2m_cr3', cr3, `publish p2m_cr3 = 0x${cr3.toString(16)}`);
    }
    this.emit({ type: 'published', domid: this.domid, reason });
  }

  /** Finds the pfn among `candidates` whose p2m entry is `mfn` (the guest has no m2p mapping). */
  private pfnOfMfn(mfn: bigint, candidates: Iterable<number>): number {
    for (const pfn of candidates) if (this.list.read(pfn) === mfn) return pfn;
    throw new GuestKernelBug(`no pfn among the candidates is backed by mfn ${hex(mfn)}`, -2n);
  }

  /**
   * Boot: the reservation limit, shared_info mapped, the builder's list padded, the linear list
   * built, the tree built unless SIF_VIRT_P2M_4TOOLS (always for legacy-tree), then publication.
   */
  *boot(): Operation {
    if (this.booted) throw new GuestStateError(`guest of domain ${this.domid} booted already`);
    const si = this.readStartInfo();
    const max = this.hc.maximumReservation();
    if (max < 0n) throw new GuestKernelBug('XENMEM_maximum_reservation', max);
    this.maxPages = Number(max);
    yield `XENMEM_maximum_reservation = ${hex(this.maxPages)}`;
    // Extra memory above nr_pages, up to max_pages, starts in the balloon (Linux's xen_extra_mem).
    if (this.maxPages > this.nrPages) {
      this.pages.setUse(this.nrPages, PageUse.Ballooned, this.maxPages - this.nrPages);
      this.pages.addRam(this.nrPages, this.maxPages - this.nrPages);
    }

    yield* this.mm.setFixmap(FIX_SHARED_INFO, si.shared_info / PAGE, true, 'set_fixmap shared_info');

    const bootstrap = Array.from({ length: this.built.bootstrapPfns - FIXMAP_SLOTS }, (_, i) => i);
    this.storePfn = this.pfnOfMfn(si.store_mfn, bootstrap);
    this.consolePfn = this.pfnOfMfn(si.console.domU.mfn, bootstrap);
    if (this.abi.wordSize === 4) {
      // The builder's L2 under PAE L3 slot 3 holds the kernel's mappings: the direct map grows there.
      const root = this.mm.layout.rootPfn;
      const l3e = this.xen.guestLoadWord(this.binding.dom, si.pt_base + 3n * 8n, 8);
      if (l3e === undefined) throw new GuestKernelBug('load of the PAE L3 entry 3', -14n);
      const nrPt = Number(si.nr_pt_frames);
      const l2 = this.pfnOfMfn((l3e & 0x000ffffffffff000n) >> 12n, Array.from({ length: nrPt }, (_, i) => root + i));
      this.mm.registerTable(2, 0xc0000000n, l2);
      for (let pfn = 0; pfn < this.built.bootstrapPfns; pfn += 512) this.mm.registerTable(1, this.mm.layout.virtBase + BigInt(pfn) * PAGE, -1);
    }

    yield* this.list.padInitialList(this.initial);
    if (this.fault === 'early-p2m-cr3') yield* this.publish('boot');
    yield* this.list.build(this.initial);
    if (this.personality === 'legacy-tree' || (this.startInfoFlags & SIF_VIRT_P2M_4TOOLS) === 0) {
      this.tree = new P2mTree(this);
      yield* this.tree.build(true);
    }
    if (this.fault !== 'early-p2m-cr3') yield* this.publish('boot');
    this.booted = true;
  }

  // ----------------------------------------------------------------------------------------------
  // Operations, suspend and resume
  // ----------------------------------------------------------------------------------------------

  /**
   * Runs `body` as one guest operation: the guest is busy (not quiescent) until it ends. Refused
   * while suspended or before boot.
   */
  *operation<T>(name: string, body: Operation<T>): Operation<T> {
    if (!this.booted) throw new GuestStateError(`operation ${name} before boot`);
    if (this.suspended) throw new GuestStateError(`operation ${name} on a suspended guest (domain ${this.domid})`);
    if (this.currentOp !== undefined) throw new GuestStateError(`operation ${name} inside operation ${this.currentOp}`);
    this.currentOp = name;
    this.emit({ type: 'operation', phase: 'start', name, domid: this.domid });
    try {
      const result = yield* body;
      this.stats.operations[name] = (this.stats.operations[name] ?? 0) + 1;
      return result;
    } finally {
      this.currentOp = undefined;
      this.emit({ type: 'operation', phase: 'end', name, domid: this.domid });
    }
  }

  /** Asks the guest to suspend at its next quiescent point (a workload checks this between operations). */
  requestSuspend(): void {
    this.suspendRequested = true;
  }

  /**
   * Suspends at a quiescent point (`xen_pv_pre_suspend`, after the drivers let go of their
   * grants): store and console mfns in start_info become pfns, the grant frames and shared_info
   * are unmapped. The guest then runs nothing until `resume`.
   */
  *suspend(): Operation {
    if (this.currentOp !== undefined) throw new GuestStateError(`suspend inside operation ${this.currentOp}`);
    if (this.suspended) throw new GuestStateError(`domain ${this.domid} is suspended already`);
    yield* this.grants.teardown(this);
    yield* this.storeStartInfoWord('store_mfn', BigInt(this.storePfn), `start_info.store_mfn = pfn ${hex(this.storePfn)}`);
    yield* this.storeStartInfoWord('console.domU.mfn', BigInt(this.consolePfn), `start_info.console.domU.mfn = pfn ${hex(this.consolePfn)}`);
    yield* this.mm.clearFixmap(FIX_SHARED_INFO, 'clear_fixmap shared_info');
    this.suspended = true;
    this.suspendRequested = false;
    this.emit({ type: 'suspended', domid: this.domid });
  }

  /**
   * Resumes (`xen_pv_post_suspend`): in the same domain (`cancelled`, a checkpoint), or in the
   * domain a restore made (`domid`, and `xen` when on another host). Rebuilds the tree's mfns,
   * maps shared_info from start_info, republishes (p2m_generation = 0), and for a cancelled
   * suspend turns start_info's store and console pfns back into mfns.
   */
  *resume(options: { cancelled?: boolean; xen?: Xen; domid?: number } = {}): Operation {
    if (!this.suspended) throw new GuestStateError(`resume of domain ${this.domid}, which is not suspended`);
    if (options.domid !== undefined || options.xen !== undefined) {
      const xen = options.xen ?? this.binding.xen;
      const dom = xen.domain(options.domid ?? this.domid);
      if (!dom) throw new GuestConfigError(`resume into domain ${options.domid ?? this.domid}, which does not exist`, 'domid');
      this.binding.xen = xen;
      this.binding.dom = dom;
    }
    if (this.tree) yield* this.tree.build(false);
    const si = this.readStartInfo();
    yield* this.mm.setFixmap(FIX_SHARED_INFO, si.shared_info / PAGE, true, 'set_fixmap shared_info');
    yield* this.publish('resume');
    if (options.cancelled) {
      yield* this.storeStartInfoWord('store_mfn', this.mfnOf(this.storePfn), 'start_info.store_mfn = mfn');
      yield* this.storeStartInfoWord('console.domU.mfn', this.mfnOf(this.consolePfn), 'start_info.console.domU.mfn = mfn');
    }
    this.suspended = false;
    this.emit({ type: 'resumed', domid: this.domid });
  }

  // ----------------------------------------------------------------------------------------------
  // The operations, each one guest operation of atomic steps
  // ----------------------------------------------------------------------------------------------

  /** Balloons out free page `pfn` (balloon.ts). */
  balloonOut(pfn: number): Operation {
    return this.operation('balloon-out', balloonOut(this, pfn));
  }

  /** Balloons `pfn` back in; false when Xen had no frame for it (balloon.ts). */
  balloonIn(pfn: number): Operation<boolean> {
    return this.operation('balloon-in', balloonIn(this, pfn));
  }

  /** Makes pfns [first, first + 2^order) machine-contiguous with XENMEM_exchange (exchange.ts). */
  exchange(first: number, order: number): Operation<boolean> {
    return this.operation('exchange', exchangeRegion(this, first, order));
  }

  /** An ordinary data write of page `pfn` (data-writes.ts). */
  writePage(pfn: number, stamp: number): Operation {
    return this.operation('write', writePage(this, pfn, stamp));
  }

  /** Memory hotplug of pfns [first, first+count) into the balloon (balloon.ts). */
  hotplug(first: number, count: number): Operation {
    return this.operation('hotplug', hotplug(this, first, count));
  }

  /** legacy-tree only: moves the p2m onto a completely new tree with a new fll (p2m-tree.ts). */
  relayoutTree(): Operation<{ oldFll: number; newFll: number }> {
    if (this.personality !== 'legacy-tree' || !this.tree) {
      throw new GuestStateError(`tree relayout is a legacy-tree operation; domain ${this.domid} runs ${this.personality}`);
    }
    return this.operation('relayout', this.tree.relayout());
  }
}
