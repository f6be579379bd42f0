/**
 * The save side of a live migration of an x86 PV guest, as libxc's `xg_sr_save.c` and
 * `xg_sr_save_x86_pv.c` do it, through the privileged interface only (design decision 6), with
 * the reaction to p2m changes chosen by a strategy (DESIGN.md, "Reference toolstack strategies"):
 *
 * - `map-once` (Xen 4.6): maps the p2m once and never looks at it again.
 * - `abort-on-change` (Xen 4.7+): list mode compares `p2m_generation` at the start of every
 *   checkpoint and after every pass while the save is live, and aborts when it moved; tree mode
 *   and Remus checkpoints after the first are never checked.
 * - `deep-tracking` (the seed's options 2+3+4, each separable): keeps the p2m as last sent and
 *   diffs dirty p2m frames (2); in tree mode re-reads the fll and remaps when the fll or a dirty
 *   top/mid frame says the leaves moved (3; without 2, every pfn of a dirty leaf is resent); in
 *   list mode waits for an even generation and remaps by walking `p2m_cr3` when it moved (4);
 *   pfns whose p2m and m2p disagree are deferred to the final pass, where a disagreement aborts
 *   naming the pfn; `X86_PV_P2M_FRAMES` goes again when the frame list moves or grows.
 *
 * The save is a party of the deterministic scheduler (xen-emu/scheduler.ts): every PAGE_DATA
 * batch is one step, so the guest's operations interleave with the save down to single stores.
 */

import {
  PAGE_SIZE,
  XEN_DOMCTL_PFINFO_LTAB_SHIFT,
  XEN_DOMCTL_PFINFO_LTABTYPE_MASK,
  XEN_DOMCTL_PFINFO_XTAB,
  _PAGE_PRESENT,
  _PAGE_PSE,
  PTE_FRAME_MASK,
  shared_info,
  type GuestAbi,
} from '../abi/index.js';
import { INVALID_M2P } from '../xen-emu/machine.js';
import type { PrivilegedInterface } from '../xen-emu/privileged.js';
import type { StepLabel } from '../xen-emu/scheduler.js';
import { P2mMapError, mapGuestP2m, type MappedP2m } from './p2m-map.js';
import { PageDataColumns, columnTypeHasData } from './stream/page-data.js';
import type { StreamWriter } from './stream/writer.js';
import { REC_TYPE_X86_PV_VCPU_BASIC } from './stream/record-types.js';
import { encodeVcpuBasic } from './vcpu-context.js';

export const STRATEGIES = ['map-once', 'abort-on-change', 'deep-tracking'] as const;
export type StrategyName = (typeof STRATEGIES)[number];

/** The seed's options: 2 deep p2m dirty tracking, 3 eager tree checks, 4 the generation counter. */
export const MECHANISMS = [2, 3, 4] as const;
export type Mechanism = (typeof MECHANISMS)[number];

/** What a save asks of whoever runs the guest (libxl's callbacks to libxc). */
export interface SaveCallbacks {
  /** Suspends the guest (`suspend` callback): yields steps until it has stopped at a quiescent point. */
  suspend(): Generator<StepLabel, void, undefined>;
  /**
   * Remus/COLO, between checkpoints (`postcopy` + `checkpoint` callbacks): resumes the guest
   * (a cancelled suspend) and lets it run; yields steps while it runs.
   */
  resumeBetweenCheckpoints?(checkpoint: number): Generator<StepLabel, void, undefined>;
}

export interface SaveOptions {
  readonly strategy: StrategyName;
  /** deep-tracking only: which of the seed's mechanisms are on (default all three). */
  readonly mechanisms?: readonly Mechanism[];
  /** Live passes after the first full one before the guest is suspended (libxc: max_iterations 5). */
  readonly maxLiveRounds?: number;
  /** Fewer dirty pfns than this ends the live phase early (libxc: dirty_threshold 50). */
  readonly dirtyThreshold?: number;
  /** Remus/COLO: checkpoints to send (each ends with CHECKPOINT, the stream has no END); 0 = plain. */
  readonly checkpoints?: number;
  /** pfns per PAGE_DATA record (libxc's MAX_BATCH_SIZE, 1024). */
  readonly batchSize?: number;
  /** Steps a batch takes (>= 1): how long the guest runs while a batch is on the wire. */
  readonly stepsPerBatch?: number;
  /**
   * Whether the domain is controller-paused for the final pass. libxl only suspends the guest,
   * so libxc's "fatal when paused" page-table check stays EAGAIN there (reference §1.4 caveat);
   * default: paused for deep-tracking, not for the upstream strategies.
   */
  readonly pauseForFinalPass?: boolean;
  /** Steps to wait for an even generation before giving up (deep-tracking list mode). */
  readonly generationWaitSteps?: number;
}

/** One send pass, as the human and JSON reports show it. */
export interface SaveRound {
  readonly round: number;
  readonly checkpoint: number;
  readonly kind: 'full' | 'live' | 'final';
  /** pfns the pass sent (data and XTAB). */
  readonly pfns: number;
  /** pfns in the pass only because a p2m change was detected (not dirty, not deferred). */
  readonly resentP2m: number;
  /**
   * pfns this pass deferred to the final pass (INVALID entry, p2m/m2p mismatch, page table not
   * normalisable yet). The final pass defers nothing: what it cannot send is dropped (libxc).
   */
  readonly deferred: number;
}

export interface SaveReport {
  readonly strategy: StrategyName;
  readonly mechanisms: readonly Mechanism[];
  readonly outcome: 'completed' | 'aborted';
  /** Why the save aborted, in libxc's words where libxc has them. */
  readonly reason?: string;
  /** The pfn named by an abort, when there is one. */
  readonly pfn?: number;
  readonly source: 'tree' | 'list' | undefined;
  readonly rounds: number;
  readonly roundLog: readonly SaveRound[];
  /** Pages sent with data, resends counted again. */
  readonly pagesSent: number;
  /** pfns sent as XTAB. */
  readonly xtabSent: number;
  /** pfns sent because a p2m change was detected, not because logdirty or deferral said so. */
  readonly resentP2m: number;
  readonly p2mFramesRecords: number;
  readonly remaps: number;
  readonly checkpoints: number;
}

/** An abort of the save: the reason, and the pfn when one is to blame. */
export class SaveAborted extends Error {
  override name = 'SaveAborted';
  constructor(
    message: string,
    readonly pfn?: number,
  ) {
    super(message);
  }
}

const INVALID = -1;
const U32 = 0xffffffff;

