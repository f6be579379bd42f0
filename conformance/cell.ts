/**
 * One cell of the matrix: a scenario × ABI × guest × toolstack, run once with a seed, judged by the
 * guest rules (online, from the recorded trace) and the toolstack rules (from the migration), and
 * turned into an XTF verdict. Pure in its inputs: the same spec gives the same result, in this
 * thread or a worker, which is what makes the printed replay command work.
 */

import { isAbsolute, join, relative } from 'node:path';
import { FOREIGN_FRAME_BIT_X86_32, FOREIGN_FRAME_BIT_X86_64, IDENTITY_FRAME_BIT_X86_32, IDENTITY_FRAME_BIT_X86_64, INVALID_P2M_ENTRY } from '../abi/index.js';
import type { PvGuest } from '../guest-emu/guest.js';
import { parseGuestVariant } from '../guest-emu/variants.js';
import { PrivilegedInterface } from '../xen-emu/privileged.js';
import type { Xen } from '../xen-emu/xen.js';
import { STRATEGIES, type StrategyName } from '../toolstack/save.js';
import { P2mMapError, mapGuestP2m } from '../toolstack/p2m-map.js';
import { abiByName, runMigration, type DriverWorld, type MigrationOptions, type MigrationResult } from './migration.js';
import { judgeToolstack, type SaveEvidence } from './rules/toolstack/index.js';
import type { RuleReport, RuleViolation } from './rules/rule.js';
import { scenarioById } from './scenarios/index.js';
import { DEFAULT_STEPS_PER_BATCH } from './scenarios/scenario.js';
import { KIT, isModulePath, loadGuestSubject, loadToolstackSubject, type GuestSubject, type ToolstackSubject } from './subjects.js';
import { recordTrace, type Recording } from './trace/index.js';
import type { CellOutcome, Verdict } from './verdict.js';

export const ARCHES = ['x86_64', 'x86_32'] as const;
export type Arch = (typeof ARCHES)[number];

export interface CellSpec {
  readonly scenario: string;
  readonly arch: Arch;
  /** A built-in guest name, or the absolute path of a guest module. */
  readonly guest: string;
  /** A built-in toolstack name, or the absolute path of a toolstack module. */
  readonly toolstack: string;
  readonly memoryPages: number;
  readonly seed: number;
  /** Write the guest trace to `<record>/<cell id>.jsonl`. */
  readonly record?: string;
  /** Scheduler steps before the cell is declared hung (CRASH). */
  readonly maxSteps?: number;
}

export interface CellResult {
  readonly id: string;
  readonly scenario: string;
  readonly arch: Arch;
  readonly guest: string;
  readonly toolstack: string;
  readonly seed: number;
  readonly memoryPages: number;
  readonly verdict: Verdict;
  /** Undefined for SKIP, ERROR and CRASH. */
  readonly outcome?: CellOutcome;
  /** One line: why it was skipped, the error, the abort reason or the corruption. */
  readonly reason?: string;
  readonly rules_violated: readonly string[];
  /** The first violation of each violated rule. */
  readonly violations: readonly RuleViolation[];
  readonly save?: { readonly outcome: string; readonly rounds: number; readonly remaps: number; readonly resentP2m: number; readonly p2mFramesRecords: number; readonly checkpoints: number };
  readonly steps?: number;
  readonly ms: number;
}

/** Stable cell id, as files and reports name the cell: `scenario.arch.guest.toolstack.sSEED`. */
export function cellId(spec: Pick<CellSpec, 'scenario' | 'arch' | 'guest' | 'toolstack' | 'seed'>): string {
  const name = (s: string): string => (isModulePath(s) ? s.replace(/^.*[\\/]/, '').replace(/\.[cm]?[jt]s$/, '') : s);
  return `${spec.scenario}.${spec.arch}.${name(spec.guest)}.${name(spec.toolstack)}.s${spec.seed}`.replace(/[^A-Za-z0-9._+-]/g, '_');
}

/** A display name for a guest or toolstack (a module's file name without extension). */
export function subjectLabel(s: string): string {
  if (!isModulePath(s)) return s;
  const rel = relative(process.cwd(), s);
  return rel.startsWith('..') || isAbsolute(rel) ? s : `./${rel}`;
}

