/**
 * One live migration, end to end: an emulated guest (guest-emu) boots on a source Xen and runs a
 * seeded workload; a reference toolstack (toolstack/save.ts) saves it through the privileged
 * interface while the seeded scheduler interleaves the two; the stream goes in-process (stamps)
 * and, with `streamFile`, also to a real libxc stream file; a `Restorer` builds the domain on a
 * destination Xen; the guest resumes there and republishes; then the verdict:
 *
 * - `identical`: every pfn's content, the p2m/m2p, and the guest's own p2m walk match the source
 *   as of the final pass (and, for Remus, every checkpoint matched when it was taken);
 * - `aborted`: the toolstack stopped cleanly, with its reason; the guest runs on at the source;
 * - `corrupted`: the first differing pfns, and what differs.
 *
 * This composes guest-emu and toolstack, which never import each other (DESIGN.md layers).
 */

import { X86_32, X86_64, type GuestAbi } from '../abi/index.js';
import { buildDomain, type BuiltDomain } from '../xen-emu/builder.js';
import { PrivilegedInterface } from '../xen-emu/privileged.js';
import { Rng } from '../xen-emu/rng.js';
import { Scheduler } from '../xen-emu/scheduler.js';
import { Xen } from '../xen-emu/xen.js';
import { PvGuest, type GuestOptions } from '../guest-emu/guest.js';
import { parseGuestVariant, startInfoFlagsFor, type GuestVariant } from '../guest-emu/variants.js';
import { Workload, parseWorkloadRates, formatWorkloadRates } from '../guest-emu/workload.js';
import { Restorer } from '../toolstack/restore.js';
import { Saver, type Mechanism, type SaveCallbacks, type SaveOptions, type SaveProgress, type SaveReport, type StrategyName } from '../toolstack/save.js';
import { EncodingSink, InProcessChannel, TeeSink, type RecordSink } from '../toolstack/stream/sinks.js';
import type { ByteOutput } from '../toolstack/stream/byte-output.js';
import { StreamWriter } from '../toolstack/stream/writer.js';
import { compareDomains, compareGuestP2m, type Comparison, type PfnDifference } from '../toolstack/verify.js';

export type MigrationOutcome = 'identical' | 'aborted' | 'corrupted';

export interface MigrationOptions {
  readonly abi: GuestAbi;
  /** A personality or faulty variant name (guest-emu/variants.ts). */
  readonly guest: string | GuestVariant;
  /** Guest memory in pages (nr_pages). */
  readonly memoryPages: number;
  readonly toolstack: StrategyName;
  /** deep-tracking: the seed's mechanisms to use (default 2, 3, 4). */
  readonly mechanisms?: readonly Mechanism[];
  /** The guest's workload (`balloon=1%,writes=50%`), empty for a quiet guest. */
  readonly workload: string;
  readonly seed: number;
  /** Remus/COLO checkpoints (0: a plain live migration). */
  readonly checkpoints?: number;
  /** Also write the stream, as real bytes, here (`--stream FILE`). */
  readonly streamOutput?: ByteOutput;
  /** Scrub pages before ballooning them out (Linux's default: true). */
  readonly scrub?: boolean;
  /** Steps a PAGE_DATA batch takes on the wire (default 8): how much the guest does meanwhile. */
  readonly stepsPerBatch?: number;
  /** Guest steps between Remus checkpoints (default 2000). */
  readonly checkpointInterval?: number;
  /** Upper bound on scheduler steps (default 50 million): a run that needs more is an error. */
  readonly maxSteps?: number;
  /**
   * Drives the guest instead of the seeded workload (scenarios): a generator of guest steps,
   * given the guest, the grant peer, its own seeded Rng and the save's progress. The runner
   * suspends the guest for the toolstack at the first step boundary where no operation is open.
   */
  readonly driver?: (world: DriverWorld) => Generator<string, void, undefined>;
  /**
   * Boot the small peer guest that grants go to and come from (default: when the workload has
   * grants or a driver is given; a driver that needs no peer may say false and save its boot).
   */
  readonly peer?: boolean;
  /**
   * Conformance hook (pluggable toolstacks, docs/conformance-interfaces.md): builds the save
   * instead of the reference `Saver`; `toolstack` then only names it in reports.
   */
  readonly createSaver?: (tools: PrivilegedInterface, domid: number, writer: StreamWriter, callbacks: SaveCallbacks, options: SaveOptions) => SaveRun;
  /** Conformance hook (pluggable guests): builds the source guest instead of `new PvGuest(...)`. */
  readonly createGuest?: (built: BuiltDomain, xen: Xen, options: GuestOptions) => PvGuest;
  /** Observers of the source guest and its Xen (conformance rules, trace recording), called before the guest boots. */
  readonly observe?: (world: { readonly xen: Xen; readonly guest: PvGuest; readonly peer?: PvGuest }) => void;
}