/** 64-bit page-table entries in a page. */
const PTES_PER_PAGE = PAGE_SIZE / 8;
/** `_PAGE_PRESENT` and `_PAGE_PSE`, in an entry's low half. */
const PTE_PRESENT_BIT = Number(_PAGE_PRESENT);
const PTE_PSE_BIT = Number(_PAGE_PSE);
/** `PTE_FRAME_MASK` split by halves: bits 31–12 of the low half, bits 19–0 (51–32) of the high one. */
const PTE_LOW_FLAG_BITS = Number(~PTE_FRAME_MASK & 0xfffn);
const PTE_FRAME_HIGH_BITS = Number((PTE_FRAME_MASK >> 32n) & 0xffffffffn);

/** Where a pass's walk over its bitmap is: the word, and its bits not yet taken. */
interface BitmapCursor {
  readonly bitmap: Bitmap;
  /** The p2m size when the pass began: bits from here on are not pfns. */
  readonly limit: number;
  word: number;
  bits: number;
}

/**
 * Memory for the records' columns and pages, carved from large buffers: one allocation per
 * COLUMN_ARENA_BYTES rather than one per batch and per page (each a zeroed external buffer).
 * While the sink may keep records (`RecordSink.retainsPageData`), carved pieces are never reused,
 * so a record it keeps stays as it was written; when it does not, `rewind` before each record
 * reuses the same buffers, so a pass touches no fresh memory per pfn.
 */
class ColumnArena {
  /** The buffers carved so far: only the last while pieces are never reused, every one otherwise. */
  private buffers: ArrayBuffer[] = [];
  private current = -1;
  private used = 0;
  private reusing = false;

  /** Starts carving again from the first buffer; the pieces handed out before must be dead. */
  rewind(): void {
    this.reusing = true;
    this.current = this.buffers.length > 0 ? 0 : -1;
    this.used = 0;
  }

  /** Stops reusing: the pieces handed out from now on are never handed out again. */
  keepPieces(): void {
    if (!this.reusing) return;
    this.reusing = false;
    // Forget every buffer: pieces already carved from them may be reused no more.
    this.buffers = [];
    this.current = -1;
    this.used = 0;
  }

  /** `bytes` bytes (a multiple of 8), 8-aligned: zeroed unless reused since `rewind`. */
  take(bytes: number): { buffer: ArrayBuffer; offset: number } {
    let buffer = this.current >= 0 ? this.buffers[this.current]! : undefined;
    if (buffer === undefined || this.used + bytes > buffer.byteLength) {
      const next = this.reusing ? this.buffers[this.current + 1] : undefined;
      if (next !== undefined && bytes <= next.byteLength) {
        buffer = next;
        this.current++;
      } else {
        buffer = new ArrayBuffer(Math.max(COLUMN_ARENA_BYTES, bytes));
        if (this.reusing) {
          // In place of a too small successor, or at the end.
          this.current++;
          this.buffers[this.current] = buffer;
        } else {
          this.buffers = [buffer];
          this.current = 0;
        }
      }
      this.used = 0;
    }
    const offset = this.used;
    this.used += bytes;
    return { buffer, offset };
  }
}

const COLUMN_ARENA_BYTES = 1 << 20;

/** writeBatch's scratch arrays, indexed like the batch (see `Saver.batchScratch`). */
interface BatchScratch {
  /** Each pfn's mfn through the mapped p2m, INVALID when it has none. */
  readonly mfns: Float64Array;
  /** Each frame's type, m2p entry and stamp or materialised flag (`frameInfoInto`). */
  readonly frameTypes: Uint32Array;
  readonly m2ps: Uint32Array;
  readonly frameStamps: Uint32Array;
  readonly materialised: Uint8Array;
  /** Batch indexes of the data pages holding real bytes, to read after the pass. */
  readonly bytesIndex: Uint32Array;
}

/** Where a pfn's bit lives in a logdirty-style bitmap. */
function testBit(bitmap: Bitmap, pfn: number): boolean {
  return ((bitmap[pfn >>> 5] ?? 0) & (1 << (pfn & 31))) !== 0;
}

function setBit(bitmap: Bitmap, pfn: number): void {
  bitmap[pfn >>> 5]! |= 1 << (pfn & 31);
}

/** Sets bits [first, first + count) of a bitmap. */
function setBitRange(bitmap: Bitmap, first: number, count: number): void {
  let pfn = first;
  const end = first + count;
  for (; pfn < end && (pfn & 31) !== 0; pfn++) bitmap[pfn >>> 5]! |= 1 << (pfn & 31);
  for (; pfn + 32 <= end; pfn += 32) bitmap[pfn >>> 5] = U32;
  for (; pfn < end; pfn++) bitmap[pfn >>> 5]! |= 1 << (pfn & 31);
}

/** Runs of at least this many consecutive pfns are recorded as sent with one copy. */
const SENT_RUN_COPY = 16;

