/**
 * The PV domain builder, modelled on libxenguest's `xc_dom` for x86 PV guests: memory population
 * (`meminit_pv`), the bootstrap area laid out in pfn space (`xc_dom_build_image`,
 * `xc_dom_alloc_segment`), the initial page tables counted to a fixpoint and filled
 * (`count_pgtables`, `alloc_pgtables_pv`, `setup_pgtables_pv`), the initial p2m at a separate VA as
 * Linux's `XEN_ELFNOTE_INIT_P2M` asks (`alloc_p2m_list_x86_64`), `start_info`
 * (`start_info_x86_{32,64}`), shared_info (`shared_info_x86_{32,64}`) and pinning the top-level
 * table (`bootlate_pv`). Sources: tools/libs/guest/xg_dom_core.c and xg_dom_x86.c in Xen.
 *
 * There is no kernel image: where libxenguest puts the kernel segment (at `virtBase`) the builder
 * puts `scratchPages` writable pages that tests and guest models use as kernel data, e.g. for
 * hypercall argument buffers.
 *
 * Bootstrap area, in pfn order from pfn 0 at `virtBase` (each item one segment):
 *
 *   scratch pages | [p2m list] | start_info | xenstore | console | page tables | boot stack | padding
 *
 * The p2m list is in the bootstrap area unless it has its own VA (x86_64 default
 * 0x0000008000000000); then its frames follow the padding, and the page tables mapping them come
 * right after those frames (`start_info.first_p2m_pfn` / `nr_p2m_frames` cover both).
 *
 * Every byte the builder writes into the domain's memory goes through Xen's store choke point
 * (`by: 'builder'`), page-wise.
 */

import {
  DOMID_FIRST_RESERVED,
  HYPERVISOR_VIRT_START_PAE,
  PAGE_SIZE,
  SIF_VIRT_P2M_4TOOLS,
  canonicalVa,
  isCanonicalVa,
  shared_info,
  start_info,
  startInfoMagic,
  vcpu_info,
  xen_pfn_to_cr3,
  XEN_LEGACY_MAX_VCPUS,
  type GuestAbi,
} from '../abi/index.js';
import type { Domain } from './domain.js';
import type { PageType } from './machine.js';
import type { Writer, Xen } from './xen.js';

/** A build the builder refuses: bad options, or memory it cannot get. One line, with the numbers. */
export class DomainBuildError extends Error {
  override name = 'DomainBuildError';
  constructor(
    message: string,
    /** The option at fault, when one is. */
    readonly option?: string,
  ) {
    super(message);
  }
}

export interface BuildOptions {
  readonly abi: GuestAbi;
  /** `nr_pages`: pfns [0, memoryPages) are populated; the initial p2m has this many entries. */
  readonly memoryPages: number;
  /** `max_pages` of the domain (default `memoryPages`); at least `memoryPages`. */
  readonly maxPages?: number;
  /**
   * `start_info.flags` (SIF_*). Default SIF_VIRT_P2M_4TOOLS, libxenguest's default for every
   * domain it builds (`xc_dom_allocate`). Note that libxl overwrites that default with its own
   * flags (0 for a domU) in `libxl__build_pv`, so pass 0 to model an `xl`-built domU.
   */
  readonly flags?: number;
  /** A control domain (may name other domains in memory ops and toolstack calls). */
  readonly privileged?: boolean;
  /** Domain id; default: the lowest free one. */
  readonly domid?: number;
  /**
   * VIRTUAL address where pfn 0 is mapped (the ELF note's `virt_base`), page aligned. Default
   * 0xffffffff80000000 on x86_64 (Linux's `__START_KERNEL_map`), 0xC0000000 on x86_32.
   */
  readonly virtBase?: bigint;
  /**
   * VIRTUAL address for the initial p2m list (`XEN_ELFNOTE_INIT_P2M`), x86_64 only: page aligned,
   * below `virtBase`, outside Xen's range. Default 0x0000008000000000 as Linux's note, where a
   * 512 GiB guest's 1 GiB list fits; `null` puts the list in the bootstrap area (kernels without
   * the note). x86_32 has no such note: the list is always in the bootstrap area.
   */
  readonly initP2mVaddr?: bigint | null;
  /**
   * Populate whole 512-pfn runs with 2 MiB machine extents (order 9, naturally aligned), as
   * libxenguest's `meminit_pv` does. Default false: one frame at a time, in pfn order, so a fresh
   * machine gives pfn i the frame right after pfn i-1's with no free holes below the domain's
   * frames (what most tests want to reason about).
   */
  readonly superpages?: boolean;
  /** Writable scratch pages at `virtBase` (default 16). */
  readonly scratchPages?: number;
  /** `start_info.store_evtchn` (default 1). */
  readonly storeEvtchn?: number;
  /** `start_info.console.domU.evtchn` (default 2). */
  readonly consoleEvtchn?: number;
  /** `start_info.cmd_line` (default empty). */
  readonly cmdLine?: string;
}

