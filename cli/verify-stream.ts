/**
 * `xenabi verify-stream FILE`: reads a libxc migration stream file with the kit's reader
 * (toolstack/stream `readStreamFile`) and prints each record and a summary, as text or JSON. Exit 0
 * for a valid stream, 1 for an invalid one (the records up to the problem, then one line naming the
 * record, field and stream offset), 2 for bad input (a missing or unreadable file, a bad flag).
 */

import { Option, type Command } from 'commander';
import {
  REC_TYPE_PAGE_DATA,
  StreamError,
  bodyLengthOf,
  describeRecord,
  hex,
  pageTypeName,
  readStreamFile,
  recordName,
  type DomainHeader,
  type ImageHeader,
  type StreamRecord,
  type StreamSummary,
  type StreamType,
} from '../toolstack/index.js';
import { REPORT_FORMATS, type ReportFormat } from './check-kernel.js';
import { CliExit, EXIT_FAILURE, commanderExit, describeFsError, errorLine, requireChoice, UsageError, withChoices } from './errors.js';
import type { CliIo } from './io.js';

/** The stream types a user may name; without the flag the reader takes either (END required). */
export const STREAM_TYPES = Object.freeze(['plain', 'checkpointed'] as const);

export interface RawVerifyStreamOptions {
  readonly format?: string;
  readonly streamType?: string;
  readonly lenientReserved?: boolean;
}

export interface VerifiedRecord {
  readonly offset: number;
  readonly type: string;
  /** body_length. */
  readonly length: number;
  /** describeRecord without the leading record name ('' for records with nothing more to say). */
  readonly description: string;
}

export interface VerifySummary {
  readonly version: number;
  readonly guestWidth: number;
  readonly ptLevels: number;
  readonly records: number;
  readonly pageDataRecords: number;
  readonly pfns: number;
  readonly pagesWithData: number;
  /** pfn entries of all PAGE_DATA records by XEN_DOMCTL_PFINFO_* name, in order of first appearance. */
  readonly pagesByType: Readonly<Record<string, number>>;
  readonly maxPfn: number;
  readonly checkpoints: number;
  readonly endedBy: 'END' | 'failover';
  readonly discardedRecords: number;
  readonly bytes: number;
}

export interface VerifyError {
  readonly code: string;
  readonly record: string;
  readonly field: string | null;
  readonly offset: number;
  readonly message: string;
}

function describe(rec: StreamRecord): string {
  const full = describeRecord(rec);
  const name = recordName(rec.type);
  if (full === name) return '';
  return full.startsWith(`${name}: `) ? full.slice(name.length + 2) : full;
}

function recordLine(r: VerifiedRecord): string {
  const offset = hex(r.offset).padEnd(10);
  return `${offset} ${r.type.padEnd(20)} ${String(r.length).padStart(8)}${r.description === '' ? '' : `  ${r.description}`}\n`;
}

function summaryOf(s: StreamSummary, pagesByType: ReadonlyMap<string, number>): VerifySummary {
  return {
    version: s.version,
    guestWidth: s.guest_width,
    ptLevels: s.pt_levels,
    records: s.records,
    pageDataRecords: s.pageDataRecords,
    pfns: s.pfns,
    pagesWithData: s.pagesWithData,
    pagesByType: Object.fromEntries(pagesByType),
    maxPfn: s.max_pfn,
    checkpoints: s.checkpoints,
    endedBy: s.endedBy,
    discardedRecords: s.discardedRecords,
    bytes: s.bytes,
  };
}

function summaryLine(s: VerifySummary): string {
  const pages = Object.entries(s.pagesByType).map(([t, n]) => `${n} ${t}`).join(', ');
  const ended = s.endedBy === 'END' ? 'ended by END' : `failover after the last CHECKPOINT (${s.discardedRecords} records discarded)`;
  return (
    `stream v${s.version}, guest width ${s.guestWidth} (${s.guestWidth * 8}-bit, ${s.ptLevels} levels), ` +
    `${s.records} records, ${s.bytes} bytes, pages: ${s.pfns} pfns${pages === '' ? '' : ` (${pages})`}, ${s.pagesWithData} with data, ` +
    `max pfn ${hex(s.maxPfn)}, ${s.checkpoints} checkpoints, ${ended}: valid\n`
  );
}