/** Set bits in a 32-bit word. */
function popcount(word: number): number {
  let v = word - ((word >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** Set bits for pfns below `limit`. */
function countBits(bitmap: Bitmap, limit: number): number {
  const full = Math.min(bitmap.length, Math.floor(limit / 32));
  let n = 0;
  for (let w = 0; w < full; w++) n += popcount(bitmap[w]!);
  const rest = limit % 32;
  if (rest !== 0 && full < bitmap.length) n += popcount(bitmap[full]! & ((1 << rest) - 1));
  return n;
}

type Bitmap = Uint32Array<ArrayBufferLike>;

function grow(bitmap: Bitmap, pfns: number): Bitmap {
  const words = Math.ceil(pfns / 32);
  if (bitmap.length >= words) return bitmap;
  const out = new Uint32Array(Math.max(words, bitmap.length * 2));
  out.set(bitmap);
  return out;
}

function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

/** Where a save is, for scenarios that time guest actions against it (read-only). */
export interface SaveProgress {
  /** 1-based checkpoint in progress (always 1 for a plain migration). */
  readonly checkpoint: number;
  /** Send passes finished so far. */
  readonly rounds: number;
  readonly phase: 'setup' | 'live' | 'suspending' | 'final' | 'done';
  /** Whether `pfn` has been sent at least once (in any form). */
  hasSent(pfn: number): boolean;
  /** The type `pfn` was last sent with (`XEN_DOMCTL_PFINFO_*`), or undefined. */
  lastSentType(pfn: number): number | undefined;
}

export class Saver {
  readonly strategy: StrategyName;
  readonly mechanisms: ReadonlySet<Mechanism>;
  private readonly abi: GuestAbi;
  private readonly width: 4 | 8;
  private readonly fpp: number;
  private readonly maxLiveRounds: number;
  private readonly dirtyThreshold: number;
  private readonly checkpoints: number;
  private readonly batchSize: number;
  private readonly stepsPerBatch: number;
  private readonly pauseForFinalPass: boolean;
  private readonly generationWaitSteps: number;
  /** log2 of `fpp`: a pfn's leaf is `pfn >>> fppShift`. */
  private readonly fppShift: number;
  /** A pass's batch of pfns, reused batch after batch. */
  private readonly batchPfns: Float64Array;
  private scratch: BatchScratch | undefined;
  private readonly arena = new ColumnArena();
  /** normalisePageTable's frames and their m2p entries, one per PTE. */
  private readonly pteFrames = new Float64Array(PTES_PER_PAGE);
  private readonly pteTargets = new Uint32Array(PTES_PER_PAGE);
  /** Indexes of a page table's present entries (normalisePageTable). */
  private readonly ptePresent = new Uint16Array(PTES_PER_PAGE);

  private p2m!: MappedP2m;
  /** 32-bit word views of the mapped leaves (two words an entry on x86_64). */
  private leafWords: readonly Uint32Array[] = [];
  /** The p2m as last sent, in the same words, and which pfns have been sent at all. */
  private sentWords: Bitmap = new Uint32Array(0);
  private sent: Bitmap = new Uint32Array(0);
  private deferred: Bitmap = new Uint32Array(0);
  /** Live: whether the save is still in its first, live checkpoint (libxc's `ctx->save.live`). */
  private live = true;
  private generation = 0n;
  private maxPfnField = 0n;
  private guestSuspended = false;
  private sharedOffsets: { generation: number; maxPfn: number; fll: number; p2mCr3: number } | undefined;
  /** The guest resumed (and republished) since the p2m was last mapped. */
  private republished = false;
  private checkpoint = 0;

  private readonly log: SaveRound[] = [];
  private phase: SaveProgress['phase'] = 'setup';
  /**
   * pfn → the type nibble (bits 31–28) it was last sent with, + 1 (0: never sent); typed, as a Map
   * caps at 2^24 keys, and a byte each: every type the saver sends has its low 28 bits clear.
   */
  private lastType = new Uint8Array(0);
  private pagesSent = 0;
  private xtabSent = 0;
  private resentP2m = 0;
  private p2mFramesRecords = 0;
  private remaps = 0;

  constructor(
    readonly tools: PrivilegedInterface,
    readonly domid: number,
    readonly writer: StreamWriter,
    readonly callbacks: SaveCallbacks,
    options: SaveOptions,
  ) {
    this.strategy = options.strategy;
    if (!(STRATEGIES as readonly string[]).includes(this.strategy)) throw new RangeError(`unknown strategy ${String(this.strategy)}; valid: ${STRATEGIES.join(', ')}`);
    const mechanisms = options.mechanisms ?? MECHANISMS;
    for (const m of mechanisms) if (!(MECHANISMS as readonly number[]).includes(m)) throw new RangeError(`unknown mechanism ${String(m)}; valid: ${MECHANISMS.join(', ')}`);
    this.mechanisms = new Set(this.strategy === 'deep-tracking' ? mechanisms : []);
    this.abi = tools.domainInfo(domid).abi;
    this.width = this.abi.wordSize as 4 | 8;
    this.fpp = PAGE_SIZE / this.width;
    this.fppShift = 31 - Math.clz32(this.fpp);
    this.maxLiveRounds = options.maxLiveRounds ?? 5;
    this.dirtyThreshold = options.dirtyThreshold ?? 50;
    this.checkpoints = options.checkpoints ?? 0;
    this.batchSize = options.batchSize ?? 1024;
    this.stepsPerBatch = options.stepsPerBatch ?? 1;
    this.pauseForFinalPass = options.pauseForFinalPass ?? this.strategy === 'deep-tracking';
    this.generationWaitSteps = options.generationWaitSteps ?? 100_000;
    for (const [name, v, min] of [
      ['maxLiveRounds', this.maxLiveRounds, 0],
      ['dirtyThreshold', this.dirtyThreshold, 0],
      ['checkpoints', this.checkpoints, 0],
      ['batchSize', this.batchSize, 1],
      ['stepsPerBatch', this.stepsPerBatch, 1],
      ['generationWaitSteps', this.generationWaitSteps, 0],
    ] as const) {
      if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} ${v} is not an integer >= ${min}`);
    }
    if (this.batchSize > 1024) throw new RangeError(`batchSize ${this.batchSize} is above libxc's MAX_BATCH_SIZE (1024)`);
    this.batchPfns = new Float64Array(this.batchSize);
  }

  /** A live, read-only view of the save's progress. */
  get progress(): SaveProgress {
    const self = this;
    return {
      get checkpoint() {
        return self.checkpoint + 1;
      },
      get rounds() {
        return self.log.length;
      },
      get phase() {
        return self.phase;
      },
      hasSent: (pfn: number) => pfn >= 0 && pfn >>> 5 < self.sent.length && testBit(self.sent, pfn),
      lastSentType: (pfn: number) => {
        const t = pfn >= 0 && pfn < self.lastType.length ? self.lastType[pfn]! : 0;
        return t === 0 ? undefined : (t - 1) * 2 ** 28;
      },
    };
  }

  private has(m: Mechanism): boolean {
    return this.mechanisms.has(m);
  }

  // ----------------------------------------------------------------------------------------------
  // The save
  // ----------------------------------------------------------------------------------------------

  /** The whole save, as scheduler steps; returns the report (an abort is an outcome, not a throw). */
  *run(): Generator<StepLabel, SaveReport, undefined> {
    let failure: SaveAborted | undefined;
    try {
      yield* this.save();
    } catch (err) {
      if (err instanceof SaveAborted) failure = err;
      else if (err instanceof P2mMapError) failure = new SaveAborted(`cannot map the p2m: ${err.message}`);
      else throw err;
    } finally {
      // The domain is left as it was found: logdirty off, not paused (libxl resumes it on failure).
      try {
        this.tools.disableLogDirty(this.domid);
        this.tools.unpause(this.domid);
      } catch {
        // The domain may be gone; nothing to restore then.
      }
    }
    return this.report(failure);
  }

  private report(failure: SaveAborted | undefined): SaveReport {
    return {
      strategy: this.strategy,
      mechanisms: [...this.mechanisms].sort(),
      outcome: failure ? 'aborted' : 'completed',
      ...(failure ? { reason: failure.message } : {}),
      ...(failure?.pfn !== undefined ? { pfn: failure.pfn } : {}),
      source: this.p2m?.source,
      rounds: this.log.length,
      roundLog: this.log,
      pagesSent: this.pagesSent,
      xtabSent: this.xtabSent,
      resentP2m: this.resentP2m,
      p2mFramesRecords: this.p2mFramesRecords,
      remaps: this.remaps,
      checkpoints: this.checkpoint,
    };
  }

  private *save(): Generator<StepLabel, void, undefined> {
    // x86_pv_setup: map the p2m (libxc maps it once, here and never again unless tracking remaps).
    this.adopt(mapGuestP2m(this.tools, this.domid));
    // The baseline every later look at shared_info compares with (libxc's get_p2m_generation).
    const shared = this.readShared();
    this.generation = this.p2m.p2mGeneration;
    this.maxPfnField = shared.maxPfn;
    this.tools.enableLogDirty(this.domid);
    yield `save: p2m mapped from the ${this.p2m.source} (max_pfn ${hex(this.p2m.maxPfn)}, ${this.p2m.leafMfnArray.length} frames); logdirty on`;

    // Static data, then the frame list once (x86_pv_start_of_stream).
    this.writer.x86PvInfo(this.abi);
    this.writer.staticDataEnd();
    this.sendP2mFrames();
    yield 'save: X86_PV_INFO, STATIC_DATA_END, X86_PV_P2M_FRAMES';

    const checkpointed = this.checkpoints > 0;
    const total = checkpointed ? this.checkpoints : 1;
    for (this.checkpoint = 0; this.checkpoint < total; ) {
      this.checkGeneration('at the start of a checkpoint');
      this.phase = 'live';
      const leftover = this.live ? yield* this.liveRounds() : { bitmap: new Uint32Array(0), resent: 0 };
      yield* this.suspendAndSendDirty(leftover);
      this.endOfCheckpoint();
      this.checkpoint++;
      if (checkpointed) {
        this.writer.checkpoint();
        yield `save: CHECKPOINT ${this.checkpoint} of ${total}`;
        // libxc: every checkpoint after the first is not live (no generation check).
        this.live = false;
        if (this.checkpoint < total) {
          this.guestSuspended = false;
          this.tools.unpause(this.domid);
          if (this.callbacks.resumeBetweenCheckpoints) yield* this.callbacks.resumeBetweenCheckpoints(this.checkpoint);
          // The guest republished on resume (p2m_generation back to 0): a count that climbs back
          // to the value last seen would hide the changes made since, so remap regardless.
          this.republished = true;
        }
      }
    }
    if (!checkpointed) {
      this.writer.end();
      yield 'save: END';
    }
    this.phase = 'done';
  }

  /**
   * The live phase: one full pass, then passes over what logdirty says, until few pages stay
   * dirty or the rounds run out; returns what is still to send (and how much of it tracking added).
   */
  private *liveRounds(): Generator<StepLabel, { bitmap: Bitmap; resent: number }, undefined> {
    // The first pass sends every pfn; logdirty, enabled before it, collects what changes meanwhile.
    yield* this.sendPass('full', this.allPfns(), 0);
    this.checkGeneration('after a pass');
    for (let x = 0; ; x++) {
      const { bitmap, resent } = yield* this.track(this.tools.cleanDirty(this.domid, this.p2m.p2mSize), false);
      const dirty = countBits(bitmap, this.p2m.p2mSize);
      if (dirty < this.dirtyThreshold || x >= this.maxLiveRounds - 1) return { bitmap, resent };
      yield* this.sendPass('live', bitmap, resent);
      this.checkGeneration('after a pass');
    }
  }

  /** Suspend, then one pass over everything still dirty or deferred (libxc `suspend_and_send_dirty`). */
  private *suspendAndSendDirty(leftover: { bitmap: Bitmap; resent: number }): Generator<StepLabel, void, undefined> {
    this.phase = 'suspending';
    yield* this.callbacks.suspend();
    this.guestSuspended = true;
    this.phase = 'final';
    if (this.pauseForFinalPass) this.tools.pause(this.domid);
    yield 'save: guest suspended';
    // Fix: pfns the live phase left over (dirty or already marked) and deferred pfns are in this
    // pass anyway; tracking must not count them again as p2m resends (a pfn marked in the last
    // live look and again here was counted twice in resentP2m).
    const { bitmap, resent } = yield* this.track(this.tools.cleanDirty(this.domid, this.p2m.p2mSize), true, [leftover.bitmap, this.deferred]);
    for (let w = 0; w < leftover.bitmap.length && w < bitmap.length; w++) bitmap[w]! |= leftover.bitmap[w]!;
    for (let w = 0; w < this.deferred.length && w < bitmap.length; w++) bitmap[w]! |= this.deferred[w]!;
    this.deferred = new Uint32Array(this.deferred.length);
    yield* this.sendPass('final', bitmap, resent + leftover.resent);
    // libxc clears the deferred set once the final pass is out: what it deferred again is dropped.
    this.deferred = new Uint32Array(this.deferred.length);
    this.checkGeneration('after a pass');
  }

  /** TSC, shared_info and the vCPU records that close a checkpoint (libxc `send_domain_memory` tail). */
  private endOfCheckpoint(): void {
    this.writer.tscInfo({ mode: 0, khz: 2_400_000, nsec: 0n, incarnation: 0 });
    this.writer.sharedInfo(this.tools.sharedInfo(this.domid).slice());
    const ctx = this.tools.vcpuContext(this.domid);
    const startInfoPfn = this.checkedPfn(ctx.startInfoMfn, 'the start_info frame (vcpu0 rdx/edx)');
    const cr3Pfn = this.checkedPfn(ctx.cr3Mfn, 'the page-table base (vcpu0 cr3)');
    this.writer.vcpu(REC_TYPE_X86_PV_VCPU_BASIC, 0, encodeVcpuBasic(this.abi, { startInfoPfn, cr3Pfn }));
  }

  /** `mfn_in_pseudophysmap` for a frame whose failure is fatal (start_info, cr3): its pfn. */
  private checkedPfn(mfn: number, what: string): number {
    const pfn = mfn >= 0 ? this.tools.m2p(mfn) : INVALID_M2P;
    if (pfn === INVALID_M2P || pfn >= this.p2m.p2mSize || this.mfnOf(pfn) !== mfn) {
      throw new SaveAborted(`bad mfn ${hex(mfn)} for ${what}: not in the guest's pseudo-physical map`, pfn === INVALID_M2P ? undefined : pfn);
    }
    return pfn;
  }

  // ----------------------------------------------------------------------------------------------
  // Sending
  // ----------------------------------------------------------------------------------------------

  private allPfns(): Bitmap {
    const bitmap = new Uint32Array(Math.ceil(this.p2m.p2mSize / 32));
    bitmap.fill(U32);
    return bitmap;
  }

  /** One pass over the pfns set in `bitmap` (ascending, below the p2m size at the start), in batches. */
  private *sendPass(kind: SaveRound['kind'], bitmap: Bitmap, resent: number): Generator<StepLabel, void, undefined> {
    const round = this.log.length + 1;
    let pfns = 0;
    let deferred = 0;
    const final = kind === 'final';
    const cursor: BitmapCursor = { bitmap, limit: this.p2m.p2mSize, word: 0, bits: bitmap.length > 0 ? bitmap[0]! : 0 };
    for (let n = this.nextBatch(cursor); n > 0; n = this.nextBatch(cursor)) {
      deferred += this.writeBatch(this.batchPfns, n, final);
      pfns += n;
      yield* this.transmit(round);
    }
    this.resentP2m += resent;
    this.log.push({ round, checkpoint: this.checkpoint + 1, kind, pfns, resentP2m: resent, deferred });
  }

  /**
   * The next batch of a pass, into `batchPfns`: up to `batchSize` set bits from where `cursor` is,
   * ascending; returns how many (0 at the end). A word is read when the walk reaches it, so pfns
   * the guest dirties in the pass bitmap meanwhile are seen exactly as a lazy walk would see them.
   */
  private nextBatch(cursor: BitmapCursor): number {
    const { bitmap, limit } = cursor;
    const batch = this.batchPfns;
    const size = this.batchSize;
    let { word, bits } = cursor;
    let n = 0;
    while (word < bitmap.length) {
      while (bits !== 0) {
        const low = bits & -bits;
        const pfn = word * 32 + 31 - Math.clz32(low);
        if (pfn >= limit) {
          // Bits past the p2m end the pass.
          cursor.word = bitmap.length;
          cursor.bits = 0;
          return n;
        }
        bits ^= low;
        batch[n++] = pfn;
        if (n === size) {
          cursor.word = word;
          cursor.bits = bits;
          return n;
        }
      }
      word++;
      bits = word < bitmap.length ? bitmap[word]! : 0;
    }
    cursor.word = word;
    cursor.bits = 0;
    return n;
  }

  private *transmit(round: number): Generator<StepLabel, void, undefined> {
    for (let i = 0; i < this.stepsPerBatch; i++) yield `save: round ${round}, PAGE_DATA on the wire`;
  }

  /**
   * libxc `write_batch` for `batchPfns[0, n)`: types, contents, normalised page tables, as one
   * PAGE_DATA record in columns (one entry per pfn, XTAB for a deferred one); returns how many
   * pfns it deferred. One bulk privileged call for every frame's type, m2p and stamp, and typed
   * arrays only: this runs for every pfn of every pass.
   */
  private writeBatch(batchPfns: Float64Array, n: number, final: boolean): number {
    const { mfns, frameTypes, m2ps, frameStamps, materialised, bytesIndex } = this.batchScratch(n);
    // The record's columns and normalised tables: reused record after record when the sink lets go
    // of them in record(), else never (a sink may keep them).
    if (this.writer.sink.retainsPageData === false) this.arena.rewind();
    else this.arena.keepPieces();
    const { buffer, offset } = this.arena.take(16 * n);
    const pfns = new Float64Array(buffer, offset, n);
    const types = new Uint32Array(buffer, offset + 8 * n, n);
    const stamps = new Uint32Array(buffer, offset + 12 * n, n);
    // Only data pages' stamps are set below; the rest read 0, as in fresh memory.
    stamps.fill(0);
    let bytes: Map<number, Uint8Array> | undefined;

    // Each pfn's mfn through the mapped p2m (mfnOf, inline), INVALID when it has none.
    const p2mSize = this.p2m.p2mSize;
    const leafWords = this.leafWords;
    const shift = this.fppShift;
    const slotMask = this.fpp - 1;
    const wide = this.width === 8;
    let highest = 0;
    for (let i = 0; i < n; i++) {
      const pfn = batchPfns[i]!;
      pfns[i] = pfn;
      if (pfn > highest) highest = pfn;
      let mfn = INVALID;
      if (pfn >= 0 && pfn < p2mSize) {
        const words = leafWords[pfn >>> shift]!;
        const k = pfn & slotMask;
        if (wide) {
          const lo = words[2 * k]!;
          const hi = words[2 * k + 1]!;
          if (lo !== U32 || hi !== U32) mfn = hi * 2 ** 32 + lo;
        } else {
          const v = words[k]!;
          if (v !== U32) mfn = v;
        }
      }
      mfns[i] = mfn;
    }
    // Types, m2p entries and stamps of every frame in one call. INVALID (-1) entries get XTAB (not
    // the domain's frame); they are deferred before their type is read.
    this.tools.frameInfoInto(this.domid, mfns, n, frameTypes, m2ps, frameStamps, materialised);
    const checkM2p = this.strategy === 'deep-tracking';

    let deferred = 0;
    let withBytes = 0;
    let xtab = 0;
    let data = 0;
    // The pfn being handled, for an abort: the pfns up to it count as sent (libxc records each as it goes).
    let current = 0;
    try {
      for (let i = 0; i < n; i++) {
        current = i;
        const pfn = pfns[i]!;
        const mfn = mfns[i]!;
        let type = frameTypes[i]!;
        // "Likely a ballooned page" (INVALID): XTAB now, and again in the final pass.
        let defer = mfn === INVALID;
        if (!defer && checkM2p && type !== XEN_DOMCTL_PFINFO_XTAB && m2ps[i] !== pfn) {
          // p2m and m2p disagree: the guest is inside an update. Deferred live; fatal once stopped.
          if (final) throw new SaveAborted(`pfn ${hex(pfn)}: p2m says mfn ${hex(mfn)} but the m2p says ${hex(this.tools.m2p(mfn))} with the guest suspended`, pfn);
          defer = true;
        }
        if (!defer && columnTypeHasData(type)) {
          const level = (type & XEN_DOMCTL_PFINFO_LTABTYPE_MASK) >>> XEN_DOMCTL_PFINFO_LTAB_SHIFT;
          if (level !== 0) {
            const normalised = this.normalisePageTable(pfn, mfn, level);
            if (normalised === undefined) defer = true;
            else (bytes ??= new Map()).set(i, normalised);
          } else if (materialised[i] === 0) stamps[i] = frameStamps[i]!;
          else bytesIndex[withBytes++] = i;
        }
        if (defer) {
          this.deferred = grow(this.deferred, pfn + 1);
          setBit(this.deferred, pfn);
          // libxc defers in the final pass too, then clears the set: nothing comes after it.
          if (!final) deferred++;
          type = XEN_DOMCTL_PFINFO_XTAB;
        }
        types[i] = type;
        if (type === XEN_DOMCTL_PFINFO_XTAB) xtab++;
        else if (columnTypeHasData(type)) data++;
      }
    } catch (err) {
      this.recordSent(pfns, current + 1);
      throw err;
    }
    this.recordSent(pfns, n);

    // The few data frames holding real bytes (p2m pages, start_info, ...): mapped in one call, as
    // libxc maps a batch, and copied into the record's arena, not into a fresh page each (a new
    // 4 KiB allocation is a first touch of memory: about 6 us a page). Their types said the domain
    // owns them a moment ago, so the map cannot refuse one.
    if (withBytes > 0) {
      const byteMfns: number[] = [];
      for (let j = 0; j < withBytes; j++) byteMfns.push(mfns[bytesIndex[j]!]!);
      const { pages } = this.tools.mapForeign(this.domid, byteMfns);
      for (let j = 0; j < withBytes; j++) {
        const at = bytesIndex[j]!;
        const page = pages[j];
        if (!page) throw new SaveAborted(`failed to map data pfn ${hex(pfns[at]!)} (mfn ${hex(mfns[at]!)})`, pfns[at]!);
        const { buffer, offset } = this.arena.take(PAGE_SIZE);
        const copy = new Uint8Array(buffer, offset, PAGE_SIZE);
        copy.set(page);
        (bytes ??= new Map()).set(at, copy);
      }
    }

    this.ensureLastTypeCapacity(highest + 1);
    const lastType = this.lastType;
    for (let i = 0; i < n; i++) lastType[pfns[i]!] = (types[i]! >>> 28) + 1;
    this.xtabSent += xtab;
    this.pagesSent += data;
    this.writer.pageDataColumns(new PageDataColumns(pfns, types, stamps, bytes));
    return deferred;
  }

  /** Per-batch scratch arrays, made once per Saver (a batch never exceeds `batchSize`). */
  private batchScratch(n: number): BatchScratch {
    if (this.scratch === undefined || this.scratch.mfns.length < n) {
      const size = Math.max(n, this.batchSize);
      this.scratch = {
        mfns: new Float64Array(size),
        frameTypes: new Uint32Array(size),
        m2ps: new Uint32Array(size),
        frameStamps: new Uint32Array(size),
        materialised: new Uint8Array(size),
        bytesIndex: new Uint32Array(size),
      };
    }
    return this.scratch;
  }

  /**
   * libxc `normalise_pagetable`: Xen's slots zeroed, each present entry's mfn turned into a pfn.
   * An entry failing `mfn_in_pseudophysmap` defers the page (undefined) while the domain is not
   * paused, and is fatal once it is; a superpage is always fatal.
   */
  private normalisePageTable(pfn: number, mfn: number, level: number): Uint8Array | undefined {
    const { pages } = this.tools.mapForeign(this.domid, [mfn]);
    const page = pages[0];
    if (!page) throw new SaveAborted(`failed to map page-table pfn ${hex(pfn)} (mfn ${hex(mfn)})`, pfn);
    const { buffer, offset } = this.arena.take(PAGE_SIZE);
    const out = new Uint8Array(buffer, offset, PAGE_SIZE);
    out.set(page);
    // Each 64-bit entry as (low, high) u32 halves: bit 0 present, bit 7 PSE, bits 51–12 the frame.
    const words = new Uint32Array(buffer, offset, PAGE_SIZE / 4);
    const paused = this.tools.domainInfo(this.domid).paused;
    const xenSlots = this.xenSlots(level);
    const frames = this.pteFrames;
    const targets = this.pteTargets;
    const present = this.ptePresent;
    // Xen's slots zeroed, and the present entries elsewhere listed in index order with their
    // frames: a page table is mostly empty (a lazily made direct-map PTE page holds a few entries),
    // so the m2p lookups and the checks below visit only these. Zeroing before checking changes
    // nothing seen: a deferred or refused page's copy is dropped.
    let count = 0;
    for (let i = 0; i < PTES_PER_PAGE; i++) {
      if (i >= xenSlots.from && i <= xenSlots.to) {
        words[2 * i] = 0;
        words[2 * i + 1] = 0;
        continue;
      }
      const lo = words[2 * i]!;
      if ((lo & PTE_PRESENT_BIT) === 0) continue;
      present[count] = i;
      frames[count++] = (words[2 * i + 1]! & PTE_FRAME_HIGH_BITS) * 2 ** 20 + (lo >>> 12);
    }
    // The m2p of every present entry's frame in one call; the checks still go entry by entry, in order.
    this.tools.m2pInto(frames, count, targets);
    const maxMfn = Number(this.p2m.maxMfn);
    const p2mSize = this.p2m.p2mSize;
    const leafWords = this.leafWords;
    const shift = this.fppShift;
    const slotMask = this.fpp - 1;
    const wide = this.width === 8;
    for (let j = 0; j < count; j++) {
      const i = present[j]!;
      const lo = words[2 * i]!;
      if (level > 1 && (lo & PTE_PSE_BIT) !== 0) throw new SaveAborted(`Cannot migrate superpage (L${level} pfn ${hex(pfn)} entry ${i})`, pfn);
      const hi = words[2 * i + 1]!;
      const frame = frames[j]!;
      const target = targets[j]!;
      let ok = frame <= maxMfn && target !== INVALID_M2P && target < p2mSize;
      if (ok) {
        // mfnOf(target) === frame, inline: the target's p2m entry names this very frame. The
        // frame's u32 halves come straight from the entry's (no double arithmetic per entry).
        const frameLow = (((hi & 0xfff) << 20) | (lo >>> 12)) >>> 0;
        const frameHigh = (hi & PTE_FRAME_HIGH_BITS) >>> 12;
        const entry = leafWords[target >>> shift]!;
        const k = target & slotMask;
        // (An all-ones entry is INVALID, never a frame: no frame below 2^40 has those halves, and the narrow form excludes it.)
        ok = wide ? entry[2 * k] === frameLow && entry[2 * k + 1] === frameHigh : frameHigh === 0 && frameLow !== U32 && entry[k] === frameLow;
      }
      if (!ok) {
        if (paused && this.strategy === 'deep-tracking') {
          // Fix (issue 5: "an inconsistency in the final round aborts with the pfn named"): when
          // the entry fails because some pfn's p2m names this frame while the m2p disagrees, that
          // pfn is the inconsistency; name it, not the page table that happens to map it (its
          // page table sorts first in the final pass, so the pfn's own check never ran).
          const culprit = this.pfnMapping(frame);
          if (culprit !== undefined && culprit !== target) {
            throw new SaveAborted(
              `pfn ${hex(culprit)}: p2m says mfn ${hex(frame)} but the m2p says ${hex(target)} with the guest suspended (L${level} page table pfn ${hex(pfn)} entry ${i} maps it)`,
              culprit,
            );
          }
        }
        if (paused) {
          throw new SaveAborted(`bad mfn ${hex(frame)} in L${level} page table pfn ${hex(pfn)} entry ${i} with the domain paused`, pfn);
        }
        return undefined;
      }
      // The frame bits become the pfn's: its low 20 bits in the low half, the rest in the high half.
      words[2 * i] = ((lo & PTE_LOW_FLAG_BITS) | ((target & 0xfffff) << 12)) >>> 0;
      words[2 * i + 1] = ((hi & ~PTE_FRAME_HIGH_BITS) | ((target >>> 20) & PTE_FRAME_HIGH_BITS)) >>> 0;
    }
    return out;
  }

  /** Slots of a table that belong to Xen and are zeroed in the stream. */
  private xenSlots(level: number): { from: number; to: number } {
    if (this.width === 8) return level === 4 ? { from: 256, to: 271 } : { from: 1, to: 0 };
    // A PAE L3 has four guest slots; the rest of the page is not a table.
    return level === 3 ? { from: 4, to: 511 } : { from: 1, to: 0 };
  }

  /** The p2m entry of `pfn` through the current mapping, as an mfn, or INVALID. */
  private mfnOf(pfn: number): number {
    if (pfn < 0 || pfn >= this.p2m.p2mSize) return INVALID;
    const words = this.leafWords[pfn >>> this.fppShift]!;
    const k = pfn & (this.fpp - 1);
    if (this.width === 4) {
      const v = words[k]!;
      return v === U32 ? INVALID : v;
    }
    const lo = words[2 * k]!;
    const hi = words[2 * k + 1]!;
    if (lo === U32 && hi === U32) return INVALID;
    return hi * 2 ** 32 + lo;
  }

  /** The first pfn whose p2m entry (current mapping) is `mfn`, if any: a scan, for error reports only. */
  private pfnMapping(mfn: number): number | undefined {
    for (let pfn = 0; pfn < this.p2m.p2mSize; pfn++) if (this.mfnOf(pfn) === mfn) return pfn;
    return undefined;
  }

  /**
   * Remembers the entries `pfns[0, count)` are being sent with: the p2m as last sent, and that
   * they were sent. A run of consecutive pfns in one leaf is copied in one go (a full pass is
   * nothing but such runs).
   */
  private recordSent(pfns: Float64Array, count: number): void {
    if (count === 0) return;
    let highest = 0;
    for (let i = 0; i < count; i++) if (pfns[i]! > highest) highest = pfns[i]!;
    this.ensureSentCapacity(highest + 1);
    const leafWords = this.leafWords;
    const sentWords = this.sentWords;
    const sent = this.sent;
    const shift = this.fppShift;
    const slotMask = this.fpp - 1;
    const per = this.width / 4;
    for (let i = 0; i < count; ) {
      const pfn = pfns[i]!;
      const leaf = pfn >>> shift;
      const k = pfn & slotMask;
      let run = 1;
      while (i + run < count && pfns[i + run] === pfn + run && k + run <= slotMask) run++;
      const words = leafWords[leaf]!;
      if (run >= SENT_RUN_COPY) {
        sentWords.set(words.subarray(k * per, (k + run) * per), pfn * per);
        setBitRange(sent, pfn, run);
      } else {
        for (let j = 0; j < run; j++) {
          const p = pfn + j;
          for (let w = 0; w < per; w++) sentWords[p * per + w] = words[(k + j) * per + w]!;
          sent[p >>> 5]! |= 1 << (p & 31);
        }
      }
      i += run;
    }
  }

  /*
   * The per-pfn records grow to the p2m's size rounded up to a whole leaf, not by doubling: they
   * grow only when a remap finds a larger p2m (once a pass at most; batches never go beyond the
   * p2m), and at 2^27 pfns a doubled copy of the p2m as sent would be 1 GiB more.
   */

  /** `pfns` rounded up to a whole p2m leaf. */
  private wholeLeaves(pfns: number): number {
    return Math.ceil(pfns / this.fpp) * this.fpp;
  }

  private ensureLastTypeCapacity(pfns: number): void {
    if (pfns <= this.lastType.length) return;
    const out = new Uint8Array(this.wholeLeaves(pfns));
    out.set(this.lastType);
    this.lastType = out;
  }

  private ensureSentCapacity(pfns: number): void {
    const per = this.width / 4;
    if (this.sentWords.length < pfns * per) {
      const out = new Uint32Array(this.wholeLeaves(pfns) * per);
      out.set(this.sentWords);
      this.sentWords = out;
    }
    this.sent = grow(this.sent, pfns);
  }

  private sendP2mFrames(): void {
    this.writer.p2mFrames(0, this.p2m.maxPfn, this.p2m.leafPfns);
    this.p2mFramesRecords++;
  }

  // ----------------------------------------------------------------------------------------------
  // Reacting to p2m changes
  // ----------------------------------------------------------------------------------------------

  private adopt(p2m: MappedP2m): void {
    this.p2m = p2m;
    this.leafWords = p2m.leafWords;
    this.ensureSentCapacity(p2m.p2mSize);
    // Every pfn of the p2m is sent at least once: size the record of types for all of them now.
    this.ensureLastTypeCapacity(p2m.p2mSize);
  }

  private readShared(): { generation: bigint; maxPfn: bigint; fll: bigint; p2mCr3: bigint } {
    // Four words at offsets from the declared layout: this runs every pass and every wait step,
    // where a struct view per call would cost more than the pass bookkeeping.
    const page = this.tools.sharedInfo(this.domid);
    const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
    const at = this.sharedOffsets ??= {
      generation: shared_info.offsetOf(this.abi, 'arch.p2m_generation'),
      maxPfn: shared_info.offsetOf(this.abi, 'arch.max_pfn'),
      fll: shared_info.offsetOf(this.abi, 'arch.pfn_to_mfn_frame_list_list'),
      p2mCr3: shared_info.offsetOf(this.abi, 'arch.p2m_cr3'),
    };
    const word = (off: number): bigint => (this.width === 8 ? view.getBigUint64(off, true) : BigInt(view.getUint32(off, true)));
    return { generation: word(at.generation), maxPfn: word(at.maxPfn), fll: word(at.fll), p2mCr3: word(at.p2mCr3) };
  }

  /** abort-on-change: libxc's `x86_pv_check_vm_state` (list mode, live saves only). */
  private checkGeneration(where: string): void {
    if (this.strategy !== 'abort-on-change' || this.p2m.source !== 'list' || !this.live) return;
    const now = this.readShared().generation;
    const before = this.p2m.p2mGeneration;
    if (now !== this.generation) {
      throw new SaveAborted(`p2m generation count changed. Migration aborted. (${before} at mapping, ${now} ${where})`);
    }
  }

  /**
   * Before a pass: deep-tracking notices moved or grown p2m structure (remaps, resends the frame
   * list) and changed entries in dirty p2m frames, and adds every pfn to resend to the dirty
   * bitmap. Returns the bitmap (grown to the p2m's current size) and how many pfns it added.
   */
  private *track(dirty: Bitmap, final: boolean, inPassAnyway: readonly Bitmap[] = []): Generator<StepLabel, { bitmap: Bitmap; resent: number }, undefined> {
    if (this.strategy !== 'deep-tracking') return { bitmap: grow(dirty, this.p2m.p2mSize), resent: 0 };
    const changedLeaves = yield* this.checkStructure(dirty, final);
    const bitmap = grow(dirty, this.p2m.p2mSize);
    const mark = { bitmap, inPassAnyway, resent: 0 };
    for (const x of changedLeaves) this.markLeaf(x, mark, true);
    if (this.has(2) || this.has(3)) {
      const leafPfns = this.p2m.leafPfnArray;
      for (let x = 0; x < leafPfns.length; x++) {
        if (changedLeaves.has(x) || !testBit(bitmap, leafPfns[x]!)) continue;
        this.markLeaf(x, mark, false);
      }
    }
    return { bitmap, resent: mark.resent };
  }

  /**
   * Sets in the pass bitmap the pfns of leaf `x` to send: those whose entry changed since they were
   * sent (option 2), or every pfn of the frame (without option 2: option 3's dirty frames, option
   * 4's new frames). A pfn never sent goes only if it has a frame: the receiver has nothing for an
   * unsent pfn, which is what XTAB would say. Counts as resent what was sent before and is not in
   * the pass anyway.
   */
  private markLeaf(x: number, mark: { bitmap: Bitmap; inPassAnyway: readonly Bitmap[]; resent: number }, structural: boolean): void {
    const diff = this.has(2);
    if (!diff && !structural && !this.has(3)) return;
    const first = x * this.fpp;
    const end = Math.min(first + this.fpp, this.p2m.p2mSize);
    const per = this.width / 4;
    const words = this.leafWords[x]!;
    const { bitmap, inPassAnyway } = mark;
    // Runs for every pfn of every dirty p2m frame: locals and typed arrays only.
    const sentBits = this.sent;
    const sentWords = this.sentWords;
    const wide = per === 2;
    for (let pfn = first; pfn < end; pfn++) {
      const k = pfn - first;
      if (diff && (pfn & 31) === 0 && pfn + 32 <= end && sentBits[pfn >>> 5] === U32) {
        // 32 pfns all sent (leaves start on a bitmap word): skip them when none changed since.
        const from = pfn * per;
        const at = k * per;
        let same = true;
        for (let j = 0; j < 32 * per && same; j++) same = sentWords[from + j] === words[at + j];
        if (same) {
          pfn += 31;
          continue;
        }
      }
      const sent = (sentBits[pfn >>> 5]! & (1 << (pfn & 31))) !== 0;
      let send: boolean;
      if (!sent) send = wide ? !(words[2 * k] === U32 && words[2 * k + 1] === U32) : words[k] !== U32;
      else if (!diff) send = true;
      else if (wide) send = sentWords[2 * pfn] !== words[2 * k] || sentWords[2 * pfn + 1] !== words[2 * k + 1];
      else send = sentWords[pfn] !== words[k];
      if (!send || testBit(bitmap, pfn)) continue;
      setBit(bitmap, pfn);
      if (sent && !inPassAnyway.some((b) => pfn >>> 5 < b.length && testBit(b, pfn))) mark.resent++;
    }
  }

  /**
   * Options 3 (tree) and 4 (list): whether the leaves moved, and if so a fresh mapping, the frame
   * list resent when it changed, and the set of leaf indexes whose frame is new.
   */
  private *checkStructure(bitmap: Bitmap, final: boolean): Generator<StepLabel, Set<number>, undefined> {
    const changed = new Set<number>();
    const list = this.p2m.source === 'list';
    let remap = false;
    if (this.republished && ((list && this.has(4)) || (!list && this.has(3)))) {
      remap = true;
      this.republished = false;
    } else if (list && this.has(4)) {
      let shared = this.readShared();
      if (shared.generation !== this.generation || shared.maxPfn !== this.maxPfnField) {
        for (let waited = 0; shared.generation % 2n === 1n; waited++) {
          if (this.guestSuspended) throw new SaveAborted(`p2m_generation is odd (${shared.generation}) with the guest suspended`);
          if (waited >= this.generationWaitSteps) throw new SaveAborted(`p2m_generation stayed odd (${shared.generation}) for ${waited} steps`);
          yield 'save: waiting for an even p2m_generation';
          shared = this.readShared();
        }
        remap = true;
      }
    } else if (!list && this.has(3)) {
      const shared = this.readShared();
      if (shared.fll !== this.p2m.fll || shared.maxPfn !== this.maxPfnField) remap = true;
      else {
        for (const mfn of this.p2m.structureMfns) {
          const pfn = this.tools.m2p(Number(mfn));
          if (pfn === INVALID_M2P || testBit(bitmap, pfn)) {
            remap = true;
            break;
          }
        }
      }
    }
    if (!remap) return changed;

    let fresh: MappedP2m;
    try {
      fresh = mapGuestP2m(this.tools, this.domid);
    } catch (err) {
      if (!(err instanceof P2mMapError) || final) throw err;
      // A structure caught half-built: try again before the next pass.
      yield `save: remap failed (${err.failure}), retrying next pass`;
      return changed;
    }
    const old = this.p2m;
    this.adopt(fresh);
    this.remaps++;
    const shared = this.readShared();
    this.generation = shared.generation;
    this.maxPfnField = shared.maxPfn;
    const n = Math.max(old.leafMfnArray.length, fresh.leafMfnArray.length);
    for (let x = 0; x < n; x++) if (old.leafMfnArray[x] !== fresh.leafMfnArray[x]) changed.add(x);
    const framesMoved = fresh.maxPfn !== old.maxPfn || fresh.leafPfnArray.length !== old.leafPfnArray.length || fresh.leafPfnArray.some((p, x) => p !== old.leafPfnArray[x]);
    if (framesMoved) this.sendP2mFrames();
    yield `save: p2m remapped (${changed.size} frames changed${framesMoved ? ', X86_PV_P2M_FRAMES resent' : ''})`;
    return changed;
  }
}