/** What a save gives the runner: its steps, and its progress for scenario drivers (the reference `Saver` is one). */
export interface SaveRun {
  readonly progress: SaveProgress;
  run(): Generator<string, SaveReport, undefined>;
}

export interface DriverWorld {
  readonly guest: PvGuest;
  readonly peer: PvGuest | undefined;
  readonly rng: Rng;
  readonly progress: SaveProgress;
  readonly xen: Xen;
}

export interface CheckpointVerdict {
  readonly checkpoint: number;
  readonly differing: number;
  readonly first: readonly PfnDifference[];
}

export interface MigrationResult {
  readonly outcome: MigrationOutcome;
  /** Why the toolstack aborted, or what made the result corrupted in one line. */
  readonly reason?: string;
  readonly seed: number;
  readonly save: SaveReport;
  readonly differing: number;
  readonly differingPfns: readonly PfnDifference[];
  readonly checkpoints: readonly CheckpointVerdict[];
  readonly steps: number;
  readonly workload: string;
  readonly guestOperations: Readonly<Record<string, number>>;
  /** Where the wall time went (milliseconds), for the benchmarks (issue 8). */
  readonly timings: MigrationTimings;
}

/**
 * Wall time of each phase of `runMigration`, in milliseconds. `toolstack` is the time spent inside
 * the save's own steps, which includes the in-process restore of every record it writes (the
 * channel is synchronous): the cost of the migration rounds themselves, without the guest's
 * interleaved work.
 */
export interface MigrationTimings {
  /** Both Xens, the source domain build and the guest's boot (and the grant peer's). */
  setup: number;
  /** The scheduler run: save passes, in-process restore and the guest's workload, interleaved. */
  migrate: number;
  /** Of `migrate`, the save's steps (and the restore they drive). */
  toolstack: number;
  /** Completing the restore, the comparison, the resume on the destination and the p2m walk. */
  verify: number;
}

/** Bad options for a migration: one line, for the CLI. */
export class MigrationConfigError extends Error {
  override name = 'MigrationConfigError';
}

export function abiByName(name: string): GuestAbi {
  if (name === 'x86_64') return X86_64;
  if (name === 'x86_32') return X86_32;
  throw new MigrationConfigError(`unknown arch "${name}"; valid: x86_32, x86_64`);
}

/** Headroom above nr_pages the guest may balloon and grow into. */
function maxPagesFor(memoryPages: number, abi: GuestAbi): number {
  // An eighth of the guest, between 4 MiB and 4 GiB (the guest keeps its balloon in a Map, which
  // V8 caps at 2^24 entries), and never beyond what the 3-level p2m tree can describe (fpp^3
  // pfns: 512 GiB on x86_64), where Linux would not put memory either.
  const fpp = 4096 / abi.wordSize;
  return Math.min(memoryPages + Math.min(1 << 20, Math.max(1024, Math.ceil(memoryPages / 8))), Math.max(memoryPages, fpp ** 3));
}

