/**
 * The grant-table state of one domain (v1 only), as Xen's `struct grant_table` in
 * xen/common/grant_table.c holds it:
 * - the shared frames holding the domain's `grant_entry_v1` array (Xen heap pages shared with the
 *   domain, not in its tot_pages; 512 entries each). The entries themselves live in those frames'
 *   bytes, where the guest writes them; nothing here caches them;
 * - the active entries: Xen's private record of each of this domain's grants that another domain
 *   (or itself) currently has pinned, with four 8-bit pin counters;
 * - the maptrack: the handles of grants *this* domain has mapped from others, with Xen's free list
 *   (handles are reused first-in first-out, and one free handle always stays as the list's tail).
 *
 * The hypercall logic lives in hypercalls/grant_table_op.ts and hypercalls/grant/.
 */

/** `INITIAL_NR_GRANT_FRAMES` (x86): a table starts with one frame. */
export const INITIAL_NR_GRANT_FRAMES = 1;
/** `SHGNT_PER_PAGE_V1`: 8-byte v1 entries per 4 KiB frame. */
export const GRANT_ENTRIES_PER_FRAME_V1 = 512;
/** `MAPTRACK_PER_PAGE`: 4096 / sizeof(struct grant_mapping) (16 bytes). */
export const MAPTRACK_PER_PAGE = 256;
/** Xen's default `gnttab_max_maptrack_frames`. */
export const DEFAULT_MAX_MAPTRACK_FRAMES = 1024;

// Pin counters of an active entry: four 8-bit counts packed in one 32-bit word (Xen's GNTPIN_*).
/** Writable host (CPU) mappings. */
export const GNTPIN_hstw_inc = 1 << 0;
/** Read-only host mappings. */
export const GNTPIN_hstr_inc = 1 << 8;
/** Writable device mappings. */
export const GNTPIN_devw_inc = 1 << 16;
/** Read-only device mappings. */
export const GNTPIN_devr_inc = 1 << 24;
export const GNTPIN_hstw_mask = 0xff << 0;
export const GNTPIN_hstr_mask = 0xff << 8;
export const GNTPIN_devw_mask = 0xff << 16;
export const GNTPIN_devr_mask = (0xff << 24) >>> 0;

/**
 * The bits that, already set, mean adding `incr` could overflow a counter (Xen refuses a pin once
 * a counter has reached 128).
 */
export function pinOverflowMask(incr: number): number {
  return (incr * 128) >>> 0;
}

/** One pinned grant of this domain (Xen's `struct active_grant_entry`, v1 fields only). */
export interface ActiveGrant {
  /** The four GNTPIN_* counters; the entry is in use while non-zero. */
  pin: number;
  /** The domain the grant is pinned for (the mapper or copier). */
  domid: number;
  /** The machine frame granted (v1 `frame` of a PV granter is an MFN). */
  mfn: number;
}

/** One handle of this domain's maptrack (Xen's `struct grant_mapping`). */
export interface MaptrackEntry {
  /** GNTMAP_* flags still mapped; 0 when the handle is free. */
  readonly flags: number;
  /** Grant reference in the granter's table. */
  readonly ref: number;
  /** The granting domain. */
  readonly domid: number;
}

/** End of the maptrack free list (`MAPTRACK_TAIL`). */
const TAIL = -1;

export class GrantTable {
  /** Machine frames of the shared grant entries, in order; grows with `setup_table`. */
  readonly frames: number[] = [];
  /** Grant-table version; only v1 is emulated, and v2 is not permitted (max version 1). */
  readonly version = 1;
  /** Maptrack frames this domain may use (`gnttab_max_maptrack_frames`). */
  maxMaptrackFrames: number;

  private readonly active = new Map<number, ActiveGrant>();

  // Maptrack, one slot per handle below `maptrackLimit` (Xen's vCPU 0 free list: one vCPU here).
  private mtFlags: number[] = [];
  private mtRef: number[] = [];
  private mtDomid: number[] = [];
  private mtNext: number[] = [];
  private head = TAIL;
  private tail = TAIL;
  private limit = 0;

  constructor(
    readonly maxFrames: number,
    maxMaptrackFrames = DEFAULT_MAX_MAPTRACK_FRAMES,
  ) {
    this.maxMaptrackFrames = maxMaptrackFrames;
  }