const STRUCTURAL_OPS = ['relayout'];
const ENTRY_OPS = ['balloon-out', 'balloon-in', 'exchange', 'grant-map', 'grant-access', 'grant-end', 'growth', 'hotplug'];

/** Watches the source guest while the save runs: the evidence toolstack rules are judged on. */
class Probe {
  private base: { structural: number; ops: Record<string, number> } | undefined;
  private last: { structural: number; ops: Record<string, number> } | undefined;
  readonly inconsistent: number[] = [];
  guest: PvGuest | undefined;
  xen: Xen | undefined;

  sample(world: DriverWorld): void {
    const phase = world.progress.phase;
    if (phase === 'setup' || phase === 'done') return;
    const now = { structural: world.guest.stats.structuralChanges, ops: { ...world.guest.stats.operations } };
    this.base ??= now;
    this.last = now;
  }

  /** At each suspend: pfns whose p2m entry and m2p disagree (grant-mapped and 1:1 entries aside). */
  checkConsistency(): void {
    const g = this.guest!;
    const tools = new PrivilegedInterface(this.xen!);
    const wide = g.abi.wordSize === 8;
    const marker = wide ? FOREIGN_FRAME_BIT_X86_64 | IDENTITY_FRAME_BIT_X86_64 : FOREIGN_FRAME_BIT_X86_32 | IDENTITY_FRAME_BIT_X86_32;
    const invalid = INVALID_P2M_ENTRY(g.abi);
    const end = Math.min(g.lastPfn, g.list.areaPfns);
    // The p2m as a toolstack maps it (one mapping, then plain reads); the guest's own reads go
    // through its page tables one pfn at a time. A guest whose p2m cannot be mapped is read that way.
    let read = (pfn: number): bigint => g.list.read(pfn);
    try {
      const mapped = mapGuestP2m(tools, g.domid);
      if (mapped.p2mSize >= end) read = (pfn) => mapped.rawEntry(pfn);
    } catch (err) {
      if (!(err instanceof P2mMapError)) throw err;
    }
    for (let pfn = 0; pfn < end && this.inconsistent.length < 8; pfn++) {
      const e = read(pfn);
      if (e === invalid || (e & marker) !== 0n) continue;
      if (tools.m2p(Number(e)) !== pfn) this.inconsistent.push(pfn);
    }
  }

  evidence(): SaveEvidence {
    const delta = (names: readonly string[]): number => names.reduce((n, k) => n + (this.last?.ops[k] ?? 0) - (this.base?.ops[k] ?? 0), 0);
    return {
      structuralChanges: (this.last?.structural ?? 0) - (this.base?.structural ?? 0) + delta(STRUCTURAL_OPS),
      entryChanges: delta(ENTRY_OPS),
      inconsistentAtSuspend: [...this.inconsistent],
    };
  }
}

/** The fields every cell result starts with. */
export function cellBase(spec: CellSpec, started: number) {
  return {
    id: cellId(spec),
    scenario: spec.scenario,
    arch: spec.arch,
    guest: subjectLabel(spec.guest),
    toolstack: subjectLabel(spec.toolstack),
    seed: spec.seed,
    memoryPages: spec.memoryPages,
    ms: Math.round(performance.now() - started),
  };
}

function message(err: unknown): string {
  return (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).replace(/\s*\n\s*/g, ' ');
}

