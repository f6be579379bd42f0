/**
 * The guest trace format (docs/trace-format.md): JSON Lines, a header line then one semantic,
 * guest-level event per line. The events say what a guest did to its p2m protocol state — stores
 * into shared_info's p2m fields and into p2m elements, page-table writes that remap pages of the
 * linear list, the tree's leaves, m2p changes, frames gained and lost, operations and quiescent
 * points, publication, suspend and resume — so that the guest rules can be checked from the trace
 * alone. The emulator's recorder (recorder.ts) writes it online; a converter can write it from a
 * real guest. Numbers that fit 2^53 (pfns, mfns, page and entry indices) are JSON numbers; guest
 * words and PTEs are hex strings (`"0x…"`), so 64-bit values stay exact.
 */

export const TRACE_FORMAT = 'xenabi-trace';
export const TRACE_VERSION = 1;

/** A page of the list or tree that no frame backs (a non-present entry, or an invalid tree slot). */
export const FRAME_UNMAPPED = -1;
/** A page of the list mapped by a superpage (PSE at L2/L3): not a 4 KiB entry. */
export const FRAME_LARGE = -2;

export type TraceAbi = 'x86_32' | 'x86_64';

export interface TraceHeader {
  readonly format: typeof TRACE_FORMAT;
  readonly version: typeof TRACE_VERSION;
  readonly abi: TraceAbi;
  /** The domain the trace follows. */
  readonly domid: number;
  /** Free-form: what produced the trace (e.g. `xenabi recorder`, `linux p2m.c tracepoints`). */
  readonly source?: string;
  /** The guest variant or kernel. */
  readonly guest?: string;
  /** The seed of the run that produced it, when there was one. */
  readonly seed?: number;
}

export const SHARED_FIELDS = ['max_pfn', 'pfn_to_mfn_frame_list_list', 'p2m_cr3', 'p2m_vaddr', 'p2m_generation'] as const;
export type SharedField = (typeof SHARED_FIELDS)[number];
export type SharedValues = Readonly<Record<SharedField, bigint>>;

export const PHASES = ['booting', 'running', 'suspended'] as const;
export type GuestPhase = (typeof PHASES)[number];

/** `[first index, value, count, step]`: entries first..first+count-1 hold value, value+step, … (step 0 or 1). */
export type WordRun = readonly [number, bigint, number, 0 | 1];
/** `[first page, mfn, count, step]`; mfn may be FRAME_UNMAPPED / FRAME_LARGE (then step is 0). */
export type FrameRun = readonly [number, number, number, 0 | 1];
/** `[first mfn, count]`. */
export type MfnRun = readonly [number, number];
/** `[first mfn, first pfn, count]`: m2p[first mfn + i] = first pfn + i. */
export type M2pRun = readonly [number, number, number];
/** `[page, old mfn, new mfn]` (mfns may be FRAME_UNMAPPED / FRAME_LARGE). */
export type Remap = readonly [number, number, number];

export type StoreWriter = 'guest' | 'xen' | 'builder' | 'toolstack';

/** The guest's state where the trace starts. */
export interface StateEvent {
  readonly type: 'state';
  readonly phase: GuestPhase;
  /** `start_info.flags` (SIF_*): SIF_VIRT_P2M_4TOOLS is bit 4. */
  readonly start_info_flags: number;
  readonly shared: SharedValues;
  /** Ordinary frames the domain owns. */
  readonly owned: readonly MfnRun[];
  /** Xen heap frames shared with the domain (shared_info, grant frames): owned, outside the p2m contract. */
  readonly xen_heap: readonly number[];
  /** Valid m2p entries of owned frames (all others are INVALID). */
  readonly m2p: readonly M2pRun[];
}

export interface SharedEvent {
  readonly type: 'shared';
  readonly field: SharedField;
  readonly value: bigint;
}

/** Entries [first, first + count) of the p2m are now `entries` (entries not listed are INVALID). */
export interface P2mEvent {
  readonly type: 'p2m';
  readonly first: number;
  readonly count: number;
  readonly entries: readonly WordRun[];
}

/** One store into p2m element `pfn`, `offset` bytes into it, `width` bytes (little-endian `value`). */
export interface P2mStoreEvent {
  readonly type: 'p2m_store';
  readonly pfn: number;
  readonly offset: number;
  readonly width: number;
  readonly value: bigint;
  /** Who stored (default guest). */
  readonly by?: StoreWriter;
}