/** One initial page-table frame. */
export interface PtFrame {
  readonly pfn: number;
  readonly mfn: number;
  /** 1 = L1 … 4 = L4 (3 is the PAE top on x86_32). */
  readonly level: 1 | 2 | 3 | 4;
}

export interface BuiltDomain {
  readonly dom: Domain;
  readonly abi: GuestAbi;
  /** `nr_pages`: pfns [0, memoryPages) are populated. */
  readonly memoryPages: number;
  /** VIRTUAL address of pfn 0, the start of the bootstrap mapping (canonical form). */
  readonly virtBase: bigint;
  /** Pfns [0, bootstrapPfns) are mapped at `virtBase + pfn * PAGE_SIZE` (writable, except page tables). */
  readonly bootstrapPfns: number;
  /** VIRTUAL address of `start_info` (what the guest gets in rsi/esi). */
  readonly startInfoVa: bigint;
  readonly startInfoPfn: number;
  readonly startInfoMfn: number;
  /** VIRTUAL address of the initial p2m list (`start_info.mfn_list`): entry i = MFN of pfn i. */
  readonly p2mVa: bigint;
  /** First pfn of the p2m list's frames. */
  readonly p2mPfn: number;
  /** Frames holding the p2m list (`ceil(memoryPages * word / PAGE_SIZE)`), pfns [p2mPfn, p2mPfn + p2mFrames). */
  readonly p2mFrames: number;
  /** MFNs of the p2m list's frames, in list order (what a toolstack maps). */
  readonly p2mMfns: readonly number[];
  /** Whether the p2m list has its own VA (XEN_ELFNOTE_INIT_P2M) rather than lying in the bootstrap area. */
  readonly p2mSeparate: boolean;
  /** `start_info.first_p2m_pfn` / `nr_p2m_frames`: p2m frames plus the tables mapping them (0/0 when not separate). */
  readonly firstP2mPfn: number;
  readonly nrP2mFrames: number;
  /** VIRTUAL address of the first scratch page (= `virtBase`); `scratchPages` writable pages from there. */
  readonly scratchVa: bigint;
  readonly scratchPfn: number;
  readonly scratchPages: number;
  /** Top-level page table (L4, or the PAE L3): pinned, `dom.baseptrMfn`. */
  readonly topPtMfn: number;
  /** `xen_pfn_to_cr3(topPtMfn)`: the guest's cr3 value. */
  readonly cr3: bigint;
  /** VIRTUAL address of the top-level table (`start_info.pt_base`). */
  readonly ptBaseVa: bigint;
  /** `start_info.nr_pt_frames`: frames of the bootstrap page tables (pfns [ptPfn, ptPfn + nrPtFrames)). */
  readonly ptPfn: number;
  readonly nrPtFrames: number;
  /** Every initial page-table frame (bootstrap tables, then those mapping a separate p2m). */
  readonly ptFrames: readonly PtFrame[];
  /** MFNs of `ptFrames`, same order. */
  readonly ptMfns: readonly number[];
  readonly storePfn: number;
  readonly storeMfn: number;
  readonly consolePfn: number;
  readonly consoleMfn: number;
  readonly bootStackPfn: number;
  /** `start_info.flags` as written. */
  readonly flags: number;
  /** VIRTUAL address of a pfn that has an initial mapping (bootstrap area or separate p2m list); throws otherwise. */
  vaOfPfn(pfn: number): bigint;
  /** Whether `vaOfPfn` would succeed. */
  isMappedPfn(pfn: number): boolean;
  /** The p2m entry of `pfn` as the list holds it now (read from machine memory, no guest access). */
  p2mEntry(pfn: number): bigint;
}

// ------------------------------------------------------------------------------------------------
// Page-table geometry and counting (count_pgtables). VAs here are numbers masked to the ABI's VA
// width (48 or 32 bits): exact in a double, and libxc computes on masked VAs too.
// ------------------------------------------------------------------------------------------------

const PAGE_SHIFT = 12;
const LEVEL_SHIFT = 9;
const ENTRIES = 512;

const PTE_PRESENT = 0x1;
const PTE_RW = 0x2;
const PTE_USER = 0x4;
const PTE_ACCESSED = 0x20;
const PTE_DIRTY = 0x40;
/** libxc's `lvl_prot`: L1 entries, and entries of higher levels. */
const PROT_L1 = PTE_PRESENT | PTE_RW | PTE_ACCESSED;
const PROT_UPPER = PTE_PRESENT | PTE_RW | PTE_ACCESSED | PTE_DIRTY | PTE_USER;

