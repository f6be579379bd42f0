/**
 * Sample x86 PV streams for the stream tests: a small guest with one pfn of every page type, written
 * the way libxc's saver orders an x86 PV save (plain or Remus), for either guest ABI and stream
 * version. Harness helpers, not a saver: the page tables are not normalised, the contents are
 * stamps and simple patterns.
 */

import {
  PAGE_SIZE,
  XEN_DOMCTL_PFINFO_NOTAB,
  XEN_DOMCTL_PFINFO_XTAB,
  shared_info,
  type GuestAbi,
} from '../../../abi/index.js';
import {
  BufferOutput,
  EncodingSink,
  EXT_VCPUCONTEXT_SIZE,
  KNOWN_PAGE_TYPES,
  REC_TYPE_X86_PV_VCPU_BASIC,
  REC_TYPE_X86_PV_VCPU_EXTENDED,
  REC_TYPE_X86_PV_VCPU_MSRS,
  REC_TYPE_X86_PV_VCPU_XSAVE,
  StreamWriter,
  VCPU_GUEST_CONTEXT_SIZE,
  pageTypeHasData,
  type PageDataEntry,
  type RecordSink,
  type StreamVersion,
  type WriterOptions,
} from '../../../toolstack/index.js';

export interface SampleOptions {
  readonly abi: GuestAbi;
  readonly version?: StreamVersion;
  /** Remus checkpoints (0: a plain stream). */
  readonly checkpoints?: number;
  /** Close with END (default true; verify-stream-v2 reads a libxc stream up to END, even a checkpointed one). */
  readonly end?: boolean;
  /** CPUID and MSR policy records (v3 only; default true for v3). */
  readonly policies?: boolean;
  /** EXTENDED, XSAVE and MSRS after BASIC (default true). */
  readonly fullVcpu?: boolean;
  /** Bytes of vcpu0's XSAVE area after xcr0/xcr0_accum (default 576, the legacy area and header). */
  readonly xsaveArea?: number;
  /** libxc's debug mode (plain streams): VERIFY after the last pass, then all memory again. */
  readonly verify?: boolean;
  /** Data pages as real bytes instead of stamps. */
  readonly bytes?: boolean;
}

/** pfns 0..11 carry one of each known type, 12 is the p2m frame, 13..31 are data. */
export const SAMPLE_MAX_PFN = 31;
export const SAMPLE_P2M_PFN = 12;

function patternPage(seed: number): Uint8Array {
  const page = new Uint8Array(PAGE_SIZE);
  for (let i = 0; i < PAGE_SIZE; i++) page[i] = (seed * 31 + i * 7) & 0xff;
  return page;
}

function content(pfn: number, round: number, bytes: boolean): PageDataEntry['content'] {
  return bytes ? { bytes: patternPage(pfn + 100 * round) } : { stamp: 0x1000 * (round + 1) + pfn };
}

/** The sample guest's pages for round `round` (0: everything; later rounds: a dirty subset). */
export function samplePages(round: number, bytes = false): PageDataEntry[] {
  const entries: PageDataEntry[] = [];
  const pfns = round === 0 ? [...Array(SAMPLE_MAX_PFN + 1).keys()] : [3, 13, 14, 11, 20 + round];
  for (const pfn of pfns) {
    const type = pfn < KNOWN_PAGE_TYPES.length ? KNOWN_PAGE_TYPES[pfn]! : XEN_DOMCTL_PFINFO_NOTAB;
    entries.push(pageTypeHasData(type) ? { pfn, type, content: content(pfn, round, bytes) } : { pfn, type });
  }
  return entries;
}

export function sampleSharedInfo(abi: GuestAbi): Uint8Array {
  const { bytes, view } = shared_info.alloc(abi);
  view.arch.max_pfn = BigInt(SAMPLE_MAX_PFN + 1);
  view.arch.p2m_generation = 2n;
  const page = new Uint8Array(PAGE_SIZE);
  page.set(bytes);
  return page;
}

function blob(size: number, fill: number): Uint8Array {
  return new Uint8Array(size).fill(fill);
}

/** Writes the end-of-checkpoint records: TSC, SHARED_INFO, vcpu0's records. */
function writeCheckpointState(w: StreamWriter, abi: GuestAbi, round: number, fullVcpu: boolean, xsaveArea: number): void {
  w.tscInfo({ mode: 0, khz: 2_400_000, nsec: 1_000_000n * BigInt(round + 1), incarnation: round });
  w.sharedInfo(sampleSharedInfo(abi));
  w.vcpu(REC_TYPE_X86_PV_VCPU_BASIC, 0, blob(VCPU_GUEST_CONTEXT_SIZE[abi.name], 0));
  if (!fullVcpu) return;
  w.vcpu(REC_TYPE_X86_PV_VCPU_EXTENDED, 0, blob(EXT_VCPUCONTEXT_SIZE, 0));
  const xsave = new Uint8Array(16 + xsaveArea);
  xsave[0] = 0x03; // xcr0: x87 | SSE
  xsave[8] = 0x03; // xcr0_accum
  w.vcpu(REC_TYPE_X86_PV_VCPU_XSAVE, 0, xsave);
  const msr = new Uint8Array(16);
  new DataView(msr.buffer).setUint32(0, 0xc0000080, true); // MSR_EFER
  w.vcpu(REC_TYPE_X86_PV_VCPU_MSRS, 0, msr);
}