/** Which frame backs each page of the linear list, as walked from p2m_cr3 (after a change of p2m_cr3, p2m_vaddr or the walked extent). */
export interface ListEvent {
  readonly type: 'list';
  readonly vaddr: bigint;
  /** Pages walked: the list's pages and the rest of the L2 table's range it may grow into. */
  readonly extent: number;
  /** Every page of [0, extent); pages not covered are FRAME_UNMAPPED. */
  readonly pages: readonly FrameRun[];
  /** Why the walk stopped early (a bad root, a frame outside the machine), if it did. */
  readonly error?: string;
}

/** A write into a page-table frame on the list's walk, inside the walked range; `remap` lists the pages whose backing frame changed. */
export interface PtWriteEvent {
  readonly type: 'pt_write';
  /** 1 = PTE (L1), 2 = PMD, 3, 4. */
  readonly level: number;
  readonly mfn: number;
  readonly entry: number;
  readonly value: bigint;
  readonly remap: readonly Remap[];
}

/** Which leaf frame the 3-level tree names for each page (fll → mid → leaf). */
export interface TreeEvent {
  readonly type: 'tree';
  /** When true, pages not listed are FRAME_UNMAPPED (the tree is not valid there); else only listed pages changed. */
  readonly full: boolean;
  readonly pages: readonly FrameRun[];
}

export interface M2pTraceEvent {
  readonly type: 'm2p';
  readonly mfn: number;
  /** The new m2p entry, or null for INVALID. */
  readonly pfn: number | null;
}

export interface FrameEvent {
  readonly type: 'frame';
  readonly mfn: number;
  readonly owned: boolean;
  readonly xen_heap?: boolean;
}

export interface OpEvent {
  readonly type: 'op';
  readonly phase: 'start' | 'end';
  readonly name: string;
}

export interface QuiescentEvent {
  readonly type: 'quiescent';
  readonly reason: string;
}

export interface PublishedEvent {
  readonly type: 'published';
  readonly reason: 'boot' | 'resume';
}

export interface SuspendEvent {
  readonly type: 'suspended' | 'resumed';
}

export type TraceEvent =
  | StateEvent
  | SharedEvent
  | P2mEvent
  | P2mStoreEvent
  | ListEvent
  | PtWriteEvent
  | TreeEvent
  | M2pTraceEvent
  | FrameEvent
  | OpEvent
  | QuiescentEvent
  | PublishedEvent
  | SuspendEvent;

export const EVENT_TYPES = ['state', 'shared', 'p2m', 'p2m_store', 'list', 'pt_write', 'tree', 'm2p', 'frame', 'op', 'quiescent', 'published', 'suspended', 'resumed'] as const;
export type TraceEventType = (typeof EVENT_TYPES)[number];

/** A malformed trace: the 1-based line and what is wrong with it, in one line. */
export class TraceFormatError extends Error {
  override readonly name = 'TraceFormatError';
  constructor(
    readonly line: number,
    readonly problem: string,
  ) {
    super(`line ${line}: ${problem}`);
  }
}

// ------------------------------------------------------------------------------------------------
// Writing
// ------------------------------------------------------------------------------------------------

export function hexWord(v: bigint): string {
  return `0x${v.toString(16)}`;
}

function frameJson(mfn: number): number | string {
  return mfn === FRAME_UNMAPPED ? 'unmapped' : mfn === FRAME_LARGE ? 'large' : mfn;
}

/** One event (or the header) as one JSON line, without the newline. */
export function formatLine(item: TraceHeader | TraceEvent): string {
  if ('format' in item) return JSON.stringify(item);
  const e = item;
  switch (e.type) {
    case 'state': {
      const shared: Record<string, string> = {};
      for (const f of SHARED_FIELDS) shared[f] = hexWord(e.shared[f]);
      return JSON.stringify({ ...e, shared });
    }
    case 'shared':
    case 'p2m_store':
    case 'pt_write':
      return JSON.stringify({
        ...e,
        value: hexWord(e.value),
        ...(e.type === 'pt_write' ? { remap: e.remap.map(([p, o, n]) => [p, frameJson(o), frameJson(n)]) } : {}),
      });
    case 'p2m':
      return JSON.stringify({ ...e, entries: e.entries.map(([f, v, c, s]) => [f, hexWord(v), c, s]) });
    case 'list':
      return JSON.stringify({ ...e, vaddr: hexWord(e.vaddr), pages: e.pages.map(([f, m, c, s]) => [f, frameJson(m), c, s]) });
    case 'tree':
      return JSON.stringify({ ...e, pages: e.pages.map(([f, m, c, s]) => [f, frameJson(m), c, s]) });
    default:
      return JSON.stringify(e);
  }
}

// ------------------------------------------------------------------------------------------------
// Reading
// ------------------------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