/** Superpage extents libxc populates PV memory with (`SUPERPAGE_2MB_SHIFT`). */
const SUPERPAGE_ORDER = 9;
const SUPERPAGE_PFNS = 1 << SUPERPAGE_ORDER;

/** Pages libxc keeps mapped beyond the bootstrap segments: 512 KiB padding. */
const PAD_PAGES = (512 * 1024) / PAGE_SIZE;

const pow2 = (bits: number): number => 2 ** bits;
const alignDown = (x: number, bits: number): number => x - (x % pow2(bits));
const orMask = (x: number, bits: number): number => alignDown(x, bits) + pow2(bits) - 1;

/** Tables of one level for one mapping: VA range [from, to] (inclusive), first pfn, count. */
interface LevelTables {
  from: number;
  to: number;
  pfn: number;
  count: number;
}

/** One mapping (libxc `xc_dom_x86_mapping`): a VA area mapped to consecutive pfns, and its tables. */
interface Mapping {
  /** VA range, inclusive, masked. */
  readonly from: number;
  readonly to: number;
  /** Pfn mapped at `from`. */
  readonly pfn: number;
  /** Tables this mapping adds (all levels). */
  readonly tables: number;
  /** First pfn of those tables. */
  readonly ptPfn: number;
  /** Index 0 = L1 tables … levels-1 = the top table. */
  readonly lvls: readonly LevelTables[];
}

interface Geometry {
  readonly levels: number;
  /** VA width: 48 or 32. */
  readonly vaBits: number;
  readonly pae: boolean;
}

/**
 * Counts the tables mapping [from, to] when `earlier` mappings exist, as `count_pgtables` does:
 * the top table only in the first mapping; lower-level ranges already covered by an earlier
 * mapping are shared, partly covered ones trimmed.
 */
function countTables(geo: Geometry, earlier: readonly Mapping[], from: number, to: number, pfn: number, ptPfn: number): Mapping {
  const lvls: LevelTables[] = [];
  let tables = 0;
  for (let l = geo.levels - 1; l >= 0; l--) {
    const lvl: LevelTables = { from: 0, to: 0, pfn: ptPfn + tables, count: 0 };
    lvls[l] = lvl;
    if (l === geo.levels - 1) {
      if (earlier.length === 0) {
        lvl.to = pow2(geo.vaBits) - 1;
        lvl.count = 1;
        tables++;
      }
      continue;
    }
    const bits = PAGE_SHIFT + (l + 1) * LEVEL_SHIFT;
    lvl.from = alignDown(from, bits);
    lvl.to = orMask(to, bits);
    // PAE: the first mapping always gets an L2 for L3 slot 3 (Xen's private mappings live there).
    if (geo.pae && earlier.length === 0 && to < 0xc0000000 && l === 1) lvl.to = pow2(geo.vaBits) - 1;
    for (const cmp of earlier) {
      const c = cmp.lvls[l]!;
      if (c.from === c.to) continue;
      if (lvl.from >= c.from && lvl.to <= c.to) {
        lvl.from = 0;
        lvl.to = 0;
        break;
      }
      if (lvl.from >= c.from && lvl.from <= c.to) lvl.from = c.to + 1;
      if (lvl.to >= c.from && lvl.to <= c.to) lvl.to = c.from - 1;
    }
    if (lvl.from < lvl.to) lvl.count = Math.floor((lvl.to - lvl.from) / pow2(bits)) + 1;
    tables += lvl.count;
  }
  return { from, to, pfn, tables, ptPfn, lvls };
}

// ------------------------------------------------------------------------------------------------
// Layout: pure arithmetic on the options, done before anything is allocated.
// ------------------------------------------------------------------------------------------------

interface Layout {
  readonly geo: Geometry;
  readonly virtBase: number;
  readonly scratchPfn: number;
  readonly scratchPages: number;
  readonly p2mPfn: number;
  readonly p2mFrames: number;
  readonly p2mVa: number;
  readonly p2mSeparate: boolean;
  readonly startInfoPfn: number;
  readonly storePfn: number;
  readonly consolePfn: number;
  readonly ptPfn: number;
  readonly bootStackPfn: number;
  readonly bootstrapPfns: number;
  readonly maps: readonly Mapping[];
  /** Pfns [0, specialEnd) hold every segment (bootstrap area, p2m list and its tables). */
  readonly specialEnd: number;
}

const hex = (v: number | bigint): string => `0x${v.toString(16)}`;