/** Runs one cell. Never throws: a broken harness is ERROR, a run that never ends is CRASH. */
export async function runCell(spec: CellSpec): Promise<CellResult> {
  const started = performance.now();
  const scenario = scenarioById(spec.scenario);
  if (!scenario) return { ...cellBase(spec, started), verdict: 'ERROR', reason: `unknown scenario ${spec.scenario}`, rules_violated: [], violations: [] };

  let guestSubject: GuestSubject | undefined;
  let toolstackSubject: ToolstackSubject | undefined;
  let personality;
  try {
    if (isModulePath(spec.guest)) {
      guestSubject = await loadGuestSubject(spec.guest);
      personality = guestSubject.personality;
    } else personality = parseGuestVariant(spec.guest).personality;
    if (isModulePath(spec.toolstack)) toolstackSubject = await loadToolstackSubject(spec.toolstack);
    else if (!(STRATEGIES as readonly string[]).includes(spec.toolstack)) throw new Error(`unknown toolstack ${spec.toolstack}`);
  } catch (err) {
    return { ...cellBase(spec, started), verdict: 'ERROR', reason: message(err), rules_violated: [], violations: [] };
  }
  const skip = scenario.skipReason?.(personality);
  if (skip) return { ...cellBase(spec, started), verdict: 'SKIP', reason: skip, rules_violated: [], violations: [] };

  const probe = new Probe();
  let recording: Recording | undefined;
  const plan = scenario.run();
  const options: MigrationOptions = {
    abi: abiByName(spec.arch),
    guest: guestSubject ? { name: guestSubject.name, personality: guestSubject.personality } : spec.guest,
    memoryPages: spec.memoryPages,
    toolstack: (toolstackSubject ? 'deep-tracking' : spec.toolstack) as StrategyName,
    workload: '',
    seed: spec.seed,
    maxSteps: spec.maxSteps ?? 2_000_000,
    stepsPerBatch: plan.stepsPerBatch ?? DEFAULT_STEPS_PER_BATCH,
    ...(plan.checkpoints ? { checkpoints: plan.checkpoints } : {}),
    ...(plan.scrub !== undefined ? { scrub: plan.scrub } : {}),
    ...(guestSubject?.create ? { createGuest: (built, xen, o) => guestSubject.create!(built, xen, o, KIT) } : {}),
    ...(toolstackSubject ? { createSaver: (tools, domid, writer, callbacks, o) => toolstackSubject.createSaver(tools, domid, writer, callbacks, o, KIT) } : {}),
    observe: ({ xen, guest }) => {
      probe.guest = guest;
      probe.xen = xen;
      recording = recordTrace(xen, guest, { check: true, seed: spec.seed, ...(spec.record ? { file: join(spec.record, `${cellId(spec)}.jsonl`) } : {}) });
      guest.listen((e) => {
        if (e.type === 'suspended') probe.checkConsistency();
      });
    },
    peer: plan.peer ?? false,
    driver: (world) => {
      const inner = plan.driver(world);
      return (function* probed(): Generator<string, void, undefined> {
        for (;;) {
          probe.sample(world);
          const r = inner.next();
          probe.sample(world);
          if (r.done) return;
          yield r.value;
        }
      })();
    },
  };

  let result: MigrationResult | undefined;
  let failure: unknown;
  try {
    result = runMigration(options);
  } catch (err) {
    failure = err;
  } finally {
    recording?.stop();
  }
  const guestReports: RuleReport[] = recording?.checker?.reports() ?? [];
  const toolstackReports = result ? judgeToolstack({ result, evidence: probe.evidence() }) : [];
  const reports = [...guestReports, ...toolstackReports];
  const rules_violated = reports.map((r) => r.rule.id);
  const violations = reports.map((r) => r.first[0]!).filter((v) => v !== undefined);
  const guestCaught = guestReports.length > 0;
  if (!result) {
    const hung = failure instanceof Error && /did not finish within/.test(failure.message);
    if (guestCaught) return { ...cellBase(spec, started), verdict: 'FAILURE', outcome: 'rule-violation', reason: `the guest broke ${rules_violated.join(', ')}; then ${message(failure)}`, rules_violated, violations };
    return { ...cellBase(spec, started), verdict: hung ? 'CRASH' : 'ERROR', reason: message(failure), rules_violated, violations };
  }
  const save = {
    outcome: result.save.outcome,
    rounds: result.save.rounds,
    remaps: result.save.remaps,
    resentP2m: result.save.resentP2m,
    p2mFramesRecords: result.save.p2mFramesRecords,
    checkpoints: result.save.checkpoints,
  };
  const outcome: CellOutcome = guestCaught ? 'rule-violation' : result.outcome;
  const verdict: Verdict = reports.length > 0 ? 'FAILURE' : 'SUCCESS';
  const reason = guestCaught ? `${violations[0]!.message}${result.reason ? `; migration ${result.outcome}: ${result.reason}` : `; migration ${result.outcome}`}` : result.reason;
  return { ...cellBase(spec, started), verdict, outcome, ...(reason ? { reason } : {}), rules_violated, violations, save, steps: result.steps };
}