export function runMigration(o: MigrationOptions): MigrationResult {
  const started = performance.now();
  const timings: MigrationTimings = { setup: 0, migrate: 0, toolstack: 0, verify: 0 };
  if (!Number.isInteger(o.memoryPages) || o.memoryPages < 2048) throw new MigrationConfigError(`guest memory of ${o.memoryPages} pages is too small (at least 8 MiB)`);
  const variant = typeof o.guest === 'string' ? parseGuestVariant(o.guest) : o.guest;
  const rates = parseWorkloadRates(o.workload);
  const maxPages = maxPagesFor(o.memoryPages, o.abi);
  // Room for the guest, its growth, the grant peer and Xen's own frames.
  const machinePages = maxPages * 2 + (1 << 15);
  const srcXen = new Xen({ maxPage: machinePages });
  const dstXen = new Xen({ maxPage: machinePages });

  const built = buildDomain(srcXen, { abi: o.abi, memoryPages: o.memoryPages, maxPages, flags: startInfoFlagsFor(variant.personality) });
  const guestOptions: GuestOptions = { variant, scrub: o.scrub ?? true };
  const guest = o.createGuest ? o.createGuest(built, srcXen, guestOptions) : new PvGuest(built, srcXen, guestOptions);
  let peer: PvGuest | undefined;
  if (o.peer ?? (rates.grants > 0 || o.driver !== undefined)) {
    const peerBuilt = buildDomain(srcXen, { abi: X86_64, memoryPages: 1400, maxPages: 1400, flags: startInfoFlagsFor('linear') });
    peer = PvGuest.start(peerBuilt, srcXen, {});
  }
  // Observers see the guest from its first store: a fault at boot (early publication) is theirs too.
  o.observe?.({ xen: srcXen, guest, ...(peer ? { peer } : {}) });
  finishSteps(guest.boot());
  const workload = new Workload(guest, { rates, seed: Rng.derive(o.seed, 1), ...(peer ? { peer } : {}) });

  const srcTools = new PrivilegedInterface(srcXen);
  const dstTools = new PrivilegedInterface(dstXen);
  const dstDomid = dstTools.createDomain(o.abi, maxPages).domid;
  const checkpointVerdicts: CheckpointVerdict[] = [];
  const src = { tools: srcTools, domid: guest.domid };
  let restorer!: Restorer;
  const dst = (): { tools: PrivilegedInterface; domid: number; restorer: Restorer } => ({ tools: dstTools, domid: dstDomid, restorer });
  restorer = new Restorer(dstTools, dstDomid, (n) => {
    // The secondary applied checkpoint n; the primary is still suspended at it.
    const c = compareDomains(src, dst(), { stage: 'checkpoint' });
    checkpointVerdicts.push({ checkpoint: n, differing: c.differing, first: c.first });
  });
  const inProcess = new InProcessChannel(restorer);
  const sink: RecordSink = o.streamOutput ? new TeeSink(inProcess, new EncodingSink(o.streamOutput)) : inProcess;
  const checkpoints = o.checkpoints ?? 0;
  const writer = new StreamWriter(sink, { streamType: checkpoints > 0 ? 'checkpointed' : 'plain', maxVcpus: 1 });

  const scheduler = new Scheduler(new Rng(Rng.derive(o.seed, 2)), { traceLimit: 0 });
  let runs = 0;
  let saverRef: SaveRun | undefined;
  const driverRng = new Rng(Rng.derive(o.seed, 3));
  let driverSteps: Generator<string, void, undefined> | undefined;
  function* driven(): Generator<string, void, undefined> {
    // The driver's steps until the toolstack asks for a suspend at a quiescent point.
    for (;;) {
      if (guest.suspendRequested && guest.operationInProgress === undefined) {
        yield* guest.suspend();
        return;
      }
      const r = driverSteps!.next();
      yield r.done ? 'idle' : r.value;
    }
  }
  const startWorkload = (): void => {
    if (o.driver) {
      driverSteps ??= o.driver({ guest, peer, rng: driverRng, progress: saverRef!.progress, xen: srcXen });
      scheduler.add(`guest-${runs++}`, driven());
    } else scheduler.add(`guest-${runs++}`, workload.run());
  };
  const interval = o.checkpointInterval ?? 2000;
  const callbacks: SaveCallbacks = {
      *suspend() {
        guest.requestSuspend();
        while (!guest.suspended) yield 'toolstack: waiting for the guest to suspend';
      },
      *resumeBetweenCheckpoints() {
        yield* guest.resume({ cancelled: true });
        startWorkload();
        for (let i = 0; i < interval; i++) yield 'toolstack: the guest runs between checkpoints';
      },
  };
  const saveOptions: SaveOptions = {
    strategy: o.toolstack,
    ...(o.mechanisms ? { mechanisms: o.mechanisms } : {}),
    checkpoints,
    stepsPerBatch: o.stepsPerBatch ?? 8,
  };
  const saver: SaveRun = o.createSaver ? o.createSaver(srcTools, guest.domid, writer, callbacks, saveOptions) : new Saver(srcTools, guest.domid, writer, callbacks, saveOptions);
  saverRef = saver;
  function* timedSave(): Generator<string, SaveReport, undefined> {
    const run = saver.run();
    for (;;) {
      const t = performance.now();
      const r = run.next();
      timings.toolstack += performance.now() - t;
      if (r.done) return r.value;
      yield r.value;
    }
  }
  startWorkload();
  scheduler.add('toolstack', timedSave());
  const maxSteps = o.maxSteps ?? 50_000_000;
  const migrateStart = performance.now();
  timings.setup = migrateStart - started;
  const steps = scheduler.run(maxSteps, () => scheduler.isDone('toolstack'));
  const verifyStart = performance.now();
  timings.migrate = verifyStart - migrateStart;
  if (!scheduler.isDone('toolstack')) throw new Error(`the migration did not finish within ${maxSteps} steps`);
  const save = scheduler.resultOf('toolstack') as SaveReport;

  const base = {
    seed: o.seed,
    save,
    checkpoints: checkpointVerdicts,
    steps,
    workload: formatWorkloadRates(rates),
    guestOperations: { ...guest.stats.operations },
    timings,
  };
  if (save.outcome === 'aborted') {
    // libxl resumes the guest where it was (a cancelled suspend) and the destination is discarded.
    if (guest.suspended) finishSteps(guest.resume({ cancelled: true }));
    return { ...base, outcome: 'aborted', reason: save.reason ?? 'aborted', differing: 0, differingPfns: [] };
  }

  // Remus: the primary "fails" after its last checkpoint and the secondary takes over.
  if (!restorer.completed) restorer.complete();
  const completion = restorer.failure ? `the restore failed: ${restorer.failure.message}` : undefined;
  const memory: Comparison = compareDomains(src, dst(), { stage: completion ? 'checkpoint' : 'final' });
  let walk: Comparison | undefined;
  let resumeProblem: string | undefined;
  if (!completion) {
    try {
      finishSteps(guest.resume({ xen: dstXen, domid: dstDomid }));
      walk = compareGuestP2m(dst());
    } catch (err) {
      resumeProblem = `the guest failed to resume on the destination: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  const badCheckpoint = checkpointVerdicts.find((c) => c.differing > 0);
  const differingPfns = mergeDifferences(memory.first, walk?.first ?? [], badCheckpoint?.first ?? []);
  const differing = memory.differing + (walk?.differing ?? 0) + (badCheckpoint?.differing ?? 0);
  const problem = completion ?? memory.problem ?? resumeProblem ?? walk?.problem;
  timings.verify = performance.now() - verifyStart;
  if (differing === 0 && problem === undefined) return { ...base, outcome: 'identical', differing: 0, differingPfns: [] };
  const reason =
    problem ??
    (badCheckpoint && memory.differing === 0 && (walk?.differing ?? 0) === 0
      ? `checkpoint ${badCheckpoint.checkpoint}: ${badCheckpoint.differing} pfns differ`
      : `${differing} pfns differ; first: ${differingPfns[0]?.detail ?? '?'}`);
  return { ...base, outcome: 'corrupted', reason, differing, differingPfns };
}

function mergeDifferences(...lists: (readonly PfnDifference[])[]): PfnDifference[] {
  const seen = new Set<string>();
  const out: PfnDifference[] = [];
  for (const list of lists) {
    for (const d of list) {
      const key = `${d.pfn}:${d.kind}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(d);
    }
  }
  return out.sort((a, b) => a.pfn - b.pfn).slice(0, 20);
}

function finishSteps<T>(gen: Generator<string, T, undefined>): T {
  for (;;) {
    const r = gen.next();
    if (r.done) return r.value;
  }
}