function layout(abi: GuestAbi, memoryPages: number, scratchPages: number, virtBaseVa: bigint, p2mVaOpt: bigint | null): Layout {
  const geo: Geometry = { levels: abi.pagingLevels, vaBits: abi.wordSize === 8 ? 48 : 32, pae: abi.wordSize === 4 };
  const vaSpace = pow2(geo.vaBits);
  const virtBase = Number(virtBaseVa & BigInt(vaSpace - 1));
  const p2mBytes = Math.ceil((memoryPages * abi.wordSize) / PAGE_SIZE) * PAGE_SIZE;
  const p2mFrames = p2mBytes / PAGE_SIZE;
  const p2mSeparate = p2mVaOpt !== null;

  // Segments in allocation order; pfn and VA advance together (xc_dom_chk_alloc_pages).
  let pfnEnd = 0;
  const alloc = (pages: number): number => {
    const pfn = pfnEnd;
    pfnEnd += pages;
    return pfn;
  };
  const scratchPfn = alloc(scratchPages);
  const p2mInBootstrapPfn = p2mSeparate ? -1 : alloc(p2mFrames);
  const startInfoPfn = alloc(1);
  const storePfn = alloc(1);
  const consolePfn = alloc(1);

  // alloc_pgtables_pv: grow the mapping until it covers its own tables, the boot stack and 512 KiB.
  const extra = 1 + PAD_PAGES;
  let pages = extra;
  let boot: Mapping;
  let tryEnd: number;
  for (;;) {
    tryEnd = orMask(virtBase + (pfnEnd + pages) * PAGE_SIZE, 22); // 4 MiB alignment
    boot = countTables(geo, [], virtBase, tryEnd, 0, pfnEnd);
    pages = boot.tables + extra;
    if (virtBase + (pfnEnd + pages) * PAGE_SIZE <= tryEnd + 1) break;
  }
  const bootstrapPfns = (tryEnd + 1 - virtBase) / PAGE_SIZE;
  const ptPfn = alloc(boot.tables);
  const bootStackPfn = alloc(1);

  const vaLimit = geo.pae ? Number(HYPERVISOR_VIRT_START_PAE) : virtBase >= pow2(47) ? vaSpace : pow2(47);
  if (tryEnd + 1 > vaLimit) {
    throw new DomainBuildError(
      geo.pae
        ? `x86_32 guest too big for its VA space: bootstrap mapping ${hex(virtBase)}..${hex(tryEnd)} reaches past ${hex(HYPERVISOR_VIRT_START_PAE)}`
        : `x86_64 bootstrap mapping ${hex(virtBaseVa)}+${hex(tryEnd + 1 - virtBase)} runs past the end of its canonical half`,
      'memoryPages',
    );
  }
  if (!geo.pae && virtBase < 0x880000000000 && tryEnd >= 0x800000000000) {
    throw new DomainBuildError(`bootstrap mapping ${hex(virtBaseVa)}..+${hex(tryEnd + 1 - virtBase)} overlaps Xen's virtual range`, 'virtBase');
  }
  if (bootstrapPfns > memoryPages) {
    throw new DomainBuildError(
      `not enough memory for the initial mapping: ${hex(bootstrapPfns)} pfns mapped > nr_pages ${hex(memoryPages)}`,
      'memoryPages',
    );
  }
  pfnEnd = bootstrapPfns; // padding up to the end of the mapping (xc_dom_alloc_pad)

  const maps: Mapping[] = [boot];
  let p2mPfn = p2mInBootstrapPfn;
  let p2mVa = virtBase + p2mInBootstrapPfn * PAGE_SIZE;
  if (p2mSeparate) {
    p2mVa = Number(p2mVaOpt & BigInt(vaSpace - 1));
    const to = p2mVa + p2mBytes - 1;
    if (p2mVa < virtBase ? to >= virtBase : p2mVa <= tryEnd) {
      throw new DomainBuildError(`initP2mVaddr ${hex(p2mVaOpt)}: the ${hex(p2mBytes)}-byte p2m list overlaps the bootstrap mapping at ${hex(virtBaseVa)}`, 'initP2mVaddr');
    }
    if ((p2mVa < pow2(47) && to >= pow2(47)) || (p2mVa < 0x880000000000 && to >= 0x800000000000)) {
      throw new DomainBuildError(`initP2mVaddr ${hex(p2mVaOpt)}: the ${hex(p2mBytes)}-byte p2m list leaves the canonical lower half or overlaps Xen's range`, 'initP2mVaddr');
    }
    p2mPfn = pfnEnd;
    if (p2mPfn + p2mFrames > memoryPages) {
      throw new DomainBuildError(
        `not enough memory for the initial p2m list: pfns ${hex(p2mPfn)}+${hex(p2mFrames)} > nr_pages ${hex(memoryPages)}`,
        'memoryPages',
      );
    }
    const m = countTables(geo, maps, p2mVa, to, p2mPfn, p2mPfn + p2mFrames);
    maps.push(m);
    pfnEnd = p2mPfn + p2mFrames + m.tables;
    if (pfnEnd > memoryPages) {
      throw new DomainBuildError(`not enough memory for the initial p2m list and its page tables: ${hex(pfnEnd)} pfns > nr_pages ${hex(memoryPages)}`, 'memoryPages');
    }
  }
  return {
    geo,
    virtBase,
    scratchPfn,
    scratchPages,
    p2mPfn,
    p2mFrames,
    p2mVa,
    p2mSeparate,
    startInfoPfn,
    storePfn,
    consolePfn,
    ptPfn,
    bootStackPfn,
    bootstrapPfns,
    maps,
    specialEnd: pfnEnd,
  };
}