/** Field readers that throw a TraceFormatError naming the field. */
class Fields {
  constructor(
    private readonly line: number,
    private readonly o: Obj,
    private readonly what: string,
  ) {}

  fail(problem: string): never {
    throw new TraceFormatError(this.line, `${this.what}: ${problem}`);
  }

  has(name: string): boolean {
    return this.o[name] !== undefined;
  }

  private get(name: string): Json {
    const v = this.o[name];
    if (v === undefined) this.fail(`missing field "${name}"`);
    return v;
  }

  int(name: string, min = 0): number {
    return checkInt(this, this.get(name), name, min);
  }

  string(name: string): string {
    const v = this.get(name);
    if (typeof v !== 'string') this.fail(`field "${name}" must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(name: string): boolean {
    const v = this.get(name);
    if (typeof v !== 'boolean') this.fail(`field "${name}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  hex(name: string): bigint {
    return checkHex(this, this.get(name), name);
  }

  choice<T extends string>(name: string, choices: readonly T[]): T {
    const v = this.string(name);
    if (!(choices as readonly string[]).includes(v)) this.fail(`field "${name}" is "${v}" (valid: ${choices.join(', ')})`);
    return v as T;
  }

  array(name: string): Json[] {
    const v = this.get(name);
    if (!Array.isArray(v)) this.fail(`field "${name}" must be an array`);
    return v;
  }

  object(name: string): Obj {
    const v = this.get(name);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(`field "${name}" must be an object`);
    return v;
  }

  /** An array of fixed-length tuples, each item read by `item`. */
  tuples<T>(name: string, length: number, item: (t: Json[], at: string) => T): T[] {
    return this.array(name).map((t, i) => {
      const at = `${name}[${i}]`;
      if (!Array.isArray(t) || t.length !== length) this.fail(`${at} must be an array of ${length} items`);
      return item(t, at);
    });
  }
}

function checkInt(f: Fields, v: Json, name: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) f.fail(`field "${name}" must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function checkHex(f: Fields, v: Json, name: string): bigint {
  if (typeof v !== 'string' || !/^0x[0-9a-fA-F]{1,2048}$/.test(v)) f.fail(`field "${name}" must be a hex string like "0x1f", got ${JSON.stringify(v)}`);
  return BigInt(v);
}

function checkFrame(f: Fields, v: Json, name: string): number {
  if (v === 'unmapped') return FRAME_UNMAPPED;
  if (v === 'large') return FRAME_LARGE;
  if (typeof v !== 'number') f.fail(`${name} must be an mfn, "unmapped" or "large", got ${JSON.stringify(v)}`);
  return checkInt(f, v, name, 0);
}

function checkStep(f: Fields, v: Json, name: string): 0 | 1 {
  if (v !== 0 && v !== 1) f.fail(`${name} (step) must be 0 or 1, got ${JSON.stringify(v)}`);
  return v;
}

function frameRuns(f: Fields, name: string): FrameRun[] {
  return f.tuples(name, 4, (t, at) => [checkInt(f, t[0]!, `${at}[0]`, 0), checkFrame(f, t[1]!, `${at}[1]`), checkInt(f, t[2]!, `${at}[2]`, 1), checkStep(f, t[3]!, `${at}[3]`)] as const);
}

function parseJson(line: number, text: string): Obj {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new TraceFormatError(line, `not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TraceFormatError(line, 'expected a JSON object');
  return v as Obj;
}

/** The header line (line 1). */
export function parseHeader(text: string, line = 1): TraceHeader {
  const o = parseJson(line, text);
  const f = new Fields(line, o, 'header');
  if (o['format'] !== TRACE_FORMAT) f.fail(`"format" must be "${TRACE_FORMAT}", got ${JSON.stringify(o['format'] ?? null)}`);
  const version = f.int('version');
  if (version !== TRACE_VERSION) f.fail(`unsupported version ${version} (this kit reads version ${TRACE_VERSION})`);
  const abi = f.choice('abi', ['x86_32', 'x86_64'] as const);
  const domid = f.int('domid');
  return {
    format: TRACE_FORMAT,
    version: TRACE_VERSION,
    abi,
    domid,
    ...(f.has('source') ? { source: f.string('source') } : {}),
    ...(f.has('guest') ? { guest: f.string('guest') } : {}),
    ...(f.has('seed') ? { seed: f.int('seed') } : {}),
  };
}

/** One event line. */
export function parseEvent(text: string, line: number): TraceEvent {
  const o = parseJson(line, text);
  const type = o['type'];
  if (typeof type !== 'string') throw new TraceFormatError(line, 'event: missing field "type"');
  if (!(EVENT_TYPES as readonly string[]).includes(type)) throw new TraceFormatError(line, `unknown event type "${type}" (valid: ${EVENT_TYPES.join(', ')})`);
  const f = new Fields(line, o, `${type} event`);
  switch (type as TraceEventType) {
    case 'state': {
      const sh = new Fields(line, f.object('shared'), 'state event shared');
      const shared = Object.fromEntries(SHARED_FIELDS.map((k) => [k, sh.hex(k)])) as Record<SharedField, bigint>;
      return {
        type: 'state',
        phase: f.choice('phase', PHASES),
        start_info_flags: f.int('start_info_flags'),
        shared,
        owned: f.tuples('owned', 2, (t, at) => [checkInt(f, t[0]!, `${at}[0]`, 0), checkInt(f, t[1]!, `${at}[1]`, 1)] as const),
        xen_heap: f.array('xen_heap').map((v, i) => checkInt(f, v, `xen_heap[${i}]`, 0)),
        m2p: f.tuples('m2p', 3, (t, at) => [checkInt(f, t[0]!, `${at}[0]`, 0), checkInt(f, t[1]!, `${at}[1]`, 0), checkInt(f, t[2]!, `${at}[2]`, 1)] as const),
      };
    }
    case 'shared':
      return { type: 'shared', field: f.choice('field', SHARED_FIELDS), value: f.hex('value') };
    case 'p2m':
      return {
        type: 'p2m',
        first: f.int('first'),
        count: f.int('count'),
        entries: f.tuples('entries', 4, (t, at) => [checkInt(f, t[0]!, `${at}[0]`, 0), checkHex(f, t[1]!, `${at}[1]`), checkInt(f, t[2]!, `${at}[2]`, 1), checkStep(f, t[3]!, `${at}[3]`)] as const),
      };
    case 'p2m_store': {
      const width = f.int('width', 1);
      const value = f.hex('value');
      if (value >> BigInt(8 * width) !== 0n) f.fail(`value ${hexWord(value)} does not fit ${width} bytes`);
      return {
        type: 'p2m_store',
        pfn: f.int('pfn'),
        offset: f.int('offset'),
        width,
        value,
        ...(f.has('by') ? { by: f.choice('by', ['guest', 'xen', 'builder', 'toolstack'] as const) } : {}),
      };
    }
    case 'list':
      return {
        type: 'list',
        vaddr: f.hex('vaddr'),
        extent: f.int('extent'),
        pages: frameRuns(f, 'pages'),
        ...(f.has('error') ? { error: f.string('error') } : {}),
      };
    case 'pt_write':
      return {
        type: 'pt_write',
        level: f.int('level', 1),
        mfn: f.int('mfn'),
        entry: f.int('entry'),
        value: f.hex('value'),
        remap: f.tuples('remap', 3, (t, at) => [checkInt(f, t[0]!, `${at}[0]`, 0), checkFrame(f, t[1]!, `${at}[1]`), checkFrame(f, t[2]!, `${at}[2]`)] as const),
      };
    case 'tree':
      return { type: 'tree', full: f.bool('full'), pages: frameRuns(f, 'pages') };
    case 'm2p': {
      const v = o['pfn'];
      if (v === undefined) f.fail('missing field "pfn"');
      return { type: 'm2p', mfn: f.int('mfn'), pfn: v === null ? null : f.int('pfn') };
    }
    case 'frame':
      return { type: 'frame', mfn: f.int('mfn'), owned: f.bool('owned'), ...(f.has('xen_heap') ? { xen_heap: f.bool('xen_heap') } : {}) };
    case 'op':
      return { type: 'op', phase: f.choice('phase', ['start', 'end'] as const), name: f.string('name') };
    case 'quiescent':
      return { type: 'quiescent', reason: f.string('reason') };
    case 'published':
      return { type: 'published', reason: f.choice('reason', ['boot', 'resume'] as const) };
    case 'suspended':
    case 'resumed':
      return { type: type as 'suspended' | 'resumed' };
  }
}

export interface ParsedTrace {
  readonly header: TraceHeader;
  /** Events with the 1-based line each came from. */
  readonly events: readonly { readonly line: number; readonly event: TraceEvent }[];
}

/** Parses a whole trace (blank lines are skipped); the first problem is a TraceFormatError. */
export function parseTrace(text: string): ParsedTrace {
  const lines = text.split('\n');
  let header: TraceHeader | undefined;
  const events: { line: number; event: TraceEvent }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim() === '') continue;
    if (header === undefined) header = parseHeader(raw, i + 1);
    else events.push({ line: i + 1, event: parseEvent(raw, i + 1) });
  }
  if (header === undefined) throw new TraceFormatError(1, 'empty trace: expected a header line');
  return { header, events };
}