  /** `nr_grant_entries`: entries in the current frames. */
  get nrEntries(): number {
    return this.frames.length * GRANT_ENTRIES_PER_FRAME_V1;
  }

  /** Where entry `ref` lives: its frame and byte offset. `ref` must be below `nrEntries`. */
  entryLocation(ref: number): { mfn: number; offset: number } {
    const mfn = this.frames[Math.floor(ref / GRANT_ENTRIES_PER_FRAME_V1)];
    if (mfn === undefined) throw new RangeError(`grant ref ${ref} is beyond ${this.nrEntries} entries`);
    return { mfn, offset: (ref % GRANT_ENTRIES_PER_FRAME_V1) * 8 };
  }

  // ----------------------------------------------------------------------------------------------
  // Active entries
  // ----------------------------------------------------------------------------------------------

  /** The active entry of `ref`, or undefined when nothing pins it. */
  activeEntry(ref: number): ActiveGrant | undefined {
    return this.active.get(ref);
  }

  /** Starts tracking `ref` as pinned for `domid` (its first pin). */
  activate(ref: number, domid: number, mfn: number): ActiveGrant {
    const act: ActiveGrant = { pin: 0, domid, mfn };
    this.active.set(ref, act);
    return act;
  }

  /** Forgets `ref`'s active entry once its pin count is back to zero. */
  deactivateIfIdle(ref: number): void {
    const act = this.active.get(ref);
    if (act && act.pin === 0) this.active.delete(ref);
  }

  /** Refs with a non-zero pin, and their active entries. */
  pinned(): IterableIterator<[number, ActiveGrant]> {
    return this.active.entries();
  }

  // ----------------------------------------------------------------------------------------------
  // Maptrack
  // ----------------------------------------------------------------------------------------------

  /** Handles that exist (free or in use): `maptrack_limit`. */
  get maptrackLimit(): number {
    return this.limit;
  }

  /**
   * Takes a free handle (`get_maptrack_handle`), growing the maptrack by a frame's worth of
   * handles when only the tail is left. Undefined when the maptrack is at its limit (GNTST_no_space).
   */
  allocHandle(): number | undefined {
    if (this.head !== TAIL) {
      const next = this.mtNext[this.head]!;
      if (next !== TAIL) {
        const handle = this.head;
        this.head = next;
        return handle;
      }
    }
    if (this.limit / MAPTRACK_PER_PAGE >= this.maxMaptrackFrames) return undefined;
    const first = this.limit;
    for (let i = 0; i < MAPTRACK_PER_PAGE; i++) {
      this.mtFlags.push(0);
      this.mtRef.push(0);
      this.mtDomid.push(0);
      this.mtNext.push(first + i + 1);
    }
    if (this.tail === TAIL) this.tail = first + MAPTRACK_PER_PAGE - 1;
    // The new frame's handles go in front of the old list; the first one is returned.
    this.mtNext[first + MAPTRACK_PER_PAGE - 1] = this.head;
    this.head = first + 1;
    this.limit += MAPTRACK_PER_PAGE;
    return first;
  }

  /** Returns a handle to the tail of the free list (`put_maptrack_handle`). */
  freeHandle(handle: number): void {
    this.mtFlags[handle] = 0;
    this.mtNext[handle] = TAIL;
    this.mtNext[this.tail] = handle;
    this.tail = handle;
  }

  /** The mapping behind a handle, or undefined when the handle is out of range or free. */
  mapping(handle: number): MaptrackEntry | undefined {
    if (!Number.isInteger(handle) || handle < 0 || handle >= this.limit) return undefined;
    const flags = this.mtFlags[handle]!;
    if (flags === 0) return undefined;
    return { flags, ref: this.mtRef[handle]!, domid: this.mtDomid[handle]! };
  }

  /** Records a new mapping under `handle` (flags last, as Xen publishes them). */
  setMapping(handle: number, flags: number, ref: number, domid: number): void {
    this.mtRef[handle] = ref;
    this.mtDomid[handle] = domid;
    this.mtFlags[handle] = flags;
  }

  /** Narrows a mapping's flags as parts of it are unmapped. */
  setMappingFlags(handle: number, flags: number): void {
    this.mtFlags[handle] = flags;
  }

  /** Handles currently in use. */
  *mappings(): Generator<[number, MaptrackEntry]> {
    for (let h = 0; h < this.limit; h++) {
      const m = this.mapping(h);
      if (m) yield [h, m];
    }
  }
}