// ------------------------------------------------------------------------------------------------
// Options
// ------------------------------------------------------------------------------------------------

const DEFAULT_VIRT_BASE_X86_64 = 0xffffffff80000000n;
const DEFAULT_VIRT_BASE_X86_32 = 0xc0000000n;
/** Linux's XEN_ELFNOTE_INIT_P2M on x86_64. */
const DEFAULT_INIT_P2M_X86_64 = 0x0000008000000000n;

function checkCount(value: number, option: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) throw new DomainBuildError(`${option} ${value} is not an integer >= ${min}`, option);
  return value;
}

function checkVa(abi: GuestAbi, va: bigint, option: string): bigint {
  const max = abi.wordSize === 8 ? 0xffffffffffffffffn : 0xffffffffn;
  if (typeof va !== 'bigint' || va < 0n || va > max) throw new DomainBuildError(`${option} ${String(va)} is not an ${abi.name} virtual address`, option);
  if (va % BigInt(PAGE_SIZE) !== 0n) throw new DomainBuildError(`${option} ${hex(va)} is not page aligned`, option);
  if (abi.wordSize === 8 && !isCanonicalVa(va)) throw new DomainBuildError(`${option} ${hex(va)} is not canonical`, option);
  return va;
}

// ------------------------------------------------------------------------------------------------
// The build
// ------------------------------------------------------------------------------------------------

/**
 * Builds a PV domain as libxenguest does: creates it, populates pfns [0, memoryPages) (single
 * frames, or 2 MiB extents with `superpages`; the m2p set for each), writes the initial p2m,
 * the page tables (typed, top pinned, `dom.baseptrMfn` set), `start_info` and shared_info.
 * Throws `DomainBuildError` for bad options or when memory runs out (nothing is left allocated).
 */
export function buildDomain(xen: Xen, options: BuildOptions): BuiltDomain {
  const abi = options.abi;
  if (!abi || (abi.wordSize !== 4 && abi.wordSize !== 8)) throw new DomainBuildError('abi must be X86_32 or X86_64', 'abi');
  const compat = abi.wordSize === 4;
  const memoryPages = checkCount(options.memoryPages, 'memoryPages', 1);
  const maxPages = checkCount(options.maxPages ?? memoryPages, 'maxPages', 1);
  if (maxPages < memoryPages) throw new DomainBuildError(`maxPages ${hex(maxPages)} < memoryPages ${hex(memoryPages)}`, 'maxPages');
  const scratchPages = checkCount(options.scratchPages ?? 16, 'scratchPages', 0);
  const flags = options.flags ?? SIF_VIRT_P2M_4TOOLS;
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xffffffff) throw new DomainBuildError(`flags ${flags} is not a 32-bit value`, 'flags');
  const maxP2mPfn = compat ? 2 ** 30 : 2 ** 32; // p2m entries a guest word can index; m2p holds 32-bit pfns
  if (memoryPages > maxP2mPfn) throw new DomainBuildError(`memoryPages ${hex(memoryPages)} exceeds ${hex(maxP2mPfn)}`, 'memoryPages');

  const virtBase = checkVa(abi, options.virtBase ?? (compat ? DEFAULT_VIRT_BASE_X86_32 : DEFAULT_VIRT_BASE_X86_64), 'virtBase');
  let initP2m: bigint | null = null;
  if (compat) {
    if (options.initP2mVaddr !== undefined && options.initP2mVaddr !== null) {
      throw new DomainBuildError('initP2mVaddr: x86_32 guests have no XEN_ELFNOTE_INIT_P2M; the p2m list is in the bootstrap area', 'initP2mVaddr');
    }
  } else if (options.initP2mVaddr !== null) {
    initP2m = checkVa(abi, options.initP2mVaddr ?? DEFAULT_INIT_P2M_X86_64, 'initP2mVaddr');
    // libxenguest honours the note only below virt_base (xc_dom_build_image).
    if (initP2m >= virtBase) throw new DomainBuildError(`initP2mVaddr ${hex(initP2m)} is not below virtBase ${hex(virtBase)}`, 'initP2mVaddr');
  }

  if (options.domid !== undefined) {
    checkCount(options.domid, 'domid', 0);
    if (options.domid >= DOMID_FIRST_RESERVED) throw new DomainBuildError(`domid ${hex(options.domid)} is reserved`, 'domid');
    if (xen.domain(options.domid)) throw new DomainBuildError(`domid ${options.domid} is in use`, 'domid');
  }

  const lay = layout(abi, memoryPages, scratchPages, virtBase, initP2m);

  const machine = xen.machine;
  // +1: shared_info, which createDomain allocates.
  if (memoryPages + 1 > machine.freeFrames) {
    throw new DomainBuildError(`memoryPages ${hex(memoryPages)} (+1 for shared_info) exceeds the machine's ${hex(machine.freeFrames)} free frames`, 'memoryPages');
  }

  const dom = xen.createDomain({
    abi,
    maxPages,
    ...(options.privileged === undefined ? {} : { privileged: options.privileged }),
    ...(options.domid === undefined ? {} : { domid: options.domid }),
  });
  try {
    return populateAndWrite(xen, dom, lay, memoryPages, flags, options);
  } catch (error) {
    xen.destroyDomain(dom.domid);
    throw error;
  }
}