/** `<record> <field> at offset 0x…: <reason>` */
export function streamErrorText(err: StreamError): string {
  return `${err.record}${err.field === undefined ? '' : ` ${err.field}`} at offset ${hex(err.offset)}: ${err.detail}`;
}

function isFsError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

export async function runVerifyStream(file: string, raw: RawVerifyStreamOptions, io: CliIo): Promise<void> {
  const format = requireChoice<ReportFormat>('format', raw.format ?? 'text', REPORT_FORMATS);
  const streamType: StreamType = raw.streamType === undefined ? 'any' : requireChoice('stream type', raw.streamType, STREAM_TYPES);
  const records: VerifiedRecord[] = [];
  const pagesByType = new Map<string, number>();
  let version: number | null = null;
  const sink = {
    headers(image: ImageHeader, _domain: DomainHeader): void {
      version = image.version;
    },
    record(rec: StreamRecord, offset: number): void {
      const r: VerifiedRecord = { offset, type: recordName(rec.type), length: bodyLengthOf(rec), description: describe(rec) };
      if (rec.type === REC_TYPE_PAGE_DATA) {
        for (const e of rec.entries) {
          const name = pageTypeName(e.type);
          pagesByType.set(name, (pagesByType.get(name) ?? 0) + 1);
        }
      }
      // Text goes out as it is read, so a long stream shows progress and an error follows its records.
      if (format === 'text') io.out(recordLine(r));
      else records.push(r);
    },
  };
  let summary: StreamSummary | undefined;
  try {
    summary = await readStreamFile(file, { streamType, strictReserved: !raw.lenientReserved }, sink);
  } catch (err) {
    if (err instanceof StreamError) {
      if (format === 'json') {
        const error: VerifyError = { code: err.code, record: err.record, field: err.field ?? null, offset: err.offset, message: err.detail };
        io.out(`${JSON.stringify({ file, version, records, summary: null, valid: false, error }, null, 2)}\n`);
      } else {
        io.err(errorLine(`${file}: ${streamErrorText(err)}`));
      }
      throw new CliExit(EXIT_FAILURE);
    }
    if (isFsError(err)) throw new UsageError(`cannot read '${file}': ${describeFsError(err)}`);
    throw err;
  }
  if (summary === undefined) throw new Error('the stream reader returned no summary');
  const s = summaryOf(summary, pagesByType);
  if (format === 'json') io.out(`${JSON.stringify({ file, version: s.version, records, summary: s, valid: true }, null, 2)}\n`);
  else io.out(summaryLine(s));
}

export function addVerifyStreamCommand(program: Command, io: CliIo): Command {
  const cmd = program
    .command('verify-stream')
    .summary('check a libxc migration stream file and list its records')
    .description(
      'Read a libxc migration stream (v2 or v3, x86 PV) with the kit\'s reader: the image and domain ' +
        'headers, every record\'s framing and body, and libxc\'s restore rules (order, duplicates, pfn ' +
        'ranges, what the stream must hold by its end). Prints one line per record (stream offset, type, ' +
        'body_length, what it holds) and a summary, or stops at the first problem with the record, field ' +
        'and stream offset at fault. Optional records the kit does not know are skipped and not listed.',
    )
    .argument('<file>', 'the stream file')
    .addOption(withChoices(new Option('--format <format>', 'output format').default('text'), REPORT_FORMATS))
    .addOption(
      withChoices(
        new Option('--stream-type <type>', 'plain: CHECKPOINT refused, END required; checkpointed (Remus/COLO): may stop after a CHECKPOINT (default: either, END required)'),
        STREAM_TYPES,
      ),
    )
    .addOption(new Option('--lenient-reserved', 'accept non-zero reserved fields, bits and padding, as libxc does (default: reject them, as verify-stream-v2)'))
    .addHelpText(
      'after',
      '\nExit status: 0 valid stream, 1 invalid stream, 2 bad input (missing or unreadable file, bad option).\n' +
        '\nExamples:\n' +
        '  xenabi verify-stream guest.xl-save\n' +
        '  xenabi verify-stream remus.stream --stream-type checkpointed --format json',
    )
    .action((file: string, raw: RawVerifyStreamOptions) => runVerifyStream(file, raw, io));
  cmd.exitOverride(commanderExit(cmd));
  return cmd;
}