/** Writes the sample guest into `sink`; returns the writer (ended or not). */
export function writeSample(sink: RecordSink, o: SampleOptions): StreamWriter {
  const version = o.version ?? 3;
  const checkpoints = o.checkpoints ?? 0;
  const options: WriterOptions = { version, streamType: checkpoints > 0 ? 'checkpointed' : 'plain' };
  const w = new StreamWriter(sink, options);
  w.x86PvInfo(o.abi);
  if (version >= 3 && (o.policies ?? true)) {
    w.cpuidPolicy([
      { leaf: 0, subleaf: 0xffffffff, a: 0xd, b: 0x756e6547, c: 0x6c65746e, d: 0x49656e69 },
      { leaf: 1, subleaf: 0xffffffff, a: 0x000906ea, b: 0, c: 0x80000000, d: 0x178bfbff },
    ]);
    w.msrPolicy([{ idx: 0xce, flags: 0, val: 0x80000000n }]);
  }
  if (version >= 3) w.staticDataEnd();
  w.p2mFrames(0, SAMPLE_MAX_PFN, [SAMPLE_P2M_PFN]);
  const fullVcpu = o.fullVcpu ?? true;
  const rounds = Math.max(1, checkpoints);
  for (let round = 0; round < rounds; round++) {
    w.pageData(samplePages(round, o.bytes ?? false));
    if (round === 0) w.pageData([{ pfn: SAMPLE_MAX_PFN, type: XEN_DOMCTL_PFINFO_XTAB }]); // a deferred, ballooned pfn
    if (o.verify) {
      w.verify();
      w.pageData(samplePages(0, o.bytes ?? false));
    }
    writeCheckpointState(w, o.abi, round, fullVcpu, o.xsaveArea ?? 576);
    if (checkpoints > 0) w.checkpoint();
  }
  if (o.end ?? true) w.end();
  return w;
}

/** The sample as a real libxc stream. */
export function sampleStream(o: SampleOptions): Buffer {
  const out = new BufferOutput();
  writeSample(new EncodingSink(out), o);
  return out.toBuffer();
}

// ------------------------------------------------------------------------------------------------
// Raw streams, byte by byte, for tests of malformed input (the writer refuses to make these).
// ------------------------------------------------------------------------------------------------

/** The 40 header bytes of a v`version` x86 PV stream from Xen 4.17. */
export function rawHeaders(version = 3): Uint8Array {
  const b = Buffer.alloc(40);
  b.writeBigUInt64BE(0xffffffffffffffffn, 0);
  b.writeUInt32BE(0x58454e46, 8);
  b.writeUInt32BE(version, 12);
  b.writeUInt32LE(1, 24); // x86 PV
  b.writeUInt16LE(12, 28);
  b.writeUInt32LE(4, 32);
  b.writeUInt32LE(17, 36);
  return b;
}

/** A record: header, body, zero padding; `length` overrides body_length. */
export function rawRecord(type: number, body: Uint8Array | readonly number[] = [], length?: number): Uint8Array {
  const data = Uint8Array.from(body);
  const padded = Math.ceil(data.length / 8) * 8;
  const b = Buffer.alloc(8 + padded);
  b.writeUInt32LE(type >>> 0, 0);
  b.writeUInt32LE(length ?? data.length, 4);
  b.set(data, 8);
  return b;
}

export function u32s(...values: number[]): Uint8Array {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32LE(v >>> 0, 4 * i));
  return b;
}

export function u64s(...values: (number | bigint)[]): Uint8Array {
  const b = Buffer.alloc(8 * values.length);
  values.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), 8 * i));
  return b;
}

export function concat(...parts: readonly Uint8Array[]): Buffer {
  return Buffer.concat(parts);
}

/** A PAGE_DATA body: count, res1, the pfn words as given, then `pages` pages of `fill`. */
export function pageDataBody(words: readonly bigint[], pages: number, fill = 0): Uint8Array {
  return concat(u32s(words.length, 0), u64s(...words), Buffer.alloc(4096 * pages, fill));
}

/** A pfn word: type nibble in bits 63–60, pfn below. */
export function pfnWord(nibble: number, pfn: number): bigint {
  return (BigInt(nibble) << 60n) | BigInt(pfn);
}

/** X86_PV_INFO, STATIC_DATA_END (v3) and X86_PV_P2M_FRAMES for pfns 0..15 with frame pfn 5. */
export function rawPreamble(abi: GuestAbi, version = 3): Uint8Array[] {
  const parts = [rawRecord(0x02, [abi.wordSize, abi.pagingLevels, 0, 0, 0, 0, 0, 0])];
  if (version >= 3) parts.push(rawRecord(0x10));
  parts.push(rawRecord(0x03, concat(u32s(0, 15), u64s(5))));
  return parts;
}

/** vcpu0's BASIC record and END. */
export function rawEpilogue(abi: GuestAbi): Uint8Array[] {
  return [rawRecord(0x04, concat(u32s(0, 0), Buffer.alloc(VCPU_GUEST_CONTEXT_SIZE[abi.name]))), rawRecord(0x00)];
}

/** A complete raw stream with `middle` records between the preamble and the epilogue. */
export function rawStream(abi: GuestAbi, middle: readonly Uint8Array[], version = 3): Buffer {
  return concat(rawHeaders(version), ...rawPreamble(abi, version), ...middle, ...rawEpilogue(abi));
}

/** Offset of the first record after the preamble in `rawStream` (x86 PV, v3: 40 + 16 + 8 + 32). */
export function rawMiddleOffset(abi: GuestAbi, version = 3): number {
  return 40 + rawPreamble(abi, version).reduce((n, p) => n + p.length, 0);
}