function populateAndWrite(xen: Xen, dom: Domain, lay: Layout, memoryPages: number, flags: number, options: BuildOptions): BuiltDomain {
  const abi = dom.abi;
  const compat = abi.wordSize === 4;
  const machine = xen.machine;
  const writer: Writer = { domid: dom.domid, by: 'builder' };
  const limit = xen.allocLimit(dom);
  const perPage = PAGE_SIZE / abi.wordSize;

  // meminit_pv: 2 MiB extents for whole 512-pfn runs (when asked), single frames for the rest. Xen's
  // PV populate sets the m2p of each frame. Pfns are populated in order, a p2m page's worth at a time.
  const superpages = options.superpages ?? false;
  const outOfMemory = (pfn: number): DomainBuildError =>
    new DomainBuildError(`out of memory populating pfn ${hex(pfn)} of ${hex(memoryPages)}: no free frame below ${hex(limit)}`, 'memoryPages');
  const populate = (pfnStart: number, count: number, out: Float64Array, at: number): void => {
    if (!superpages && !xen.events.active) {
      // The same frames as one allocFrame and setM2p per pfn, claimed in bulk (nobody observes the
      // ownership and m2p events this skips).
      const got = machine.allocFramesWithM2p(dom.domid, count, limit, pfnStart, 1, out, at);
      dom.totPages += got;
      if (got < count) throw outOfMemory(pfnStart + got);
      return;
    }
    let pfn = pfnStart;
    const end = pfnStart + count;
    while (pfn < end) {
      let base: number | undefined;
      if (superpages && pfn % SUPERPAGE_PFNS === 0 && pfn + SUPERPAGE_PFNS <= Math.min(end, memoryPages)) {
        base = machine.allocExtent(dom.domid, SUPERPAGE_ORDER, limit);
      }
      if (base !== undefined) {
        for (let i = 0; i < SUPERPAGE_PFNS; i++) {
          xen.setM2p(base + i, pfn + i);
          out[at + (pfn - pfnStart) + i] = base + i;
        }
        pfn += SUPERPAGE_PFNS;
        dom.totPages += SUPERPAGE_PFNS;
        continue;
      }
      const mfn = machine.allocFrame(dom.domid, limit);
      if (mfn === undefined) throw outOfMemory(pfn);
      xen.setM2p(mfn, pfn);
      out[at + (pfn - pfnStart)] = mfn;
      pfn++;
      dom.totPages++;
    }
  };

  // Phase 1: the prefix holding every segment, so their mfns are known before anything is written.
  const chunks = Math.ceil(memoryPages / perPage);
  const specialChunks = Math.min(chunks, Math.ceil(lay.specialEnd / perPage));
  const specialCount = Math.min(memoryPages, specialChunks * perPage);
  const special = new Float64Array(specialCount);
  populate(0, specialCount, special, 0);
  const mfnOf = (pfn: number): number => {
    if (pfn >= specialCount) throw new Error(`builder: pfn ${hex(pfn)} is outside the segment prefix`);
    return special[pfn]!;
  };

  // Phase 2: the p2m list, page by page, populating the remaining pfns as their page comes up.
  const page = new Uint8Array(PAGE_SIZE);
  const words = new Uint32Array(page.buffer);
  const chunk = new Float64Array(perPage);
  const p2mMfns: number[] = new Array<number>(lay.p2mFrames);
  for (let k = 0; k < chunks; k++) {
    const first = k * perPage;
    const count = Math.min(perPage, memoryPages - first);
    let src: Float64Array;
    let at: number;
    if (first < specialCount) {
      src = special;
      at = first;
    } else {
      populate(first, count, chunk, 0);
      src = chunk;
      at = 0;
    }
    if (count < perPage) page.fill(0);
    if (compat) {
      for (let i = 0; i < count; i++) {
        const mfn = src[at + i]!;
        if (mfn > 0xffffffff) throw new DomainBuildError(`x86_32 guest got mfn ${hex(mfn)} that does not fit its 32-bit p2m`, 'abi');
        words[i] = mfn;
      }
    } else {
      for (let i = 0; i < count; i++) {
        // Halves of the mfn without `%` on doubles (a libm call): this is a big build's hot loop.
        const mfn = src[at + i]!;
        words[2 * i] = mfn >>> 0;
        words[2 * i + 1] = mfn > 0xffffffff ? Math.floor(mfn / 0x100000000) : 0;
      }
    }
    const frameMfn = mfnOf(lay.p2mPfn + k);
    p2mMfns[k] = frameMfn;
    xen.storeBytes(writer, frameMfn, 0, page);
  }

  // setup_pgtables_pv: entries per level and mapping; L1 entries of page-table frames read-only.
  const { geo, maps } = lay;
  const isPtPfn = (pfn: number): boolean => maps.some((m) => pfn >= m.ptPfn && pfn < m.ptPfn + m.tables);
  const ptFrames: PtFrame[] = [];
  for (let l = geo.levels - 1; l >= 0; l--) {
    for (const m1 of maps) {
      const group = m1.lvls[l]!;
      if (group.count === 0) continue;
      const entries = new Uint32Array(group.count * ENTRIES * 2);
      const eb = PAGE_SHIFT + l * LEVEL_SHIFT;
      const span = pow2(eb);
      for (const m2 of maps) {
        const lower = l > 0 ? m2.lvls[l - 1]! : { from: m2.from, to: m2.to, pfn: m2.pfn, count: 1 };
        if (l > 0 && lower.count === 0) continue;
        if (lower.from >= group.to || lower.to <= group.from) continue;
        const lo = Math.max(group.from, lower.from);
        const ps = Math.floor((lo - group.from) / span);
        const pe = Math.floor((Math.min(group.to, lower.to) - group.from) / span);
        let pfn = Math.floor((lo - lower.from) / span) + lower.pfn;
        for (let p = ps; p <= pe; p++, pfn++) {
          const mfn = mfnOf(pfn);
          const prot = l > 0 ? PROT_UPPER : isPtPfn(pfn) ? PROT_L1 & ~PTE_RW : PROT_L1;
          entries[2 * p] = (mfn % 0x100000) * PAGE_SIZE + prot;
          entries[2 * p + 1] = Math.floor(mfn / 0x100000);
        }
      }
      for (let t = 0; t < group.count; t++) {
        const pfn = group.pfn + t;
        const mfn = mfnOf(pfn);
        const bytes = new Uint8Array(entries.buffer, t * PAGE_SIZE, PAGE_SIZE);
        xen.storeBytes(writer, mfn, 0, bytes);
        ptFrames.push({ pfn, mfn, level: (l + 1) as PtFrame['level'] });
      }
    }
  }
  // bootlate_pv pins the top table; Xen's validation types every table below it.
  for (const f of ptFrames) machine.setPageType(f.mfn, f.level as PageType);
  const top = ptFrames[0]!;
  machine.setPinned(top.mfn, true);
  dom.baseptrMfn = top.mfn;
  dom.startInfoMfn = mfnOf(lay.startInfoPfn);

  const toVa = (masked: number): bigint => (compat ? BigInt(masked) : canonicalVa(BigInt(masked)));
  const vaOfPfnRaw = (pfn: number): bigint | undefined => {
    if (Number.isInteger(pfn) && pfn >= 0 && pfn < lay.bootstrapPfns) return toVa(lay.virtBase + pfn * PAGE_SIZE);
    if (lay.p2mSeparate && Number.isInteger(pfn) && pfn >= lay.p2mPfn && pfn < lay.p2mPfn + lay.p2mFrames) {
      return toVa(lay.p2mVa + (pfn - lay.p2mPfn) * PAGE_SIZE);
    }
    return undefined;
  };

  // start_info (start_info_x86_{32,64}).
  const startInfoMfn = mfnOf(lay.startInfoPfn);
  const storeMfn = mfnOf(lay.storePfn);
  const consoleMfn = mfnOf(lay.consolePfn);
  const p2mVa = toVa(lay.p2mVa);
  const ptBaseVa = vaOfPfnRaw(top.pfn)!;
  const nrPtFrames = maps[0]!.tables;
  const firstP2mPfn = lay.p2mSeparate ? lay.p2mPfn : 0;
  const nrP2mFrames = lay.p2mSeparate ? lay.p2mFrames + maps[1]!.tables : 0;
  {
    const { bytes, view } = start_info.alloc(abi);
    view.magic = startInfoMagic(abi);
    view.nr_pages = BigInt(memoryPages);
    view.shared_info = BigInt(dom.sharedInfoMfn) * BigInt(PAGE_SIZE);
    view.flags = flags;
    view.store_mfn = BigInt(storeMfn);
    view.store_evtchn = options.storeEvtchn ?? 1;
    view.console.domU.mfn = BigInt(consoleMfn);
    view.console.domU.evtchn = options.consoleEvtchn ?? 2;
    view.pt_base = ptBaseVa;
    view.nr_pt_frames = BigInt(nrPtFrames);
    view.mfn_list = p2mVa;
    view.first_p2m_pfn = BigInt(firstP2mPfn);
    view.nr_p2m_frames = BigInt(nrP2mFrames);
    if (options.cmdLine !== undefined) {
      const text = Buffer.from(options.cmdLine, 'utf8');
      const at = start_info.offsetOf(abi, 'cmd_line');
      text.copy(bytes, at, 0, Math.min(text.length, 1023)); // strncpy, then a forced NUL
    }
    xen.storeBytes(writer, startInfoMfn, 0, bytes);
  }

  // shared_info (shared_info_x86_{32,64}): zeroed, event upcalls masked on every legacy vCPU.
  {
    const bytes = new Uint8Array(shared_info.sizeOf(abi));
    const base = shared_info.offsetOf(abi, 'vcpu_info');
    const stride = vcpu_info.sizeOf(abi);
    const mask = vcpu_info.offsetOf(abi, 'evtchn_upcall_mask');
    for (let i = 0; i < XEN_LEGACY_MAX_VCPUS; i++) bytes[base + i * stride + mask] = 1;
    xen.storeBytes(writer, dom.sharedInfoMfn, 0, bytes);
  }

  const ptMfns = ptFrames.map((f) => f.mfn);
  return {
    dom,
    abi,
    memoryPages,
    virtBase: toVa(lay.virtBase),
    bootstrapPfns: lay.bootstrapPfns,
    startInfoVa: vaOfPfnRaw(lay.startInfoPfn)!,
    startInfoPfn: lay.startInfoPfn,
    startInfoMfn,
    p2mVa,
    p2mPfn: lay.p2mPfn,
    p2mFrames: lay.p2mFrames,
    p2mMfns,
    p2mSeparate: lay.p2mSeparate,
    firstP2mPfn,
    nrP2mFrames,
    scratchVa: toVa(lay.virtBase + lay.scratchPfn * PAGE_SIZE),
    scratchPfn: lay.scratchPfn,
    scratchPages: lay.scratchPages,
    topPtMfn: top.mfn,
    cr3: xen_pfn_to_cr3(abi, BigInt(top.mfn)),
    ptBaseVa,
    ptPfn: lay.ptPfn,
    nrPtFrames,
    ptFrames,
    ptMfns,
    storePfn: lay.storePfn,
    storeMfn,
    consolePfn: lay.consolePfn,
    consoleMfn,
    bootStackPfn: lay.bootStackPfn,
    flags,
    vaOfPfn(pfn: number): bigint {
      const va = vaOfPfnRaw(pfn);
      if (va === undefined) throw new RangeError(`pfn ${hex(pfn)} has no initial mapping`);
      return va;
    },
    isMappedPfn(pfn: number): boolean {
      return vaOfPfnRaw(pfn) !== undefined;
    },
    p2mEntry(pfn: number): bigint {
      if (!Number.isInteger(pfn) || pfn < 0 || pfn >= memoryPages) throw new RangeError(`pfn ${hex(pfn)} outside the p2m [0, ${hex(memoryPages)})`);
      const bytes = machine.bytes(p2mMfns[Math.floor(pfn / perPage)]!);
      const view = new DataView(bytes.buffer, bytes.byteOffset, PAGE_SIZE);
      const at = (pfn % perPage) * abi.wordSize;
      return compat ? BigInt(view.getUint32(at, true)) : view.getBigUint64(at, true);
    },
  };
}
